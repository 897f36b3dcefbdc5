"""The Azure AI Foundry backend, driven through a real MCP client session against the emulator.

Most tests bind the adapter to the emulator in-process (httpx2.ASGITransport); one goes over a
loopback port. The Entra ID tests run azure-identity's real DefaultAzureCredential, narrowed to
its Azure CLI credential (AZURE_TOKEN_CREDENTIALS) with a stand-in `az` on PATH, so no network
is touched.
"""

from __future__ import annotations

import base64
import json
import stat
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx2
import pytest
from mcp import Client
from mcp.types import CallToolResult

from agentdeck.app import build_server
from agentdeck.backends import Deck
from agentdeck.backends.azure_foundry import MAX_UPLOAD_BYTES
from agentdeck.config import load_config
from tests.emulators import azure_foundry
from tests.emulators.faults import Fault
from tests.emulators.serving import serve_in_thread
from tests.helpers import file_result

AGENT = azure_foundry.DEFAULTS["agent"]
VERSION = azure_foundry.DEFAULTS["agent_version"]
SEED = f"{AGENT}:{azure_foundry.DEFAULTS['session']}"
TOKEN = "test-secret-value"
UPLOAD_LIMIT = 4096
ENDPOINT = "http://foundry.test/api/projects/_project"
SESSIONS = f"/api/projects/_project/agents/{AGENT}/endpoint/sessions"
FILE_TOOLS = ("list_session_files", "download_session_file", "upload_session_file", "delete_session_file")


@pytest.fixture
def app() -> Any:
    return azure_foundry.create_app(max_upload_bytes=UPLOAD_LIMIT)


@asynccontextmanager
async def _connect(
    tmp_path: Path,
    app: Any,
    *,
    endpoint: str = ENDPOINT,
    env: dict[str, str] | None = None,
    extra: str = "",
    in_process: bool = True,
) -> AsyncIterator[Client]:
    config_file = tmp_path / "c.toml"
    config_file.write_text(
        f'default = "azure"\n[backends.azure]\nkind = "azure_foundry"\nendpoint = "{endpoint}"\nmax_retries = 2\n{extra}',
        encoding="utf-8",
    )
    variables = {"AZURE_FOUNDRY_TOKEN": TOKEN} if env is None else env
    cfg = load_config(path=config_file, env={**variables, "AGENTDECK_DATA_DIR": str(tmp_path)})
    transports = {"azure": httpx2.ASGITransport(app=app)} if in_process else None
    deck = Deck.from_config(cfg, transports=transports)
    try:
        async with Client(build_server(cfg, deck)) as client:
            yield client
    finally:
        await deck.aclose()


def _ok(result: CallToolResult) -> dict[str, Any]:
    assert not result.is_error, result.content[0].text
    return result.structured_content


def _error(result: CallToolResult, code: str) -> str:
    assert result.is_error, result.structured_content
    assert result.structured_content["code"] == code, result.structured_content
    assert result.content[0].text.startswith(f"{code}: ")
    return result.structured_content["message"]


def _requests(app: Any, method: str | None = None, suffix: str = "") -> list[dict[str, Any]]:
    return [r for r in app.request_log if (method is None or r["method"] == method) and r["path"].endswith(suffix)]


# -- tools and spawning ---------------------------------------------------------------------


async def test_backend_registers_session_turn_and_file_tools_with_delete_session_destructive(tmp_path: Path, app: Any) -> None:
    async with _connect(tmp_path, app) as client:
        tools = {t.name: t for t in (await client.list_tools()).tools}
        assert {"spawn_agent", "list_runs", "get_run", "cancel_run", "send_followup", "get_run_events", "delete_session", *FILE_TOOLS} <= set(tools)
        assert not {"claim_task", "send_channel_message"} & set(tools)
        # A hint left out takes the MCP default, and destructiveHint's default is true.
        assert tools["delete_session"].annotations.destructive_hint in (True, None)
        assert tools["delete_session_file"].annotations.destructive_hint in (True, None)
        assert tools["upload_session_file"].annotations.destructive_hint is False
        assert tools["list_session_files"].annotations.read_only_hint is True
        assert tools["download_session_file"].annotations.read_only_hint is True
        assert set(tools["upload_session_file"].input_schema["properties"]["encoding"]["enum"]) == {"text", "base64"}


