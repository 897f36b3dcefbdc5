"""The dashboard's reads and audit trail on both stores: task listings with holders, message
search that takes LIKE's wildcards literally, keyset paging, and a person's override of a claim."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from agentdeck.errors import Conflict
from agentdeck.ui.audit import AuditTrail
from tests.helpers import call, config_for, local_client


async def test_audit_trail_is_durable_and_paged_newest_first(store_url: str | None, tmp_path: Path) -> None:
    from agentdeck.backends.local.store import open_store

    first = open_store(store_url, tmp_path / "data")
    await first.open()
    trail = AuditTrail(first)
    for n in range(5):
        await trail.record("human:alice", "post", "local", f"#general message {n}", f"body {n}", "ok")
    await first.close()

    reopened = open_store(store_url, tmp_path / "data")  # another process, later
    await reopened.open()
    try:
        trail = AuditTrail(reopened)
        newest = await trail.latest(limit=2)
        assert [e.target for e in newest] == ["#general message 4", "#general message 3"]
        assert newest[0].actor == "human:alice" and newest[0].outcome == "ok" and newest[0].at.tzinfo is not None
        older = await trail.latest(limit=10, before=newest[-1].id)
        assert [e.detail for e in older] == ["body 2", "body 1", "body 0"]
    finally:
        await reopened.close()


async def test_search_finds_bodies_and_takes_wildcards_literally(store_url: str | None, tmp_path: Path) -> None:
    config = config_for(tmp_path)
    async with local_client(config) as client:
        for body in ["deploy done", "100% sure", "1000 items", "DEPLOY again", "snake_case", "snakeXcase"]:
            await call(client, "send_channel_message", {"channel": "ops", "body": body})
        backend = next(iter((await _deck(config)).backends.values()))
        try:
            assert [m.body for m in await backend.search_messages("ops", "deploy")] == ["DEPLOY again", "deploy done"]
            assert [m.body for m in await backend.search_messages("ops", "100%")] == ["100% sure"]
            assert [m.body for m in await backend.search_messages("ops", "snake_")] == ["snake_case"]
            everything = await backend.search_messages("ops", "", limit=4)
            assert len(everything) == 4 and everything[0].body == "snakeXcase"
            rest = await backend.search_messages("ops", "", before=everything[-1].id)
            assert [m.body for m in rest] == ["100% sure", "deploy done"]
        finally:
            await backend.aclose()


async def test_tasks_show_holder_and_a_person_can_release_or_fail_a_claim(store_url: str | None, tmp_path: Path) -> None:
    config = config_for(tmp_path, identity="worker-1")
    async with local_client(config) as client:
        for title in ("one", "two", "three"):
            await call(client, "create_task", {"title": title, "queue": "builds"})
        held = await call(client, "claim_task", {"queue": "builds"})
        other = await call(client, "claim_task", {"queue": "builds"})
        backend = next(iter((await _deck(config)).backends.values()))
        try:
            assert (await backend.task_queues())["builds"] == {"queued": 1, "claimed": 2}
            views = {v.task.id: v for v in await backend.list_tasks("builds")}
            claimed = views[held["lease"]["task"]["id"]]
            assert claimed.holder == "worker-1" and claimed.lease_expires_at is not None and claimed.task.attempts == 1

            released = await backend.override_claim(claimed.task.id, "released", "stuck for an hour")
            assert released.state == "queued"
            with pytest.raises(Conflict):
                await backend.override_claim(claimed.task.id, "released", "again")
            failed = await backend.override_claim(other["lease"]["task"]["id"], "failed", "bad input")
            assert failed.state == "failed" and failed.error == "bad input"
        finally:
            await backend.aclose()
        # the fenced-out holder learns it lost the lease
        result = await client.call_tool("complete_task", {"run_id": held["lease"]["run_id"], "claim_token": held["lease"]["claim_token"]})
        assert result.is_error and result.structured_content["code"] == "lease_lost"


async def _deck(config):  # type: ignore[no-untyped-def]
    from agentdeck.backends import Deck

    deck = Deck.from_config(config)
    for backend in deck.backends.values():
        await backend.store.open()  # type: ignore[attr-defined]
    return deck


@pytest.mark.parametrize(("query", "bound"), [("tasks", "seq<?"), ("find_messages", "id<?"), ("audit", "id<?")])
def test_an_older_page_starts_its_index_walk_at_its_bound(tmp_path: Path, query: str, bound: str) -> None:
    """An older page of a long channel or queue costs what the first page costs: SQLite seeks to
    the bound instead of reading every newer row (issue 23: pages at 100,000 rows)."""
    import sqlite3

    from agentdeck.backends.local.store.overview_sql import SQLITE
    from agentdeck.backends.local.store.sqlite_db import SqliteDb

    SqliteDb(tmp_path / "agentdeck.db").close()  # the store's schema, migrated
    db = sqlite3.connect(tmp_path / "agentdeck.db")
    arguments = {"tasks": ("default", 60_000, 50), "find_messages": ("general", 60_000, "%", 50), "audit": (60_000, 50)}[query]
    plan = " ".join(row[3] for row in db.execute("EXPLAIN QUERY PLAN " + SQLITE[query], arguments))
    db.close()
    assert bound in plan, plan


def test_each_state_is_counted_and_each_task_found_through_an_index_of_that_state_alone(tmp_path: Path) -> None:
    """Task indexes hold only the rows of one state, so a claim and a settle write fewer index pages;
    the dashboard's counts and the claim path must still seek through them, never scan the queue."""
    import sqlite3

    from agentdeck.backends.local.store.overview_sql import SQLITE
    from agentdeck.backends.local.store.sqlite_db import SqliteDb
    from agentdeck.backends.local.store.sqlite_sql import Q

    SqliteDb(tmp_path / "agentdeck.db").close()
    db = sqlite3.connect(tmp_path / "agentdeck.db")

    def plan(sql: str, arguments: Any) -> str:
        return " ".join(row[3] for row in db.execute("EXPLAIN QUERY PLAN " + sql, arguments))

    counts = plan(SQLITE["queue_counts"], (1001,) * 4)
    for index in ("tasks_ready", "tasks_leases", "tasks_completed", "tasks_failed"):
        assert f"USING COVERING INDEX {index}" in counts, counts  # the index alone: no table rows read
    assert "tasks_ready" in plan(Q["next_ready"], ("default",))
    assert "tasks_leases" in plan(Q["expire"], {"queue": "default", "now": 0.0})
    assert "tasks_leases" in plan(Q["expire_attempts"], {"queue": "default", "now": 0.0})
    db.close()


async def test_queue_counts_are_exact_up_to_the_cap_and_stop_just_above_it(store: Any) -> None:
    """The tasks page shows 'over 1,000' for a bigger count: counting further would cost every
    view of a long-lived queue a walk over its whole history."""
    import time

    from agentdeck.backends.local.overview import COUNT_CAP
    from agentdeck.backends.local.store import new_id

    for queue, count in (("big", COUNT_CAP + 5), ("small", 3)):
        for n in range(count):
            task = {"id": new_id("task"), "queue": queue, "title": f"t{n}", "payload": None, "priority": 0, "max_attempts": 3, "created_at": time.time()}
            await store.create_task(task, "test", None)
    counts = {(row["queue"], state): row[state] for row in await store.overview("queue_counts", *[COUNT_CAP + 1] * 4) for state in ("queued", "claimed", "completed", "failed")}
    assert counts[("big", "queued")] == COUNT_CAP + 1  # shown as "over 1,000"
    assert counts[("small", "queued")] == 3 and counts[("small", "completed")] == 0
