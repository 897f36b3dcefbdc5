"""How the A2A backend reaches its agents: each agent's card, binding and credential, and one
protocol call in either binding (JSON-RPC or HTTP+JSON).

The card (at the well-known path) is read once per agent; it says which bindings the agent
offers, whether it streams and which credential it wants. Refusals are read by the A2A dialect
(a2a_wire.DIALECT) in the HTTP core, or, for a JSON-RPC error inside a 200 answer, by the same
dialect through `PlatformClient.refused`.
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx2

from agentdeck.backends.a2a_wire import CARD_PATH, DIALECT
from agentdeck.backends.dialect import Auth
from agentdeck.backends.http import PlatformClient, RetryPolicy, Timeouts
from agentdeck.errors import NotFound, Unauthorized, Unavailable, Unsupported

__all__ = ["BINDINGS", "A2AAgent", "A2AClient", "segment"]

BINDINGS = ("JSONRPC", "HTTP+JSON")
_VERSION_HEADER = {"A2A-Version": "1.0"}


@dataclass
class A2AAgent:
    """One configured agent: where its card is, and once read, how to talk to it."""

    name: str
    url: str
    card: dict[str, Any] | None = None
    binding: str = ""
    endpoint: str = ""  # the chosen interface's URL; JSON-RPC posts to it exactly (no trailing slash)
    client: PlatformClient | None = None
    streaming: bool = False


def segment(value: str) -> str:
    return quote(value, safe="")


class A2AClient:
    """The configured agents of one backend, and the protocol calls to them."""

    def __init__(self, backend: str, settings: Any, transport: httpx2.AsyncBaseTransport | None) -> None:
        self.backend = backend
        self.settings = settings
        self._key = settings.api_key.get_secret_value() if settings.api_key is not None else ""
        self._transport = transport
        self._timeouts = Timeouts(read=settings.timeout_seconds, connect=settings.connect_timeout_seconds)
        self._retry = RetryPolicy(max_retries=settings.max_retries)
        self.agents = {n: A2AAgent(n, url.rstrip("/")) for n, url in settings.agents.items()}
        self._cards = PlatformClient("A2A agent card", base_url="http://card.invalid", timeouts=self._timeouts, retry=self._retry, transport=transport)
        self._ids = itertools.count(1)

    async def aclose(self) -> None:
        await self._cards.aclose()
        for agent in self.agents.values():
            if agent.client is not None:
                await agent.client.aclose()

    def agent(self, name: str) -> A2AAgent:
        agent = self.agents.get(name)
        if agent is None:
            raise NotFound(f"No A2A agent '{name}' on backend '{self.backend}'; configured: {', '.join(self.agents)}. list_agents shows them.")
        return agent

    async def card(self, agent: A2AAgent) -> dict[str, Any]:
        if agent.card is None:
            card = await self._cards.json("GET", agent.url + CARD_PATH)
            if not isinstance(card, dict):
                raise Unavailable(f"The agent card at {agent.url}{CARD_PATH} is not a JSON object; check the agent's URL.")
            agent.card = card
        return agent.card

    async def ready(self, agent: A2AAgent) -> PlatformClient:
        """Read the card once, then pick the binding and build the client with the card's credential."""
        if agent.client is not None:
            return agent.client
        card = await self.card(agent)
        offered = {str(i.get("protocolBinding")): str(i.get("url")) for i in card.get("supportedInterfaces") or [] if isinstance(i, dict) and i.get("url")}
        wanted = [self.settings.binding] if self.settings.binding != "auto" else list(BINDINGS)
        binding = next((b for b in wanted if b in offered), None)
        if binding is None:
            raise Unsupported(
                f"A2A agent '{agent.name}' offers {', '.join(offered) or 'no bindings'}; this backend speaks {', '.join(wanted)}. "
                f"Set backends.{self.backend}.binding to one the card offers."
            )
        agent.binding, agent.endpoint = binding, offered[binding].rstrip("/")
        agent.streaming = bool((card.get("capabilities") or {}).get("streaming"))
        agent.client = PlatformClient(
            f"A2A agent {agent.name}",
            base_url=offered[binding].rstrip("/"),
            headers=_VERSION_HEADER,
            secrets=[self._key],
            auth=self._auth(agent, card),
            timeouts=self._timeouts,
            retry=self._retry,
            transport=self._transport,
            dialect=DIALECT,
        )
        return agent.client

    def _auth(self, agent: A2AAgent, card: dict[str, Any]) -> Auth:
        """The credential, sent the way the card's first usable security scheme asks."""
        schemes = card.get("securitySchemes") or {}
        if not schemes:
            return Auth()
        if not self._key:
            raise Unauthorized(f"A2A agent '{agent.name}' asks for credentials ({', '.join(schemes)}); set {self.settings.api_key_env} (or secrets_file) and restart.")
        for scheme in schemes.values():
            if not isinstance(scheme, dict):
                continue
            http = scheme.get("httpAuthSecurityScheme")
            if isinstance(http, dict) and str(http.get("scheme", "")).lower() == "bearer":
                return Auth.key("Authorization", self._key, scheme="Bearer")
            api_key = scheme.get("apiKeySecurityScheme")
            if isinstance(api_key, dict) and str(api_key.get("location", "header")).lower() == "header" and api_key.get("name"):
                return Auth.key(str(api_key["name"]), self._key)
            if "oauth2SecurityScheme" in scheme or "openIdConnectSecurityScheme" in scheme:
                return Auth.key("Authorization", self._key, scheme="Bearer")  # a token obtained outside agentdeck
        raise Unsupported(f"A2A agent '{agent.name}' asks for a security scheme this backend cannot send (only bearer and header API keys).")

    async def call(self, agent: A2AAgent, method: str, params: dict[str, Any], *, rest: tuple[str, str], safe: bool) -> Any:
        """One protocol call: `method` over JSON-RPC, or the `rest` (verb, path) of HTTP+JSON."""
        client = await self.ready(agent)
        if agent.binding == "JSONRPC":
            envelope = {"jsonrpc": "2.0", "id": next(self._ids), "method": method, "params": params}
            body = await client.json("POST", agent.endpoint, json=envelope, idempotent=safe)
            if isinstance(body, dict) and "error" in body:
                raise client.refused(body) or Unavailable(f"A2A agent '{agent.name}' refused {method}: {body['error']}")
            if not isinstance(body, dict) or "result" not in body:
                raise Unavailable(f"A2A agent '{agent.name}' answered {method} without a result; call again later.")
            return body["result"]
        verb, path = rest
        if verb == "GET":
            return await client.json("GET", path, params={k: v for k, v in params.items() if k != "id"})
        return await client.json(verb, path, json=params, idempotent=safe)

    async def task(self, agent: A2AAgent, task_id: str) -> dict[str, Any]:
        task = await self.call(agent, "GetTask", {"id": task_id}, rest=("GET", f"/tasks/{segment(task_id)}"), safe=True)
        if not isinstance(task, dict) or not task.get("id"):
            raise Unavailable(f"A2A agent '{agent.name}' answered GetTask without a task; call again later.")
        return task

    async def send(self, agent: A2AAgent, body: dict[str, Any]) -> dict[str, Any]:
        """SendMessage without blocking: the task it made or went on with."""
        # Not retried after it may have reached the agent (the core retries connect failures
        # and 429 only); a caller's idempotency key fixes the message id for its own retries.
        params = {"message": body, "configuration": {"returnImmediately": True}}
        result = await self.call(agent, "SendMessage", params, rest=("POST", "/message:send"), safe=False)
        if isinstance(result, dict) and isinstance(result.get("task"), dict):
            return result["task"]
        if isinstance(result, dict) and isinstance(result.get("message"), dict):
            said = result["message"]
            # An agent may answer at once with a message and no task: a run that has already ended.
            return {
                "id": f"message-{said.get('messageId')}",
                "contextId": said.get("contextId"),
                "status": {"state": "TASK_STATE_COMPLETED", "message": said},
                "history": [body],
            }
        raise Unavailable(f"A2A agent '{agent.name}' answered SendMessage with neither a task nor a message.")

    @asynccontextmanager
    async def subscription(self, agent: A2AAgent, task_id: str) -> AsyncIterator[AsyncIterator[Any]]:
        """Subscribe to a task; iterating yields each update's JSON (a JSON-RPC error in it raises)."""
        client = await self.ready(agent)
        if agent.binding == "JSONRPC":
            envelope = {"jsonrpc": "2.0", "id": next(self._ids), "method": "SubscribeToTask", "params": {"id": task_id}}
            stream = client.sse(agent.endpoint, method="POST", json=envelope)
        else:
            stream = client.sse(f"/tasks/{segment(task_id)}:subscribe")
        async with stream as events:

            async def updates() -> AsyncIterator[Any]:
                async for sse in events:
                    item = sse.json() if sse.data else None
                    if agent.binding == "JSONRPC" and isinstance(item, dict):
                        if "error" in item:
                            raise client.refused(item) or Unavailable(f"A2A agent '{agent.name}' broke off the subscription: {item['error']}")
                        item = item.get("result")
                    yield item

            yield updates()
