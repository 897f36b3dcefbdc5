"""Worktree isolation: each run of a coding agent in its own git worktree and branch, its change as its result.

The repos are throwaway ones in tmp dirs; the agents are little shell scripts that edit and
commit like a coding agent would. Runs on SQLite and, with AGENTDECK_TEST_POSTGRES, PostgreSQL.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import sqlite3
import subprocess
from pathlib import Path
from typing import Any

import anyio
import pytest

from tests.helpers import call, config_for, fail, file_result, local_client, store_rows, store_url

pytestmark = pytest.mark.usefixtures("store_url")

# A scripted coding agent: appends its prompt to notes.txt and commits that, then writes a
# draft it does not commit, and prints where it works: its cwd, then its {workspace} argument.
CODER = 'printf "%s\\n" "$1" >> notes.txt && git add notes.txt && git commit -qm "coder: $1" && mkdir -p src && printf "draft\\n" > src/draft.py && pwd && echo "$2"'
# Leaves a change, says it started, then sleeps: for cancel, TTL and a killed supervisor.
SLOW = 'printf "wip\\n" > wip.txt && echo started && exec sleep 120'
FAILING = 'printf "broken\\n" >> notes.txt && exit 4'
# Moves HEAD to a branch of its own, or points its .git at the user's repository, then leaves work.
SWITCHER = 'git switch -q -c side && printf "side\\n" > side.txt'
REDIRECTER = 'common=$(git rev-parse --path-format=absolute --git-common-dir) && printf "left\\n" > left.txt && printf "gitdir: %s\\n" "$common" > .git'

TOML = """
[backends.local]
kind = "local"
workspace_root = "{root}"
cancel_grace_seconds = 1.0

[backends.local.agents.coder]
command = ["sh", "-c", '{coder}', "coder", "{{prompt}}", "{{workspace}}"]
isolation = "worktree"
repo = "proj"

[backends.local.agents.slow]
command = ["sh", "-c", '{slow}', "slow"]
isolation = "worktree"
repo = "proj"

[backends.local.agents.failing]
command = ["sh", "-c", '{failing}', "failing"]
isolation = "worktree"
repo = "proj"

[backends.local.agents.picker]
command = ["sh", "-c", '{coder}', "picker", "{{prompt}}"]
isolation = "worktree"
allowed_base_refs = ["main", "feature*"]

[backends.local.agents.kept]
command = ["sh", "-c", '{coder}', "kept", "{{prompt}}"]
isolation = "worktree"
repo = "proj"
keep_worktree = true

[backends.local.agents.switcher]
command = ["sh", "-c", '{switcher}', "switcher"]
isolation = "worktree"
repo = "proj"

[backends.local.agents.redirecter]
command = ["sh", "-c", '{redirecter}', "redirecter"]
isolation = "worktree"
repo = "proj"

[backends.local.agents.plain]
command = ["sh", "-c", "pwd"]
"""


def git(repo: Path, *args: str) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    return subprocess.run(["git", *args], cwd=repo, env=env, check=True, capture_output=True, text=True, timeout=30).stdout.strip()


def make_repo(path: Path) -> Path:
    path.mkdir(parents=True)
    git(path, "init", "-q", "-b", "main")
    git(path, "config", "user.name", "Test User")
    git(path, "config", "user.email", "test@example.invalid")
    (path / "notes.txt").write_text("first line\n")
    (path / "src").mkdir()
    (path / "src" / "app.py").write_text("print('app')\n")
    git(path, "add", "-A")
    git(path, "commit", "-qm", "initial")
    git(path, "branch", "feature")
    git(path, "checkout", "-q", "feature")
    (path / "feature.txt").write_text("feature work\n")
    git(path, "add", "-A")
    git(path, "commit", "-qm", "feature")
    git(path, "checkout", "-q", "main")
    (path / "scratch.txt").write_text("the user's own uncommitted work\n")  # must survive every run
    return path


def checkout_state(repo: Path) -> tuple[str, ...]:
    """What a user sees of their own checkout: HEAD, its branch, status, and the files' bytes."""
    files = sorted(p for p in repo.rglob("*") if p.is_file() and ".git" not in p.parts)
    contents = "".join(f"{p.relative_to(repo)}={p.read_bytes()!r}" for p in files)
    return git(repo, "rev-parse", "HEAD"), git(repo, "symbolic-ref", "HEAD"), git(repo, "status", "--porcelain=v1", "--untracked-files=all"), contents


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return make_repo(tmp_path / "ws" / "proj")


