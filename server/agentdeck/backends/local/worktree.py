"""Git worktrees for runs: one fresh worktree and branch per run, and the run's change as its result.

    plan(repo, base_ref, run_id, folder, host)   checks and fixes everything, creates nothing
    create(plan)                                 `git worktree add -b agentdeck/<run_id>` (the supervisor)
    finish(plan, state)                          the outcome; commits what was left; removes the folder
    changed(info) / read(info, path) / diff(info) what a reviewer reads through the session-files tools

The user's checkout is only read (rev-parse); git writes the new branch and the worktree's
admin files under `.git/worktrees/`, never the checkout's files, index or current branch.
Every git call is an argv (no shell) with hooks and auto-gc off and the GIT_* variables that
could point git elsewhere removed. Work the agent left uncommitted is committed onto the run's
branch by agentdeck, under its own name, so that removing the folder loses nothing and the
branch alone is the whole change; when that commit fails, the folder is kept and the result
says so. Stdlib only: the run supervisor imports it.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

__all__ = ["DIFF_NAME", "WorktreeError", "branch_for", "changed", "create", "describe", "diff", "finish", "plan", "read", "remove", "repo_root"]

DIFF_NAME = "run.diff"
"""The session file that holds the run's whole unified diff."""

_GIT_TIMEOUT = 120.0
_LOCK_RETRIES = (0.05, 0.1, 0.2, 0.4, 0.8, 1.6, 3.2)  # about six seconds of git lock contention
_MAX_COMMITS = 100
_MAX_FILES = 500
_SAFE = ("-c", "core.hooksPath=/dev/null", "-c", "gc.auto=0", "-c", "core.fsmonitor=false", "-c", "color.ui=false")
_REPO_VARS = ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "GIT_OBJECT_DIRECTORY", "GIT_COMMON_DIR", "GIT_NAMESPACE", "GIT_CEILING_DIRECTORIES")
_AUTHOR = {
    "GIT_AUTHOR_NAME": "agentdeck",
    "GIT_AUTHOR_EMAIL": "agentdeck@localhost",
    "GIT_COMMITTER_NAME": "agentdeck",
    "GIT_COMMITTER_EMAIL": "agentdeck@localhost",
}


class WorktreeError(Exception):
    """A repo, ref or git step that does not work; the message says what to do."""


def _env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _REPO_VARS}
    env.update(GIT_TERMINAL_PROMPT="0", GIT_LITERAL_PATHSPECS="1", LC_ALL="C")
    env.update(extra or {})
    return env


def _git(cwd: Path | str, *args: str, env: dict[str, str] | None = None, ok: tuple[int, ...] = (0,)) -> subprocess.CompletedProcess[bytes]:
    command = next((a for a in args if not a.startswith("-")), "")
    try:
        done = subprocess.run(["git", *_SAFE, *args], cwd=cwd, env=_env(env), capture_output=True, timeout=_GIT_TIMEOUT, stdin=subprocess.DEVNULL)
    except FileNotFoundError:
        if not Path(cwd).is_dir():
            raise WorktreeError(f"{cwd} does not exist (any more)") from None
        raise WorktreeError("git is not installed or not on PATH; install git to use worktree isolation") from None
    except subprocess.TimeoutExpired:
        raise WorktreeError(f"git {command} took longer than {_GIT_TIMEOUT:.0f} s in {cwd}") from None
    if done.returncode not in ok:
        raise WorktreeError(f"git {command} failed in {cwd}: {done.stderr.decode(errors='replace').strip()[-500:]}")
    return done


def _out(cwd: Path | str, *args: str, env: dict[str, str] | None = None) -> str:
    return _git(cwd, *args, env=env).stdout.decode(errors="replace").strip()


# What git says when another git process is half-way through changing the same repository:
# a held lock, or a worktree whose admin files are still being written.
_TRANSIENT = re.compile(r"\.lock\b|[Uu]nable to create|[Ff]ile exists|failed to read")


