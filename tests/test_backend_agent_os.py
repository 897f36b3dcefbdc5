"""The Agent OS backend, driven through a real MCP client session against the Agent OS emulator.

Most tests bind the backend to the emulator in-process (httpx2.ASGITransport). Following a live
SSE stream needs a real loopback port, because the in-process transport buffers whole bodies.
Runs move only when a test (or a progress callback) advances the emulator's script.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest

from agentdeck.config import load_config
from tests.emulators.agent_os import create_app, progress_script
from tests.emulators.faults import Fault
from tests.emulators.serving import serve_in_thread
from tests.helpers import ToolSession, tool_session

KEY = "aos-test-secret-value-7f3a"
NAME = "aos"


class Session(ToolSession):
    """A tool session plus the emulator behind it."""

    def __init__(self, client: Any, deck: Any, app: Any) -> None:
        super().__init__(client, deck)
        self.app = app

    async def spawn(self, script: list[Any] | None = None, **args: Any) -> dict[str, Any]:
        self.app.set_default_script(script)
        return await self.ok("spawn_agent", {"agent": self.agent_id, "prompt": "triage ticket 42", **args})

    @property
    def agent_id(self) -> str:
        return next(a["id"] for a in self.app.emulator.agents.values() if a["name"] == "Support triage")


def _config(tmp_path: Path, base_url: str, extra: str = "", key: str = KEY) -> Any:
    path = tmp_path / "c.toml"
    path.write_text(f'default = "{NAME}"\n[backends.{NAME}]\nkind = "agent_os"\nbase_url = "{base_url}"\n{extra}')
    return load_config(path=path, env={"AGENT_OS_API_KEY": key, "AGENTDECK_DATA_DIR": str(tmp_path)})


@asynccontextmanager
async def connect(tmp_path: Path, app: Any, *, port: bool = False, kick: bool = False, extra: str = "", key: str = KEY) -> AsyncIterator[Session]:
    """A session on the backend; in-process by default, over a real loopback port with `port`.

    With `kick`, the first read of a fresh run's events produces its first event (see FirstEventOnConnect).
    """
    served = FirstEventOnConnect(app) if kick else app
    if port:
        with serve_in_thread(served) as base_url:
            async with _session(_config(tmp_path, base_url, extra, key), None, app) as session:
                yield session
    else:
        transport = httpx2.ASGITransport(app=served)
        async with _session(_config(tmp_path, "http://agent-os.test", extra, key), transport, app) as session:
            yield session


@asynccontextmanager
async def _session(cfg: Any, transport: Any, app: Any) -> AsyncIterator[Session]:
    transports = {NAME: transport} if transport else None
    async with tool_session(cfg, transports=transports, never_shown=(KEY,), make=lambda client, deck: Session(client, deck, app)) as session:
        yield session


class FirstEventOnConnect:
    """ASGI wrapper: the first time a run's events are read (stream or poll), produce its first event.

    The follow starts from the run's latest seq, so this kicks a fresh run only once the backend
    listens; each progress message then produces the next event.
    """

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        parts = scope.get("path", "").split("/")
        if scope["type"] == "http" and len(parts) >= 6 and parts[:4] == ["", "v1", "api", "runs"] and parts[5] == "events":
            run = self.app.emulator.runs.get(parts[4])
            if run is not None and run.attempt.latest_seq == 0:
                self.app.advance(run.id)
        await self.app(scope, receive, send)


def progress_recorder(on_message: Callable[[str], None] | None = None) -> tuple[list[tuple[float, str]], Any]:
    received: list[tuple[float, str]] = []

    async def callback(progress: float, total: float | None, message: str | None) -> None:
        received.append((progress, message or ""))
        if on_message:
            on_message(message or "")

    return received, callback


def events_of(received: list[tuple[float, str]]) -> list[tuple[float, str]]:
    """The progress messages that report events, without the server's keep-alives in between."""
    return [(p, message) for p, message in received if "still waiting" not in message]