def worktree_config(tmp_path: Path) -> Any:
    toml = TOML.format(root=tmp_path / "ws", coder=CODER, slow=SLOW, failing=FAILING, switcher=SWITCHER, redirecter=REDIRECTER)
    return config_for(tmp_path, toml=toml)


def result_of(run: dict[str, Any]) -> dict[str, Any]:
    (artifact,) = [a for a in run["artifacts"] if a["kind"] == "git_worktree"]
    assert artifact["name"] == artifact["data"]["branch"]
    return artifact["data"]


async def finished(client: Any, run_id: str) -> dict[str, Any]:
    return await call(client, "wait_for_run", {"run_id": run_id, "timeout_seconds": 50})


async def test_a_run_works_in_its_own_worktree_and_its_result_records_the_change(tmp_path: Path, repo: Path) -> None:
    before = checkout_state(repo)
    async with local_client(worktree_config(tmp_path)) as client:
        run = await call(client, "spawn_agent", {"agent": "coder", "prompt": "add a line"})
        waited = await client.call_tool("wait_for_run", {"run_id": run["id"], "timeout_seconds": 50})
        done = await finished(client, run["id"])
        events = await call(client, "get_run_events", {"run_id": run["id"]})
    assert done["state"] == "succeeded"
    result = result_of(done)
    branch = f"agentdeck/{run['id']}"
    assert f"artifacts: git_worktree {branch}" in waited.content[0].text  # the text result names the branch too
    assert result["branch"] == branch and result["repo"] == str(repo) and result["host"] == socket.gethostname()
    assert result["base_ref"] == "HEAD" and result["base_commit"] == git(repo, "rev-parse", "main")
    # the agent ran in the worktree ({workspace} and its cwd), which is gone now; the branch stays
    workdir = [e["text"] for e in events["events"] if e["kind"] == "stdout"]
    assert workdir == [result["path"], result["path"]] and result["path"] != str(repo)
    assert result["removed"] is True and not Path(result["path"]).exists()
    assert git(repo, "rev-parse", branch) == result["head_commit"]
    assert git(repo, "worktree", "list", "--porcelain").count("worktree ") == 1
    # its own commit, then agentdeck's commit of the draft it left uncommitted
    assert result["commit_count"] == 2
    assert result["commits"][0]["subject"] == "coder: add a line"
    assert result["commits"][1]["subject"].startswith(f"agentdeck: commit what run {run['id']} left uncommitted")
    assert result["uncommitted"] == {"left": True, "files": ["src/draft.py"], "committed": result["head_commit"]}
    assert {f["path"]: (f["status"], f["added"], f["deleted"]) for f in result["files"]} == {"notes.txt": ("M", 1, 0), "src/draft.py": ("A", 1, 0)}
    assert result["diffstat"] == {"files": 2, "insertions": 2, "deletions": 0}
    assert git(repo, "show", f"{branch}:notes.txt") == "first line\nadd a line"
    assert any(e["kind"] == "system" and e["text"].startswith(f"worktree: branch {branch}") for e in events["events"])
    assert checkout_state(repo) == before


async def test_failed_cancelled_and_timed_out_runs_record_their_change_too(tmp_path: Path, repo: Path) -> None:
    async with local_client(worktree_config(tmp_path)) as client:
        failed = await finished(client, (await call(client, "spawn_agent", {"agent": "failing", "prompt": "x"}))["id"])
        slow = await call(client, "spawn_agent", {"agent": "slow", "prompt": "x"})
        timed = await call(client, "spawn_agent", {"agent": "slow", "prompt": "x", "ttl_seconds": 2})
        with anyio.fail_after(30):
            while not any(e["text"] == "started" for e in (await call(client, "get_run_events", {"run_id": slow["id"]}))["events"]):
                await anyio.sleep(0.1)
        cancelled = await call(client, "cancel_run", {"run_id": slow["id"]})
        timed = await finished(client, timed["id"])
    assert failed["state"] == "failed" and failed["error"]["code"] == "exit_code"
    assert cancelled["state"] == "cancelled"
    assert timed["state"] == "failed" and timed["error"]["code"] == "ttl_expired"
    for run, state, path in ((failed, "failed", "notes.txt"), (cancelled, "cancelled", "wip.txt"), (timed, "failed", "wip.txt")):
        result = result_of(run)
        assert result["run_state"] == state and result["removed"] is True and not Path(result["path"]).exists()
        assert result["uncommitted"]["committed"] == result["head_commit"] and result["commit_count"] == 1
        assert [f["path"] for f in result["files"]] == [path]
        assert git(repo, "log", "-1", "--format=%an <%ae>", result["branch"]) == "agentdeck <agentdeck@localhost>"


