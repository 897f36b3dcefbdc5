"""Emulator of Azure AI Foundry hosted-agent sessions and session files (api-version v1).

Every route hangs off a project endpoint, `http://HOST:PORT/api/projects/<project>` (default
project `_project`), and needs `?api-version=v1` and `Authorization: Bearer <any non-empty token>`:

    GET    /agents                                                   list agents (200; kind, limit, order, after)
    GET    /agents/{agent}                                           agent details (200; versions.latest)
    POST   /agents/{agent}/endpoint/protocols/openai/responses       one turn, bound by agent_session_id (200)
    POST   /agents/{agent}/endpoint/sessions                         create (201)
    GET    /agents/{agent}/endpoint/sessions                         list (200; limit, order, after, before)
    GET    /agents/{agent}/endpoint/sessions/{id}                    get (200)
    POST   /agents/{agent}/endpoint/sessions/{id}:stop               stop (204)
    DELETE /agents/{agent}/endpoint/sessions/{id}                    delete (204, also when missing)
    GET    /agents/{agent}/endpoint/sessions/{id}/files?path=        list a directory (200)
    DELETE /agents/{agent}/endpoint/sessions/{id}/files?path=&recursive=   delete (204; 409 non-empty dir)
    PUT    /agents/{agent}/endpoint/sessions/{id}/files/content?path=      upload (201; 413 over the limit)
    GET    /agents/{agent}/endpoint/sessions/{id}/files/content?path=      download (200, raw bytes)

`Foundry-Features`, `x-ms-user-isolation-key` and `x-session-isolation-key` are accepted, never
required. Errors use the OpenAI-style envelope `{"error": {code, message, param, type}}`
(azure-ai-projects `ApiErrorResponse`); the SDK maps statuses, not code strings, so every
`code` string below is a GUESS unless its line cites a source. Behaviours no source states
are marked `# GUESS` where they happen, and listed in the README's Azure section.
The hosted agent answers every prompt by quoting it (see azure_foundry_agents).
Time is an emulator clock (`app.clock`) that moves by `tick_seconds` on every API request and
by `app.clock.advance(seconds)`; session status is derived from it (see azure_foundry_state).
"""

from __future__ import annotations

import argparse
import json
import re
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.emulators.azure_foundry_agents import agent_wire, create_response, list_agents
from tests.emulators.azure_foundry_state import (
    SESSION_STATUSES,
    ApiError,
    Clock,
    FoundryState,
    Session,
    normalize_path,
)
from tests.emulators.faults import FaultInjector

__all__ = ["DEFAULTS", "FoundryEmulatorApp", "create_app", "error_body", "parse_options"]

DEFAULTS: dict[str, Any] = {
    "project": "_project",
    "agent": "agentdeck-echo",
    "agent_version": "1",
    "session": "seed-session",
    "token": None,  # None accepts any non-empty bearer token
    "max_upload_bytes": 50 * 1024 * 1024,
    "tick_seconds": 1,
    "creating_seconds": 2,  # GUESS: how long a session stays "creating" is not documented
    "idle_seconds": 900,  # GUESS: when an unattended session turns "idle" is not documented
    "start_time": 1_767_225_600,  # 2026-01-01T00:00:00Z; None starts at the wall clock
    "api_versions": ("v1",),
}
ISOLATION_HEADERS = ("x-ms-user-isolation-key", "x-session-isolation-key")
_BEARER = re.compile(r"^\s*bearer\s+(\S.*?)\s*$", re.IGNORECASE)
_ERROR_CODES = {
    400: ("invalid_request", "invalid_request_error"),
    401: ("unauthorized", "invalid_request_error"),
    403: ("forbidden", "invalid_request_error"),
    404: ("not_found", "invalid_request_error"),
    405: ("method_not_allowed", "invalid_request_error"),
    408: ("request_timeout", "server_error"),
    409: ("conflict", "invalid_request_error"),
    413: ("payload_too_large", "invalid_request_error"),
    429: ("rate_limit_exceeded", "rate_limit_error"),
}


