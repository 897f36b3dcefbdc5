"""Issue 23, target 2: many clients over HTTP, a mixed workload against one agentdeck server, next to B1.

At each level N, N SDK client sessions (one Streamable HTTP connection each, all in this
process) loop for a fixed time over send_channel_message, receive_channel_messages with an
`after` cursor, create_task, claim_task, complete_task (when the claim got a task) and get_run
on the local backend. B1 gets the same N sessions from the same client, each making six echo
calls per cycle. Figures per level: calls per second, p50 and p99 of every call, and the server
process's CPU time (utime + stime from /proc) per call over the same window.

Checks (agentdeck): errors; messages lost or repeated; tasks completed twice. The server has one
identity and a reader never receives its own messages, so a peer (this process, writing through
the product's Store as identity "peer", like a second agentdeck process on the same data dir)
posts to every channel during the window; each reader must receive every peer message of its
channel exactly once (after a final drain), and every message the sessions sent must be in the
store exactly once (read back as a third identity).

With a PostgreSQL server (AGENTDECK_BENCH_POSTGRES, see bench/postgres.py) the workload also
runs on two `--stateless` replicas sharing one fresh schema, sessions spread over both, with the
same checks; its calls per second are printed beside one replica's on the same store.

`BENCH_MIXED_SECONDS` overrides the seconds per level (4; 2 with --quick; the issue's 30 s does not fit the
five-minute budget of `python -m bench`).
"""

from __future__ import annotations

import os
import time
from collections import Counter
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from typing import Any

import anyio
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from agentdeck.backends.local.store import Store, open_store
from bench.postgres import fresh_schema
from bench.servers import Server, agentdeck, baseline, http_process, run_row, seed_run
from bench.settings import Settings
from bench.stats import Figure, Row, percentile

__all__ = ["run"]

GROUP = 5  # sessions reading and writing one channel
PEER_INTERVAL = 0.02  # seconds between the peer's messages, round robin over the channels


@dataclass
class Tally:
    latencies: list[float] = field(default_factory=list)
    errors: int = 0
    first_error: str = ""
    sent: list[str] = field(default_factory=list)
    completed: list[str] = field(default_factory=list)

    async def call(self, client: Client, tool: str, args: dict[str, Any]) -> dict[str, Any] | None:
        started = time.perf_counter()
        try:
            result = await client.call_tool(tool, args)
        except Exception as exc:  # a failed call is counted, and the session goes on
            self.errors += 1
            self.first_error = self.first_error or f"{tool}: {exc!r}"
            return None
        self.latencies.append(time.perf_counter() - started)
        if result.is_error:
            self.errors += 1
            self.first_error = self.first_error or f"{tool}: {result.content}"
            return None
        return result.structured_content or {}


@dataclass
class Reader:
    channel: str
    cursor: str
    seen: list[str] = field(default_factory=list)

    def take(self, batch: dict[str, Any] | None) -> int:
        messages = (batch or {}).get("messages", [])
        self.seen += [m["id"] for m in messages]
        if messages:
            self.cursor = messages[-1]["id"]
        return len(messages)


def _cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _deck_cycle(client: Client, tally: Tally, reader: Reader, queue: str, run_id: str, tag: str) -> None:
    sent = await tally.call(client, "send_channel_message", {"channel": reader.channel, "body": tag})
    if sent:
        tally.sent.append(sent["id"])
    reader.take(await tally.call(client, "receive_channel_messages", {"channel": reader.channel, "after": reader.cursor, "limit": 100}))
    await tally.call(client, "create_task", {"queue": queue, "title": tag})
    lease = ((await tally.call(client, "claim_task", {"queue": queue})) or {}).get("lease")
    if lease:
        done = await tally.call(client, "complete_task", {"run_id": lease["run_id"], "claim_token": lease["claim_token"], "result": "ok"})
        if done:
            tally.completed.append(lease["task"]["id"])
    await tally.call(client, "get_run", {"run_id": run_id})


async def _echo_cycle(client: Client, tally: Tally, tag: str) -> None:
    for _ in range(6):
        await tally.call(client, "echo", {"text": tag})


def _message(channel: str, body: str) -> dict[str, Any]:
    return {"channel": channel, "sender": "peer", "body": body, "kind": "message", "correlation_id": None, "reply_to": None, "sent_at": time.time()}


async def _peer(store: Store, channels: list[str], stop: anyio.Event, written: dict[str, list[str]]) -> None:
    n = 0
    while not stop.is_set():
        channel = channels[n % len(channels)]
        row = await store.append_message(_message(channel, f"peer {n}"), "peer", None)
        written[channel].append(str(row["id"]))
        n += 1
        with anyio.move_on_after(PEER_INTERVAL):
            await stop.wait()