def seqs_of(received: list[tuple[float, str]]) -> list[int]:
    return [int(message.split(":")[0].removeprefix("seq ")) for _, message in events_of(received)]


def advance_unless_terminal(app: Any, run: dict[str, Any]) -> Callable[[str], None]:
    """Each progress message produces the run's next event, until the terminal one."""

    def on_message(message: str) -> None:
        if "still waiting" not in message and not any(t in message for t in ("RUN_FINISHED", "RUN_FAILED", "RUN_CANCELLED")):
            app.advance(run["id"])

    return on_message


@pytest.fixture
def app() -> Any:
    return create_app(api_key=KEY)


# ---- agents ----


async def test_list_agents_names_each_agent_by_id_with_its_display_name(tmp_path: Path, app: Any) -> None:
    async with connect(tmp_path, app) as s:
        agents = (await s.ok("list_agents"))["agents"]
    assert {a["description"] for a in agents} == {"Support triage", "Research assistant"}
    assert {a["name"] for a in agents} == set(app.emulator.agents)
    assert {a["backend"] for a in agents} == {NAME}


async def test_spawn_agent_creates_a_run_on_a_new_thread_with_its_attempt_and_a_generated_key(tmp_path: Path, app: Any) -> None:
    async with connect(tmp_path, app) as s:
        run = await s.spawn()
    platform = app.emulator.runs[run["id"]]
    assert (run["state"], run["platform_state"], run["agent"], run["latest_seq"]) == ("queued", "queued", s.agent_id, 0)
    assert run["thread_id"] == platform.thread_id
    assert run["metadata"] == {"current_attempt_id": platform.attempt.id, "current_attempt_no": 1}
    assert platform.input == {"message": "triage ticket 42"}
    assert platform.idempotency_key.startswith("agentdeck-")


async def test_spawn_agent_with_thread_id_in_metadata_continues_that_thread(tmp_path: Path, app: Any) -> None:
    async with connect(tmp_path, app) as s:
        first = await s.spawn()
        again = await s.spawn(metadata={"thread_id": first["thread_id"]})
        fresh = await s.spawn()
        missing = await s.error("spawn_agent", {"agent": s.agent_id, "prompt": "x", "metadata": {"thread_id": "nope"}})
    assert again["thread_id"] == first["thread_id"] != fresh["thread_id"]
    assert missing["code"] == "not_found" and "THREAD_NOT_FOUND" in missing["message"]


async def test_spawn_agent_with_the_same_idempotency_key_returns_the_first_run(tmp_path: Path, app: Any) -> None:
    async with connect(tmp_path, app) as s:
        first = await s.spawn(idempotency_key="ticket-42")
        second = await s.spawn(idempotency_key="ticket-42")
        clash = await s.error("spawn_agent", {"agent": s.agent_id, "prompt": "other", "idempotency_key": "ticket-42"})
    assert first["id"] == second["id"] and len(app.emulator.runs) == 1
    assert clash["code"] == "conflict" and "new key" in clash["message"]


async def test_spawn_agent_for_an_unknown_agent_returns_not_found(tmp_path: Path, app: Any) -> None:
    async with connect(tmp_path, app) as s:
        error = await s.error("spawn_agent", {"agent": "no-such-agent", "prompt": "x"})
    assert error["code"] == "not_found" and "list_agents" in error["message"]


@pytest.mark.parametrize(
    ("args", "code"),
    [({"ttl_seconds": 60}, "unsupported"), ({"workspace": "src"}, "unsupported"), ({"parent_run_id": "r1"}, "unsupported"),
     ({"name": "label"}, "unsupported"), ({"metadata": {"team": "x"}}, "invalid_argument")],
    ids=["ttl", "workspace", "parent", "name", "metadata"],
)
async def test_spawn_agent_with_arguments_agent_os_cannot_keep_is_refused(tmp_path: Path, app: Any, args: dict[str, Any], code: str) -> None:
    async with connect(tmp_path, app) as s:
        error = await s.error("spawn_agent", {"agent": s.agent_id, "prompt": "x", **args})
    assert error["code"] == code
    assert app.emulator.runs == {}


