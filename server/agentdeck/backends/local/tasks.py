"""The local platform's task queues: one winner per claim, leases with fencing tokens, retries."""

from __future__ import annotations

import re
import time
from collections.abc import Awaitable, Callable
from typing import Any

from agentdeck.backends.local.limits import MAX_BODY_BYTES, json_size, loads, text_size, ts
from agentdeck.backends.local.store import ForeignClaim, LeaseError, Store, UnknownClaim, WrongToken, new_id
from agentdeck.backends.local.wakeups import Wakeups
from agentdeck.backends.requests import TaskDraft
from agentdeck.config import LocalConfig
from agentdeck.errors import InvalidArgument, LeaseLost, NotFound, Unauthorized
from agentdeck.models import ClaimResult, Lease, Task

__all__ = ["Tasks"]

_QUEUE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


class Tasks:
    """Task operations of LocalBackend (a part of it, split out by noun)."""

    name: str
    identity: str
    config: LocalConfig
    store: Store
    wakeups: Wakeups

    def _task(self, row: dict[str, Any]) -> Task:
        return Task(
            id=row["id"],
            backend=self.name,
            queue=row["queue"],
            title=row["title"],
            state=row["state"],
            priority=row["priority"],
            payload=loads(row["payload"]),
            attempts=row["attempts"],
            max_attempts=row["max_attempts"],
            created_at=ts(row["created_at"]),
            result=loads(row["result"]),
            error=row["error"],
        )

    def _lease(self, row: dict[str, Any]) -> Lease:
        return Lease(
            run_id=row["lease_run_id"],
            backend=self.name,
            task=self._task(row),
            claim_token=row["claim_token"],
            lease_expires_at=ts(row["lease_expires_at"]),
            holder=row["holder"],
        )

    @staticmethod
    def _queue(queue: str | None) -> str:
        name = (queue or "default").strip()
        if not _QUEUE.match(name):
            raise InvalidArgument("queue must be 1-64 letters, digits, '_', '.' or '-'; omit it for the 'default' queue")
        return name

    async def create_task(self, draft: TaskDraft) -> Task:
        title, payload, queue, priority, max_attempts, idempotency_key = draft.title, draft.payload, draft.queue, draft.priority, draft.max_attempts, draft.idempotency_key
        if not title.strip():
            raise InvalidArgument("title must not be empty; say in a few words what the task is")
        json_size(payload, "payload")
        task = {
            "id": new_id("task"),
            "queue": self._queue(queue),
            "title": title.strip(),
            "payload": payload,
            "priority": priority,
            "max_attempts": max_attempts,
            "created_at": time.time(),
        }
        row = await self.store.create_task(task, f"task:{self.identity}", idempotency_key)
        await self.wakeups.publish(f"queue:{task['queue']}")
        return self._task(row)

    async def claim_task(self, *, queue: str | None = None, lease_seconds: int | None = None) -> ClaimResult:
        name = self._queue(queue)
        row = await self.store.claim_next(name, self.identity, lease_seconds or self.config.lease_seconds, time.time())
        if row:
            await self.wakeups.publish(f"queue:{name}")  # for watchers such as the dashboard
        return ClaimResult(queue=name, backend=self.name, lease=self._lease(row) if row else None)

    async def _settle(self, op: Callable[..., Awaitable[dict[str, Any]]], run_id: str, claim_token: str | None, *args: Any, **kwargs: Any) -> dict[str, Any]:
        if not claim_token:
            raise InvalidArgument(f"claim_token is required on the local backend: pass the claim_token that claim_task returned with run_id {run_id}.")
        holder = self.identity
        try:
            return await op(run_id, claim_token, *args, holder=holder, **kwargs)
        except UnknownClaim:
            raise NotFound(f"No task claim has run id '{run_id}'; use the run_id that claim_task returned.") from None
        except WrongToken as exc:
            raise InvalidArgument(
                f"Wrong claim_token for claim {run_id}, which still holds task {exc.task_id}: pass the claim_token"
                f" that claim_task returned together with run_id {run_id}, and call again."
            ) from None
        except LeaseError as exc:
            raise LeaseLost(f"Claim {run_id} no longer holds its task: {exc.reason}. Stop working on it and call claim_task for new work.") from None
        except ForeignClaim as exc:
            raise Unauthorized(
                f"Claim {run_id} was made by '{exc.holder}', not by you ('{holder}'); only the identity that claimed a task may "
                "heartbeat, complete, fail or release it. Call claim_task to take work of your own."
            ) from None

    async def heartbeat_task(self, run_id: str, claim_token: str | None = None, lease_seconds: int | None = None) -> Lease:
        row = await self._settle(self.store.heartbeat, run_id, claim_token, lease_seconds or self.config.lease_seconds, time.time())
        return self._lease(row)

    async def complete_task(self, run_id: str, claim_token: str | None = None, result: Any = None) -> Task:
        json_size(result, "result")
        row = await self._settle(self.store.settle, run_id, claim_token, "completed", time.time(), result=result)
        return self._task(row)

    async def fail_task(self, run_id: str, claim_token: str | None, error: str, retryable: bool = True) -> Task:
        text_size(error, "error", MAX_BODY_BYTES)
        row = await self._settle(self.store.settle, run_id, claim_token, "retry" if retryable else "failed", time.time(), error=error)
        if row["state"] == "queued":
            await self.wakeups.publish(f"queue:{row['queue']}")
        return self._task(row)

    async def release_task(self, run_id: str, claim_token: str | None = None, reason: str | None = None) -> Task:
        row = await self._settle(self.store.settle, run_id, claim_token, "released", time.time(), error=reason)
        await self.wakeups.publish(f"queue:{row['queue']}")
        return self._task(row)