@contextlib.contextmanager
def _repo_lock(repo: str) -> Iterator[None]:
    """One agentdeck process at a time adds or removes worktrees of `repo` on this machine.

    `git worktree add` reads every other worktree's admin files, and fails on one that another
    `add` is still writing; taking turns avoids that. The lock file is in the temp dir, so the
    repository gets nothing of ours but the worktree itself.
    """
    name = hashlib.sha256(os.path.realpath(repo).encode()).hexdigest()[:24]
    path = Path(tempfile.gettempdir()) / f"agentdeck-{os.getuid()}-{name}.lock"
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _retrying(cwd: Path | str, *args: str, before: Callable[[], list[str]] | None = None) -> None:
    """A git write another git process may get in the way of for a moment: wait and try again.

    `before` gives the arguments afresh for each attempt, when a failed attempt changed what to ask.
    """
    for delay in (*_LOCK_RETRIES, None):
        try:
            _git(cwd, *(before() if before else args))
            return
        except WorktreeError as exc:
            if delay is None or not _TRANSIENT.search(str(exc)):
                raise
        time.sleep(delay)


def branch_for(run_id: str) -> str:
    return f"agentdeck/{run_id}"


def repo_root(folder: Path) -> Path:
    """The top of the git checkout `folder` is in.

    Raises:
        WorktreeError: it is not in a git checkout (or is a bare repository).
    """
    if not folder.is_dir():
        raise WorktreeError(f"{folder} does not exist; name a git checkout")
    try:
        top = _out(folder, "rev-parse", "--show-toplevel")
    except WorktreeError:
        top = ""
    if not top:
        raise WorktreeError(f"{folder} is not a git checkout (git rev-parse --show-toplevel found none); name a folder that `git clone` or `git init` made")
    return Path(top).resolve()


def plan(repo: Path, base_ref: str, run_id: str, folder: Path, host: str) -> dict[str, Any]:
    """Check the repo and the base ref and fix the base commit; nothing is created yet.

    Raises:
        WorktreeError: the ref does not name a commit of the repo.
    """
    if not base_ref or base_ref.startswith("-") or any(c in base_ref for c in "\x00\n\r"):
        raise WorktreeError(f"base ref {base_ref!r} is not a ref name; pass a branch, tag or commit such as main or HEAD")
    try:
        base_commit = _out(repo, "rev-parse", "--verify", "--quiet", "--end-of-options", f"{base_ref}^{{commit}}")
    except WorktreeError:
        base_commit = ""
    if not base_commit:
        raise WorktreeError(f"base ref {base_ref!r} names no commit in {repo}; pass an existing branch, tag or commit (git branch -a lists them)")
    return {
        "repo": str(repo),
        "path": str(folder),
        "branch": branch_for(run_id),
        "base_ref": base_ref,
        "base_commit": base_commit,
        "host": host,
        "state": "planned",
    }


def create(info: dict[str, Any]) -> dict[str, Any]:
    """Add the run's worktree on its new branch at the base commit; returns the plan with its git dir."""
    try:
        Path(info["path"]).parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise WorktreeError(f"cannot make the folder for worktrees, {Path(info['path']).parent}: {exc.strerror or exc}") from None

    def arguments() -> list[str]:
        # An attempt that git cut short may have made the branch already: then check it out.
        if _branch_tip(info):
            shutil.rmtree(info["path"], ignore_errors=True)
            return ["worktree", "add", "--quiet", "--", info["path"], info["branch"]]
        return ["worktree", "add", "--quiet", "-b", info["branch"], "--", info["path"], info["base_commit"]]

    with _repo_lock(info["repo"]):
        _retrying(info["repo"], before=arguments)
    return info | {"git_dir": _out(info["path"], "rev-parse", "--absolute-git-dir")}


def _in(info: dict[str, Any], folder: Path) -> tuple[str, ...]:
    """Git options that address the run's worktree by the admin dir recorded when it was made,
    so a `.git` the agent rewrote cannot point agentdeck's own git calls at another repository."""
    git_dir = info.get("git_dir") or _out(folder, "rev-parse", "--absolute-git-dir")
    return (f"--git-dir={git_dir}", f"--work-tree={folder}")


