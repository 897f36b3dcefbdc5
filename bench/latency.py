"""Target 1: get_run on the local backend against B1's echo, over stdio and over HTTP.

Both servers run side by side; each repeat measures them one after the other, in alternating
order, after a warm-up: N sequential calls (p50, p99), then the same number of calls with 8 in
flight on one session (calls per second).
"""

from __future__ import annotations

from contextlib import AsyncExitStack

from mcp import Client

from bench.calls import call, latencies, throughput
from bench.servers import agentdeck, baseline, http_process, seed_run
from bench.settings import Settings
from bench.stats import Row, percentile, summarize

__all__ = ["run"]

CONCURRENCY = 8


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
    calls = {deck.name: ("get_run", {"run_id": run_id}), b1.name: ("echo", {"text": run_id})}
    repeats, n = settings.pick(7, 3), settings.pick(400, 200)
    async with AsyncExitStack() as stack:
        clients: dict[str, Client] = {}
        for server in (deck, b1):
            if transport == "stdio":
                clients[server.name] = await stack.enter_async_context(server.client())
            else:
                url, _ = stack.enter_context(http_process(server))
                clients[server.name] = await stack.enter_async_context(Client(url))
        for name, client in clients.items():  # warm-up: imports, caches, connections
            tool, args = calls[name]
            await call(client, tool, args)
            await latencies(client, tool, args, 100)
            await throughput(client, tool, args, 100, CONCURRENCY)
        p50: dict[str, list[float]] = {name: [] for name in clients}
        p99: dict[str, list[float]] = {name: [] for name in clients}
        rate: dict[str, list[float]] = {name: [] for name in clients}
        for repeat in range(repeats):
            order = list(clients) if repeat % 2 == 0 else list(reversed(clients))
            for name in order:
                tool, args = calls[name]
                samples = await latencies(clients[name], tool, args, n)
                p50[name].append(percentile(samples, 50) * 1000)
                p99[name].append(percentile(samples, 99) * 1000)
            for name in order:
                tool, args = calls[name]
                rate[name].append(await throughput(clients[name], tool, args, n, CONCURRENCY))
        settings.say(f"latency {transport}: p50 {p50}, rate {rate}")
    return [
        Row(f"1 {transport} p50", f"get_run latency p50, {transport}", summarize(p50[deck.name], "ms"), summarize(p50[b1.name], "ms"), "B1 echo", "<=", 1.1, ratio_repeats=_ratios(p50, deck.name, b1.name), note=f"{repeats}x{n} calls; goals are issue 23's"),
        Row(f"1 {transport} p99", f"get_run latency p99, {transport}", summarize(p99[deck.name], "ms"), summarize(p99[b1.name], "ms"), "B1 echo", "<=", 1.5, ratio_repeats=_ratios(p99, deck.name, b1.name)),
        Row(f"1 {transport} rate", f"throughput, {CONCURRENCY} concurrent, {transport}", summarize(rate[deck.name], "calls/s"), summarize(rate[b1.name], "calls/s"), "B1 echo", ">=", 0.75, ratio_repeats=_ratios(rate, deck.name, b1.name)),
    ]


def _ratios(values: dict[str, list[float]], a: str, b: str) -> list[float]:
    return [x / y for x, y in zip(values[a], values[b], strict=True)]
