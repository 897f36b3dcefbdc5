"""The local platform's channels: durable, ordered, read once per identity, never by the sender."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass

from agentdeck.backends.local.limits import MAX_BODY_BYTES, text_size
from agentdeck.backends.local.part import Part
from agentdeck.backends.local.rows import channel_from_row, message_from_row
from agentdeck.backends.local.store import Row
from agentdeck.errors import InvalidArgument, NotFound
from agentdeck.models import ChannelList, ChannelMessage, MessageBatch

__all__ = ["Channels", "channel_name"]

_CHANNEL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_MAX_ID = 2**63 - 1  # message ids are 64-bit integers in both stores


def channel_name(channel: str) -> str:
    """The channel's name without a leading '#', or InvalidArgument."""
    name = channel.strip().removeprefix("#")
    if not _CHANNEL.match(name):
        raise InvalidArgument("channel must be 1-64 letters, digits, '_', '.' or '-' (for example 'general'); list_channels shows existing ones")
    return name


def _message_id(value: str, what: str) -> int:
    """A message id from a client, or InvalidArgument: ASCII digits within int64, not just any digits."""
    if not re.fullmatch(r"[0-9]{1,19}", value) or int(value) > _MAX_ID:
        raise InvalidArgument(f"{what} must be the id of a message on this channel (digits, as receive_channel_messages returned them), or omitted")
    return int(value)


@dataclass(eq=False, repr=False)
class Channels(Part):
    """The channels of backend `name`, kept in `store`; `caller` says who is sending or reading."""

    def _message(self, row: Row) -> ChannelMessage:
        return message_from_row(row, self.name, self.caller().identity)

    async def list_channels(self) -> ChannelList:
        rows = await self.store.list_channels()
        return ChannelList(channels=[channel_from_row(r, self.name) for r in rows])

    async def send(self, channel: str, body: str, kind: str | None, correlation_id: str | None, reply_to: str | None, key: str | None) -> ChannelMessage:
        name, identity = channel_name(channel), self.caller().identity
        text_size(body, "body", MAX_BODY_BYTES)
        reply_id = None
        if reply_to is not None:
            original = await self.store.get_message(_message_id(reply_to, "reply_to"))
            if original is None or original["channel"] != name:
                raise NotFound(f"No message '{reply_to}' on #{name} to reply to; use an id from receive_channel_messages.")
            reply_id = original["id"]
        message = {
            "channel": name,
            "sender": identity,
            "body": body,
            "kind": kind or "message",
            "correlation_id": correlation_id,
            "reply_to": reply_id,
            "sent_at": time.time(),
        }
        row = await self.store.append_message(message, f"send:{identity}", key)
        await self.wakeups.publish(f"channel:{name}", "channels")
        return self._message(row)

    async def receive(self, channel: str, *, wait_seconds: float = 0, limit: int = 20, after: str | None = None) -> MessageBatch:
        name = channel_name(channel)
        start = _message_id(after, "after") if after is not None else None
        identity = self.caller().identity
        deadline = time.monotonic() + wait_seconds
        topic = f"channel:{name}"
        if wait_seconds <= 0:  # a look, not a wait: nothing to register for
            rows, more = await self.store.read_messages(name, identity, limit, start)
            return MessageBatch(channel=name, backend=self.name, messages=[self._message(r) for r in rows], more=more)
        while True:
            event = self.wakeups.register(topic)
            try:
                rows, more = await self.store.read_messages(name, identity, limit, start)
                start = None  # the cursor now stands past `after`
                self.wakeups.open()
                remaining = deadline - time.monotonic()
                if rows or remaining <= 0:
                    return MessageBatch(channel=name, backend=self.name, messages=[self._message(r) for r in rows], more=more)
                await self.wakeups.wait(event, remaining)
            finally:
                self.wakeups.unregister(topic, event)

    async def history(self, channel: str, *, limit: int = 50) -> MessageBatch:
        name = channel_name(channel)
        rows = await self.store.latest_messages(name, limit)
        return MessageBatch(channel=name, backend=self.name, messages=[self._message(r) for r in rows])