async def test_spawn_agent_creates_a_session_and_the_agent_answers_the_prompt_in_it(tmp_path: Path, app: Any) -> None:
    async with _connect(tmp_path, app) as client:
        run = _ok(await client.call_tool("spawn_agent", {"agent": f"{AGENT}:{VERSION}", "prompt": "summarise the repo"}))
        agent, _, session_id = run["id"].partition(":")
        assert (agent, run["agent"], run["backend"]) == (AGENT, AGENT, "azure")
        assert (run["state"], run["metadata"]["response_status"]) == ("succeeded", "completed")
        assert run["metadata"]["output"] == 'You said: "summarise the repo"'
        assert run["metadata"]["agent_version"] == VERSION
        assert app.session(AGENT, session_id)["version_indicator"] == {"type": "version_ref", "agent_version": VERSION}
        (turn,) = [r for r in app.foundry.responses.values() if r["session_id"] == session_id]
        assert turn["body"]["id"] == run["metadata"]["response_id"]
        (create,) = _requests(app, "POST", "/sessions")
        assert create["query"] == {"api-version": "v1"}
        assert create["headers"]["authorization"] == f"Bearer {TOKEN}"
        assert "x-ms-user-isolation-key" not in create["headers"]


async def test_followups_are_next_turns_chained_to_the_previous_response(tmp_path: Path, app: Any) -> None:
    async with _connect(tmp_path, app) as client:
        run = _ok(await client.call_tool("spawn_agent", {"agent": AGENT, "prompt": "first question"}))
        first_response = run["metadata"]["response_id"]
        after = _ok(await client.call_tool("send_followup", {"run_id": run["id"], "message": "second question"}))
        assert (after["id"], after["state"], after["metadata"]["turns"]) == (run["id"], "succeeded", 2)
        assert after["metadata"]["output"] == 'You said: "second question"'
        events = _ok(await client.call_tool("get_run_events", {"run_id": run["id"]}))["events"]
        assert [(e["kind"], e["text"]) for e in events] == [
            ("prompt", "first question"),
            ("response", 'You said: "first question"'),
            ("prompt", "second question"),
            ("response", 'You said: "second question"'),
        ]
        assert events[3]["data"]["previous_response_id"] == first_response
        page = _ok(await client.call_tool("get_run_events", {"run_id": run["id"], "after_seq": 1, "limit": 2}))
        assert ([e["seq"] for e in page["events"]], page["next_after_seq"]) == ([2, 3], 3)


async def test_a_prompt_the_agent_fails_leaves_a_failed_run_that_says_why(tmp_path: Path, app: Any) -> None:
    async with _connect(tmp_path, app) as client:
        app.faults.add(Fault(status=500, method="POST", path=f"/api/projects/_project/agents/{AGENT}/endpoint/protocols/openai/responses"))
        run = _ok(await client.call_tool("spawn_agent", {"agent": f"{AGENT}:1", "prompt": "go"}))
        assert run["state"] == "failed" and run["error"]["code"] == "response_failed"
        assert "500" in run["error"]["message"]
        assert app.faults.count("POST", f"/api/projects/_project/agents/{AGENT}/endpoint/protocols/openai/responses") == 1  # never sent twice
        again = _ok(await client.call_tool("send_followup", {"run_id": run["id"], "message": "try again"}))
        assert (again["state"], again["metadata"]["output"]) == ("succeeded", 'You said: "try again"')


async def test_spawn_agent_without_a_version_starts_the_latest_one(tmp_path: Path, app: Any) -> None:
    app.add_agent(AGENT, "2", "3")
    async with _connect(tmp_path, app) as client:
        run = _ok(await client.call_tool("spawn_agent", {"agent": AGENT, "prompt": "go"}))
        assert run["metadata"]["agent_version"] == "3"
        _error(await client.call_tool("spawn_agent", {"agent": "no-such-agent", "prompt": "go"}), "not_found")


async def test_session_names_outside_the_documented_rule_are_refused_before_any_request(tmp_path: Path, app: Any) -> None:
    async with _connect(tmp_path, app) as client:
        for bad in ("short", "has.dot-in-it", "x" * 129, "spaces are bad"):
            message = _error(await client.call_tool("spawn_agent", {"agent": f"{AGENT}:1", "prompt": "go", "name": bad}), "invalid_argument")
            assert "8-128" in message
        _error(await client.call_tool("get_run", {"run_id": f"{AGENT}:a.b.c.d.e"}), "invalid_argument")
        assert app.request_log == []


