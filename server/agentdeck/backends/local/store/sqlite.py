"""The SQLite Store: SqliteDb's blocking calls, on the event loop or in a worker thread.

Three connections per process. get_run, the most frequent call, reads on the event loop through
a read-only one (a WAL reader never waits). A quick call (a row, or a page bounded by its limit)
runs on the event loop as one transaction of a connection that never waits (SqliteDb.attempt)
when the write lock is free, or frees within a few milliseconds (RETRY_PAUSES): the hop to a
worker thread and back cost more CPU than such a call (about 250 us against 60 us per write). Its commits leave the WAL to a passive checkpoint in the
worker thread every CHECKPOINT_EVERY calls, so the loop never copies it into the file.
Everything else runs on the other connection, one call at a time in the worker thread (a
capacity limiter of one): a quick call whose lock stays taken longer, which waits for it
there, and calls whose cost grows with the data (listings, searches, event pages). Wake-ups
between processes go through Unix datagram sockets (wakeups.py), so `notify` here has nothing to
do.
"""

from __future__ import annotations

import functools
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import anyio

from agentdeck.backends.local.store.base import Row
from agentdeck.backends.local.store.overview_sql import SQLITE as OVERVIEW
from agentdeck.backends.local.store.sqlite_db import SqliteDb, WriteLockBusy, open_reader

__all__ = ["SqliteStore"]

T = TypeVar("T")

RETRY_PAUSES = (0.0002, 0.0005, 0.001, 0.002, 0.005)
"""A quick call that finds the write lock taken tries again on the loop after each pause, then
waits in the worker thread. Going to the thread at once made a convoy under concurrent calls:
while the thread's transaction held the lock, every call arriving on the loop found it taken
and queued behind it (a third of the calls of 50 sessions took the hop, 250 us of CPU each)."""

CHECKPOINT_EVERY = 100
"""Attempts do not checkpoint the WAL on commit; after this many, a passive checkpoint runs in the
worker thread (SQLite's own comes after 1,000 pages, roughly this many claims or settles)."""


