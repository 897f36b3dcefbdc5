"""Target 5: a waiting receive in one agentdeck process wakes when another process sends.

Two `agentdeck serve` processes (identities sender and receiver) share one data dir. Each
sample: the receiver starts receive_channel_messages(wait_seconds=10); after 50 ms (it is
waiting by then) the sender calls send_channel_message; the figure is the time from the start
of that send call to the receive call's answer. Compared with B1's echo round trip (p50),
measured in the same run under the same conditions: each B1 call also follows 50 ms in which
every process was idle. (On a VM a process woken from idle answers much more slowly than one
in a hot loop: B1's echo takes about twice as long after 50 ms idle. The hot round trip is in
the note and in results.json.)

On PostgreSQL (when AGENTDECK_BENCH_POSTGRES or AGENTDECK_TEST_POSTGRES names a server, see
bench/postgres.py) the same, with both processes' store in a fresh schema there
(AGENTDECK_STORE): the wake-up travels by LISTEN/NOTIFY instead of a local datagram.
"""

from __future__ import annotations

import time
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import anyio

from bench.calls import call, latencies
from bench.postgres import describe, fresh_schema
from bench.servers import agentdeck, baseline
from bench.settings import Settings
from bench.stats import Row, percentile, summarize

__all__ = ["run"]

CHANNEL = "bench"
PAUSE_SECONDS = 0.05


async def _sample(sender: Any, receiver: Any, body: str) -> float:
    got: dict[str, Any] = {}

    async def receive() -> None:
        got.update(await call(receiver, "receive_channel_messages", {"channel": CHANNEL, "wait_seconds": 10}))
        got["at"] = time.perf_counter()

    async with anyio.create_task_group() as tg:
        tg.start_soon(receive)
        await anyio.sleep(PAUSE_SECONDS)
        started = time.perf_counter()
        sent = await call(sender, "send_channel_message", {"channel": CHANNEL, "body": body})
    ids = [m["id"] for m in got["messages"]]
    if ids != [sent["id"]]:
        raise RuntimeError(f"receiver got {ids}, expected [{sent['id']}]")
    return float(got["at"] - started)


async def _idle_round_trip(echo: Any) -> float:
    await anyio.sleep(PAUSE_SECONDS)
    started = time.perf_counter()
    await call(echo, "echo", {"text": "ping"})
    return time.perf_counter() - started


async def run(settings: Settings) -> list[Row]:
    repeats, samples = settings.pick(5, 3), settings.pick(40, 15)
    log = settings.log("wakeup")
    home = settings.dir("wakeup")
    rows = [await _measure(settings, log, home, "old 5 wake-up", repeats, samples)]
    if settings.postgres:
        try:
            with fresh_schema(settings.postgres, settings.say) as url:
                rows.append(await _measure(settings, log, home / "pg", "old 5 wake-up, PostgreSQL", settings.pick(4, 2), settings.pick(25, 15), url))
        except Exception as exc:  # the SQLite row above still counts
            settings.fail("wakeup on PostgreSQL", exc)
    return rows


async def _measure(settings: Settings, log: Any, home: Path, key: str, repeats: int, samples: int, store: str | None = None) -> Row:
    """The row for one store: SQLite in the shared data dir, or the PostgreSQL URL `store`."""
    data_dir = home / "data"
    extra = {"AGENTDECK_STORE": store} if store else {}
    send_server = agentdeck(home / "sender", log, identity="sender", data_dir=data_dir, **extra)
    receive_server = agentdeck(home / "receiver", log, identity="receiver", data_dir=data_dir, **extra)
    b1 = baseline(log)
    wake: list[float] = []
    round_trip: list[float] = []
    hot: list[float] = []
    async with AsyncExitStack() as stack:
        sender = await stack.enter_async_context(send_server.client())
        receiver = await stack.enter_async_context(receive_server.client())
        echo = await stack.enter_async_context(b1.client())
        for i in range(3):  # warm-up
            await _sample(sender, receiver, f"warm-up {i}")
        await latencies(echo, "echo", {"text": "warm-up"}, 100)
        for repeat in range(repeats):
            times, trips = [], []
            for i in range(samples):  # alternate, so both see the same machine
                times.append(await _sample(sender, receiver, f"message {repeat}.{i}"))
                trips.append(await _idle_round_trip(echo))
            wake.append(percentile(times, 50) * 1000)
            round_trip.append(percentile(trips, 50) * 1000)
            hot.append(percentile(await latencies(echo, "echo", {"text": "ping"}, 200), 50) * 1000)
    where = " on PostgreSQL" if store else ""
    settings.say(f"wakeup{where}: p50 {wake}, B1 round trip p50 after idle {round_trip}, hot {hot}")
    hot_figure = summarize(hot, "ms")
    via = f", store on {describe(store)} (LISTEN/NOTIFY)" if store else ""
    return Row(
        key,
        "send in one process to waiting receive in another, p50",
        summarize(wake, "ms"),
        summarize(round_trip, "ms"),
        "B1 round trip after 50 ms idle",
        "<=",
        3.0,
        ratio_repeats=[a / b for a, b in zip(wake, round_trip, strict=True)],
        note=f"{repeats}x{samples} messages{via}; B1 round trip in a hot loop {hot_figure.text()}, ratio to it {summarize(wake, 'ms').median / hot_figure.median:.2f}",
    )
