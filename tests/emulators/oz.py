"""Emulator of Warp's Oz cloud agents API (https://app.warp.dev/api/v1), for adapter tests.

Point a client at `http://127.0.0.1:PORT/api/v1` with any non-empty bearer token. State lives
in memory (see `oz_state`); runs move along scripts as the emulator clock advances:

    app = create_app(seed=False)
    run_id = app.add_run("fix it", "INPROGRESS")       # helpers are reachable on the app
    app.queue_script(script("FAILED", step_seconds=5))  # the next API-created run will fail
    app.clock.advance(30)
    app.queue_error("insufficient_credits", method="POST", path="/agent/runs")

A process that runs the emulator standalone can drive it over HTTP: POST /_oz/clock
{"advance": s}, POST /_oz/scripts {"final": "FAILED", ...script() kwargs}, POST /_oz/runs
{add_run kwargs} -> {"run_id"}, POST /_oz/errors {queue_error kwargs}, GET /_oz/runs/{id}/followups.

The emulated agent answers its prompt and each follow-up by quoting it, in the run's
conversation (GET /agent/runs/{id}/conversation) and transcript (see oz_conversation).
`create_app(metadata_filter=False)` emulates a team without metadata filtering on list-runs.

Errors are RFC 7807 problems (`application/problem+json`) with Oz's extension members
`error` and `retryable`; the error code is the last segment of `type`.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import json
import re
import uuid
from datetime import UTC, datetime
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route

from tests.emulators.faults import FaultInjector
from tests.emulators.oz_conversation import conversation, transcript_text
from tests.emulators.oz_state import (
    ARTIFACT_TYPES,
    RUN_SOURCES,
    RUN_STATES,
    TEAM_UID,
    USER,
    OzError,
    OzState,
    RunQuery,
    Step,
    rfc3339,
    script,
)

__all__ = ["Step", "create_app", "parse_options", "problem", "script"]

PREFIX = "/api/v1"
MODES = ("normal", "plan", "orchestrate")
PROBLEM_TYPE_BASE = "https://docs.warp.dev/reference/api-and-sdk/troubleshooting/errors/"
# code -> (HTTP status, title, retryable); titles follow docs.warp.dev's error pages.
PROBLEMS: dict[str, tuple[int, str, bool]] = {
    "invalid_request": (400, "The request contains invalid or missing parameters.", False),
    "integration_not_configured": (400, "The integration is not configured.", False),
    "authentication_required": (
        401, "Your API key is invalid or has expired. Please generate a new key and try again.", False),
    "external_authentication_required": (401, "Authorization with an external service is required.", False),
    "not_authorized": (403, "You do not have permission for this operation.", False),
    "insufficient_credits": (403, "Your team has run out of add-on credits. Purchase more credits in your "
                                  "team's billing settings to continue.", False),
    "feature_not_available": (403, "This feature is not available on your current plan.", False),
    "budget_exceeded": (403, "Your spending budget has been reached.", False),
    "integration_disabled": (403, "This integration is disabled. Please enable it in Oz.", False),
    "content_policy_violation": (
        403, "Unable to start cloud agent. Please try again or contact support if the issue persists.", False),
    "resource_not_found": (404, "The requested resource was not found.", False),
    "conflict": (409, "The request conflicts with the current state of the resource.", True),
    "operation_not_supported": (422, "This operation is not supported for this resource.", False),
    "resource_unavailable": (429, "Agent capacity is temporarily full. Your task will be retried automatically, "
                                  "or you can try again later.", True),
    "environment_setup_failed": (500, "The cloud agent environment failed to initialize.", False),
    "internal_error": (500, "An unexpected error occurred. Please try again later. If the issue persists, "
                            "contact support.", True),
}
_STATUS_CODES = {400: "invalid_request", 401: "authentication_required", 403: "not_authorized",
                 404: "resource_not_found", 409: "conflict", 422: "operation_not_supported",
                 429: "resource_unavailable", 503: "resource_unavailable"}
_METADATA_KEY = re.compile(r"[A-Za-z0-9._-]{1,64}")
_CONFIG_STRINGS = ("name", "model_id", "base_prompt", "environment_id", "skill_spec", "worker_host", "runner_id")
_CONFIG_DICTS = ("harness_auth_secrets", "inference_providers")


def problem(code: str, *, status: int | None = None, detail: str | None = None, title: str | None = None,
            instance: str | None = None, docs_style: bool = False, **extra: Any) -> dict[str, Any]:
    """An Oz RFC 7807 body. `docs_style` gives `type` as docs.warp.dev examples show it
    (relative, hyphenated, trailing slash) instead of the OpenAPI form (absolute, `{error_code}`)."""
    default_status, default_title, retryable = PROBLEMS.get(code, PROBLEMS["internal_error"])
    title = title or default_title
    kind = f"/reference/api-and-sdk/troubleshooting/errors/{code.replace('_', '-')}/" if docs_style else (
        PROBLEM_TYPE_BASE + code)
    body: dict[str, Any] = {"type": kind, "title": title, "status": status or default_status}
    if detail:
        body["detail"] = detail
    if instance:
        body["instance"] = instance
    body["error"] = f"{title} ({detail})" if detail else title
    body["retryable"] = retryable
    body["trace_id"] = uuid.uuid4().hex
    return body | extra


def _code_for_status(status: int) -> str:
    return _STATUS_CODES.get(status, "internal_error" if status >= 500 else "invalid_request")


def _bad(detail: str) -> OzError:
    return OzError("invalid_request", detail)


class _Api:
    """The HTTP handlers, bound to one OzState."""

    def __init__(self, state: OzState, *, api_keys: set[str] | None, docs_style: bool, metadata_filter: bool = True) -> None:
        self.state, self.api_keys, self.docs_style, self.metadata_filter = state, api_keys, docs_style, metadata_filter
        self.queued_errors: list[dict[str, Any]] = []

    # ---- plumbing ------------------------------------------------------------------------
    def queue_error(self, code: str, *, method: str | None = None, path: str | None = None, times: int = 1,
                    status: int | None = None, detail: str | None = None, title: str | None = None,
                    **extra: Any) -> None:
        """Answer the next `times` matching API requests with this problem (path is relative to /api/v1)."""
        self.queued_errors.append({"code": code, "method": method, "path": path, "times": times, "status": status,
                                   "detail": detail, "title": title, "extra": extra})

    def guarded(self, handler: Any, *, public: bool = False) -> Any:
        async def endpoint(request: Request) -> Response:
            if not public:
                self._authenticate(request)
            self._raise_queued(request)
            return await handler(request)
        return endpoint

    def _authenticate(self, request: Request) -> None:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token or (self.api_keys is not None and token not in self.api_keys):
            raise OzError("authentication_required")

    def _raise_queued(self, request: Request) -> None:
        path = request.url.path.removeprefix(PREFIX)
        for queued in self.queued_errors:
            if queued["method"] and queued["method"].upper() != request.method:
                continue
            if queued["path"] and not path.startswith(queued["path"].removeprefix(PREFIX)):
                continue
            queued["times"] -= 1
            if queued["times"] <= 0:
                self.queued_errors.remove(queued)
            raise OzError(queued["code"], queued["detail"], status=queued["status"], title=queued["title"],
                          extra=queued["extra"])

    async def on_error(self, request: Request, exc: Exception) -> Response:
        if isinstance(exc, OzError):
            code, status, detail, title, extra = exc.code, exc.status, exc.detail, exc.title, exc.extra
        else:
            status = getattr(exc, "status_code", 500)
            code, detail, title, extra = _code_for_status(status), getattr(exc, "detail", None), None, {}
        body = problem(code, status=status, detail=detail, title=title, instance=request.url.path,
                       docs_style=self.docs_style, **extra)
        return JSONResponse(body, status_code=body["status"], media_type="application/problem+json")

    # ---- runs ----------------------------------------------------------------------------
    async def create_run(self, request: Request) -> Response:
        run = self.state.create_run(_validate_run_request(await _json_body(request)))
        body = {"run_id": run.run_id, "task_id": run.run_id, "state": run.state, "at_capacity": self.state.at_capacity}
        return JSONResponse(body)

    async def list_runs(self, request: Request) -> Response:
        query = _run_query(request)
        if query.metadata and not self.metadata_filter:
            # oz-agent-sdk 0.15.0 runs.py `list`: "Returns feature_not_available when metadata filtering is not enabled."
            raise OzError("feature_not_available", "metadata filtering is not enabled for this team")
        runs, cursor = self.state.list_runs(query)
        page_info: dict[str, Any] = {"has_next_page": cursor is not None}
        if cursor is not None:
            page_info["next_cursor"] = cursor
        return JSONResponse({"runs": [self.state.to_wire(r) for r in runs], "page_info": page_info})

    async def get_run(self, request: Request) -> Response:
        return JSONResponse(self.state.to_wire(self.state.read(request.path_params["run_id"])))

    async def cancel_run(self, request: Request) -> Response:
        # The body (usually empty, even with Content-Type: application/json) is ignored.
        return JSONResponse(self.state.cancel(request.path_params["run_id"]))

    async def submit_followup(self, request: Request) -> Response:
        body = await _json_body(request)
        message, mode = body.get("message"), body.get("mode", "normal")
        if not isinstance(message, str) or not message.strip():
            raise _bad("message is required")
        if mode not in MODES:
            raise _bad(f"mode must be one of {', '.join(MODES)}")
        self.state.submit_followup(request.path_params["run_id"], message, mode)
        return JSONResponse({})

    def _visible_run(self, run_id: str) -> Any:
        """The run synced to the clock (404/403 as GET /agent/runs/{id}), without counting a poll."""
        self.state.sync()
        return self.state._get(run_id)

    async def run_conversation(self, request: Request) -> Response:
        return JSONResponse(conversation(self._visible_run(request.path_params["run_id"])))

    async def run_transcript(self, request: Request) -> Response:
        run = self._visible_run(request.path_params["run_id"])
        transcript_text(run)  # 404 when there is none
        url = f"{str(request.base_url).rstrip('/')}/storage/transcripts/{run.run_id}?Signature=emulated"
        return Response(status_code=302, headers={"Location": url})

    async def handoff_attachments(self, request: Request) -> Response:
        items = self.state.handoff_attachments(request.path_params["run_id"], str(request.base_url))
        return JSONResponse({"attachments": items})

    # ---- catalog -------------------------------------------------------------------------
    async def list_agents(self, request: Request) -> Response:
        params = request.query_params
        repo, sort_by = params.get("repo"), params.get("sort_by", "name")
        if repo is not None and not re.fullmatch(r"[\w.-]+/[\w.-]+", repo):
            raise _bad("repo must look like owner/repo")
        if sort_by not in ("name", "last_run"):
            raise _bad("sort_by must be name or last_run")
        malformed = _flag(params.get("include_malformed_skills"), "include_malformed_skills")
        _flag(params.get("refresh"), "refresh")
        last_runs: dict[str, datetime] = {}
        for run in self.state.snapshot():
            spec = run.config.get("skill_spec")
            if spec and (spec not in last_runs or run.created_at > last_runs[spec]):
                last_runs[spec] = run.created_at
        agents = []
        for agent in self.state.agents:
            variants = [dict(v) for v in agent["variants"] if (malformed or not v.get("error")) and (
                repo is None or f"{v['source']['owner']}/{v['source']['name']}" == repo)]
            for v in variants:
                if v["id"] in last_runs:
                    v["last_run_timestamp"] = rfc3339(last_runs[v["id"]])
            if variants:
                agents.append({"name": agent["name"], "variants": variants})
        if sort_by == "last_run":
            agents.sort(key=lambda a: max(v.get("last_run_timestamp") or "" for v in a["variants"]), reverse=True)
        else:
            agents.sort(key=lambda a: a["name"].casefold())
        return JSONResponse({"agents": agents})

    async def list_environments(self, request: Request) -> Response:
        sort_by = request.query_params.get("sort_by", "last_updated")
        if sort_by not in ("name", "last_updated"):
            raise _bad("sort_by must be name or last_updated")
        envs = sorted(self.state.environments, key=lambda e: e["config"].get("name", "").casefold()) if (
            sort_by == "name") else sorted(self.state.environments, key=lambda e: e["last_updated"], reverse=True)
        return JSONResponse({"environments": envs})

    async def get_artifact(self, request: Request) -> Response:
        return JSONResponse(self.state.artifact(request.path_params["artifact_uid"], str(request.base_url)))

    async def session_redirect(self, request: Request) -> Response:
        session = request.path_params["session_uuid"]
        for run in self.state.snapshot():
            item = self.state.to_wire(run)
            if run.session_id == session and run.state in ("SUCCEEDED", "FAILED", "ERROR", "CANCELLED") and (
                    not item["is_sandbox_running"]):
                return JSONResponse({"conversation_id": run.conversation_id})
        return JSONResponse({})

    async def conversation_redirect(self, request: Request) -> Response:
        conversation = request.path_params["conversation_id"]
        for run in self.state.snapshot():
            if run.conversation_id == conversation and run.session_id and self.state.to_wire(run)["is_sandbox_running"]:
                return JSONResponse({"session_id": run.session_id})
        return JSONResponse({})

    # ---- control routes (/_oz/...) for driving a standalone emulator from another process ----
    async def control(self, request: Request) -> Response:
        body = json.loads(await request.body() or b"{}")
        what = request.path_params["what"]
        try:
            if what == "clock":
                return JSONResponse({"now": rfc3339(self.state.clock.advance(float(body.get("advance", 0))))})
            if what == "scripts":
                self.state.queue_script(script(body.pop("final", "SUCCEEDED"), **body))
                return JSONResponse({}, status_code=201)
            if what == "runs":
                return JSONResponse({"run_id": self.state.add_run(**body)}, status_code=201)
            if what == "errors":
                self.queue_error(**body)
                return JSONResponse({}, status_code=201)
        except (TypeError, ValueError) as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        return JSONResponse({"error": f"unknown control {what!r}"}, status_code=404)

    async def control_followups(self, request: Request) -> Response:
        return JSONResponse(self.state.followups(request.path_params["run_id"]))

    async def download(self, request: Request) -> Response:
        kind, ident = request.path_params["kind"], request.path_params["ident"]
        if kind == "transcripts" and ident in self.state.runs:
            return Response(transcript_text(self.state.peek(ident)), media_type="text/plain")  # GUESS: the media type
        found = self.state.download(kind, ident)
        if found is None:
            return Response(b"NoSuchKey", status_code=404, media_type="text/plain")
        return Response(found[0], media_type=found[1])


# ---- request validation ----------------------------------------------------------------------
async def _json_body(request: Request) -> dict[str, Any]:
    raw = await request.body()
    if not raw.strip():
        raise _bad("request body is required")
    try:
        body = json.loads(raw)
    except ValueError as exc:
        raise _bad("request body is not valid JSON") from exc
    if not isinstance(body, dict):
        raise _bad("request body must be a JSON object")
    return body


def _flag(value: str | None, name: str) -> bool:
    if value in (None, "false"):
        return False
    if value == "true":
        return True
    raise _bad(f"{name} must be true or false")


def _expect(value: Any, kind: type | tuple[type, ...], name: str) -> None:
    if (isinstance(value, bool) and kind is int) or not isinstance(value, kind):
        raise _bad(f"{name} has the wrong type")


def _validate_run_request(body: dict[str, Any]) -> dict[str, Any]:
    for key in ("prompt", "skill", "title", "conversation_id", "parent_run_id", "agent_identity_uid", "on_behalf_of"):
        if key in body:
            _expect(body[key], str, key)
    for key in ("team", "interactive"):
        if key in body:
            _expect(body[key], bool, key)
    if body.get("mode", "normal") not in MODES:
        raise _bad(f"mode must be one of {', '.join(MODES)}")
    config = _validate_config(body.get("config") or {})
    if not (body.get("prompt") or body.get("skill") or config.get("skill_spec") or config.get("skills")
            or body.get("conversation_id")):
        raise _bad("prompt is required")
    if body.get("team") is False and (body.get("agent_identity_uid") or body.get("on_behalf_of")):
        raise _bad("agent_identity_uid and on_behalf_of are only valid for team-owned runs")
    metadata = body.get("metadata") or {}
    _expect(metadata, dict, "metadata")
    if len(metadata) > 20:
        raise _bad("metadata has more than 20 keys")
    for key, value in metadata.items():
        if not _METADATA_KEY.fullmatch(key) or not isinstance(value, str) or len(value.encode()) > 256 or "\0" in value:
            raise _bad(f"invalid metadata entry {key!r}")
    attachments = body.get("attachments") or []
    _expect(attachments, list, "attachments")
    if len(attachments) > 5:
        raise _bad("at most 5 attachments are allowed")
    for item in attachments:
        if not isinstance(item, dict) or not all(
                isinstance(item.get(k), str) for k in ("file_name", "mime_type", "data")):
            raise _bad("each attachment needs file_name, mime_type and data")
        try:
            base64.b64decode(item["data"], validate=True)
        except (binascii.Error, ValueError) as exc:
            raise _bad(f"attachment {item['file_name']} is not valid base64") from exc
    return body | {"config": config}


def _validate_config(config: Any) -> dict[str, Any]:
    """Check an AmbientAgentConfig and drop keys the server does not know (as a typed server would)."""
    _expect(config, dict, "config")
    clean: dict[str, Any] = {}
    for key in _CONFIG_STRINGS:
        if key in config:
            _expect(config[key], str, f"config.{key}")
            clean[key] = config[key]
    for key, kind in (("computer_use_enabled", bool), ("idle_timeout_minutes", int), ("skills", list),
                      ("mcp_servers", dict), ("harness", dict), ("memory_stores", list), ("session_sharing", dict),
                      *((k, dict) for k in _CONFIG_DICTS)):
        if key in config:
            _expect(config[key], kind, f"config.{key}")
            clean[key] = config[key]
    if not 0 <= clean.get("idle_timeout_minutes", 0) <= 60:
        raise _bad("config.idle_timeout_minutes must be between 0 and 60")
    if "credential_strategy" in config:
        if config["credential_strategy"] not in ("CREATOR", "EXECUTOR"):
            raise _bad("config.credential_strategy must be CREATOR or EXECUTOR")
        clean["credential_strategy"] = config["credential_strategy"]
    if "skill_spec" in clean and "skills" in clean:
        raise _bad("config.skill_spec and config.skills are mutually exclusive")
    if not all(isinstance(s, str) for s in clean.get("skills", [])):
        raise _bad("config.skills must be strings")
    for name, server in clean.get("mcp_servers", {}).items():
        if not isinstance(server, dict) or sum(k in server for k in ("warp_id", "command", "url")) != 1:
            raise _bad(f"MCP server {name!r} needs exactly one of warp_id, command or url")
    if clean.get("harness", {}).get("type", "oz") not in ("oz", "claude", "gemini", "codex"):
        raise _bad("config.harness.type must be oz, claude, gemini or codex")
    if clean.get("session_sharing", {}).get("public_access", "VIEWER") not in ("VIEWER", "EDITOR"):
        raise _bad("config.session_sharing.public_access must be VIEWER or EDITOR")
    for store in clean.get("memory_stores", []):
        if not isinstance(store, dict) or store.get("access") not in ("read_write", "read_only") or not (
                store.get("instructions") and isinstance(store.get("uid"), str)):
            raise _bad("each memory store needs uid, access (read_write|read_only) and instructions")
    return clean


def _timestamp(params: Any, name: str) -> datetime | None:
    value = params.get(name)
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise _bad(f"{name} must be an RFC 3339 timestamp") from exc
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _choice(params: Any, name: str, allowed: tuple[str, ...], default: str | None = None) -> str | None:
    value = params.get(name, default)
    if value is not None and value not in allowed:
        raise _bad(f"{name} must be one of {', '.join(allowed)}")
    return value


def _run_query(request: Request) -> RunQuery:
    params = request.query_params
    try:
        limit = int(params.get("limit", "20"))
    except ValueError as exc:
        raise _bad("limit must be an integer") from exc
    if not 1 <= limit <= 500:
        raise _bad("limit must be between 1 and 500")
    states = params.getlist("state")
    for state in states:
        if state not in RUN_STATES:
            raise _bad(f"invalid state {state!r}")
    metadata = {k[len("metadata["):-1]: v for k, v in params.multi_items()
                if k.startswith("metadata[") and k.endswith("]")}
    if len(metadata) > 5:
        raise _bad("at most 5 metadata filters are allowed")
    for key in ("automation_id", "factory_uid"):
        if params.get(key) is not None:
            metadata[key] = params[key]
    return RunQuery(
        states=frozenset(states), limit=limit, cursor=params.get("cursor") or None,
        sort_by=_choice(params, "sort_by", ("updated_at", "created_at", "title", "agent"), "updated_at") or "",
        sort_order=_choice(params, "sort_order", ("asc", "desc"), "desc") or "",
        source=_choice(params, "source", RUN_SOURCES),
        execution_location=_choice(params, "execution_location", ("LOCAL", "REMOTE")),
        artifact_type=_choice(params, "artifact_type", ARTIFACT_TYPES),
        creator=params.get("creator"), executor=params.get("executor"), name=params.get("name"),
        model_id=params.get("model_id"), environment_id=params.get("environment_id"),
        skills=tuple(params[k] for k in ("skill", "skill_spec") if params.get(k)),
        schedule_id=params.get("schedule_id"), ancestor_run_id=params.get("ancestor_run_id"), q=params.get("q"),
        created_after=_timestamp(params, "created_after"), created_before=_timestamp(params, "created_before"),
        updated_after=_timestamp(params, "updated_after"), metadata=metadata,
    )


# ---- seed and factory ------------------------------------------------------------------------
ENVIRONMENT_UID = "Bk3dEnv7QwErTy9UiOp2As"
SKILL_ID = "acme/backend:.agents/skills/code-review/SKILL.md"


def add_agent(state: OzState, name: str, variant_id: str, *, description: str = "", base_prompt: str = "",
              error: str | None = None) -> None:
    """Publish a skill variant under agent `name` (variant_id is "owner/repo:path/SKILL.md")."""
    repo, _, path = variant_id.partition(":")
    owner, _, repo_name = repo.partition("/")
    variant: dict[str, Any] = {
        "id": variant_id, "description": description or f"The {name} skill", "base_prompt": base_prompt or description,
        "source": {"owner": owner, "name": repo_name, "skill_path": path},
        "environments": [{"uid": e["uid"], "name": e["config"]["name"]} for e in state.environments]}
    if error:
        variant["error"] = error
    for agent in state.agents:
        if agent["name"] == name:
            agent["variants"].append(variant)
            return
    state.agents.append({"name": name, "variants": [variant]})


def _seed(state: OzState) -> None:
    state.environments.append({
        "uid": ENVIRONMENT_UID, "last_updated": "2026-04-30T09:00:00Z", "setup_failed": False,
        "scope": {"type": "Team", "uid": TEAM_UID}, "creator": USER,
        "config": {"name": "acme-backend", "description": "Backend monorepo", "docker_image": "python:3.12",
                   "github_repos": [{"owner": "acme", "repo": "backend"}], "setup_commands": ["pip install -e ."]}})
    add_agent(state, "code-review", SKILL_ID, description="Reviews a pull request and leaves comments",
              base_prompt="You are a careful reviewer. Read the diff and comment on bugs and risks.")
    config = {"name": "code-review", "skill_spec": SKILL_ID, "environment_id": ENVIRONMENT_UID,
              "model_id": "claude-4-5-sonnet"}
    skill = {"name": "code-review", "description": "Reviews a pull request and leaves comments", "full_path": SKILL_ID}
    done = state.add_run("Review PR #41 and summarise the risks", "SUCCEEDED", created_ago=3600, config=config,
                         agent_skill=skill, metadata={"ticket_id": "ENG-41"})
    for kind in ("PLAN", "PULL_REQUEST", "SCREENSHOT", "FILE", "EXTERNAL_REFERENCE"):
        state.add_artifact(done, kind)
    state.add_handoff_attachment(done, "snapshot.tar.gz", b"emulated snapshot", "application/gzip")
    running = state.add_run("Fix the flaky login test", "INPROGRESS", created_ago=300,
                            config={"environment_id": ENVIRONMENT_UID})
    state.add_run("Upgrade the ORM to 2.0", "FAILED", created_ago=1800, config={"environment_id": ENVIRONMENT_UID})
    state.add_run("Write a regression test for the login fix", "QUEUED", created_ago=60, source="ORCHESTRATION",
                  parent_run_id=running)
    state.add_run("Lint the repository", "INPROGRESS", hold=True, created_ago=120, source="GITHUB_ACTION",
                  trigger_url="https://github.com/acme/backend/actions/runs/1")
    schedule = {"schedule_id": "sch_nightly", "schedule_name": "Nightly deps", "cron_schedule": "0 3 * * *"}
    state.add_run("Nightly dependency check", "CANCELLED", created_ago=7200, source="SCHEDULED_AGENT",
                  schedule=schedule)


def create_app(seed: bool = True, *, step_seconds: float = 10.0, polls_per_step: int | None = None,
               realtime: bool = False, api_keys: list[str] | None = None, max_depth: int = 3,
               docs_style_errors: bool = False, metadata_filter: bool = True, **_: Any) -> FaultInjector:
    """Build the emulator. Test helpers are attributes of the returned app (see module docstring)."""
    state = OzState(step_seconds=step_seconds, polls_per_step=polls_per_step, realtime=realtime, max_depth=max_depth)
    api = _Api(state, api_keys=set(api_keys) if api_keys else None, docs_style=docs_style_errors, metadata_filter=metadata_filter)
    if seed:
        _seed(state)
    g = api.guarded
    routes = [
        Route("/agent", g(api.list_agents), methods=["GET"]),
        Route("/agent/environments", g(api.list_environments), methods=["GET"]),
        Route("/agent/artifacts/{artifact_uid}", g(api.get_artifact), methods=["GET"]),
        Route("/agent/runs", g(api.create_run), methods=["POST"]),
        Route("/agent/run", g(api.create_run), methods=["POST"]),  # legacy alias
        Route("/agent/runs", g(api.list_runs), methods=["GET"]),
        Route("/agent/runs/{run_id}", g(api.get_run), methods=["GET"]),
        Route("/agent/runs/{run_id}/cancel", g(api.cancel_run), methods=["POST"]),
        Route("/agent/runs/{run_id}/followups", g(api.submit_followup), methods=["POST"]),
        Route("/agent/runs/{run_id}/handoff/attachments", g(api.handoff_attachments), methods=["GET"]),
        Route("/agent/runs/{run_id}/conversation", g(api.run_conversation), methods=["GET"]),
        Route("/agent/runs/{run_id}/transcript", g(api.run_transcript), methods=["GET"]),
        # The two redirect lookups are public: anonymous viewers of a shared link call them.
        Route("/agent/sessions/{session_uuid}/redirect", g(api.session_redirect, public=True), methods=["GET"]),
        Route("/agent/conversations/{conversation_id}/redirect", g(api.conversation_redirect, public=True),
              methods=["GET"]),
    ]
    app = Starlette(routes=[Mount(PREFIX, routes=routes),
                            Route("/storage/{kind}/{ident}", api.download, methods=["GET"]),
                            Route("/_oz/{what}", api.control, methods=["POST"]),
                            Route("/_oz/runs/{run_id}/followups", api.control_followups, methods=["GET"])],
                    exception_handlers={OzError: api.on_error, HTTPException: api.on_error})
    app.oz = state  # type: ignore[attr-defined]
    app.clock = state.clock  # type: ignore[attr-defined]
    app.queue_error = api.queue_error  # type: ignore[attr-defined]
    app.add_agent = lambda *a, **k: add_agent(state, *a, **k)  # type: ignore[attr-defined]
    app.get_run = lambda run_id: state.to_wire(state.peek(run_id))  # type: ignore[attr-defined]
    for name in ("add_run", "set_script", "queue_script", "step", "add_artifact", "add_handoff_attachment",
                 "followups"):
        setattr(app, name, getattr(state, name))

    def error_body(status: int, message: str) -> dict[str, Any]:
        return problem(_code_for_status(status), status=status, detail=message, docs_style=docs_style_errors)

    return FaultInjector(app, error_body=error_body)


def parse_options(argv: list[str]) -> dict[str, Any]:
    """Options for `python -m tests.emulators oz ...`."""
    parser = argparse.ArgumentParser(prog="python -m tests.emulators oz")
    parser.add_argument("--no-seed", dest="seed", action="store_false", help="start with no agent and no runs")
    parser.add_argument("--step-seconds", type=float, default=10.0, help="emulated seconds per lifecycle step")
    parser.add_argument("--polls-per-step", type=int, help="advance a run one step every N reads of it")
    parser.add_argument("--realtime", action="store_true", help="let the emulator clock follow wall time")
    parser.add_argument("--api-key", dest="api_keys", action="append", help="accept only these keys")
    parser.add_argument("--docs-style-errors", action="store_true", help="problem `type` as docs.warp.dev shows it")
    parser.add_argument("--no-metadata-filter", dest="metadata_filter", action="store_false",
                        help="answer list-runs metadata filters with feature_not_available")
    return vars(parser.parse_args(argv))

