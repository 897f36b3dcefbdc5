"""The local platform's store: open the one a store URL names.

    base.py             the interface: Store, RunLog, Row, the claim errors, new_id
    url.py              what a store URL names (dialect, SQLite file, a printable form)
    sqlite.py           the SQLite Store (async), over sqlite_db.py (blocking; also the RunLog)
    sqlite_sql.py       SQLite migrations and named queries
    postgres.py         the PostgreSQL Store (async, pooled)
    postgres_runlog.py  the PostgreSQL RunLog (blocking, for the supervisor)
    postgres_sql.py     PostgreSQL migrations and named queries
    run_filter.py       the list-runs query (filters, keyset page), built once for both dialects
    overview_sql.py     the dashboard's queries and its audit table, for both dialects
    unread.py           reading a channel past one's own messages, for both dialects

Stdlib only at import: the supervisor imports this package and must start fast; each
dialect's module (and psycopg) is imported when a store of that dialect is opened.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from agentdeck.backends.local.store.base import ForeignClaim, LeaseError, Row, RunLog, Store, UnknownClaim, WrongToken, new_id, queue_topic
from agentdeck.backends.local.store.url import describe_store, is_postgres, sqlite_path
from agentdeck.errors import ConfigError

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
    "queue_topic",
    "sqlite_path",
]


def open_store(url: str | None, data_dir: Path) -> Store:
    """The store a local backend's `store` setting names (None: the SQLite file in the data dir).

    Raises:
        ConfigError: an unknown URL, or a PostgreSQL URL without psycopg installed.
    """
    if is_postgres(url):
        try:
            from agentdeck.backends.local.store.postgres import PostgresStore
        except ModuleNotFoundError as exc:
            raise ConfigError(f"store is a PostgreSQL URL but {exc.name} is not installed; install agentdeck[postgres]") from None
        return PostgresStore(url or "")
    from agentdeck.backends.local.store.sqlite import SqliteStore

    return SqliteStore(sqlite_path(url, data_dir))


def open_run_log(url: str | None, db_path: str, data_dir: Path) -> tuple[RunLog, Callable[..., None]]:
    """A supervisor's run log and its wake-up (called with topics after each change it records).

    psycopg is imported only for a PostgreSQL store, whose wake-up is NOTIFY on the run log's
    own connection; the SQLite one sends datagrams to this machine's waiting processes.
    """
    if is_postgres(url):
        from agentdeck.backends.local.store.postgres_runlog import PostgresRunLog

        log = PostgresRunLog(url or "")
        return log, log.notify
    from agentdeck.backends.local.notify import Notifier, wake_dir
    from agentdeck.backends.local.store.sqlite_db import SqliteDb

    return SqliteDb(Path(db_path)), Notifier(wake_dir(data_dir))