class SqliteStore:
    """Store over one SQLite file (WAL), shared by the agentdeck processes of one machine."""

    kind = "sqlite"
    announces_claims = False

    def __init__(self, path: Path) -> None:
        self.path = path
        self._db: SqliteDb | None = None
        self._now: SqliteDb | None = None  # the connection of `attempt`s, which never waits for the write lock
        self._reader: sqlite3.Connection | None = None
        self._limiter = anyio.CapacityLimiter(1)
        self._attempted = 0  # attempts since the last checkpoint

    @property
    def db(self) -> SqliteDb:
        """The blocking store, opened (and migrated) on first use."""
        if self._db is None:
            self._db = SqliteDb(self.path)
        return self._db

    async def _run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        return await anyio.to_thread.run_sync(functools.partial(fn, *args, **kwargs), limiter=self._limiter)

    async def _quick(self, fn: Callable[[SqliteDb], T]) -> T:
        """`fn(db)`, a call that takes microseconds: on the event loop while the write lock is
        free, else in the worker thread, where waiting for it blocks nothing."""
        if self._now is None:
            await self.open()
        if self._attempted >= CHECKPOINT_EVERY:
            self._attempted = 0
            await self._run(lambda: self.db.checkpoint())
        assert self._now is not None
        for pause in RETRY_PAUSES:
            try:
                result = self._now.attempt(fn)
            except WriteLockBusy:  # another connection is writing: its transaction takes microseconds
                await anyio.sleep(pause)
                continue
            self._attempted += 1
            return result
        return await self._run(lambda: fn(self.db))

    async def open(self) -> None:
        await self._run(self._open)

    def _open(self) -> None:
        self.db  # noqa: B018  opens and migrates the file first
        if self._now is None:
            self._now = SqliteDb(self.path, waits=False)

    async def close(self) -> None:
        if self._reader is not None:
            reader, self._reader = self._reader, None
            reader.close()
        if self._now is not None:
            now, self._now = self._now, None
            now.close()
        if self._db is not None:
            db, self._db = self._db, None
            db.close()

    async def schema_version(self) -> int:
        return await self._run(lambda: self.db.schema_version())

    async def notify(self, topics: tuple[str, ...]) -> None:
        return None

    # runs

    async def create_run(self, run: Row, scope: str, key: str | None) -> tuple[Row, bool]:
        return await self._quick(lambda db: db.create_run(run, scope, key))

    async def get_run(self, run_id: str) -> Row | None:
        # The most frequent call, a read by primary key: it takes microseconds and a WAL reader
        # never waits for writers, so it runs inline rather than paying for the worker-thread hop.
        if self._reader is None:
            self.db  # noqa: B018  the file exists and is migrated before it is read
            self._reader = open_reader(self.path)
        return SqliteDb.read_run(self._reader, run_id)

    async def count_children(self, run_id: str) -> int:
        return await self._run(lambda: self.db.count_children(run_id))

    async def list_runs(self, filters: dict[str, Any], limit: int, before_seq: int | None) -> list[Row]:
        return await self._run(lambda: self.db.list_runs(filters, limit, before_seq))

    async def finish_run(
        self, run_id: str, state: str, now: float, exit_code: int | None = None, error_code: str | None = None, error_message: str | None = None
    ) -> bool:
        return await self._quick(lambda db: db.finish_run(run_id, state, now, exit_code, error_code, error_message))

    async def set_worktree(self, run_id: str, worktree: Row) -> None:
        await self._quick(lambda db: db.set_worktree(run_id, worktree))

    async def request_cancel(self, run_id: str) -> None:
        await self._quick(lambda db: db.request_cancel(run_id))

    async def append_events(self, run_id: str, events: list[tuple[str, str]], max_bytes: int) -> int:
        return await self._run(lambda: self.db.append_events(run_id, events, max_bytes))

    async def run_events(self, run_id: str, after_seq: int, limit: int) -> list[Row]:
        return await self._run(lambda: self.db.run_events(run_id, after_seq, limit))

    # channels

    async def list_channels(self) -> list[Row]:
        return await self._run(lambda: self.db.list_channels())

    async def get_message(self, message_id: int) -> Row | None:
        return await self._quick(lambda db: db.get_message(message_id))

    async def append_message(self, message: Row, scope: str, key: str | None) -> Row:
        return await self._quick(lambda db: db.append_message(message, scope, key))

    async def latest_messages(self, channel: str, limit: int) -> list[Row]:
        return await self._run(lambda: self.db.latest_messages(channel, limit))

    async def read_messages(self, channel: str, identity: str, limit: int, after: int | None = None) -> tuple[list[Row], bool]:
        return await self._quick(lambda db: db.read_messages(channel, identity, limit, after))

    # tasks

    async def create_task(self, task: Row, scope: str, key: str | None) -> Row:
        return await self._quick(lambda db: db.create_task(task, scope, key))

    async def get_task(self, task_id: str) -> Row | None:
        return await self._quick(lambda db: db.get_task(task_id))

    async def claim_next(self, queue: str, holder: str, lease_seconds: float, now: float) -> Row | None:
        return await self._quick(lambda db: db.claim_next(queue, holder, lease_seconds, now))

    async def heartbeat(self, run_id: str, token: str, lease_seconds: float, now: float, *, holder: str) -> Row:
        return await self._quick(lambda db: db.heartbeat(run_id, token, lease_seconds, now, holder=holder))

    async def settle(self, run_id: str, token: str, outcome: str, now: float, *, holder: str, result: Any = None, error: str | None = None) -> Row:
        return await self._quick(lambda db: db.settle(run_id, token, outcome, now, holder=holder, result=result, error=error))

    # the dashboard's reads and its audit trail

    async def overview(self, name: str, *args: Any, write: bool = False) -> list[Row]:
        return await self._run(lambda: self.db.query(OVERVIEW[name], args, write=write))
