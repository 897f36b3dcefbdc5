"""Target 7: resident memory (VmRSS) of the server process, agentdeck against B1, over stdio.

Start-up: each server is started fresh several times, alternating, and read right after its
first tools/list answer. Growth: one process of each makes 10,000 tool calls (get_run on the
local backend; echo for B1), 8 in flight, and is read again; growth is measured against
the same process's own start-up figure. Growth after the first 500 calls (the code paths a
call loads once) is in the note, which tells a leak from first use.
"""

from __future__ import annotations

import anyio

from bench.calls import call, throughput
from bench.servers import Server, agentdeck, baseline, rss_mib, seed_run
from bench.settings import Settings
from bench.stats import Figure, Row, summarize

__all__ = ["run"]

CALLS = 10_000
SETTLE_SECONDS = 0.3


async def _startup_rss(server: Server) -> float:
    async with server.client() as client:
        await client.list_tools()
        await anyio.sleep(SETTLE_SECONDS)
        return rss_mib(server.pid())


async def _growth(server: Server, tool: str, args: dict[str, str], calls: int) -> tuple[float, float, float]:
    """(RSS after start-up, after 500 calls, after `calls` calls), MiB."""
    async with server.client() as client:
        await client.list_tools()
        await anyio.sleep(SETTLE_SECONDS)
        pid = server.pid()
        start = rss_mib(pid)
        await call(client, tool, args)
        await throughput(client, tool, args, 499, 8)
        warm = rss_mib(pid)
        await throughput(client, tool, args, calls - 500, 8)
        await anyio.sleep(SETTLE_SECONDS)
        return start, warm, rss_mib(pid)


async def run(settings: Settings) -> list[Row]:
    repeats = settings.pick(5, 3)
    calls = settings.pick(CALLS, 3000)
    log = settings.log("memory")
    home = settings.dir("memory")
    run_id = seed_run(home / "data")
    deck, b1 = agentdeck(home, log), baseline(log)
    startup: dict[str, list[float]] = {deck.name: [], b1.name: []}
    for repeat in range(repeats):
        for server in (deck, b1) if repeat % 2 == 0 else (b1, deck):
            startup[server.name].append(await _startup_rss(server))
    d_start, d_warm, d_end = await _growth(deck, "get_run", {"run_id": run_id}, calls)
    b_start, b_warm, b_end = await _growth(b1, "echo", {"text": run_id}, calls)
    settings.say(f"memory: start-up {startup}; agentdeck {d_start:.1f}/{d_warm:.1f}/{d_end:.1f} MiB, B1 {b_start:.1f}/{b_warm:.1f}/{b_end:.1f} MiB")
    deck_startup = summarize(startup[deck.name], "MiB")
    growth = (d_end / d_start - 1) * 100
    b1_growth = (b_end / b_start - 1) * 100
    return [
        Row("old 7 rss start", "resident memory after start-up", deck_startup, summarize(startup[b1.name], "MiB"), "B1", "<=", 1.5, ratio_repeats=[a / b for a, b in zip(startup[deck.name], startup[b1.name], strict=True)], note=f"{repeats} starts each, read after the first tools/list"),
        Row(
            "old 7 rss growth",
            f"growth after {calls:,} calls, % of start-up",
            Figure(growth, growth, growth, "%"),
            Figure(b1_growth, b1_growth, b1_growth, "%"),
            "B1",
            ratio=growth / 100 + 1,
            op="<=",
            limit=1.10,
            note=f"agentdeck {d_start:.1f} -> {d_warm:.1f} (500 calls) -> {d_end:.1f} MiB; growth after the first 500 calls {(d_end / d_warm - 1) * 100:.1f} %; B1 {b_start:.1f} -> {b_warm:.1f} -> {b_end:.1f} MiB; ratio column = end/start-up",
        ),
    ]
