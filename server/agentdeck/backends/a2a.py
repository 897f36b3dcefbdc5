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

By role: a2a_client.py reaches the agents (card, binding, credential, one protocol call);
a2a_follow.py follows a task while wait_for_run waits; a2a_wire.py turns the protocol's JSON,
refusals included (its dialect), into our models and errors.
"""

from __future__ import annotations

import hashlib
from datetime import UTC
from typing import Any, Unpack

import anyio

from agentdeck.backends.a2a_client import A2AAgent, A2AClient, segment
from agentdeck.backends.a2a_follow import TaskFollow
from agentdeck.backends.a2a_wire import agent_from_card, events_from_task, file_content, files_from_task, message, run_from_task, split_run_id
from agentdeck.backends.base import Backend, BuildEnv, Capability, Progress, only_metadata_key, poll_until_done
from agentdeck.backends.records import Records
from agentdeck.backends.requests import RunFilter, SpawnRequest
from agentdeck.config import A2AConfig
from agentdeck.errors import AgentdeckError, Conflict, InvalidArgument, NotFound, Unsupported
from agentdeck.models import AgentList, FileContent, Run, RunEventPage, RunPage, SessionFileList

__all__ = ["A2ABackend"]

_FINAL_READ_SECONDS = 5.0


class A2ABackend(Backend):
    """Tasks of A2A agents as runs; artifacts as session files."""

    kind = "a2a"
    capabilities = frozenset(
        {Capability.AGENTS, Capability.RUNS, Capability.RUN_CANCEL, Capability.RUN_FOLLOWUP, Capability.RUN_EVENTS, Capability.FILES}
    )

    def __init__(self, name: str, settings: A2AConfig, **env: Unpack[BuildEnv]) -> None:
        super().__init__(name)
        self.settings = settings
        self.identity = env.get("identity", "")
        self._a2a = A2AClient(name, settings, env.get("transport"))
        self._agents = self._a2a.agents
        self._keys = Records.of_backend(env.get("data_dir"), "a2a", name, "idempotency")

    async def aclose(self) -> None:
        await self._a2a.aclose()

    # agents ------------------------------------------------------------------------------

    async def list_agents(self) -> AgentList:
        agents = []
        for agent in self._agents.values():
            agents.append(agent_from_card(agent.name, await self._a2a.card(agent), self.name))
        return AgentList(agents=agents)

    async def spawn_agent(self, request: SpawnRequest) -> Run:
        agent, prompt, idempotency_key = request.agent, request.prompt, request.idempotency_key
        context_id = only_metadata_key("A2A tasks", request, "context_id", "to continue a conversation")
        target = self._a2a.agent(agent)
        if idempotency_key is None:
            return run_from_task(agent, await self._a2a.send(target, message(prompt, context_id=context_id)), self.name)
        # A2A has no idempotency key: the message id only spares the agent our own retries. A
        # record in the data dir (shared by servers on it) maps the key to the task it made.
        fingerprint = hashlib.sha256(f"{agent}\0{context_id or ''}\0{prompt}".encode()).hexdigest()
        async with self._keys.locked(f"{self.identity}\0{idempotency_key}") as record:
            if record.data.get("run_id"):
                if record.data.get("request") != fingerprint:
                    raise Conflict(f"idempotency_key {idempotency_key!r} already started run {record.data['run_id']} with another agent or prompt; use a new key.")
                return await self.get_run(record.data["run_id"])
            task = await self._a2a.send(target, message(prompt, key=idempotency_key, context_id=context_id))
            run = run_from_task(agent, task, self.name)
            record.data.update(run_id=run.id, request=fingerprint)
            record.save()
            return run

    # runs --------------------------------------------------------------------------------

    async def get_run(self, run_id: str) -> Run:
        agent, task = await self._read(run_id)
        return run_from_task(agent.name, task, self.name)

    async def _read(self, run_id: str) -> tuple[A2AAgent, dict[str, Any]]:
        name, task_id = split_run_id(run_id)
        agent = self._a2a.agent(name)
        if task_id.startswith("message-"):
            raise NotFound(f"Run {run_id} was the agent's direct answer, not a task; its text was in the spawn_agent result.")
        return agent, await self._a2a.task(agent, task_id)

    async def list_runs(self, query: RunFilter) -> RunPage:
        state, agent, parent_run_id, created_after, limit, cursor = query.state, query.agent, query.parent_run_id, query.created_after, query.limit, query.cursor
        if parent_run_id is not None:
            raise Unsupported("A2A tasks have no parent run; call list_runs without parent_run_id.")
        if agent is None and len(self._agents) > 1:
            raise InvalidArgument(f"A2A lists tasks per agent: pass agent= one of {', '.join(self._agents)}.")
        target = self._a2a.agent(agent or next(iter(self._agents)))
        params: dict[str, Any] = {"pageSize": limit}
        if cursor:
            params["pageToken"] = cursor
        if created_after is not None:
            after = created_after if created_after.tzinfo else created_after.replace(tzinfo=UTC)
            params["statusTimestampAfter"] = after.isoformat().replace("+00:00", "Z")
        body = await self._a2a.call(target, "ListTasks", params, rest=("GET", "/tasks"), safe=True)
        tasks = [t for t in (body or {}).get("tasks") or [] if isinstance(t, dict)]
        runs = [run_from_task(target.name, t, self.name) for t in tasks]
        if state:
            runs = [r for r in runs if r.state == state]
        return RunPage(runs=runs, next_cursor=(body or {}).get("nextPageToken") or None)

    async def cancel_run(self, run_id: str) -> Run:
        name, task_id = split_run_id(run_id)
        agent = self._a2a.agent(name)
        task = await self._a2a.call(agent, "CancelTask", {"id": task_id}, rest=("POST", f"/tasks/{segment(task_id)}:cancel"), safe=True)
        if not isinstance(task, dict) or not task.get("id"):
            task = await self._a2a.task(agent, task_id)
        return run_from_task(name, task, self.name)

    async def send_followup(self, run_id: str, message_text: str) -> Run:
        """A task that waits for input goes on with the message; an ended one starts a new task in its context."""
        agent, task = await self._read(run_id)
        state = str((task.get("status") or {}).get("state"))
        if state in ("TASK_STATE_INPUT_REQUIRED", "TASK_STATE_AUTH_REQUIRED", "TASK_STATE_WORKING", "TASK_STATE_SUBMITTED"):
            body = message(message_text, task_id=task["id"], context_id=task.get("contextId"))
        else:
            body = message(message_text, context_id=task.get("contextId"))
        new = await self._a2a.send(agent, body)
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
        await self._a2a.ready(agent)
        if not agent.streaming:
            return await poll_until_done(self.get_run, run_id, timeout, progress)
        follow = TaskFollow(self._a2a, agent, task, run_id, self.name, self.get_run, progress)
        with anyio.move_on_after(timeout):
            return await follow.run()
        with anyio.move_on_after(_FINAL_READ_SECONDS):
            run = await self.get_run(run_id)
        return run

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
                card = await self._a2a.card(agent)
            except AgentdeckError as exc:
                checks.append((False, f"agent {agent.name} card", f"{exc.message} Fix: check backends.{self.name}.agents.{agent.name}."))
                continue
            bindings = ", ".join(str(i.get("protocolBinding")) for i in card.get("supportedInterfaces") or [] if isinstance(i, dict))
            streams = "yes" if (card.get("capabilities") or {}).get("streaming") else "no"
            about = f"{card.get('name')} {card.get('version') or ''}".strip()
            checks.append((True, f"agent {agent.name} card", f"{about}; bindings {bindings or 'none'}; streaming {streams}"))
            try:
                await self._a2a.task(agent, "agentdeck-doctor-probe")
                checks.append((True, f"agent {agent.name} credentials", "accepted"))
            except NotFound:
                checks.append((True, f"agent {agent.name} credentials", "accepted (a probe for an unknown task was answered 'not found')"))
            except AgentdeckError as exc:
                checks.append((False, f"agent {agent.name} credentials", f"{exc.message} Fix: set {self.settings.api_key_env} to a credential the agent accepts."))
        return checks

