"""The audit trail: who did what through the dashboard, and when, kept in the local store.

A table of its own (see overview_sql.py) rather than a channel, because agents can write to
channels and must not be able to forge or bury a record of what a person did. With no local
backend configured the trail lives in the SQLite file of the data dir.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime

from agentdeck.backends.local.store import Row, Store
from agentdeck.backends.local.store.overview_sql import FIRST_PAGE

__all__ = ["AuditEntry", "AuditTrail"]


@dataclass(frozen=True)
class AuditEntry:
    id: int
    at: datetime
    actor: str
    action: str
    backend: str
    target: str
    detail: str | None
    outcome: str


def _entry(row: Row) -> AuditEntry:
    return AuditEntry(
        id=int(row["id"]),
        at=datetime.fromtimestamp(row["at"], tz=UTC),
        actor=row["actor"],
        action=row["action"],
        backend=row["backend"],
        target=row["target"],
        detail=row["detail"],
        outcome=row["outcome"],
    )


class AuditTrail:
    def __init__(self, store: Store) -> None:
        self.store = store

    async def record(self, actor: str, action: str, backend: str, target: str, detail: str | None, outcome: str) -> AuditEntry:
        rows = await self.store.overview("add_audit", time.time(), actor, action, backend, target, detail, outcome, write=True)
        return _entry(rows[0])

    async def latest(self, limit: int = 50, before: int | None = None) -> list[AuditEntry]:
        return [_entry(r) for r in await self.store.overview("audit", FIRST_PAGE if before is None else before, limit)]
