"""Warp Oz adapter: cloud agent runs are runs, skills are agents, handoff snapshots are files.

    [backends.oz]
    kind = "oz"                   # key from $WARP_API_KEY, sent as a bearer token

spawn_agent's `agent` is the Oz agent (config) name, sent as `config.name`. When it names a
skill from list_agents (or is a skill spec `owner/repo:path`), the skill is sent too. Metadata
keys `environment_id`, `model_id`, `skill` and `mode` become the typed create fields; the rest
is Oz run metadata (strings; other JSON values are sent as their JSON text). Platform details
come back in `metadata.oz`.

Oz has no idempotency key. agentdeck keeps one in the reserved metadata key
`agentdeck_idempotency_key`, and records key -> run id in the data dir under a file lock, so a
repeated key from this server (or another sharing the data dir) returns the first run without
asking Oz. A key with no record is looked up with the metadata filter on list-runs; a team
whose plan lacks that filter (`feature_not_available`) is served by the record alone. A crash
between create and record leaves a pending mark; the retry then scans the runs created since
that mark for the key in their metadata (a plain list, no filter) before creating again.

get_run_events reads the run's normalized conversation (its transcript where the conversation
is not available). A follow-up starting with /plan, /orchestrate or /normal is sent in that
mode. Artifacts are files under `artifacts/` in the session-file tools (see oz_files).

Errors are RFC 7807 problems; the code is the last segment of `type`. The adapter maps them by
code (not only by status), names the code in the message and keeps the body's `retryable`.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta
from typing import Any, Unpack
from urllib.parse import quote

from agentdeck.backends.base import Backend, BuildEnv, Capability, Progress, poll_until_done
from agentdeck.backends.dialect import Auth, Overrides, explain
from agentdeck.backends.http import PlatformClient, RetryPolicy, Timeouts
from agentdeck.backends.oz_events import FOLLOWUP_MODE, conversation_events, page_events, transcript_event
from agentdeck.backends.oz_files import RunFiles
from agentdeck.backends.oz_models import DETAILS, DIALECT, KEY_FIELD, STATE_FILTERS, run_from_oz
from agentdeck.backends.records import Records
from agentdeck.backends.requests import RunFilter, SpawnRequest
from agentdeck.backends.times import parse_time
from agentdeck.config import OzConfig
from agentdeck.errors import Conflict, InvalidArgument, NotFound, Unavailable, Unsupported
from agentdeck.models import Agent, AgentList, Run, RunEventPage, RunPage

__all__ = ["OzBackend"]

SPAWN_OPTIONS = ("environment_id", "model_id", "skill", "mode")
MODES = ("normal", "plan", "orchestrate")
_SCAN_PAGES = 5  # of 100 runs, when a pending key is looked for without the metadata filter
_TRANSCRIPT_BYTES = 1_000_000


def _rfc3339(moment: datetime) -> str:
    moment = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


# cancel_run's own reading of Oz's refusals (each keeps its own retryable).
_CANCEL_REFUSALS: Overrides = {
    "invalid_request": explain(
        Conflict, "The run has already ended (or is BLOCKED, which Oz does not cancel); read it with get_run, and answer a blocked run with send_followup."
    ),
    "conflict": lambda text: Conflict(f"{text}. The run is PENDING (being prepared) and cannot be cancelled yet; call cancel_run again in a few seconds.", retryable=True),
    "operation_not_supported": explain(Unsupported, "This run executes outside Oz's cloud (self-hosted, local or a GitHub Action); stop it where it runs."),
}


class OzBackend(RunFiles, Backend):
    """Cloud agent runs of Warp's Oz platform, through a Warp API key."""

    kind = "oz"
    capabilities = frozenset({Capability.AGENTS, Capability.RUNS, Capability.RUN_CANCEL, Capability.RUN_FOLLOWUP, Capability.RUN_EVENTS, Capability.FILES})

    def __init__(self, name: str, settings: OzConfig, **env: Unpack[BuildEnv]) -> None:
        super().__init__(name)
        identity, transport, data_dir = env.get("identity"), env.get("transport"), env.get("data_dir")
        self.settings = settings
        self.identity = identity or ""
        key = settings.api_key.get_secret_value() if settings.api_key else ""
        timeouts = Timeouts(read=settings.timeout_seconds, connect=settings.connect_timeout_seconds)
        retry = RetryPolicy(max_retries=settings.max_retries)
        missing = f"Backend '{name}' has no Warp API key: set {settings.api_key_env} (or secrets_file) and restart."
        self._client = PlatformClient(
            "oz",
            base_url=settings.base_url.rstrip("/"),
            headers={"Accept": "application/json"} if key else {},
            auth=Auth.key("Authorization", key, scheme="Bearer", missing=missing),
            timeouts=timeouts,
            retry=retry,
            transport=transport,
            dialect=DIALECT,
        )
        # Presigned download URLs point at storage; they must not receive the API key.
        self._storage = PlatformClient("oz storage", base_url=settings.base_url, secrets=[key], timeouts=timeouts, retry=retry, transport=transport)
        self._keys = Records.of_backend(data_dir, "oz", name, "idempotency")

    async def aclose(self) -> None:
        await self._client.aclose()
        await self._storage.aclose()

    async def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        return await self._client.json(method, path, **kwargs)

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

    async def spawn_agent(self, request: SpawnRequest) -> Run:
        agent, prompt, name, workspace = request.agent, request.prompt, request.name, request.workspace
        ttl_seconds, metadata, parent_run_id, idempotency_key = request.ttl_seconds, request.metadata, request.parent_run_id, request.idempotency_key
        if workspace is not None:
            raise InvalidArgument("Oz runs in a cloud environment, not a workspace directory; omit workspace and pass metadata.environment_id instead.")
        if ttl_seconds is not None:
            raise InvalidArgument("Oz has no run time limit to set; omit ttl_seconds and cancel_run the run if it takes too long.")
        options, stored = self._split_metadata(metadata)
        if idempotency_key is None:
            return await self.get_run(await self._create(agent, prompt, name, options, stored, parent_run_id, None))
        key = hashlib.sha256(f"{self.identity}\0{idempotency_key}".encode()).hexdigest()[:40]
        async with self._keys.locked(key) as record:
            if record.data.get("run_id"):
                return await self.get_run(str(record.data["run_id"]))
            existing = await self._find_by_key(key, parse_time(record.data.get("pending_since")))
            if existing is not None:
                run_id = existing.id
            else:
                record.data["pending_since"] = datetime.now(UTC).isoformat()
                record.save()
                run_id = await self._create(agent, prompt, name, options, {**stored, KEY_FIELD: key}, parent_run_id, key)
            record.data.clear()
            record.data["run_id"] = run_id
            record.save()
        return existing or await self.get_run(run_id)

    async def _create(
        self, agent: str, prompt: str, name: str | None, options: dict[str, str], stored: dict[str, str], parent_run_id: str | None, key: str | None
    ) -> str:
        """POST /agent/runs; the new run's id."""
        skill = options.get("skill") or await self._resolve_skill(agent)
        config: dict[str, str] = {k: options[k] for k in ("environment_id", "model_id") if k in options}
        if ":" not in agent:
            config["name"] = agent
        body: dict[str, Any] = {"prompt": prompt, "config": config}
        for field, value in (("title", name), ("skill", skill), ("mode", options.get("mode")), ("parent_run_id", parent_run_id), ("metadata", stored or None)):
            if value is not None:
                body[field] = value
        retry = "pass the same idempotency_key to call again safely" if key else "check list_runs before calling again, or pass an idempotency_key"
        failed = f"Oz failed while creating the run; it may or may not exist: {retry}."
        created = await self._call("POST", "/agent/runs", json=body, errors={"internal_error": lambda text: Unavailable(f"{text}. {failed}", retryable=True)})
        return str(created["run_id"])

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

    async def _find_by_key(self, key: str, pending_since: datetime | None) -> Run | None:
        """The run made with this key: by the metadata filter, else (after a crash) by scanning recent runs."""
        # The oldest match is the run made with the key: children inherit their parent's metadata.
        params = {f"metadata[{KEY_FIELD}]": key, "sort_by": "created_at", "sort_order": "asc", "limit": 1}
        try:
            body = await self._call("GET", "/agent/runs", params=params)
        except Unsupported as exc:
            if exc.platform_code != "feature_not_available":  # the team's plan has no metadata filter
                raise
            return None if pending_since is None else await self._scan_for_key(key, pending_since)
        runs = (body or {}).get("runs") or []
        return self._run(runs[0]) if runs else None

    async def _scan_for_key(self, key: str, since: datetime) -> Run | None:
        params: dict[str, Any] = {"created_after": _rfc3339(since - timedelta(minutes=5)), "sort_by": "created_at", "sort_order": "asc", "limit": 100}
        for _ in range(_SCAN_PAGES):
            body = await self._call("GET", "/agent/runs", params=params) or {}
            for item in body.get("runs") or []:
                if (item.get("metadata") or {}).get(KEY_FIELD) == key:
                    return self._run(item)
            page_info = body.get("page_info") or {}
            if not (page_info.get("has_next_page") and page_info.get("next_cursor")):
                return None
            params["cursor"] = page_info["next_cursor"]
        raise Unavailable("Too many runs were created since this idempotency key was last tried to tell whether it made one; check list_runs before calling again.")

    # runs -----------------------------------------------------------------------------------
    def _path(self, run_id: str, tail: str = "") -> str:
        return f"/agent/runs/{quote(run_id, safe='')}{tail}"

    async def get_run(self, run_id: str) -> Run:
        return self._run(await self._call("GET", self._path(run_id)))

    async def list_runs(self, query: RunFilter) -> RunPage:
        state, agent, parent_run_id, created_after, limit, cursor = query.state, query.agent, query.parent_run_id, query.created_after, query.limit, query.cursor
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
        await self._call("POST", self._path(run_id, "/cancel"), errors=_CANCEL_REFUSALS)
        return await self.get_run(run_id)

    async def send_followup(self, run_id: str, message: str) -> Run:
        body: dict[str, Any] = {"message": message}
        mode = FOLLOWUP_MODE.match(message)
        if mode:
            body = {"message": message[mode.end() :].strip(), "mode": mode.group(1)}
            if not body["message"]:
                raise InvalidArgument(f"Write the follow-up after /{mode.group(1)}, e.g. '/{mode.group(1)} add tests for the parser'.")
        await self._call("POST", self._path(run_id, "/followups"), json=body)
        return await self.get_run(run_id)

    async def get_run_events(self, run_id: str, *, after_seq: int | None = None, limit: int = 100) -> RunEventPage:
        run = await self.get_run(run_id)
        when = run.started_at or run.created_at
        try:
            body = await self._call("GET", self._path(run_id, "/conversation"))
            events = conversation_events(body or {}, when)
        except Unsupported as exc:
            if exc.platform_code != "operation_not_supported":  # the conversation has no normalized form
                raise
            events = transcript_event(await self._transcript(run_id), when)
        except NotFound:
            events = []  # the run exists but has no conversation yet
        return page_events(run.id, self.name, events, after_seq=after_seq, limit=limit, state=run.state, done=run.done)

    async def _transcript(self, run_id: str) -> str:
        """The raw transcript: the API answers 302 to a download URL, fetched without the API key."""
        try:
            redirect = await self._client.request("GET", self._path(run_id, "/transcript"), redirect=True)
        except NotFound:
            return ""
        location = redirect.headers.get("location")
        if not redirect.is_redirect or not location:
            return redirect.text
        data = (await self._storage.request("GET", location, headers={"Range": f"bytes=0-{_TRANSCRIPT_BYTES - 1}"})).content
        return data[:_TRANSCRIPT_BYTES].decode("utf-8", errors="replace")

    async def wait_for_run(self, run_id: str, timeout: float, progress: Progress) -> Run:
        """Poll with capped backoff; progress names the Oz state and its status message."""
        return await poll_until_done(self.get_run, run_id, timeout, progress, describe=_progress)

    def _run(self, item: dict[str, Any]) -> Run:
        return run_from_oz(item, self.name)


def _progress(run_id: str, run: Run) -> str:
    status = run.metadata.get(DETAILS, {}).get("status_message")
    return f"run {run_id} is {run.state} (Oz {run.platform_state})" + (f": {status}" if status else "")