# ---- runs and states ----


def _to_queued(app: Any, run_id: str) -> None:
    pass


def _to_running(app: Any, run_id: str) -> None:
    app.advance(run_id)


def _to_waiting(app: Any, run_id: str) -> None:
    app.clock.advance(60)  # the human pause holds the script


def _to_resumed(app: Any, run_id: str) -> None:
    app.clock.advance(60)
    app.resume(run_id, {"approved": True})


def _to_end(app: Any, run_id: str) -> None:
    app.advance(run_id, None)


def _to_cancelled(app: Any, run_id: str) -> None:
    app.cancel(run_id)


@pytest.mark.parametrize(
    ("script", "move", "state", "platform_state"),
    [
        (progress_script(1), _to_queued, "queued", "queued"),
        (progress_script(1), _to_running, "running", "running"),
        (progress_script(1, human=True), _to_waiting, "waiting", "waiting_for_human"),
        (progress_script(1, human=True), _to_resumed, "running", "resumed"),
        (progress_script(1), _to_end, "succeeded", "completed"),
        (progress_script(1, outcome="RUN_FAILED"), _to_end, "failed", "failed"),
        (progress_script(1), _to_cancelled, "cancelled", "cancelled"),
    ],
    ids=["queued", "running", "waiting_for_human", "resumed", "completed", "failed", "cancelled"],
)
async def test_get_run_maps_each_platform_status_to_a_normalized_state(
    tmp_path: Path, app: Any, script: list[Any], move: Callable[[Any, str], None], state: str, platform_state: str
) -> None:
    async with connect(tmp_path, app) as s:
        run_id = (await s.spawn(script))["id"]
        move(app, run_id)
        run = await s.ok("get_run", {"run_id": run_id})
    assert (run["state"], run["platform_state"]) == (state, platform_state)
    if state == "succeeded":
        assert run["artifacts"] == [{"kind": "output", "name": "output", "url": None, "data": {"ok": True}}]
        assert run["ended_at"] is not None and run["latest_seq"] == 3
    if state == "failed":
        assert run["error"]["message"] == "scripted failure"


async def test_get_run_of_an_unknown_run_returns_not_found(tmp_path: Path, app: Any) -> None:
    async with connect(tmp_path, app) as s:
        error = await s.error("get_run", {"run_id": "no-such-run"})
    assert error["code"] == "not_found" and "RUN_NOT_FOUND" in error["message"]


async def test_not_found_message_is_read_from_rfc7807_error_bodies_too(tmp_path: Path) -> None:
    app = create_app(api_key=KEY, error_style="problem")
    async with connect(tmp_path, app) as s:
        error = await s.error("get_run", {"run_id": "no-such-run"})
    assert error["code"] == "not_found" and "RUN_NOT_FOUND: run no-such-run not found" in error["message"]


async def test_list_runs_pages_newest_first_with_a_cursor(tmp_path: Path, app: Any) -> None:
    async with connect(tmp_path, app) as s:
        ids = [(await s.spawn())["id"] for _ in range(5)]
        pages, cursor = [], None
        while True:
            page = await s.ok("list_runs", {"limit": 2, **({"cursor": cursor} if cursor else {})})
            pages.append([r["id"] for r in page["runs"]])
            cursor = page["next_cursor"]
            if cursor is None:
                break
        bad = await s.error("list_runs", {"cursor": "not-a-cursor"})
    assert pages == [ids[::-1][0:2], ids[::-1][2:4], ids[::-1][4:]]
    assert bad["code"] == "invalid_argument"