def _leftovers(folder: Path, where: tuple[str, ...]) -> list[str]:
    raw = _git(folder, *where, "status", "--porcelain=v1", "-z", "--untracked-files=all").stdout.decode(errors="replace")
    entries, names = raw.split("\0"), []
    i = 0
    while i < len(entries):
        entry = entries[i]
        if len(entry) > 3:
            names.append(entry[3:])
            if entry[0] in "RC":
                i += 1  # a rename's source path follows as its own entry
        i += 1
    return names


def _commit_leftovers(info: dict[str, Any], folder: Path, run_state: str) -> dict[str, Any]:
    """Commit what the folder holds beyond its last commit onto the run's branch, and only there.

    Plumbing rather than `git commit`: the new commit's parent is the branch's tip and only the
    branch's ref moves, wherever the agent left HEAD.
    """
    where = _in(info, folder)
    files = _leftovers(folder, where)
    if not files:
        return {"left": False, "files": []}
    message = f"agentdeck: commit what run {info['branch'].split('/', 1)[1]} left uncommitted (run {run_state})"
    try:
        _git(folder, *where, "add", "--all")
        tree = _out(folder, *where, "write-tree")
        parent = _branch_tip(info)
        commit = _out(folder, *where, "commit-tree", tree, "-p", parent, "-m", message, env=_AUTHOR)
        _git(folder, *where, "update-ref", "-m", message, f"refs/heads/{info['branch']}", commit, parent)
    except WorktreeError as exc:
        return {"left": True, "files": files[:_MAX_FILES], "committed": None, "error": str(exc)}
    return {"left": True, "files": files[:_MAX_FILES], "committed": commit}


def _commits(repo: str, base: str, head: str) -> tuple[int, list[dict[str, str]]]:
    count = int(_out(repo, "rev-list", "--count", f"{base}..{head}") or 0)
    raw = _out(repo, "log", f"--max-count={_MAX_COMMITS}", "--format=%H%x00%s", f"{base}..{head}")
    commits = [dict(zip(("sha", "subject"), line.split("\0", 1))) for line in raw.splitlines() if line]
    return count, commits[::-1]


def _files(repo: str, base: str, head: str) -> list[dict[str, Any]]:
    statuses = _git(repo, "diff", "--no-renames", "--name-status", "-z", base, head).stdout.decode(errors="replace").split("\0")
    status = {statuses[i + 1]: statuses[i] for i in range(0, len(statuses) - 1, 2)}
    files = []
    for line in _git(repo, "diff", "--no-renames", "--numstat", "-z", base, head).stdout.decode(errors="replace").split("\0"):
        added, _, rest = line.partition("\t")
        deleted, _, path = rest.partition("\t")
        if path:
            binary = added == "-"
            files.append({"path": path, "status": status.get(path, "M"), "added": 0 if binary else int(added), "deleted": 0 if binary else int(deleted), "binary": binary})
    return files


def finish(info: dict[str, Any], run_state: str, *, keep: bool = False) -> dict[str, Any]:
    """The run's outcome: commits, changed files and leftovers; the folder is then removed unless kept.

    Never raises: a git step that fails is reported in the result's `error`.
    """
    result = dict(info) | {"state": "finished", "run_state": run_state, "finished_at": time.time()}
    folder = Path(info["path"])
    try:
        if folder.is_dir():
            result["uncommitted"] = _commit_leftovers(info, folder, run_state)
            on = _git(folder, *_in(info, folder), "symbolic-ref", "--quiet", "HEAD", ok=(0, 1)).stdout.decode().strip()
            if on != f"refs/heads/{info['branch']}":
                result["note"] = f"the agent left HEAD at {on or 'a detached commit'}; the result is the branch {info['branch']}"
        else:
            result["uncommitted"] = {"left": False, "files": []}
        head = _branch_tip(info)
        if not head:
            raise WorktreeError(f"the branch {info['branch']} was never created (the run stopped before its worktree was made)")
        result["head_commit"] = head
        result["commit_count"], result["commits"] = _commits(info["repo"], info["base_commit"], head)
        files = _files(info["repo"], info["base_commit"], head)
        result["files"] = files[:_MAX_FILES]
        result["diffstat"] = {"files": len(files), "insertions": sum(f["added"] for f in files), "deletions": sum(f["deleted"] for f in files)}
    except (WorktreeError, OSError, ValueError) as exc:  # the run must end all the same
        result["error"] = str(exc)
    # Remove the folder only when nothing in it is unsaved: a commit that failed, or an error
    # before the leftovers were looked at, keeps it.
    left = result.get("uncommitted")
    unsaved = folder.is_dir() and (left is None or (left["left"] and not left.get("committed")))
    result["removed"] = False
    if keep or unsaved:
        result["kept_reason"] = "keep_worktree is set" if keep else "work the agent left could not be committed"
    else:
        result["removed"] = remove(info)
    return result