async def test_session_files_list_the_changed_files_and_give_the_runs_diff(tmp_path: Path, repo: Path) -> None:
    async with local_client(worktree_config(tmp_path)) as client:
        tools = {t.name for t in (await client.list_tools()).tools}
        assert {"list_session_files", "download_session_file"} <= tools and "upload_session_file" not in tools
        run = await finished(client, (await call(client, "spawn_agent", {"agent": "coder", "prompt": "hello reviewer"}))["id"])
        top = await call(client, "list_session_files", {"run_id": run["id"]})
        inside = await call(client, "list_session_files", {"run_id": run["id"], "path": "src"})
        diff = file_result(await client.call_tool("download_session_file", {"run_id": run["id"], "path": "run.diff"}))
        draft = file_result(await client.call_tool("download_session_file", {"run_id": run["id"], "path": "src/draft.py"}))
        cut = file_result(await client.call_tool("download_session_file", {"run_id": run["id"], "path": "run.diff", "max_bytes": 10}))
        unchanged = await fail(client, "download_session_file", {"run_id": run["id"], "path": "src/app.py"})
        no_dir = await fail(client, "list_session_files", {"run_id": run["id"], "path": "docs"})
        escape = await fail(client, "download_session_file", {"run_id": run["id"], "path": "../../etc/passwd"})
        plain = await finished(client, (await call(client, "spawn_agent", {"agent": "plain", "prompt": "x"}))["id"])
        not_isolated = await fail(client, "list_session_files", {"run_id": plain["id"]})
    assert [(f["path"], f["is_dir"]) for f in top["files"]] == [("notes.txt", False), ("run.diff", False), ("src", True)]
    assert [(f["path"], f["size"]) for f in inside["files"]] == [("src/draft.py", len("draft\n"))]
    expected = git(repo, "diff", "--no-renames", result_of(run)["base_commit"], f"agentdeck/{run['id']}")
    assert diff["mime_type"] == "text/x-diff" and diff["text"].strip() == expected
    assert "+hello reviewer" in diff["text"] and "+++ b/src/draft.py" in diff["text"]
    assert {f["path"]: f["size"] for f in top["files"]}["run.diff"] == diff["size"]
    assert draft["text"] == "draft\n"
    assert cut["truncated"] is True and cut["text"] == diff["text"][:10]
    assert unchanged["code"] == "not_found" and "run.diff" in unchanged["message"]
    assert no_dir["code"] == "not_found" and escape["code"] == "invalid_argument"
    assert not_isolated["code"] == "unsupported" and "isolation" in not_isolated["message"]


async def test_agentdeck_commits_only_onto_the_runs_branch_wherever_the_agent_pointed_git(tmp_path: Path, repo: Path) -> None:
    before = checkout_state(repo), git(repo, "rev-parse", "main")
    async with local_client(worktree_config(tmp_path)) as client:
        switched = await finished(client, (await call(client, "spawn_agent", {"agent": "switcher", "prompt": "x"}))["id"])
        redirected = await finished(client, (await call(client, "spawn_agent", {"agent": "redirecter", "prompt": "x"}))["id"])
    moved, rewired = result_of(switched), result_of(redirected)
    assert switched["state"] == redirected["state"] == "succeeded"
    assert moved["note"].startswith("the agent left HEAD at refs/heads/side")
    assert git(repo, "rev-parse", "side") == moved["base_commit"]  # the agent's branch got nothing of ours
    assert [f["path"] for f in moved["files"]] == ["side.txt"] and moved["uncommitted"]["committed"] == moved["head_commit"]
    assert [f["path"] for f in rewired["files"]] == ["left.txt"] and rewired["removed"] is True
    assert (checkout_state(repo), git(repo, "rev-parse", "main")) == before
    assert git(repo, "worktree", "list", "--porcelain").count("worktree ") == 1