async def test_spawn_agent_of_an_unknown_version_returns_not_found(tmp_path: Path, app: Any) -> None:
    async with _connect(tmp_path, app) as client:
        message = _error(await client.call_tool("spawn_agent", {"agent": f"{AGENT}:99", "prompt": "go"}), "not_found")
        assert f"{AGENT}:99" in message


async def test_spawn_agent_refuses_arguments_sessions_do_not_take(tmp_path: Path, app: Any) -> None:
    async with _connect(tmp_path, app) as client:
        result = await client.call_tool("spawn_agent", {"agent": f"{AGENT}:1", "prompt": "go", "workspace": "w", "ttl_seconds": 60})
        assert "workspace, ttl_seconds" in _error(result, "invalid_argument")
        assert app.request_log == []


async def test_spawn_agent_name_becomes_the_session_id_and_a_reused_name_is_a_conflict(tmp_path: Path, app: Any) -> None:
    async with _connect(tmp_path, app) as client:
        run = _ok(await client.call_tool("spawn_agent", {"agent": f"{AGENT}:1", "prompt": "go", "name": "review-42"}))
        assert run["id"] == f"{AGENT}:review-42"
        again = await client.call_tool("spawn_agent", {"agent": f"{AGENT}:1", "prompt": "go", "name": "review-42"})
        assert "choose another name" in _error(again, "conflict")


async def test_spawn_agent_with_a_reused_idempotency_key_returns_the_first_session(tmp_path: Path, app: Any) -> None:
    async with _connect(tmp_path, app) as client:
        args = {"agent": f"{AGENT}:1", "prompt": "go", "idempotency_key": "job 7 / attempt 1"}
        first = _ok(await client.call_tool("spawn_agent", args))
        second = _ok(await client.call_tool("spawn_agent", args))
        assert first["id"] == second["id"] and second["metadata"]["output"] == 'You said: "go"'
        assert len(app.foundry.responses) == 1  # the prompt went to the agent once
        listed = _ok(await client.call_tool("list_runs", {"agent": AGENT}))
        assert len(listed["runs"]) == 2  # the seed session and one new one


async def test_list_agents_lists_the_projects_hosted_agents_from_the_platform(tmp_path: Path, app: Any) -> None:
    app.add_agent("reviewer", "1", "2")
    async with _connect(tmp_path, app) as client:
        agents = {a["name"]: a["description"] for a in _ok(await client.call_tool("list_agents", {}))["agents"]}
        assert set(agents) == {AGENT, "reviewer"}
        assert agents["reviewer"].endswith("latest version 2")
        assert _requests(app, "GET", "/agents")[0]["query"] == {"api-version": "v1", "kind": "hosted", "limit": "100"}


async def test_configured_agents_pin_a_version_and_give_bare_run_ids(tmp_path: Path, app: Any) -> None:
    app.add_agent(AGENT, "2")
    async with _connect(tmp_path, app, extra=f'agents = ["{AGENT}:{VERSION}"]\n') as client:
        (listed,) = _ok(await client.call_tool("list_agents", {}))["agents"]
        assert listed["name"] == AGENT and f"spawns version {VERSION}" in listed["description"]
        run = _ok(await client.call_tool("spawn_agent", {"agent": AGENT, "prompt": "go"}))
        assert run["metadata"]["agent_version"] == VERSION
        assert _ok(await client.call_tool("get_run", {"run_id": "seed-session"}))["id"] == SEED
        assert len(_ok(await client.call_tool("list_runs", {}))["runs"]) == 2


# -- runs -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "state"),
    [
        ("creating", "queued"),
        ("active", "running"),
        ("updating", "running"),
        ("idle", "waiting"),
        ("failed", "failed"),
        ("deleting", "cancelled"),
        ("deleted", "cancelled"),
        ("expired", "succeeded"),
    ],
)
async def test_get_run_maps_each_session_status_and_keeps_the_original(tmp_path: Path, app: Any, status: str, state: str) -> None:
    async with _connect(tmp_path, app) as client:
        app.set_session_status(AGENT, "seed-session", status)
        run = _ok(await client.call_tool("get_run", {"run_id": SEED}))
        assert (run["state"], run["platform_state"]) == (state, status)
        assert run["created_at"] == "2026-01-01T00:00:00Z"


