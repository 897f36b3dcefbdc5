"""The seeded stores of the scale and dashboard rows, made once per `python -m bench` and shared.

Rows go in with bulk SQL in one transaction against the store's own schema (made by
agentdeck's Store), with the tables' indexes dropped during the insert and made again after
it: building an index once is cheaper than growing it row by row (a third less time here).

- `sized(settings)`: two data dirs, with 100 and with 100,000 of each: finished runs of four
  agents (70 % succeeded, 20 % failed, 10 % cancelled), the newest five created in the last
  minute; tasks in one queue, 90 % completed, 9 % queued, 1 % claimed; messages on #general, a
  few near the start containing a rare word (a search for it reads the whole channel).
- `own_messages(settings, own)`: #bench with one message by a peer, then `own` by the reader,
  then one more by the peer.
"""

from __future__ import annotations

import contextlib
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

from agentdeck.backends.local.store.sqlite_db import SqliteDb
from bench.settings import Settings

__all__ = ["CHANNEL", "LARGE", "RARE", "READER", "SMALL", "own_messages", "sized"]

SMALL, LARGE = 100, 100_000
CHANNEL = "general"
RARE = "zebracorn"
READER = "bench"  # the identity bench.servers.agentdeck serves as
_STATES = ["succeeded"] * 7 + ["failed"] * 2 + ["cancelled"]
_AGENTS = ("echo", "review", "triage", "build")


@contextlib.contextmanager
def _bulk(data_dir: Path, tables: tuple[str, ...]) -> Iterator[sqlite3.Connection]:
    """A connection in one write transaction on a fresh store, `tables`' indexes made after it."""
    SqliteDb(data_dir / "agentdeck.db").close()  # the schema, exactly as agentdeck makes it
    db = sqlite3.connect(data_dir / "agentdeck.db", isolation_level=None)
    try:
        marks = ",".join("?" * len(tables))
        indexes = db.execute(f"SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL AND tbl_name IN ({marks})", tables).fetchall()
        db.execute("BEGIN IMMEDIATE")
        for name, _ in indexes:
            db.execute(f'DROP INDEX "{name}"')
        yield db
        for _, sql in indexes:
            db.execute(sql)
        db.execute("COMMIT")
    finally:
        db.close()


def _seed(data_dir: Path, count: int, now: float) -> None:
    with _bulk(data_dir, ("runs", "tasks", "messages")) as db:
        runs = []
        for i in range(count):
            created = now - 30 if i >= count - 5 else now - 7200 - (count - i)
            state = _STATES[i % 10]
            runs.append((f"run_{i:016x}", _AGENTS[i % 4], f"prompt {i}", state, created, created + 1, created + 2, f"run_{i:016x}", "bench", 0 if state == "succeeded" else 1))
        db.executemany(
            "INSERT INTO runs (id, agent, prompt, state, created_at, started_at, ended_at, thread_id, created_by, exit_code) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", runs
        )
        tasks = []
        for i in range(count):
            kind = i % 100
            state = "claimed" if kind == 0 else "queued" if kind < 10 else "completed"
            lease = now + 3600 if state == "claimed" else None
            tasks.append((f"task_{i:016x}", "default", f"task {i}", state, 1 if state != "queued" else 0, 3, now - count + i, now, lease))
        db.executemany(
            "INSERT INTO tasks (id, queue, title, state, attempts, max_attempts, created_at, updated_at, lease_expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", tasks
        )
        messages = []
        for i in range(count):
            body = f"status {i}: " + (f"found a {RARE} in the logs" if i < 3 else "build green, moving to the next task")
            messages.append((CHANNEL, f"agent-{i % 7}", body, "message", None, None, now - count + i))
        db.executemany("INSERT INTO messages (channel, sender, body, kind, correlation_id, reply_to, sent_at) VALUES (?, ?, ?, ?, ?, ?, ?)", messages)
        db.execute("INSERT INTO channels (name, created_at, message_count, last_message_at) VALUES (?, ?, ?, ?)", (CHANNEL, now - count, count, now))


def _seed_own(data_dir: Path, own: int, now: float) -> None:
    """The streak columns are filled as the store fills them on append (unread.py): the reader's
    messages are one streak, whose head knows its last message."""
    with _bulk(data_dir, ("messages",)) as db:
        last = own + 2
        rows = [(1, "peer", "before", now, 1, 1)]
        rows += [(i, READER, f"own {i}", now, 2, last - 1 if i == 2 else None) for i in range(2, last)]
        rows.append((last, "peer", "after", now, last, last))
        db.executemany(
            "INSERT INTO messages (id, channel, sender, body, kind, sent_at, streak_head, streak_last) VALUES (?, 'bench', ?, ?, 'message', ?, ?, ?)", rows
        )
        db.execute(
            "INSERT INTO channels (name, created_at, message_count, last_message_at, last_sender, streak_head) VALUES ('bench', ?, ?, ?, 'peer', ?)",
            (now, last, now, last),
        )


def sized(settings: Settings) -> tuple[float, dict[int, Path]]:
    """(the seeding time `now`, {SMALL: data dir, LARGE: data dir}), seeded on first use."""
    if "sized" not in settings.shared:
        now = time.time()
        dirs = {}
        for size in (SMALL, LARGE):
            dirs[size] = settings.dir(f"store-{size}") / "data"
            started = time.perf_counter()
            _seed(dirs[size], size, now)
            settings.say(f"seeded {size:,} runs, tasks and messages in {time.perf_counter() - started:.1f} s")
        settings.shared["sized"] = (now, dirs)
    seeded: tuple[float, dict[int, Path]] = settings.shared["sized"]
    return seeded


def own_messages(settings: Settings, own: int) -> Path:
    """A data dir whose #bench holds `own` messages of the reader between two of a peer's."""
    data_dir = settings.dir(f"store-own-{own}") / "data"
    started = time.perf_counter()
    _seed_own(data_dir, own, time.time())
    settings.say(f"seeded {own:,} own messages in {time.perf_counter() - started:.1f} s")
    return data_dir
