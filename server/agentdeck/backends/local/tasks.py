"""The local platform's task queues: one winner per claim, leases with fencing tokens, retries."""

from __future__ import annotations

import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from agentdeck.backends.local.limits import MAX_BODY_BYTES, json_size, text_size
from agentdeck.backends.local.part import Part
from agentdeck.backends.local.rows import lease_from_row, task_from_row
from agentdeck.backends.local.store import ForeignClaim, LeaseError, Row, UnknownClaim, WrongToken, new_id, queue_topic
from agentdeck.errors import InvalidArgument, LeaseLost, NotFound, Unauthorized
from agentdeck.models import ClaimResult, Lease, Task

__all__ = ["Tasks", "queue_name"]

_QUEUE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


def queue_name(queue: str | None) -> str:
    """The queue's name ('default' when omitted), or InvalidArgument."""
    name = (queue or "default").strip()
    if not _QUEUE.match(name):
        raise InvalidArgument("queue must be 1-64 letters, digits, '_', '.' or '-'; omit it for the 'default' queue")
    return name


@dataclass(eq=False, repr=False)
class Tasks(Part):
    """The task queues of backend `name`, kept in `store`; `caller` says who creates, claims and settles."""

    lease_seconds: int
    """The lease a claim gets when the caller names none."""

    def _task(self, row: Row) -> Task:
        return task_from_row(row, self.name)

    def _lease(self, row: Row) -> Lease:
        return lease_from_row(row, self.name)

    async def create(self, title: str, payload: Any, queue: str | None, priority: int, max_attempts: int, key: str | None) -> Task:
        if not title.strip():
            raise InvalidArgument("title must not be empty; say in a few words what the task is")
        json_size(payload, "payload")
        task = {
            "id": new_id("task"),
            "queue": queue_name(queue),
            "title": title.strip(),
            "payload": payload,
            "priority": priority,
            "max_attempts": max_attempts,
            "created_at": time.time(),
        }
        row = await self.store.create_task(task, f"task:{self.caller().identity}", key)
        await self.wakeups.publish(queue_topic(task["queue"]))
        return self._task(row)

    async def claim(self, queue: str | None, lease_seconds: int | None) -> ClaimResult:
        name = queue_name(queue)
        row = await self.store.claim_next(name, self.caller().identity, lease_seconds or self.lease_seconds, time.time())
        if row:  # for watchers such as the dashboard
            await self.wakeups.publish(queue_topic(name), announced=self.store.announces_claims)
        return ClaimResult(queue=name, backend=self.name, lease=self._lease(row) if row else None)

    async def _settle(self, op: Callable[..., Awaitable[Row]], run_id: str, claim_token: str | None, *args: Any, **kwargs: Any) -> Row:
        if not claim_token:
            raise InvalidArgument(f"claim_token is required on the local backend: pass the claim_token that claim_task returned with run_id {run_id}.")
        holder = self.caller().identity
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

    async def heartbeat(self, run_id: str, claim_token: str | None, lease_seconds: int | None = None) -> Lease:
        row = await self._settle(self.store.heartbeat, run_id, claim_token, lease_seconds or self.lease_seconds, time.time())
        return self._lease(row)

    async def complete(self, run_id: str, claim_token: str | None, result: Any) -> Task:
        json_size(result, "result")
        row = await self._settle(self.store.settle, run_id, claim_token, "completed", time.time(), result=result)
        return self._task(row)

    async def fail(self, run_id: str, claim_token: str | None, error: str, retryable: bool) -> Task:
        text_size(error, "error", MAX_BODY_BYTES)
        row = await self._settle(self.store.settle, run_id, claim_token, "retry" if retryable else "failed", time.time(), error=error)
        if row["state"] == "queued":
            await self.wakeups.publish(queue_topic(row["queue"]))
        return self._task(row)

    async def release(self, run_id: str, claim_token: str | None, reason: str | None) -> Task:
        row = await self._settle(self.store.settle, run_id, claim_token, "released", time.time(), error=reason)
        await self.wakeups.publish(queue_topic(row["queue"]))
        return self._task(row)
