"""Warp Oz adapter: cloud agent runs are runs, skills are agents, handoff snapshots are files.

    [backends.oz]
    kind = "oz"                   # key from $WARP_API_KEY, sent as a bearer token

spawn_agent's `agent` is the Oz agent (config) name, sent as `config.name`. When it names a
skill from list_agents (or is a skill spec `owner/repo:path`), the skill is sent too. Metadata
keys `environment_id`, `model_id`, `skill` and `mode` become the typed create fields; the rest
is Oz run metadata (strings; other JSON values are sent as their JSON text). Oz has no
idempotency key, so agentdeck keeps one in the reserved metadata key `agentdeck_idempotency_key`
and looks it up before creating. Platform details come back in `metadata.oz`.

Errors are RFC 7807 problems; the code is the last segment of `type`. The adapter maps them by
code (not only by status), names the code in the message and keeps the body's `retryable`.
"""

from __future__ import annotations

import base64
import hashlib
import json
from datetime import datetime, timezone
from typing import Any
from urllib.parse import quote

import anyio
import httpx2

from agentdeck.backends.base import Backend, Capability, Progress
from agentdeck.backends.http import PlatformClient, RetryPolicy, Timeouts, redact
from agentdeck.backends.oz_models import DETAILS, KEY_FIELD, PROBLEM_CODES, STATE_FILTERS, parse_problem, problem_text, run_from_oz
from agentdeck.errors import AgentdeckError, Conflict, InvalidArgument, NotFound, RateLimited, Unauthorized, Unavailable, Unsupported
from agentdeck.models import Agent, AgentList, FileContent, Run, RunPage, SessionFile, SessionFileList

__all__ = ["OzBackend"]

SPAWN_OPTIONS = ("environment_id", "model_id", "skill", "mode")
MODES = ("normal", "plan", "orchestrate")
_TEXT_TYPES = ("text/", "application/json", "application/xml", "application/x-yaml", "application/yaml")

class _EmptyFile(AgentdeckError):
    """Storage answered 416 to `Range: bytes=0-N`: the file has no bytes."""


def _rfc3339(moment: datetime) -> str:
    moment = moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


def _describe(response: httpx2.Response) -> str:
    """The HTTP core's error text for a problem body."""
    try:
        problem = parse_problem(response.json())
    except ValueError:
        problem = None
    return problem_text(problem) if problem else response.text[:300]


def _decode(content: bytes, mime: str, truncated: bool) -> str | None:
    """UTF-8 text when the file is text (a character cut by truncation is dropped), else None."""
    textual = mime.startswith(_TEXT_TYPES)
    if not textual and (mime != "application/octet-stream" or b"\0" in content):
        return None
    for cut in range(4 if truncated else 1):
        try:
            return content[: len(content) - cut].decode("utf-8")
        except UnicodeDecodeError:
            continue
    return None


