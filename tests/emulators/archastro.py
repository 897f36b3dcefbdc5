"""Emulator of the ArchAstro platform API: agent sessions and agent routines (`/api/v1`).

Follows shared/platforms/archastro.md. Auth is the `x-archastro-api-key` header (any non-empty
value; an `Authorization: Bearer <token>` may come with it). Bodies are JSON; the SDK sends
`Content-Type: application/json` on every request, GETs and empty POSTs included, and that is
accepted. Errors are `{"error": {"code": ..., "message": ...}}`. Only DELETE answers 204.

State lives in `archastro_state.Store` and moves with a hand-driven clock, so tests never sleep:

    app = create_app()
    app.advance(1)    # pending -> running
    app.advance(5)    # running -> completed (the default outcome of a turn)

or `create_app(step=1)` to move the clock one second before every API request, so a polling
client sees progress on its own.

Helpers on the returned app (the FaultInjector): `store`, `clock`, `seeded`, `advance(seconds)`,
`reset(seed=True)`, `set_plan(llm=...)`, `add_agent`, `add_routine`, `create_session`,
`script_next_session(*outcomes)`, `script_session(id, *outcomes)`, `finish_session(id, status)`,
`invoke(routine, message, **body)`, `script_next_runs(*outcomes)`, `finish_run(id, status)`,
`session(id)`, `run(id)`. For a standalone emulator the same knobs answer over HTTP at
`POST /_archastro/advance {"seconds": n}`, `POST /_archastro/plan {"llm": bool}`,
`POST /_archastro/reset`.
"""

from __future__ import annotations

import argparse
import json
from collections import deque
from collections.abc import Callable
from typing import Any

import anyio
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from tests.emulators.archastro_state import (
    HANDLER_TYPES,
    PRESETS,
    ROUTINE_STATUSES,
    RUN_OUTCOMES,
    RUN_TERMINAL,
    SEED_AGENT,
    SEED_APP,
    SEED_DRAFT_ROUTINE,
    SEED_EVENT_ROUTINE,
    SEED_ROUTINE,
    SESSION_OUTCOMES,
    SESSION_TERMINAL,
    Clock,
    Problem,
    Store,
    Timings,
    iso,
)
from tests.emulators.faults import FaultInjector

API = "/api/v1"

ERROR_CODES = {
    400: "bad_request", 401: "unauthorized", 402: "payment_required", 403: "forbidden", 404: "not_found",
    405: "method_not_allowed", 409: "conflict", 415: "unsupported_media_type", 422: "unprocessable_entity",
    429: "rate_limited", 500: "internal_error", 502: "bad_gateway", 503: "service_unavailable",
    504: "gateway_timeout",
}


def error_body(status: int, message: str, code: str | None = None) -> dict[str, Any]:
    """ArchAstro's error shape. GUESS: the real body is undocumented; this is the form the SDK's ApiError
    reads best, and every `code` string here is the emulator's own."""
    return {"error": {"code": code or ERROR_CODES.get(status, "error"), "message": message}}