def error_body(status: int, message: str) -> dict[str, Any]:
    """The OpenAI-style envelope for a bare status, as used for injected faults."""
    code, kind = _ERROR_CODES.get(status, ("server_error" if status >= 500 else "invalid_request", "server_error"))
    if status == 503:
        code = "service_unavailable"
    if 400 <= status < 500 and status not in _ERROR_CODES:
        kind = "invalid_request_error"
    return {"error": {"code": code, "message": message, "param": None, "type": kind}}


class FoundryEmulatorApp(Starlette):
    """The Starlette app plus helpers that tests call directly (reachable through the FaultInjector)."""

    foundry: FoundryState
    clock: Clock
    project: str
    token: str | None
    tick_seconds: int
    api_versions: tuple[str, ...]
    seed: dict[str, str] | None
    request_log: list[dict[str, Any]]

    @property
    def project_path(self) -> str:
        return f"/api/projects/{self.project}"

    def endpoint(self, base_url: str) -> str:
        """The project endpoint to hand to `AIProjectClient(endpoint=...)` or an adapter."""
        return base_url.rstrip("/") + self.project_path

    def add_agent(self, name: str, *versions: str) -> None:
        self.foundry.add_agent(name, *versions)

    def add_session(
        self,
        agent_name: str | None = None,
        agent_version: str | None = None,
        session_id: str | None = None,
        *,
        isolation_key: str | None = None,
        ready: bool = True,
    ) -> dict[str, Any]:
        """Create a session without HTTP (already active unless ready=False); returns its wire form."""
        seed = self.seed or {}
        session = self.foundry.create_session(
            agent_name or seed.get("agent", DEFAULTS["agent"]),
            agent_version or seed.get("agent_version", DEFAULTS["agent_version"]),
            session_id,
            isolation_key=isolation_key,
            ready=ready,
        )
        return self.foundry.wire(session)

    def session(self, agent_name: str, session_id: str) -> dict[str, Any] | None:
        """A session's wire form as GET would return it now, or None."""
        with self.foundry.lock:
            found = self.foundry.sessions.get((agent_name, session_id))
            return None if found is None else self.foundry.wire(found)

    def set_session_status(self, agent_name: str, session_id: str, status: str | None) -> None:
        """Pin a status (e.g. "failed"); None returns the session to clock-driven status."""
        if status is not None and status not in SESSION_STATUSES:
            raise ValueError(f"unknown session status {status!r}")
        with self.foundry.lock:
            self.foundry.get_session(agent_name, session_id).forced_status = status

    def touch_session(self, agent_name: str, session_id: str) -> None:
        """Simulate an invocation: wakes an idle session and rolls its expiry forward."""
        self.foundry.touch(self.foundry.get_session(agent_name, session_id))

    def write_file(self, agent_name: str, session_id: str, path: str, data: bytes) -> str:
        with self.foundry.lock:
            key = normalize_path(path)
            self.foundry.get_session(agent_name, session_id).sandbox.write(key, data, self.clock.now())
            return key

    def read_file(self, agent_name: str, session_id: str, path: str) -> bytes | None:
        with self.foundry.lock:
            node = self.foundry.get_session(agent_name, session_id).sandbox.nodes.get(normalize_path(path))
            return None if node is None or node.is_directory else node.data

    def file_paths(self, agent_name: str, session_id: str) -> list[str]:
        """Every file and directory in the session home, relative and sorted."""
        with self.foundry.lock:
            return self.foundry.get_session(agent_name, session_id).sandbox.paths()


Handler = Callable[[Request, FoundryEmulatorApp], Awaitable[Response]]


