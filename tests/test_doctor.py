"""`agentdeck doctor` as an operator runs it: a line per check, a fix per failure, a telling exit code."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.emulators import oz
from tests.emulators.serving import serve_in_thread
from tests.helpers import free_port, server_env, write_config


def _doctor(directory: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "agentdeck", "doctor"], env=server_env(directory, **env), capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL
    )


def test_a_healthy_local_setup_passes_every_check(tmp_path: Path) -> None:
    write_config(tmp_path)
    result = _doctor(tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "ok   local: agent echo" in result.stdout and "FAIL" not in result.stdout


def test_an_agent_whose_command_is_missing_fails_with_the_key_to_fix(tmp_path: Path) -> None:
    write_config(tmp_path, '[backends.local]\nkind = "local"\n[backends.local.agents.ghost]\ncommand = ["no-such-agent-cli-xyz", "{prompt}"]\n')
    result = _doctor(tmp_path)
    assert result.returncode == 1
    assert "FAIL local: agent ghost" in result.stdout and "backends.local.agents.ghost.command" in result.stdout
    assert "ok   local: store" in result.stdout  # a missing agent does not hide the rest


def test_missing_credentials_and_an_unreachable_platform_are_reported_with_fixes(tmp_path: Path) -> None:
    port = free_port()
    write_config(tmp_path, f'default = "oz"\n[backends.oz]\nkind = "oz"\nbase_url = "http://127.0.0.1:{port}/api/v1"\nmax_retries = 0\n')
    missing = _doctor(tmp_path)
    assert missing.returncode == 1 and "FAIL oz: credentials" in missing.stdout and "WARP_API_KEY" in missing.stdout
    down = _doctor(tmp_path, WARP_API_KEY="doctor-secret-1234")
    assert down.returncode == 1 and "FAIL oz: reachable" in down.stdout and "Fix:" in down.stdout
    assert "doctor-secret-1234" not in down.stdout + down.stderr


def test_a_reachable_platform_with_a_key_passes(tmp_path: Path) -> None:
    with serve_in_thread(oz.create_app()) as url:
        write_config(tmp_path, f'default = "oz"\n[backends.oz]\nkind = "oz"\nbase_url = "{url}/api/v1"\n')
        result = _doctor(tmp_path, WARP_API_KEY="k")
    assert result.returncode == 0, result.stdout
    assert "ok   oz: reachable, identity accepted" in result.stdout


def test_the_local_store_is_reached_and_its_schema_version_reported(tmp_path: Path) -> None:
    write_config(tmp_path)
    ok = _doctor(tmp_path)
    assert "ok   local: store: " in ok.stdout and "schema version" in ok.stdout
    down = _doctor(tmp_path, AGENTDECK_STORE=f"postgresql://nobody@127.0.0.1:{free_port()}/nothing")
    assert down.returncode == 1 and "FAIL local: store" in down.stdout
