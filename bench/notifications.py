"""Issue 23, target 7: time from a change to the notification a subscriber hears.

Across processes (SQLite): two `agentdeck serve` processes over stdio share one data dir; the
receiver's client holds a `subscriptions/listen` stream on agentdeck://channels/bench. Each
sample: after 50 ms idle, the sender calls send_channel_message; the figure is the time from
the start of that call to the moment the receiver's client has the
`notifications/resources/updated`. Compared with B1's echo round trip after 50 ms idle over
the same transport, measured alternately in the same run (as the wake-up row does, bench/wakeup.py).

Across replicas (PostgreSQL, when configured; see bench/postgres.py): the same with two
`agentdeck serve --http --stateless` replicas on one fresh schema, the listener on one and the
sender on the other, so the change travels by LISTEN/NOTIFY; B1 is then driven over HTTP.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import anyio
from mcp import Client

from bench.calls import call, latencies
from bench.postgres import describe, fresh_schema
from bench.servers import agentdeck, baseline, http_process
from bench.settings import Settings
from bench.stats import Row, percentile, summarize
from bench.wakeup import PAUSE_SECONDS

__all__ = ["run"]

URI = "agentdeck://channels/bench"


class _Heard:
    """The times at which the listener heard an update for URI."""

    def __init__(self) -> None:
        self.send, self.receive = anyio.create_memory_object_stream[float](100)


@contextlib.asynccontextmanager
async def _listening(client: Client) -> AsyncIterator[_Heard]:
    heard = _Heard()
    async with client.listen(resource_subscriptions=[URI]) as subscription, anyio.create_task_group() as tg:

        async def pump() -> None:
            async for event in subscription:
                if getattr(event, "uri", None) == URI:
                    heard.send.send_nowait(time.perf_counter())

        tg.start_soon(pump)
        yield heard
        tg.cancel_scope.cancel()


async def _sample(sender: Client, heard: _Heard, body: str) -> float:
    await anyio.sleep(PAUSE_SECONDS)
    started = time.perf_counter()
    await call(sender, "send_channel_message", {"channel": "bench", "body": body})
    with anyio.fail_after(10):
        at = await heard.receive.receive()
    return at - started


async def _idle_round_trip(echo: Client) -> float:
    await anyio.sleep(PAUSE_SECONDS)
    started = time.perf_counter()
    await call(echo, "echo", {"text": "ping"})
    return time.perf_counter() - started


async def run(settings: Settings) -> list[Row]:
    log = settings.log("notifications")
    home = settings.dir("notifications")
    rows = [await _processes(settings, log, home, settings.pick(4, 3), settings.pick(20, 10))]
    if settings.postgres:
        try:
            with fresh_schema(settings.postgres, settings.say) as url:
                rows.append(await _replicas(settings, log, home / "pg", settings.pick(3, 2), settings.pick(20, 10), url))
        except Exception as exc:  # the SQLite row above still counts
            settings.fail("notifications across replicas", exc)
    return rows


async def _processes(settings: Settings, log: Any, home: Path, repeats: int, samples: int) -> Row:
    data_dir = home / "data"
    async with AsyncExitStack() as stack:
        sender = await stack.enter_async_context(agentdeck(home / "sender", log, identity="sender", data_dir=data_dir).client())
        receiver = await stack.enter_async_context(agentdeck(home / "receiver", log, identity="receiver", data_dir=data_dir).client())
        echo = await stack.enter_async_context(baseline(log).client())
        heard = await stack.enter_async_context(_listening(receiver))
        notified, trips = await _measure(sender, heard, echo, repeats, samples)
    return _row("23.7 notification across processes", "stdio, store SQLite", notified, trips, repeats, samples, settings)


async def _replicas(settings: Settings, log: Any, home: Path, repeats: int, samples: int, store: str) -> Row:
    extra = {"AGENTDECK_STORE": store}
    with (
        http_process(agentdeck(home / "a", log, identity="receiver", **extra), timeout=60) as (url_a, _),
        http_process(agentdeck(home / "b", log, identity="sender", **extra), timeout=60) as (url_b, _),
        http_process(baseline(log)) as (url_echo, _),
    ):
        async with Client(url_b) as sender, Client(url_a) as receiver, Client(url_echo) as echo, _listening(receiver) as heard:
            notified, trips = await _measure(sender, heard, echo, repeats, samples)
    return _row("23.7 notification across replicas", f"HTTP, store {describe(store)} (LISTEN/NOTIFY)", notified, trips, repeats, samples, settings)


async def _measure(sender: Client, heard: _Heard, echo: Client, repeats: int, samples: int) -> tuple[list[float], list[float]]:
    for i in range(3):  # warm-up
        await _sample(sender, heard, f"warm-up {i}")
    await latencies(echo, "echo", {"text": "warm-up"}, 50)
    notified: list[float] = []
    trips: list[float] = []
    for repeat in range(repeats):
        times, round_trips = [], []
        for i in range(samples):  # alternate, so both see the same machine
            times.append(await _sample(sender, heard, f"message {repeat}.{i}"))
            round_trips.append(await _idle_round_trip(echo))
        notified.append(percentile(times, 50) * 1000)
        trips.append(percentile(round_trips, 50) * 1000)
    return notified, trips


def _row(key: str, how: str, notified: list[float], trips: list[float], repeats: int, samples: int, settings: Settings) -> Row:
    settings.say(f"{key}: p50 {notified}, B1 round trip p50 after idle {trips}")
    return Row(
        key,
        "send in one process to the subscriber's notification, p50",
        summarize(notified, "ms"),
        summarize(trips, "ms"),
        "B1 round trip after 50 ms idle",
        "<=",
        2.0,
        ratio_repeats=[a / b for a, b in zip(notified, trips, strict=True)],
        note=f"{repeats}x{samples} messages; {how}",
    )