async def test_session_state_follows_the_platform_clock_from_queued_to_waiting(tmp_path: Path, app: Any) -> None:
    async with _connect(tmp_path, app) as client:
        run_id = f"{AGENT}:{app.add_session(ready=False)['agent_session_id']}"
        assert _ok(await client.call_tool("get_run", {"run_id": run_id}))["state"] == "queued"
        app.clock.advance(5)
        assert _ok(await client.call_tool("get_run", {"run_id": run_id}))["state"] == "running"
        app.clock.advance(azure_foundry.DEFAULTS["idle_seconds"])
        idle = _ok(await client.call_tool("get_run", {"run_id": run_id}))
        assert (idle["state"], idle["platform_state"]) == ("waiting", "idle")
        assert "stopped_at" in idle["metadata"]


async def test_get_run_of_a_missing_session_returns_not_found(tmp_path: Path, app: Any) -> None:
    async with _connect(tmp_path, app) as client:
        _error(await client.call_tool("get_run", {"run_id": f"{AGENT}:no-such-session"}), "not_found")
        _error(await client.call_tool("get_run", {"run_id": "no-such-agent:seed-session"}), "not_found")


async def test_get_run_with_an_id_that_names_no_agent_returns_invalid_argument(tmp_path: Path, app: Any) -> None:
    async with _connect(tmp_path, app) as client:
        assert "'<agent>:<session id>'" in _error(await client.call_tool("get_run", {"run_id": "seed-session"}), "invalid_argument")
        _error(await client.call_tool("get_run", {"run_id": f"{AGENT}:../../x"}), "invalid_argument")
        assert app.request_log == []


async def test_wait_for_run_returns_a_failed_session_at_once(tmp_path: Path, app: Any) -> None:
    async with _connect(tmp_path, app) as client:
        app.set_session_status(AGENT, "seed-session", "failed")
        run = _ok(await client.call_tool("wait_for_run", {"run_id": SEED, "timeout_seconds": 30}))
        assert run["state"] == "failed"


async def test_list_runs_pages_newest_first_until_next_cursor_is_null(tmp_path: Path, app: Any) -> None:
    async with _connect(tmp_path, app) as client:
        created = []
        for _ in range(4):
            app.clock.advance(10)
            created.append(f"{AGENT}:{app.add_session()['agent_session_id']}")
        seen, cursor, pages = [], None, 0
        while True:
            args = {"agent": AGENT, "limit": 2, **({"cursor": cursor} if cursor else {})}
            page = _ok(await client.call_tool("list_runs", args))
            pages += 1
            seen += [r["id"] for r in page["runs"]]
            cursor = page["next_cursor"]
            if cursor is None:
                break
            assert cursor == page["runs"][-1]["id"].partition(":")[2]  # the last_id of the page
        assert seen == [*reversed(created), SEED]
        assert pages == 3
        assert [r["query"].get("after") for r in _requests(app, "GET", "/sessions")] == [None, seen[1].partition(":")[2], seen[3].partition(":")[2]]


async def test_list_runs_filters_by_state_and_creation_time(tmp_path: Path, app: Any) -> None:
    async with _connect(tmp_path, app) as client:
        app.clock.advance(100)
        failed = app.add_session()["agent_session_id"]
        app.set_session_status(AGENT, failed, "failed")
        app.clock.advance(100)
        newest = app.add_session()["agent_session_id"]
        only_failed = _ok(await client.call_tool("list_runs", {"agent": AGENT, "state": "failed"}))
        assert [r["id"] for r in only_failed["runs"]] == [f"{AGENT}:{failed}"]
        recent = _ok(await client.call_tool("list_runs", {"agent": AGENT, "created_after": "2026-01-01T00:02:00Z"}))
        assert [r["id"] for r in recent["runs"]] == [f"{AGENT}:{newest}"]
        assert recent["next_cursor"] is None
        assert _ok(await client.call_tool("list_runs", {"agent": f"{AGENT}:2"}))["runs"] == []
        assert _ok(await client.call_tool("list_runs", {"agent": AGENT, "parent_run_id": SEED}))["runs"] == []


