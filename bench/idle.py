"""Issue 23, target 6: resident memory per open idle Streamable HTTP session, agentdeck against B1.

Each server runs with `--http`; a warm-up of 50 sessions loads the code a session uses, then
the server's VmRSS is read, 1,000 more sessions (300 with --quick) are opened (initialize, then
notifications/initialized; no GET stream and no DELETE, so each stays open until the idle
limit), and VmRSS is read again. Per session = the growth / that count. The two servers are measured
the same way, one after the other (once: the figure hardly moves between repeats).
"""

from __future__ import annotations

import anyio
import httpx2

from bench.servers import Server, agentdeck, baseline, http_process, rss_mib
from bench.settings import Settings
from bench.stats import Row, summarize

__all__ = ["open_sessions", "run"]

SESSIONS = 1000
WARM_UP = 50
OPENERS = 10  # sessions being opened at once
SETTLE_SECONDS = 0.5
HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
INIT = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "bench-idle", "version": "0"}},
}
INITIALIZED = {"jsonrpc": "2.0", "method": "notifications/initialized"}


async def open_sessions(http: httpx2.AsyncClient, url: str, count: int) -> list[str]:
    """Open `count` sessions the way a client does; return their ids (raises if one is refused)."""
    ids: list[str] = []
    remaining = count

    async def opener() -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            opened = await http.post(url, json=INIT, headers=HEADERS)
            opened.raise_for_status()
            session = opened.headers["mcp-session-id"]
            headers = HEADERS | {"mcp-session-id": session, "mcp-protocol-version": INIT["params"]["protocolVersion"]}  # type: ignore[index]
            (await http.post(url, json=INITIALIZED, headers=headers)).raise_for_status()
            ids.append(session)

    async with anyio.create_task_group() as tg:
        for _ in range(OPENERS):
            tg.start_soon(opener)
    return ids


async def _per_session_kib(server: Server, count: int) -> float:
    with http_process(server) as (url, pid):
        async with httpx2.AsyncClient(timeout=60) as http:
            await open_sessions(http, url, WARM_UP)
            await anyio.sleep(SETTLE_SECONDS)
            before = rss_mib(pid)
            opened = await open_sessions(http, url, count)
            await anyio.sleep(SETTLE_SECONDS)
            after = rss_mib(pid)
    if len(set(opened)) != count:
        raise RuntimeError(f"{server.name}: {len(set(opened))} distinct sessions of {count}")
    return (after - before) * 1024 / count


async def run(settings: Settings) -> list[Row]:
    repeats = 1  # the figure is steady (37.2-37.3 KiB over repeats); a repeat costs ~25 s under load
    sessions = settings.pick(SESSIONS, 300)
    log = settings.log("idle")
    deck, b1 = agentdeck(settings.dir("idle"), log), baseline(log)
    figures: dict[str, list[float]] = {deck.name: [], b1.name: []}
    for repeat in range(repeats):
        for server in (deck, b1) if repeat % 2 == 0 else (b1, deck):
            figures[server.name].append(await _per_session_kib(server, sessions))
    settings.say(f"idle: KiB per open idle HTTP session {figures}")
    ratios = [a / b for a, b in zip(figures[deck.name], figures[b1.name], strict=True)]
    return [
        Row(
            "23.6 idle sessions",
            f"memory per open idle HTTP session ({sessions:,} open)",
            summarize(figures[deck.name], "KiB"),
            summarize(figures[b1.name], "KiB"),
            "B1",
            "<=",
            1.0,
            ratio_repeats=ratios,
            note=f"VmRSS growth over {sessions:,} sessions after {WARM_UP} warm-up ones, {repeats} repeat(s) each; idle ones close after [http] session_idle_seconds (default 1800)",
        )
    ]
