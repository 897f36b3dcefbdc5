"""A2A backend: any agent that speaks the Agent2Agent protocol (1.0), over JSON-RPC or HTTP+JSON.

Each configured agent is a base URL; its agent card (at the well-known path) says which
bindings it offers, whether it streams and which credentials it wants. A run is an A2A task
(`agent:task_id`): spawn sends a message that creates one without blocking, follow-ups go on
in the same task (when it waits for input) or context, wait follows the task's stream when
the card offers streaming (resubscribing after a drop; the snapshot that opens each
subscription carries whatever was missed) and polls otherwise.

The wire goes through our HTTP core (httpx2) with the protocol's JSON written here, not
through the a2a-sdk client: that client brings httpx, protobuf and google-api-core into every
install for a few JSON calls, and the product keeps one HTTP stack. The SDK's reference server
and client check this adapter in the tests.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from datetime import UTC
from typing import Any, Unpack
from urllib.parse import quote

import anyio

from agentdeck.backends.a2a_wire import (
    CARD_PATH,
    agent_from_card,
    error_from,
    events_from_task,
    file_content,
    files_from_task,
    message,
    run_from_task,
    split_run_id,
    update_of,
)
from agentdeck.backends.base import Backend, BuildEnv, Capability, Progress, only_metadata_key, poll_until_done
from agentdeck.backends.http import PlatformClient, RetryPolicy, Timeouts
from agentdeck.backends.requests import RunFilter, SpawnRequest
from agentdeck.config import A2AConfig
from agentdeck.errors import AgentdeckError, InvalidArgument, NotFound, RateLimited, Timeout, Unauthorized, Unavailable, Unsupported
from agentdeck.models import AgentList, FileContent, Run, RunEventPage, RunPage, SessionFileList

__all__ = ["A2ABackend"]

BINDINGS = ("JSONRPC", "HTTP+JSON")
_VERSION_HEADER = {"A2A-Version": "1.0"}
_STREAM_FAILURES = 3  # subscriptions in a row that break before any update: then poll
_FINAL_READ_SECONDS = 5.0


@dataclass
class _Agent:
    """One configured agent: where its card is, and once read, how to talk to it."""

    name: str
    url: str
    card: dict[str, Any] | None = None
    binding: str = ""
    endpoint: str = ""  # the chosen interface's URL; JSON-RPC posts to it exactly (no trailing slash)
    client: PlatformClient | None = None
    streaming: bool = False


@dataclass
class _Follow:
    """What a wait has reported so far, so a resubscription repeats nothing."""

    seen: set[str] = field(default_factory=set)
    state: str = ""
    step: int = 0


class A2ABackend(Backend):
    """Tasks of A2A agents as runs; artifacts as session files."""

    kind = "a2a"
    capabilities = frozenset(
        {Capability.AGENTS, Capability.RUNS, Capability.RUN_CANCEL, Capability.RUN_FOLLOWUP, Capability.RUN_EVENTS, Capability.FILES}
    )

    def __init__(self, name: str, settings: A2AConfig, **env: Unpack[BuildEnv]) -> None:
        super().__init__(name)
        transport = env.get("transport")
        self.settings = settings
        self._key = settings.api_key.get_secret_value() if settings.api_key is not None else ""
        self._transport = transport
        self._timeouts = Timeouts(read=settings.timeout_seconds, connect=settings.connect_timeout_seconds)
        self._retry = RetryPolicy(max_retries=settings.max_retries)
        self._agents = {n: _Agent(n, url.rstrip("/")) for n, url in settings.agents.items()}
        self._cards = PlatformClient("A2A agent card", base_url="http://card.invalid", timeouts=self._timeouts, retry=self._retry, transport=transport)
        self._ids = itertools.count(1)

    async def aclose(self) -> None:
        await self._cards.aclose()
        for agent in self._agents.values():
            if agent.client is not None:
                await agent.client.aclose()

    # the agents and how to reach them ---------------------------------------------------

    def _agent(self, name: str) -> _Agent:
        agent = self._agents.get(name)
        if agent is None:
            raise NotFound(f"No A2A agent '{name}' on backend '{self.name}'; configured: {', '.join(self._agents)}. list_agents shows them.")
        return agent

    async def _card(self, agent: _Agent) -> dict[str, Any]:
        if agent.card is None:
            card = await self._cards.json("GET", agent.url + CARD_PATH)
            if not isinstance(card, dict):
                raise Unavailable(f"The agent card at {agent.url}{CARD_PATH} is not a JSON object; check the agent's URL.")
            agent.card = card
        return agent.card

    async def _ready(self, agent: _Agent) -> _Agent:
        """Read the card once, then pick the binding and build the client with the card's credentials."""
        if agent.client is not None:
            return agent
        card = await self._card(agent)
        offered = {str(i.get("protocolBinding")): str(i.get("url")) for i in card.get("supportedInterfaces") or [] if isinstance(i, dict) and i.get("url")}
        wanted = [self.settings.binding] if self.settings.binding != "auto" else list(BINDINGS)
        binding = next((b for b in wanted if b in offered), None)
        if binding is None:
            raise Unsupported(
                f"A2A agent '{agent.name}' offers {', '.join(offered) or 'no bindings'}; this backend speaks {', '.join(wanted)}. "
                f"Set backends.{self.name}.binding to one the card offers."
            )
        agent.binding, agent.endpoint = binding, offered[binding].rstrip("/")
        agent.streaming = bool((card.get("capabilities") or {}).get("streaming"))
        agent.client = PlatformClient(
            f"A2A agent {agent.name}",
            base_url=offered[binding].rstrip("/"),
            headers={**_VERSION_HEADER, **self._auth_headers(agent, card)},
            secrets=[self._key],
            timeouts=self._timeouts,
            retry=self._retry,
            transport=self._transport,
        )
        return agent

    def _auth_headers(self, agent: _Agent, card: dict[str, Any]) -> dict[str, str]:
        """The credential, sent the way the card's first usable security scheme asks."""
        schemes = card.get("securitySchemes") or {}
        if not schemes:
            return {}
        if not self._key:
            raise Unauthorized(f"A2A agent '{agent.name}' asks for credentials ({', '.join(schemes)}); set {self.settings.api_key_env} (or secrets_file) and restart.")
        for scheme in schemes.values():
            if not isinstance(scheme, dict):
                continue
            http = scheme.get("httpAuthSecurityScheme")
            if isinstance(http, dict) and str(http.get("scheme", "")).lower() == "bearer":
                return {"Authorization": f"Bearer {self._key}"}
            api_key = scheme.get("apiKeySecurityScheme")
            if isinstance(api_key, dict) and str(api_key.get("location", "header")).lower() == "header" and api_key.get("name"):
                return {str(api_key["name"]): self._key}
            if "oauth2SecurityScheme" in scheme or "openIdConnectSecurityScheme" in scheme:
                return {"Authorization": f"Bearer {self._key}"}  # a token obtained outside agentdeck
        raise Unsupported(f"A2A agent '{agent.name}' asks for a security scheme this backend cannot send (only bearer and header API keys).")

    # one protocol call, either binding ---------------------------------------------------

    async def _call(self, agent: _Agent, method: str, params: dict[str, Any], *, rest: tuple[str, str], safe: bool) -> Any:
        agent = await self._ready(agent)
        assert agent.client is not None
        try:
            if agent.binding == "JSONRPC":
                envelope = {"jsonrpc": "2.0", "id": next(self._ids), "method": method, "params": params}
                body = await agent.client.json("POST", agent.endpoint, json=envelope, idempotent=safe)
                if isinstance(body, dict) and "error" in body:
                    raise error_from(body, Unavailable(f"A2A agent '{agent.name}' refused {method}: {body['error']}"))
                if not isinstance(body, dict) or "result" not in body:
                    raise Unavailable(f"A2A agent '{agent.name}' answered {method} without a result; call again later.")
                return body["result"]
            verb, path = rest
            if verb == "GET":
                return await agent.client.json("GET", path, params={k: v for k, v in params.items() if k != "id"})
            return await agent.client.json(verb, path, json=params, idempotent=safe)
        except AgentdeckError as exc:
            raise error_from(exc.platform_body, exc) from exc

    async def _task(self, agent: _Agent, task_id: str) -> dict[str, Any]:
        task = await self._call(agent, "GetTask", {"id": task_id}, rest=("GET", f"/tasks/{_seg(task_id)}"), safe=True)
        if not isinstance(task, dict) or not task.get("id"):
            raise Unavailable(f"A2A agent '{agent.name}' answered GetTask without a task; call again later.")
        return task

    async def _send(self, agent: _Agent, body: dict[str, Any]) -> dict[str, Any]:
        # Not retried after it may have reached the agent (the core retries connect failures
        # and 429 only); a caller's idempotency key fixes the message id for its own retries.
        params = {"message": body, "configuration": {"returnImmediately": True}}
        result = await self._call(agent, "SendMessage", params, rest=("POST", "/message:send"), safe=False)
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

    # agents ------------------------------------------------------------------------------

    async def list_agents(self) -> AgentList:
        agents = []
        for agent in self._agents.values():
            agents.append(agent_from_card(agent.name, await self._card(agent), self.name))
        return AgentList(agents=agents)

    async def spawn_agent(self, request: SpawnRequest) -> Run:
        agent, prompt, idempotency_key = request.agent, request.prompt, request.idempotency_key
        context_id = only_metadata_key("A2A tasks", request, "context_id", "to continue a conversation")
        target = self._agent(agent)
        task = await self._send(target, message(prompt, key=idempotency_key, context_id=context_id))
        return run_from_task(agent, task, self.name)

    # runs --------------------------------------------------------------------------------

    async def get_run(self, run_id: str) -> Run:
        agent, task = await self._read(run_id)
        return run_from_task(agent.name, task, self.name)

    async def _read(self, run_id: str) -> tuple[_Agent, dict[str, Any]]:
        name, task_id = split_run_id(run_id)
        agent = self._agent(name)
        if task_id.startswith("message-"):
            raise NotFound(f"Run {run_id} was the agent's direct answer, not a task; its text was in the spawn_agent result.")
        return agent, await self._task(agent, task_id)

    async def list_runs(self, query: RunFilter) -> RunPage:
        state, agent, parent_run_id, created_after, limit, cursor = query.state, query.agent, query.parent_run_id, query.created_after, query.limit, query.cursor
        if parent_run_id is not None:
            raise Unsupported("A2A tasks have no parent run; call list_runs without parent_run_id.")
        if agent is None and len(self._agents) > 1:
            raise InvalidArgument(f"A2A lists tasks per agent: pass agent= one of {', '.join(self._agents)}.")
        target = self._agent(agent or next(iter(self._agents)))
        params: dict[str, Any] = {"pageSize": limit}
        if cursor:
            params["pageToken"] = cursor
        if created_after is not None:
            after = created_after if created_after.tzinfo else created_after.replace(tzinfo=UTC)
            params["statusTimestampAfter"] = after.isoformat().replace("+00:00", "Z")
        body = await self._call(target, "ListTasks", params, rest=("GET", "/tasks"), safe=True)
        tasks = [t for t in (body or {}).get("tasks") or [] if isinstance(t, dict)]
        runs = [run_from_task(target.name, t, self.name) for t in tasks]
        if state:
            runs = [r for r in runs if r.state == state]
        return RunPage(runs=runs, next_cursor=(body or {}).get("nextPageToken") or None)

    async def cancel_run(self, run_id: str) -> Run:
        name, task_id = split_run_id(run_id)
        agent = self._agent(name)
        task = await self._call(agent, "CancelTask", {"id": task_id}, rest=("POST", f"/tasks/{_seg(task_id)}:cancel"), safe=True)
        if not isinstance(task, dict) or not task.get("id"):
            task = await self._task(agent, task_id)
        return run_from_task(name, task, self.name)

    async def send_followup(self, run_id: str, message_text: str) -> Run:
        """A task that waits for input goes on with the message; an ended one starts a new task in its context."""
        agent, task = await self._read(run_id)
        state = str((task.get("status") or {}).get("state"))
        if state in ("TASK_STATE_INPUT_REQUIRED", "TASK_STATE_AUTH_REQUIRED", "TASK_STATE_WORKING", "TASK_STATE_SUBMITTED"):
            body = message(message_text, task_id=task["id"], context_id=task.get("contextId"))
        else:
            body = message(message_text, context_id=task.get("contextId"))
        new = await self._send(agent, body)
        run = run_from_task(agent.name, new, self.name)
        return run if new.get("id") == task.get("id") else run.model_copy(update={"followup_of": run_id})

    async def get_run_events(self, run_id: str, *, after_seq: int | None = None, limit: int = 100) -> RunEventPage:
        agent, task = await self._read(run_id)
        run = run_from_task(agent.name, task, self.name)
        events = [e for e in events_from_task(task) if e.seq > (after_seq or 0)]
        page = events[:limit]
        last = page[-1].seq if page else after_seq or 0
        more = len(events) > limit or not run.done
        return RunEventPage(run_id=run_id, backend=self.name, events=page, next_after_seq=last if more else None, run_state=run.state)

    async def wait_for_run(self, run_id: str, timeout: float, progress: Progress) -> Run:
        agent, task = await self._read(run_id)
        run = run_from_task(agent.name, task, self.name)
        if run.done or timeout <= 0:
            return run
        await self._ready(agent)
        if not agent.streaming:
            return await poll_until_done(self, run_id, timeout, progress)
        follow = _Follow(seen=_seen_ids(task), state=str((task.get("status") or {}).get("state")))
        with anyio.move_on_after(timeout):
            return await self._follow(agent, task["id"], run_id, follow, progress)
        with anyio.move_on_after(_FINAL_READ_SECONDS):
            run = await self.get_run(run_id)
        return run

    async def _follow(self, agent: _Agent, task_id: str, run_id: str, follow: _Follow, progress: Progress) -> Run:
        """Subscribe to the task; after a drop subscribe again (its opening snapshot fills the gap)."""
        failures = 0
        while True:
            reported = follow.step
            try:
                if await self._subscribe(agent, task_id, follow, progress):
                    return await self._catch_up(agent, task_id, follow, progress)
            except (NotFound, InvalidArgument):
                raise
            except Unsupported:
                # The task ended between the read and the subscription, or the agent cannot resubscribe.
                run = await self._catch_up(agent, task_id, follow, progress)
                return run if run.done else await poll_until_done(self, run_id, 3600, progress)
            except (Unavailable, Timeout, RateLimited):
                failures = 0 if follow.step > reported else failures + 1
                if failures >= _STREAM_FAILURES:
                    return await poll_until_done(self, run_id, 3600, progress)
                await anyio.sleep(0.25 * 2 ** (failures - 1))
                continue
            run = await self._catch_up(agent, task_id, follow, progress)  # the stream closed: where does the task stand?
            if run.done or run.state == "waiting":
                return run

    async def _catch_up(self, agent: _Agent, task_id: str, follow: _Follow, progress: Progress) -> Run:
        """Read the task and report what the follow has not reported yet (a drop near the end)."""
        task = await self._task(agent, task_id)
        await self._report({"task": task}, follow, progress)
        return run_from_task(agent.name, task, self.name)

    async def _subscribe(self, agent: _Agent, task_id: str, follow: _Follow, progress: Progress) -> bool:
        """Read one subscription; True when the task stopped (ended, or waits for input)."""
        assert agent.client is not None
        if agent.binding == "JSONRPC":
            envelope = {"jsonrpc": "2.0", "id": next(self._ids), "method": "SubscribeToTask", "params": {"id": task_id}}
            stream = agent.client.sse(agent.endpoint, method="POST", json=envelope)
        else:
            stream = agent.client.sse(f"/tasks/{_seg(task_id)}:subscribe")
        try:
            async with stream as events:
                async for sse in events:
                    item = sse.json() if sse.data else None
                    if agent.binding == "JSONRPC" and isinstance(item, dict):
                        if "error" in item:
                            raise error_from(item, Unavailable(f"A2A agent '{agent.name}' broke off the subscription: {item['error']}"))
                        item = item.get("result")
                    if isinstance(item, dict) and await self._report(item, follow, progress):
                        return True
        except AgentdeckError as exc:
            raise error_from(exc.platform_body, exc) from exc
        return False

    async def _report(self, item: dict[str, Any], follow: _Follow, progress: Progress) -> bool:
        update = update_of(item)
        if update is None:
            return False
        kind, body = update
        notes: list[str] = []
        if kind == "task":
            for said in body.get("history") or []:
                if isinstance(said, dict) and _new(follow, said.get("messageId")):
                    notes.append(_said(said))
            for artifact in body.get("artifacts") or []:
                if isinstance(artifact, dict) and _new(follow, "artifact:" + str(artifact.get("artifactId"))):
                    notes.append(f"artifact {artifact.get('name') or artifact.get('artifactId')}")
            status = body.get("status") or {}
        elif kind == "artifactUpdate":
            artifact = body.get("artifact") or {}
            if _new(follow, "artifact:" + str(artifact.get("artifactId"))):
                notes.append(f"artifact {artifact.get('name') or artifact.get('artifactId')}")
            status = {}
        elif kind == "message":
            if _new(follow, body.get("messageId")):
                notes.append(_said(body))
            status = {}
        else:
            status = body.get("status") or {}
        state = str(status.get("state") or follow.state)
        said = status.get("message")
        if isinstance(said, dict) and _new(follow, said.get("messageId")):
            notes.append(_said(said))
        if state != follow.state:
            notes.append(state.removeprefix("TASK_STATE_").lower().replace("_", "-"))
            follow.state = state
        for note in notes:
            follow.step += 1
            await progress(follow.step, note)
        return state in _STOPPED

    # artifacts as session files ------------------------------------------------------------

    async def list_session_files(self, run_id: str, path: str = "") -> SessionFileList:
        _, task = await self._read(run_id)
        files = files_from_task(task, self.name)
        return SessionFileList(run_id=run_id, backend=self.name, path=path, files=[f for f in files if f.path.startswith(path)])

    async def download_session_file(self, run_id: str, path: str, max_bytes: int) -> FileContent:
        _, task = await self._read(run_id)
        return file_content(run_id, task, path, max_bytes, self.name)

    # doctor ------------------------------------------------------------------------------------

    async def doctor(self) -> list[tuple[bool, str, str]]:
        """Per agent: the card (name, version, bindings) and whether the credential is accepted."""
        checks: list[tuple[bool, str, str]] = []
        for agent in self._agents.values():
            try:
                card = await self._card(agent)
            except AgentdeckError as exc:
                checks.append((False, f"agent {agent.name} card", f"{exc.message} Fix: check backends.{self.name}.agents.{agent.name}."))
                continue
            bindings = ", ".join(str(i.get("protocolBinding")) for i in card.get("supportedInterfaces") or [] if isinstance(i, dict))
            streams = "yes" if (card.get("capabilities") or {}).get("streaming") else "no"
            about = f"{card.get('name')} {card.get('version') or ''}".strip()
            checks.append((True, f"agent {agent.name} card", f"{about}; bindings {bindings or 'none'}; streaming {streams}"))
            try:
                await self._task(agent, "agentdeck-doctor-probe")
                checks.append((True, f"agent {agent.name} credentials", "accepted"))
            except NotFound:
                checks.append((True, f"agent {agent.name} credentials", "accepted (a probe for an unknown task was answered 'not found')"))
            except AgentdeckError as exc:
                checks.append((False, f"agent {agent.name} credentials", f"{exc.message} Fix: set {self.settings.api_key_env} to a credential the agent accepts."))
        return checks


