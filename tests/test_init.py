"""`agentdeck init`: a starter config with the coding agents on PATH, never clobbering a file."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from agentdeck.config import load_config
from agentdeck.init import CODING_AGENTS, detect_agents, render_config, run_init
from tests.helpers import call, local_client

pytestmark = pytest.mark.skipif(os.name == "nt", reason="fake agents are POSIX scripts")


def _fake_agents(directory: Path, *names: str) -> Path:
    """Executables that print the arguments they were given, one per line."""
    directory.mkdir(parents=True, exist_ok=True)
    for name in names:
        script = directory / name
        script.write_text(f"#!{sys.executable}\nimport sys\nprint('{name} got:')\nfor arg in sys.argv[1:]:\n    print(arg)\n")
        script.chmod(0o755)
    return directory


def _init(path: Path | None, env: dict[str, str], force: bool = False) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = run_init(path, force=force, env=env, out=out, err=err)
    return code, out.getvalue(), err.getvalue()


def test_detects_only_the_coding_agent_clis_on_path(tmp_path: Path) -> None:
    bin_dir = _fake_agents(tmp_path / "bin", "claude", "opencode", "unrelated")
    (bin_dir / "codex").write_text("not executable")
    assert detect_agents({"PATH": str(bin_dir)}) == {"claude": str(bin_dir / "claude"), "opencode": str(bin_dir / "opencode")}
    assert detect_agents({"PATH": str(tmp_path / "empty")}) == {}


def test_written_config_loads_and_declares_each_detected_agent_in_its_headless_mode(tmp_path: Path) -> None:
    bin_dir = _fake_agents(tmp_path / "bin", *(agent.name for agent in CODING_AGENTS))
    target = tmp_path / "conf" / "config.toml"
    code, out, err = _init(target, {"PATH": str(bin_dir)})
    assert code == 0, err
    assert f"Wrote {target}" in out
    local = load_config(target, env={}).backends["local"]
    agents = local.agents  # type: ignore[union-attr]
    expected = {
        "claude": ["-p", "{prompt}"],
        "codex": ["exec", "{prompt}"],
        "gemini": ["-p", "{prompt}"],
        "opencode": ["run", "{prompt}"],
    }
    assert set(agents) == {"echo", *expected}
    for name, headless in expected.items():
        assert agents[name].command == [str(bin_dir / name), *headless]
    assert agents["echo"].command[1:] == ["-m", "agentdeck.backends.local.echo", "{prompt}"]
    assert local.routines["greet"].agent == "echo"  # type: ignore[union-attr]


def test_written_config_leaves_permission_flags_to_the_user_and_says_so(tmp_path: Path) -> None:
    bin_dir = _fake_agents(tmp_path / "bin", "claude", "codex")
    text = render_config(detect_agents({"PATH": str(bin_dir)}))
    assert "PERMISSION FLAGS ARE LEFT TO YOU" in text
    for flag in ("--permission-mode", "--allowedTools", "--dangerously-skip-permissions", "--sandbox", "--full-auto", "--yolo"):
        for line in text.splitlines():
            if not line.startswith("#"):
                assert flag not in line, f"{flag} must only be suggested in a comment"


def test_agents_not_on_path_are_left_commented_out(tmp_path: Path) -> None:
    bin_dir = _fake_agents(tmp_path / "bin", "gemini")
    target = tmp_path / "config.toml"
    code, out, _ = _init(target, {"PATH": str(bin_dir)})
    assert code == 0
    text = target.read_text()
    assert "# [backends.local.agents.claude]" in text and '# command = ["claude", "-p", "{prompt}"]' in text
    assert set(tomllib.loads(text)["backends"]["local"]["agents"]) == {"echo", "gemini"}
    assert "not found on PATH: claude, codex, opencode" in out


def test_with_no_coding_agent_installed_the_config_keeps_echo_and_greet(tmp_path: Path) -> None:
    target = tmp_path / "config.toml"
    assert _init(target, {"PATH": str(tmp_path / "nothing")})[0] == 0
    local = load_config(target, env={}).backends["local"]
    assert set(local.agents) == {"echo"} and set(local.routines) == {"greet"}  # type: ignore[union-attr]


def test_an_existing_config_is_kept_and_init_exits_non_zero_without_force(tmp_path: Path) -> None:
    target = tmp_path / "config.toml"
    target.write_text("# mine\n")
    code, out, err = _init(target, {"PATH": ""})
    assert code == 1 and out == ""
    assert str(target) in err and "--force" in err
    assert target.read_text() == "# mine\n"


def test_force_replaces_the_config_and_keeps_the_old_one_as_bak(tmp_path: Path) -> None:
    target = tmp_path / "config.toml"
    target.write_text("# mine\n")
    assert _init(target, {"PATH": ""}, force=True)[0] == 0
    assert (tmp_path / "config.toml.bak").read_text() == "# mine\n"
    assert "[backends.local.agents.echo]" in target.read_text()


def test_without_path_it_writes_the_file_agentdeck_reads(tmp_path: Path) -> None:
    target = tmp_path / "from-env.toml"
    assert _init(None, {"PATH": "", "AGENTDECK_CONFIG": str(target)})[0] == 0
    assert target.exists()


@pytest.mark.skipif(sys.platform != "linux", reason="the default config dir is XDG_CONFIG_HOME on Linux")
def test_without_path_or_agentdeck_config_it_writes_the_user_config_dir(tmp_path: Path) -> None:
    assert _init(None, {"PATH": "", "XDG_CONFIG_HOME": str(tmp_path)})[0] == 0
    assert (tmp_path / "agentdeck" / "config.toml").exists()


def test_the_cli_writes_once_then_refuses_to_overwrite(tmp_path: Path) -> None:
    bin_dir = _fake_agents(tmp_path / "bin", "codex")
    target = tmp_path / "config.toml"
    env = {k: v for k, v in os.environ.items() if not k.startswith("AGENTDECK_")} | {"PATH": str(bin_dir)}
    command = [sys.executable, "-m", "agentdeck", "init", "--path", str(target)]
    first = subprocess.run(command, capture_output=True, text=True, env=env, timeout=60, stdin=subprocess.DEVNULL)
    assert first.returncode == 0, first.stderr
    assert "codex" in first.stdout
    second = subprocess.run(command, capture_output=True, text=True, env=env, timeout=60, stdin=subprocess.DEVNULL)
    assert second.returncode == 1 and "already exists" in second.stderr and "--force" in second.stderr
    forced = subprocess.run([*command, "--force"], capture_output=True, text=True, env=env, timeout=60, stdin=subprocess.DEVNULL)
    assert forced.returncode == 0, forced.stderr


async def test_a_detected_agent_runs_with_the_prompt_as_one_argument(tmp_path: Path) -> None:
    bin_dir = _fake_agents(tmp_path / "bin", "claude")
    target = tmp_path / "config.toml"
    assert _init(target, {"PATH": str(bin_dir)})[0] == 0
    cfg = load_config(target, env={"AGENTDECK_DATA_DIR": str(tmp_path / "data"), "AGENTDECK_IDENTITY": "tester"})
    async with local_client(cfg) as client:
        run = await call(client, "spawn_agent", {"agent": "claude", "prompt": "review this; rm -rf / # not a shell"})
        done = await call(client, "wait_for_run", {"run_id": run["id"], "timeout_seconds": 30})
        assert done["state"] == "succeeded"
        page = await call(client, "get_run_events", {"run_id": run["id"]})
    lines = [e["text"] for e in page["events"] if e["kind"] == "stdout"]
    assert lines == ["claude got:", "-p", "review this; rm -rf / # not a shell"]
