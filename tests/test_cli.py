"""The `agentdeck` command as a user types it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from agentdeck import __version__
from tests.helpers import server_env, write_config


def _run(*args: str, env: dict[str, str] | None = None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "agentdeck", *args], capture_output=True, text=True, env=env, timeout=timeout, stdin=subprocess.DEVNULL)


def test_version_and_help() -> None:
    assert _run("--version").stdout.strip() == f"agentdeck {__version__}"
    help_text = _run("--help").stdout
    for command in ("serve", "demo", "doctor", "tools"):
        assert command in help_text


def test_demo_walks_the_whole_mission_and_succeeds(tmp_path: Path) -> None:
    result = _run("demo", "--data-dir", str(tmp_path / "demo"))
    assert result.returncode == 0, result.stderr
    for step in ("spawn_agent", "wait_for_run", "receive_channel_messages", "claim_task", "complete_task", "invoke_routine", "list_runs", "Demo complete"):
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
