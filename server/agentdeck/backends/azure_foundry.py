"""Azure AI Foundry hosted-agent sessions and their files, behind the Backend interface.

A run is one agent session. Every session route hangs off its agent, so a run id names both:
`<agent name>:<session id>`. `spawn_agent` takes the agent as `name:version` (or `name` when
the `agents` setting lists it with a version) and creates a session of that version.

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

import base64
import hashlib
import mimetypes
import posixpath
import time
from datetime import datetime, timezone
from typing import Any
from urllib.parse import quote

import anyio
import anyio.to_thread
import httpx2

from agentdeck.backends.base import Backend, Capability
from agentdeck.backends.azure_foundry_wire import ENDED, STATES, check_id, describe, home_path, iso, utf8
from agentdeck.backends.http import PlatformClient, RetryPolicy, Timeouts, collect_pages, redact
from agentdeck.backends.times import parse_time
from agentdeck.config import AzureFoundryConfig
from agentdeck.errors import AgentdeckError, Conflict, InvalidArgument, NotFound, Unauthorized
from agentdeck.models import Agent, AgentList, FileContent, Run, RunPage, SessionFile, SessionFileList

__all__ = ["MAX_UPLOAD_BYTES", "SCOPE", "AzureFoundryBackend"]

SCOPE = "https://ai.azure.com/.default"
MAX_UPLOAD_BYTES = 50 * 1024 * 1024  # the service answers 413 above this
ISOLATION_HEADER = "x-ms-user-isolation-key"
_REFRESH_MARGIN_SECONDS = 300
_MAX_LIST_ENTRIES = 1000
_MAX_LIST_PAGES = 10  # per list_runs call when filters skip sessions; the cursor resumes
_NO_PROMPT = "Foundry sessions take no prompt: the session is ready, but the prompt was not sent to the agent."


class _EntraToken:
    """Entra ID bearer tokens from DefaultAzureCredential, cached until shortly before expiry."""

    def __init__(self) -> None:
        self.token: str | None = None
        self._expires_on = 0.0
        self._credential: Any = None
        self._lock: anyio.Lock | None = None

    async def get(self) -> str:
        self._lock = self._lock or anyio.Lock()
        async with self._lock:
            if self.token and time.time() < self._expires_on - _REFRESH_MARGIN_SECONDS:
                return self.token
            try:
                from azure.core.exceptions import ClientAuthenticationError
                from azure.identity import DefaultAzureCredential
            except ImportError:
                raise Unauthorized(
                    "No static token is set and azure-identity is not installed: install agentdeck[azure] to sign in with "
                    "Entra ID (az login, managed identity, AZURE_CLIENT_ID/AZURE_TENANT_ID/AZURE_CLIENT_SECRET), "
                    "or put a bearer token in the variable named by api_key_env."
                ) from None
            try:
                if self._credential is None:
                    self._credential = await anyio.to_thread.run_sync(DefaultAzureCredential)
                access = await anyio.to_thread.run_sync(self._credential.get_token, SCOPE)
            except (ClientAuthenticationError, ValueError) as exc:
                reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
                raise Unauthorized(f"Entra ID sign-in failed ({reason}). Run `az login`, or configure a managed identity or service principal.") from None
            self.token, self._expires_on = access.token, float(access.expires_on)
            return self.token

    def close(self) -> None:
        if self._credential is not None:
            self._credential.close()


class AzureFoundryBackend(Backend):
    """Sessions of Azure AI Foundry hosted agents (runs) and the files in their sandboxes."""

    kind = "azure_foundry"
    capabilities = frozenset(
        {Capability.AGENTS, Capability.RUNS, Capability.RUN_CANCEL, Capability.FILES, Capability.FILE_WRITE, Capability.SESSION_DELETE}
    )

    def __init__(self, name: str, settings: AzureFoundryConfig, *, identity: str, transport: httpx2.AsyncBaseTransport | None = None) -> None:
        super().__init__(name)
        self.settings = settings
        self.identity = identity
        self.max_upload_bytes = MAX_UPLOAD_BYTES
        # `agents` (proposed setting): "name" or "name:version" entries; list_agents and the defaults come from it
        self._agents: dict[str, str | None] = {n: v or None for n, _, v in (e.partition(":") for e in settings.agents)}
        token = settings.api_key.get_secret_value() if settings.api_key else None
        self._entra = None if token else _EntraToken()
        headers = {"Accept": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        if settings.user_isolation_key:
            headers[ISOLATION_HEADER] = settings.user_isolation_key
        self._client = PlatformClient(
            "Azure AI Foundry",
            base_url=settings.endpoint.rstrip("/"),
            headers=headers,
            secrets=[s for s in (token, settings.user_isolation_key) if s],
            timeouts=Timeouts(connect=settings.connect_timeout_seconds, read=settings.timeout_seconds),
            retry=RetryPolicy(max_retries=settings.max_retries),
            transport=transport,
            describe=self._describe,
        )

    async def aclose(self) -> None:
        await self._client.aclose()
        if self._entra is not None:
            self._entra.close()

    def _describe(self, response: httpx2.Response) -> str:
        token = self._entra.token if self._entra else None
        return redact(describe(response), [token] if token else [])

    async def context(self) -> dict[str, Any]:
        return {
            "endpoint": self.settings.endpoint,
            "api_version": self.settings.api_version,
            "auth": "entra-id" if self._entra else "static-token",
            "agents": [f"{n}:{v}" if v else n for n, v in self._agents.items()],
        }

    # -- HTTP ---------------------------------------------------------------------------------

    async def _args(self, params: dict[str, Any] | None, kwargs: dict[str, Any]) -> dict[str, Any]:
        headers = dict(kwargs.pop("headers", None) or {})
        if self._entra is not None:
            headers["Authorization"] = f"Bearer {await self._entra.get()}"
        return {**kwargs, "params": {"api-version": self.settings.api_version, **(params or {})}, "headers": headers}

    async def _request(self, method: str, path: str, *, params: dict[str, Any] | None = None, **kwargs: Any) -> httpx2.Response:
        return await self._client.request(method, path, **await self._args(params, kwargs))

    async def _json(self, method: str, path: str, *, params: dict[str, Any] | None = None, **kwargs: Any) -> Any:
        return await self._client.json(method, path, **await self._args(params, kwargs))

    @staticmethod
    def _sessions(agent: str) -> str:
        return f"/agents/{quote(agent, safe='')}/endpoint/sessions"

    def _session_path(self, agent: str, session_id: str) -> str:
        return f"{self._sessions(agent)}/{quote(session_id, safe='')}"

    # -- names ---------------------------------------------------------------------------------

    def _agent(self, agent: str, *, need_version: bool) -> tuple[str, str | None]:
        name, _, version = agent.strip().partition(":")
        check_id(name, "Agent name")
        version = version or self._agents.get(name)
        if need_version and not version:
            raise InvalidArgument(
                f"Say which version of agent {name!r} to start, as '{name}:<version>' (e.g. '{name}:1'), "
                f"or list it with its version in the backend's `agents` setting."
            )
        return name, version

    def _default_agent(self) -> str | None:
        return next(iter(self._agents)) if len(self._agents) == 1 else None

    def _handle(self, run_id: str) -> tuple[str, str]:
        agent, sep, session_id = run_id.partition(":")
        if not sep:
            agent, session_id = self._default_agent() or "", run_id
            if not agent:
                raise InvalidArgument(f"Run id {run_id!r} is not '<agent>:<session id>'; pass the id that spawn_agent or list_runs returned.")
        return check_id(agent, "Agent name"), check_id(session_id, "Session id")

    def _run(self, agent: str, body: dict[str, Any]) -> Run:
        status = str(body.get("status") or "")
        version = (body.get("version_indicator") or {}).get("agent_version")
        metadata = {"agent_version": version, "last_accessed_at": iso(body.get("last_accessed_at")), "expires_at": iso(body.get("expires_at"))}
        if body.get("stopped_at") is not None:
            metadata["stopped_at"] = iso(body.get("stopped_at"))
        session_id = str(body["agent_session_id"])
        return Run(
            id=f"{agent}:{session_id}",
            backend=self.name,
            agent=agent,
            state=STATES.get(status, "running"),  # type: ignore[arg-type]
            platform_state=status or "unknown",
            name=session_id,
            created_at=parse_time(body.get("created_at")),
            ended_at=parse_time(body.get("expires_at")) if status == "expired" else None,
            metadata={k: v for k, v in metadata.items() if v is not None},
        )

    # -- agents and runs ----------------------------------------------------------------------

    async def list_agents(self) -> AgentList:
        return AgentList(
            agents=[
                Agent(name=f"{n}:{v}" if v else n, backend=self.name, description=f"Azure AI Foundry hosted agent {n}" + (f", version {v}" if v else ""))
                for n, v in self._agents.items()
            ]
        )

    async def spawn_agent(
        self,
        agent: str,
        prompt: str,
        *,
        name: str | None = None,
        workspace: str | None = None,
        ttl_seconds: int | None = None,
        metadata: dict[str, Any] | None = None,
        parent_run_id: str | None = None,
        idempotency_key: str | None = None,
    ) -> Run:
        extra = [k for k, v in (("workspace", workspace), ("ttl_seconds", ttl_seconds), ("metadata", metadata), ("parent_run_id", parent_run_id)) if v]
        if extra:
            raise InvalidArgument(f"Azure AI Foundry sessions take no {', '.join(extra)}; call again without {'them' if len(extra) > 1 else 'it'}.")
        agent_name, version = self._agent(agent, need_version=True)
        session_id = check_id(name, "Session name") if name else None
        if idempotency_key and not session_id:
            session_id = "idem-" + hashlib.sha256(f"{agent_name}\n{idempotency_key}".encode()).hexdigest()[:40]
        body: dict[str, Any] = {"version_indicator": {"type": "version_ref", "agent_version": version}}
        if session_id:
            body["agent_session_id"] = session_id

        def taken(text: str) -> AgentdeckError:
            return Conflict(f"{text}. A session named {session_id!r} already exists for agent {agent_name!r}; choose another name.")

        try:
            created = await self._json(
                "POST",
                self._sessions(agent_name),
                json=body,
                idempotent=session_id is not None,  # a named create cannot make a duplicate
                errors={
                    404: lambda text: NotFound(f"{text}. Check the agent name and version ({agent_name}:{version}) in the Foundry project."),
                    409: taken,
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
        run.metadata["note"] = _NO_PROMPT
        return run

    async def list_runs(
        self,
        *,
        state: str | None = None,
        agent: str | None = None,
        parent_run_id: str | None = None,
        created_after: datetime | None = None,
        limit: int = 20,
        cursor: str | None = None,
    ) -> RunPage:
        if parent_run_id:
            return RunPage(runs=[])  # sessions never have a parent run
        if agent is None and self._default_agent() is None:
            known = f" one of {', '.join(self._agents)}" if self._agents else " a hosted agent's name"
            raise InvalidArgument(f"Azure AI Foundry lists sessions per agent: pass agent={known}.")
        agent_name, version = self._agent(agent or str(self._default_agent()), need_version=False)
        version = version if agent and ":" in agent else None  # a bare name lists every version
        since = None if created_after is None else (created_after if created_after.tzinfo else created_after.replace(tzinfo=timezone.utc))
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
    def _bad_cursor(cursor: str | None) -> Any:
        def error(text: str) -> AgentdeckError:
            hint = " The cursor is not one list_runs gave for this agent; omit it to start over." if cursor else ""
            return InvalidArgument(f"{text}.{hint}")

        return error

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
        return run.model_copy(update={"state": "cancelled", "platform_state": "deleted", "ended_at": datetime.now(timezone.utc)})

    # -- session files ------------------------------------------------------------------------

    def _files(self, run_id: str) -> tuple[str, str]:
        agent, session_id = self._handle(run_id)
        return f"{self._session_path(agent, session_id)}/files", f"{agent}:{session_id}"

    async def list_session_files(self, run_id: str, path: str = "") -> SessionFileList:
        clean = home_path(path, allow_home=True)
        files_path, run = self._files(run_id)

        async def page(after: str | None) -> tuple[list[Any], str | None]:
            params = {"limit": 100, "order": "asc", **({"path": clean} if clean else {}), **({"after": after} if after else {})}
            body = await self._json("GET", files_path, params=params)
            items = body.get("entries") or []
            return items, body.get("last_id") if items and body.get("has_more") is not False else None

        entries = [
            SessionFile(
                path=posixpath.join(clean, str(item["name"])) if clean else str(item["name"]),
                backend=self.name,
                is_dir=bool(item.get("is_directory")),
                size=None if item.get("is_directory") else item.get("size"),
                modified_at=parse_time(item.get("modified_time")),
            )
            for item in await collect_pages(page, max_items=_MAX_LIST_ENTRIES, max_pages=_MAX_LIST_ENTRIES // 100 + 1)
        ]
        return SessionFileList(run_id=run, backend=self.name, path=clean, files=entries)

    async def upload_session_file(self, run_id: str, path: str, content: bytes) -> SessionFileList:
        clean = home_path(path, allow_home=False)
        if len(content) > self.max_upload_bytes:
            raise InvalidArgument(f"The file is {len(content)} bytes; Azure AI Foundry takes at most {self.max_upload_bytes} bytes per session file. Split it or compress it.")
        files_path, run = self._files(run_id)
        written = await self._json(
            "PUT",
            f"{files_path}/content",
            params={"path": clean},
            content=content,
            headers={"Content-Type": "application/octet-stream"},
            idempotent=True,  # it replaces the file with the same bytes
            errors={413: lambda text: InvalidArgument(f"{text}. The upload is larger than the service accepts (at most 50 MB per file); split it or compress it.")},
        )
        size = int((written or {}).get("bytes_written", len(content)))
        entry = SessionFile(path=str((written or {}).get("path") or clean), backend=self.name, size=size)
        return SessionFileList(run_id=run, backend=self.name, path=posixpath.dirname(clean), files=[entry])

    async def download_session_file(self, run_id: str, path: str, max_bytes: int) -> FileContent:
        clean = home_path(path, allow_home=False)
        files_path, run = self._files(run_id)
        response = await self._request("GET", f"{files_path}/content", params={"path": clean}, headers={"Accept": "application/octet-stream"})
        data = response.content
        kept, truncated = data[:max_bytes], len(data) > max_bytes
        text = utf8(kept, truncated)
        guessed = mimetypes.guess_type(clean)[0]
        mime = guessed or ("text/plain" if text is not None else "application/octet-stream")
        return FileContent(
            run_id=run,
            backend=self.name,
            path=clean,
            size=len(data),
            truncated=truncated,
            mime_type=mime,
            text=text,
            base64=None if text is not None else base64.b64encode(kept).decode("ascii"),
        )

    async def delete_session_file(self, run_id: str, path: str, recursive: bool = False) -> SessionFileList:
        clean = home_path(path, allow_home=False)
        files_path, _ = self._files(run_id)

        def not_empty(text: str) -> AgentdeckError:
            if "directory_not_empty" in text:
                return Conflict(f"{text}. {clean!r} is a directory with files in it; call delete_session_file again with recursive=true to delete it and everything inside.")
            return Conflict(f"{text}. Read the session with get_run before trying again.")

        await self._request(
            "DELETE",
            files_path,
            params={"path": clean, "recursive": "true" if recursive else "false"},
            headers={"Accept": "*/*"},
            idempotent=True,
            errors={409: not_empty},
        )
        return await self.list_session_files(run_id, posixpath.dirname(clean))