def remove(info: dict[str, Any]) -> bool:
    """Remove the run's worktree folder (the branch stays); True when it is gone."""
    with _repo_lock(info["repo"]):
        try:
            _retrying(info["repo"], "worktree", "remove", "--force", "--", info["path"])
        except WorktreeError:
            # Git refused (or the repo is gone): delete the folder, then let git drop the
            # admin entries of worktrees whose folders are gone.
            shutil.rmtree(info["path"], ignore_errors=True)
            try:
                _retrying(info["repo"], "worktree", "prune")
            except WorktreeError:
                pass
    return not Path(info["path"]).exists()


def _branch_tip(info: dict[str, Any]) -> str:
    return _git(info["repo"], "rev-parse", "--verify", "--quiet", f"refs/heads/{info['branch']}", ok=(0, 1)).stdout.decode().strip()


def _head(info: dict[str, Any]) -> str:
    """The run's last commit: recorded once it ended, else the branch as it stands."""
    if info.get("head_commit"):
        return str(info["head_commit"])
    head = _branch_tip(info)
    if not head:
        raise WorktreeError(f"the branch {info['branch']} does not exist yet; the run has not started its worktree")
    return head


def diff(info: dict[str, Any]) -> bytes:
    """The unified diff of the run, from its base commit to its last commit."""
    return _git(info["repo"], "diff", "--no-ext-diff", "--no-textconv", "--no-renames", "--binary", info["base_commit"], _head(info)).stdout


def changed(info: dict[str, Any]) -> dict[str, int | None]:
    """The paths the run changed and present at its last commit, each with its size in bytes."""
    head = _head(info)
    listed = _git(info["repo"], "diff", "--no-renames", "--name-only", "--diff-filter=d", "-z", info["base_commit"], head).stdout
    paths = [p for p in listed.decode(errors="replace").split("\0") if p]
    sizes: dict[str, int | None] = dict.fromkeys(paths[:_MAX_FILES])
    if paths:
        listing = _git(info["repo"], "ls-tree", "-l", "-z", "--full-tree", head, "--", *sizes).stdout.decode(errors="replace")
        for entry in listing.split("\0"):
            meta, _, name = entry.partition("\t")
            parts = meta.split()
            if name in sizes and len(parts) == 4 and parts[3].isdigit():
                sizes[name] = int(parts[3])
    return sizes


def read(info: dict[str, Any], path: str) -> bytes:
    """A changed file's content at the run's last commit."""
    return _git(info["repo"], "cat-file", "blob", f"{_head(info)}:{path}").stdout


def describe(result: dict[str, Any]) -> str:
    """One line for people: where the run's change is and how big it is."""
    if result.get("state") == "failed" or not result.get("head_commit"):
        return f"worktree: no change recorded on {result['branch']}: {result.get('error', 'the run ended before its worktree was made')}"
    stat = result.get("diffstat") or {}
    text = (
        f"worktree: branch {result['branch']} on {result['host']}, {result.get('commit_count', 0)} commits since {result['base_commit'][:12]},"
        f" {stat.get('files', 0)} files changed (+{stat.get('insertions', 0)} -{stat.get('deletions', 0)})"
    )
    left = result.get("uncommitted") or {}
    if left.get("committed"):
        text += f"; agentdeck committed {len(left.get('files', []))} files the agent left uncommitted"
    elif left.get("left"):
        text += "; uncommitted work was left and could not be committed"
    if not result.get("removed"):
        text += f"; folder kept at {result['path']} ({result.get('kept_reason', 'removal failed')})"
    return text