async def test_list_runs_filters_by_normalized_state_and_agent(tmp_path: Path, app: Any) -> None:
    async with connect(tmp_path, app) as s:
        done, running, resumed = (await s.spawn())["id"], (await s.spawn())["id"], (await s.spawn(progress_script(1, human=True)))["id"]
        app.advance(done, None)
        app.advance(running)
        app.advance(resumed, 3)
        app.resume(resumed)
        by_state = {state: [r["id"] for r in (await s.ok("list_runs", {"state": state}))["runs"]] for state in ("succeeded", "running", "queued")}
        other_agent = next(a for a in app.emulator.agents if a != s.agent_id)
        none = await s.ok("list_runs", {"agent": other_agent})
        parent = await s.error("list_runs", {"parent_run_id": done})
    assert by_state == {"succeeded": [done], "running": [resumed, running], "queued": []}
    assert none["runs"] == []
    assert parent["code"] == "unsupported"


async def test_cancel_run_stops_the_run_and_cancelling_a_finished_run_returns_conflict(tmp_path: Path, app: Any) -> None:
    async with connect(tmp_path, app) as s:
        run_id = (await s.spawn(progress_script(3)))["id"]
        app.advance(run_id, 2)
        cancelled = await s.ok("cancel_run", {"run_id": run_id})
        again = await s.error("cancel_run", {"run_id": run_id})
    assert (cancelled["state"], cancelled["platform_state"]) == ("cancelled", "cancelled")
    assert again["code"] == "conflict"


async def test_send_followup_starts_a_new_run_on_the_same_thread(tmp_path: Path, app: Any) -> None:
    async with connect(tmp_path, app) as s:
        first = await s.spawn()
        app.advance(first["id"], None)
        followup = await s.ok("send_followup", {"run_id": first["id"], "message": "and ticket 43"})
    assert followup["id"] != first["id"]
    assert (followup["thread_id"], followup["followup_of"], followup["agent"]) == (first["thread_id"], first["id"], first["agent"])
    assert app.emulator.runs[followup["id"]].input == {"message": "and ticket 43"}


# ---- events ----


async def test_get_run_events_pages_by_seq_until_next_after_seq_is_null(tmp_path: Path, app: Any) -> None:
    async with connect(tmp_path, app) as s:
        run_id = (await s.spawn(progress_script(5)))["id"]
        app.advance(run_id, None)  # 7 events: start, 5 nodes, finish
        seen, after, pages = [], None, 0
        while True:
            page = await s.ok("get_run_events", {"run_id": run_id, "limit": 3, **({"after_seq": after} if after is not None else {})})
            seen += page["events"]
            pages += 1
            after = page["next_after_seq"]
            if after is None:
                break
    assert [e["seq"] for e in seen] == list(range(1, 8)) and pages == 3
    assert page["run_state"] == "succeeded"
    assert (seen[1]["kind"], seen[1]["text"], seen[1]["data"]) == ("NODE_FINISHED", "node step-1", {"node": "step-1", "progress": 1, "of": 5})
    assert seen[-1]["kind"] == "RUN_FINISHED" and seen[-1]["text"] == 'output: {"ok":true}'


async def test_get_run_events_of_a_running_run_keeps_a_cursor_when_caught_up(tmp_path: Path, app: Any) -> None:
    async with connect(tmp_path, app) as s:
        run_id = (await s.spawn(progress_script(2)))["id"]
        app.advance(run_id, 2)
        page = await s.ok("get_run_events", {"run_id": run_id})
        caught_up = await s.ok("get_run_events", {"run_id": run_id, "after_seq": page["next_after_seq"]})
    assert [e["seq"] for e in page["events"]] == [1, 2] and page["next_after_seq"] == 2
    assert (caught_up["events"], caught_up["next_after_seq"], caught_up["run_state"]) == ([], 2, "running")


# ---- wait_for_run ----


