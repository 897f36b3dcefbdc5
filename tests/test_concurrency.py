"""Several agentdeck processes on one store: every task is completed exactly once.

On PostgreSQL each process connects separately, and claims skip the rows others hold.
"""

from __future__ import annotations

import contextlib
from collections import Counter
from pathlib import Path

import anyio
import pytest
from mcp import Client

from tests.helpers import call, server_env, stdio_params, store_rows, write_config

pytestmark = pytest.mark.usefixtures("store_url")

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
    rows = store_rows(tmp_path, "SELECT state, attempts, COUNT(*) FROM tasks GROUP BY state, attempts")
    assert rows == [("completed", 1, TASKS)]
    holders = store_rows(tmp_path, "SELECT COUNT(DISTINCT holder) FROM task_attempts")[0][0]
    assert holders > 1  # the work really was shared between processes