async def test_the_base_ref_defaults_to_head_and_a_spawn_may_choose_one_the_config_allows(tmp_path: Path, repo: Path) -> None:
    async with local_client(worktree_config(tmp_path)) as client:
        on_feature = await call(client, "spawn_agent", {"agent": "picker", "prompt": "x", "workspace": "proj", "metadata": {"base_ref": "feature"}})
        on_feature = await finished(client, on_feature["id"])
        followup = await finished(client, (await call(client, "send_followup", {"run_id": on_feature["id"], "message": "more"}))["id"])
        refused = await fail(client, "spawn_agent", {"agent": "picker", "prompt": "x", "workspace": "proj", "metadata": {"base_ref": "HEAD~1"}})
    result = result_of(on_feature)
    assert result["base_ref"] == "feature" and result["base_commit"] == git(repo, "rev-parse", "feature")
    assert git(repo, "show", f"{result['branch']}:feature.txt") == "feature work"
    # a follow-up continues from its run's branch, on a branch of its own
    continued = result_of(followup)
    assert continued["base_ref"] == result["branch"] and continued["base_commit"] == result["head_commit"]
    assert continued["branch"] == f"agentdeck/{followup['id']}" and continued["commits"][0]["subject"] == "coder: more"
    assert refused["code"] == "invalid_argument" and "feature*" in refused["message"]


async def test_bad_repos_and_refs_are_refused_before_anything_is_created(tmp_path: Path, repo: Path) -> None:
    (tmp_path / "ws" / "not-a-repo").mkdir()
    outside = make_repo(tmp_path / "elsewhere")
    (tmp_path / "ws" / "link").symlink_to(outside)
    before = checkout_state(repo), git(repo, "branch", "--list")
    async with local_client(worktree_config(tmp_path)) as client:
        cases = {
            "no such ref": {"agent": "coder", "metadata": {"base_ref": "no-such-branch"}},
            "option as ref": {"agent": "coder", "metadata": {"base_ref": "--output=/tmp/x"}},
            "not a checkout": {"agent": "picker", "workspace": "not-a-repo"},
            "missing folder": {"agent": "picker", "workspace": "gone"},
            "outside by ..": {"agent": "picker", "workspace": "../elsewhere"},
            "outside by link": {"agent": "picker", "workspace": "link"},
            "no repo at all": {"agent": "picker"},
        }
        errors = {name: await fail(client, "spawn_agent", {"prompt": "x", **args}) for name, args in cases.items()}
        runs = await call(client, "list_runs", {})
    assert {name: e["code"] for name, e in errors.items()} == dict.fromkeys(cases, "invalid_argument")
    assert "no-such-branch" in errors["no such ref"]["message"] and "names no commit" in errors["no such ref"]["message"]
    assert "not a git checkout" in errors["not a checkout"]["message"]
    assert "outside workspace_root" in errors["outside by .."]["message"] and "outside workspace_root" in errors["outside by link"]["message"]
    assert "workspace" in errors["no repo at all"]["message"]
    assert runs["runs"] == [] and not (tmp_path / "data" / "worktrees").exists()
    assert (checkout_state(repo), git(repo, "branch", "--list")) == before
    assert git(outside, "branch", "--list") == "feature\n* main"


async def test_a_worktree_git_cannot_make_fails_the_run_with_worktree_failed(tmp_path: Path, repo: Path) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "worktrees").write_text("a file where the worktrees folder should be")
    async with local_client(worktree_config(tmp_path)) as client:
        run = await finished(client, (await call(client, "spawn_agent", {"agent": "coder", "prompt": "x"}))["id"])
    assert run["state"] == "failed" and run["error"]["code"] == "worktree_failed"
    assert "cannot make the folder for worktrees" in run["error"]["message"]
    assert result_of(run)["state"] == "failed" and git(repo, "branch", "--list", "agentdeck/*") == ""


