"""Azure AI Foundry hosted-agent sessions and their files, behind the Backend interface.

A run is one agent session. Every session route hangs off its agent, so a run id names both:
`<agent name>:<session id>`. `spawn_agent` takes the agent as `name:version`, or `name` for the
version the `agents` setting pins or else the agent's latest version; it creates a session of
that version, then sends the prompt to it through the agent's Responses endpoint bound to the
session (`agent_session_id`), as Microsoft's own invoke script does. Follow-ups are further
turns in the same session, chained with `previous_response_id`. Each turn (input, response id,
status, answer) is recorded in the data dir, since the session resource does not carry it: the
run's state and `metadata.output` come from the latest turn while the session lives, and
get_run_events lists the turns.

Session status, for a session with no recorded turn or once the session has ended:

    creating -> queued    active, updating -> running    idle -> waiting
    failed -> failed      deleting, deleted -> cancelled    expired -> succeeded

`idle` covers both a session that went quiet and one that `cancel_run` stopped: the sandbox
is released but the session resumes on its next call until it expires (30 days without
activity). An expired session ended without a reported failure, hence succeeded.

Authentication is a static bearer token from `api_key_env` when set (tests, CI), else an Entra
ID token from azure-identity's DefaultAzureCredential (the optional extra `agentdeck[azure]`),
fetched in a worker thread and renewed five minutes before it expires.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Any, Unpack
from urllib.parse import quote

import httpx2

from agentdeck.backends.azure_foundry_auth import SCOPE, EntraToken
from agentdeck.backends.azure_foundry_files import SessionFiles
from agentdeck.backends.azure_foundry_turns import FOUNDRY_FEATURES, apply_turns, failed_turn, turn_events, turn_from_response
from agentdeck.backends.azure_foundry_wire import ENDED, STATES, check_id, check_session_id, iso, read_error
from agentdeck.backends.base import Backend, BuildEnv, Capability
from agentdeck.backends.dialect import Auth, Dialect, ErrorFactory, explain
from agentdeck.backends.http import PlatformClient, RetryPolicy, Timeouts, collect_pages
from agentdeck.backends.records import Records
from agentdeck.backends.requests import RunFilter, SpawnRequest
from agentdeck.backends.times import parse_time
from agentdeck.config import AzureFoundryConfig
from agentdeck.errors import AgentdeckError, Conflict, InvalidArgument, NotFound, Unavailable
from agentdeck.models import Agent, AgentList, Run, RunEventPage, RunPage

__all__ = ["MAX_UPLOAD_BYTES", "SCOPE", "AzureFoundryBackend"]

MAX_UPLOAD_BYTES = 50 * 1024 * 1024  # the service answers 413 above this
ISOLATION_HEADER = "x-ms-user-isolation-key"
_MAX_LIST_PAGES = 10  # per list_runs call when filters skip sessions; the cursor resumes
_MAX_AGENTS = 500


class AzureFoundryBackend(SessionFiles, Backend):
    """Sessions of Azure AI Foundry hosted agents (runs) and the files in their sandboxes."""

    kind = "azure_foundry"
    capabilities = frozenset(
        {
            Capability.AGENTS,
            Capability.RUNS,
            Capability.RUN_CANCEL,
            Capability.RUN_FOLLOWUP,
            Capability.RUN_EVENTS,
            Capability.FILES,
            Capability.FILE_WRITE,
            Capability.SESSION_DELETE,
        }
    )

    def __init__(self, name: str, settings: AzureFoundryConfig, **env: Unpack[BuildEnv]) -> None:
        super().__init__(name)
        identity, transport, data_dir = env.get("identity", ""), env.get("transport"), env.get("data_dir")
        self.settings = settings
        self.identity = identity
        self.max_upload_bytes = MAX_UPLOAD_BYTES
        # `agents` (optional): "name" or "name:version" entries; a version here pins spawn's default
        self._agents: dict[str, str | None] = {n: v or None for n, _, v in (e.partition(":") for e in settings.agents)}
        token = settings.api_key.get_secret_value() if settings.api_key else None
        self._entra = None if token else EntraToken(settings.api_key_env)
        auth = Auth.key("Authorization", token, scheme="Bearer") if token else Auth(token=self._entra.get if self._entra else None)
        headers = {"Accept": "application/json"}
        if settings.user_isolation_key:
            headers[ISOLATION_HEADER] = settings.user_isolation_key

        def client(read_timeout: float) -> PlatformClient:
            return PlatformClient(
                "Azure AI Foundry",
                base_url=settings.endpoint.rstrip("/"),
                headers=headers,
                secrets=[settings.user_isolation_key or ""],
                auth=auth,
                timeouts=Timeouts(connect=settings.connect_timeout_seconds, read=read_timeout),
                retry=RetryPolicy(max_retries=settings.max_retries),
                transport=transport,
                dialect=Dialect(read=read_error),
            )

        self._client = client(settings.timeout_seconds)
        self._turn_client = client(settings.turn_timeout_seconds)  # an agent's answer takes longer than a read
        self._turns = Records.of_backend(data_dir, "azure_foundry", name)

    async def aclose(self) -> None:
        await self._client.aclose()
        await self._turn_client.aclose()
        if self._entra is not None:
            self._entra.close()

    async def context(self) -> dict[str, Any]:
        return {
            "endpoint": self.settings.endpoint,
            "api_version": self.settings.api_version,
            "auth": "entra-id" if self._entra else "static-token",
            "agents": [f"{n}:{v}" if v else n for n, v in self._agents.items()],
        }

    # -- HTTP ---------------------------------------------------------------------------------

    def _params(self, params: dict[str, Any] | None = None) -> dict[str, Any]:
        return {"api-version": self.settings.api_version, **(params or {})}

    async def _request(self, method: str, path: str, *, params: dict[str, Any] | None = None, **kwargs: Any) -> httpx2.Response:
        return await self._client.request(method, path, params=self._params(params), **kwargs)

    async def _json(self, method: str, path: str, *, params: dict[str, Any] | None = None, **kwargs: Any) -> Any:
        return await self._client.json(method, path, params=self._params(params), **kwargs)

    @staticmethod
    def _sessions(agent: str) -> str:
        return f"/agents/{quote(agent, safe='')}/endpoint/sessions"

    def _session_path(self, agent: str, session_id: str) -> str:
        return f"{self._sessions(agent)}/{quote(session_id, safe='')}"

    # -- names ---------------------------------------------------------------------------------

    def _agent(self, agent: str) -> tuple[str, str | None]:
        """(name, version) from `name` or `name:version`; the `agents` setting supplies a missing version."""
        name, _, version = agent.strip().partition(":")
        check_id(name, "Agent name")
        return name, version or self._agents.get(name)

    async def _latest_version(self, name: str) -> str:
        """The agent's latest version, as `GET /agents/{name}` reports it (versions.latest.version)."""
        details = await self._json(
            "GET", f"/agents/{quote(name, safe='')}", errors={404: explain(NotFound, f"No agent {name!r} in this project; list_agents shows them.")}
        )
        version = ((details or {}).get("versions") or {}).get("latest", {}).get("version")
        if not version:
            raise NotFound(f"Agent {name!r} has no version yet; deploy one in the Foundry project, or name it as '{name}:<version>'.")
        return str(version)

    def _default_agent(self) -> str | None:
        return next(iter(self._agents)) if len(self._agents) == 1 else None

    def _handle(self, run_id: str) -> tuple[str, str]:
        agent, sep, session_id = run_id.partition(":")
        if not sep:
            agent, session_id = self._default_agent() or "", run_id
            if not agent:
                raise InvalidArgument(f"Run id {run_id!r} is not '<agent>:<session id>'; pass the id that spawn_agent or list_runs returned.")
        return check_id(agent, "Agent name"), check_session_id(session_id, "Session id")

    def _run(self, agent: str, body: dict[str, Any]) -> Run:
        status = str(body.get("status") or "")
        version = (body.get("version_indicator") or {}).get("agent_version")
        metadata = {"agent_version": version, "last_accessed_at": iso(body.get("last_accessed_at")), "expires_at": iso(body.get("expires_at"))}
        if body.get("stopped_at") is not None:
            metadata["stopped_at"] = iso(body.get("stopped_at"))
        session_id = str(body["agent_session_id"])
        run = Run(
            id=f"{agent}:{session_id}",
            backend=self.name,
            agent=agent,
            state=STATES.get(status, "running"),
            platform_state=status or "unknown",
            name=session_id,
            created_at=parse_time(body.get("created_at")),
            ended_at=parse_time(body.get("expires_at")) if status == "expired" else None,
            metadata={k: v for k, v in metadata.items() if v is not None},
        )
        return apply_turns(run, self._turns.read(run.id).get("turns") or [], status in ENDED)

    # -- agents and runs ----------------------------------------------------------------------

    async def list_agents(self) -> AgentList:
        """The project's hosted agents (only they have sessions), by name; spawning a bare name starts its latest version."""

        async def page(after: str | None) -> tuple[list[Any], str | None]:
            body = await self._json("GET", "/agents", params={"kind": "hosted", "limit": 100, **({"after": after} if after else {})})
            items = [a for a in (body or {}).get("data") or [] if isinstance(a, dict) and a.get("name")]
            return items, (body or {}).get("last_id") if items else None

        agents = []
        for item in await collect_pages(page, max_items=_MAX_AGENTS, max_pages=_MAX_AGENTS // 100 + 1):
            latest = (item.get("versions") or {}).get("latest") or {}
            text = str(latest.get("description") or "Azure AI Foundry hosted agent")
            pinned = self._agents.get(item["name"])
            version = f"; spawns version {pinned} (pinned in the agents setting)" if pinned else (f"; latest version {latest['version']}" if latest.get("version") else "")
            agents.append(Agent(name=item["name"], backend=self.name, description=text + version))
        return AgentList(agents=agents)

    async def spawn_agent(self, request: SpawnRequest) -> Run:
        agent, prompt, name, workspace = request.agent, request.prompt, request.name, request.workspace
        ttl_seconds, metadata, parent_run_id, idempotency_key = request.ttl_seconds, request.metadata, request.parent_run_id, request.idempotency_key
        extra = [k for k, v in (("workspace", workspace), ("ttl_seconds", ttl_seconds), ("metadata", metadata), ("parent_run_id", parent_run_id)) if v]
        if extra:
            raise InvalidArgument(f"Azure AI Foundry sessions take no {', '.join(extra)}; call again without {'them' if len(extra) > 1 else 'it'}.")
        agent_name, version = self._agent(agent)
        session_id = check_session_id(name, "Session name") if name else None
        if idempotency_key and not session_id:
            session_id = "idem-" + hashlib.sha256(f"{agent_name}\n{idempotency_key}".encode()).hexdigest()[:40]
        version = version or await self._latest_version(agent_name)
        body: dict[str, Any] = {"version_indicator": {"type": "version_ref", "agent_version": version}}
        if session_id:
            body["agent_session_id"] = session_id

        try:
            created = await self._json(
                "POST",
                self._sessions(agent_name),
                json=body,
                idempotent=session_id is not None,  # a named create cannot make a duplicate
                errors={
                    404: explain(NotFound, f"Check the agent name and version ({agent_name}:{version}) in the Foundry project."),
                    409: explain(Conflict, f"A session named {session_id!r} already exists for agent {agent_name!r}; choose another name."),
                },
            )
        except Conflict:
            if not idempotency_key:
                raise
            created = await self._json("GET", self._session_path(agent_name, str(session_id)))
            existing = (created.get("version_indicator") or {}).get("agent_version")
            if existing != version:
                raise Conflict(f"This idempotency key already started session {session_id!r} with version {existing}; use a new key for version {version}.") from None
        run = self._run(agent_name, created)
        async with self._turns.locked(run.id) as record:
            turns = record.data.setdefault("turns", [])
            if not turns:  # a repeated idempotency key finds the prompt already sent
                try:
                    turns.append(turn_from_response(prompt, await self._respond(agent_name, str(created["agent_session_id"]), prompt, None)))
                except AgentdeckError as exc:
                    turns.append(failed_turn(prompt, exc.message))
                record.save()
        return await self.get_run(run.id)

    async def _respond(self, agent: str, session_id: str, prompt: str, previous: str | None) -> dict[str, Any]:
        """One turn: the prompt to the agent's Responses endpoint, bound to the session; not retried (it would run twice)."""
        body: dict[str, Any] = {"input": prompt, "agent_session_id": session_id}
        if previous:
            body["previous_response_id"] = previous
        response = await self._turn_client.json(
            "POST",
            f"/agents/{quote(agent, safe='')}/endpoint/protocols/openai/responses",
            params=self._params(),
            json=body,
            headers={"Foundry-Features": FOUNDRY_FEATURES},
        )
        if not isinstance(response, dict) or "id" not in response:
            raise Unavailable("Azure AI Foundry answered the prompt without a response object; read the session with get_run before sending it again.")
        return response

    async def send_followup(self, run_id: str, message: str) -> Run:
        agent, session_id = self._handle(run_id)
        run = await self.get_run(run_id)
        if run.platform_state in ENDED:
            raise Conflict(f"Session {run.id} is {run.platform_state}; it takes no more prompts. Spawn a new session.")
        async with self._turns.locked(run.id) as record:
            turns = record.data.setdefault("turns", [])
            previous = next((t["response_id"] for t in reversed(turns) if t.get("response_id")), None)
            turns.append(turn_from_response(message, await self._respond(agent, session_id, message, previous)))
            record.save()
        return await self.get_run(run_id)

    async def get_run_events(self, run_id: str, *, after_seq: int | None = None, limit: int = 100) -> RunEventPage:
        run = await self.get_run(run_id)
        turns = self._turns.read(run.id).get("turns") or []
        return turn_events(run.id, self.name, turns, after_seq=after_seq, limit=limit, state=run.state)

    async def list_runs(self, query: RunFilter) -> RunPage:
        state, agent, parent_run_id, created_after, limit, cursor = query.state, query.agent, query.parent_run_id, query.created_after, query.limit, query.cursor
        if parent_run_id:
            return RunPage(runs=[])  # sessions never have a parent run
        if agent is None and self._default_agent() is None:
            known = f" one of {', '.join(self._agents)}" if self._agents else " a hosted agent's name"
            raise InvalidArgument(f"Azure AI Foundry lists sessions per agent: pass agent={known}.")
        agent_name, _ = self._agent(agent or str(self._default_agent()))
        version = agent.partition(":")[2] if agent and ":" in agent else None  # a bare name lists every version
        since = None if created_after is None else (created_after if created_after.tzinfo else created_after.replace(tzinfo=UTC))
        runs: list[Run] = []
        after, more, pages = cursor, True, 0
        while more and len(runs) < limit and pages < _MAX_LIST_PAGES:
            pages += 1
            params = {"limit": limit, "order": "desc", **({"after": after} if after else {})}
            page = await self._json("GET", self._sessions(agent_name), params=params, errors={400: self._bad_cursor(cursor)})
            data = page.get("data") or []
            # The SDK follows last_id until an empty page; has_more, where present, saves that last call.
            more = bool(data) and (bool(page.get("has_more")) if "has_more" in page else bool(page.get("last_id")))
            for index, item in enumerate(data):
                created = parse_time(item.get("created_at"))
                if since is not None and created is not None and created <= since:
                    more = False  # newest first: the rest is older still
                    break
                after = str(item["agent_session_id"])
                run = self._run(agent_name, item)
                if (state is None or run.state == state) and (version is None or run.metadata.get("agent_version") == version):
                    runs.append(run)
                if len(runs) >= limit:
                    more = more or index < len(data) - 1
                    break
        return RunPage(runs=runs, next_cursor=after if more else None)

    @staticmethod
    def _bad_cursor(cursor: str | None) -> ErrorFactory:
        if cursor:
            return explain(InvalidArgument, "The cursor is not one list_runs gave for this agent; omit it to start over.")
        return lambda text: InvalidArgument(f"{text}.")

    async def get_run(self, run_id: str) -> Run:
        agent, session_id = self._handle(run_id)
        return self._run(agent, await self._json("GET", self._session_path(agent, session_id)))

    async def cancel_run(self, run_id: str) -> Run:
        run = await self.get_run(run_id)
        if run.platform_state in ENDED:
            raise Conflict(f"Session {run.id} is already {run.platform_state}; there is nothing to stop.")
        agent, session_id = self._handle(run_id)
        await self._request("POST", f"{self._session_path(agent, session_id)}:stop", idempotent=True)
        return await self.get_run(run_id)

    async def delete_session(self, run_id: str) -> Run:
        run = await self.get_run(run_id)  # 404 here: nothing to delete (the service would answer 204 regardless)
        agent, session_id = self._handle(run_id)
        await self._request("DELETE", self._session_path(agent, session_id), headers={"Accept": "*/*"})
        return run.model_copy(update={"state": "cancelled", "platform_state": "deleted", "ended_at": datetime.now(UTC)})
