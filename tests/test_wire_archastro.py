"""Wire equality with the official SDK: every request the ArchAstro adapter sends (method, path, query,
JSON body) is the request `archastro-sdk` 0.11.0 sends for the same operation, both captured at the
same emulator (the session stream included).

Every operation the adapter performs exists in the SDK (sessions: list, create, get, message, cancel,
delete, events; routines: list, get, invoke, runs, and routine-run get; agents: list), so none has to
be checked against the published OpenAPI file (ArchAstro/archastro-openapi, specs/platform-openapi.json
@ f338c17) instead; SDK_LACKS names such operations and stays empty.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from types import SimpleNamespace
from typing import Any
from urllib.parse import parse_qsl

import pytest
from archastro.platform.client import PlatformClient

from agentdeck.backends.archastro import ArchAstroBackend
from agentdeck.backends.requests import RoutineCall, RunFilter, SpawnRequest
from tests.emulators.archastro import create_app
from tests.emulators.serving import serve_in_thread

KEY = "sk_wire_equality_0001"
SDK_LACKS: list[str] = []  # operations checked against the OpenAPI file instead: none

Request = tuple[str, str, tuple[tuple[str, str], ...], Any]


class Recorder:
    """ASGI middleware keeping (method, path, sorted query, JSON body) of every API request."""

    def __init__(self, app: Any) -> None:
        self.app, self.seen = app, []  # type: ignore[var-annotated]

    async def __call__(self, scope: dict[str, Any], receive: Callable[..., Any], send: Callable[..., Any]) -> None:
        if scope["type"] != "http" or not scope["path"].startswith("/api/"):
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []
        while True:
            message = await receive()
            chunks.append(message.get("body", b""))
            if not message.get("more_body"):
                break
        raw = b"".join(chunks)
        query = tuple(sorted(parse_qsl(scope["query_string"].decode(), keep_blank_values=True)))
        self.seen.append((scope["method"], scope["path"], query, json.loads(raw) if raw.strip() else None))
        replayed = iter([{"type": "http.request", "body": raw, "more_body": False}])

        async def replay() -> dict[str, Any]:
            return next(replayed, {"type": "http.disconnect"})

        await self.app(scope, replay, send)

    def take(self) -> list[Request]:
        taken, self.seen = self.seen, []
        return taken


@pytest.fixture
def wire() -> Iterator[SimpleNamespace]:
    app = create_app()
    recorder = Recorder(app)
    with serve_in_thread(recorder) as url, PlatformClient.with_secret_key(KEY, base_url=url) as sdk:
        settings = SimpleNamespace(api_key=SimpleNamespace(get_secret_value=lambda: KEY), base_url=url, timeout_seconds=10,
                                   connect_timeout_seconds=5, max_retries=0, api_key_env="ARCHASTRO_API_KEY")
        yield SimpleNamespace(app=app, recorder=recorder, sdk=sdk, backend=ArchAstroBackend("astro", settings))


async def same(wire: SimpleNamespace, adapter: Any, sdk: Callable[[], Any], twin: tuple[str, str] | None = None) -> Any:
    """Run one adapter operation and the SDK's; their requests must be equal, one by one.

    `twin` = (our id, theirs) when each side must act on an object of its own (a delete)."""
    result = await adapter
    ours = wire.recorder.take()
    sdk()
    theirs = wire.recorder.take()
    if twin:
        theirs = [(m, p.replace(twin[1], twin[0]), q, b) for m, p, q, b in theirs]
    assert ours == theirs
    assert ours  # the operation did reach the platform
    return result


async def test_every_adapter_request_equals_the_sdks(wire: SimpleNamespace) -> None:
    backend, sdk, app = wire.backend, wire.sdk, wire.app
    agent = app.seeded["agent"]
    try:
        await same(wire, backend.list_agents(), lambda: sdk.agents.list(page=1, page_size=100))

        run = await same(wire, backend.spawn_agent(SpawnRequest(agent, "Count tickets", name="count", metadata={"team": "a", "archastro": {"max_turns": 3}})),
                         lambda: sdk.agent_sessions.create({"agent": agent, "instructions": "Count tickets", "name": "count",
                                                            "metadata": {"team": "a"}, "max_turns": 3}))
        keyed_body = {"agent": agent, "instructions": "x", "metadata": {"agentdeck_idempotency_key": "k1"}}
        await same(wire, backend.spawn_agent(SpawnRequest(agent, "x", idempotency_key="k1")),
                   lambda: (sdk.agent_sessions.list(agent=[agent], limit=100), sdk.agent_sessions.create(keyed_body)))
        await same(wire, backend.list_runs(RunFilter(state="succeeded", agent=agent)),
                   lambda: sdk.agent_sessions.list(status=["completed"], agent=[agent], limit=100))
        await same(wire, backend.get_run(run.id), lambda: sdk.agent_sessions.get(run.id))
        await same(wire, backend.send_followup(run.id, "and closed ones"),
                   lambda: sdk.agent_sessions.message(run.id, {"content": "and closed ones", "role": "user"}))
        await same(wire, backend.get_run_events(run.id, limit=10),
                   lambda: (sdk.agent_sessions.events(run.id, limit=11), sdk.agent_sessions.get(run.id)))
        idle = app.create_session(agent, "wait for me", start_idle=True)["id"]  # waiting: wait_for_run returns at once
        await same(wire, backend.wait_for_run(idle, 30, _no_progress), lambda: _first(sdk.agent_sessions.stream(idle)))
        await same(wire, backend.cancel_run(run.id), lambda: sdk.agent_sessions.cancel(run.id))
        other = app.create_session(agent, "another")["id"]
        app.finish_session(other, "cancelled")
        await same(wire, backend.delete_session(run.id), lambda: (sdk.agent_sessions.get(other), sdk.agent_sessions.delete(other)), twin=(run.id, other))

        routine = app.seeded["routine"]
        await same(wire, backend.list_routines(), lambda: sdk.agent_routines.list())
        invoke_body = {"message": "hi", "idempotency_key": "r1", "session_key": "s", "metadata": {"agentdeck_idempotency_key": "r1"}}
        routine_run = await same(wire, backend.invoke_routine(RoutineCall(routine, message="hi", idempotency_key="r1", session_key="s")),
                                 lambda: sdk.agent_routines.invoke(routine, invoke_body))
        await same(wire, backend.get_run(routine_run.id), lambda: sdk.agent_routines.agent_routine_runs.get(routine_run.id))
        await same(wire, backend.list_routines(agent=agent, event_type="agentroutine.invoked"),
                   lambda: sdk.agent_routines.list(agent=[agent], event_type="agentroutine.invoked"))
        await same(wire, backend.list_routine_runs(routine, status="succeeded", limit=5),
                   lambda: sdk.agent_routines.runs(routine, status="completed", limit=5))
        app.invoke(routine, "another")
        cursor = (await backend.list_routine_runs(routine, limit=1)).next_cursor
        wire.recorder.take()
        assert cursor
        await same(wire, backend.list_routine_runs(routine, limit=1, cursor=cursor),
                   lambda: sdk.agent_routines.runs(routine, limit=1, before_cursor=cursor))
        app.advance(10)  # the run completes: a repeated key now answers 409, and the adapter finds the run
        await same(wire, backend.invoke_routine(RoutineCall(routine, message="hi", idempotency_key="r1", session_key="s")),
                   lambda: _refused(lambda: sdk.agent_routines.invoke(routine, invoke_body))
                   or sdk.agent_routines.runs(routine, status="completed", limit=100))
        draft = app.seeded["draft_routine"]
        with pytest.raises(Exception):
            await backend.invoke_routine(RoutineCall(draft, message="hi"))  # 422: the adapter reads the routine to say why
        ours = wire.recorder.take()
        _refused(lambda: sdk.agent_routines.invoke(draft, {"message": "hi"}))
        sdk.agent_routines.get(draft)
        assert ours == wire.recorder.take()
    finally:
        await backend.aclose()


async def _no_progress(step: float, message: str) -> None:
    pass


def _first(stream: Any) -> Any:
    """The first event of an SDK stream, then the stream closed (the session stays open, waiting)."""
    try:
        return next(iter(stream))
    finally:
        stream.close()


def _refused(call: Callable[[], Any]) -> None:
    """An SDK call the platform refuses (the SDK raises; the request is what counts)."""
    try:
        call()
    except Exception:
        return None
    raise AssertionError("the platform accepted a request it should refuse")