def _error(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse(error_body(status, message, code), status_code=status)


# --- request plumbing ------------------------------------------------------------------------

def _caller(request: Request) -> tuple[str, str]:
    """Authenticate; answer (sender_id, sender_type) for inbox messages."""
    authorization = request.headers.get("authorization")
    token = None
    if authorization is not None:
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Problem(401, "unauthorized", "malformed Authorization header; expected 'Bearer <token>'")  # GUESS
    if not request.headers.get("x-archastro-api-key", "").strip():
        raise Problem(401, "unauthorized", "missing API key: send the x-archastro-api-key header")
    return ("usr_emulatoruser0000001", "user") if token else (SEED_APP, "app")


async def _json_body(request: Request) -> dict[str, Any]:
    raw = await request.body()
    if not raw.strip():
        return {}
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media != "application/json" and not media.endswith("+json"):
        raise Problem(415, "unsupported_media_type", "request bodies must be application/json")  # GUESS
    try:
        body = json.loads(raw)
    except ValueError:
        raise Problem(400, "invalid_json", "request body is not valid JSON") from None
    if not isinstance(body, dict):
        raise Problem(400, "invalid_json", "request body must be a JSON object")
    return body


def _many(request: Request, key: str) -> list[str]:
    """`key[]=a&key[]=b` (the SDK's form), a bare `key=a` (the older JS SDK's) or `key=a,b`."""
    values = request.query_params.getlist(f"{key}[]") + request.query_params.getlist(key)
    return [part for value in values for part in value.split(",") if part]


def _one(request: Request, key: str) -> str | None:
    values = _many(request, key)
    return values[-1] if values else None


def _limit(request: Request, default: int, maximum: int) -> int:
    raw = request.query_params.get("limit")
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise Problem(422, "validation_error", "limit must be an integer") from None
    if value < 1:
        raise Problem(422, "validation_error", "limit must be greater than 0")
    return min(value, maximum)


def _flag(request: Request, key: str) -> bool:
    raw = (request.query_params.get(key) or "false").lower()
    if raw not in ("true", "false"):
        raise Problem(422, "validation_error", f"{key} must be true or false")
    return raw == "true"


Handler = Callable[[Store, Request, dict[str, Any]], tuple[int, Any]]


def endpoint(handler: Handler) -> Callable[[Request], Any]:
    async def serve(request: Request) -> Response:
        store: Store = request.app.state.store
        try:
            request.state.caller = _caller(request)
            body = await _json_body(request)
            with store.lock:
                if store.step:
                    store.clock.advance(store.step)
                store.settle()
                status, payload = handler(store, request, body)
        except Problem as problem:
            return _error(problem.status, problem.code, problem.message)
        if status == 204:
            return Response(status_code=204)
        return JSONResponse(payload, status_code=status)

    return serve


# --- agents ----------------------------------------------------------------------------------

def list_agents(store: Store, request: Request, _: dict) -> tuple[int, Any]:
    """`GET /api/v1/agents`: page-based (`page`, `page_size`), newest first, `search` on name and lookup key."""
    page, size = (_positive_query(request, key, default) for key, default in (("page", 1), ("page_size", 25)))
    search = (request.query_params.get("search") or "").lower()  # GUESS: matched on name and lookup key only
    found = [dict(a, description=None, metadata=None) for a in reversed(store.agents.values())
             if not search or search in (a.get("name") or "").lower() or search in (a.get("lookup_key") or "").lower()]
    pages = max(1, -(-len(found) // size))
    return 200, {"data": found[(page - 1) * size:page * size], "page": page, "page_size": size,
                 "total_entries": len(found), "total_pages": pages, "has_next": page < pages, "has_prev": page > 1}


def _positive_query(request: Request, key: str, default: int) -> int:
    raw = request.query_params.get(key)
    if raw is None:
        return default
    if not raw.isdigit() or int(raw) < 1:
        raise Problem(422, "validation_error", f"{key} must be a positive integer")
    return int(raw)


# --- agent sessions --------------------------------------------------------------------------

def list_sessions(store: Store, request: Request, _: dict) -> tuple[int, Any]:
    found = store.list_sessions(agents=_many(request, "agent"), statuses=_many(request, "status"),
                                routine_runs=_many(request, "routine_run"),
                                exclude_system=_flag(request, "exclude_system"), limit=_limit(request, 25, 100))
    return 200, {"data": [s.to_json() for s in found]}


def create_session(store: Store, request: Request, body: dict) -> tuple[int, Any]:
    return 201, store.create_session(body).to_json()


def get_session(store: Store, request: Request, _: dict) -> tuple[int, Any]:
    return 200, store.session(request.path_params["session"]).to_json()


def update_session(store: Store, request: Request, body: dict) -> tuple[int, Any]:
    return 200, store.update_session(request.path_params["session"], body).to_json()


def delete_session(store: Store, request: Request, _: dict) -> tuple[int, Any]:
    store.delete_session(request.path_params["session"])
    return 204, None


def cancel_session(store: Store, request: Request, _: dict) -> tuple[int, Any]:
    return 200, store.cancel_session(request.path_params["session"]).to_json()


def message_session(store: Store, request: Request, body: dict) -> tuple[int, Any]:
    session = store.message_session(request.path_params["session"], body, sender=request.state.caller)
    return 200, session.to_json()


def session_events(store: Store, request: Request, _: dict) -> tuple[int, Any]:
    """`GET .../events?after=cse_...&limit=`: a bare array, oldest first (SDK `agent_sessions.events`)."""
    events = store.session(request.path_params["session"]).events
    after = request.query_params.get("after")
    if after:
        ids = [e["id"] for e in events]
        # GUESS: an `after` id the session does not have gives an empty page.
        events = events[ids.index(after) + 1:] if after in ids else []
    return 200, [dict(e) for e in events[:_limit(request, 200, 1000)]]


async def stream_session(request: Request) -> Response:
    """`GET .../stream` (SDK `agent_sessions.stream`): SSE `session_update` with the session, replayed on connect
    and sent on each status change, and `session_event` for each new harness event; it closes on a terminal
    status. A test clock moves `step` seconds per tick here, as it does per request elsewhere."""
    store: Store = request.app.state.store
    session_id = request.path_params["session"]
    try:
        _caller(request)
        with store.lock:
            store.settle()
            sent = len(store.session(session_id).events)  # earlier events are the events route's
    except Problem as problem:
        return _error(problem.status, problem.code, problem.message)

    async def frames() -> Any:
        nonlocal sent
        last = None
        while True:
            with store.lock:
                if store.step and last is not None:
                    store.clock.advance(store.step)
                store.settle()
                session = store.sessions.get(session_id)
                if session is None:
                    return
                new, sent = session.events[sent:], len(session.events)
                snapshot = session.to_json()
            for event in new:
                yield f"event: session_event\ndata: {json.dumps(event)}\n\n"
            if snapshot["status"] != last:
                last = snapshot["status"]
                yield f"event: session_update\ndata: {json.dumps(snapshot)}\n\n"
            if last in SESSION_TERMINAL:
                return
            await anyio.sleep(0.05)

    return StreamingResponse(frames(), media_type="text/event-stream")


# --- agent routines and runs -----------------------------------------------------------------

def list_routines(store: Store, request: Request, _: dict) -> tuple[int, Any]:
    return 200, {"data": store.list_routines(_many(request, "agent"), _one(request, "event_type"))}


def list_presets(store: Store, request: Request, _: dict) -> tuple[int, Any]:
    return 200, [dict(p) for p in PRESETS]


def create_routine(store: Store, request: Request, body: dict) -> tuple[int, Any]:
    agent = request.path_params["agent"]
    if agent not in store.agents:
        raise Problem(404, "not_found", "agent not found")
    name, handler_type = body.get("name"), body.get("handler_type")
    if not isinstance(name, str) or not name.strip():
        raise Problem(422, "validation_error", "name is required")
    if handler_type not in HANDLER_TYPES:
        raise Problem(422, "validation_error", "handler_type must be workflow_graph, script, preset or chain")
    if body.get("status", "draft") not in ("draft", "active"):
        raise Problem(422, "validation_error", "status must be draft or active")
    if body.get("lookup_key") and any(r.get("lookup_key") == body["lookup_key"] for r in store.routines.values()):
        raise Problem(422, "validation_error", "lookup_key has already been taken")  # GUESS
    extra = {k: body[k] for k in ("description", "schedule", "script", "config", "steps", "trigger_context",
                                  "event_config", "acl", "metadata", "message_policy", "user") if k in body}
    routine = store.add_routine(agent, name, status=body.get("status", "draft"), event_type=body.get("event_type"),
                                lookup_key=body.get("lookup_key"), handler_type=handler_type,
                                preset_name=body.get("preset_name"), preset_config=body.get("preset_config"), **extra)
    return 200, dict(routine)


def get_routine(store: Store, request: Request, _: dict) -> tuple[int, Any]:
    return 200, dict(store.find_routine(request.path_params["routine"]))


def update_routine(store: Store, request: Request, body: dict) -> tuple[int, Any]:
    routine = store.find_routine(request.path_params["routine"])
    if "status" in body and body["status"] not in ROUTINE_STATUSES:
        raise Problem(422, "validation_error", "status must be draft, active or paused")
    routine.update({k: v for k, v in body.items() if k in routine and k not in ("id", "agent", "app", "created_at")})
    routine["updated_at"] = _now(store)
    return 200, dict(routine)


def delete_routine(store: Store, request: Request, _: dict) -> tuple[int, Any]:
    del store.routines[store.find_routine(request.path_params["routine"])["id"]]
    return 204, None


def set_routine_status(status: str) -> Handler:
    def handler(store: Store, request: Request, _: dict) -> tuple[int, Any]:
        routine = store.find_routine(request.path_params["routine"])
        if status == "active" and not any(routine.get(k) for k in ("preset_name", "script", "config", "steps")):
            raise Problem(422, "validation_error", "routine has no config attached")
        routine["status"], routine["updated_at"] = status, _now(store)
        return 200, dict(routine)

    return handler


def invoke_routine(store: Store, request: Request, body: dict) -> tuple[int, Any]:
    return 200, store.invoke(request.path_params["routine"], body).to_json()


def _run_page(store: Store, request: Request, **scope: Any) -> dict[str, Any]:
    return store.list_runs(status=_one(request, "status"), limit=_limit(request, 50, 100),
                           before=request.query_params.get("before_cursor") or None,
                           after=request.query_params.get("after_cursor") or None, **scope)


def routine_runs(store: Store, request: Request, _: dict) -> tuple[int, Any]:
    return 200, _run_page(store, request, routine=store.find_routine(request.path_params["routine"])["id"])


def all_runs(store: Store, request: Request, _: dict) -> tuple[int, Any]:
    return 200, _run_page(store, request, agents=_many(request, "agent"))


def get_run(store: Store, request: Request, _: dict) -> tuple[int, Any]:
    return 200, store.run(request.path_params["run"]).to_json()


def _now(store: Store) -> str | None:
    return iso(store.clock.now())


# --- control routes for a standalone emulator ------------------------------------------------

async def control(request: Request) -> Response:
    store: Store = request.app.state.store
    raw = await request.body()
    body = json.loads(raw) if raw.strip() else {}
    action = request.path_params["action"]
    with store.lock:
        if action == "advance":
            store.clock.advance(float(body.get("seconds", 0)))
        elif action == "plan":
            store.plan["llm"] = bool(body.get("llm", True))
        elif action == "reset":
            store.reset(seed=bool(body.get("seed", True)))
        else:
            return _error(404, "not_found", "unknown emulator control")
        store.settle()
        return JSONResponse({"now": _now(store), "plan": dict(store.plan)})


# --- the app ---------------------------------------------------------------------------------

def _routes() -> list[Route]:
    def r(path: str, handler: Handler, method: str) -> Route:
        return Route(API + path, endpoint(handler), methods=[method])

    return [
        r("/agents", list_agents, "GET"),
        r("/agent_sessions", list_sessions, "GET"),
        r("/agent_sessions", create_session, "POST"),
        r("/agent_sessions/{session}", get_session, "GET"),
        r("/agent_sessions/{session}", update_session, "PATCH"),
        r("/agent_sessions/{session}", delete_session, "DELETE"),
        r("/agent_sessions/{session}/cancel", cancel_session, "POST"),
        r("/agent_sessions/{session}/message", message_session, "POST"),
        r("/agent_sessions/{session}/events", session_events, "GET"),
        Route(API + "/agent_sessions/{session}/stream", stream_session, methods=["GET"]),
        r("/agent_routines", list_routines, "GET"),
        # Literal segments before {routine}: "presets" and "runs" are not routine ids.
        r("/agent_routines/presets", list_presets, "GET"),
        r("/agent_routines/runs/{run}", get_run, "GET"),
        r("/agent_routines/{routine}", get_routine, "GET"),
        r("/agent_routines/{routine}", update_routine, "PATCH"),
        r("/agent_routines/{routine}", delete_routine, "DELETE"),
        r("/agent_routines/{routine}/activate", set_routine_status("active"), "POST"),
        r("/agent_routines/{routine}/pause", set_routine_status("paused"), "POST"),
        r("/agent_routines/{routine}/invoke", invoke_routine, "POST"),
        r("/agent_routines/{routine}/runs", routine_runs, "GET"),
        r("/agent_routine_runs", all_runs, "GET"),
        r("/agents/{agent}/agent_routines", create_routine, "POST"),
        Route("/_archastro/{action}", control, methods=["POST"]),
    ]


async def _http_exception(request: Request, exc: Exception) -> Response:
    status = getattr(exc, "status_code", 500)
    message = "no such route" if status == 404 else getattr(exc, "detail", None) or "error"
    response = _error(status, ERROR_CODES.get(status, "error"), str(message))
    response.headers.update(getattr(exc, "headers", None) or {})
    return response


async def _crash(request: Request, exc: Exception) -> Response:
    return _error(500, "internal_error", f"emulator error: {exc!r}")


TIMING_OPTIONS = ("session_pending", "session_turn", "run_pending", "run_duration")


def create_app(seed: bool = True, **opts: Any) -> FaultInjector:
    """Options: plan_llm (bool, default True: invoke gives 402 when False); step (seconds the
    clock moves before each API request, default 0 = only `advance` moves it); and the `Timings`
    fields session_pending / session_turn / run_pending / run_duration (seconds)."""
    timings = Timings(**{k: float(opts.pop(k)) for k in TIMING_OPTIONS if k in opts})
    plan_llm = bool(opts.pop("plan_llm", True))
    step = float(opts.pop("step", 0.0))
    if opts:
        raise TypeError(f"unknown archastro emulator options: {sorted(opts)}")
    clock = Clock()
    store = Store(clock=clock, timings=timings, seed=seed, plan_llm=plan_llm, step=step)
    inner = Starlette(routes=_routes(), exception_handlers={HTTPException: _http_exception, Exception: _crash})
    inner.state.store = store
    app = FaultInjector(inner, error_body=lambda status, message: error_body(status, message))
    _attach_helpers(app, store)
    return app


def _attach_helpers(app: FaultInjector, store: Store) -> None:
    def locked(fn: Callable[..., Any]) -> Callable[..., Any]:
        def call(*args: Any, **kwargs: Any) -> Any:
            with store.lock:
                store.settle()
                result = fn(*args, **kwargs)
                store.settle()
                return result

        call.__name__ = fn.__name__
        call.__doc__ = fn.__doc__
        return call

    def advance(seconds: float) -> str | None:
        """Move the clock forward and apply every transition now due; returns the new time."""
        with store.lock:
            store.clock.advance(seconds)
            store.settle()
            return _now(store)

    def set_plan(llm: bool) -> None:
        """llm=False makes every invoke answer 402 (the plan lacks the LLM entitlement)."""
        store.plan["llm"] = llm

    def create_session(agent: str = SEED_AGENT, instructions: str = "Do the thing", *, system: bool = False,
                       **body: Any) -> dict[str, Any]:
        session = store.create_session({"agent": agent, "instructions": instructions, **body})
        session.is_system = system
        return session.to_json()

    def script_next_session(*outcomes: str) -> None:
        """How each turn of the next created session ends: "completed" | "waiting" | "failed"."""
        _check(outcomes, SESSION_OUTCOMES)
        store.next_session_script = deque(outcomes)

    def script_session(session_id: str, *outcomes: str) -> None:
        _check(outcomes, SESSION_OUTCOMES)
        store.session(session_id).script = deque(outcomes)

    def finish_session(session_id: str, status: str = "completed", *, result: dict | None = None,
                       error: str | None = None) -> dict[str, Any]:
        _check((status,), tuple(SESSION_TERMINAL))
        session = store.session(session_id)
        store.finish_session(session, status, result=result, error=error)
        return session.to_json()

    def invoke(routine: str = SEED_ROUTINE, message: str = "hello", **body: Any) -> dict[str, Any]:
        return store.invoke(routine, {"message": message, **body}).to_json()

    def script_next_runs(*outcomes: str) -> None:
        """Outcomes of the next invokes, one each: "completed" | "failed" | "skipped"."""
        _check(outcomes, RUN_OUTCOMES)
        store.next_run_outcomes = deque(outcomes)

    def finish_run(run_id: str, status: str = "completed", *, result: dict | None = None) -> dict[str, Any]:
        _check((status,), tuple(RUN_TERMINAL))
        run = store.run(run_id)
        store.finish_run(run, status, result=result)
        return run.to_json()

    app.store = store
    app.clock = store.clock
    app.seeded = {"app": SEED_APP, "agent": SEED_AGENT, "routine": SEED_ROUTINE, "routine_lookup_key": "triage",
                  "draft_routine": SEED_DRAFT_ROUTINE, "event_routine": SEED_EVENT_ROUTINE}
    app.advance = advance
    app.set_plan = set_plan
    app.reset = locked(store.reset)
    app.add_agent = locked(store.add_agent)
    app.add_routine = locked(lambda agent=SEED_AGENT, name="Routine", **kw: dict(store.add_routine(agent, name, **kw)))
    app.create_session = locked(create_session)
    app.script_next_session = locked(script_next_session)
    app.script_session = locked(script_session)
    app.finish_session = locked(finish_session)
    app.invoke = locked(invoke)
    app.script_next_runs = locked(script_next_runs)
    app.finish_run = locked(finish_run)
    app.session = locked(lambda session_id: store.session(session_id).to_json())
    app.run = locked(lambda run_id: store.run(run_id).to_json())


def _check(values: tuple[str, ...], allowed: tuple[str, ...]) -> None:
    for value in values:
        if value not in allowed:
            raise ValueError(f"{value!r} is not one of {allowed}")


def parse_options(argv: list[str]) -> dict[str, Any]:
    parser = argparse.ArgumentParser(prog="python -m tests.emulators archastro")
    parser.add_argument("--no-seed", dest="seed", action="store_false", help="start with no agent or routines")
    parser.add_argument("--plan-without-llm", dest="plan_llm", action="store_false",
                        help="every routine invoke answers 402")
    parser.add_argument("--step", type=float, help="seconds the clock moves before each API request")
    for name in TIMING_OPTIONS:
        parser.add_argument(f"--{name.replace('_', '-')}", dest=name, type=float, help="seconds")
    args = parser.parse_args(argv)
    return {k: v for k, v in vars(args).items() if v is not None}
