"""Emulator of the Agent OS platform API (`/v1/api/...`), as far as the public SDK shows it.

    app = create_app()                        # seeded with two agents, a credential, a trigger
    with serve_in_thread(app) as base_url:
        ...                                   # Authorization: Bearer agent-os-test-key

Runs advance by script (see agent_os_state.py). Helpers a test can call on the returned app:

    app.clock.advance(seconds)        run every scripted step that falls due
    app.advance(run_id, n=1)          emit the next n steps of one run now (n=None: all)
    app.set_script(run_id, steps)     replace what is left of a run's script
    app.set_default_script(steps)     script for runs created later (None: the built-in one)
    app.resume(run_id, payload)       answer a waiting_for_human run
    app.cancel(run_id) / app.new_attempt(run_id, steps)
    app.drop_stream(after=K, mode="abort"|"eof", run_id=None)   break the next SSE stream once
    app.emulator                      the State: runs, agents, secret_reads, stream_log, ...

In-process (httpx2.ASGITransport) the whole body is buffered, so only streams that end work
there: follow finished runs, or set `stream_idle_timeout`, and drop with mode="eof".

Confirmed parts follow /work/shared/platforms/agent-os.md; each guess is marked `# GUESS:`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from tests.emulators.agent_os_state import TERMINAL_TYPES, ApiError, State, Step, progress_script
from tests.emulators.faults import DroppedConnection, FaultInjector

__all__ = ["Step", "create_app", "parse_options", "progress_script"]

DEFAULT_API_KEY = "agent-os-test-key"  # GUESS: the key format is not visible
MAX_EVENTS_LIMIT = 1000  # GUESS: the SDK default is 100; the server maximum is not visible

# GUESS: the backend error JSON is not visible. The SDK's own errors use {message, code} with
# UPPER_SNAKE codes, so that is the default; "problem" gives RFC 7807 as ASP.NET would.
_CODE_FOR_STATUS = {400: "VALIDATION_ERROR", 401: "UNAUTHORIZED", 403: "FORBIDDEN", 404: "NOT_FOUND",
                    409: "CONFLICT", 429: "RATE_LIMITED", 500: "INTERNAL_ERROR", 502: "BAD_GATEWAY",
                    503: "SERVICE_UNAVAILABLE", 504: "GATEWAY_TIMEOUT"}

Handler = Callable[[Request], Awaitable[Response]]


class _EventStreamResponse(StreamingResponse):
    """A streaming response that can break its connection on purpose.

    When the body iterator raises DroppedConnection the response returns without its final
    chunk, so the server closes the socket and the client sees an incomplete chunked body.
    """

    media_type = "text/event-stream"

    async def stream_response(self, send: Any) -> None:
        await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})
        try:
            async for chunk in self.body_iterator:
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
        except DroppedConnection:
            return
        await send({"type": "http.response.body", "body": b"", "more_body": False})


def _error_body(style: str, status: int, code: str, message: str) -> dict[str, Any]:
    if style == "problem":
        return {"type": "about:blank", "title": code, "status": status, "detail": message}
    return {"code": code, "message": message}


def create_app(seed: bool = True, auth_header: str = "Authorization", auth_scheme: str | None = "Bearer",
               **opts: Any) -> FaultInjector:
    """Build the emulator. Options (all keyword):

    api_key: the accepted token (default "agent-os-test-key").
    required_headers: {name: value} every API request must also carry (tenant/workspace: U).
    idempotency_header: header read for idempotency keys (default "Idempotency-Key", a GUESS).
    script / step_seconds: default run script and the default seconds between steps.
    realtime: let wall-clock time drive the scripts (for standalone use).
    keepalive: seconds between SSE comment keepalives (default 15).
    stream_idle_timeout: end an SSE stream (EOF) after this long without events (default never).
    drop_stream_after / drop_mode: break the first SSE stream after that many events.
    error_style: "code" ({code, message}, default) or "problem" (RFC 7807).
    cursor_mode: "last_event" (default) or "null_when_done" for next_after_seq.
    after_seq_wins: let the afterSeq query beat Last-Event-ID (reproduces the off-by-one hazard).
    id_seed: seed for the deterministic UUIDs.
    """
    auth_scheme = auth_scheme or None
    api_key = opts.pop("api_key", DEFAULT_API_KEY)
    required_headers = {k.lower(): v for k, v in (opts.pop("required_headers", None) or {}).items()}
    idem_header = opts.pop("idempotency_header", "Idempotency-Key")
    keepalive = float(opts.pop("keepalive", 15.0))
    idle_timeout = opts.pop("stream_idle_timeout", None)
    error_style = opts.pop("error_style", "code")
    cursor_mode = opts.pop("cursor_mode", "last_event")
    after_seq_wins = bool(opts.pop("after_seq_wins", False))
    drop_after, drop_mode = opts.pop("drop_stream_after", None), opts.pop("drop_mode", "abort")
    state = State(step_seconds=float(opts.pop("step_seconds", 1.0)), script=opts.pop("script", None),
                  realtime=bool(opts.pop("realtime", False)), id_seed=int(opts.pop("id_seed", 0)))
    if opts:
        raise TypeError(f"unknown agent_os emulator options: {sorted(opts)}")
    if seed:
        state.seed()
    if drop_after is not None:
        state.drop_stream(int(drop_after), drop_mode)

    def error(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
        return JSONResponse(_error_body(error_style, status, code, message), status, headers=headers)

    def authorized(value: str | None) -> bool:
        if value is None:
            return False
        if not auth_scheme:
            return value.strip() == api_key
        scheme, _, token = value.strip().partition(" ")
        return scheme.lower() == auth_scheme.lower() and token.strip() == api_key

    def api(handler: Handler) -> Handler:
        """Auth, required headers, realtime sync and ApiError mapping for every API route."""

        async def guarded(request: Request) -> Response:
            # GUESS: the auth header name and scheme are not visible; both are options.
            if not authorized(request.headers.get(auth_header)):
                challenge = {"WWW-Authenticate": auth_scheme} if auth_scheme else None
                return error(401, "UNAUTHORIZED", "missing or invalid credentials", challenge)
            # GUESS: tenant/workspace headers are not visible; missing is a 400, a wrong value a 403.
            for name, value in required_headers.items():
                if request.headers.get(name) is None:
                    return error(400, "MISSING_HEADER", f"header {name} is required")
                if request.headers[name] != value:
                    return error(403, "FORBIDDEN", f"header {name} does not grant access")
            state.sync_realtime()
            try:
                return await handler(request)
            except ApiError as exc:
                return error(exc.status, exc.code, exc.message)

        return guarded

    async def body_of(request: Request) -> dict[str, Any]:
        try:
            body = json.loads(await request.body() or b"{}")
        except ValueError as exc:
            raise ApiError(400, "INVALID_JSON", "request body is not JSON") from exc
        if not isinstance(body, dict):
            raise ApiError(400, "VALIDATION_ERROR", "request body must be a JSON object")
        return body

    def int_query(request: Request, name: str, default: int | None, low: int = 0) -> int | None:
        raw = request.query_params.get(name)
        if raw is None or raw == "":
            return default
        try:
            value = int(raw)
        except ValueError as exc:
            raise ApiError(400, "VALIDATION_ERROR", f"{name} must be an integer") from exc
        if value < low:  # GUESS: a bad query value is a 400 VALIDATION_ERROR
            raise ApiError(400, "VALIDATION_ERROR", f"{name} must be >= {low}")
        return value

    def page(request: Request, items: list[Any]) -> dict[str, Any]:
        # GUESS: PaginationParams and the wrapper are not visible; limit/offset and {items, total}.
        limit = min(int_query(request, "limit", 50, 1) or 50, MAX_EVENTS_LIMIT)
        offset = int_query(request, "offset", 0) or 0
        return {"items": items[offset:offset + limit], "total": len(items), "limit": limit, "offset": offset}

    # ---- agents ----

    async def list_agents(request: Request) -> Response:
        # GUESS: GET /v1/api/agents (and GET/DELETE /v1/api/agents/{id}) are inferred from the SDK's naming.
        with state.lock:
            return JSONResponse(page(request, list(state.agents.values())))

    async def create_agent(request: Request) -> Response:
        body = await body_of(request)
        agent, _ = state.create_agent(body.get("name"), body.get("metadata"), request.headers.get(idem_header))
        return JSONResponse(agent, 201)  # GUESS: 201 Created

    async def get_agent(request: Request) -> Response:
        with state.lock:
            return JSONResponse(state.agent(request.path_params["id"]))

    async def patch_agent(request: Request) -> Response:
        return JSONResponse(state.update_agent(request.path_params["id"], await body_of(request)))

    async def delete_agent(request: Request) -> Response:
        state.delete_agent(request.path_params["id"])
        return Response(status_code=204)  # GUESS

    # ---- runs ----

    async def create_run(request: Request) -> Response:
        # GUESS: the path POST /v1/api/runs is inferred; the body and the response fields are confirmed.
        body = await body_of(request)
        # GUESS: the SDK puts idempotency_key in the create body; a header is accepted as well.
        key = body.get("idempotency_key") or request.headers.get(idem_header)
        run, replayed = state.create_run(body.get("agent_id"), body.get("thread"), body.get("input"), key)
        with state.lock:
            # GUESS: the third CreateRunResponse field is not visible; thread_id is the best reading.
            result = {"run_id": run.id, "status": run.status, "thread_id": run.thread_id}
        # GUESS: a replay answers 200 with the original run; a first create answers 201.
        return JSONResponse(result, 200 if replayed else 201,
                            headers={"Idempotent-Replayed": "true"} if replayed else None)

    async def list_runs(request: Request) -> Response:
        q = request.query_params
        runs = state.list_runs(q.get("agent_id"), q.get("status"), q.get("thread_id"))  # GUESS: filters
        with state.lock:
            return JSONResponse(page(request, [r.to_dict() for r in runs]))

    async def get_run(request: Request) -> Response:
        with state.lock:  # GUESS: the path GET /v1/api/runs/{runId} is inferred
            return JSONResponse(state.run(request.path_params["run_id"]).to_dict())

    async def cancel_run(request: Request) -> Response:
        # GUESS: no cancel path is visible; RUN_CANCELLED exists, so POST .../cancel is assumed.
        body = await body_of(request)
        state.cancel(request.path_params["run_id"], body.get("reason"))
        with state.lock:
            return JSONResponse(state.run(request.path_params["run_id"]).to_dict(), 202)

    async def resume_run(request: Request) -> Response:
        # GUESS: no HITL path is visible; POST .../resume with an optional JSON payload is assumed.
        body = await body_of(request)
        state.resume(request.path_params["run_id"], body.get("payload") or body or None)
        with state.lock:
            return JSONResponse(state.run(request.path_params["run_id"]).to_dict(), 202)

    def events_page(request: Request) -> dict[str, Any]:
        run_id, attempt_id = request.path_params["run_id"], request.query_params.get("attemptId")
        after = int_query(request, "afterSeq", 0) or 0
        limit = min(int_query(request, "limit", 100, 1) or 100, MAX_EVENTS_LIMIT)
        events, attempt = state.events_after(run_id, attempt_id or "", after)
        chunk, has_more = events[:limit], len(events) > limit
        # GUESS: next_after_seq is nullable since 0.9.3. By default it is the seq of the last event
        # returned (null for an empty page); "null_when_done" makes it null on the last page.
        if cursor_mode == "null_when_done":
            cursor = chunk[-1]["seq"] if chunk and has_more else None
        else:
            cursor = chunk[-1]["seq"] if chunk else None
        return {"events": chunk, "latest_seq": attempt.latest_seq, "next_after_seq": cursor, "has_more": has_more}

    async def get_events(request: Request) -> Response:
        with state.lock:
            return JSONResponse(events_page(request))

    async def stream_events(request: Request) -> Response:
        run_id, attempt_id = request.path_params["run_id"], request.query_params.get("attemptId")
        accept = request.headers.get("accept", "")
        if "application/json" in accept and "text/event-stream" not in accept:
            # GUESS: 0.9.1 clients polled this path for JSON; answer them by Accept header.
            with state.lock:
                return JSONResponse(events_page(request))
        state.attempt(run_id, attempt_id)
        after_q = int_query(request, "afterSeq", None)
        raw_last = request.headers.get("last-event-id")
        last_id: int | None = None
        if raw_last not in (None, ""):
            try:
                last_id = int(raw_last)
            except ValueError as exc:
                raise ApiError(400, "VALIDATION_ERROR", "Last-Event-ID must be a seq number") from exc
        # Confirmed: on reconnect the SDK sends Last-Event-ID = lastSeq and afterSeq = lastSeq + 1.
        # GUESS: both mean "after this seq"; Last-Event-ID wins so the SDK does not skip an event.
        if last_id is not None and not (after_seq_wins and after_q is not None):
            start = last_id
        else:
            start = after_q or 0
        drop = state.take_drop(run_id)
        with state.lock:
            state.stream_log.append({"run_id": run_id, "attempt_id": attempt_id, "last_event_id": last_id,
                                     "after_seq": after_q, "start_after": start})
        headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
        return _EventStreamResponse(frames(run_id, attempt_id or "", start, drop), headers=headers)

    async def frames(run_id: str, attempt_id: str, cursor: int, drop: Any) -> AsyncIterator[bytes]:
        clock = asyncio.get_running_loop().time
        sent, last_event = 0, clock()
        last_beat = last_event

        def check_drop() -> bool:
            if drop is None or sent < drop.after:
                return False
            if drop.mode == "abort":
                raise DroppedConnection(f"agent_os emulator dropped the stream of {run_id} after {sent} events")
            return True

        if check_drop():
            return
        while True:
            state.sync_realtime()
            seen = state.notifier.version
            events, attempt = state.events_after(run_id, attempt_id, cursor)
            for event in events:
                # Framing: id is the seq, event name run_event, data the RunEventDto (confirmed).
                yield f"id: {event['seq']}\nevent: run_event\ndata: {json.dumps(event)}\n\n".encode()
                sent, cursor = sent + 1, event["seq"]
                last_event = last_beat = clock()
                if event["type"].upper() in TERMINAL_TYPES or check_drop():
                    return
            if events:
                continue
            if attempt.finished or attempt.closed:
                # GUESS: resuming after the terminal event (or on a superseded attempt) is a plain EOF.
                return
            now = clock()
            waits = [last_beat + keepalive - now]
            if idle_timeout is not None:
                waits.append(last_event + float(idle_timeout) - now)
            due = state.seconds_to_next_step() if state.realtime else None
            if due is not None:
                waits.append(due + 0.001)
            if await state.notifier.wait(seen, max(0.0, min(waits))):
                continue
            now = clock()
            if idle_timeout is not None and now - last_event >= float(idle_timeout):
                return  # idle EOF without a terminal event; clients reconnect
            if now - last_beat >= keepalive:
                last_beat = now
                yield b": keepalive\n\n"  # GUESS: comment keepalives; unknown for the real server

    # ---- credentials and triggers ----

    async def get_credential(request: Request) -> Response:
        flag = request.query_params.get("includeValues", "false").lower()
        return JSONResponse(state.credential(request.path_params["id"], flag in ("true", "1")))

    async def list_credentials(request: Request) -> Response:
        # GUESS: a list never carries secret values.
        with state.lock:
            items = [{k: v for k, v in c.items() if k != "values"} for c in state.credentials.values()]
            return JSONResponse(page(request, items))

    async def list_triggers(request: Request) -> Response:
        agent_id = request.query_params.get("agent_id")
        with state.lock:
            items = [t for t in state.triggers if agent_id is None or t["agent_id"] == agent_id]
            return JSONResponse({"items": items, "total": len(items)})

    routes = [
        Route("/v1/api/agents", api(list_agents), methods=["GET"]),
        Route("/v1/api/agents", api(create_agent), methods=["POST"]),
        Route("/v1/api/agents/{id}", api(get_agent), methods=["GET"]),
        Route("/v1/api/agents/{id}", api(patch_agent), methods=["PATCH"]),
        Route("/v1/api/agents/{id}", api(delete_agent), methods=["DELETE"]),
        Route("/v1/api/runs", api(list_runs), methods=["GET"]),
        Route("/v1/api/runs", api(create_run), methods=["POST"]),
        Route("/v1/api/runs/{run_id}", api(get_run), methods=["GET"]),
        Route("/v1/api/runs/{run_id}/cancel", api(cancel_run), methods=["POST"]),
        Route("/v1/api/runs/{run_id}/resume", api(resume_run), methods=["POST"]),
        Route("/v1/api/runs/{run_id}/events", api(get_events), methods=["GET"]),
        Route("/v1/api/runs/{run_id}/events/stream", api(stream_events), methods=["GET"]),
        Route("/v1/api/credentials", api(list_credentials), methods=["GET"]),
        Route("/v1/api/credentials/{id}", api(get_credential), methods=["GET"]),
        Route("/v1/api/triggers", api(list_triggers), methods=["GET"]),
    ]
    inner = Starlette(routes=routes)
    inner.state.emulator = state

    def fault_body(status: int, message: str) -> dict[str, Any]:
        return _error_body(error_style, status, _CODE_FOR_STATUS.get(status, "ERROR"), message)

    app = FaultInjector(inner, error_body=fault_body)
    app.emulator = state
    app.clock = state.clock
    app.advance = state.advance
    app.set_script = state.set_script
    app.resume = state.resume
    app.cancel = state.cancel
    app.new_attempt = state.new_attempt
    app.drop_stream = state.drop_stream

    def set_default_script(steps: Any) -> None:
        with state.lock:
            state.default_steps = None if steps is None else [Step.of(s) for s in steps]

    app.set_default_script = set_default_script
    return app


def parse_options(argv: list[str]) -> dict[str, Any]:
    """Options for `python -m tests.emulators agent_os ...`; scripts run in real time there."""
    parser = argparse.ArgumentParser(prog="python -m tests.emulators agent_os")
    parser.add_argument("--api-key", default=DEFAULT_API_KEY)
    parser.add_argument("--auth-header", default="Authorization")
    parser.add_argument("--auth-scheme", default="Bearer", help="empty: the header holds the bare key")
    parser.add_argument("--no-seed", action="store_true")
    parser.add_argument("--step-seconds", type=float, default=1.0)
    parser.add_argument("--manual-clock", action="store_true", help="do not let wall-clock time drive runs")
    parser.add_argument("--drop-stream-after", type=int)
    parser.add_argument("--error-style", choices=("code", "problem"), default="code")
    args = parser.parse_args(argv)
    options: dict[str, Any] = {
        "seed": not args.no_seed, "api_key": args.api_key, "auth_header": args.auth_header,
        "auth_scheme": args.auth_scheme or None, "step_seconds": args.step_seconds,
        "realtime": not args.manual_clock, "error_style": args.error_style,
    }
    if args.drop_stream_after is not None:
        options["drop_stream_after"] = args.drop_stream_after
    return options