_STOPPED = frozenset(
    {"TASK_STATE_COMPLETED", "TASK_STATE_FAILED", "TASK_STATE_REJECTED", "TASK_STATE_CANCELED", "TASK_STATE_INPUT_REQUIRED", "TASK_STATE_AUTH_REQUIRED"}
)


def _new(follow: _Follow, key: Any) -> bool:
    if not key or key in follow.seen:
        return False
    follow.seen.add(str(key))
    return True


def _seen_ids(task: dict[str, Any]) -> set[str]:
    seen = {str(m.get("messageId")) for m in task.get("history") or [] if isinstance(m, dict)}
    seen |= {"artifact:" + str(a.get("artifactId")) for a in task.get("artifacts") or [] if isinstance(a, dict)}
    said = (task.get("status") or {}).get("message")
    if isinstance(said, dict):
        seen.add(str(said.get("messageId")))
    return seen


def _said(said: dict[str, Any]) -> str:
    texts = [str(p["text"]) for p in said.get("parts") or [] if isinstance(p, dict) and isinstance(p.get("text"), str)]
    who = str(said.get("role", "")).removeprefix("ROLE_").lower() or "agent"
    text = " ".join(texts)
    return f"{who}: {text[:120]}" if text else f"{who} message"


def _seg(value: str) -> str:
    return quote(value, safe="")

