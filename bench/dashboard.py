"""Issue 23, target 5 for the dashboard (issue 20): its pages with 100,000 runs, tasks and
messages against 100 (<= 1.3 x), and, for information, its live events.

The stores are bench/stores.py's, shared with the scale rows: #general holds as many messages
as there are runs, a few near the start containing a rare word (so a search for it reads the
whole channel: the worst case). One `agentdeck ui` process serves each store. Pages are timed as
plain GETs of the server-rendered HTML; per repeat both sizes are timed in alternating order.

Event latency: the browser's view of a channel is an event stream; a sample is the time from
the start of another process's send_channel_message (an `agentdeck serve` over stdio) to the
arrival of the re-rendered fragment carrying that message on the open stream.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from contextlib import AsyncExitStack
from typing import Any

import anyio
import httpx2

from bench.calls import call
from bench.servers import REPO, Server, agentdeck
from bench.settings import Settings
from bench.stats import Row, percentile, summarize
from bench.stores import CHANNEL, LARGE, RARE, SMALL, sized

__all__ = ["run"]

_NOTES = {
    "healthz": "no page at all: what any request costs this server on this machine, for scale",
    "search": "substring search cannot use an index; it reads the channel newest first and stops at a page of matches",
    "event": "information: issue 20's goal, not issue 23's, is <= 2",
    "tasks": "per-queue counts are capped at 1,000 (shown as 'over 1,000'), so a queue of finished tasks costs no more than that",
}


class _Ui:
    """`agentdeck ui` on a free port with a bench server's config and data dir."""

    def __init__(self, server: Server, log: Any) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "agentdeck", "ui", "--as", "bench"], env=server.env, cwd=REPO, stdout=subprocess.PIPE, stderr=log, text=True
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if " at " not in line:
            raise RuntimeError("agentdeck ui did not start; see the dashboard log")
        self.url = line.split(" at ", 1)[1].split()[0]

    def close(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def _pages(newest_run: str) -> dict[str, str]:
    return {
        "healthz": "../healthz",  # the floor: the same server answering with no page to make
        "runs": "",
        "run": f"runs/local/{newest_run}",
        "channel": f"channels/local/{CHANNEL}",
        "channel older page": f"channels/local/{CHANNEL}?before=60000",
        "tasks": "tasks?queue=default",
        f"search '{RARE}' (3 matches, whole channel read)": f"channels/local/{CHANNEL}?q={RARE}",
    }


async def _get_times(client: httpx2.AsyncClient, url: str, n: int) -> list[float]:
    out = []
    for _ in range(n):
        started = time.perf_counter()
        response = await client.get(url)
        out.append(time.perf_counter() - started)
        if response.status_code != 200:
            raise RuntimeError(f"GET {url} answered {response.status_code}")
    return out


async def _event_times(client: httpx2.AsyncClient, ui: _Ui, sender: Any, n: int) -> list[float]:
    out = []
    async with client.stream("GET", f"{ui.url}live/channels/local/{CHANNEL}", timeout=60) as response:
        lines = response.aiter_lines()

        async def next_html() -> str:
            async for line in lines:
                if line.startswith("data: "):
                    return str(json.loads(line[6:])["html"])
            raise RuntimeError("the event stream ended")

        await next_html()  # the first render
        for i in range(n):
            body = f"event sample {i} {time.time()}"
            await anyio.sleep(0.05)
            started = time.perf_counter()
            await call(sender, "send_channel_message", {"channel": CHANNEL, "body": body})
            with anyio.fail_after(30):
                while body not in await next_html():
                    pass
            out.append(time.perf_counter() - started)
    return out


async def run(settings: Settings) -> list[Row]:
    repeats, n = settings.pick(4, 3), settings.pick(10, 6)
    log = settings.log("dashboard")
    _, dirs = sized(settings)
    servers, uis = {}, {}
    try:
        for size, data_dir in dirs.items():
            servers[size] = agentdeck(settings.dir(f"dashboard-{size}"), log, identity="sender", data_dir=data_dir)
            uis[size] = _Ui(servers[size], log)
        pages = _pages(f"run_{LARGE - 1:016x}")
        timed: dict[tuple[str, int], list[float]] = {(p, s): [] for p in [*pages, "event"] for s in uis}
        async with AsyncExitStack() as stack:
            http = await stack.enter_async_context(httpx2.AsyncClient(timeout=30))
            senders = {size: await stack.enter_async_context(server.client()) for size, server in servers.items()}
            pages["run"] = f"runs/local/run_{SMALL - 1:016x}"  # the newest run exists in both stores
            for size, ui in uis.items():  # warm-up
                for path in pages.values():
                    await _get_times(http, ui.url + path, 3)
            for repeat in range(repeats):
                order = (SMALL, LARGE) if repeat % 2 == 0 else (LARGE, SMALL)
                for name, path in pages.items():  # both sizes one after the other, page by page
                    count = max(3, n // 4) if name.startswith("search") else n  # the search reads the whole channel
                    for size in order:
                        timed[(name, size)].append(percentile(await _get_times(http, uis[size].url + path, count), 50) * 1000)
                for size in order:
                    timed[("event", size)].append(percentile(await _event_times(http, uis[size], senders[size], max(5, n // 4)), 50) * 1000)
    finally:
        for ui in uis.values():
            ui.close()
    settings.say(f"dashboard: p50 ms {timed}")
    rows = []
    for name in [*pages, "event"]:
        large, small = timed[(name, LARGE)], timed[(name, SMALL)]
        info = name.startswith("search") or name in ("healthz", "event")
        what = "live event: another process's message on an open channel stream" if name == "event" else f"page {name}"
        rows.append(
            Row(
                f"23.5 dashboard {name.split()[0]}" + (" older" if "older" in name else ""),
                f"dashboard {what}, p50 at {LARGE:,}",
                summarize(large, "ms"),
                summarize(small, "ms"),
                f"at {SMALL}",
                "<=",
                None if info else 1.3,
                ratio_repeats=[a / b for a, b in zip(large, small, strict=True)],
                note=_NOTES.get(name.split()[0], ""),
            )
        )
    return rows
