"""The Oz backend, driven through a real MCP client session against the Oz emulator.

Every tool call goes Client -> agentdeck server -> OzBackend -> httpx2 -> emulator. Run states
move only with the emulator clock (`app.clock.advance`); nothing in these tests sleeps.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx2
import pytest

from agentdeck.config import load_config
from tests.emulators.faults import Fault
from tests.emulators.oz import ENVIRONMENT_UID, SKILL_ID, create_app, script
from tests.emulators.oz_state import Step
from tests.emulators.serving import serve_in_thread
from tests.helpers import ToolSession, tool_session

KEY = "wk-test-secret-value-7c3e"
NAME = "oz"
RUNS = "/api/v1/agent/runs"


def _config(tmp_path: Path, base_url: str, extra: str = "", env: dict[str, str] | None = None) -> Any:
    path = tmp_path / "c.toml"
    path.write_text(f'default = "{NAME}"\n\n[backends.{NAME}]\nkind = "oz"\nbase_url = "{base_url}"\n{extra}')
    return load_config(path=path, env={"WARP_API_KEY": KEY, "AGENTDECK_DATA_DIR": str(tmp_path)} if env is None else env)


@contextlib.asynccontextmanager
async def connect(tmp_path: Path, app: Any, extra: str = "", env: dict[str, str] | None = None,
                  base_url: str = "http://testserver/api/v1", transport: bool = True) -> AsyncIterator[ToolSession]:
    config = _config(tmp_path, base_url, extra, env)
    transports = {NAME: httpx2.ASGITransport(app=app)} if transport else None
    async with tool_session(config, transports=transports, never_shown=(KEY,)) as session:
        yield session


@pytest.fixture
def app() -> Any:
    return create_app(seed=False)


@pytest.fixture
def seeded() -> Any:
    return create_app()


# ---- spawn and agents ---------------------------------------------------------------------------
async def test_spawn_agent_sends_title_config_name_typed_options_and_string_metadata(tmp_path: Path, seeded: Any) -> None:
    async with connect(tmp_path, seeded) as mcp:
        metadata = {"environment_id": ENVIRONMENT_UID, "model_id": "claude-4-5-sonnet", "mode": "plan",
                    "ticket_id": "ENG-9", "attempt": 2}
        run = await mcp.ok("spawn_agent", agent="fixer", prompt="Fix the login bug", name="Login fix", metadata=metadata)
    assert (run["state"], run["platform_state"], run["agent"], run["name"]) == ("queued", "QUEUED", "fixer", "Login fix")
    assert run["metadata"]["ticket_id"] == "ENG-9" and run["metadata"]["attempt"] == "2"
    assert run["metadata"]["oz"]["environment_id"] == ENVIRONMENT_UID and run["metadata"]["oz"]["source"] == "API"
    wire = seeded.get_run(run["id"])
    assert wire["agent_config"] == {"name": "fixer", "environment_id": ENVIRONMENT_UID, "model_id": "claude-4-5-sonnet"}
    assert wire["metadata"] == {"ticket_id": "ENG-9", "attempt": "2"} and "skill_spec" not in wire["agent_config"]
    assert seeded.oz.runs[run["id"]].request["mode"] == "plan"


async def test_list_agents_returns_each_skill_and_spawning_one_by_name_sends_its_skill(tmp_path: Path, seeded: Any) -> None:
    async with connect(tmp_path, seeded) as mcp:
        agents = (await mcp.ok("list_agents"))["agents"]
        assert [a["name"] for a in agents] == ["code-review"] and SKILL_ID in agents[0]["description"]
        by_name = await mcp.ok("spawn_agent", agent="code-review", prompt="Review PR #50")
        by_spec = await mcp.ok("spawn_agent", agent=SKILL_ID, prompt="Review PR #51")
    for run in (by_name, by_spec):
        assert run["agent"] == "code-review" and run["metadata"]["oz"]["skill"] == SKILL_ID
        assert seeded.get_run(run["id"])["agent_config"]["skill_spec"] == SKILL_ID


async def test_agent_with_several_variants_is_listed_per_skill_spec_and_a_bare_name_is_refused(tmp_path: Path, seeded: Any) -> None:
    other = "acme/web:.agents/skills/code-review/SKILL.md"
    seeded.add_agent("code-review", other, description="Reviews web changes")
    async with connect(tmp_path, seeded) as mcp:
        names = [a["name"] for a in (await mcp.ok("list_agents"))["agents"]]
        refused = await mcp.error("spawn_agent", agent="code-review", prompt="Review")
        run = await mcp.ok("spawn_agent", agent=other, prompt="Review the web change")
    assert names == [SKILL_ID, other]
    assert refused["code"] == "invalid_argument" and other in refused["message"]
    assert seeded.get_run(run["id"])["agent_config"]["skill_spec"] == other


async def test_spawn_agent_refuses_workspace_ttl_and_reserved_or_badly_typed_metadata(tmp_path: Path, app: Any) -> None:
    async with connect(tmp_path, app) as mcp:
        for extra in ({"workspace": "repo"}, {"ttl_seconds": 60}, {"metadata": {"agentdeck_idempotency_key": "x"}},
                      {"metadata": {"oz": {}}}, {"metadata": {"model_id": 3}}, {"metadata": {"mode": "fast"}}):
            error = await mcp.error("spawn_agent", agent="fixer", prompt="x", **extra)
            assert error["code"] == "invalid_argument", extra
    assert app.oz.runs == {}


async def test_spawn_agent_with_the_same_idempotency_key_returns_the_first_run(tmp_path: Path, app: Any) -> None:
    async with connect(tmp_path, app) as mcp:
        first = await mcp.ok("spawn_agent", agent="fixer", prompt="Fix it", idempotency_key="req-1")
        app.clock.advance(10)
        again = await mcp.ok("spawn_agent", agent="fixer", prompt="Fix it", idempotency_key="req-1")
        child = await mcp.ok("spawn_agent", agent="fixer", prompt="Sub task", parent_run_id=first["id"])
        other = await mcp.ok("spawn_agent", agent="fixer", prompt="Fix it", idempotency_key="req-2")
        repeat_after_child = await mcp.ok("spawn_agent", agent="fixer", prompt="Fix it", idempotency_key="req-1")
    assert again["id"] == repeat_after_child["id"] == first["id"] and again["platform_state"] == "PENDING"
    assert len({first["id"], child["id"], other["id"]}) == 3 and len(app.oz.runs) == 3
    assert "agentdeck_idempotency_key" not in first["metadata"]
    assert "agentdeck_idempotency_key" in app.get_run(first["id"])["metadata"]


async def test_child_runs_record_their_parent_and_list_runs_filters_direct_children(tmp_path: Path, app: Any) -> None:
    async with connect(tmp_path, app) as mcp:
        parent = await mcp.ok("spawn_agent", agent="lead", prompt="Orchestrate")
        child = await mcp.ok("spawn_agent", agent="worker", prompt="Part 1", parent_run_id=parent["id"])
        await mcp.ok("spawn_agent", agent="worker", prompt="Part 1a", parent_run_id=child["id"])
        await mcp.ok("spawn_agent", agent="worker", prompt="Unrelated")
        page = await mcp.ok("list_runs", parent_run_id=parent["id"])
        unknown = await mcp.error("spawn_agent", agent="worker", prompt="x", parent_run_id="no-such-run")
    assert child["parent_run_id"] == parent["id"]
    assert [r["id"] for r in page["runs"]] == [child["id"]]
    assert unknown["code"] == "invalid_argument" and "invalid_request" in unknown["message"]


# ---- runs: wait, states, list ---------------------------------------------------------------------
async def test_wait_for_run_reports_oz_progress_until_the_run_succeeds(tmp_path: Path, app: Any) -> None:
    messages: list[str] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        messages.append(message or "")
        app.clock.advance(20)  # each poll finds the run two lifecycle steps further

    async with connect(tmp_path, app) as mcp:
        run = await mcp.ok("spawn_agent", agent="fixer", prompt="Refactor the db layer")
        result = await mcp.call("wait_for_run", progress=on_progress, run_id=run["id"], timeout_seconds=50)
    done = result.structured_content
    assert not result.is_error and (done["state"], done["platform_state"]) == ("succeeded", "SUCCEEDED")
    assert [m.split("(Oz ")[1].rstrip(")") for m in messages] == ["QUEUED", "CLAIMED"]
    assert messages[0] == f"run {run['id']} is queued (Oz QUEUED)"
    assert done["session_link"] and done["ended_at"] and done["started_at"] and done["thread_id"]
    assert done["usage"]["run_time"] == "PT10S" and "inference_cost" in done["usage"]


async def test_wait_for_run_returns_the_run_as_it_stands_when_time_is_up(tmp_path: Path, app: Any) -> None:
    run_id = app.add_run("long job", "BLOCKED", message="Waiting for approval to push")
    async with connect(tmp_path, app) as mcp:
        run = await mcp.ok("wait_for_run", run_id=run_id, timeout_seconds=0)
    assert (run["state"], run["platform_state"]) == ("waiting", "BLOCKED")
    assert run["metadata"]["oz"]["status_message"] == "Waiting for approval to push" and run["error"] is None


@pytest.mark.parametrize(("oz_state", "state"), [
    ("QUEUED", "queued"), ("PENDING", "queued"), ("CLAIMED", "queued"), ("INPROGRESS", "running"), ("BLOCKED", "waiting"),
    ("SUCCEEDED", "succeeded"), ("FAILED", "failed"), ("ERROR", "failed"), ("CANCELLED", "cancelled"),
])
async def test_each_oz_state_maps_to_its_normalized_state(tmp_path: Path, app: Any, oz_state: str, state: str) -> None:
    run_id = app.add_run("x", oz_state, hold=True)
    async with connect(tmp_path, app) as mcp:
        run = await mcp.ok("get_run", run_id=run_id)
    assert (run["state"], run["platform_state"]) == (state, oz_state)
    assert (run["ended_at"] is not None) == (state in ("succeeded", "failed", "cancelled"))


async def test_failed_and_error_runs_carry_the_status_code_message_and_retryable_flag(tmp_path: Path, app: Any) -> None:
    failed = app.add_run("a", "FAILED", message="No credits left", error_code="insufficient_credits")
    errored = app.add_run("b", "ERROR")
    bare = app.add_run("c", steps=[Step("FAILED", message="Something broke")])
    async with connect(tmp_path, app) as mcp:
        runs = [await mcp.ok("get_run", run_id=r) for r in (failed, errored, bare)]
        text = (await mcp.call("get_run", run_id=failed)).content[0].text
    assert runs[0]["error"] == {"code": "insufficient_credits", "message": "No credits left", "retryable": False}
    assert runs[1]["error"]["code"] == "internal_error" and runs[1]["error"]["retryable"] is True
    assert runs[2]["error"] == {"code": "failed", "message": "Something broke", "retryable": False}
    assert "failed [FAILED], insufficient_credits: No credits left" in text


async def test_list_runs_pages_newest_first_through_every_run(tmp_path: Path, app: Any) -> None:
    ids = [app.add_run(f"task {i}", "SUCCEEDED", created_ago=100 - i) for i in range(7)]
    async with connect(tmp_path, app) as mcp:
        seen, cursor, pages = [], None, 0
        while True:
            page = await mcp.ok("list_runs", limit=3, **({"cursor": cursor} if cursor else {}))
            seen += [r["id"] for r in page["runs"]]
            pages, cursor = pages + 1, page["next_cursor"]
            if cursor is None:
                break
    assert seen == ids[::-1] and pages == 3


async def test_list_runs_state_filter_sends_every_oz_state_of_that_state_across_pages(tmp_path: Path, app: Any) -> None:
    queued = {app.add_run(s, s, hold=True, created_ago=i) for i, s in enumerate(("QUEUED", "PENDING", "CLAIMED"))}
    failed = {app.add_run("f", "FAILED"), app.add_run("e", "ERROR")}
    app.add_run("r", "INPROGRESS", hold=True)
    app.add_run("b", "BLOCKED")
    async with connect(tmp_path, app) as mcp:
        first = await mcp.ok("list_runs", state="queued", limit=2)
        second = await mcp.ok("list_runs", state="queued", limit=2, cursor=first["next_cursor"])
        failed_page = await mcp.ok("list_runs", state="failed")
        waiting = await mcp.ok("list_runs", state="waiting")
    assert len(first["runs"]) == 2 and second["next_cursor"] is None
    assert {r["id"] for r in first["runs"] + second["runs"]} == queued
    assert {r["id"] for r in failed_page["runs"]} == failed
    assert [r["platform_state"] for r in waiting["runs"]] == ["BLOCKED"]


async def test_list_runs_filters_by_agent_name_skill_and_created_after(tmp_path: Path, seeded: Any) -> None:
    async with connect(tmp_path, seeded) as mcp:
        new = await mcp.ok("spawn_agent", agent="fixer", prompt="Fix it")
        by_name = await mcp.ok("list_runs", agent="fixer")
        by_skill = await mcp.ok("list_runs", agent=SKILL_ID)
        recent = await mcp.ok("list_runs", created_after="2026-05-01T11:59:00")
    assert [r["id"] for r in by_name["runs"]] == [new["id"]]
    assert [r["agent"] for r in by_skill["runs"]] == ["code-review"]
    assert [r["id"] for r in recent["runs"]] == [new["id"]]


# ---- follow-ups and cancel ------------------------------------------------------------------------
async def test_send_followup_resumes_a_blocked_run_in_normal_mode(tmp_path: Path, app: Any) -> None:
    run_id = app.add_run("needs approval", "BLOCKED")
    async with connect(tmp_path, app) as mcp:
        run = await mcp.ok("send_followup", run_id=run_id, message="Approved, go ahead")
        app.clock.advance(60)
        done = await mcp.ok("get_run", run_id=run_id)
        missing = await mcp.error("send_followup", run_id="00000000-0000-4000-8000-000000000000", message="hi")
    assert run["id"] == run_id and (run["state"], run["platform_state"]) == ("running", "INPROGRESS")
    assert done["state"] == "succeeded" and missing["code"] == "not_found"
    assert [(f["message"], f["mode"], f["state"]) for f in app.followups(run_id)] == [("Approved, go ahead", "normal", "BLOCKED")]


async def test_cancel_run_cancels_an_active_run(tmp_path: Path, app: Any) -> None:
    run_id = app.add_run("cancel me", "INPROGRESS")
    async with connect(tmp_path, app) as mcp:
        run = await mcp.ok("cancel_run", run_id=run_id)
    assert (run["state"], run["platform_state"]) == ("cancelled", "CANCELLED")


@pytest.mark.parametrize("oz_state", ["SUCCEEDED", "FAILED", "ERROR", "CANCELLED", "BLOCKED"])
async def test_cancel_of_finished_or_blocked_run_returns_conflict_saying_it_ended(tmp_path: Path, app: Any, oz_state: str) -> None:
    run_id = app.add_run("done", oz_state)
    async with connect(tmp_path, app) as mcp:
        error = await mcp.error("cancel_run", run_id=run_id)
    assert error["code"] == "conflict" and error["retryable"] is False
    assert "already ended" in error["message"] and "invalid_request" in error["message"]


async def test_cancel_of_pending_run_returns_retryable_conflict(tmp_path: Path, app: Any) -> None:
    run_id = app.add_run("preparing", "PENDING", hold=True)
    async with connect(tmp_path, app) as mcp:
        error = await mcp.error("cancel_run", run_id=run_id)
    assert error["code"] == "conflict" and error["retryable"] is True and "PENDING" in error["message"]
    assert app.faults.count("POST", f"{RUNS}/{run_id}/cancel") == 1


@pytest.mark.parametrize("fields", [{"source": "GITHUB_ACTION"}, {"source": "LOCAL"}, {"config": {"worker_host": "my-runner"}}])
async def test_cancel_of_run_outside_the_cloud_returns_unsupported(tmp_path: Path, app: Any, fields: dict[str, Any]) -> None:
    run_id = app.add_run("elsewhere", "INPROGRESS", hold=True, **fields)
    async with connect(tmp_path, app) as mcp:
        error = await mcp.error("cancel_run", run_id=run_id)
    assert error["code"] == "unsupported" and "operation_not_supported" in error["message"]


async def test_cancel_and_get_of_unknown_run_return_not_found(tmp_path: Path, app: Any) -> None:
    async with connect(tmp_path, app) as mcp:
        for tool in ("cancel_run", "get_run"):
            error = await mcp.error(tool, run_id="../../agent")
            assert error["code"] == "not_found" and "resource_not_found" in error["message"]


# ---- artifacts and session files ------------------------------------------------------------------
async def test_artifacts_usage_and_session_link_are_kept_in_the_run(tmp_path: Path, app: Any) -> None:
    run_id = app.add_run("ship it", "SUCCEEDED")
    for kind in ("PLAN", "PULL_REQUEST", "SCREENSHOT", "FILE", "EXTERNAL_REFERENCE"):
        app.add_artifact(run_id, kind)
    async with connect(tmp_path, app) as mcp:
        run = await mcp.ok("get_run", run_id=run_id)
    artifacts = {a["kind"]: a for a in run["artifacts"]}
    assert list(artifacts) == ["plan", "pull_request", "screenshot", "file", "external_reference"]
    assert artifacts["pull_request"]["url"] == "https://github.com/acme/backend/pull/42"
    assert artifacts["pull_request"]["name"].startswith("oz/")
    assert artifacts["plan"]["name"] == "Implementation plan" and artifacts["plan"]["url"]
    assert artifacts["file"]["name"] == "out/report.md" and artifacts["file"]["data"]["size_bytes"] > 0
    assert artifacts["screenshot"]["data"]["mime_type"] == "image/png"
    assert run["session_link"].startswith("https://app.warp.dev/session/") and "platform_cost" in run["usage"]


class _HeaderRecorder:
    """ASGI wrapper that remembers the headers of each request, to see what reached storage."""

    def __init__(self, app: Any) -> None:
        self.app, self.seen = app, []

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            self.seen.append((scope["path"], {k.decode().lower(): v.decode() for k, v in scope["headers"]}))
        await self.app(scope, receive, send)


async def test_handoff_attachments_are_listed_and_downloaded_as_read_only_session_files(tmp_path: Path, app: Any) -> None:
    done = app.add_run("make a snapshot", "SUCCEEDED")
    app.add_handoff_attachment(done, "notes/summary.md", "# Summary\n\nAll green.\n", "text/markdown")
    app.add_handoff_attachment(done, "snapshot.tar.gz", b"\x1f\x8b\x08\x00binary", "application/gzip")
    running = app.add_run("still going", "INPROGRESS", hold=True)
    app.add_handoff_attachment(running, "later.md", "not yet")
    recorder = _HeaderRecorder(app)
    async with connect(tmp_path, recorder) as mcp:
        home = await mcp.ok("list_session_files", run_id=done)
        notes = await mcp.ok("list_session_files", run_id=done, path="notes")
        text = await mcp.file(run_id=done, path="notes/summary.md")
        cut = await mcp.file(run_id=done, path="notes/summary.md", max_bytes=9)
        binary = await mcp.file(run_id=done, path="snapshot.tar.gz")
        not_yet = await mcp.ok("list_session_files", run_id=running)
        missing = await mcp.error("download_session_file", run_id=done, path="missing.txt")
        nowhere = await mcp.error("list_session_files", run_id=done, path="nowhere")
        upload = await mcp.call("upload_session_file", run_id=done, path="x.txt", content="hi")
    assert [(f["path"], f["is_dir"]) for f in home["files"]] == [("notes", True), ("snapshot.tar.gz", False)]
    assert [f["path"] for f in notes["files"]] == ["notes/summary.md"] and notes["path"] == "notes"
    assert (text["text"], text["size"], text["truncated"], text["mime_type"]) == ("# Summary\n\nAll green.\n", 22, False, "text/markdown")
    assert (cut["text"], cut["size"], cut["truncated"]) == ("# Summary", 22, True)
    assert binary["text"] is None and binary["base64"] == "H4sIAGJpbmFyeQ==" and binary["mime_type"] == "application/gzip"
    assert not_yet["files"] == [] and missing["code"] == nowhere["code"] == "not_found"
    assert "summary.md" in missing["message"]
    assert upload.structured_content["code"] == "not_found"  # no FILE_WRITE: the tool is not registered
    storage = [headers for path, headers in recorder.seen if path.startswith("/storage/")]
    assert len(storage) == 3 and all("authorization" not in h for h in storage)
    api = [headers for path, headers in recorder.seen if path.startswith("/api/v1/")]
    assert api and all(h["authorization"] == f"Bearer {KEY}" for h in api)


async def test_oz_backend_declares_files_but_not_file_writes(tmp_path: Path, app: Any) -> None:
    async with connect(tmp_path, app) as mcp:
        tools = {t.name for t in (await mcp.client.list_tools()).tools}
        caps = set(mcp.backend.capabilities)
    assert {"spawn_agent", "list_agents", "list_runs", "get_run", "wait_for_run", "get_run_events", "send_followup", "cancel_run",
            "list_session_files", "download_session_file"} <= tools
    assert not tools & {"upload_session_file", "delete_session_file", "delete_session"}
    assert {c.value for c in caps} == {"agents", "runs", "run_cancel", "run_followup", "run_events", "files"}


# ---- errors, auth, faults --------------------------------------------------------------------------
@pytest.mark.parametrize(("oz_code", "code", "retryable"), [
    ("invalid_request", "invalid_argument", False),
    ("content_policy_violation", "invalid_argument", False),
    ("authentication_required", "unauthorized", False),
    ("not_authorized", "unauthorized", False),
    ("insufficient_credits", "unavailable", False),
    ("budget_exceeded", "unavailable", False),
    ("feature_not_available", "unsupported", False),
    ("operation_not_supported", "unsupported", False),
    ("resource_not_found", "not_found", False),
    ("conflict", "conflict", True),
    ("resource_unavailable", "rate_limited", True),
    ("environment_setup_failed", "unavailable", False),
    ("internal_error", "unavailable", True),
])
async def test_problem_codes_map_to_agentdeck_codes_naming_the_code_and_keeping_retryable(
        tmp_path: Path, app: Any, oz_code: str, code: str, retryable: bool) -> None:
    app.queue_error(oz_code, method="GET", path="/agent/runs", times=5, detail="injected")
    async with connect(tmp_path, app, extra="max_retries = 0") as mcp:
        error = await mcp.error("list_runs")
    assert (error["code"], error["retryable"]) == (code, retryable)
    assert f"error code {oz_code}" in error["message"] and "injected" in error["message"]


async def test_retryable_member_of_the_problem_overrides_the_default(tmp_path: Path, app: Any) -> None:
    app.queue_error("conflict", method="GET", path="/agent/runs", retryable=False)
    app.queue_error("internal_error", method="GET", path="/agent", retryable=False)
    async with connect(tmp_path, app, extra="max_retries = 0") as mcp:
        conflict = await mcp.error("list_runs")
        failed = await mcp.error("list_agents")
    assert (conflict["code"], conflict["retryable"]) == ("conflict", False)
    assert (failed["code"], failed["retryable"]) == ("unavailable", False)


async def test_docs_style_problem_types_and_external_auth_links_are_understood(tmp_path: Path) -> None:
    app = create_app(seed=False, docs_style_errors=True)
    app.queue_error("external_authentication_required", method="GET", path="/agent/runs",
                    auth_url="https://app.warp.dev/oauth/github")
    app.queue_error("resource_not_found", method="GET", path="/agent/runs")
    async with connect(tmp_path, app) as mcp:
        auth = await mcp.error("list_runs")
        missing = await mcp.error("list_runs")
    assert auth["code"] == "unauthorized" and "https://app.warp.dev/oauth/github" in auth["message"]
    assert "error code external_authentication_required" in auth["message"]
    assert missing["code"] == "not_found" and "error code resource_not_found" in missing["message"]


async def test_missing_api_key_is_reported_as_unauthorized_without_calling_oz(tmp_path: Path, app: Any) -> None:
    async with connect(tmp_path, app, env={"AGENTDECK_DATA_DIR": str(tmp_path)}) as mcp:
        error = await mcp.error("list_runs")
    assert error["code"] == "unauthorized" and "WARP_API_KEY" in error["message"] and app.faults.requests == []


async def test_a_key_oz_refuses_and_a_custom_key_variable_are_honoured(tmp_path: Path) -> None:
    app = create_app(seed=False, api_keys=["wk-other-key"])
    env = {"MY_WARP_KEY": "wk-other-key", "WARP_API_KEY": KEY, "AGENTDECK_DATA_DIR": str(tmp_path)}
    async with connect(tmp_path, app, env=env) as mcp:
        refused = await mcp.error("list_runs")
    async with connect(tmp_path, app, extra='api_key_env = "MY_WARP_KEY"', env=env) as mcp:
        assert (await mcp.ok("list_runs"))["runs"] == []
    assert refused["code"] == "unauthorized" and "authentication_required" in refused["message"]


async def test_injected_429_with_retry_after_on_a_read_is_retried_and_succeeds(tmp_path: Path, app: Any) -> None:
    run_id = app.add_run("x", "INPROGRESS", hold=True)
    app.faults.add(Fault(status=429, retry_after=0.01, method="GET", path=f"{RUNS}/{run_id}"))
    async with connect(tmp_path, app) as mcp:
        run = await mcp.ok("get_run", run_id=run_id)
    assert run["state"] == "running" and app.faults.count("GET", f"{RUNS}/{run_id}") == 2


async def test_500_on_spawn_is_not_retried_and_says_how_to_retry_safely(tmp_path: Path, app: Any) -> None:
    app.faults.add(Fault(status=500, method="POST", path=RUNS, times=3))
    async with connect(tmp_path, app) as mcp:
        error = await mcp.error("spawn_agent", agent="fixer", prompt="x", idempotency_key="k-1")
    assert error["code"] == "unavailable" and error["retryable"] is True and "idempotency_key" in error["message"]
    assert app.faults.count("POST", RUNS) == 1 and app.oz.runs == {}


async def test_api_key_never_reaches_a_tool_result_even_when_oz_echoes_it(tmp_path: Path, app: Any) -> None:
    app.queue_error("invalid_request", method="GET", path="/agent/runs", detail=f"bad token {KEY}")
    async with connect(tmp_path, app) as mcp:  # connect() checks every result for the key
        error = await mcp.error("list_runs")
        await mcp.ok("spawn_agent", agent="fixer", prompt="x")
    assert "[redacted]" in error["message"]


# ---- over a real loopback port ---------------------------------------------------------------------
async def test_spawn_wait_and_download_over_a_real_port(tmp_path: Path, app: Any) -> None:
    app.queue_script(script("SUCCEEDED", step_seconds=1))
    with serve_in_thread(app) as root:
        async with connect(tmp_path, app, base_url=f"{root}/api/v1", transport=False) as mcp:
            run = await mcp.ok("spawn_agent", agent="fixer", prompt="Fix it over TCP")
            app.clock.advance(60)
            app.add_handoff_attachment(run["id"], "result.txt", "done")
            done = await mcp.ok("wait_for_run", run_id=run["id"], timeout_seconds=5)
            listed = await mcp.ok("list_runs", state="succeeded")
            content = await mcp.file(run_id=run["id"], path="result.txt")
    assert done["state"] == "succeeded" and [r["id"] for r in listed["runs"]] == [run["id"]]
    assert content["text"] == "done"
    assert app.faults.connections  # real TCP connections reached the emulator
