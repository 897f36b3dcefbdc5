"""Reading a channel without paying for one's own messages, written once for both stores.

A reader never receives what it sent, but its own messages sit between the others' in id
order, and an agent that has sent 300,000 would scan all of them on every receive if the
query filtered them row by row. So each channel is cut into streaks: maximal runs of
consecutive messages by one sender. Every message records its streak's first message
(`streak_head`), and that first message records the streak's last (`streak_last`); both are
set when the message is appended, under the channel's write lock. The page query `after`
starts past the reader's own streak when the next message is the reader's (two primary-key
probes, in the database), so every page starts with someone else's message; own messages
inside a page are dropped here. A read returning n messages takes at most n pages, however
much the reader has sent.

`unread` is written as a generator of (query name, parameters) that is sent each query's
rows, so the SQLite store (blocking) and the PostgreSQL store (async) drive the same steps
with their own named query. Messages stored before streaks existed have none and are
filtered row by row, as before. Stdlib only.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

from agentdeck.backends.local.store.base import Row

__all__ = ["Step", "streak_of", "unread"]

Step = Generator[tuple[str, dict[str, Any]], list[Row], list[Row]]


def unread(channel: str, start: int, identity: str, want: int) -> Step:
    """Up to `want` messages after id `start` that `identity` did not send, oldest first."""
    found: list[Row] = []
    position = start
    while len(found) < want:
        need = want - len(found)
        rows = yield "after", {"channel": channel, "position": position, "me": identity, "limit": need}
        found += [r for r in rows if r["sender"] != identity]
        if len(rows) < need:
            break
        position = rows[-1]["id"]
    return found[:want]


def streak_of(channel: Row | None, sender: str, message_id: int) -> int:
    """The streak head of a message `sender` appends after the channel's last (None: a new channel)."""
    if channel and channel.get("last_sender") == sender and channel.get("streak_head") is not None:
        return int(channel["streak_head"])
    return message_id
