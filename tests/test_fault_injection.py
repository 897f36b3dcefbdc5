"""Fault injection: SIGKILL servers, supervisors and agents at random points of a mixed workload,
again and again, then check that nothing was lost, done twice, or left behind.

Six workers, each an `agentdeck serve` process driven over stdio, spawn and cancel runs, send
and receive messages, and create, claim and complete tasks. A killer picks a random victim
every few hundred milliseconds: a worker's server (its client starts a fresh one and carries
on, as a client restarting its server would), a run's supervisor, or a run's agent. After
a bounded time the kills stop, the work is drained, and the invariants are checked:

- every task created is completed, exactly once, and no completion was acknowledged twice;
- the reader, which passes `after`, received every message sent, once each, in order;
- every run ends (none is left running or queued without a live supervisor), one per spawn key;
- no process of an ended run is alive.
"""

from __future__ import annotations

import os
import random
import signal
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client

from agentdeck.backends.local.guard import run_processes
from tests.helpers import agents_toml, call, config_for, local_client, server_env, stdio_params, store_rows, write_config

pytestmark = [pytest.mark.skipif(not Path("/proc").is_dir(), reason="finds processes through /proc"), pytest.mark.usefixtures("store_url")]

WORKLOAD_SECONDS = 10.0  # of kills; the work then goes on, unharmed, to a minimum amount
_NAPPER = (
    "import random, subprocess, sys, time; "
    "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)', 'agentdeck-fault-grandchild']); "
    "print('napping', flush=True); time.sleep(random.uniform(0.5, 3))"
)


def _toml() -> str:
    python = sys.executable.replace("\\", "\\\\")
    return agents_toml().replace("cancel_grace_seconds = 1.0", "cancel_grace_seconds = 1.0\nsupervisor_timeout_seconds = 3") + (
        f'\n[backends.local.agents.napper]\ncommand = ["{python}", "-c", "{_NAPPER}"]\n'
    )


def _processes(data_dir: Path) -> list[tuple[int, list[bytes], list[bytes]]]:
    """(pid, argv, environ) of every process working on this test's data dir."""
    marker = f"AGENTDECK_DATA_DIR={data_dir}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environ = (entry / "environ").read_bytes().split(b"\0")
            if marker in environ:
                found.append((int(entry.name), (entry / "cmdline").read_bytes().split(b"\0"), environ))
        except OSError:
            continue
    return found


def _victims(data_dir: Path, kind: str) -> list[int]:
    out = []
    for pid, argv, environ in _processes(data_dir):
        supervisor = b"agentdeck.backends.local.supervisor" in argv
        agent = not supervisor and any(v.startswith(b"AGENTDECK_RUN_ID=") for v in environ)
        if (kind == "server" and b"serve" in argv) or (kind == "supervisor" and supervisor) or (kind == "agent" and agent):
            out.append(pid)
    return out


class Worker:
    """One identity whose server may be killed under it; it reconnects and goes on with its job."""

    def __init__(self, directory: Path, identity: str, finished: set[str]) -> None:
        self.directory, self.identity, self.restarts, self.finished = directory, identity, 0, finished

    async def run(self, job: Callable[[Client], Awaitable[None]]) -> None:
        while True:
            try:
                async with Client(stdio_params(server_env(self.directory, self.identity)), read_timeout_seconds=30) as client:
                    await job(client)
                    self.finished.add(self.identity)
                    return
            except Exception as exc:  # its server died mid-call: start a new one, like a client would
                if isinstance(exc, AssertionError) or (isinstance(exc, ExceptionGroup) and exc.subgroup(AssertionError)):
                    raise  # a wrong answer, not a killed server
                self.restarts += 1
                assert self.restarts < 100, f"{self.identity} could not get its work done"


