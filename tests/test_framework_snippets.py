"""The README's "Use from an agent framework" snippets run as written, each in the framework's own venv.

agentdeck is not installed into those environments: the snippets start `agentdeck serve` from
PATH, which points at this checkout's environment, as a pipx or uvx install would. Each snippet
process gets a HOME of its own, so the server it starts uses a fresh default config and data dir.

The virtual environments are built once into .frameworks/ (pinned in tests/frameworks/) and
rebuilt when their requirements change. The TypeScript snippet runs with node and the official
SDK from npm, cached the same way; it is skipped where node is not installed.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent
REQUIREMENTS = Path(__file__).parent / "frameworks"
VENVS = ROOT / ".frameworks"
TS_SDK = "@modelcontextprotocol/sdk@1.32.2"
RUN_SECONDS = 180

# snippet name -> the environment it runs in (langchain-mcp-adapters 0.3 needs mcp 1.x)
PYTHON_SNIPPETS = {"fastmcp": "mcp2", "langchain": "mcp1", "pydantic-ai": "mcp2", "openai-agents": "mcp2"}


def readme_snippets() -> dict[str, str]:
    """Code blocks of the README marked `<!-- snippet: NAME -->`, by name."""
    text = (ROOT / "README.md").read_text()
    return {name: code for name, code in re.findall(r"<!-- snippet: ([\w-]+) -->\n```\w+\n(.*?)```", text, re.S)}


def framework_venv(name: str) -> Path:
    """The venv for `name`, (re)built when its pinned requirements changed."""
    requirements = REQUIREMENTS / f"requirements-{name}.txt"
    digest = hashlib.sha256(requirements.read_bytes()).hexdigest()
    venv = VENVS / name
    stamp = venv / ".requirements-sha256"
    if stamp.exists() and stamp.read_text() == digest:
        return venv
    shutil.rmtree(venv, ignore_errors=True)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "-r", str(requirements)]
    subprocess.run(pip, check=True, timeout=900)
    stamp.write_text(digest)
    return venv


def snippet_env(home: Path) -> dict[str, str]:
    """PATH finds this checkout's `agentdeck` (its own environment); HOME gives a fresh config and data dir."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AGENTDECK_", "VIRTUAL_ENV", "PYTHON"))}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["HOME"] = str(home)
    for var in ("XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_CACHE_HOME", "XDG_STATE_HOME"):
        env.pop(var, None)
    env["AGENTDECK_LOG_LEVEL"] = "warning"
    return env


def run_python(venv: Path, code: str, home: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(venv / "bin" / "python"), "-c", code], env=snippet_env(home), capture_output=True, text=True, timeout=RUN_SECONDS)


def test_the_readme_has_a_snippet_for_each_framework() -> None:
    assert set(readme_snippets()) == {*PYTHON_SNIPPETS, "typescript"}


@pytest.mark.parametrize("name", list(PYTHON_SNIPPETS))
def test_python_snippet_runs_against_a_real_server(name: str, tmp_path: Path) -> None:
    venv = framework_venv(PYTHON_SNIPPETS[name])
    done = run_python(venv, readme_snippets()[name], tmp_path)
    assert done.returncode == 0, f"{name} snippet failed:\n{done.stdout}\n{done.stderr}"
    assert done.stdout.strip().splitlines()[-1] == "succeeded", done.stdout
    assert not (venv / "bin" / "agentdeck").exists(), "agentdeck must come from its own environment"


def test_the_framework_environments_keep_their_own_mcp() -> None:
    versions = {}
    for env in sorted(set(PYTHON_SNIPPETS.values())):
        out = subprocess.run([str(framework_venv(env) / "bin" / "python"), "-c", "import importlib.metadata as m; print(m.version('mcp'))"], capture_output=True, text=True, timeout=60)
        versions[env] = out.stdout.strip()
    assert versions["mcp1"].startswith("1.") and versions["mcp2"].startswith("2."), versions


def test_typescript_snippet_runs_against_a_real_server(tmp_path: Path) -> None:
    if not (shutil.which("node") and shutil.which("npm")):
        pytest.skip("node and npm are needed for the TypeScript snippet")
    project = VENVS / "typescript"
    if not (project / "node_modules" / "@modelcontextprotocol" / "sdk" / ".installed").exists():
        project.mkdir(parents=True, exist_ok=True)
        (project / "package.json").write_text('{"name": "agentdeck-snippet", "private": true, "type": "module"}\n')
        npm = ["npm", "install", "--no-audit", "--no-fund", "--ignore-scripts", "--loglevel=error", TS_SDK]
        subprocess.run(npm, cwd=project, check=True, timeout=600, capture_output=True)
        (project / "node_modules" / "@modelcontextprotocol" / "sdk" / ".installed").touch()
    script = project / f"snippet-{os.getpid()}.mjs"
    script.write_text(readme_snippets()["typescript"])
    try:
        done = subprocess.run(["node", str(script)], env=snippet_env(tmp_path), capture_output=True, text=True, timeout=RUN_SECONDS)
    finally:
        script.unlink()
    assert done.returncode == 0, f"TypeScript snippet failed:\n{done.stdout}\n{done.stderr}"
    assert done.stdout.strip().splitlines()[-1] == "succeeded", done.stdout


def test_the_whole_scenario_passes_in_openai_agents_with_its_default_timeout(tmp_path: Path) -> None:
    """openai-agents gives every call 5 s; with max_wait_seconds = 3 (the README's advice) nothing times out."""
    venv = framework_venv("mcp2")
    script = REQUIREMENTS / "openai_agents_scenario.py"
    done = subprocess.run([str(venv / "bin" / "python"), str(script)], env=snippet_env(tmp_path), capture_output=True, text=True, timeout=RUN_SECONDS)
    assert done.returncode == 0, f"scenario failed:\n{done.stdout}\n{done.stderr}"
    assert "scenario passed: 20 tools" in done.stdout
