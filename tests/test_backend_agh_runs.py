"""AGH runs through a real MCP client session: a spawned child gets its prompt as its first turn, and its
run is read, followed, steered and stopped through the daemon's session routes (emulator: tests/emulators/agh_sessions.py).

Long turns are served over loopback TCP (serve_in_thread), because an in-process transport waits for a
streamed answer to end before handing it over.
"""

from __future__ import annotations

from pathlib import Path

from tests.emulators.agh import create_app
from tests.emulators.faults import Fault
from tests.emulators.serving import serve_in_thread
from tests.test_backend_agh import _config, serve


async def test_a_spawned_child_answers_its_prompt_and_the_answer_is_in_its_events(tmp_path: Path) -> None:
    app = create_app()
    async with serve(_config(tmp_path), app) as mcp:
        child = await mcp.ok("spawn_agent", agent="worker", prompt="summarise PR 7")
        done = await mcp.ok("wait_for_run", run_id=child["id"], timeout_seconds=20)
        events = await mcp.ok("get_run_events", run_id=child["id"])
    assert done["state"] == "waiting" and done["platform_state"] == "active:idle"  # idle: ready for the next prompt
    assert [(e["kind"], e["text"]) for e in events["events"]] == [
        ("user_message", "summarise PR 7"), ("agent_message", 'You said: "summarise PR 7"'), ("done", "end_turn"),
    ]
    assert events["run_state"] == "waiting" and events["next_after_seq"] is None
    assert app.state.agh.sessions[child["id"]].lineage["parent_session_id"] == "sess-local"


async def test_a_long_turn_is_running_until_cancel_run_stops_the_child(tmp_path: Path) -> None:
    app = create_app(turn_seconds=3600)
    with serve_in_thread(app) as base_url:
        async with serve(_config(tmp_path, f'base_url = "{base_url}"\n')) as mcp:
            child = await mcp.ok("spawn_agent", agent="worker", prompt="refactor the parser")
            still = await mcp.ok("wait_for_run", run_id=child["id"], timeout_seconds=1)
            stopped = await mcp.ok("cancel_run", run_id=child["id"])
            again = await mcp.ok("cancel_run", run_id=child["id"])
            events = await mcp.ok("get_run_events", run_id=child["id"])
            refused = await mcp.error("send_followup", run_id=child["id"], message="and the lexer")
    assert (child["state"], child["platform_state"]) == ("running", "active:running")
    assert still["state"] == "running"
    assert (stopped["state"], stopped["platform_state"]) == ("cancelled", "stopped:user_canceled")
    assert again["state"] == "cancelled"  # stopping a stopped child changes nothing
    assert [e["kind"] for e in events["events"]] == ["user_message", "done", "session_stopped"]
    assert app.state.agh.sessions[child["id"]].state == "stopped"
    assert refused["code"] == "conflict"


async def test_send_followup_is_the_childs_next_turn(tmp_path: Path) -> None:
    async with serve(_config(tmp_path), create_app()) as mcp:
        child = await mcp.ok("spawn_agent", agent="worker", prompt="first")
        await mcp.ok("send_followup", run_id=child["id"], message="second")
        await mcp.ok("wait_for_run", run_id=child["id"], timeout_seconds=20)
        page = await mcp.ok("get_run_events", run_id=child["id"], after_seq=3, limit=2)
        rest = await mcp.ok("get_run_events", run_id=child["id"], after_seq=page["next_after_seq"])
    assert [e["text"] for e in page["events"]] == ["second", 'You said: "second"'] and page["next_after_seq"] == 5
    assert [e["kind"] for e in rest["events"]] == ["done"] and rest["next_after_seq"] is None


async def test_a_refused_prompt_route_leaves_a_child_that_says_it_was_not_prompted(tmp_path: Path) -> None:
    app = create_app()
    app.faults.add(Fault(status=403, method="POST", path="/api/workspaces/", times=1))  # e.g. a daemon bound off loopback
    async with serve(_config(tmp_path), app) as mcp:
        result = await mcp.call("spawn_agent", agent="worker", prompt="never heard")
        run = result.structured_content
        events = await mcp.ok("get_run_events", run_id=run["id"])
    assert not result.is_error and "created but NOT prompted" in result.content[0].text
    assert "session routes only on its Unix socket or a loopback bind" in run["metadata"]["note"]  # where it does
    assert run["metadata"]["prompt_delivered"] is False and run["state"] == "waiting"
    assert events["events"] == []  # the child never got a turn
    assert app.state.agh.sessions[run["id"]].type == "spawned"


async def test_model_is_refused_because_the_daemon_would_drop_it(tmp_path: Path) -> None:
    app = create_app()
    async with serve(_config(tmp_path), app) as mcp:
        refused = await mcp.error("spawn_agent", agent="worker", prompt="x", metadata={"model": "opus"})
    assert refused["code"] == "invalid_argument" and "never passes it to the child" in refused["message"]
    assert app.faults.count("POST", "/api/agent/spawn") == 0


async def test_list_runs_shows_the_children_of_this_session_only(tmp_path: Path) -> None:
    app = create_app()
    app.state.add_session("sess-other", "peer-agent")
    async with serve(_config(tmp_path), app) as mcp:
        first = await mcp.ok("spawn_agent", agent="worker", prompt="a")
        second = await mcp.ok("spawn_agent", agent="worker", prompt="b")
        await mcp.ok("cancel_run", run_id=first["id"])
        every = await mcp.ok("list_runs")
        waiting = await mcp.ok("list_runs", state="waiting")
        page = await mcp.ok("list_runs", limit=1)
        missing = await mcp.error("get_run", run_id="sess-nope")
    assert {r["id"] for r in every["runs"]} == {first["id"], second["id"]}
    assert [r["id"] for r in waiting["runs"]] == [second["id"]]
    assert len(page["runs"]) == 1 and page["next_cursor"] == "1"
    assert missing["code"] == "not_found"


async def test_a_followup_while_the_child_is_busy_is_queued_and_runs_after_the_turn(tmp_path: Path) -> None:
    app = create_app(turn_seconds=60)
    with serve_in_thread(app) as base_url:
        async with serve(_config(tmp_path, f'base_url = "{base_url}"\n')) as mcp:
            child = await mcp.ok("spawn_agent", agent="worker", prompt="first")
            queued = await mcp.ok("send_followup", run_id=child["id"], message="second")
            app.state.clock.advance(61)  # the first turn ends; the queued prompt starts
            between = await mcp.ok("get_run_events", run_id=child["id"])
            app.state.clock.advance(61)
            done = await mcp.ok("wait_for_run", run_id=child["id"], timeout_seconds=20)
            events = await mcp.ok("get_run_events", run_id=child["id"])
    assert queued["metadata"]["prompt_status"] == "queued" and queued["state"] == "running"
    assert [e["text"] for e in between["events"]][-1] == "second" and between["run_state"] == "running"
    assert done["state"] == "waiting"
    assert [e["text"] for e in events["events"] if e["kind"] == "agent_message"] == ['You said: "first"', 'You said: "second"']
