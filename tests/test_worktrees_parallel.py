"""Coding agents in parallel on one repository, through agentdeck servers in OS processes of their own.

The README's scenario runs here as written there (its scribe agent), and eight runs started at
once from four server processes each get their own worktree and branch.
"""

from __future__ import annotations

import contextlib
import re
import subprocess
import sys
import time
import tomllib
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client

from tests.helpers import call, file_result, server_env, stdio_params, write_config
from tests.test_local_worktrees import checkout_state, git, make_repo, result_of

README = Path(__file__).resolve().parent.parent / "README.md"


def readme_config(workspace_root: Path) -> str:
    """The README's worktree example, pointed at this test's workspace root."""
    section = README.read_text().split("### Coding agents in parallel", 1)[1]
    example = re.search(r"```toml\n(.*?)```", section, re.S)
    assert example, "the README's worktree section has no toml example"
    text = example.group(1)
    tomllib.loads(text)  # it is valid TOML as written
    return re.sub(r'(?m)^workspace_root = "[^"]*"', f'workspace_root = "{workspace_root}"', text)


@pytest.mark.usefixtures("store_url")
async def test_the_readme_scenario_two_runs_in_parallel_two_branches_two_diffs(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "code" / "myproject")
    before = checkout_state(repo)
    write_config(tmp_path, readme_config(tmp_path / "code"))
    async with Client(stdio_params(server_env(tmp_path))) as client:
        first = await call(client, "spawn_agent", {"agent": "scribe", "prompt": "Fix the typo in the intro"})
        second = await call(client, "spawn_agent", {"agent": "scribe", "prompt": "Add a usage example"})
        runs = [await call(client, "wait_for_run", {"run_id": r["id"], "timeout_seconds": 50}) for r in (first, second)]
        listings = [await call(client, "list_session_files", {"run_id": r["id"]}) for r in runs]
        diffs = [file_result(await client.call_tool("download_session_file", {"run_id": r["id"], "path": "run.diff"})) for r in runs]
    assert [r["state"] for r in runs] == ["succeeded", "succeeded"]
    branches = [result_of(r)["branch"] for r in runs]
    assert branches == [f"agentdeck/{first['id']}", f"agentdeck/{second['id']}"]
    for listing in listings:
        assert [f["path"] for f in listing["files"]] == ["NOTES.md", "run.diff"]
    assert "+Fix the typo in the intro" in diffs[0]["text"] and "Add a usage example" not in diffs[0]["text"]
    assert "+Add a usage example" in diffs[1]["text"] and "Fix the typo" not in diffs[1]["text"]
    assert git(repo, "log", "--format=%s", "-1", branches[0]) == "scribe: Fix the typo in the intro"
    assert checkout_state(repo) == before


RUNS_PER_SERVER = 2
SERVERS = 4


@pytest.mark.usefixtures("store_url")
async def test_eight_runs_started_at_once_from_four_processes_each_get_a_worktree_and_branch(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "code" / "myproject")
    before = checkout_state(repo)
    write_config(tmp_path, readme_config(tmp_path / "code"))
    started: list[dict[str, Any]] = []
    async with contextlib.AsyncExitStack() as stack:
        clients = [await stack.enter_async_context(Client(stdio_params(server_env(tmp_path, f"lead-{i}")))) for i in range(SERVERS)]
        go = anyio.Event()

        async def spawn(client: Client, n: int) -> None:
            await go.wait()  # every spawn leaves at the same moment
            started.append(await call(client, "spawn_agent", {"agent": "scribe", "prompt": f"change {n}"}))

        with anyio.fail_after(120):
            async with anyio.create_task_group() as tg:
                for i, client in enumerate(clients):
                    for j in range(RUNS_PER_SERVER):
                        tg.start_soon(spawn, client, i * RUNS_PER_SERVER + j)
                await anyio.sleep(0.2)
                go.set()
            done = [await call(clients[0], "wait_for_run", {"run_id": r["id"], "timeout_seconds": 50}) for r in started]
    assert len(done) == SERVERS * RUNS_PER_SERVER
    assert [r["state"] for r in done] == ["succeeded"] * len(done), [r["error"] for r in done]
    results = [result_of(r) for r in done]
    assert len({r["branch"] for r in results}) == len({r["path"] for r in results}) == len(done)
    for result in results:
        message = git(repo, "log", "--format=%s", "-1", result["branch"])
        assert re.fullmatch(r"scribe: change \d", message) and result["commit_count"] == 1 and result["removed"]
        assert [f["path"] for f in result["files"]] == ["NOTES.md"]
    assert sorted(git(repo, "log", "--format=%s", "-1", r["branch"]) for r in results) == [f"scribe: change {n}" for n in range(len(done))]
    assert git(repo, "worktree", "list", "--porcelain").count("worktree ") == 1
    assert not any((tmp_path / "data" / "worktrees").iterdir())
    assert checkout_state(repo) == before


# One process making and removing one run's worktree, after waiting for a shared start time.
_ONE_RUN = """
import sys, time
from pathlib import Path
from agentdeck.backends.local import worktree
repo, run_id, start = sys.argv[1], sys.argv[2], float(sys.argv[3])
info = worktree.plan(Path(repo), "HEAD", run_id, Path(repo).parent.parent / "trees" / run_id, "here")
time.sleep(max(0.0, start - time.time() - 0.05))
while time.time() < start:
    pass
worktree.create(info)
(Path(info["path"]) / (run_id + ".txt")).write_text(run_id)
result = worktree.finish(info, "succeeded")
print(result["branch"], result["removed"], result.get("error"), [f["path"] for f in result["files"]])
"""


def test_sixteen_processes_adding_and_removing_worktrees_of_one_repo_at_once_all_succeed(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "code" / "myproject")
    start = time.time() + 5.0
    procs = [
        subprocess.Popen([sys.executable, "-c", _ONE_RUN, str(repo), f"run_{n}", str(start)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for n in range(16)
    ]
    outputs = [proc.communicate(timeout=120) for proc in procs]
    assert [proc.returncode for proc in procs] == [0] * 16, [err for _, err in outputs if err]
    assert sorted(out.strip() for out, _ in outputs) == sorted(f"agentdeck/run_{n} True None ['run_{n}.txt']" for n in range(16))
    assert git(repo, "worktree", "list", "--porcelain").count("worktree ") == 1
    assert len(git(repo, "branch", "--list", "agentdeck/*").splitlines()) == 16
