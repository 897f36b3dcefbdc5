"""The `agentdeck` command as a user types it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from agentdeck import __version__
from tests.helpers import config_for, server_env, write_config


def _run(*args: str, env: dict[str, str] | None = None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "agentdeck", *args], capture_output=True, text=True, env=env, timeout=timeout, stdin=subprocess.DEVNULL)


def test_version_and_help() -> None:
    assert _run("--version").stdout.strip() == f"agentdeck {__version__}"
    help_text = _run("--help").stdout
    for command in ("serve", "ui", "call", "demo", "doctor", "tools"):
        assert command in help_text


def test_demo_walks_the_whole_mission_and_succeeds(tmp_path: Path) -> None:
    result = _run("demo", "--data-dir", str(tmp_path / "demo"))
    assert result.returncode == 0, result.stderr
    for step in ("spawn_agent", "wait_for_run", "notifications/resources/updated agentdeck://channels/general", "receive_channel_messages", "claim_task", "complete_task", "invoke_routine", "list_runs", "Demo complete"):
        assert step in result.stdout
    assert "succeeded" in result.stdout


def test_a_bad_config_exits_2_with_the_key_on_stderr_and_nothing_on_stdout(tmp_path: Path) -> None:
    (tmp_path / "agentdeck.toml").write_text('[backends.local]\nkind = "local"\nmax_depth = -1\n')
    result = _run("serve", env=server_env(tmp_path))
    assert result.returncode == 2 and result.stdout == ""
    assert "backends.local.max_depth" in result.stderr


def test_serving_http_on_a_public_address_without_tokens_is_refused(tmp_path: Path) -> None:
    write_config(tmp_path)
    result = _run("serve", "--http", "--host", "0.0.0.0", "--port", "0", env=server_env(tmp_path))
    assert result.returncode == 2 and "without authentication" in result.stderr


def test_tools_lists_each_tool_with_its_token_cost(tmp_path: Path) -> None:
    write_config(tmp_path)
    result = _run("tools", env=server_env(tmp_path))
    assert result.returncode == 0, result.stderr
    assert "[runs]" in result.stdout and "wait_for_run" in result.stdout and "tokens in tools/list" in result.stdout and "what the model sees" in result.stdout


def test_an_unknown_toolset_stops_the_server_at_start_with_the_choices(tmp_path: Path) -> None:
    write_config(tmp_path)
    result = _run("serve", "--toolsets", "runs,nope", env=server_env(tmp_path))
    assert result.returncode == 2 and result.stdout == ""
    assert "unknown toolset nope" in result.stderr and "channels" in result.stderr


def test_call_runs_one_tool_and_prints_its_result_as_json(tmp_path: Path) -> None:
    config_for(tmp_path)
    sender = server_env(tmp_path, identity="hook")
    sent = _run("call", "send_channel_message", "channel=builds", "body=build 41 is green", "correlation_id=41", env=sender)
    assert sent.returncode == 0, sent.stderr
    message = json.loads(sent.stdout)
    assert message["sender"] == "hook" and message["body"] == "build 41 is green"
    assert message["correlation_id"] == "41"  # a value that parses as JSON but the schema wants text stays text

    task = _run("call", "create_task", "--json", '{"title": "deploy", "queue": "ops", "payload": {"env": "prod"}}', "priority=5", env=sender)
    assert task.returncode == 0, task.stderr
    created = json.loads(task.stdout)
    assert created["payload"] == {"env": "prod"} and created["priority"] == 5

    received = _run("call", "receive_channel_messages", "channel=builds", env=server_env(tmp_path, identity="reader"))
    assert [m["body"] for m in json.loads(received.stdout)["messages"]] == ["build 41 is green"]


def test_call_exits_1_with_the_error_as_json_and_2_on_bad_usage(tmp_path: Path) -> None:
    config_for(tmp_path)
    env = server_env(tmp_path)
    missing = _run("call", "get_run", "run_id=run_nope", env=env)
    assert missing.returncode == 1 and json.loads(missing.stdout)["code"] == "not_found"
    unknown = _run("call", "no_such_tool", env=env)
    assert unknown.returncode == 1 and json.loads(unknown.stdout)["code"] == "not_found"
    bad = _run("call", "get_run", "run_id", env=env)
    assert bad.returncode == 2 and "KEY=VALUE" in bad.stderr and bad.stdout == ""
    not_object = _run("call", "get_run", "--json", "[1]", env=env)
    assert not_object.returncode == 2 and "JSON object" in not_object.stderr
    for result in (missing, unknown, bad, not_object):
        assert "Traceback" not in result.stderr
