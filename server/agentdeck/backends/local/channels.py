"""The local platform's channels: durable, ordered, read once per identity, never by the sender."""

from __future__ import annotations

import re
import time
from typing import Any

from agentdeck.backends.local.limits import MAX_BODY_BYTES, text_size, ts
from agentdeck.backends.local.store import Store
from agentdeck.backends.local.wakeups import Wakeups
from agentdeck.backends.requests import MessageDraft
from agentdeck.errors import InvalidArgument, NotFound
from agentdeck.models import Channel, ChannelList, ChannelMessage, MessageBatch

__all__ = ["Channels"]

_CHANNEL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_MAX_ID = 2**63 - 1  # message ids are 64-bit integers in both stores


def _message_id(value: str, what: str) -> int:
    """A message id from a client, or InvalidArgument: ASCII digits within int64, not just any digits."""
    if not re.fullmatch(r"[0-9]{1,19}", value) or int(value) > _MAX_ID:
        raise InvalidArgument(f"{what} must be the id of a message on this channel (digits, as receive_channel_messages returned them), or omitted")
    return int(value)


class Channels:
    """Channel operations of LocalBackend (a part of it, split out by noun)."""

    name: str
    identity: str
    store: Store
    wakeups: Wakeups

    @staticmethod
    def _channel_name(channel: str) -> str:
        name = channel.strip().removeprefix("#")
        if not _CHANNEL.match(name):
            raise InvalidArgument("channel must be 1-64 letters, digits, '_', '.' or '-' (for example 'general'); list_channels shows existing ones")
        return name

    def _message(self, row: dict[str, Any]) -> ChannelMessage:
        return ChannelMessage(
            id=str(row["id"]),
            channel=row["channel"],
            backend=self.name,
            sender=row["sender"],
            body=row["body"],
            kind=row["kind"],
            correlation_id=row["correlation_id"],
            reply_to=None if row["reply_to"] is None else str(row["reply_to"]),
            sent_at=ts(row["sent_at"]),  # type: ignore[arg-type]
            from_you=row["sender"] == self.identity,
        )

    async def list_channels(self) -> ChannelList:
        rows = await self.store.list_channels()
        return ChannelList(
            channels=[Channel(name=r["name"], backend=self.name, message_count=r["message_count"], last_message_at=ts(r["last_message_at"])) for r in rows]
        )

    async def send_channel_message(self, draft: MessageDraft) -> ChannelMessage:
        channel, body, kind, correlation_id, reply_to, idempotency_key = draft.channel, draft.body, draft.kind, draft.correlation_id, draft.reply_to, draft.idempotency_key
        name = self._channel_name(channel)
        text_size(body, "body", MAX_BODY_BYTES)
        reply_id = None
        if reply_to is not None:
            original = await self.store.get_message(_message_id(reply_to, "reply_to"))
            if original is None or original["channel"] != name:
                raise NotFound(f"No message '{reply_to}' on #{name} to reply to; use an id from receive_channel_messages.")
            reply_id = original["id"]
        message = {
            "channel": name,
            "sender": self.identity,
            "body": body,
            "kind": kind or "message",
            "correlation_id": correlation_id,
            "reply_to": reply_id,
            "sent_at": time.time(),
        }
        row = await self.store.append_message(message, f"send:{self.identity}", idempotency_key)
        await self.wakeups.publish(f"channel:{name}", "channels")
        return self._message(row)

    async def receive_channel_messages(self, channel: str, *, wait_seconds: float = 0, limit: int = 20, after: str | None = None) -> MessageBatch:
        name = self._channel_name(channel)
        start = _message_id(after, "after") if after is not None else None
        deadline = time.monotonic() + wait_seconds
        topic = f"channel:{name}"
        while True:
            event = self.wakeups.register(topic)
            try:
                rows, more = await self.store.read_messages(name, self.identity, limit, start)
                start = None  # the cursor now stands past `after`
                self.wakeups.open()
                remaining = deadline - time.monotonic()
                if rows or remaining <= 0:
                    return MessageBatch(channel=name, backend=self.name, messages=[self._message(r) for r in rows], more=more)
                await self.wakeups.wait(event, remaining)
            finally:
                self.wakeups.unregister(topic, event)

    async def channel_history(self, channel: str, *, limit: int = 50) -> MessageBatch:
        name = self._channel_name(channel)
        rows = await self.store.latest_messages(name, limit)
        return MessageBatch(channel=name, backend=self.name, messages=[self._message(r) for r in rows])
