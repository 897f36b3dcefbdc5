"""Task queues on the embedded platform: one winner per claim, leases, fencing, retries."""

from __future__ import annotations

from pathlib import Path

import pytest

from agentdeck.backends.local.store import ForeignClaim, LeaseError, Store, new_id
from tests.helpers import call, config_for, fail, local_client, store_rows

pytestmark = pytest.mark.usefixtures("store_url")


async def _add(store: Store, title: str, queue: str = "q", priority: int = 0, max_attempts: int = 3, now: float = 1000.0) -> str:
    task = {"id": new_id("task"), "queue": queue, "title": title, "payload": None, "priority": priority, "max_attempts": max_attempts, "created_at": now}
    return (await store.create_task(task, "test", None))["id"]


async def test_claims_follow_priority_then_age(store: Store) -> None:
    old_low = await _add(store, "old low", now=1.0)
    new_high = await _add(store, "new high", priority=5, now=2.0)
    new_low = await _add(store, "new low", now=3.0)
    order = [(await store.claim_next("q", "w", 60, 10.0))["id"] for _ in range(3)]  # type: ignore[index]
    assert order == [new_high, old_low, new_low]
    assert await store.claim_next("q", "w", 60, 10.0) is None


async def test_an_expired_lease_returns_the_task_to_the_queue_and_fences_out_the_old_holder(store: Store) -> None:
    task_id = await _add(store, "t")
    first = await store.claim_next("q", "slow", 30, 100.0)
    assert first is not None
    second = await store.claim_next("q", "fast", 30, 131.0)
    assert second is not None and second["id"] == task_id and second["attempts"] == 2
    for call_old in (
        lambda: store.heartbeat(first["lease_run_id"], first["claim_token"], 30, 132.0, holder="slow"),
        lambda: store.settle(first["lease_run_id"], first["claim_token"], "completed", 132.0, holder="slow"),
    ):
        try:
            await call_old()
        except LeaseError as exc:
            assert "claimed again" in exc.reason
        else:
            raise AssertionError("the stale holder was not refused")
    done = await store.settle(second["lease_run_id"], second["claim_token"], "completed", 133.0, holder="fast", result={"ok": True})
    assert done["state"] == "completed"


async def test_an_attempt_cut_short_by_lease_expiry_is_recorded_as_ended(store: Store, tmp_path: Path) -> None:
    await _add(store, "t")
    first = await store.claim_next("q", "slow", 30, 100.0)
    second = await store.claim_next("q", "fast", 30, 131.0)
    assert first is not None and second is not None
    await store.settle(second["lease_run_id"], second["claim_token"], "completed", 133.0, holder="fast")
    attempts = store_rows(tmp_path, "SELECT run_id, attempt, ended_at, outcome FROM task_attempts ORDER BY attempt")
    assert attempts == [(first["lease_run_id"], 1, 131.0, "expired"), (second["lease_run_id"], 2, 133.0, "completed")]


async def test_a_lease_that_expired_without_a_new_claim_is_refused_too(store: Store) -> None:
    await _add(store, "t")
    lease = await store.claim_next("q", "w", 30, 100.0)
    assert lease is not None
    try:
        await store.settle(lease["lease_run_id"], lease["claim_token"], "completed", 131.0, holder="w")
    except LeaseError as exc:
        assert "expired" in exc.reason
    else:
        raise AssertionError("an expired lease completed its task")


async def test_heartbeat_extends_the_lease_past_its_first_expiry(store: Store) -> None:
    await _add(store, "t")
    lease = await store.claim_next("q", "w", 30, 100.0)
    assert lease is not None
    extended = await store.heartbeat(lease["lease_run_id"], lease["claim_token"], 30, 125.0, holder="w")
    assert extended["lease_expires_at"] == 155.0
    assert await store.claim_next("q", "other", 30, 140.0) is None
    assert (await store.settle(lease["lease_run_id"], lease["claim_token"], "completed", 150.0, holder="w"))["state"] == "completed"


async def test_only_the_identity_that_claimed_a_task_settles_it_even_with_the_token(store: Store) -> None:
    task_id = await _add(store, "t")
    lease = await store.claim_next("q", "alice", 30, 100.0)
    assert lease is not None
    for settle_as_bob in (
        lambda: store.heartbeat(lease["lease_run_id"], lease["claim_token"], 30, 101.0, holder="bob"),
        lambda: store.settle(lease["lease_run_id"], lease["claim_token"], "completed", 101.0, holder="bob"),
        lambda: store.settle(lease["lease_run_id"], lease["claim_token"], "released", 101.0, holder="bob"),
    ):
        with pytest.raises(ForeignClaim) as refused:
            await settle_as_bob()
        assert refused.value.holder == "alice"
    assert (await store.get_task(task_id))["state"] == "claimed"  # type: ignore[index]
    assert (await store.settle(lease["lease_run_id"], lease["claim_token"], "completed", 102.0, holder="alice"))["state"] == "completed"


