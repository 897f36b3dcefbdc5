"""ArchAstro adapter: agent sessions are runs, agent routines are routines.

    [backends.archastro]
    kind = "archastro"            # key from $ARCHASTRO_API_KEY, sent as x-archastro-api-key

Run ids keep the platform's prefixes, so one get_run serves both kinds of run: `ase_...` is an
agent session (`/api/v1/agent_sessions/{id}`), `arr_...` a routine run
(`/api/v1/agent_routines/runs/{id}`). Options with no generic argument travel in
`metadata.archastro` (session limits, start_idle, thread; invoke's thread_id and user) and come
back there with the platform's details. agentdeck keeps its own bookkeeping (idempotency key,
parent run) in two reserved metadata keys, hidden again on the way out.
"""

from __future__ import annotations

from datetime import UTC
from typing import Any, Unpack

from agentdeck.backends.archastro_models import (
    AGENT_PAGES,
    API,
    INVOKE_OPTIONS,
    INVOKED_EVENT,
    KEY_FIELD,
    OPTIONS,
    PARENT_FIELD,
    ROUTINE_RUN_STATES,
    RUN_SCAN_PAGES,
    SESSION_STATES,
    SESSION_WINDOW,
    SPAWN_OPTIONS,
    compact,
    result_artifacts,
    split_options,
)
from agentdeck.backends.archastro_sessions import SessionEvents
from agentdeck.backends.base import Backend, BuildEnv, Capability
from agentdeck.backends.dialect import Auth, Dialect, explain
from agentdeck.backends.http import PlatformClient, RetryPolicy, Timeouts, collect_pages
from agentdeck.backends.requests import RoutineCall, RunFilter, SpawnRequest
from agentdeck.backends.times import parse_time
from agentdeck.config import ArchAstroConfig
from agentdeck.errors import AgentdeckError, Conflict, InvalidArgument, NotFound, Unsupported
from agentdeck.models import Agent, AgentList, Routine, RoutineList, Run, RunError, RunPage

__all__ = ["ArchAstroBackend", "ROUTINE_RUN_STATES", "SESSION_STATES"]


