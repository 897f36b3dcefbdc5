"""Task lease rules, written once: who still holds a claim, and where a settled task goes.

A claim is a run id plus a secret token. The task row names the claim that holds it
(`lease_run_id`, `claim_token`) until the lease expires, the holder settles it, or a later
claim takes it over after expiry. A store reads the task with its row locked, asks `check_held`,
and writes what `next_state` says, all inside one transaction. Stdlib only.
"""

from __future__ import annotations

import secrets
from typing import Any

from agentdeck.backends.local.store.base import ForeignClaim, LeaseError, WrongToken

__all__ = ["check_held", "next_state"]


def check_held(task: dict[str, Any], run_id: str, token: str, now: float, holder: str) -> None:
    """Refuse a call by a claim that no longer holds `task` (fencing out stale holders), or by
    anyone but the identity that made the claim, whatever token they show.

    Raises:
        LeaseError: the claim is gone: the task moved on, or the lease expired.
        ForeignClaim: `holder` is not who made the claim.
        WrongToken: the claim still holds the task, and `token` is not its token.
    """
    if task.get("lease_run_id") != run_id or task.get("state") != "claimed":
        raise LeaseError("the task was released, finished, or claimed again by someone else")
    if task.get("holder") != holder:
        raise ForeignClaim(task.get("holder") or "")
    if task["lease_expires_at"] < now:
        raise LeaseError("the lease expired before this call; the task is back in the queue")
    if not secrets.compare_digest(task.get("claim_token") or "", token):
        raise WrongToken(task["id"])


def next_state(task: dict[str, Any], outcome: str) -> tuple[str, int]:
    """(the task's new state, attempts to give back) when its holder settles with `outcome`.

    A release gives its attempt back; a retryable failure queues the task again while attempts
    remain; anything else is final.
    """
    if outcome == "completed":
        return "completed", 0
    if outcome == "released":
        return "queued", 1
    if outcome == "retry" and task["attempts"] < task["max_attempts"]:
        return "queued", 0
    return "failed", 0