async def test_expired_lease_on_the_last_attempt_fails_the_task(store: Store) -> None:
    task_id = await _add(store, "t", max_attempts=1)
    assert await store.claim_next("q", "w", 30, 100.0) is not None
    assert await store.claim_next("q", "w", 30, 200.0) is None
    task = await store.get_task(task_id)
    assert task is not None and task["state"] == "failed" and "expired" in task["error"]


async def test_claim_complete_round_trip_with_lease_expiry_time_and_result(tmp_path: Path) -> None:
    async with local_client(config_for(tmp_path, "planner")) as planner, local_client(config_for(tmp_path, "worker")) as worker:
        created = await call(planner, "create_task", {"title": "review", "payload": {"pr": 7}, "queue": "reviews"})
        assert created["state"] == "queued"
        empty = await call(worker, "claim_task", {})
        assert empty["lease"] is None
        claim = await call(worker, "claim_task", {"queue": "reviews", "lease_seconds": 60})
        lease = claim["lease"]
        assert lease["task"]["id"] == created["id"] and lease["task"]["payload"] == {"pr": 7}
        assert lease["lease_expires_at"] and lease["claim_token"] and lease["holder"] == "worker"
        beat = await call(worker, "heartbeat_task", {"run_id": lease["run_id"], "claim_token": lease["claim_token"]})
        assert beat["lease_expires_at"] >= lease["lease_expires_at"]
        done = await call(worker, "complete_task", {"run_id": lease["run_id"], "claim_token": lease["claim_token"], "result": {"lgtm": True}})
        assert done["state"] == "completed" and done["result"] == {"lgtm": True}


async def test_complete_with_a_wrong_or_missing_token_is_refused_and_the_claim_still_holds(tmp_path: Path) -> None:
    async with local_client(config_for(tmp_path)) as client:
        await call(client, "create_task", {"title": "t"})
        lease = (await call(client, "claim_task", {}))["lease"]
        wrong = await fail(client, "complete_task", {"run_id": lease["run_id"], "claim_token": "not-the-token"})
        assert wrong["code"] == "invalid_argument"  # the claim is not lost: the token is wrong
        assert lease["run_id"] in wrong["message"] and lease["task"]["id"] in wrong["message"] and "claim_task" in wrong["message"]
        missing = await fail(client, "complete_task", {"run_id": lease["run_id"]})
        assert missing["code"] == "invalid_argument" and lease["run_id"] in missing["message"]
        unknown = await fail(client, "complete_task", {"run_id": "trun_nope", "claim_token": "x"})
        assert unknown["code"] == "not_found"
        done = await call(client, "complete_task", {"run_id": lease["run_id"], "claim_token": lease["claim_token"]})
        assert done["state"] == "completed"


async def test_lease_lost_means_the_claim_is_gone(tmp_path: Path) -> None:
    async with local_client(config_for(tmp_path)) as client:
        await call(client, "create_task", {"title": "t"})
        lease = (await call(client, "claim_task", {}))["lease"]
        await call(client, "release_task", {"run_id": lease["run_id"], "claim_token": lease["claim_token"]})
        for token in (lease["claim_token"], "not-the-token"):
            gone = await fail(client, "complete_task", {"run_id": lease["run_id"], "claim_token": token})
            assert gone["code"] == "lease_lost" and "claim_task for new work" in gone["message"]


async def test_failed_attempts_retry_until_max_attempts_then_the_task_fails(tmp_path: Path) -> None:
    async with local_client(config_for(tmp_path)) as client:
        await call(client, "create_task", {"title": "flaky", "max_attempts": 2})
        first = (await call(client, "claim_task", {}))["lease"]
        again = await call(client, "fail_task", {"run_id": first["run_id"], "claim_token": first["claim_token"], "error": "network"})
        assert again["state"] == "queued" and again["attempts"] == 1
        second = (await call(client, "claim_task", {}))["lease"]
        final = await call(client, "fail_task", {"run_id": second["run_id"], "claim_token": second["claim_token"], "error": "network"})
        assert final["state"] == "failed" and final["attempts"] == 2 and final["error"] == "network"


async def test_non_retryable_failure_fails_at_once_and_release_costs_no_attempt(tmp_path: Path) -> None:
    async with local_client(config_for(tmp_path)) as client:
        await call(client, "create_task", {"title": "a", "max_attempts": 5})
        lease = (await call(client, "claim_task", {}))["lease"]
        released = await call(client, "release_task", {"run_id": lease["run_id"], "claim_token": lease["claim_token"], "reason": "busy"})
        assert released["state"] == "queued" and released["attempts"] == 0
        lease = (await call(client, "claim_task", {}))["lease"]
        failed = await call(client, "fail_task", {"run_id": lease["run_id"], "claim_token": lease["claim_token"], "error": "bad input", "retryable": False})
        assert failed["state"] == "failed"


async def test_create_task_with_the_same_idempotency_key_makes_one_task(tmp_path: Path) -> None:
    async with local_client(config_for(tmp_path)) as client:
        a = await call(client, "create_task", {"title": "t", "idempotency_key": "k"})
        b = await call(client, "create_task", {"title": "t", "idempotency_key": "k"})
        assert a["id"] == b["id"]
        assert (await call(client, "claim_task", {}))["lease"] is not None
        assert (await call(client, "claim_task", {}))["lease"] is None
