"""ArchAstro sessions through a real MCP client session: their harness events, waiting on them, deleting
them, and invoke_routine never repeated blindly (emulator: tests/emulators/archastro.py)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.emulators.archastro import create_app
from tests.emulators.faults import Fault
from tests.emulators.serving import serve_in_thread
from tests.test_backend_archastro import SESSIONS, _spawn, connect


@pytest.fixture
def app() -> Any:
    return create_app()


async def test_get_run_events_shows_the_agents_answer_in_the_sessions_harness_events(tmp_path, app):
    async with connect(tmp_path, app) as mcp:
        run = await mcp.ok("spawn_agent", agent=app.seeded["agent"], prompt="Count the open tickets")
        app.advance(6)  # one turn: pending -> running -> completed
        events = await mcp.ok("get_run_events", run_id=run["id"])
        first = await mcp.ok("get_run_events", run_id=run["id"], limit=2)
        rest = await mcp.ok("get_run_events", run_id=run["id"], after_seq=first["next_after_seq"])
    assert [(e["seq"], e["kind"]) for e in events["events"]] == [(1, "session_started"), (2, "message"), (3, "turn_complete"), (4, "finished")]
    assert events["events"][1]["text"] == 'You said: "Count the open tickets"'
    assert events["run_state"] == "succeeded" and events["next_after_seq"] is None
    assert first["next_after_seq"] == 2 and [e["seq"] for e in rest["events"]] == [3, 4]


async def test_wait_for_run_follows_the_stream_until_the_session_waits_for_a_message(tmp_path):
    app = create_app(step=2)
    updates: list[str] = []

    async def progress(value, total, message):
        updates.append(message)

    with serve_in_thread(app) as url:  # the stream stays open while the session waits: a real connection
        async with connect(tmp_path, app, extra=f'base_url = "{url}"\n', transport=False) as mcp:
            app.script_next_session("waiting", "completed")
            run = await _spawn(mcp, app)
            waiting = await mcp.client.call_tool("wait_for_run", {"run_id": run["id"], "timeout_seconds": 30}, progress_callback=progress)
            await mcp.ok("send_followup", run_id=run["id"], message="and the closed ones")
            done = await mcp.ok("wait_for_run", run_id=run["id"], timeout_seconds=30)
            events = await mcp.ok("get_run_events", run_id=run["id"])
    assert waiting.structured_content["state"] == "waiting"
    assert 'message: You said: "Summarise the inbox"' in updates  # harness events arrive as progress
    assert app.faults.count("GET", f"{SESSIONS}/{run['id']}/stream") == 2
    assert app.faults.count("GET", f"{SESSIONS}/{run['id']}/events") == 1  # no polling: only get_run_events read them
    assert done["state"] == "succeeded" and done["artifacts"][0]["data"]["output"] == 'You said: "and the closed ones"'
    answers = [e["text"] for e in events["events"] if e["kind"] == "message"]
    assert answers == ['You said: "Summarise the inbox"', 'You said: "and the closed ones"']


async def test_delete_session_removes_an_ended_session_and_refuses_a_live_one(tmp_path, app):
    async with connect(tmp_path, app) as mcp:
        live = await _spawn(mcp, app)
        refused = await mcp.error("delete_session", run_id=live["id"])
        await mcp.ok("cancel_run", run_id=live["id"])
        deleted = await mcp.ok("delete_session", run_id=live["id"])
        gone = await mcp.error("get_run", run_id=live["id"])
        routine_run = await mcp.error("delete_session", run_id="arr_x")
    assert refused["code"] == "conflict" and "cancel_run" in refused["message"]
    assert (deleted["state"], deleted["platform_state"]) == ("cancelled", "deleted")
    assert gone["code"] == "not_found" and routine_run["code"] == "not_found"
    assert live["id"] not in app.store.sessions


async def test_invoke_routine_is_not_repeated_after_a_failure_even_with_an_idempotency_key(tmp_path, app):
    app.faults.add(Fault(status=503, method="POST", path="/api/v1/agent_routines/", times=1))
    async with connect(tmp_path, app) as mcp:
        error = await mcp.error("invoke_routine", routine="triage", message="a", idempotency_key="k9")
    assert error["code"] == "unavailable"
    assert app.faults.count("POST", f"/api/v1/agent_routines/{app.seeded['routine']}/invoke") == 1


async def test_a_refused_followup_to_a_live_session_keeps_the_session_running(tmp_path, app):
    async with connect(tmp_path, app) as mcp:
        run = await _spawn(mcp, app)
        await mcp.error("send_followup", run_id=run["id"], message="  ")
        assert (await mcp.ok("get_run", run_id=run["id"]))["state"] in ("queued", "running")
    assert app.faults.count("POST", f"{SESSIONS}/{run['id']}/message") == 1  # a refused follow-up is not sent again