@pytest.mark.parametrize(
    ("mode", "options"),
    [("abort", {}), ("eof", {}), ("abort", {"after_seq_wins": True})],
    ids=["connection-broken", "clean-eof", "server-prefers-afterSeq"],
)
async def test_wait_for_run_follows_a_dropped_stream_to_the_end_without_losing_or_repeating_events(
    tmp_path: Path, mode: str, options: dict[str, Any]
) -> None:
    app = create_app(api_key=KEY, **options)
    spawned: dict[str, Any] = {}
    received, callback = progress_recorder(advance_unless_terminal(app, spawned))
    async with connect(tmp_path, app, port=True, kick=True) as s:
        spawned.update(await s.spawn(progress_script(4)))
        app.drop_stream(after=3, mode=mode)
        with anyio.fail_after(10):
            run = await s.ok("wait_for_run", {"run_id": spawned["id"], "timeout_seconds": 20}, progress=callback)
    assert run["state"] == "succeeded"
    assert seqs_of(received) == [1, 2, 3, 4, 5, 6]
    assert [p for p, _ in received] == sorted(p for p, _ in received)
    assert events_of(received)[0][1] == "seq 1: RUN_STARTED" and events_of(received)[-1][1].startswith("seq 6: RUN_FINISHED")
    log = app.emulator.stream_log
    assert len(log) == 2
    assert (log[0]["last_event_id"], log[0]["after_seq"]) == (None, 0)
    assert (log[1]["last_event_id"], log[1]["after_seq"], log[1]["start_after"]) == (3, 3, 3)


async def test_wait_for_run_reports_waiting_for_human_as_waiting_and_returns_within_its_timeout(tmp_path: Path, app: Any) -> None:
    async with connect(tmp_path, app, port=True) as s:
        run_id = (await s.spawn(progress_script(1, human=True)))["id"]
        app.clock.advance(60)
        received, callback = progress_recorder()
        with anyio.fail_after(10):
            run = await s.ok("wait_for_run", {"run_id": run_id, "timeout_seconds": 1}, progress=callback)
    assert (run["state"], run["platform_state"]) == ("waiting", "waiting_for_human")
    assert events_of(received) == []  # nothing new happened while it waited
    assert len(app.emulator.stream_log) == 1


async def test_wait_for_run_reports_the_human_pause_then_follows_the_resumed_run(tmp_path: Path, app: Any) -> None:
    spawned: dict[str, Any] = {}

    def on_message(message: str) -> None:
        if "still waiting" in message:
            return
        if "waiting for a human" in message:
            app.resume(spawned["id"], {"approved": True})
        elif "RUN_FINISHED" not in message:
            app.advance(spawned["id"])

    received, callback = progress_recorder(on_message)
    async with connect(tmp_path, app, port=True, kick=True) as s:
        spawned.update(await s.spawn(progress_script(1, human=True)))
        with anyio.fail_after(10):
            run = await s.ok("wait_for_run", {"run_id": spawned["id"], "timeout_seconds": 20}, progress=callback)
    assert run["state"] == "succeeded"
    assert [m.split(":")[1].split()[0] for _, m in received] == [
        "RUN_STARTED", "NODE_FINISHED", "RUN_WAITING_FOR_HUMAN", "RUN_RESUMED", "RUN_FINISHED"]
    assert events_of(received)[2][1] == "seq 3: RUN_WAITING_FOR_HUMAN (node review; approve?); waiting for a human"


@pytest.mark.parametrize(
    ("fault", "stream_tries"),
    [({"status": 404}, 1), ({"malformed": True}, 1)],  # a plain body instead of a stream is seen at once
    ids=["stream-404", "not-event-stream"],
)
async def test_wait_for_run_falls_back_to_polling_when_streaming_is_unavailable(tmp_path: Path, app: Any, fault: dict[str, Any], stream_tries: int) -> None:
    spawned: dict[str, Any] = {}
    received, callback = progress_recorder(advance_unless_terminal(app, spawned))
    async with connect(tmp_path, app, kick=True) as s:
        spawned.update(await s.spawn(progress_script(2)))
        run_id = spawned["id"]
        stream_path = f"/v1/api/runs/{run_id}/events/stream"
        app.faults.add(Fault(**fault, path=stream_path, method="GET", times=100))
        with anyio.fail_after(10):
            run = await s.ok("wait_for_run", {"run_id": run_id, "timeout_seconds": 20}, progress=callback)
    assert run["state"] == "succeeded"
    assert seqs_of(received) == [1, 2, 3, 4]
    assert app.faults.count("GET", stream_path) == stream_tries
    assert app.faults.count("GET", f"/v1/api/runs/{run_id}/events") >= 1


