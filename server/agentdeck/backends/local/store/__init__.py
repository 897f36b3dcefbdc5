"""The local platform's store: the interface (base.py) and its SQLite and PostgreSQL dialects."""

from __future__ import annotations

from agentdeck.backends.local.store.base import (
    ForeignClaim,
    LeaseError,
    Row,
    RunLog,
    Store,
    UnknownClaim,
    WrongToken,
    describe_store,
    is_postgres,
    new_id,
    open_run_log,
    open_store,
    sqlite_path,
)

__all__ = [
    "ForeignClaim",
    "LeaseError",
    "Row",
    "RunLog",
    "Store",
    "UnknownClaim",
    "WrongToken",
    "describe_store",
    "is_postgres",
    "new_id",
    "open_run_log",
    "open_store",
    "sqlite_path",
]
