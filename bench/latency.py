"""Target 1: get_run on the local backend against B1's echo, over stdio and over HTTP.

Both servers run side by side; each repeat measures them one after the other, in alternating
order, after a warm-up: N sequential calls each, in turns of 50 (p50, p99). Over stdio a third
server, B1 on agentdeck's own stdio transport, gives information rows: what agentdeck adds on the
same transport, beside the target's comparison with the SDK's. Issue 23 sets no goal for one
session's throughput, so it is not measured here (it cost a third of this section's time).
"""

from __future__ import annotations

from contextlib import AsyncExitStack

from mcp import Client

from bench.calls import call, latencies
from bench.servers import agentdeck, baseline, http_process, seed_run
from bench.settings import Settings
from bench.stats import Row, percentile, summarize

__all__ = ["run"]

CHUNK = 50  # calls per turn; a repeat is n calls per server in turns of CHUNK, alternating


async def run(settings: Settings) -> list[Row]:
    rows: list[Row] = []
    for transport in ("stdio", "http"):
        rows += await _transport(settings, transport)
    return rows


async def _transport(settings: Settings, transport: str) -> list[Row]:
    home = settings.dir(f"latency-{transport}")
    log = settings.log(f"latency-{transport}")
    run_id = seed_run(home / "data")
    deck, b1 = agentdeck(home, log), baseline(log)
    servers = [deck, b1]
    calls = {deck.name: ("get_run", {"run_id": run_id}), b1.name: ("echo", {"text": run_id})}
    if transport == "stdio":
        same = baseline(log, agentdeck_stdio=True)
        servers.append(same)
        calls[same.name] = ("echo", {"text": run_id})
    repeats, n = settings.pick(5, 3), settings.pick(300, 150)
    async with AsyncExitStack() as stack:
        clients: dict[str, Client] = {}
        for server in servers:
            if transport == "stdio":
                clients[server.name] = await stack.enter_async_context(server.client())
            else:
                url, _ = stack.enter_context(http_process(server))
                clients[server.name] = await stack.enter_async_context(Client(url))
        for name, client in clients.items():  # warm-up: imports, caches, connections
            tool, args = calls[name]
            await call(client, tool, args)
            await latencies(client, tool, args, 100)
        p50: dict[str, list[float]] = {name: [] for name in clients}
        p99: dict[str, list[float]] = {name: [] for name in clients}
        for repeat in range(repeats):
            order = list(clients) if repeat % 2 == 0 else list(reversed(clients))
            samples: dict[str, list[float]] = {name: [] for name in clients}
            for _ in range(n // CHUNK):  # short turns, so load that comes and goes hits both alike
                for name in order:
                    tool, args = calls[name]
                    samples[name] += await latencies(clients[name], tool, args, CHUNK)
            for name in clients:
                p50[name].append(percentile(samples[name], 50) * 1000)
                p99[name].append(percentile(samples[name], 99) * 1000)
        settings.say(f"latency {transport}: p50 {p50}, p99 {p99}")
    rows = [
        Row(f"23.1 {transport} p50", f"get_run latency p50, {transport}", summarize(p50[deck.name], "ms"), summarize(p50[b1.name], "ms"), "B1 echo", "<=", 1.1, ratio_repeats=_ratios(p50, deck.name, b1.name), note=f"{repeats}x{n} calls; goals are issue 23's"),
        Row(f"23.1 {transport} p99", f"get_run latency p99, {transport}", summarize(p99[deck.name], "ms"), summarize(p99[b1.name], "ms"), "B1 echo", "<=", 1.5, ratio_repeats=_ratios(p99, deck.name, b1.name)),
    ]
    if transport == "stdio":
        rows.append(
            Row("23.1 stdio p50 same transport", "get_run p50, stdio, B1 on agentdeck's transport", summarize(p50[deck.name], "ms"), summarize(p50[same.name], "ms"), "B1 echo, agentdeck stdio", ratio_repeats=_ratios(p50, deck.name, same.name), note="information: what agentdeck adds to a call on the same stdio transport")
        )
    return rows


def _ratios(values: dict[str, list[float]], a: str, b: str) -> list[float]:
    return [x / y for x, y in zip(values[a], values[b], strict=True)]
