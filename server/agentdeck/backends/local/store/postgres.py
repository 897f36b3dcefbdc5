"""The PostgreSQL Store: psycopg 3's async connection pool, for agentdeck on several machines.

Chosen by a `postgresql://` store URL. Each operation is one transaction on a pooled
connection. Claims pick their task with `FOR UPDATE SKIP LOCKED`, so claimers never wait on
each other and never share a task; idempotency keys are serialized by advisory locks; channel
appends by their channel's row lock, so message ids commit in order. The schema is brought up
to date at open by versioned migrations under an advisory lock, so several processes may
start at once. Wake-ups go out with NOTIFY on a channel named after the schema.

Driver errors that mean "the database is not there" become `Unavailable`, with the cause kept.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from agentdeck.backends.local import leases
from agentdeck.backends.local.output import cap_output
from agentdeck.backends.local.store.base import Row, UnknownClaim, new_id, queue_topic
from agentdeck.backends.local.store.overview_sql import POSTGRES as OVERVIEW
from agentdeck.backends.local.store.postgres_sql import MIGRATIONS, Q, notify_channel
from agentdeck.backends.local.store.run_filter import runs_page
from agentdeck.backends.local.store.unread import Step, streak_of, unread
from agentdeck.backends.local.store.url import describe_store
from agentdeck.errors import InvalidArgument, Unavailable

__all__ = ["PostgresStore", "migrate"]

log = logging.getLogger("agentdeck.store")

_CONNECT_TIMEOUT_SECONDS = 10
_POOL_MAX_SIZE = 8


def _dumps(value: Any) -> str | None:
    return None if value is None else json.dumps(value)


async def migrate(conn: psycopg.AsyncConnection[Any]) -> tuple[str, int]:
    """Apply the migrations this schema lacks; returns (schema, version). Safe to race.

    Raises:
        Unavailable: search_path names no schema that exists.
    """
    async with conn.transaction():
        schema = (await (await conn.execute(Q["current_schema"])).fetchone() or [None])[0]
        if schema is None:
            raise Unavailable("the store's search_path names no existing schema; create it (CREATE SCHEMA ...) or fix options=-csearch_path in the URL")
        await conn.execute(Q["lock_migrations"])
        await conn.execute(Q["create_versions"])
        current = (await (await conn.execute(Q["schema_version"])).fetchone() or [0])[0]
        for version, statements in MIGRATIONS:
            if version > current:
                for statement in statements:
                    await conn.execute(statement)
                await conn.execute(Q["add_version"], (version,))
                current = version
                log.info("store schema %s migrated to version %s", schema, version)
    return str(schema), int(current)


class PostgresStore:
    """Store in a PostgreSQL database, shared by agentdeck processes on any number of machines."""

    kind = "postgresql"
    announces_claims = True

    def __init__(self, url: str, *, max_size: int = _POOL_MAX_SIZE) -> None:
        self.url = url
        self.max_size = max_size
        self.schema: str | None = None
        self.channel: str | None = None
        self.version = 0
        self._pool: AsyncConnectionPool[Any] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lock: tuple[asyncio.AbstractEventLoop, asyncio.Lock] | None = None

    def __repr__(self) -> str:
        return f"PostgresStore({describe_store(self.url)!r})"

    @contextmanager
    def _errors(self) -> Iterator[None]:
        try:
            yield
        except psycopg.DataError as exc:
            # A value PostgreSQL cannot hold (a NUL in a text argument, say): the caller's to fix.
            detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise InvalidArgument(f"The store refused a value: {detail}. Change that argument and call again.") from None
        except (psycopg.OperationalError, PoolTimeout) as exc:
            detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise Unavailable(
                f"The PostgreSQL store {describe_store(self.url)} did not answer ({detail}). Check that it is running and reachable, then try again.",
                retryable=True,
            ) from exc

    # connection lifecycle ---------------------------------------------------------------

    async def open(self) -> None:
        await self._ready()

    async def _ready(self) -> AsyncConnectionPool[Any]:
        """The pool of this event loop, opened and the schema migrated on first use."""
        loop = asyncio.get_running_loop()
        if self._pool is not None and self._loop is loop:
            return self._pool
        if self._lock is None or self._lock[0] is not loop:
            self._lock = (loop, asyncio.Lock())
        async with self._lock[1]:
            if self._pool is not None and self._loop is loop:
                return self._pool
            self._pool = None  # a pool of an event loop that has ended cannot be used or closed here
            with self._errors():
                async with await psycopg.AsyncConnection.connect(self.url, autocommit=True, connect_timeout=_CONNECT_TIMEOUT_SECONDS) as conn:
                    self.schema, self.version = await migrate(conn)
                pool: AsyncConnectionPool[Any] = AsyncConnectionPool(
                    self.url,
                    min_size=1,
                    max_size=self.max_size,
                    open=False,
                    kwargs={"autocommit": True, "row_factory": dict_row, "connect_timeout": _CONNECT_TIMEOUT_SECONDS},
                    name="agentdeck",
                )
                try:
                    await pool.open(wait=True, timeout=_CONNECT_TIMEOUT_SECONDS)
                except BaseException:
                    await pool.close()  # or it keeps trying to connect in the background
                    raise
            self.channel = notify_channel(self.schema)
            self._pool, self._loop = pool, loop
            return pool

    async def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None and self._loop is asyncio.get_running_loop():
            await pool.close()

    async def schema_version(self) -> int:
        await self._ready()
        return self.version

    @asynccontextmanager
    async def _conn(self) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
        pool = await self._ready()
        with self._errors():
            async with pool.connection() as conn:
                yield conn

    @asynccontextmanager
    async def _tx(self) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
        async with self._conn() as conn, conn.transaction():
            yield conn

    @staticmethod
    @asynccontextmanager
    async def _sent_tx(conn: psycopg.AsyncConnection[Any]) -> AsyncIterator[None]:
        """A transaction in pipeline mode: BEGIN, the statements and COMMIT go out without waiting,
        so it costs one round trip per result read inside it, plus one. Read the other results
        after it, on the same connection. On an error, leaving `_conn` rolls it back."""
        async with conn.pipeline():
            await conn.execute("BEGIN")
            yield
            await conn.execute("COMMIT")

    async def _one(self, name: str, *args: Any) -> Row | None:
        async with self._conn() as conn:
            return await (await conn.execute(Q[name], args)).fetchone()

    async def _all(self, name: str, *args: Any) -> list[Row]:
        async with self._conn() as conn:
            return await (await conn.execute(Q[name], args)).fetchall()

    @staticmethod
    async def _fetch(conn: psycopg.AsyncConnection[Any], name: str, args: Any = ()) -> Row | None:
        return await (await conn.execute(Q[name], args)).fetchone()

    async def notify(self, topics: tuple[str, ...]) -> None:
        if topics:
            async with self._conn() as conn:
                await conn.execute(Q["notify"], (self.channel, "\n".join(topics)))

    # idempotency ------------------------------------------------------------------------

    async def _remembered(self, conn: psycopg.AsyncConnection[Any], scope: str, key: str | None) -> str | None:
        """Lock the key for this transaction and return what it made before, if anything."""
        if key is None:
            return None
        await conn.execute(Q["lock_key"], (scope, key))
        row = await self._fetch(conn, "idem_get", (scope, key))
        return row["object_id"] if row else None

    async def _remember(self, conn: psycopg.AsyncConnection[Any], scope: str, key: str | None, object_id: str, now: float) -> None:
        if key is not None:
            await conn.execute(Q["idem_put"], (scope, key, object_id, now))

    # runs -------------------------------------------------------------------------------

    async def create_run(self, run: Row, scope: str, key: str | None) -> tuple[Row, bool]:
        async with self._tx() as conn:
            existing = await self._remembered(conn, scope, key)
            if existing is not None:
                return await self._fetch(conn, "get_run", (existing,)) or {}, False
            row = await self._fetch(conn, "insert_run", {**run, "metadata": _dumps(run.get("metadata"))})
            await self._remember(conn, scope, key, run["id"], run["created_at"])
        return row or {}, True

    async def get_run(self, run_id: str) -> Row | None:
        return await self._one("get_run", run_id)

    async def count_children(self, run_id: str) -> int:
        row = await self._one("count_children", run_id)
        return int(row["n"]) if row else 0

    async def list_runs(self, filters: dict[str, Any], limit: int, before_seq: int | None) -> list[Row]:
        sql, args = runs_page(filters, limit, before_seq, mark="%s", created_after=lambda after: (Q["created_after"], [after]))
        async with self._conn() as conn:
            return await (await conn.execute(sql, args)).fetchall()

    async def finish_run(
        self, run_id: str, state: str, now: float, exit_code: int | None = None, error_code: str | None = None, error_message: str | None = None
    ) -> bool:
        async with self._conn() as conn:
            cur = await conn.execute(Q["run_finished"], (state, now, exit_code, error_code, error_message, run_id))
            return cur.rowcount == 1

    async def set_worktree(self, run_id: str, worktree: Row) -> None:
        async with self._conn() as conn:
            await conn.execute(Q["run_worktree"], (_dumps(worktree), run_id))

    async def request_cancel(self, run_id: str) -> None:
        async with self._conn() as conn:
            await conn.execute(Q["run_cancel"], (run_id,))

    async def append_events(self, run_id: str, events: list[tuple[str, str]], max_bytes: int) -> int:
        if not events:
            return 0
        async with self._tx() as conn:
            run = await self._fetch(conn, "lock_run", (run_id,))
            if run is None:
                return 0
            rows, added = cap_output(events, run["last_seq"], run["output_bytes"], max_bytes)
            now = time.time()
            async with conn.cursor() as cur:
                await cur.executemany(Q["insert_event"], [(run_id, seq, now, kind, text) for seq, kind, text in rows])
            last = rows[-1][0] if rows else run["last_seq"]
            await conn.execute(Q["bump_events"], (last, added, run_id))
        return int(last)

    async def run_events(self, run_id: str, after_seq: int, limit: int) -> list[Row]:
        return await self._all("run_events", run_id, after_seq, limit)

    # channels ---------------------------------------------------------------------------

    async def list_channels(self) -> list[Row]:
        return await self._all("channels")

    async def get_message(self, message_id: int) -> Row | None:
        return await self._one("get_message", message_id)

    async def append_message(self, message: Row, scope: str, key: str | None) -> Row:
        async with self._tx() as conn:
            existing = await self._remembered(conn, scope, key)
            if existing is not None:
                return await self._fetch(conn, "get_message", (int(existing),)) or {}
            channel = await self._fetch(conn, "channel_touch", (message["channel"], message["sent_at"], message["sent_at"]))
            row = await self._fetch(
                conn,
                "insert_message",
                (message["channel"], message["sender"], message["body"], message["kind"], message["correlation_id"], message["reply_to"], message["sent_at"]),
            )
            assert row is not None
            head = streak_of(channel, message["sender"], row["id"])
            await conn.execute(Q["mark_streak"], {"id": row["id"], "head": head})
            await conn.execute(Q["channel_streak"], (message["sender"], head, message["channel"]))
            await self._remember(conn, scope, key, str(row["id"]), message["sent_at"])
        return row

    async def latest_messages(self, channel: str, limit: int) -> list[Row]:
        return await self._all("latest", channel, limit)

    async def read_messages(self, channel: str, identity: str, limit: int, after: int | None = None) -> tuple[list[Row], bool]:
        async with self._tx() as conn:
            stored = (await self._fetch(conn, "cursor_lock", (channel, identity)) or {"last_id": 0})["last_id"]
            start = after if after is not None else stored
            rows = await self._drive(conn, unread(channel, start, identity, limit + 1))
            found, more = rows[:limit], len(rows) > limit
            cursor = found[-1]["id"] if found else start
            if cursor != stored:
                await conn.execute(Q["cursor_put"], (cursor, channel, identity))
        return found, more

    @staticmethod
    async def _drive(conn: psycopg.AsyncConnection[Any], steps: Step) -> list[Row]:
        """Run a unread.py read: each of its steps is one named query on `conn`."""
        rows: list[Row] | None = None
        try:
            while True:
                name, params = steps.send(rows)  # type: ignore[arg-type]  # the first send is None, as a generator needs
                rows = await (await conn.execute(Q[name], params)).fetchall()
        except StopIteration as done:
            return list(done.value)

    # tasks ------------------------------------------------------------------------------

    async def create_task(self, task: Row, scope: str, key: str | None) -> Row:
        async with self._tx() as conn:
            existing = await self._remembered(conn, scope, key)
            if existing is not None:
                return await self._fetch(conn, "get_task", (existing,)) or {}
            now = task["created_at"]
            row = await self._fetch(
                conn,
                "insert_task",
                (task["id"], task["queue"], task["title"], _dumps(task["payload"]), task["priority"], task["max_attempts"], now, now),
            )
            await self._remember(conn, scope, key, task["id"], now)
        return row or {}

    async def get_task(self, task_id: str) -> Row | None:
        return await self._one("get_task", task_id)

    async def claim_next(self, queue: str, holder: str, lease_seconds: float, now: float) -> Row | None:
        run_id, token = new_id("trun"), secrets.token_urlsafe(18)
        args = {"queue": queue, "run_id": run_id, "token": token, "holder": holder, "expires": now + lease_seconds, "now": now}
        args |= {"channel": self.channel, "topic": queue_topic(queue)}
        async with self._conn() as conn:
            async with self._sent_tx(conn):  # one round trip: BEGIN, expire, claim, COMMIT
                await conn.execute(Q["expire"], {"queue": queue, "now": now})
                claimed = await conn.execute(Q["claim"], args)
            return await claimed.fetchone()

    async def _held(self, conn: psycopg.AsyncConnection[Any], run_id: str, token: str, now: float, holder: str) -> Row:
        task = await self._fetch(conn, "claimed_task", (run_id,))
        if task is None:
            raise UnknownClaim(run_id)
        leases.check_held(task, run_id, token, now, holder)
        return task

    async def heartbeat(self, run_id: str, token: str, lease_seconds: float, now: float, *, holder: str) -> Row:
        async with self._conn() as conn:
            async with self._sent_tx(conn):
                task = await self._held(conn, run_id, token, now, holder)
                extended = await conn.execute(Q["extend"], (now + lease_seconds, now, task["id"]))
            return await extended.fetchone() or {}

    async def settle(self, run_id: str, token: str, outcome: str, now: float, *, holder: str, result: Any = None, error: str | None = None) -> Row:
        async with self._conn() as conn:
            async with self._sent_tx(conn):  # two round trips: BEGIN and the locking read, then the update and COMMIT
                task = await self._held(conn, run_id, token, now, holder)
                state, refund = leases.next_state(task, outcome)
                args = {"state": state, "refund": refund, "result": _dumps(result), "error": error, "now": now, "task_id": task["id"], "outcome": outcome, "run_id": run_id}
                settled = await conn.execute(Q["settle"], args)
            return await settled.fetchone() or {}

    # the dashboard's reads and its audit trail

    async def overview(self, name: str, *args: Any, write: bool = False) -> list[Row]:
        async with self._tx() as conn:
            return await (await conn.execute(OVERVIEW[name], args)).fetchall()