async def test_keep_worktree_keeps_the_folder_and_the_branch(tmp_path: Path, repo: Path) -> None:
    async with local_client(worktree_config(tmp_path)) as client:
        run = await finished(client, (await call(client, "spawn_agent", {"agent": "kept", "prompt": "x"}))["id"])
    result = result_of(run)
    assert result["removed"] is False and result["kept_reason"] == "keep_worktree is set"
    assert (Path(result["path"]) / "src" / "draft.py").read_text() == "draft\n"
    assert git(Path(result["path"]), "status", "--porcelain") == ""  # the draft was committed all the same


def _set_host(tmp_path: Path, run_id: str, host: str) -> None:
    """Make the store say another machine ran the run (as a PostgreSQL store shared by several would)."""
    url = store_url()
    sql = "UPDATE runs SET worktree = replace(worktree, '\"host\": \"' || {p} || '\"', '\"host\": \"' || {p} || '\"') WHERE id = {p}"
    args = (socket.gethostname(), host, run_id)
    if url:
        import psycopg

        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(sql.format(p="%s"), args)
        return
    with contextlib.closing(sqlite3.connect(tmp_path / "data" / "agentdeck.db")) as db, db:
        db.execute(sql.format(p="?"), args)


async def test_the_result_names_the_host_that_holds_the_worktree_and_other_hosts_say_where_it_is(tmp_path: Path, repo: Path) -> None:
    async with local_client(worktree_config(tmp_path)) as client:
        run = await finished(client, (await call(client, "spawn_agent", {"agent": "coder", "prompt": "x"}))["id"])
        _set_host(tmp_path, run["id"], "build-box-7")
        moved = result_of(await call(client, "get_run", {"run_id": run["id"]}))
        error = await fail(client, "download_session_file", {"run_id": run["id"], "path": "run.diff"})
    assert result_of(run)["host"] == socket.gethostname() and moved["host"] == "build-box-7"
    assert moved["files"] == result_of(run)["files"]  # the record itself is in the store, readable anywhere
    assert error["code"] == "unavailable" and "build-box-7" in error["message"] and str(repo) in error["message"]


def _running(pid: int) -> bool:
    try:
        return "zombie" not in Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False


async def test_the_reaper_records_and_removes_the_worktree_of_a_run_whose_supervisor_died(tmp_path: Path, repo: Path) -> None:
    config = worktree_config(tmp_path)
    async with local_client(config) as client:
        run = await call(client, "spawn_agent", {"agent": "slow", "prompt": "x"})
        with anyio.fail_after(30):
            while not any(e["text"] == "started" for e in (await call(client, "get_run_events", {"run_id": run["id"]}))["events"]):
                await anyio.sleep(0.1)
    ((supervisor, child),) = store_rows(tmp_path, f"SELECT supervisor_pid, child_pid FROM runs WHERE id = '{run['id']}'")
    folder = tmp_path / "data" / "worktrees" / run["id"]
    assert (folder / "wip.txt").exists()
    os.kill(supervisor, signal.SIGKILL)
    os.killpg(child, signal.SIGKILL)
    with anyio.fail_after(10):
        while _running(supervisor):
            await anyio.sleep(0.05)
    # a server that starts sweeps the worktrees of dead runs without being asked
    async with local_client(config) as client:
        with anyio.fail_after(30):
            while folder.exists() or not store_rows(tmp_path, f"SELECT id FROM runs WHERE id = '{run['id']}' AND worktree LIKE '%\"reaped\"%'"):
                await anyio.sleep(0.1)
        done = await call(client, "get_run", {"run_id": run["id"]})
        diff = file_result(await client.call_tool("download_session_file", {"run_id": run["id"], "path": "run.diff"}))
    assert done["state"] == "failed" and done["error"]["code"] == "supervisor_lost"
    result = result_of(done)
    assert result["reaped"] is True and result["removed"] is True and result["run_state"] == "failed"
    assert result["uncommitted"]["files"] == ["wip.txt"] and git(repo, "rev-parse", result["branch"]) == result["head_commit"]
    assert "+wip" in diff["text"]
    assert git(repo, "worktree", "list", "--porcelain").count("worktree ") == 1
