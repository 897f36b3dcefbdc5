"""Receiving skips the reader's own messages by jumping over its streaks, never by scanning them."""

from __future__ import annotations

import random
import time
from pathlib import Path

import pytest

from agentdeck.backends.local.store import Store
from agentdeck.backends.local.store.sqlite_db import SqliteDb


async def _send(store: Store, sender: str, body: str, channel: str = "c") -> int:
    message = {"channel": channel, "sender": sender, "body": body, "kind": "message", "correlation_id": None, "reply_to": None, "sent_at": time.time()}
    return int((await store.append_message(message, f"send:{sender}", None))["id"])


@pytest.mark.usefixtures("store_url")
async def test_reads_with_cursor_and_after_match_a_plain_filter_on_mixed_streaks(store: Store) -> None:
    rng = random.Random(19)
    log: list[tuple[int, str]] = []
    sender = "me"
    for i in range(400):
        if rng.random() < 0.3:  # streaks of every length, the reader's own included
            sender = rng.choice(["me", "you", "them"])
        log.append((await _send(store, sender, f"m{i}"), sender))
    await _send(store, "you", "x", channel="elsewhere")  # another channel's streak does not leak in

    def expected(after: int, limit: int) -> list[int]:
        return [i for i, s in log if i > after and s != "me"][:limit]

    for _ in range(40):
        after, limit = rng.choice([0, *[i for i, _ in log]]), rng.randint(1, 30)
        rows, more = await store.read_messages("c", "me", limit, after)
        assert [r["id"] for r in rows] == expected(after, limit)
        assert more == (len(expected(after, limit + 1)) > limit)
    got: list[int] = []
    while True:  # the cursor alone, from where the last read with `after` left it
        rows, _ = await store.read_messages("c", "me", 7, 0 if not got else None)
        if not rows:
            break
        got += [r["id"] for r in rows]
    assert got == expected(0, len(log))


def test_a_read_costs_the_same_after_one_own_message_as_after_twenty_thousand(tmp_path: Path) -> None:
    db = SqliteDb(tmp_path / "agentdeck.db")
    first = {}
    for channel, own in (("few", 1), ("many", 20_000)):
        first[channel] = _append(db, channel, "peer", "first")
        for i in range(own):
            _append(db, channel, "me", f"own {i}")
        _append(db, channel, "peer", "last")

    def work(channel: str) -> int:
        """SQLite virtual-machine steps of one receive after the peer's first message."""
        steps = [0]

        def count() -> int:
            steps[0] += 1
            return 0

        db._db.set_progress_handler(count, 1)
        try:
            rows, more = db.read_messages(channel, "me", 20, after=first[channel])
        finally:
            db._db.set_progress_handler(None, 1)
        assert [r["body"] for r in rows] == ["last"] and not more
        return steps[0]

    few, many = work("few"), work("many")
    assert many <= few + 10, (few, many)  # a scan of the 20,000 would take tens of thousands of steps
    db.close()


def _append(db: SqliteDb, channel: str, sender: str, body: str) -> int:
    message = {"channel": channel, "sender": sender, "body": body, "kind": "message", "correlation_id": None, "reply_to": None, "sent_at": time.time()}
    return int(db.append_message(message, f"send:{sender}", None)["id"])
