"""Several agentdeck processes on one data dir: every task is completed exactly once."""

from __future__ import annotations

import contextlib
import sqlite3
from collections import Counter
from pathlib import Path

import anyio
from mcp import Client

from tests.helpers import call, server_env, stdio_params, write_config

WORKERS = 4
TASKS = 200


async def test_four_processes_claiming_one_queue_complete_each_task_exactly_once(tmp_path: Path) -> None:
    write_config(tmp_path)
    completed: list[str] = []
    async with contextlib.AsyncExitStack() as stack:
        clients = [await stack.enter_async_context(Client(stdio_params(server_env(tmp_path, f"worker-{i}")))) for i in range(WORKERS)]
        for i in range(TASKS):
            await call(clients[0], "create_task", {"title": f"task {i}", "queue": "load"})
        ready = anyio.Event()
        arrived = 0

        async def work(client: Client) -> None:
            nonlocal arrived
            arrived += 1
            if arrived == WORKERS:
                ready.set()
            await ready.wait()  # a barrier: all claimers start together
            while True:
                lease = (await call(client, "claim_task", {"queue": "load"}))["lease"]
                if lease is None:
                    return
                await call(client, "complete_task", {"run_id": lease["run_id"], "claim_token": lease["claim_token"]})
                completed.append(lease["task"]["id"])

        with anyio.fail_after(120):
            async with anyio.create_task_group() as tg:
                for client in clients:
                    tg.start_soon(work, client)

    counts = Counter(completed)
    assert len(counts) == TASKS and set(counts.values()) == {1}
    db = sqlite3.connect(tmp_path / "data" / "agentdeck.db")
    rows = db.execute("SELECT state, attempts, COUNT(*) FROM tasks GROUP BY state, attempts").fetchall()
    assert rows == [("completed", 1, TASKS)]
    holders = db.execute("SELECT COUNT(DISTINCT holder) FROM task_attempts").fetchone()[0]
    assert holders > 1  # the work really was shared between processes
