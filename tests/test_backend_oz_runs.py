"""Oz: idempotency without the metadata filter, run events from the conversation, artifacts as
files, and follow-up modes, through a real MCP client session against the Oz emulator."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client

from agentdeck.backends.oz_models import KEY_FIELD
from agentdeck.backends.records import Records
from tests.emulators.faults import Fault
from tests.emulators.oz import create_app, script
from tests.emulators.serving import serve_in_thread
from tests.helpers import call, server_env, stdio_params
from tests.test_backend_oz import connect


def _runs_with_key(app: Any) -> list[str]:
    return [r.run_id for r in app.oz.runs.values() if KEY_FIELD in r.metadata]


# ---- idempotency -------------------------------------------------------------------------------
async def test_a_repeated_key_makes_one_run_when_the_team_has_no_metadata_filter(tmp_path: Path) -> None:
    app = create_app(seed=False, metadata_filter=False)
    args = {"agent": "fixer", "prompt": "Fix the login bug", "idempotency_key": "ticket-41"}
    async with connect(tmp_path, app) as mcp:
        first = await mcp.ok("spawn_agent", **args)
        again = await mcp.ok("spawn_agent", **args)
    async with connect(tmp_path, app) as mcp:  # a restarted server with the same data dir
        later = await mcp.ok("spawn_agent", **args)
        other = await mcp.ok("spawn_agent", **{**args, "idempotency_key": "ticket-42"})
    assert first["id"] == again["id"] == later["id"] != other["id"]
    assert len(_runs_with_key(app)) == 2


async def test_a_create_cut_off_before_it_was_recorded_is_found_again_without_the_filter(tmp_path: Path) -> None:
    app = create_app(seed=False, metadata_filter=False)
    async with connect(tmp_path, app) as mcp:
        key = hashlib.sha256(f"{mcp.backend.identity}\0job-7".encode()).hexdigest()[:40]
        # As a crash would leave it: the run exists on Oz, the record only says a create had started.
        made = app.add_run("Fix it", "INPROGRESS", metadata={KEY_FIELD: key})
        async with Records(tmp_path / "oz" / "oz" / "idempotency").locked(key) as record:
            record.data["pending_since"] = app.clock.now().isoformat()
            record.save()
        run = await mcp.ok("spawn_agent", agent="fixer", prompt="Fix it", idempotency_key="job-7")
    assert run["id"] == made and _runs_with_key(app) == [made]


async def test_with_the_filter_a_key_used_by_another_server_is_found_on_oz(tmp_path: Path) -> None:
    app = create_app(seed=False)
    args = {"agent": "fixer", "prompt": "Fix it", "idempotency_key": "shared"}
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    async with connect(tmp_path / "a", app) as mcp:
        first = await mcp.ok("spawn_agent", **args)
    async with connect(tmp_path / "b", app) as mcp:  # another data dir: only Oz knows
        second = await mcp.ok("spawn_agent", **args)
    assert first["id"] == second["id"] and len(_runs_with_key(app)) == 1


# ---- events ------------------------------------------------------------------------------------
async def test_run_events_come_from_the_conversation_and_show_the_agents_answer(tmp_path: Path) -> None:
    app = create_app(seed=False)
    app.queue_script(script("SUCCEEDED", step_seconds=5))
    async with connect(tmp_path, app) as mcp:
        run = await mcp.ok("spawn_agent", agent="fixer", prompt="Explain token oz-7781")
        early = await mcp.ok("get_run_events", run_id=run["id"])
        assert (early["events"], early["next_after_seq"]) == ([], 0)  # no conversation while queued
        app.clock.advance(60)
        done = await mcp.ok("wait_for_run", run_id=run["id"], timeout_seconds=5)
        events = await mcp.ok("get_run_events", run_id=run["id"])
    assert done["state"] == "succeeded"
    assert [(e["kind"], e["text"]) for e in events["events"]] == [("user", "Explain token oz-7781"), ("assistant", 'You said: "Explain token oz-7781"')]
    assert events["next_after_seq"] is None and events["run_state"] == "succeeded"


async def test_where_the_conversation_is_not_available_the_transcript_is_the_event(tmp_path: Path) -> None:
    app = create_app(seed=False)
    run_id = app.add_run("Summarise the diff", "SUCCEEDED", config={"harness": {"type": "claude"}})
    async with connect(tmp_path, app) as mcp:
        (event,) = (await mcp.ok("get_run_events", run_id=run_id))["events"]
    assert event["kind"] == "transcript"
    assert event["text"] == 'user: Summarise the diff\nassistant: You said: "Summarise the diff"\n'


async def test_follow_ups_pass_a_mode_and_their_answers_join_the_events(tmp_path: Path) -> None:
    app = create_app(seed=False)
    run_id = app.add_run("Refactor the parser", "INPROGRESS", hold=True)
    async with connect(tmp_path, app) as mcp:
        await mcp.ok("send_followup", run_id=run_id, message="/plan split it into two modules")
        await mcp.ok("send_followup", run_id=run_id, message="and keep the tests green")
        refused = await mcp.error("send_followup", run_id=run_id, message="/orchestrate")
        events = (await mcp.ok("get_run_events", run_id=run_id, after_seq=2))["events"]
    assert [(f["message"], f["mode"]) for f in app.followups(run_id)] == [("split it into two modules", "plan"), ("and keep the tests green", "normal")]
    assert refused["code"] == "invalid_argument"
    assert [e["text"] for e in events] == [
        "split it into two modules",
        'You said: "split it into two modules" (mode plan)',
        "and keep the tests green",
        'You said: "and keep the tests green"',
    ]


# ---- artifacts ---------------------------------------------------------------------------------
async def test_a_plans_content_and_a_files_bytes_download_from_the_run(tmp_path: Path) -> None:
    app = create_app(seed=False)
    run_id = app.add_run("Plan the work", "SUCCEEDED")
    plan = app.add_artifact(run_id, "PLAN", content="# Plan\n\n1. Read\n2. Write\n")
    report = app.add_artifact(run_id, "FILE", content="all green\n", filepath="out/report.md")
    app.add_artifact(run_id, "PULL_REQUEST")
    async with connect(tmp_path, app) as mcp:
        run = await mcp.ok("get_run", run_id=run_id)
        paths = {a["kind"]: a["data"].get("path") for a in run["artifacts"]}
        root = await mcp.ok("list_session_files", run_id=run_id)
        listed = await mcp.ok("list_session_files", run_id=run_id, path="artifacts")
        plan_file = await mcp.file(run_id=run_id, path=f"artifacts/{plan}")
        report_file = await mcp.file(run_id=run_id, path=f"artifacts/{report}")
        missing = await mcp.error("download_session_file", run_id=run_id, path="artifacts/nope")
    assert paths == {"plan": f"artifacts/{plan}", "file": f"artifacts/{report}", "pull_request": None}
    assert [(f["path"], f["is_dir"]) for f in root["files"]] == [("artifacts", True)]
    assert {f["path"] for f in listed["files"]} == {f"artifacts/{plan}", f"artifacts/{report}"}
    assert (plan_file["text"], plan_file["mime_type"]) == ("# Plan\n\n1. Read\n2. Write\n", "text/markdown")
    assert (report_file["text"], report_file["size"]) == ("all green\n", 10)
    assert missing["code"] == "not_found"


@pytest.mark.parametrize("max_bytes", [4])
async def test_a_long_plan_is_cut_at_max_bytes_and_says_so(tmp_path: Path, max_bytes: int) -> None:
    app = create_app(seed=False)
    run_id = app.add_run("Plan", "SUCCEEDED")
    plan = app.add_artifact(run_id, "PLAN", content="abcdefgh")
    async with connect(tmp_path, app) as mcp:
        cut = await mcp.file(run_id=run_id, path=f"artifacts/{plan}", max_bytes=max_bytes)
    assert (cut["text"], cut["size"], cut["truncated"]) == ("abcd", 8, True)


async def test_two_servers_sharing_a_data_dir_make_one_run_for_a_key_sent_at_once(tmp_path: Path) -> None:
    """Two agentdeck processes, the same key at the same moment, a slow create: the file lock makes the second wait and reuse."""
    app = create_app(seed=False, metadata_filter=False)
    app.faults.add(Fault(delay=1.0, method="POST", path="/api/v1/agent/runs", times=2))
    ids: list[str] = []
    with serve_in_thread(app) as url:
        (tmp_path / "agentdeck.toml").write_text(f'default = "oz"\n[backends.oz]\nkind = "oz"\nbase_url = "{url}/api/v1"\n')
        env = server_env(tmp_path, WARP_API_KEY="wk-two")

        async def spawn() -> None:
            async with Client(stdio_params(env)) as client:
                ids.append((await call(client, "spawn_agent", {"agent": "fixer", "prompt": "Fix it", "idempotency_key": "same"}))["id"])

        with anyio.fail_after(60):
            async with anyio.create_task_group() as tg:
                tg.start_soon(spawn)
                tg.start_soon(spawn)
    assert len(ids) == 2 and ids[0] == ids[1]
    assert _runs_with_key(app) == [ids[0]]
