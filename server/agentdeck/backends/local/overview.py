"""The local backend's dashboard side: task listings, message search, and a person's override of a claim."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import get_args

from agentdeck.backends.base import TaskView
from agentdeck.backends.local.channels import channel_name
from agentdeck.backends.local.limits import MAX_BODY_BYTES, text_size
from agentdeck.backends.local.part import Part
from agentdeck.backends.local.rows import message_from_row, task_from_row, task_view_from_row
from agentdeck.backends.local.store import LeaseError, queue_topic
from agentdeck.backends.local.store.overview_sql import FIRST_PAGE, like_pattern
from agentdeck.backends.local.tasks import queue_name
from agentdeck.errors import Conflict, InvalidArgument, NotFound
from agentdeck.models import ChannelMessage, Task, TaskState

__all__ = ["COUNT_CAP", "Overview"]

COUNT_CAP = 1_000
"""Counts of tasks per queue and state stop here; a count above it means "more than this".

Each count reads up to this many index entries, so the tasks page of a queue with 100,000
finished tasks costs what one with 1,000 costs (10,000 made that page 1.46 x its cost at 100)."""

TASK_STATES: tuple[str, ...] = get_args(TaskState)
"""The columns of the store's queue_counts, one per state, in this order."""


@dataclass(eq=False, repr=False)
class Overview(Part):
    """The dashboard's reads of backend `name`'s store, and a person's override of a claim."""

    async def task_queues(self) -> dict[str, dict[str, int]]:
        queues: dict[str, dict[str, int]] = {}
        for row in await self.store.overview("queue_counts", *[COUNT_CAP + 1] * len(TASK_STATES)):
            counts = {state: int(row[state]) for state in TASK_STATES if row[state]}
            if counts:
                queues[row["queue"]] = counts
        return queues

    async def list_tasks(self, queue: str, *, limit: int = 50, before: int | None = None) -> list[TaskView]:
        rows = await self.store.overview("tasks", queue_name(queue), FIRST_PAGE if before is None else before, limit)
        return [task_view_from_row(r, self.name) for r in rows]

    async def search_messages(self, channel: str, text: str, *, limit: int = 50, before: str | None = None) -> list[ChannelMessage]:
        if before is not None and not before.isdigit():
            raise InvalidArgument("before must be a message id")
        bound = FIRST_PAGE if before is None else int(before)
        rows = await self.store.overview("find_messages", channel_name(channel), bound, like_pattern(text), limit)
        identity = self.caller().identity
        return [message_from_row(r, self.name, identity) for r in rows]

    async def override_claim(self, task_id: str, outcome: str, reason: str) -> Task:
        if outcome not in ("released", "failed"):
            raise InvalidArgument("outcome must be 'released' or 'failed'")
        text_size(reason, "reason", MAX_BODY_BYTES)
        row = await self.store.get_task(task_id)
        if row is None:
            raise NotFound(f"No task '{task_id}'.")
        if row["state"] != "claimed":
            raise Conflict(f"Task {task_id} is {row['state']}, not claimed; there is no claim to end.")
        # The person acts with the holder's own claim (token and identity), so the usual fencing
        # applies: a holder that settles at the same moment wins or loses cleanly. A lease that
        # already ran out is still ended now, as of its expiry, rather than waiting for the next claim.
        now = min(time.time(), row["lease_expires_at"])
        try:
            settled = await self.store.settle(row["lease_run_id"], row["claim_token"], outcome, now, holder=row["holder"], error=reason)
        except LeaseError as exc:
            raise Conflict(f"The claim moved on meanwhile ({exc.reason}); reload and look again.") from None
        await self.wakeups.publish(queue_topic(settled["queue"]))
        return task_from_row(settled, self.name)
