"""Resources: runs, their events, channels, and who the caller is (agentdeck://...).

Resources read the default backend. Reading a channel shows its latest messages without
moving the caller's receive cursor. A resource raises our errors as they come; boundary.py
turns them into the read's protocol error.
"""

from __future__ import annotations

import json
from typing import Any

from mcp.server.mcpserver import MCPServer

from agentdeck import __version__
from agentdeck.backends import Capability, Deck
from agentdeck.errors import AgentdeckError
from agentdeck.models import BackendInfo, ContextInfo

__all__ = ["context_info", "register_resources"]


async def context_info(deck: Deck) -> ContextInfo:
    platform: dict[str, Any] = {}
    for name, backend in deck.backends.items():
        try:
            platform[name] = await backend.context()
        except AgentdeckError as exc:
            platform[name] = {"error": exc.to_dict()}
    caller = deck.caller()
    return ContextInfo(
        identity=caller.identity,
        run_id=caller.run_id,
        backends=[
            BackendInfo(name=n, kind=b.kind, default=n == deck.default, capabilities=sorted(c.value for c in b.capabilities))
            for n, b in deck.backends.items()
        ],
        limits={"wait_for_run_max_seconds": 50, "receive_wait_max_seconds": 50},
        platform=platform,
        version=__version__,
    )


def _json(value: Any) -> str:
    return json.dumps(value, indent=2, default=str)


def register_resources(server: MCPServer[Any], deck: Deck) -> None:
    default = deck.pick(None)

    @server.resource("agentdeck://context", name="context", mime_type="application/json")
    async def context() -> str:
        """Who you are, which backends this server has and what each can do, and limits."""
        return _json((await context_info(deck)).model_dump(mode="json"))

    @server.resource("agentdeck://me", name="me", mime_type="application/json")
    async def me() -> str:
        """Your identity and what the default backend knows about you (on AGH: session, soul, coordinator)."""
        caller = deck.caller()
        return _json({"identity": caller.identity, "run_id": caller.run_id, "backend": default.name, "platform": await default.context()})

    if Capability.RUNS in default.capabilities:

        @server.resource("agentdeck://runs/{run_id}", name="run", mime_type="application/json")
        async def run(run_id: str) -> str:
            """A run's current state on the default backend."""
            return _json((await default.get_run(run_id)).model_dump(mode="json"))

    if Capability.RUN_EVENTS in default.capabilities:

        @server.resource("agentdeck://runs/{run_id}/events", name="run_events", mime_type="application/json")
        async def run_events(run_id: str) -> str:
            """A run's first 200 output events; get_run_events pages through the rest."""
            return _json((await default.get_run_events(run_id, limit=200)).model_dump(mode="json"))

    if Capability.CHANNELS in default.capabilities:

        @server.resource("agentdeck://channels/{channel}", name="channel", mime_type="application/json")
        async def channel(channel: str) -> str:
            """A channel's latest 50 messages (content from other agents), without marking them read."""
            return _json((await default.channel_history(channel, limit=50)).model_dump(mode="json"))