async def _stored(store: Store, channel: str, after: str) -> list[str]:
    """The ids of every message on `channel` after `after`, read as an identity nobody else uses."""
    ids: list[str] = []
    cursor: int | None = int(after)
    while True:
        batch, more = await store.read_messages(channel, "auditor", 100, cursor)
        ids += [str(r["id"]) for r in batch]
        cursor = None  # the auditor's cursor now stands past the batch
        if not more:
            return ids


@dataclass
class Level:
    calls: int
    seconds: float
    cpu: float
    latencies: list[float]
    errors: int
    first_error: str
    lost: int = 0
    repeated: int = 0
    twice: int = 0


async def _level(kind: str, targets: list[tuple[str, int]], sessions: int, seconds: float, store: Store | None, run_id: str, level_tag: str) -> Level:
    """One level against `targets` (URL, pid), sessions spread over them; `store` is agentdeck's (None for B1)."""
    tally = Tally()
    channels = [f"{level_tag}-{g}" for g in range((sessions + GROUP - 1) // GROUP)]
    queue = f"{level_tag}-q"
    starts: dict[str, str] = {}
    written: dict[str, list[str]] = {c: [] for c in channels}
    if store is not None:
        for channel in channels:  # a starting message: every reader's first cursor
            starts[channel] = str((await store.append_message(_message(channel, "start"), "peer", None))["id"])
    readers = [Reader(channels[i // GROUP], starts.get(channels[i // GROUP], "")) for i in range(sessions)]
    async with AsyncExitStack() as stack:
        clients = [await stack.enter_async_context(Client(streamable_http_client(targets[i % len(targets)][0]))) for i in range(sessions)]
        stop = anyio.Event()

        async def cycle(i: int, n: int) -> None:
            tag = f"{level_tag} s{i} #{n}"
            if kind == "agentdeck":
                await _deck_cycle(clients[i], tally, readers[i], queue, run_id, tag)
            else:
                await _echo_cycle(clients[i], tally, tag)

        async def session(i: int, deadline: float) -> None:
            n = 0
            while time.perf_counter() < deadline:
                n += 1
                await cycle(i, n)

        async with anyio.create_task_group() as warm:  # one cycle each, not timed
            for i in range(sessions):
                warm.start_soon(cycle, i, 0)
        tally.latencies.clear()
        async with anyio.create_task_group() as tg:
            if store is not None:
                tg.start_soon(_peer, store, channels, stop, written)
            cpu0, t0 = sum(_cpu_seconds(pid) for _, pid in targets), time.perf_counter()
            async with anyio.create_task_group() as load:
                for i in range(sessions):
                    load.start_soon(session, i, t0 + seconds)
            elapsed, cpu = time.perf_counter() - t0, sum(_cpu_seconds(pid) for _, pid in targets) - cpu0
            stop.set()
        result = Level(len(tally.latencies), elapsed, cpu, tally.latencies, tally.errors, tally.first_error)
        if store is not None:
            for i, reader in enumerate(readers):  # drain what arrived after the last cycle
                while reader.take(await tally.call(clients[i], "receive_channel_messages", {"channel": reader.channel, "after": reader.cursor, "limit": 100})):
                    pass
    if store is not None:
        result.errors = tally.errors
        result.first_error = tally.first_error
        for reader in readers:
            expected = set(written[reader.channel])
            result.lost += len(expected - set(reader.seen))
            result.repeated += len(reader.seen) - len(set(reader.seen))
        stored: list[str] = []
        for channel in channels:
            stored += await _stored(store, channel, starts[channel])
        counts = Counter(stored)
        result.lost += sum(1 for m in tally.sent if m not in counts)
        result.repeated += sum(n - 1 for n in counts.values() if n > 1)
        result.twice = len(tally.completed) - len(set(tally.completed))
    return result


def _rows(sessions: int, deck: Level, b1: Level) -> list[Row]:
    def per_call_ms(level: Level) -> float:
        return level.cpu / level.calls * 1000 if level.calls else float("nan")

    def fig(value: float, unit: str) -> Figure:
        return Figure(value, value, value, unit)

    key = f"23.2 mixed x{sessions}"
    faults = deck.errors + deck.lost + deck.repeated + deck.twice + b1.errors
    checks = f"errors {deck.errors} (B1 {b1.errors}), messages lost {deck.lost}, repeated {deck.repeated}, tasks completed twice {deck.twice}"
    if deck.first_error or b1.first_error:
        checks += f"; first error: {deck.first_error or b1.first_error}"
    return [
        Row(key + " calls/s", f"{sessions} HTTP sessions, mixed workload, calls per second", fig(deck.calls / deck.seconds, "calls/s"), fig(b1.calls / b1.seconds, "calls/s"), "B1", ">=", 0.9, note=f"{deck.calls} calls in {deck.seconds:.1f} s; B1 {b1.calls} in {b1.seconds:.1f} s"),
        Row(key + " p50", f"{sessions} HTTP sessions, p50 of every call", fig(percentile(deck.latencies, 50) * 1000, "ms"), fig(percentile(b1.latencies, 50) * 1000, "ms"), "B1", "<=", 1.2),
        Row(key + " p99", f"{sessions} HTTP sessions, p99 of every call", fig(percentile(deck.latencies, 99) * 1000, "ms"), fig(percentile(b1.latencies, 99) * 1000, "ms"), "B1", "<=", 1.5),
        Row(key + " cpu", f"{sessions} HTTP sessions, server CPU per call", fig(per_call_ms(deck), "ms"), fig(per_call_ms(b1), "ms"), "B1", "<=", 1.3, note=f"server process utime+stime over the window: {deck.cpu:.2f} s; B1 {b1.cpu:.2f} s"),
        Row(key + " checks", f"{sessions} HTTP sessions: errors + messages lost or repeated + tasks completed twice", fig(faults, "faults"), None, "", passed=faults == 0, note=checks),
    ]


async def run(settings: Settings) -> list[Row]:
    levels = (10, 50, 100) if not settings.quick else (10, 100)
    seconds = float(os.environ.get("BENCH_MIXED_SECONDS") or settings.pick(4, 2))
    home = settings.dir("mixed")
    log = settings.log("mixed")
    run_id = seed_run(home / "data")
    deck, b1 = agentdeck(home, log), baseline(log)
    store = open_store(None, home / "data")
    rows: list[Row] = []
    try:
        with http_process(deck) as deck_target, http_process(b1) as b1_target:
            for n, sessions in enumerate(levels):
                results: dict[str, Level] = {}
                for kind in ("agentdeck", "B1") if n % 2 == 0 else ("B1", "agentdeck"):
                    if kind == "agentdeck":
                        results[kind] = await _level(kind, [deck_target], sessions, seconds, store, run_id, f"mix{sessions}")
                    else:
                        results[kind] = await _level(kind, [b1_target], sessions, seconds, None, run_id, f"mix{sessions}")
                d, b = results["agentdeck"], results["B1"]
                settings.say(f"mixed x{sessions}: agentdeck {d.calls} calls, cpu {d.cpu:.2f} s, errors {d.errors}, lost {d.lost}, repeated {d.repeated}, twice {d.twice}; B1 {b.calls} calls, cpu {b.cpu:.2f} s, errors {b.errors}")
                rows += _rows(sessions, d, b)
    finally:
        await store.close()
    if settings.postgres:
        try:
            rows += await _replicas(settings, settings.pick(50, 20), seconds)
        except Exception as exc:  # the SQLite rows above still count
            settings.fail("mixed replicas", exc)
    return rows


async def _replicas(settings: Settings, sessions: int, seconds: float) -> list[Row]:
    """The same workload on two stateless replicas sharing one PostgreSQL store, beside one replica."""
    assert settings.postgres is not None
    log = settings.log("mixed-replicas")
    results: dict[int, Level] = {}
    with fresh_schema(settings.postgres, warn=settings.say) as url:
        store = open_store(url, settings.dir("mixed-replicas"))
        try:
            run = run_row(f"run_{os.urandom(8).hex()}", time.time())
            await store.create_run(run, "bench", None)
            servers: list[Server] = []
            for i in range(2):
                server = agentdeck(settings.dir(f"mixed-replica-{i}"), log, AGENTDECK_STORE=url)
                server.argv = [*server.argv, "--stateless"]
                servers.append(server)
            with http_process(servers[0]) as first, http_process(servers[1]) as second:
                for count, targets in ((1, [first]), (2, [first, second])):
                    results[count] = await _level("agentdeck", targets, sessions, seconds, store, run["id"], f"pg{count}x{sessions}")
        finally:
            await store.close()
    one, two = results[1], results[2]
    settings.say(f"mixed replicas x{sessions}: one {one.calls} calls, two {two.calls} calls; errors {one.errors}/{two.errors}, lost {one.lost}/{two.lost}, repeated {one.repeated}/{two.repeated}, twice {one.twice}/{two.twice}")
    faults = [lvl.errors + lvl.lost + lvl.repeated + lvl.twice for lvl in (one, two)]

    def rate(level: Level) -> Figure:
        value = level.calls / level.seconds
        return Figure(value, value, value, "calls/s")

    return [
        Row(
            f"23.2 replicas x{sessions}",
            f"{sessions} sessions on 2 stateless replicas, one PostgreSQL: errors + lost + repeated + completed twice",
            Figure(faults[1], faults[1], faults[1], "faults"),
            None,
            "",
            passed=sum(faults) == 0,
            note=f"two replicas {rate(two).text()} beside one replica {rate(one).text()}; one replica's faults {faults[0]}" + (f"; first error: {two.first_error or one.first_error}" if two.first_error or one.first_error else ""),
        )
    ]
