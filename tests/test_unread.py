"""Receiving skips the reader's own messages by jumping over its streaks, never by scanning them."""

from __future__ import annotations

import random
import time
from typing import Any

import pytest

from agentdeck.backends.local.store_api import Store
from agentdeck.backends.local.unread import streak_of, unread

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


def test_a_read_touches_a_bounded_number_of_rows_however_much_the_reader_sent() -> None:
    messages: list[dict[str, Any]] = []
    channel: dict[str, Any] | None = None

    def append(sender: str) -> None:
        nonlocal channel
        new_id = len(messages) + 1
        head = streak_of(channel, sender, new_id)
        messages.append({"id": new_id, "sender": sender, "streak_head": head, "streak_last": None})
        messages[head - 1]["streak_last"] = new_id
        channel = {"last_sender": sender, "streak_head": head}

    for block in range(50):  # alternating: the others' one message, then 2,000 of the reader's own
        append("you")
        for _ in range(2_000):
            append("me")
    touched = 0

    def run(want: int, after: int) -> list[int]:
        nonlocal touched
        steps, rows = unread("c", after, "me", want), None
        try:
            while True:
                name, args = steps.send(rows)  # type: ignore[arg-type]
                if name == "after":
                    rows = [m for m in messages if m["id"] > args[1]][: args[2]]
                else:
                    rows = [m for m in messages if m["id"] == args[0]]
                touched += len(rows)
        except StopIteration as done:
            return [r["id"] for r in done.value]

    assert run(21, 0) == [1 + 2_001 * i for i in range(21)]
    assert touched < 21 * 21 * 3  # bounded by the page, not by the 100,000 own messages
    touched = 0
    assert run(21, 2) == [1 + 2_001 * i for i in range(1, 22)]  # `after` inside an own streak
    assert touched < 21 * 21 * 3
