"""SIGKILL agentdeck processes in the middle of claims, sends and spawns; restart; nothing is
lost or done twice.

Each worker is an `agentdeck serve` process driven over stdio. A killer picks one mid-flight
and SIGKILLs it; the worker's client starts a fresh process and carries on, as a client
restarting its server would.
"""

from __future__ import annotations

import os
import random
import signal
import time
from collections import Counter
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client

from agentdeck.backends.local.store import Store
from tests.helpers import call, config_for, local_client, server_env, stdio_params, store_rows, write_config

pytestmark = [pytest.mark.skipif(not Path("/proc").exists(), reason="finds server processes through /proc"), pytest.mark.usefixtures("store_url")]


def _server_pid(identity: str) -> int | None:
    marker = f"AGENTDECK_IDENTITY={identity}".encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().split(b"\0")
            if b"serve" in cmdline and marker in (entry / "environ").read_bytes().split(b"\0"):
                return int(entry.name)
        except OSError:
            continue
    return None


class Worker:
    """One identity whose server process may be killed under it; it reconnects and goes on."""

    def __init__(self, directory: Path, identity: str) -> None:
        self.directory, self.identity, self.restarts = directory, identity, 0

    async def session(self, job: Any) -> None:
        while True:
            try:
                async with Client(stdio_params(server_env(self.directory, self.identity)), read_timeout_seconds=30) as client:
                    await job(client)
                    return
            except Exception:  # the server died mid-call: start a new one, like a client would
                self.restarts += 1
                if self.restarts > 20:
                    raise


async def _kill_now_and_then(identities: list[str], times: int, stop: anyio.Event) -> int:
    kills = 0
    rng = random.Random(7)
    while kills < times and not stop.is_set():
        await anyio.sleep(rng.uniform(0.2, 0.6))
        pid = _server_pid(rng.choice(identities))
        if pid:
            os.kill(pid, signal.SIGKILL)
            kills += 1
    return kills


async def test_killed_claimers_neither_lose_nor_double_complete_tasks(tmp_path: Path) -> None:
    write_config(tmp_path)
    async with local_client(config_for(tmp_path, "planner")) as planner:
        for i in range(60):
            await call(planner, "create_task", {"title": f"t{i}", "queue": "crash"})
    acknowledged: list[str] = []

    def remaining() -> int:
        return int(store_rows(tmp_path, "SELECT COUNT(*) FROM tasks WHERE state != 'completed'")[0][0])

    async def claim_loop(client: Client) -> None:
        while remaining():
            lease = (await call(client, "claim_task", {"queue": "crash", "lease_seconds": 5}))["lease"]
            if lease is None:
                await anyio.sleep(0.2)  # what is left is held by a killed worker until its lease expires
                continue
            await anyio.sleep(0.01)  # some work, so kills land between claim and completion too
            await call(client, "complete_task", {"run_id": lease["run_id"], "claim_token": lease["claim_token"]})
            acknowledged.append(lease["task"]["id"])

    workers = [Worker(tmp_path, f"claimer-{i}") for i in range(3)]
    stop = anyio.Event()
    with anyio.fail_after(120):
        async with anyio.create_task_group() as tg:
            tg.start_soon(_kill_now_and_then, [w.identity for w in workers], 4, stop)
            async with anyio.create_task_group() as inner:
                for worker in workers:
                    inner.start_soon(worker.session, claim_loop)
            stop.set()
    assert sum(w.restarts for w in workers) >= 1
    assert len(acknowledged) == len(set(acknowledged))
    assert store_rows(tmp_path, "SELECT state, COUNT(*) FROM tasks GROUP BY state") == [("completed", 60)]
    done = Counter(row[0] for row in store_rows(tmp_path, "SELECT task_id FROM task_attempts WHERE outcome = 'completed'"))
    assert len(done) == 60 and set(done.values()) == {1}


async def test_killed_senders_and_readers_lose_and_repeat_no_message(tmp_path: Path) -> None:
    write_config(tmp_path)
    total = 80
    received: list[str] = []
    sent_up_to = 0

    async def send_all(client: Client) -> None:
        nonlocal sent_up_to
        while sent_up_to < total:  # resend the one that may have landed: its key makes it a no-op
            await call(client, "send_channel_message", {"channel": "crash", "body": f"m{sent_up_to}", "idempotency_key": f"m{sent_up_to}"})
            sent_up_to += 1
            await anyio.sleep(0.01)

    last_id: list[str | None] = [None]

    async def read_all(client: Client) -> None:
        while len(received) < total:
            args: dict[str, Any] = {"channel": "crash", "wait_seconds": 1, "limit": 7}
            if last_id[0] is not None:
                args["after"] = last_id[0]
            batch = await call(client, "receive_channel_messages", args)
            for message in batch["messages"]:
                received.append(message["body"])
                last_id[0] = message["id"]

    sender, reader = Worker(tmp_path, "sender"), Worker(tmp_path, "reader")
    stop = anyio.Event()
    with anyio.fail_after(120):
        async with anyio.create_task_group() as tg:
            tg.start_soon(_kill_now_and_then, ["sender", "reader"], 4, stop)
            async with anyio.create_task_group() as inner:
                inner.start_soon(sender.session, send_all)
                inner.start_soon(reader.session, read_all)
            stop.set()
    assert sender.restarts + reader.restarts >= 1
    assert received == [f"m{i}" for i in range(total)]


async def test_killed_spawners_leave_one_run_per_key_and_every_run_finishes(tmp_path: Path) -> None:
    write_config(tmp_path)
    started: dict[int, str] = {}

    async def spawn_all(client: Client) -> None:
        for i in range(8):
            if i not in started:
                run = await call(client, "spawn_agent", {"agent": "echo", "prompt": f"run {i}", "idempotency_key": f"spawn-{i}"})
                started[i] = run["id"]
                await anyio.sleep(0.1)

    spawner = Worker(tmp_path, "spawner")
    stop = anyio.Event()
    with anyio.fail_after(120):
        async with anyio.create_task_group() as tg:
            tg.start_soon(_kill_now_and_then, ["spawner"], 2, stop)
            await spawner.session(spawn_all)
            stop.set()
    async with local_client(config_for(tmp_path, "checker")) as client:
        runs = (await call(client, "list_runs", {"limit": 100}))["runs"]
        assert len(runs) == 8 and {r["id"] for r in runs} == set(started.values())
        for run in runs:
            assert (await call(client, "wait_for_run", {"run_id": run["id"]}))["state"] == "succeeded"


async def test_a_run_recorded_but_never_started_is_failed_not_left_queued(tmp_path: Path, store: Store) -> None:
    config = config_for(tmp_path)
    await store.create_run(
        {"id": "run_orphan", "agent": "echo", "prompt": "x", "name": None, "created_at": time.time() - 600, "parent_run_id": None, "depth": 0,
         "thread_id": "run_orphan", "followup_of": None, "routine": None, "created_by": "gone", "workspace": None, "ttl_seconds": 60, "metadata": None},
        "test",
        None,
    )
    async with local_client(config) as client:
        run = await call(client, "get_run", {"run_id": "run_orphan"})
    assert run["state"] == "failed" and run["error"]["code"] == "never_started"
