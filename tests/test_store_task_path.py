"""The stores' claim and settle paths when a settle is refused half-way through its transaction.

PostgreSQL sends a claim's and a settle's statements in pipeline mode (BEGIN and COMMIT travel
with them); a settle refused after BEGIN, by the lease rules or by the database, must end its
transaction itself, so the row lock goes and the pooled connection comes back clean.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import anyio
import pytest

from agentdeck.backends.local.store import WrongToken, new_id, open_store
from agentdeck.errors import InvalidArgument


def _task(title: str) -> dict[str, object]:
    return {"id": new_id("task"), "queue": "q", "title": title, "payload": None, "priority": 0, "max_attempts": 3, "created_at": time.time()}


async def test_postgres_refused_settles_roll_back_and_the_claim_still_holds(postgres_url: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    store = open_store(postgres_url, Path("/nonexistent"))
    other = open_store(postgres_url, Path("/nonexistent"))  # a second process's pool, to see the row lock
    try:
        await store.create_task(_task("t"), "test", None)
        claim = await store.claim_next("q", "w", 60, time.time())
        assert claim is not None
        run_id, token = claim["lease_run_id"], claim["claim_token"]
        with pytest.raises(WrongToken):  # refused by the lease rules, after the row was locked
            await store.settle(run_id, "not-the-token", "completed", time.time(), holder="w")
        with pytest.raises(InvalidArgument):  # refused by the database: text cannot hold NUL
            await store.settle(run_id, token, "failed", time.time(), holder="w", error="a\0b")
        with anyio.fail_after(10):  # no transaction left open holding the task's row
            beat = await other.heartbeat(run_id, token, 60, time.time(), holder="w")
            done = await store.settle(run_id, token, "completed", time.time(), holder="w", result={"ok": True})
        assert beat["lease_run_id"] == run_id
        assert (done["state"], done["attempts"], done["error"]) == ("completed", 1, None)
    finally:
        await store.close()
        await other.close()
    assert "rolling back returned connection" not in caplog.text