class OzBackend(Backend):
    """Cloud agent runs of Warp's Oz platform, through a Warp API key."""

    kind = "oz"
    capabilities = frozenset({Capability.AGENTS, Capability.RUNS, Capability.RUN_CANCEL, Capability.RUN_FOLLOWUP, Capability.FILES})

    def __init__(self, name: str, settings: Any, *, identity: str | None = None, transport: Any = None) -> None:
        super().__init__(name)
        self.settings = settings
        self.identity = identity or ""
        self._key = settings.api_key.get_secret_value() if getattr(settings, "api_key", None) else ""
        timeouts = Timeouts(read=settings.timeout_seconds, connect=settings.connect_timeout_seconds)
        retry = RetryPolicy(max_retries=settings.max_retries)
        self._client = PlatformClient(
            "oz",
            base_url=settings.base_url.rstrip("/"),
            headers={"Authorization": f"Bearer {self._key}", "Accept": "application/json"} if self._key else {},
            secrets=[self._key],
            timeouts=timeouts,
            retry=retry,
            transport=transport,
            describe=_describe,
        )
        # Presigned download URLs point at storage; they must not receive the API key.
        self._storage = PlatformClient("oz storage", base_url=settings.base_url, secrets=[self._key], timeouts=timeouts, retry=retry, transport=transport)

    async def aclose(self) -> None:
        await self._client.aclose()
        await self._storage.aclose()

    async def _call(self, method: str, path: str, *, refusals: dict[str, AgentdeckError] | None = None, **kwargs: Any) -> Any:
        """One API call; a problem answer becomes the error of its code (or of `refusals`)."""
        if not self._key:
            raise Unauthorized(f"Backend '{self.name}' has no Warp API key: set {self.settings.api_key_env} (or secrets_file) and restart.")
        try:
            return await self._client.json(method, path, **kwargs)
        except AgentdeckError as exc:
            problem = parse_problem(exc.platform_body) if exc.platform_body is not None else None
            if problem is None:
                raise
            raise self._translate(exc, problem, refusals or {}) from None

    def _translate(self, exc: AgentdeckError, problem: dict[str, Any], refusals: dict[str, AgentdeckError]) -> AgentdeckError:
        code, retryable = problem["code"], problem.get("retryable")
        text = f"oz answered {problem.get('status', '?')}: {redact(problem_text(problem), [self._key])}"
        if code in refusals:  # the call's own reading of this code, with its own retryable
            error = refusals[code]
            error.message = f"{text}. {error.message}"
            return error
        if isinstance(exc, RateLimited):
            error = exc  # keeps retry_after
        elif code in PROBLEM_CODES:
            cls, step = PROBLEM_CODES[code]
            error = cls(f"{text}. {step}")
        else:
            error = exc
        if isinstance(retryable, bool):
            error.retryable = retryable
        return error

    # agents -------------------------------------------------------------------------------
    async def _skills(self) -> list[dict[str, Any]]:
        body = await self._call("GET", "/agent")
        return [a for a in (body or {}).get("agents", []) if isinstance(a, dict)]

    async def list_agents(self) -> AgentList:
        """One entry per skill variant: the agent's name when it has one variant, else each variant's skill spec."""
        agents: list[Agent] = []
        for skill in await self._skills():
            variants = [v for v in skill.get("variants", []) if not v.get("error")]
            for variant in variants:
                name = skill["name"] if len(variants) == 1 else variant["id"]
                text = variant.get("description") or skill["name"]
                agents.append(Agent(name=name, backend=self.name, description=f"{text} (skill {variant['id']})"))
        return AgentList(agents=agents)

    async def _resolve_skill(self, agent: str) -> str | None:
        """The skill spec an agent name stands for: itself if it is a spec, else the listed skill of that name."""
        if ":" in agent:
            return agent
        for skill in await self._skills():
            if skill.get("name") != agent:
                continue
            variants = [v["id"] for v in skill.get("variants", []) if not v.get("error")]
            if len(variants) > 1:
                raise InvalidArgument(f"Agent '{agent}' has several variants; pass one of these as agent: {', '.join(variants)}.")
            return variants[0] if variants else None
        return None

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
        if workspace is not None:
            raise InvalidArgument("Oz runs in a cloud environment, not a workspace directory; omit workspace and pass metadata.environment_id instead.")
        if ttl_seconds is not None:
            raise InvalidArgument("Oz has no run time limit to set; omit ttl_seconds and cancel_run the run if it takes too long.")
        options, stored = self._split_metadata(metadata)
        key = None
        if idempotency_key is not None:
            key = hashlib.sha256(f"{self.identity}\0{idempotency_key}".encode()).hexdigest()[:40]
            existing = await self._find_by_key(key)
            if existing is not None:
                return existing
            stored[KEY_FIELD] = key
        skill = options.get("skill") or await self._resolve_skill(agent)
        config = {k: options[k] for k in ("environment_id", "model_id") if k in options}
        if ":" not in agent:
            config["name"] = agent
        body: dict[str, Any] = {"prompt": prompt, "config": config}
        for field, value in (("title", name), ("skill", skill), ("mode", options.get("mode")), ("parent_run_id", parent_run_id), ("metadata", stored or None)):
            if value is not None:
                body[field] = value
        retry = "pass the same idempotency_key to call again safely" if key else "check list_runs before calling again, or pass an idempotency_key"
        created = await self._call(
            "POST", "/agent/runs", json=body,
            refusals={"internal_error": Unavailable(f"Oz failed while creating the run; it may or may not exist: {retry}.", retryable=True)},
        )
        return await self.get_run(created["run_id"])

    @staticmethod
    def _split_metadata(metadata: dict[str, Any] | None) -> tuple[dict[str, str], dict[str, str]]:
        """(typed create options, Oz metadata as strings) from spawn_agent's metadata."""
        options: dict[str, str] = {}
        stored: dict[str, str] = {}
        for key, value in (metadata or {}).items():
            if key in (KEY_FIELD, DETAILS):
                raise InvalidArgument(f"metadata.{key} is reserved by agentdeck; use another key.")
            if key in SPAWN_OPTIONS:
                if not isinstance(value, str) or not value:
                    raise InvalidArgument(f"metadata.{key} must be a non-empty string.")
                if key == "mode" and value not in MODES:
                    raise InvalidArgument(f"metadata.mode must be one of {', '.join(MODES)}.")
                options[key] = value
            else:
                stored[key] = value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))
        return options, stored

    async def _find_by_key(self, key: str) -> Run | None:
        # The oldest match is the run made with the key: children inherit their parent's metadata.
        params = {f"metadata[{KEY_FIELD}]": key, "sort_by": "created_at", "sort_order": "asc", "limit": 1}
        body = await self._call("GET", "/agent/runs", params=params)
        runs = (body or {}).get("runs") or []
        return self._run(runs[0]) if runs else None

    # runs -----------------------------------------------------------------------------------
    def _path(self, run_id: str, tail: str = "") -> str:
        return f"/agent/runs/{quote(run_id, safe='')}{tail}"

    async def get_run(self, run_id: str) -> Run:
        return self._run(await self._call("GET", self._path(run_id)))

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
        params: list[tuple[str, Any]] = [("limit", limit), ("sort_by", "created_at"), ("sort_order", "desc")]
        if state is not None:
            if state not in STATE_FILTERS:
                raise InvalidArgument(f"state must be one of {', '.join(STATE_FILTERS)}.")
            params += [("state", s) for s in STATE_FILTERS[state]]
        if agent is not None:
            params.append(("skill" if ":" in agent else "name", agent))
        if parent_run_id is not None:
            params.append(("ancestor_run_id", parent_run_id))
        if created_after is not None:
            params.append(("created_after", _rfc3339(created_after)))
        if cursor:
            params.append(("cursor", cursor))
        body = await self._call("GET", "/agent/runs", params=params)
        runs = [self._run(item) for item in body.get("runs") or []]
        if parent_run_id is not None:  # Oz filters by ancestor; keep the direct children
            runs = [r for r in runs if r.parent_run_id == parent_run_id]
        page_info = body.get("page_info") or {}
        next_cursor = page_info.get("next_cursor") if page_info.get("has_next_page") else None
        return RunPage(runs=runs, next_cursor=next_cursor or None)

    async def cancel_run(self, run_id: str) -> Run:
        refusals: dict[str, AgentdeckError] = {
            "invalid_request": Conflict(
                "The run has already ended (or is BLOCKED, which Oz does not cancel); read it with get_run, and answer a blocked run with send_followup."
            ),
            "conflict": Conflict("The run is PENDING (being prepared) and cannot be cancelled yet; call cancel_run again in a few seconds.", retryable=True),
            "operation_not_supported": Unsupported(
                "This run executes outside Oz's cloud (self-hosted, local or a GitHub Action); stop it where it runs."
            ),
        }
        await self._call("POST", self._path(run_id, "/cancel"), refusals=refusals)
        return await self.get_run(run_id)

    async def send_followup(self, run_id: str, message: str) -> Run:
        # The generic tool has no mode; Oz's default ("normal") applies.
        await self._call("POST", self._path(run_id, "/followups"), json={"message": message})
        return await self.get_run(run_id)

    async def wait_for_run(self, run_id: str, timeout: float, progress: Progress) -> Run:
        """Poll with capped backoff; progress names the Oz state and its status message."""
        delay, step = 0.5, 0
        with anyio.move_on_after(timeout):
            while True:
                run = await self.get_run(run_id)
                if run.done:
                    return run
                step += 1
                status = run.metadata.get(DETAILS, {}).get("status_message")
                await progress(step, f"run {run_id} is {run.state} (Oz {run.platform_state})" + (f": {status}" if status else ""))
                await anyio.sleep(delay)
                delay = min(delay * 1.5, 5.0)
        return await self.get_run(run_id)

    def _run(self, item: dict[str, Any]) -> Run:
        return run_from_oz(item, self.name)

    # session files: the handoff snapshot attachments of the run's latest ended execution -------------
    async def _attachments(self, run_id: str) -> list[dict[str, Any]]:
        body = await self._call("GET", self._path(run_id, "/handoff/attachments"))
        return [a for a in (body or {}).get("attachments") or [] if isinstance(a, dict)]

    async def list_session_files(self, run_id: str, path: str = "") -> SessionFileList:
        """The entries directly inside `path`; a '/' in an attachment's filename reads as directories."""
        prefix = path.strip("/")
        entries: dict[str, SessionFile] = {}
        for name in (str(a.get("filename", "")) for a in await self._attachments(run_id)):
            if name == prefix:
                entries[name] = SessionFile(path=name, backend=self.name)
            elif not prefix or name.startswith(prefix + "/"):
                head, _, rest = name[len(prefix) + 1 if prefix else 0 :].partition("/")
                entry = f"{prefix}/{head}" if prefix else head
                entries[entry] = SessionFile(path=entry, backend=self.name, is_dir=bool(rest))
        files = list(entries.values())
        if prefix and not files:
            raise NotFound(f"Run {run_id} has no handoff file under '{prefix}'; call list_session_files without a path to see them all.")
        return SessionFileList(run_id=run_id, backend=self.name, path=prefix, files=files)

    async def download_session_file(self, run_id: str, path: str, max_bytes: int) -> FileContent:
        wanted = path.strip("/")
        attachments = await self._attachments(run_id)
        found = next((a for a in attachments if wanted in (a.get("filename"), a.get("attachment_id"))), None)
        if found is None:
            names = ", ".join(a["filename"] for a in attachments) or "none (the run has no ended execution with snapshot files)"
            raise NotFound(f"Run {run_id} has no handoff file '{wanted}'. Files: {names}.")
        # Ask for one byte more than wanted so truncation shows; storage that ignores Range sends it all.
        try:
            response = await self._storage.request("GET", found["download_url"], headers={"Range": f"bytes=0-{max_bytes}"}, errors={416: _EmptyFile})
        except _EmptyFile:
            return FileContent(run_id=run_id, backend=self.name, path=found["filename"], size=0, mime_type=found.get("mime_type") or "application/octet-stream", text="")
        content = response.content
        total = len(content)
        content_range = response.headers.get("content-range", "")
        if response.status_code == 206 and "/" in content_range and content_range.rsplit("/", 1)[1].isdigit():
            total = int(content_range.rsplit("/", 1)[1])
        truncated = total > max_bytes or len(content) > max_bytes
        content = content[:max_bytes]
        mime = found.get("mime_type") or response.headers.get("content-type", "application/octet-stream").split(";")[0]
        text = _decode(content, mime, truncated)
        return FileContent(
            run_id=run_id,
            backend=self.name,
            path=found["filename"],
            size=total,
            truncated=truncated,
            mime_type=mime,
            text=text,
            base64=None if text is not None else base64.b64encode(content).decode(),
        )

