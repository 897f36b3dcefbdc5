"""Target 3: from process start to the first tools/list answer over stdio, agentdeck against B1.

Each sample starts a fresh server process through the SDK's stdio client (connect, the
client's handshake, tools/list), alternating agentdeck and B1, after one unmeasured start of
each so that bytecode caches and the OS file cache are warm for both.
"""

from __future__ import annotations

import time

from bench.servers import Server, agentdeck, baseline
from bench.settings import Settings
from bench.stats import Row, summarize

__all__ = ["run", "time_to_tools"]


async def time_to_tools(server: Server) -> float:
    """Seconds from spawning `server` to the answer of its first tools/list."""
    started = time.perf_counter()
    async with server.client() as client:
        tools = await client.list_tools()
        elapsed = time.perf_counter() - started
    if not tools.tools:
        raise RuntimeError(f"{server.name} listed no tools")
    return elapsed


async def run(settings: Settings) -> list[Row]:
    repeats = settings.pick(7, 3)
    log = settings.log("coldstart")
    deck, b1 = agentdeck(settings.dir("coldstart"), log), baseline(log)
    for server in (deck, b1):
        await time_to_tools(server)
    seconds: dict[str, list[float]] = {deck.name: [], b1.name: []}
    for repeat in range(repeats):
        for server in (deck, b1) if repeat % 2 == 0 else (b1, deck):
            seconds[server.name].append(await time_to_tools(server) * 1000)
    settings.say(f"coldstart: {seconds}")
    ratios = [a / b for a, b in zip(seconds[deck.name], seconds[b1.name], strict=True)]
    return [
        Row("old 3 cold start", "process start to first tools/list, stdio", summarize(seconds[deck.name], "ms"), summarize(seconds[b1.name], "ms"), "B1", "<=", 1.5, ratio_repeats=ratios, note=f"{repeats} starts each"),
    ]
