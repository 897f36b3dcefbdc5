"""AGH runs: a spawned child session, prompted, read, followed and stopped through the daemon's session routes.

The runtime agent API only creates the child (`POST /api/agent/spawn`); the daemon's own session routes
(`/api/workspaces/{ws}/sessions/{id}`, `/prompt`, `/events`, `/stop`; compozy/agh
`internal/api/httpapi/routes.go`) give it its first turn and show what it does. Those routes answer on
the daemon's Unix socket and on a loopback bind; a daemon bound elsewhere refuses them, and then the
run says the child was created but not prompted.

A run's id is the child's session id. An active child is `running` while a turn is in progress
(badge `running`) and `waiting` once it is idle, ready for send_followup; a stopped one ends by its
stop reason. wait_for_run returns at either.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from agentdeck.backends.agh_models import SPAWN_OPTIONS, run_from_session, when
from agentdeck.backends.base import Progress, poll_until_done
from agentdeck.backends.dialect import Overrides, explain
from agentdeck.backends.requests import RunFilter, SpawnRequest
from agentdeck.errors import AgentdeckError, Conflict, InvalidArgument, NotFound, Unauthorized
from agentdeck.models import Agent, AgentList, Run, RunEvent, RunEventPage, RunPage

__all__ = ["AghRuns"]

_IGNORED = {"model": "the daemon decodes model in a spawn request but never passes it to the child session"}


class AghRuns:
    """Mixin of AghBackend: agents and runs. AghBackend provides what is declared here."""

    name: str
    settings: Any
    _session: str
    _spawned: dict[str, Run]

    async def _call(self, method: str, path: str, *, json: Any = None, params: Any = None, idempotent: bool | None = None, errors: Overrides | None = None) -> Any:
        raise NotImplementedError

    def _stream(self, method: str, path: str, *, json: Any = None, errors: Overrides | None = None) -> Any:
        raise NotImplementedError

    async def _queue(self) -> str:
        raise NotImplementedError

    async def list_agents(self) -> AgentList:
        body = await self._call("GET", "/api/agents")
        agents = []
        for item in body.get("agents") or []:
            model = "/".join(v for v in (item.get("provider"), item.get("model")) if v)
            agents.append(Agent(name=item["name"], backend=self.name, description=f"AGH agent ({model})" if model else "AGH agent"))
        return AgentList(agents=agents)

    async def spawn_agent(self, request: SpawnRequest) -> Run:
        agent, prompt, name, workspace = request.agent, request.prompt, request.name, request.workspace
        ttl_seconds, metadata, parent_run_id, idempotency_key = request.ttl_seconds, request.metadata, request.parent_run_id, request.idempotency_key
        caller = self._session
        if workspace:
            raise InvalidArgument("AGH starts a spawned agent in your own session's workspace; omit workspace.")
        if parent_run_id and parent_run_id != caller:
            raise InvalidArgument(f"On AGH the parent is always your own session ({caller}); omit parent_run_id.")
        for option, why in _IGNORED.items():
            if option in (metadata or {}):
                raise InvalidArgument(f"metadata.{option} cannot be honoured: {why}. Spawn an agent whose definition uses it (list_agents), or omit it.")
        unknown = sorted(set(metadata or {}) - set(SPAWN_OPTIONS))
        if unknown:
            raise InvalidArgument(f"AGH keeps no free-form metadata; metadata may only hold the spawn options {', '.join(SPAWN_OPTIONS)} (not {', '.join(unknown)}).")
        if idempotency_key and idempotency_key in self._spawned:
            return self._spawned[idempotency_key]
        body: dict[str, Any] = {"agent_name": agent, "ttl_seconds": ttl_seconds or self.settings.spawn_ttl_seconds}
        body |= {k: v for k, v in (metadata or {}).items() if v is not None}
        if name:
            body["name"] = name
        if idempotency_key:
            body["idempotency_key"] = idempotency_key
        errors: Overrides = {
            409: explain(Conflict, "Your session's spawn budget (children, depth or per workspace) is used up; wait for a child to stop, or have the budget raised."),
            403: explain(InvalidArgument, "Ask only for permissions your own session has (agentdeck://me)."),
        }
        spawn = (await self._call("POST", "/api/agent/spawn", json=body, errors=errors))["spawn"]
        child = spawn["session"]
        run = run_from_session(self.name, child, spawn.get("lineage"), caller)
        try:
            turn = await self._prompt(child["id"], prompt, child.get("workspace_id"))
        except AgentdeckError as exc:
            run.metadata |= {"prompt_delivered": False, "note": (
                f"The child session {child['id']} was created but NOT prompted: {exc.message} "
                "Send the prompt with send_followup from where the daemon accepts its session routes "
                "(its Unix socket or a loopback bind), or stop the child with cancel_run.")}
        else:
            try:
                run = await self.get_run(child["id"])
            except AgentdeckError:
                run.state, run.platform_state = "running", "active:running"
            run.metadata |= {"prompt_delivered": True, **turn}
        if idempotency_key:
            self._spawned[idempotency_key] = run
        return run

    async def _workspace_of_runs(self) -> str:
        """Spawned children live in the caller's workspace; the session routes are scoped by it."""
        return await self._queue()

    async def _session_path(self, run_id: str, workspace: str | None = None) -> str:
        workspace = workspace or await self._workspace_of_runs()
        return f"/api/workspaces/{quote(workspace, safe='')}/sessions/{quote(run_id, safe='')}"

    async def _prompt(self, run_id: str, message: str, workspace: str | None = None) -> dict[str, Any]:
        """Send one turn; the daemon streams the turn, and leaving the stream does not stop it."""
        path = await self._session_path(run_id, workspace) + "/prompt"
        async with self._stream("POST", path, json={"message": message, "mode": "queue"}, errors=self._not_found(run_id)) as response:
            if "text/event-stream" not in response.headers.get("content-type", ""):
                prompt = json.loads(await response.aread() or b"{}").get("prompt") or {}
                return {"prompt_status": prompt.get("status", "queued"), "queue_entry_id": prompt.get("queue_entry_id")}
            async for line in response.aiter_lines():
                if line.startswith("data:"):
                    start = json.loads(line[5:])
                    return {"prompt_status": "accepted", "turn_id": start.get("messageId")}
        return {"prompt_status": "accepted"}

    def _not_found(self, run_id: str) -> Overrides:
        """Errors of the session routes: an unknown session, and a daemon that refuses these routes here."""
        return {
            404: explain(NotFound, f"No session {run_id} in your workspace; use a run id from spawn_agent."),
            403: explain(Unauthorized, "The daemon serves its session routes only on its Unix socket or a loopback bind; reach it there (socket or base_url)."),
        }

    async def list_runs(self, query: RunFilter) -> RunPage:
        state, agent, parent_run_id, created_after, limit, cursor = query.state, query.agent, query.parent_run_id, query.created_after, query.limit, query.cursor
        """The children your session spawned (AGH lists the workspace's sessions), newest first."""
        parent = parent_run_id or self._session
        body = await self._call("GET", "/api/sessions", params={"workspace": await self._workspace_of_runs()})
        runs = [run_from_session(self.name, s, None, None) for s in body.get("sessions") or []]
        if created_after is not None and created_after.tzinfo is None:
            created_after = created_after.replace(tzinfo=UTC)
        runs = [r for r in runs if r.parent_run_id == parent and (not state or r.state == state) and (not agent or r.agent == agent)
                and (created_after is None or (r.created_at is not None and r.created_at > created_after))]
        runs.sort(key=lambda r: (r.created_at or datetime.min.replace(tzinfo=UTC), r.id), reverse=True)
        start = int(cursor) if cursor and cursor.isdigit() else 0
        return RunPage(runs=runs[start:start + limit], next_cursor=str(start + limit) if start + limit < len(runs) else None)

    async def get_run(self, run_id: str) -> Run:
        body = await self._call("GET", await self._session_path(run_id), errors=self._not_found(run_id))
        return run_from_session(self.name, body["session"], None, None)

    async def cancel_run(self, run_id: str) -> Run:
        run = await self.get_run(run_id)
        if run.done:
            return run
        await self._call("POST", await self._session_path(run_id) + "/stop", idempotent=False, errors=self._not_found(run_id))
        return await self.get_run(run_id)

    async def send_followup(self, run_id: str, message: str) -> Run:
        ended = await self.get_run(run_id)
        if ended.done:
            raise Conflict(f"Session {run_id} has stopped ({ended.platform_state}) and takes no more prompts; spawn_agent a new child.")
        turn = await self._prompt(run_id, message)
        run = await self.get_run(run_id)
        run.metadata |= turn
        return run

    async def wait_for_run(self, run_id: str, timeout: float, progress: Progress) -> Run:
        """Until the child stops or its turn ends (it is idle, waiting for the next prompt)."""
        return await poll_until_done(self.get_run, run_id, timeout, progress, settled=lambda run: run.done or run.state == "waiting")

    async def get_run_events(self, run_id: str, *, after_seq: int | None = None, limit: int = 100) -> RunEventPage:
        params = {"after_sequence": after_seq or 0, "limit": limit}
        body = await self._call("GET", await self._session_path(run_id) + "/events", params=params, errors=self._not_found(run_id))
        events = [_event(item) for item in body.get("events") or []]
        run = await self.get_run(run_id)
        more = len(events) >= limit
        return RunEventPage(run_id=run_id, backend=self.name, events=events, next_after_seq=events[-1].seq if more and events else None, run_state=run.state)


def _event(item: dict[str, Any]) -> RunEvent:
    raw = item.get("content")
    content: dict[str, Any] = raw if isinstance(raw, dict) else {}
    text = content.get("text") or content.get("error") or item.get("stop_detail") or content.get("stop_reason") or item.get("stop_reason") or ""
    data = {k: v for k, v in content.items() if k not in ("schema", "text", "session_id", "timestamp")}
    return RunEvent(seq=int(item.get("sequence") or 0), at=when(item.get("timestamp")) or datetime.now(UTC), kind=str(item.get("type") or ""), text=str(text), data=data or None)