async def test_random_kills_under_a_mixed_workload_lose_repeat_and_leave_nothing(tmp_path: Path) -> None:
    write_config(tmp_path, _toml())
    data_dir = tmp_path / "data"
    rng = random.Random(1919)
    stop = anyio.Event()  # the kills and the workload's new work stop together
    spawned: dict[str, str] = {}  # acknowledged spawns
    attempted: set[str] = set()  # spawn keys sent, maybe cut off by a kill and never retried
    cancels: list[str] = []
    sent: list[str] = []
    received: list[str] = []
    after: list[str | None] = [None]
    created: list[str] = []
    completed: list[str] = []
    finished: set[str] = set()  # jobs whose work is done

    async def spawner(client: Client) -> None:
        while not stop.is_set() or len(spawned) < 6:
            key = f"spawn-{len(spawned)}"
            attempted.add(key)
            spawned[key] = (await call(client, "spawn_agent", {"agent": "napper", "prompt": key, "name": key, "idempotency_key": key}))["id"]
            if len(spawned) % 3 == 0:
                victim = rng.choice(sorted(spawned.values()))
                result = await client.call_tool("cancel_run", {"run_id": victim})  # may have ended already: conflict
                assert not result.is_error or (result.structured_content or {}).get("code") == "conflict", result.content
                cancels.append(victim)
            await anyio.sleep(0.3)

    async def sender(client: Client) -> None:
        while not stop.is_set() or len(sent) < 20:
            body = f"m{len(sent)}"  # resent after a kill: its key makes a landed one a no-op
            await call(client, "send_channel_message", {"channel": "faults", "body": body, "idempotency_key": body})
            sent.append(body)
            await anyio.sleep(0.02)

    async def reader(client: Client) -> None:
        while "sender" not in finished or len(received) < len(sent):
            args: dict[str, Any] = {"channel": "faults", "wait_seconds": 1, "limit": 7}
            if after[0] is not None:
                args["after"] = after[0]
            for message in (await call(client, "receive_channel_messages", args))["messages"]:
                received.append(message["body"])
                after[0] = message["id"]

    async def planner(client: Client) -> None:
        while not stop.is_set() or len(created) < 20:
            key = f"task-{len(created)}"
            await call(client, "create_task", {"title": key, "queue": "faults", "idempotency_key": key})
            created.append(key)
            await anyio.sleep(0.05)

    def open_tasks() -> int:
        return int(store_rows(tmp_path, "SELECT COUNT(*) FROM tasks WHERE state != 'completed'")[0][0])

    async def claimer(client: Client) -> None:
        while "planner" not in finished or open_tasks():
            lease = (await call(client, "claim_task", {"queue": "faults", "lease_seconds": 5}))["lease"]
            if lease is None:
                await anyio.sleep(0.2)  # what is left is held by a killed claimer until its lease expires
                continue
            result = await client.call_tool("complete_task", {"run_id": lease["run_id"], "claim_token": lease["claim_token"]})
            if not result.is_error:
                completed.append(lease["task"]["id"])
            else:  # a lease that ran out on this loaded machine: the task went back to the queue
                assert (result.structured_content or {}).get("code") == "lease_lost", result.content

    kills: Counter[str] = Counter()

    async def killer() -> None:
        while not (spawned and sent and created and completed and received):
            await anyio.sleep(0.1)  # every kind of work is under way
        deadline = time.monotonic() + WORKLOAD_SECONDS
        last_server_kill = time.monotonic()
        while time.monotonic() < deadline:
            await anyio.sleep(rng.uniform(0.2, 0.5))
            # the kind killed least so far that has a process right now, so each kind gets its
            # turns; servers at most every 1.5 s, or restarting ones would leave no work to hit
            kinds = ["supervisor", "agent"] + (["server"] if time.monotonic() - last_server_kill > 1.5 else [])
            for kind in sorted(rng.sample(kinds, len(kinds)), key=lambda k: kills[k]):
                if victims := _victims(data_dir, kind):
                    last_server_kill = time.monotonic() if kind == "server" else last_server_kill
                    try:
                        os.kill(rng.choice(victims), signal.SIGKILL)
                        kills[kind] += 1
                    except ProcessLookupError:
                        pass
                    break
        stop.set()

    jobs = {"spawner": spawner, "sender": sender, "reader": reader, "planner": planner, "claimer-1": claimer, "claimer-2": claimer}
    workers = [Worker(tmp_path, name, finished) for name in jobs]
    with anyio.fail_after(WORKLOAD_SECONDS + 60):
        async with anyio.create_task_group() as tg:
            tg.start_soon(killer)
            for worker, job in zip(workers, jobs.values(), strict=True):
                tg.start_soon(worker.run, job)
    assert min(kills[k] for k in ("server", "supervisor", "agent")) >= 1, kills
    assert sum(w.restarts for w in workers) >= 1

    # Tasks: all completed, each exactly once.
    assert len(completed) == len(set(completed))
    assert store_rows(tmp_path, "SELECT COUNT(*), COUNT(DISTINCT title) FROM tasks") == [(len(created), len(created))]
    assert open_tasks() == 0
    done = Counter(row[0] for row in store_rows(tmp_path, "SELECT task_id FROM task_attempts WHERE outcome = 'completed'"))
    assert len(done) == len(created) and set(done.values()) == {1}
    assert store_rows(tmp_path, "SELECT COUNT(*) FROM task_attempts WHERE ended_at IS NULL") == [(0,)]

    # Messages: every one, once, in order.
    assert received == sent

    # Runs: one per key; every one ends, and nothing of an ended run is left running.
    async with local_client(config_for(tmp_path, "checker")) as client:
        with anyio.fail_after(60):
            while True:
                runs = (await call(client, "list_runs", {"limit": 100}))["runs"]  # reading them reaps the lost ones
                if all(r["state"] in ("succeeded", "failed", "cancelled") for r in runs):
                    break
                await anyio.sleep(0.5)
    names = Counter(r["name"] for r in runs)
    assert len(runs) < 100 and set(names) <= attempted and set(names.values()) == {1}  # one run per key
    assert set(spawned.values()) <= {r["id"] for r in runs}
    with anyio.fail_after(10):
        while left := [r["id"] for r in runs if run_processes(r["id"])]:
            await anyio.sleep(0.1)
    assert not left
    assert all(r["error"]["code"] in ("supervisor_lost", "never_started", "exit_code") for r in runs if r["state"] == "failed"), runs