def _api(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
    """Run the checks every call gets (auth, project, api-version), tick the clock, map ApiError."""

    async def endpoint(request: Request) -> Response:
        app: FoundryEmulatorApp = request.app
        raw = await request.body()
        app.request_log.append(
            {
                "method": request.method,
                "path": request.url.path,
                "query": dict(request.query_params),
                "headers": {k.lower(): v for k, v in request.headers.items()},
                "body": raw,
            }
        )
        try:
            _check_auth(app, request)
            if request.path_params["project"] != app.project:
                raise ApiError(404, "not_found", f"Project '{request.path_params['project']}' was not found.")  # GUESS
            _check_api_version(app, request)
            with app.foundry.lock:
                app.clock.advance(app.tick_seconds)
            response = await handler(request, app)
        except ApiError as exc:
            response = _error(exc)
        # GUESS: echoing x-ms-client-request-id is conventional, not documented here; x-request-id likewise
        request_id = request.headers.get("x-ms-client-request-id")
        if request_id:
            response.headers["x-ms-client-request-id"] = request_id
        response.headers["x-request-id"] = str(uuid.uuid4())
        return response

    return endpoint


def _check_auth(app: FoundryEmulatorApp, request: Request) -> None:
    match = _BEARER.match(request.headers.get("authorization", ""))
    if match is None:
        raise ApiError(401, "unauthorized", "Missing or malformed 'Authorization: Bearer <token>' header.")
    if app.token is not None and match.group(1) != app.token:
        raise ApiError(401, "unauthorized", "The bearer token is not valid for this project.")


def _check_api_version(app: FoundryEmulatorApp, request: Request) -> None:
    version = request.query_params.get("api-version")
    if not version:
        raise ApiError(
            400, "missing_required_parameter", "The 'api-version' query parameter is required.", param="api-version"
        )
    if version not in app.api_versions:  # GUESS: the status and code for an unknown api-version
        supported = ", ".join(app.api_versions)
        raise ApiError(
            400, "invalid_value", f"Unsupported api-version '{version}'. Supported: {supported}.", param="api-version"
        )


def _error(exc: ApiError) -> Response:
    headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None  # GUESS
    return JSONResponse(exc.body(), status_code=exc.status, headers=headers)


def _isolation_key(request: Request) -> str | None:
    for name in ISOLATION_HEADERS:
        value = request.headers.get(name, "").strip()
        if value:
            return value
    return None


def _limit(request: Request) -> int:
    raw = request.query_params.get("limit")
    if raw is None:
        return 20
    try:
        value = int(raw)
    except ValueError:
        raise ApiError(400, "invalid_value", "limit must be an integer between 1 and 100.", param="limit") from None
    if not 1 <= value <= 100:
        raise ApiError(400, "invalid_value", "limit must be an integer between 1 and 100.", param="limit")
    return value


def _order(request: Request, default: str) -> str:
    value = request.query_params.get("order", default)
    if value not in ("asc", "desc"):
        raise ApiError(400, "invalid_value", "order must be 'asc' or 'desc'.", param="order")
    return value


def _session(request: Request, app: FoundryEmulatorApp) -> Session:
    params = request.path_params
    return app.foundry.get_session(params["agent"], params["session_id"], _isolation_key(request))


def _required_path(request: Request) -> str:
    raw = request.query_params.get("path")
    if raw is None or not raw.strip():
        raise ApiError(400, "missing_required_parameter", "The 'path' query parameter is required.", param="path")
    return normalize_path(raw)


async def _json_object(request: Request) -> dict[str, Any]:
    raw = await request.body()
    try:
        body = json.loads(raw) if raw.strip() else {}
    except ValueError:
        raise ApiError(400, "invalid_json", "The request body is not valid JSON.") from None
    if not isinstance(body, dict):
        raise ApiError(400, "invalid_value", "The request body must be a JSON object.")
    return body


# -- agents and responses -----------------------------------------------------------------------


async def _list_agents(request: Request, app: FoundryEmulatorApp) -> Response:
    page = list_agents(
        app.foundry,
        kind=request.query_params.get("kind"),
        limit=_limit(request),
        order=_order(request, "desc"),  # GUESS: the default order of GET /agents is not documented
        after=request.query_params.get("after") or None,
    )
    return JSONResponse(page)


async def _get_agent(request: Request, app: FoundryEmulatorApp) -> Response:
    return JSONResponse(agent_wire(app.foundry, request.path_params["agent"]))


async def _create_response(request: Request, app: FoundryEmulatorApp) -> Response:
    return JSONResponse(create_response(app.foundry, request.path_params["agent"], await _json_object(request)))


# -- sessions ---------------------------------------------------------------------------------


async def _create_session(request: Request, app: FoundryEmulatorApp) -> Response:
    body = await _json_object(request)
    indicator = body.get("version_indicator")
    if indicator is None:
        raise ApiError(400, "missing_required_parameter", "version_indicator is required.", param="version_indicator")
    if not isinstance(indicator, dict) or indicator.get("type") != "version_ref":
        raise ApiError(
            400, "invalid_value", "version_indicator.type must be 'version_ref'.", param="version_indicator.type"
        )
    version = indicator.get("agent_version")
    if not isinstance(version, str) or not version:
        raise ApiError(
            400,
            "missing_required_parameter",
            "version_indicator.agent_version must be a non-empty string.",
            param="version_indicator.agent_version",
        )
    session_id = body.get("agent_session_id")
    if session_id is not None and not isinstance(session_id, str):
        raise ApiError(400, "invalid_value", "agent_session_id must be a string.", param="agent_session_id")
    session = app.foundry.create_session(
        request.path_params["agent"], version, session_id, isolation_key=_isolation_key(request)
    )
    return JSONResponse(app.foundry.wire(session), status_code=201)


async def _get_session(request: Request, app: FoundryEmulatorApp) -> Response:
    return JSONResponse(app.foundry.wire(_session(request, app)))


async def _list_sessions(request: Request, app: FoundryEmulatorApp) -> Response:
    page = app.foundry.list_sessions(
        request.path_params["agent"],
        limit=_limit(request),
        order=_order(request, "desc"),  # GUESS: the default order
        after=request.query_params.get("after") or None,
        before=request.query_params.get("before") or None,
        isolation_key=_isolation_key(request),
    )
    return JSONResponse(page)


async def _stop_session(request: Request, app: FoundryEmulatorApp) -> Response:
    app.foundry.stop_session(_session(request, app))
    return Response(status_code=204)


async def _delete_session(request: Request, app: FoundryEmulatorApp) -> Response:
    params = request.path_params
    app.foundry.delete_session(params["agent"], params["session_id"], _isolation_key(request))
    return Response(status_code=204)


# -- session files ----------------------------------------------------------------------------


async def _list_files(request: Request, app: FoundryEmulatorApp) -> Response:
    session = _session(request, app)
    page = app.foundry.list_files(
        session,
        normalize_path(request.query_params.get("path")),
        limit=_limit(request),
        order=_order(request, "asc"),  # GUESS: the default order
        after=request.query_params.get("after") or None,
        before=request.query_params.get("before") or None,
    )
    return JSONResponse(page)


async def _delete_file(request: Request, app: FoundryEmulatorApp) -> Response:
    session = _session(request, app)
    path = _required_path(request)
    raw = request.query_params.get("recursive")
    if raw is not None and raw.lower() not in ("true", "false"):
        raise ApiError(400, "invalid_value", "recursive must be 'true' or 'false'.", param="recursive")
    with app.foundry.lock:
        app.foundry.touch(session)
        session.sandbox.delete(path, raw is not None and raw.lower() == "true", app.clock.now())
    return Response(status_code=204)


async def _upload_file(request: Request, app: FoundryEmulatorApp) -> Response:
    session = _session(request, app)
    path = _required_path(request)
    limit = app.foundry.max_upload_bytes
    too_large = ApiError(
        413, "payload_too_large", f"Uploads are limited to {limit} bytes per file.", param="content"
    )
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise too_large
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise too_large
        chunks.append(chunk)
    with app.foundry.lock:
        app.foundry.touch(session)
        written = session.sandbox.write(path, b"".join(chunks), app.clock.now())
    return JSONResponse({"path": path, "bytes_written": written}, status_code=201)


async def _download_file(request: Request, app: FoundryEmulatorApp) -> Response:
    session = _session(request, app)
    path = _required_path(request)
    with app.foundry.lock:
        app.foundry.touch(session)
        data = session.sandbox.read(path)
    return Response(data, media_type="application/octet-stream")


# -- the app ----------------------------------------------------------------------------------


async def _route_miss(request: Request, exc: Exception) -> Response:  # GUESS: the body of an unknown route
    status = exc.status_code if isinstance(exc, HTTPException) else 500
    message = {404: "No such route.", 405: f"Method {request.method} is not allowed here."}.get(status, str(exc))
    return JSONResponse(error_body(status, message), status_code=status)


def _routes() -> list[Route]:
    agents = "/api/projects/{project}/agents"
    sessions = agents + "/{agent}/endpoint/sessions"
    one = sessions + "/{session_id}"
    return [
        Route(agents, _api(_list_agents), methods=["GET"]),
        Route(agents + "/{agent}", _api(_get_agent), methods=["GET"]),
        Route(agents + "/{agent}/endpoint/protocols/openai/responses", _api(_create_response), methods=["POST"]),
        Route(sessions, _api(_create_session), methods=["POST"]),
        Route(sessions, _api(_list_sessions), methods=["GET"]),
        Route(one + ":stop", _api(_stop_session), methods=["POST"]),
        Route(one, _api(_get_session), methods=["GET"]),
        Route(one, _api(_delete_session), methods=["DELETE"]),
        Route(one + "/files", _api(_list_files), methods=["GET"]),
        Route(one + "/files", _api(_delete_file), methods=["DELETE"]),
        Route(one + "/files/content", _api(_upload_file), methods=["PUT"]),
        Route(one + "/files/content", _api(_download_file), methods=["GET"]),
    ]


def create_app(seed: bool = True, **opts: Any) -> FaultInjector:
    """Build the emulator, wrapped in a FaultInjector; options are the keys of DEFAULTS."""
    unknown = set(opts) - set(DEFAULTS)
    if unknown:
        raise TypeError(f"unknown azure_foundry options: {', '.join(sorted(unknown))}")
    options = {**DEFAULTS, **{k: v for k, v in opts.items() if v is not None or k in ("token", "start_time")}}
    start = options["start_time"]
    clock = Clock(int(time.time()) if start is None else int(start))

    app = FoundryEmulatorApp(routes=_routes(), exception_handlers={HTTPException: _route_miss})
    app.clock = clock
    app.foundry = FoundryState(
        clock=clock,
        creating_seconds=int(options["creating_seconds"]),
        idle_seconds=int(options["idle_seconds"]),
        max_upload_bytes=int(options["max_upload_bytes"]),
    )
    app.project = options["project"]
    app.token = options["token"]
    app.tick_seconds = int(options["tick_seconds"])
    app.api_versions = tuple(options["api_versions"])
    app.request_log = []
    app.seed = None
    if seed:
        app.foundry.add_agent(options["agent"], options["agent_version"])
        app.foundry.create_session(options["agent"], options["agent_version"], options["session"], ready=True)
        app.seed = {
            "agent": options["agent"],
            "agent_version": options["agent_version"],
            "session_id": options["session"],
        }
    return FaultInjector(app, error_body=error_body)


def parse_options(argv: list[str]) -> dict[str, Any]:
    """Command-line flags for `python -m tests.emulators azure_foundry`."""
    parser = argparse.ArgumentParser(prog="python -m tests.emulators azure_foundry")
    parser.add_argument("--project", help="project name in /api/projects/<project> (default _project)")
    parser.add_argument("--agent", help="seeded agent name")
    parser.add_argument("--agent-version", help="seeded agent version")
    parser.add_argument("--session", help="seeded session id")
    parser.add_argument("--token", help="accept only this bearer token (default: any non-empty one)")
    parser.add_argument("--max-upload-bytes", type=int, help="upload size limit (default 50 MiB)")
    parser.add_argument("--tick-seconds", type=int, help="emulator seconds added per API request")
    parser.add_argument("--creating-seconds", type=int, help="how long a new session stays 'creating'")
    parser.add_argument("--idle-seconds", type=int, help="inactivity before a session turns 'idle' (0: never)")
    parser.add_argument("--start-time", help="clock start, unix seconds, or 'now'")
    parser.add_argument("--no-seed", action="store_true", help="start with no agent and no session")
    args = parser.parse_args(argv)
    options: dict[str, Any] = {k: v for k, v in vars(args).items() if v is not None and k != "no_seed"}
    if args.no_seed:
        options["seed"] = False
    if "start_time" in options:
        options["start_time"] = None if options["start_time"] == "now" else int(options["start_time"])
    return options