async def test_list_runs_without_an_agent_returns_invalid_argument(tmp_path: Path, app: Any) -> None:
    async with _connect(tmp_path, app) as client:
        assert "per agent" in _error(await client.call_tool("list_runs", {}), "invalid_argument")


async def test_list_runs_of_an_unknown_agent_returns_not_found(tmp_path: Path, app: Any) -> None:
    async with _connect(tmp_path, app) as client:
        _error(await client.call_tool("list_runs", {"agent": "nobody"}), "not_found")


async def test_list_runs_with_a_foreign_cursor_returns_invalid_argument(tmp_path: Path, app: Any) -> None:
    async with _connect(tmp_path, app) as client:
        assert "omit it" in _error(await client.call_tool("list_runs", {"agent": AGENT, "cursor": "not-a-session"}), "invalid_argument")


async def test_cancel_run_stops_the_session_and_leaves_it_waiting(tmp_path: Path, app: Any) -> None:
    async with _connect(tmp_path, app) as client:
        run = _ok(await client.call_tool("cancel_run", {"run_id": SEED}))
        assert (run["state"], run["platform_state"]) == ("waiting", "idle")
        assert "stopped_at" in run["metadata"]
        assert len(_requests(app, "POST", "/seed-session:stop")) == 1


async def test_cancel_of_a_failed_session_returns_conflict_without_stopping(tmp_path: Path, app: Any) -> None:
    async with _connect(tmp_path, app) as client:
        app.set_session_status(AGENT, "seed-session", "failed")
        assert "already failed" in _error(await client.call_tool("cancel_run", {"run_id": SEED}), "conflict")
        assert _requests(app, "POST", ":stop") == []


async def test_delete_session_removes_it_and_a_second_delete_returns_not_found(tmp_path: Path, app: Any) -> None:
    async with _connect(tmp_path, app) as client:
        app.write_file(AGENT, "seed-session", "out/report.txt", b"done")
        run = _ok(await client.call_tool("delete_session", {"run_id": SEED}))
        assert (run["id"], run["state"], run["platform_state"]) == (SEED, "cancelled", "deleted")
        assert app.session(AGENT, "seed-session") is None
        assert len(_requests(app, "DELETE", "/sessions/seed-session")) == 1
        _error(await client.call_tool("delete_session", {"run_id": SEED}), "not_found")
        _error(await client.call_tool("get_run", {"run_id": SEED}), "not_found")


# -- session files --------------------------------------------------------------------------


async def test_uploaded_text_is_listed_and_downloads_as_text(tmp_path: Path, app: Any) -> None:
    async with _connect(tmp_path, app) as client:
        written = _ok(await client.call_tool("upload_session_file", {"run_id": SEED, "path": "notes/plan.md", "content": "héllo\n"}))
        assert written["files"] == [{"path": "notes/plan.md", "backend": "azure", "is_dir": False, "size": 7, "modified_at": None}]
        assert app.read_file(AGENT, "seed-session", "notes/plan.md") == "héllo\n".encode()
        home = _ok(await client.call_tool("list_session_files", {"run_id": SEED}))
        assert [(f["path"], f["is_dir"]) for f in home["files"]] == [("notes", True)]
        inside = _ok(await client.call_tool("list_session_files", {"run_id": SEED, "path": "notes"}))
        assert [(f["path"], f["size"]) for f in inside["files"]] == [("notes/plan.md", 7)]
        assert inside["files"][0]["modified_at"] is not None
        content = file_result(await client.call_tool("download_session_file", {"run_id": SEED, "path": "notes/plan.md"}))
        assert (content["text"], content["base64"], content["size"], content["truncated"]) == ("héllo\n", None, 7, False)
        (upload,) = _requests(app, "PUT", "/files/content")
        assert upload["query"] == {"api-version": "v1", "path": "notes/plan.md"}
        assert upload["headers"]["content-type"] == "application/octet-stream"


async def test_binary_content_round_trips_through_base64(tmp_path: Path, app: Any) -> None:
    async with _connect(tmp_path, app) as client:
        data = bytes(range(256)) * 4
        encoded = base64.b64encode(data).decode()
        _ok(await client.call_tool("upload_session_file", {"run_id": SEED, "path": "bin/blob.dat", "content": encoded, "encoding": "base64"}))
        assert app.read_file(AGENT, "seed-session", "bin/blob.dat") == data
        content = file_result(await client.call_tool("download_session_file", {"run_id": SEED, "path": "bin/blob.dat"}))
        assert content["text"] is None and content["mime_type"] == "application/octet-stream"
        assert base64.b64decode(content["base64"]) == data


