"""The load of bench/mixed.py: N client sessions against one or more servers, timed in slices.

A `Load` opens its sessions once (one Streamable HTTP connection each, spread over the
targets), runs one untimed cycle per session, then any number of timed slices; `finish`
drains what is left to read and counts what went wrong. With a `store` (agentdeck's) each
session cycles over send, receive with an `after` cursor, create, claim, complete (when the
claim got a task) and get_run; without one (B1) it makes six echo calls per cycle.

The server has one identity and a reader never receives its own messages, so during an
agentdeck slice a peer (this process, writing through the product's Store as identity "peer",
like a second agentdeck process on the same data dir) posts to every channel. `count_faults`
then checks that each reader got every peer message of its channel exactly once and nothing
else, that every send is stored exactly once (read back as a third identity), and that no task
was completed twice.
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

from agentdeck.backends.local.store import Store

__all__ = ["Faults", "Load", "Reader", "Slice", "count_faults"]

GROUP = 5  # sessions reading and writing one channel
PEER_INTERVAL = 0.02  # seconds between the peer's messages, round robin over the channels


@dataclass
class Slice:
    """One timed slice: calls answered, wall seconds, server CPU seconds, and every latency."""

    calls: int
    seconds: float
    cpu: float
    latencies: list[float]


@dataclass
class Faults:
    errors: int = 0
    lost: int = 0
    repeated: int = 0
    unexpected: int = 0
    twice: int = 0
    first_error: str = ""

    @property
    def total(self) -> int:
        return self.errors + self.lost + self.repeated + self.unexpected + self.twice

    def text(self) -> str:
        return f"errors {self.errors}, messages lost {self.lost}, repeated {self.repeated}, unexpected {self.unexpected}, tasks completed twice {self.twice}"


@dataclass
class Reader:
    channel: str
    cursor: str
    seen: list[str] = field(default_factory=list)

    def take(self, batch: dict[str, Any] | None) -> int:
        messages = (batch or {}).get("messages", [])
        self.seen += [str(m["id"]) for m in messages]
        if messages:
            self.cursor = messages[-1]["id"]
        return len(messages)


@dataclass
class _Tally:
    latencies: list[float] = field(default_factory=list)
    errors: int = 0
    first_error: str = ""
    sent: list[tuple[str, str]] = field(default_factory=list)
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


def _cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _message(channel: str, body: str) -> dict[str, Any]:
    return {"channel": channel, "sender": "peer", "body": body, "kind": "message", "correlation_id": None, "reply_to": None, "sent_at": time.time()}


class Load:
    """`sessions` sessions on `targets` ((URL, pid) each); `store` is agentdeck's, None for B1."""

    def __init__(self, targets: list[tuple[str, int]], sessions: int, tag: str, store: Store | None, run_id: str) -> None:
        self.targets, self.sessions, self.tag, self.store, self.run_id = targets, sessions, tag, store, run_id
        self.channels = [f"{tag}-{g}" for g in range((sessions + GROUP - 1) // GROUP)]
        self.queue = f"{tag}-q"
        self.starts: dict[str, str] = {}
        self.written: dict[str, list[str]] = {c: [] for c in self.channels}
        self.readers: list[Reader] = []
        self.clients: list[Client] = []
        self.tally = _Tally()
        self._cycles = [0] * sessions
        self._peer_sent = 0

    async def open(self, stack: AsyncExitStack) -> None:
        if self.store is not None:
            for channel in self.channels:  # a starting message: every reader's first cursor
                self.starts[channel] = str((await self.store.append_message(_message(channel, "start"), "peer", None))["id"])
        self.readers = [Reader(self.channels[i // GROUP], self.starts.get(self.channels[i // GROUP], "")) for i in range(self.sessions)]
        for i in range(self.sessions):
            self.clients.append(await stack.enter_async_context(Client(streamable_http_client(self.targets[i % len(self.targets)][0]))))
        async with anyio.create_task_group() as warm:  # one cycle each, not timed
            for i in range(self.sessions):
                warm.start_soon(self._cycle, i)

    async def _cycle(self, i: int) -> None:
        self._cycles[i] += 1
        tag, client, tally = f"{self.tag} s{i} #{self._cycles[i]}", self.clients[i], self.tally
        if self.store is None:
            for _ in range(6):
                await tally.call(client, "echo", {"text": tag})
            return
        reader = self.readers[i]
        sent = await tally.call(client, "send_channel_message", {"channel": reader.channel, "body": tag})
        if sent:
            tally.sent.append((str(sent["id"]), tag))
        reader.take(await tally.call(client, "receive_channel_messages", {"channel": reader.channel, "after": reader.cursor, "limit": 100}))
        await tally.call(client, "create_task", {"queue": self.queue, "title": tag})
        lease = ((await tally.call(client, "claim_task", {"queue": self.queue})) or {}).get("lease")
        if lease:
            done = await tally.call(client, "complete_task", {"run_id": lease["run_id"], "claim_token": lease["claim_token"], "result": "ok"})
            if done:
                tally.completed.append(lease["task"]["id"])
        await tally.call(client, "get_run", {"run_id": self.run_id})

    async def _peer(self, stop: anyio.Event) -> None:
        assert self.store is not None
        while not stop.is_set():
            channel = self.channels[self._peer_sent % len(self.channels)]
            row = await self.store.append_message(_message(channel, f"{self.tag} peer {self._peer_sent}"), "peer", None)
            self.written[channel].append(str(row["id"]))
            self._peer_sent += 1
            with anyio.move_on_after(PEER_INTERVAL):
                await stop.wait()

    async def slice(self, seconds: float) -> Slice:
        """Every session cycles until `seconds` have passed (a cycle under way finishes)."""
        self.tally.latencies = []
        stop = anyio.Event()

        async def session(i: int, deadline: float) -> None:
            while time.perf_counter() < deadline:
                await self._cycle(i)

        async with anyio.create_task_group() as tg:
            if self.store is not None:
                tg.start_soon(self._peer, stop)
            cpu0, t0 = sum(_cpu_seconds(pid) for _, pid in self.targets), time.perf_counter()
            async with anyio.create_task_group() as load:
                for i in range(self.sessions):
                    load.start_soon(session, i, t0 + seconds)
            elapsed, cpu = time.perf_counter() - t0, sum(_cpu_seconds(pid) for _, pid in self.targets) - cpu0
            stop.set()
        return Slice(len(self.tally.latencies), elapsed, cpu, self.tally.latencies)

    async def finish(self) -> Faults:
        """Drain what each reader has left to read, then count what went wrong (see count_faults)."""
        tally = self.tally
        if self.store is None:
            return Faults(errors=tally.errors, first_error=tally.first_error)
        for i, reader in enumerate(self.readers):
            while reader.take(await tally.call(self.clients[i], "receive_channel_messages", {"channel": reader.channel, "after": reader.cursor, "limit": 100})):
                pass
        stored: list[dict[str, Any]] = []
        for channel in self.channels:
            stored += await _stored(self.store, channel, self.starts[channel])
        tasks = {task_id: await self.store.get_task(task_id) for task_id in set(tally.completed)}
        faults = count_faults(self.readers, self.written, tally.sent, stored, tally.completed, tasks)
        faults.errors, faults.first_error = tally.errors, tally.first_error
        return faults


async def _stored(store: Store, channel: str, after: str) -> list[dict[str, Any]]:
    """Every message on `channel` after `after`, read as an identity nobody else uses."""
    rows: list[dict[str, Any]] = []
    cursor: int | None = int(after)
    while True:
        batch, more = await store.read_messages(channel, "auditor", 100, cursor)
        rows += batch
        cursor = None  # the auditor's cursor now stands past the batch
        if not more:
            return rows


def count_faults(
    readers: list[Reader],
    written: dict[str, list[str]],
    sent: list[tuple[str, str]],
    stored: list[dict[str, Any]],
    completed: list[str],
    tasks: dict[str, dict[str, Any] | None],
) -> Faults:
    """What the sessions got wrong, from what they saw and what the store holds.

    `written`: the peer's message ids per channel; each reader of a channel must have received
    every one exactly once, and nothing else (its own identity's messages never). `sent`: (id,
    body) of every send a session saw succeed; each must be stored, and no body stored twice.
    `completed`: task ids whose complete_task succeeded; none twice, and each completed after
    exactly one attempt in the store (`tasks`, by id).
    """
    faults = Faults()
    for reader in readers:
        expected = set(written[reader.channel])
        faults.lost += len(expected - set(reader.seen))
        faults.repeated += len(reader.seen) - len(set(reader.seen))
        faults.unexpected += len(set(reader.seen) - expected)
    ids = {str(m["id"]) for m in stored}
    bodies = Counter(str(m["body"]) for m in stored)
    faults.lost += sum(1 for message_id, _ in sent if message_id not in ids)
    faults.repeated += sum(n - 1 for n in bodies.values() if n > 1)
    faults.twice = len(completed) - len(set(completed))
    faults.twice += sum(1 for task in tasks.values() if task is None or task["state"] != "completed" or task["attempts"] != 1)
    return faults