async def test_wait_for_run_on_a_finished_run_returns_it_at_once(tmp_path: Path, app: Any) -> None:
    async with connect(tmp_path, app) as s:
        run_id = (await s.spawn())["id"]
        app.advance(run_id, None)
        run = await s.ok("wait_for_run", {"run_id": run_id})
    assert run["state"] == "succeeded" and app.emulator.stream_log == []


# ---- auth, faults, secrets ----


async def test_wrong_api_key_returns_unauthorized_naming_the_env_var(tmp_path: Path, app: Any) -> None:
    async with connect(tmp_path, app, key="wrong-key-value-123") as s:
        error = await s.error("list_agents")
        assert not s.carried("wrong-key-value-123")
    assert error["code"] == "unauthorized" and "AGENT_OS_API_KEY" in error["message"]


async def test_auth_header_name_bare_scheme_and_tenant_headers_come_from_config(tmp_path: Path) -> None:
    app = create_app(api_key=KEY, auth_header="X-Api-Key", auth_scheme=None, required_headers={"X-Workspace-Id": "ws-1"})
    extra = 'auth_header = "X-Api-Key"\nauth_scheme = ""\n[backends.aos.headers]\nX-Workspace-Id = "ws-1"\n'
    async with connect(tmp_path, app, extra=extra) as s:
        agents = await s.ok("list_agents")
    assert len(agents["agents"]) == 2


async def test_injected_429_on_a_read_is_retried_after_retry_after_and_succeeds(tmp_path: Path, app: Any) -> None:
    async with connect(tmp_path, app) as s:
        run_id = (await s.spawn())["id"]
        path = f"/v1/api/runs/{run_id}"
        app.faults.add(Fault(status=429, retry_after=1, path=path, method="GET", times=1))
        run = await s.ok("get_run", {"run_id": run_id})
    assert run["id"] == run_id
    assert app.faults.count("GET", path) == 3  # one after spawn, the 429, the retry


async def test_500_on_create_is_retried_with_the_same_generated_key_and_makes_one_run(tmp_path: Path, app: Any) -> None:
    app.faults.add(Fault(status=500, path="/v1/api/runs", method="POST", times=1))
    async with connect(tmp_path, app) as s:
        run = await s.spawn()
    assert app.faults.count("POST", "/v1/api/runs") == 2
    assert list(app.emulator.runs) == [run["id"]]


async def test_500_on_cancel_is_not_retried(tmp_path: Path, app: Any) -> None:
    async with connect(tmp_path, app) as s:
        run_id = (await s.spawn())["id"]
        path = f"/v1/api/runs/{run_id}/cancel"
        app.faults.add(Fault(status=500, path=path, method="POST", times=1))
        error = await s.error("cancel_run", {"run_id": run_id})
    assert error["code"] == "unavailable"
    assert app.faults.count("POST", path) == 1


async def test_no_tool_reads_credential_values_and_the_key_never_reaches_a_result(tmp_path: Path, app: Any) -> None:
    received, callback = progress_recorder()
    async with connect(tmp_path, app) as s:
        await s.ok("list_agents")
        run_id = (await s.spawn())["id"]
        await s.ok("list_runs")
        await s.ok("get_run", {"run_id": run_id})
        await s.ok("get_run_events", {"run_id": run_id})
        await s.ok("send_followup", {"run_id": run_id, "message": "more"})
        await s.ok("cancel_run", {"run_id": run_id})
        await s.ok("wait_for_run", {"run_id": run_id}, progress=callback)
        await s.error("get_run", {"run_id": "missing"})
        tools = {t.name for t in (await s.client.list_tools()).tools}
        assert not s.carried(KEY)
    assert {"list_agents", "spawn_agent", "list_runs", "get_run", "get_run_events", "wait_for_run", "cancel_run", "send_followup"} <= tools
    assert "list_channels" not in tools and "claim_task" not in tools
    assert app.emulator.secret_reads == [] and app.emulator.credential_reads == []