async def test_download_over_max_bytes_is_truncated_and_says_so(tmp_path: Path, app: Any) -> None:
    async with _connect(tmp_path, app) as client:
        app.write_file(AGENT, "seed-session", "log.txt", "ab€".encode() * 10)  # 5 bytes per repeat
        text = file_result(await client.call_tool("download_session_file", {"run_id": SEED, "path": "log.txt", "max_bytes": 8}))
        assert (text["text"], text["size"], text["truncated"]) == ("ab€ab", 50, True)  # the cut euro sign is dropped
        app.write_file(AGENT, "seed-session", "raw.bin", b"\xff\xfe" * 10)
        raw = file_result(await client.call_tool("download_session_file", {"run_id": SEED, "path": "raw.bin", "max_bytes": 3}))
        assert (base64.b64decode(raw["base64"]), raw["size"], raw["truncated"]) == (b"\xff\xfe\xff", 20, True)


async def test_invalid_base64_upload_returns_invalid_argument_before_any_request(tmp_path: Path, app: Any) -> None:
    async with _connect(tmp_path, app) as client:
        result = await client.call_tool("upload_session_file", {"run_id": SEED, "path": "x.bin", "content": "not base64!", "encoding": "base64"})
        _error(result, "invalid_argument")
        assert app.request_log == []


async def test_upload_over_the_platform_limit_maps_413_to_invalid_argument(tmp_path: Path, app: Any) -> None:
    async with _connect(tmp_path, app) as client:
        result = await client.call_tool("upload_session_file", {"run_id": SEED, "path": "big.txt", "content": "x" * (UPLOAD_LIMIT + 1)})
        message = _error(result, "invalid_argument")
        assert "413" in message and "50 MB" in message
        assert len(_requests(app, "PUT", "/files/content")) == 1  # a 413 is not retried
        assert app.file_paths(AGENT, "seed-session") == []


async def test_upload_over_50_mb_is_refused_before_sending(tmp_path: Path, app: Any) -> None:
    async with _connect(tmp_path, app) as client:
        result = await client.call_tool("upload_session_file", {"run_id": SEED, "path": "huge.txt", "content": "x" * (MAX_UPLOAD_BYTES + 1)})
        assert f"at most {MAX_UPLOAD_BYTES} bytes" in _error(result, "invalid_argument")
        assert app.request_log == []


@pytest.mark.parametrize("path", ["../outside.txt", "notes/../../etc/passwd", "..\\up.txt", "/etc/passwd"])
async def test_paths_outside_the_session_home_are_refused_before_any_request(tmp_path: Path, app: Any, path: str) -> None:
    async with _connect(tmp_path, app) as client:
        for tool, args in (
            ("list_session_files", {}),
            ("download_session_file", {}),
            ("upload_session_file", {"content": "x"}),
            ("delete_session_file", {}),
        ):
            _error(await client.call_tool(tool, {"run_id": SEED, "path": path, **args}), "invalid_argument")
        assert app.request_log == []


async def test_deleting_a_non_empty_directory_needs_recursive(tmp_path: Path, app: Any) -> None:
    async with _connect(tmp_path, app) as client:
        app.write_file(AGENT, "seed-session", "work/a/one.txt", b"1")
        app.write_file(AGENT, "seed-session", "keep.txt", b"2")
        message = _error(await client.call_tool("delete_session_file", {"run_id": SEED, "path": "work"}), "conflict")
        assert "recursive=true" in message
        left = _ok(await client.call_tool("delete_session_file", {"run_id": SEED, "path": "work", "recursive": True}))
        assert [f["path"] for f in left["files"]] == ["keep.txt"]
        assert app.file_paths(AGENT, "seed-session") == ["keep.txt"]
        assert _requests(app, "DELETE", "/files")[-1]["query"] == {"api-version": "v1", "path": "work", "recursive": "true"}


async def test_missing_files_return_not_found(tmp_path: Path, app: Any) -> None:
    async with _connect(tmp_path, app) as client:
        _error(await client.call_tool("download_session_file", {"run_id": SEED, "path": "nope.txt"}), "not_found")
        _error(await client.call_tool("delete_session_file", {"run_id": SEED, "path": "nope.txt"}), "not_found")
        _error(await client.call_tool("list_session_files", {"run_id": SEED, "path": "nope"}), "not_found")


