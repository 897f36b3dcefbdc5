"""The spec a run's supervisor is started with crosses the process boundary as JSON, whole,
and is read with the standard library only (the supervisor must start fast)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path
from typing import Any

from agentdeck.backends.local.supervisor_spec import SupervisorSpec

SPEC_MODULE = Path(__file__).parent.parent / "server" / "agentdeck" / "backends" / "local" / "supervisor_spec.py"


def _spec(**changes: Any) -> SupervisorSpec:
    fields: dict[str, Any] = {
        "run_id": "run_0123456789abcdef",
        "argv": ["agent", "--prompt", "héllo\nworld"],
        "cwd": "/tmp/ws",
        "env": {"AGENTDECK_RUN_ID": "run_0123456789abcdef", "AGENTDECK_TOKEN": "secret-run-token", "PYTHONUNBUFFERED": "1"},
        "prompt": "héllo\nworld",
        "stdin": "héllo\nworld",
        "prompt_file": "/tmp/data/prompts/run_0123456789abcdef.txt",
        "ttl_seconds": 60,
        "grace_seconds": 3.0,
        "heartbeat_seconds": 0.5,
        "max_output_bytes": 1_000_000,
        "data_dir": "/tmp/data",
        "db": "/tmp/data/agentdeck.db",
        "store": None,
        "worktree": {"repo": "/tmp/ws/repo", "branch": "agentdeck/run_0123456789abcdef", "state": "planned", "keep": False},
    }
    fields.update(changes)
    return SupervisorSpec(**fields)


def test_a_spec_reads_back_exactly_as_the_launcher_wrote_it() -> None:
    for spec in (_spec(), _spec(stdin=None, prompt_file=None, worktree=None, store="postgresql://u@h/db", db="")):
        assert SupervisorSpec.from_json(spec.to_json()) == spec


def test_a_spec_never_prints_the_agents_environment_which_holds_the_runs_credentials() -> None:
    assert "secret-run-token" not in repr(_spec()) and "secret-run-token" not in str(_spec())


def test_the_spec_module_imports_only_the_standard_library() -> None:
    tree = ast.parse(SPEC_MODULE.read_text())
    imported = {alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    imported |= {node.module.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module}
    assert imported - {"__future__"} <= set(sys.stdlib_module_names), imported


def test_a_supervisor_starts_without_loading_the_mcp_sdk_or_http_stacks() -> None:
    # Every run's supervisor is a fresh interpreter: whatever its imports pull in delays the
    # agent's start (the MCP SDK alone took over a second, three on a busy machine).
    probe = "import sys, agentdeck.backends.local.supervisor; print(sorted(m for m in ('mcp', 'httpx2', 'starlette', 'uvicorn') if m in sys.modules))"
    loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True).stdout.strip()
    assert loaded == "[]", loaded