class ArchAstroBackend(SessionEvents, Backend):
    """Agent sessions and agent routines of an ArchAstro app, through its secret API key."""

    kind = "archastro"
    capabilities = frozenset({
        Capability.AGENTS, Capability.RUNS, Capability.RUN_CANCEL, Capability.RUN_FOLLOWUP, Capability.RUN_EVENTS,
        Capability.ROUTINES, Capability.SESSION_DELETE,
    })

    def __init__(self, name: str, settings: ArchAstroConfig, **env: Unpack[BuildEnv]) -> None:
        super().__init__(name)
        transport = env.get("transport")
        self.settings = settings
        key = settings.api_key.get_secret_value() if settings.api_key else ""
        missing = f"Backend '{name}' has no ArchAstro API key: set {settings.api_key_env} (or secrets_file) to an sk_ key and restart."
        self._client = PlatformClient(
            "ArchAstro",
            base_url=settings.base_url.rstrip("/"),
            auth=Auth.key("x-archastro-api-key", key, missing=missing),
            timeouts=Timeouts(read=settings.timeout_seconds, connect=settings.connect_timeout_seconds),
            retry=RetryPolicy(max_retries=settings.max_retries),
            transport=transport,
            dialect=Dialect(statuses={402: explain(Unsupported, "The ArchAstro plan does not include this feature; upgrade the plan or use another backend.")}),
        )
        self._routine_ids: dict[str, str] = {}  # lookup key -> arn_ id, filled by list_routines

    async def aclose(self) -> None:
        await self._client.aclose()

    async def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        return await self._client.json(method, API + path, **kwargs)

    # --- agents ----------------------------------------------------------------------------

    async def list_agents(self) -> AgentList:
        agents = []
        for item in await self._agents():
            about = [item.get("name") or "", f"lookup key {item['lookup_key']}" if item.get("lookup_key") else ""]
            agents.append(Agent(name=item["id"], backend=self.name, description="; ".join(a for a in about if a)))
        return AgentList(agents=agents)

    async def _agents(self) -> list[dict[str, Any]]:
        async def page(number: int) -> tuple[list[Any], int | None]:
            body = await self._call("GET", "/agents", params={"page": number, "page_size": 100})
            return body.get("data") or [], number + 1 if body.get("has_next") else None

        return await collect_pages(page, 1, max_pages=AGENT_PAGES, max_items=AGENT_PAGES * 100)

    async def _agent_id(self, ref: str) -> str:
        """An agent id for `ref`: an agi_ id as is, else the agent whose lookup key (or else name) it is."""
        if ref.startswith("agi_"):
            return ref
        agents = await self._agents()
        for field in ("lookup_key", "name"):
            matches = [a["id"] for a in agents if a.get(field) == ref]
            if len(matches) == 1:
                return matches[0]
        raise NotFound(f"No single ArchAstro agent '{ref}'; pass an agent id (agi_...) or lookup key from list_agents.")

    async def spawn_agent(self, request: SpawnRequest) -> Run:
        agent, prompt, name, workspace = request.agent, request.prompt, request.name, request.workspace
        ttl_seconds, metadata, parent_run_id, idempotency_key = request.ttl_seconds, request.metadata, request.parent_run_id, request.idempotency_key
        if ttl_seconds is not None:
            raise InvalidArgument(
                "ArchAstro sessions have no time limit, so ttl_seconds cannot be honoured; omit it and bound the session "
                f"with metadata.{OPTIONS}.max_turns or max_tokens, or cancel_run it later."
            )
        if workspace is not None:
            raise InvalidArgument("ArchAstro sessions have no workspace; omit workspace.")
        options, stored = split_options(metadata, SPAWN_OPTIONS, "spawn")
        agent_id = await self._agent_id(agent)
        if parent_run_id:
            stored[PARENT_FIELD] = parent_run_id
        if idempotency_key:
            stored[KEY_FIELD] = idempotency_key
            earlier = await self._call("GET", "/agent_sessions", params={"agent[]": [agent_id], "limit": SESSION_WINDOW})
            for item in earlier.get("data") or []:
                if (item.get("metadata") or {}).get(KEY_FIELD) == idempotency_key:
                    return self._session_run(item)
        body = compact({"agent": agent_id, "instructions": prompt, "name": name, "metadata": stored, **options})
        # Creating a session is not idempotent on the platform, so a failed create is never repeated.
        created = await self._call(
            "POST", "/agent_sessions", json=body, idempotent=False,
            errors={404: explain(NotFound, f"No agent '{agent_id}' in this app; list_agents shows the agents you can spawn.")},
        )
        return self._session_run(created)

    # --- runs ------------------------------------------------------------------------------

    async def list_runs(self, query: RunFilter) -> RunPage:
        state, agent, parent_run_id, created_after, limit, cursor = query.state, query.agent, query.parent_run_id, query.created_after, query.limit, query.cursor
        params: dict[str, Any] = {"limit": SESSION_WINDOW}
        if state is not None:
            statuses = [s for s, normal in SESSION_STATES.items() if normal == state]
            if not statuses:
                raise InvalidArgument(f"state must be one of {', '.join(sorted(set(SESSION_STATES.values())))}.")
            params["status[]"] = statuses
        if agent:
            params["agent[]"] = [await self._agent_id(agent)]
        if created_after is not None and created_after.tzinfo is None:
            created_after = created_after.replace(tzinfo=UTC)
        runs = [self._session_run(item) for item in (await self._call("GET", "/agent_sessions", params=params)).get("data") or []]
        runs = [r for r in runs if (not parent_run_id or r.parent_run_id == parent_run_id)
                and (created_after is None or (r.created_at is not None and r.created_at > created_after))]
        start = 0
        if cursor:
            ids = [r.id for r in runs]
            if cursor not in ids:
                raise InvalidArgument("That cursor is no longer among the newest 100 ArchAstro sessions; list again without a cursor.")
            start = ids.index(cursor) + 1
        page = runs[start:start + limit]
        more = start + limit < len(runs)
        return RunPage(runs=page, next_cursor=page[-1].id if more and page else None)

    async def get_run(self, run_id: str) -> Run:
        if run_id.startswith("arr_"):
            return self._routine_run(await self._call("GET", f"/agent_routines/runs/{run_id}"))
        return self._session_run(await self._call("GET", f"/agent_sessions/{self._session_id(run_id)}"))

    async def cancel_run(self, run_id: str) -> Run:
        if run_id.startswith("arr_"):
            raise Unsupported(
                "ArchAstro cannot cancel a routine run; cancel the session it drives instead (list_runs shows sessions), or let it finish."
            )
        # Documented idempotent: a session already ended comes back unchanged, so a retry is safe.
        data = await self._call("POST", f"/agent_sessions/{self._session_id(run_id)}/cancel", idempotent=True)
        return self._session_run(data)

    async def send_followup(self, run_id: str, message: str) -> Run:
        if run_id.startswith("arr_"):
            raise Unsupported("A routine run takes no follow-ups; invoke_routine again with the same session_key to continue its session.")
        # A 422 is documented only as "Validation failed": its message is the platform's own.
        data = await self._call("POST", f"/agent_sessions/{self._session_id(run_id)}/message", json={"content": message, "role": "user"}, idempotent=False)
        return self._session_run(data)

    async def delete_session(self, run_id: str) -> Run:
        run = await self.get_run(self._session_id(run_id))
        ended = explain(Conflict, "Only an ended session (completed, failed or cancelled) can be deleted; cancel_run it first.")
        await self._call("DELETE", f"/agent_sessions/{run.id}", errors={422: ended})
        return run.model_copy(update={"platform_state": "deleted"})

    def _session_id(self, run_id: str) -> str:
        if not run_id.startswith("ase_"):
            raise NotFound(f"'{run_id}' is not an ArchAstro run id: sessions are ase_..., routine runs arr_...; list_runs shows them.")
        return run_id

    def _session_run(self, data: dict[str, Any]) -> Run:
        status = str(data.get("status") or "pending")
        metadata = dict(data.get("metadata") or {})
        parent = metadata.pop(PARENT_FIELD, None)
        metadata.pop(KEY_FIELD, None)
        error = None
        if data.get("error") or status == "failed":
            error = RunError(code="session_failed", message=str(data.get("error") or "the session failed without a message"))
        details = {k: data.get(k) for k in ("max_turns", "max_tokens", "max_runs_per_turn", "trajectory", "is_system_session", "thread", "team", "user")}
        details["inbox_messages"] = len(data.get("inbox") or [])
        return Run(
            id=data["id"], backend=self.name, agent=data.get("agent") or "", state=SESSION_STATES.get(status, "running"),
            platform_state=status, name=data.get("name"), created_at=parse_time(data.get("created_at")),
            started_at=parse_time(data.get("started_at")), ended_at=parse_time(data.get("completed_at")),
            parent_run_id=parent if isinstance(parent, str) else None, thread_id=data.get("thread"), error=error,
            artifacts=result_artifacts(data.get("result")), metadata={**metadata, OPTIONS: compact(details)},
        )

    def _routine_run(self, data: dict[str, Any]) -> Run:
        status = str(data.get("status") or "pending")
        state = ROUTINE_RUN_STATES.get(status, "running")
        metadata = dict(data.get("metadata") or {})
        metadata.pop(KEY_FIELD, None)
        result = data.get("result")
        error = None
        if status == "failed":
            reason = (result.get("error") or result.get("message")) if isinstance(result, dict) else None
            error = RunError(code="routine_run_failed", message=str(reason or "the routine run failed"))
        details = {k: data.get(k) for k in ("payload", "delivery", "duration_ms", "event_id", "participants", "structured_response")}
        return Run(
            id=data["id"], backend=self.name, agent=data.get("agent") or "", state=state,
            platform_state=status, routine=data.get("routine"), created_at=parse_time(data.get("created_at")),
            ended_at=parse_time(data.get("updated_at")) if state in ("succeeded", "failed", "cancelled") else None,
            error=error, artifacts=result_artifacts(result),
            usage={"duration_ms": data["duration_ms"]} if data.get("duration_ms") is not None else {},
            metadata={**metadata, OPTIONS: compact(details)},
        )

    # --- routines --------------------------------------------------------------------------

    async def list_routines(self, *, agent: str | None = None, event_type: str | None = None) -> RoutineList:
        params: dict[str, Any] = {}
        if agent:
            params["agent[]"] = [await self._agent_id(agent)]
        if event_type:
            params["event_type"] = event_type
        routines = []
        for item in (await self._call("GET", "/agent_routines", params=params)).get("data") or []:
            handle = item.get("lookup_key") or item["id"]
            self._routine_ids[handle] = item["id"]
            invocable = item.get("event_type") == INVOKED_EVENT
            notes = [f"id {item['id']}", str(item.get("status") or "draft")]
            if not invocable:
                notes.append(f"triggered by {item.get('event_type') or 'a schedule'}, not invocable")
            text = f"{item.get('name') or handle} ({', '.join(notes)})" + (f": {item['description']}" if item.get("description") else "")
            routines.append(Routine(name=handle, backend=self.name, agent=item.get("agent"), description=text,
                                    active=item.get("status") == "active" and invocable))
        return RoutineList(routines=routines)

    async def _routine_id(self, ref: str) -> str:
        if ref.startswith("arn_"):
            return ref
        if ref not in self._routine_ids:
            await self.list_routines()
        if ref not in self._routine_ids:
            raise NotFound(f"No ArchAstro routine '{ref}'; use a name from list_routines (lookup key or arn_ id).")
        return self._routine_ids[ref]

    async def invoke_routine(self, call: RoutineCall) -> Run:
        routine, message, idempotency_key, session_key, metadata = call.routine, call.message, call.idempotency_key, call.session_key, call.metadata
        if not message:
            raise InvalidArgument("ArchAstro routines need a message: pass the text the routine's agent should act on.")
        options, stored = split_options(metadata, INVOKE_OPTIONS, "invoke")
        routine_id = await self._routine_id(routine)
        if idempotency_key:
            stored[KEY_FIELD] = idempotency_key
        body = compact({"message": message, "idempotency_key": idempotency_key, "session_key": session_key, "metadata": stored, **options})
        try:
            # Never repeated: what a repeated key does while the first run is in flight is undocumented
            # (only a completed run answers 409), so a blind retry could start a second run.
            # Both refusals are read on below, so they keep the platform's words alone.
            data = await self._call("POST", f"/agent_routines/{routine_id}/invoke", json=body, idempotent=False, errors={409: Conflict, 422: InvalidArgument})
        except (Conflict, InvalidArgument) as exc:
            if exc.platform_status == 409:  # the idempotency key already has a completed run
                return await self._completed_run(routine_id, idempotency_key or "", exc)
            if exc.platform_status == 422:  # refused before it reached the agent: say why, from the routine
                raise await self._diagnose(routine_id, exc) from exc
            raise
        return self._routine_run(data)

    async def _completed_run(self, routine_id: str, key: str, exc: AgentdeckError) -> Run:
        """The run a 409 refers to: the completed run of this routine that carries our key."""
        cursor = None
        for _ in range(RUN_SCAN_PAGES):
            params = {"status": "completed", "limit": 100} | ({"before_cursor": cursor} if cursor else {})
            body = await self._call("GET", f"/agent_routines/{routine_id}/runs", params=params)
            for item in body.get("data") or []:
                if (item.get("metadata") or {}).get(KEY_FIELD) == key:
                    return self._routine_run(item)
            cursor = body.get("before_cursor")
            if not cursor:
                break
        raise Conflict(f"{exc.message}. Its completed run was not found among this routine's recent runs "
                       "(it was invoked outside agentdeck, or long ago); use a new idempotency_key to run it again.")

    async def _diagnose(self, routine_id: str, exc: AgentdeckError) -> AgentdeckError:
        item = await self._call("GET", f"/agent_routines/{routine_id}")
        status, event = item.get("status"), item.get("event_type")
        if status != "active":
            return Conflict(f"{exc.message}. Routine {routine_id} is {status}, not active; activate it on ArchAstro before invoking it.")
        if event != INVOKED_EVENT:
            return InvalidArgument(f"{exc.message}. Routine {routine_id} is triggered by {event or 'a schedule'}, not by invoke; pick another routine.")
        return InvalidArgument(f"{exc.message}. Correct the arguments (this routine may need session_key or metadata.{OPTIONS}.user) and call again.")

    async def list_routine_runs(self, routine: str, *, status: str | None = None, limit: int = 20, cursor: str | None = None) -> RunPage:
        routine_id = await self._routine_id(routine)
        wanted = {s for s, normal in ROUTINE_RUN_STATES.items() if normal == status} if status else set()
        if status and not wanted:
            return RunPage(runs=[])  # routine runs never wait
        params: dict[str, Any] = {"limit": limit}
        if len(wanted) == 1:
            params["status"] = next(iter(wanted))
        if cursor:
            params["before_cursor"] = cursor
        body = await self._call(
            "GET", f"/agent_routines/{routine_id}/runs", params=params,
            errors={400: explain(InvalidArgument, "The cursor is not valid; list again without a cursor.")},
        )
        runs = [self._routine_run(item) for item in body.get("data") or []]
        if len(wanted) > 1:  # several platform statuses read as one state: filter here, page by the platform's cursor
            runs = [r for r in runs if r.platform_state in wanted]
        return RunPage(runs=runs, next_cursor=body.get("before_cursor"))