async def test_list_session_files_follows_last_id_across_pages(tmp_path: Path, app: Any) -> None:
    async with _connect(tmp_path, app) as client:
        for index in range(150):
            app.write_file(AGENT, "seed-session", f"many/f{index:03}.txt", b".")
        listed = _ok(await client.call_tool("list_session_files", {"run_id": SEED, "path": "many"}))
        assert [f["path"] for f in listed["files"]] == [f"many/f{i:03}.txt" for i in range(150)]
        assert [r["query"].get("after") for r in _requests(app, "GET", "/files")] == [None, "f099.txt"]


async def test_file_calls_on_an_expired_session_return_conflict(tmp_path: Path, app: Any) -> None:
    async with _connect(tmp_path, app) as client:
        app.clock.advance(31 * 24 * 3600)
        _error(await client.call_tool("list_session_files", {"run_id": SEED}), "conflict")


# -- faults, auth, settings ------------------------------------------------------------------


async def test_a_429_with_retry_after_on_a_read_is_retried_and_succeeds(tmp_path: Path, app: Any) -> None:
    async with _connect(tmp_path, app) as client:
        app.faults.add(Fault(status=429, retry_after=0, method="GET", path=f"{SESSIONS}/seed-session", times=1))
        assert _ok(await client.call_tool("get_run", {"run_id": SEED}))["id"] == SEED
        assert [r["status"] for r in app.faults.requests] == [429, 200]


async def test_a_500_on_an_unnamed_create_is_not_retried(tmp_path: Path, app: Any) -> None:
    async with _connect(tmp_path, app) as client:
        app.faults.add(Fault(status=500, method="POST", path=SESSIONS, times=1))
        _error(await client.call_tool("spawn_agent", {"agent": f"{AGENT}:1", "prompt": "go"}), "unavailable")
        assert app.faults.count("POST", SESSIONS) == 1


async def test_a_500_on_a_create_with_an_idempotency_key_is_retried(tmp_path: Path, app: Any) -> None:
    async with _connect(tmp_path, app) as client:
        app.faults.add(Fault(status=500, retry_after=0, method="POST", path=SESSIONS, times=1))
        run = _ok(await client.call_tool("spawn_agent", {"agent": f"{AGENT}:1", "prompt": "go", "idempotency_key": "k1"}))
        assert app.faults.count("POST", SESSIONS) == 2
        assert app.session(AGENT, run["id"].partition(":")[2]) is not None


async def test_a_refused_token_returns_unauthorized_without_echoing_it(tmp_path: Path) -> None:
    strict = azure_foundry.create_app(token="the-right-token")
    async with _connect(tmp_path, strict) as client:
        result = await client.call_tool("get_run", {"run_id": SEED})
    _error(result, "unauthorized")
    assert TOKEN not in result.content[0].text


async def test_the_token_never_appears_in_results(tmp_path: Path, app: Any) -> None:
    async with _connect(tmp_path, app) as client:
        app.faults.add(Fault(status=503, retry_after=0, method="GET", path=f"{SESSIONS}/seed-session", times=3))
        results = [
            await client.call_tool("get_run", {"run_id": SEED}),
            await client.call_tool("spawn_agent", {"agent": f"{AGENT}:1", "prompt": "go"}),
            await client.call_tool("list_runs", {"agent": AGENT}),
            await client.call_tool("upload_session_file", {"run_id": f"{AGENT}:nope", "path": "a.txt", "content": "x"}),
            await client.call_tool("delete_session_file", {"run_id": SEED, "path": "missing"}),
        ]
        for result in results:
            assert TOKEN not in result.content[0].text
            assert TOKEN not in json.dumps(result.structured_content)


async def test_the_user_isolation_key_is_sent_and_scopes_sessions(tmp_path: Path, app: Any) -> None:
    other = app.add_session(isolation_key="bob")["agent_session_id"]
    async with _connect(tmp_path, app, extra='user_isolation_key = "alice"\n') as client:
        run = _ok(await client.call_tool("spawn_agent", {"agent": f"{AGENT}:1", "prompt": "go"}))
        listed = {r["id"] for r in _ok(await client.call_tool("list_runs", {"agent": AGENT}))["runs"]}
        _error(await client.call_tool("get_run", {"run_id": f"{AGENT}:{other}"}), "not_found")
    assert listed == {run["id"], SEED}
    assert all(r["headers"]["x-ms-user-isolation-key"] == "alice" for r in app.request_log)


