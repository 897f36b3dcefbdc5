"""The ArchAstro backend, driven through a real MCP client session against the ArchAstro emulator.

Every tool call goes Client -> agentdeck server -> ArchAstroBackend -> httpx2 -> emulator. Time
moves only through the emulator's clock (`app.advance`); nothing in these tests sleeps.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx2
import pytest

from agentdeck.config import load_config
from tests.emulators.archastro import create_app
from tests.emulators.faults import Fault
from tests.emulators.serving import serve_in_thread
from tests.helpers import ToolSession, tool_session

KEY = "sk_test_secret_value_5b1f"
NAME = "astro"
SESSIONS = "/api/v1/agent_sessions"


def _config(tmp_path: Path, extra: str = "", env: dict[str, str] | None = None) -> Any:
    path = tmp_path / "c.toml"
    path.write_text(f'default = "{NAME}"\n\n[backends.{NAME}]\nkind = "archastro"\n{extra}')
    return load_config(path=path, env={"ARCHASTRO_API_KEY": KEY, "AGENTDECK_DATA_DIR": str(tmp_path)} if env is None else env)


@contextlib.asynccontextmanager
async def connect(tmp_path: Path, app: Any, extra: str = "", env: dict[str, str] | None = None, transport: bool = True) -> AsyncIterator[ToolSession]:
    transports = {NAME: httpx2.ASGITransport(app=app)} if transport else None
    async with tool_session(_config(tmp_path, extra, env), transports=transports, never_shown=(KEY,)) as session:
        yield session


@pytest.fixture
def app() -> Any:
    return create_app()


async def _spawn(mcp: ToolSession, app: Any, **arguments: Any) -> dict[str, Any]:
    return await mcp.ok("spawn_agent", agent=app.seeded["agent"], prompt="Summarise the inbox", **arguments)


# --- configuration and tool set --------------------------------------------------------------

async def test_server_offers_exactly_the_mapped_tools(tmp_path, app):
    async with connect(tmp_path, app) as mcp:
        names = {tool.name for tool in (await mcp.client.list_tools()).tools}
        assert names == {"list_agents", "spawn_agent", "list_runs", "get_run", "wait_for_run", "send_followup", "cancel_run",
                         "get_run_events", "delete_session", "list_routines", "invoke_routine", "list_routine_runs"}


async def test_default_base_url_and_api_key_header_reach_the_platform(tmp_path, app):
    seen: list[dict[str, str]] = []

    async def recording(scope, receive, send):
        if scope["type"] == "http":
            seen.append({k.decode(): v.decode() for k, v in scope["headers"]})
        await app(scope, receive, send)

    async with connect(tmp_path, recording) as mcp:
        assert mcp.deck.backends[NAME].settings.base_url == "https://platform.archastro.ai"
        await mcp.ok("list_agents")
    assert seen[0]["host"] == "platform.archastro.ai" and seen[0]["x-archastro-api-key"] == KEY
    assert "authorization" not in seen[0]


async def test_api_key_comes_from_the_env_var_named_in_config(tmp_path, app):
    env = {"MY_ASTRO_KEY": KEY, "AGENTDECK_DATA_DIR": str(tmp_path)}
    async with connect(tmp_path, app, 'api_key_env = "MY_ASTRO_KEY"\n', env=env) as mcp:
        assert (await mcp.ok("list_agents"))["agents"]


async def test_missing_api_key_is_unauthorized_and_names_the_env_var(tmp_path, app):
    async with connect(tmp_path, app, env={"AGENTDECK_DATA_DIR": str(tmp_path)}) as mcp:
        error = await mcp.error("list_runs")
    assert error["code"] == "unauthorized" and "ARCHASTRO_API_KEY" in error["message"]
    assert app.faults.requests == []


# --- agents and spawning ---------------------------------------------------------------------

async def test_list_agents_names_each_agent_by_id_with_its_name_and_lookup_key(tmp_path, app):
    async with connect(tmp_path, app) as mcp:
        other = app.add_agent("Release notes writer")
        agents = (await mcp.ok("list_agents"))["agents"]
        assert [a["name"] for a in agents] == [other, app.seeded["agent"]]
        assert agents[1]["description"] == "Support triage agent; lookup key support-triage"
        assert all(a["backend"] == NAME for a in agents)


async def test_spawn_agent_creates_a_session_with_name_limits_thread_and_metadata(tmp_path, app):
    async with connect(tmp_path, app) as mcp:
        options = {"max_turns": 3, "max_tokens": 500, "max_runs_per_turn": 2, "thread": "thr_abc", "team": "tea_x", "user": "usr_y"}
        run = await _spawn(mcp, app, name="nightly", metadata={"ticket": "T-1", "archastro": options})
        assert run["id"].startswith("ase_") and run["state"] == "queued" and run["platform_state"] == "pending"
        assert run["name"] == "nightly" and run["agent"] == app.seeded["agent"] and run["backend"] == NAME
        assert run["metadata"]["ticket"] == "T-1" and run["metadata"]["archastro"]["max_turns"] == 3
        stored = app.store.sessions[run["id"]]
        assert (stored.max_turns, stored.max_tokens, stored.max_runs_per_turn) == (3, 500, 2)
        assert (stored.thread, stored.team, stored.user) == ("thr_abc", "tea_x", "usr_y")
        assert stored.metadata == {"ticket": "T-1"} and stored.instructions == "Summarise the inbox"


async def test_spawn_agent_accepts_the_agents_lookup_key(tmp_path, app):
    async with connect(tmp_path, app) as mcp:
        run = await mcp.ok("spawn_agent", agent="support-triage", prompt="Triage")
        assert run["agent"] == app.seeded["agent"]


async def test_spawn_agent_of_unknown_agent_is_not_found(tmp_path, app):
    async with connect(tmp_path, app) as mcp:
        assert (await mcp.error("spawn_agent", agent="agi_nobody", prompt="x"))["code"] == "not_found"
        assert (await mcp.error("spawn_agent", agent="no-such-lookup-key", prompt="x"))["code"] == "not_found"


async def test_spawn_agent_refuses_ttl_seconds_and_workspace_without_creating_a_session(tmp_path, app):
    async with connect(tmp_path, app) as mcp:
        ttl = await mcp.error("spawn_agent", agent=app.seeded["agent"], prompt="x", ttl_seconds=60)
        assert ttl["code"] == "invalid_argument" and "max_turns" in ttl["message"]
        assert (await mcp.error("spawn_agent", agent=app.seeded["agent"], prompt="x", workspace="src"))["code"] == "invalid_argument"
        assert app.faults.count("POST", SESSIONS) == 0


@pytest.mark.parametrize("options", [{"max_turn": 3}, {"max_turns": 0}, {"start_idle": "yes"}, "not an object"])
async def test_spawn_agent_rejects_unknown_or_mistyped_archastro_options(tmp_path, app, options):
    async with connect(tmp_path, app) as mcp:
        error = await mcp.error("spawn_agent", agent=app.seeded["agent"], prompt="x", metadata={"archastro": options})
        assert error["code"] == "invalid_argument" and "metadata.archastro" in error["message"]


async def test_spawn_agent_with_the_same_idempotency_key_returns_the_first_session(tmp_path, app):
    async with connect(tmp_path, app) as mcp:
        first = await _spawn(mcp, app, idempotency_key="job-7")
        again = await _spawn(mcp, app, idempotency_key="job-7")
        other = await _spawn(mcp, app, idempotency_key="job-8")
        assert again["id"] == first["id"] != other["id"]
        assert app.faults.count("POST", SESSIONS) == 2
        assert "agentdeck_idempotency_key" not in again["metadata"]


async def test_start_idle_session_waits_until_a_followup_drives_a_turn(tmp_path, app):
    async with connect(tmp_path, app) as mcp:
        run = await _spawn(mcp, app, metadata={"archastro": {"start_idle": True}})
        assert (run["state"], run["platform_state"]) == ("waiting", "waiting")
        steered = await mcp.ok("send_followup", run_id=run["id"], message="Start with the oldest mail")
        assert steered["state"] == "running" and steered["metadata"]["archastro"]["inbox_messages"] == 1
        assert app.session(run["id"])["inbox"][0]["content"] == "Start with the oldest mail"
        app.advance(5)
        done = await mcp.ok("get_run", run_id=run["id"])
        assert done["state"] == "succeeded" and done["artifacts"][0]["kind"] == "result"


async def test_parent_run_id_is_kept_and_filters_list_runs(tmp_path, app):
    async with connect(tmp_path, app) as mcp:
        parent = await _spawn(mcp, app)
        child = await _spawn(mcp, app, parent_run_id=parent["id"])
        assert child["parent_run_id"] == parent["id"] and "agentdeck_parent_run_id" not in child["metadata"]
        listed = await mcp.ok("list_runs", parent_run_id=parent["id"])
        assert [r["id"] for r in listed["runs"]] == [child["id"]]


# --- runs ------------------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("script", "seconds", "cancel", "state", "platform_state"),
    [
        ((), 0, False, "queued", "pending"),
        ((), 1, False, "running", "running"),
        (("waiting",), 6, False, "waiting", "waiting"),
        ((), 6, False, "succeeded", "completed"),
        (("failed",), 6, False, "failed", "failed"),
        ((), 1, True, "cancelled", "cancelled"),
    ],
)
async def test_session_status_maps_to_normalized_state(tmp_path, app, script, seconds, cancel, state, platform_state):
    async with connect(tmp_path, app) as mcp:
        app.script_next_session(*script)
        run = await _spawn(mcp, app)
        app.advance(seconds)
        if cancel:
            await mcp.ok("cancel_run", run_id=run["id"])
        got = await mcp.ok("get_run", run_id=run["id"])
        assert (got["state"], got["platform_state"]) == (state, platform_state)
        assert (got["error"] is not None) == (state == "failed")
        assert (got["ended_at"] is not None) == (state in ("succeeded", "failed", "cancelled"))
        if state == "failed":
            assert got["error"]["code"] == "session_failed" and got["error"]["message"]


async def test_list_runs_is_newest_first_filtered_by_state_and_agent_and_paged_by_cursor(tmp_path, app):
    async with connect(tmp_path, app) as mcp:
        other = app.add_agent("Second agent", lookup_key="second")
        first, second, third = [await _spawn(mcp, app) for _ in range(3)]
        elsewhere = await mcp.ok("spawn_agent", agent=other, prompt="x")
        app.advance(1)
        await mcp.ok("cancel_run", run_id=second["id"])

        page = await mcp.ok("list_runs", agent=app.seeded["agent"], limit=2)
        assert [r["id"] for r in page["runs"]] == [third["id"], second["id"]] and page["next_cursor"]
        rest = await mcp.ok("list_runs", agent=app.seeded["agent"], limit=2, cursor=page["next_cursor"])
        assert [r["id"] for r in rest["runs"]] == [first["id"]] and rest["next_cursor"] is None

        cancelled = await mcp.ok("list_runs", state="cancelled")
        assert [r["id"] for r in cancelled["runs"]] == [second["id"]]
        by_lookup_key = await mcp.ok("list_runs", agent="second")
        assert [r["id"] for r in by_lookup_key["runs"]] == [elsewhere["id"]]
        running = await mcp.ok("list_runs", state="running")
        assert {r["id"] for r in running["runs"]} == {first["id"], third["id"], elsewhere["id"]}


async def test_list_runs_created_after_keeps_only_later_sessions(tmp_path, app):
    async with connect(tmp_path, app) as mcp:
        early = await _spawn(mcp, app)
        app.advance(10)
        late = await _spawn(mcp, app)
        listed = await mcp.ok("list_runs", created_after=early["created_at"])
        assert [r["id"] for r in listed["runs"]] == [late["id"]]


async def test_list_runs_with_an_unknown_cursor_is_invalid_argument(tmp_path, app):
    async with connect(tmp_path, app) as mcp:
        await _spawn(mcp, app)
        assert (await mcp.error("list_runs", cursor="ase_gone"))["code"] == "invalid_argument"


async def test_get_run_of_unknown_or_foreign_id_is_not_found(tmp_path, app):
    async with connect(tmp_path, app) as mcp:
        assert (await mcp.error("get_run", run_id="ase_missing"))["code"] == "not_found"
        assert (await mcp.error("get_run", run_id="arr_missing"))["code"] == "not_found"
        foreign = await mcp.error("get_run", run_id="run-123")
        assert foreign["code"] == "not_found" and "ase_" in foreign["message"]


async def test_cancel_run_is_idempotent_and_leaves_finished_sessions_unchanged(tmp_path, app):
    async with connect(tmp_path, app) as mcp:
        run = await _spawn(mcp, app)
        first = await mcp.ok("cancel_run", run_id=run["id"])
        again = await mcp.ok("cancel_run", run_id=run["id"])
        assert first["state"] == again["state"] == "cancelled" and first["ended_at"] == again["ended_at"]
        done = await _spawn(mcp, app)
        app.advance(6)
        assert (await mcp.ok("cancel_run", run_id=done["id"]))["state"] == "succeeded"


async def test_a_refused_followup_reports_the_platforms_validation_message(tmp_path, app):
    async with connect(tmp_path, app) as mcp:
        run = await _spawn(mcp, app)
        error = await mcp.error("send_followup", run_id=run["id"], message="   ")
        assert error["code"] == "invalid_argument" and "content can't be blank" in error["message"]
        assert "ended" not in error["message"]  # a 422 is "Validation failed", nothing more


async def test_followup_to_a_running_session_is_read_on_its_next_turn(tmp_path, app):
    async with connect(tmp_path, app) as mcp:
        app.script_next_session("waiting", "completed")
        run = await _spawn(mcp, app)
        app.advance(2)
        steered = await mcp.ok("send_followup", run_id=run["id"], message="also check spam")
        assert steered["state"] == "running"
        app.advance(4)  # the first turn ends wanting input, but a message is waiting: it runs on
        assert (await mcp.ok("get_run", run_id=run["id"]))["state"] == "running"
        app.advance(5)
        assert (await mcp.ok("get_run", run_id=run["id"]))["state"] == "succeeded"


async def test_wait_for_run_polls_with_progress_until_the_session_completes(tmp_path):
    app = create_app(step=3)  # each request moves the emulator clock 3 s
    async with connect(tmp_path, app) as mcp:
        run = await _spawn(mcp, app)
        updates: list[str] = []

        async def progress(value, total, message):
            updates.append(message)

        result = await mcp.client.call_tool("wait_for_run", {"run_id": run["id"], "timeout_seconds": 30}, progress_callback=progress)
        assert not result.is_error and result.structured_content["state"] == "succeeded"
        assert any(run["id"] in u for u in updates)  # the session's state, as it moves
        assert any(u.startswith('message: You said: "') for u in updates)  # and each harness event as it comes


async def test_wait_for_run_with_no_time_returns_the_run_as_it_stands(tmp_path, app):
    async with connect(tmp_path, app) as mcp:
        run = await _spawn(mcp, app)
        assert (await mcp.ok("wait_for_run", run_id=run["id"], timeout_seconds=0))["state"] == "queued"


# --- routines --------------------------------------------------------------------------------

async def test_list_routines_names_them_by_lookup_key_and_says_which_can_be_invoked(tmp_path, app):
    async with connect(tmp_path, app) as mcp:
        keyless = app.add_routine(name="No key")["id"]
        routines = {r["name"]: r for r in (await mcp.ok("list_routines"))["routines"]}
        assert set(routines) == {"triage", "weekly-digest", "on-thread-message", keyless}
        assert routines["triage"]["active"] and routines["triage"]["agent"] == app.seeded["agent"]
        assert app.seeded["routine"] in routines["triage"]["description"]
        assert not routines["weekly-digest"]["active"] and "draft" in routines["weekly-digest"]["description"]
        assert not routines["on-thread-message"]["active"] and "not invocable" in routines["on-thread-message"]["description"]


async def test_list_routines_filters_by_agent_and_event_type(tmp_path, app):
    async with connect(tmp_path, app) as mcp:
        other = app.add_agent("Other")
        app.add_routine(other, "Other's routine", lookup_key="others")
        backend = mcp.deck.backends[NAME]
        assert [r.name for r in (await backend.list_routines(agent=other)).routines] == ["others"]
        assert [r.name for r in (await backend.list_routines(event_type="thread.message_added")).routines] == ["on-thread-message"]
        assert app.faults.requests[-1]["path"] == "/api/v1/agent_routines"


async def test_invoke_routine_returns_a_routine_run_that_get_run_and_wait_for_run_follow(tmp_path, app):
    async with connect(tmp_path, app) as mcp:
        run = await mcp.ok("invoke_routine", routine="triage", message="Printer on fire")
        assert run["id"].startswith("arr_") and run["routine"] == app.seeded["routine"]
        assert (run["state"], run["platform_state"]) == ("queued", "pending") and run["agent"] == app.seeded["agent"]
        app.advance(4)
        done = await mcp.ok("wait_for_run", run_id=run["id"], timeout_seconds=5)
        assert done["state"] == "succeeded" and done["ended_at"] and done["usage"]["duration_ms"] == 3000
        assert done["artifacts"][0]["data"]["message"] == "Handled: Printer on fire"


async def test_invoke_routine_sends_session_key_thread_user_and_metadata(tmp_path, app):
    async with connect(tmp_path, app) as mcp:
        routine = app.add_routine(name="Keyed", lookup_key="keyed", preset_config={"session_mode": "session", "session_scope": "per_key"})
        run = await mcp.ok("invoke_routine", routine=routine["id"], message="hi", session_key="customer-9",
                           metadata={"source": "mcp", "archastro": {"thread_id": "thr_1", "user": "usr_2"}})
        stored = app.run(run["id"])
        assert stored["payload"] == {"message": "hi", "session_key": "customer-9", "thread_id": "thr_1", "user": "usr_2"}
        assert stored["metadata"] == {"source": "mcp"} and run["metadata"]["source"] == "mcp"
        sessions = await mcp.ok("list_runs")
        assert len(sessions["runs"]) == 1 and sessions["runs"][0]["state"] == "running"


async def test_invoke_with_a_key_in_flight_returns_the_same_run(tmp_path, app):
    async with connect(tmp_path, app) as mcp:
        first = await mcp.ok("invoke_routine", routine="triage", message="a", idempotency_key="k1")
        again = await mcp.ok("invoke_routine", routine="triage", message="a", idempotency_key="k1")
        assert again["id"] == first["id"]


async def test_invoke_with_the_key_of_a_completed_run_returns_that_run(tmp_path, app):
    async with connect(tmp_path, app) as mcp:
        first = await mcp.ok("invoke_routine", routine="triage", message="a", idempotency_key="k2")
        app.advance(4)
        again = await mcp.ok("invoke_routine", routine="triage", message="a", idempotency_key="k2")
        assert again["id"] == first["id"] and again["state"] == "succeeded"
        invokes = [r["status"] for r in app.faults.requests if r["path"].endswith("/invoke")]
        assert invokes == [200, 409]


async def test_invoke_with_the_key_of_a_run_made_elsewhere_is_conflict(tmp_path, app):
    async with connect(tmp_path, app) as mcp:
        app.invoke(app.seeded["routine"], "made by another client", idempotency_key="k3")
        app.advance(4)
        error = await mcp.error("invoke_routine", routine="triage", message="a", idempotency_key="k3")
        assert error["code"] == "conflict" and "new idempotency_key" in error["message"]


async def test_invoke_refused_by_the_plan_is_unsupported(tmp_path, app):
    async with connect(tmp_path, app) as mcp:
        app.set_plan(llm=False)
        error = await mcp.error("invoke_routine", routine="triage", message="a")
        assert error["code"] == "unsupported" and "plan" in error["message"]


async def test_invoke_of_a_draft_routine_is_conflict(tmp_path, app):
    async with connect(tmp_path, app) as mcp:
        error = await mcp.error("invoke_routine", routine="weekly-digest", message="a")
        assert error["code"] == "conflict" and "draft" in error["message"] and "activate" in error["message"]


async def test_invoke_of_an_event_triggered_routine_is_invalid_argument(tmp_path, app):
    async with connect(tmp_path, app) as mcp:
        error = await mcp.error("invoke_routine", routine=app.seeded["event_routine"], message="a")
        assert error["code"] == "invalid_argument" and "thread.message_added" in error["message"]


async def test_invoke_missing_a_required_session_key_is_invalid_argument(tmp_path, app):
    async with connect(tmp_path, app) as mcp:
        app.add_routine(name="Keyed", lookup_key="keyed", preset_config={"session_mode": "session", "session_scope": "per_key"})
        error = await mcp.error("invoke_routine", routine="keyed", message="a")
        assert error["code"] == "invalid_argument" and "session_key" in error["message"]


async def test_invoke_without_a_message_or_of_an_unknown_routine_is_refused(tmp_path, app):
    async with connect(tmp_path, app) as mcp:
        assert (await mcp.error("invoke_routine", routine="triage"))["code"] == "invalid_argument"
        assert (await mcp.error("invoke_routine", routine="no-such-routine", message="a"))["code"] == "not_found"
        assert (await mcp.error("invoke_routine", routine="arn_missing", message="a"))["code"] == "not_found"


@pytest.mark.parametrize(
    ("outcome", "seconds", "state"),
    [(None, 0, "queued"), (None, 1, "running"), ("completed", 4, "succeeded"), ("failed", 4, "failed"),
     ("skipped", 4, "cancelled"), ("cancelled", 0, "cancelled")],
)
async def test_routine_run_status_maps_to_normalized_state(tmp_path, app, outcome, seconds, state):
    async with connect(tmp_path, app) as mcp:
        if outcome in ("completed", "failed", "skipped"):
            app.script_next_runs(outcome)
        run = await mcp.ok("invoke_routine", routine="triage", message="a")
        app.advance(seconds)
        if outcome == "cancelled":
            app.finish_run(run["id"], "cancelled")
        got = await mcp.ok("get_run", run_id=run["id"])
        assert got["state"] == state and got["platform_state"] == (outcome or ("pending" if seconds == 0 else "running"))
        assert (got["error"] is not None) == (state == "failed")


async def test_list_routine_runs_pages_newest_first_by_cursor(tmp_path, app):
    async with connect(tmp_path, app) as mcp:
        runs = [(await mcp.ok("invoke_routine", routine="triage", message=f"m{i}"))["id"] for i in range(5)]
        seen, cursor = [], None
        for _ in range(3):
            page = await mcp.ok("list_routine_runs", routine="triage", limit=2, **({"cursor": cursor} if cursor else {}))
            seen += [r["id"] for r in page["runs"]]
            cursor = page["next_cursor"]
            if not cursor:
                break
        assert seen == runs[::-1] and cursor is None


async def test_list_routine_runs_filters_by_state(tmp_path, app):
    async with connect(tmp_path, app) as mcp:
        app.script_next_runs("failed", "skipped", "completed")
        failed, skipped, completed = [(await mcp.ok("invoke_routine", routine="triage", message="m"))["id"] for _ in range(3)]
        app.advance(4)
        cancelled = (await mcp.ok("invoke_routine", routine="triage", message="m"))["id"]
        app.finish_run(cancelled, "cancelled")

        async def ids(state: str) -> list[str]:
            return [r["id"] for r in (await mcp.ok("list_routine_runs", routine=app.seeded["routine"], status=state))["runs"]]

        assert await ids("failed") == [failed]
        assert await ids("succeeded") == [completed]
        assert await ids("cancelled") == [cancelled, skipped]
        assert await ids("waiting") == []


async def test_list_routine_runs_with_a_bad_cursor_is_invalid_argument(tmp_path, app):
    async with connect(tmp_path, app) as mcp:
        error = await mcp.error("list_routine_runs", routine="triage", cursor="not-a-cursor")
        assert error["code"] == "invalid_argument" and "without a cursor" in error["message"]


async def test_routine_runs_cannot_be_cancelled_or_followed_up(tmp_path, app):
    async with connect(tmp_path, app) as mcp:
        run = await mcp.ok("invoke_routine", routine="triage", message="a")
        assert (await mcp.error("cancel_run", run_id=run["id"]))["code"] == "unsupported"
        assert (await mcp.error("send_followup", run_id=run["id"], message="more"))["code"] == "unsupported"


# --- faults ----------------------------------------------------------------------------------

async def test_a_429_with_retry_after_on_a_read_is_retried(tmp_path, app):
    async with connect(tmp_path, app) as mcp:
        run = await _spawn(mcp, app)
        app.faults.add(Fault(status=429, retry_after=0, method="GET", path=f"{SESSIONS}/{run['id']}"))
        assert (await mcp.ok("get_run", run_id=run["id"]))["id"] == run["id"]
        assert app.faults.count("GET", f"{SESSIONS}/{run['id']}") == 2


async def test_a_500_on_session_create_is_not_retried(tmp_path, app):
    async with connect(tmp_path, app) as mcp:
        app.faults.add(Fault(status=500, method="POST", path=SESSIONS))
        error = await mcp.error("spawn_agent", agent=app.seeded["agent"], prompt="x")
        assert error["code"] == "unavailable"
        assert app.faults.count("POST", SESSIONS) == 1 and app.store.sessions == {}


async def test_a_500_on_invoke_without_a_key_is_not_retried(tmp_path, app):
    async with connect(tmp_path, app) as mcp:
        path = f"/api/v1/agent_routines/{app.seeded['routine']}/invoke"
        app.faults.add(Fault(status=500, method="POST", path=path))
        assert (await mcp.error("invoke_routine", routine=app.seeded["routine"], message="a"))["code"] == "unavailable"
        assert app.faults.count("POST", path) == 1


async def test_tools_work_over_a_real_loopback_port(tmp_path, app):
    with serve_in_thread(app) as base_url:
        async with connect(tmp_path, app, f'base_url = "{base_url}"\n', transport=False) as mcp:
            run = await _spawn(mcp, app)
            app.advance(6)
            assert (await mcp.ok("get_run", run_id=run["id"]))["state"] == "succeeded"
            invoked = await mcp.ok("invoke_routine", routine="triage", message="over tcp")
            assert (await mcp.ok("list_routine_runs", routine="triage"))["runs"][0]["id"] == invoked["id"]
    assert app.faults.connections