async def test_the_configured_api_version_is_sent_on_every_call(tmp_path: Path, app: Any) -> None:
    async with _connect(tmp_path, app, extra='api_version = "2099-01-01"\n') as client:
        message = _error(await client.call_tool("get_run", {"run_id": SEED}), "invalid_argument")
    assert "api-version" in message


async def test_the_adapter_works_over_a_loopback_port(tmp_path: Path, app: Any) -> None:
    with serve_in_thread(app) as base_url:
        async with _connect(tmp_path, app, endpoint=app.endpoint(base_url), in_process=False) as client:
            run_id = _ok(await client.call_tool("spawn_agent", {"agent": f"{AGENT}:1", "prompt": "go"}))["id"]
            data = base64.b64encode(b"\x00\x01binary\xff").decode()
            _ok(await client.call_tool("upload_session_file", {"run_id": run_id, "path": "in/x.bin", "content": data, "encoding": "base64"}))
            content = file_result(await client.call_tool("download_session_file", {"run_id": run_id, "path": "in/x.bin"}))
            assert content["base64"] == data
            stopped = _ok(await client.call_tool("cancel_run", {"run_id": run_id}))
            assert (stopped["state"], stopped["platform_state"]) == ("succeeded", "idle")  # the turn had ended; the sandbox stops
    assert app.faults.connections  # the calls went over real TCP connections


# -- Entra ID through azure-identity ---------------------------------------------------------


def _fake_az(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, *, lifetime: int, fail: bool = False) -> Path:
    """A stand-in `az` on PATH that hands out entra-token-1, -2, ... and logs its arguments."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "az.log"
    script = bin_dir / "az"
    script.write_text(
        f"#!{sys.executable}\n"
        "import json, sys, time\n"
        f"log = {str(log)!r}\n"
        "with open(log, 'a') as f: f.write(' '.join(sys.argv[1:]) + '\\n')\n"
        f"if {fail!r}:\n"
        "    sys.stderr.write(\"ERROR: Please run 'az login' to setup account.\\n\"); sys.exit(1)\n"
        "count = sum(1 for _ in open(log))\n"
        f"print(json.dumps({{'accessToken': f'entra-token-{{count}}', 'expires_on': int(time.time()) + {lifetime}, 'tokenType': 'Bearer'}}))\n",
        encoding="utf-8",
    )
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", f"{bin_dir}:/usr/bin:/bin")
    monkeypatch.setenv("AZURE_TOKEN_CREDENTIALS", "AzureCliCredential")
    return log


async def test_without_a_static_token_entra_id_tokens_come_from_azure_identity(tmp_path: Path, app: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    log = _fake_az(tmp_path, monkeypatch, lifetime=3600)
    async with _connect(tmp_path, app, env={}) as client:
        _ok(await client.call_tool("get_run", {"run_id": SEED}))
        _ok(await client.call_tool("list_session_files", {"run_id": SEED}))
    assert [r["headers"]["authorization"] for r in app.request_log] == ["Bearer entra-token-1"] * 2
    (call,) = log.read_text().splitlines()
    assert "--resource https://ai.azure.com" in call


async def test_an_entra_token_about_to_expire_is_renewed(tmp_path: Path, app: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_az(tmp_path, monkeypatch, lifetime=120)  # inside the five-minute renewal margin
    async with _connect(tmp_path, app, env={}) as client:
        _ok(await client.call_tool("get_run", {"run_id": SEED}))
        _ok(await client.call_tool("get_run", {"run_id": SEED}))
    assert [r["headers"]["authorization"] for r in app.request_log] == ["Bearer entra-token-1", "Bearer entra-token-2"]


async def test_a_failed_entra_sign_in_returns_unauthorized_before_any_request(tmp_path: Path, app: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_az(tmp_path, monkeypatch, lifetime=3600, fail=True)
    async with _connect(tmp_path, app, env={}) as client:
        message = _error(await client.call_tool("get_run", {"run_id": SEED}), "unauthorized")
    assert "az login" in message
    assert app.request_log == []
