"""Worktree isolation in the local backend: planning a run's worktree, its result, its change as session files.

An agent with `isolation = "worktree"` works on a git checkout (its `repo`, or the spawn's
`workspace`), both under workspace_root. Each run gets a worktree of its own on a new branch
`agentdeck/<run id>` (worktree.py); its supervisor creates it before the agent starts and
records the outcome before the run ends. Here: the checks made at spawn, before anything is
created; the outcome as a `git_worktree` artifact of the run; the reaper's share (runs whose
supervisor died); and the session-files tools, which show a run's change: the changed files
as they are at the run's last commit, and `run.diff`, the run's whole unified diff.
"""

from __future__ import annotations

import base64
import fnmatch
import functools
import logging
import mimetypes
import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio

from agentdeck.backends.azure_foundry_wire import home_path, utf8
from agentdeck.backends.local import worktree
from agentdeck.backends.local.limits import loads
from agentdeck.backends.local.store import Store
from agentdeck.config import AgentConfig, LocalConfig
from agentdeck.errors import AgentdeckError, InvalidArgument, NotFound, Unavailable, Unsupported
from agentdeck.models import Artifact, FileContent, SessionFile, SessionFileList

__all__ = ["WorktreeRuns"]

log = logging.getLogger("agentdeck.local")


class WorktreeRuns:
    """Mixed into LocalBackend, which provides these attributes and `_get`."""

    name: str
    config: LocalConfig
    data_dir: Path
    workspace_root: Path
    store: Store
    _host: str
    _get: Callable[[str], Awaitable[dict[str, Any]]]

    # at spawn -----------------------------------------------------------------------------

    async def _plan_worktree(self, spec: AgentConfig, workspace: str | None, fields: dict[str, Any], run_id: str) -> dict[str, Any] | None:
        """The run's worktree plan when its agent is isolated; every check is made here, nothing created.

        `fields` may carry `base_ref` (a follow-up continuing its run's branch, not checked against
        allowed_base_refs); the spawn's own choice is `metadata.base_ref`.
        """
        inherited = fields.pop("base_ref", None)
        if spec.isolation != "worktree":
            return None
        chosen = (fields.get("metadata") or {}).get("base_ref")
        if chosen is not None and not isinstance(chosen, str):
            raise InvalidArgument("metadata.base_ref must be a string naming a branch, tag or commit")
        if chosen is not None and not any(fnmatch.fnmatchcase(chosen, p) for p in spec.allowed_base_refs):
            raise InvalidArgument(f"base ref {chosen!r} is not allowed for this agent; allowed: {', '.join(spec.allowed_base_refs) or 'none'}")
        folder = self._repo_folder(spec, workspace)
        plan = functools.partial(self._checked_plan, folder, inherited or chosen or spec.base_ref, run_id)
        tree = await anyio.to_thread.run_sync(plan)
        return tree | {"keep": spec.keep_worktree}

    def _repo_folder(self, spec: AgentConfig, workspace: str | None) -> Path:
        root = self.workspace_root
        if workspace:
            folder = (root / workspace).resolve()
        elif spec.repo is not None:
            folder = (root / spec.repo.expanduser()).resolve()  # an absolute repo replaces the root
        else:
            raise InvalidArgument(f"This agent works in a git worktree: pass workspace naming a git checkout under {root}, or set repo in its configuration")
        if folder != root and root not in folder.parents:
            raise InvalidArgument(f"The repository {folder} is outside workspace_root {root}; name a checkout under it (or widen workspace_root in the configuration)")
        return folder

    def _checked_plan(self, folder: Path, base_ref: str, run_id: str) -> dict[str, Any]:
        try:
            repo = worktree.repo_root(folder)
            if repo != self.workspace_root and self.workspace_root not in repo.parents:
                raise InvalidArgument(f"{folder} belongs to the git checkout {repo}, which is outside workspace_root {self.workspace_root}; name a checkout under it")
            return worktree.plan(repo, base_ref, run_id, self.data_dir / "worktrees" / run_id, self._host)
        except worktree.WorktreeError as exc:
            raise InvalidArgument(str(exc)) from None

    def _followup_place(self, row: dict[str, Any]) -> dict[str, Any]:
        """Where a follow-up works: a worktree run's follow-up continues from its branch."""
        tree = loads(row.get("worktree"))
        if tree:
            return {"workspace": os.path.relpath(tree["repo"], self.workspace_root), "base_ref": tree["branch"]}
        return {"workspace": os.path.relpath(row["workspace"], self.workspace_root) if row["workspace"] else None}

    # the result ---------------------------------------------------------------------------

    def _worktree_artifacts(self, row: dict[str, Any]) -> list[Artifact]:
        tree = loads(row.get("worktree"))
        if not tree:
            return []
        return [Artifact(kind="git_worktree", name=tree["branch"], data={k: v for k, v in tree.items() if k != "keep"})]

    async def _reap_worktree(self, row: dict[str, Any], run_state: str) -> None:
        """The reaper's share: a dead supervisor's worktree gets its outcome recorded and its folder removed."""
        tree = loads(row.get("worktree"))
        if not tree or tree.get("state") not in ("planned", "active") or tree.get("host") != self._host:
            return  # another machine's worktree is that machine's to reap
        outcome = await anyio.to_thread.run_sync(functools.partial(worktree.finish, tree, run_state, keep=tree.get("keep", False)))
        await self.store.set_worktree(row["id"], outcome | {"reaped": True})
        log.info("reaped the worktree of run %s: %s", row["id"], worktree.describe(outcome))

    async def _sweep_worktrees(self) -> None:
        """At start: reap the worktree folders this machine still holds for runs that are over."""
        folder = self.data_dir / "worktrees"
        try:
            for run_id in [p.name for p in folder.iterdir()] if folder.is_dir() else []:
                if await self.store.get_run(run_id) is not None:
                    await self._get(run_id)  # reaps it if its supervisor died
        except AgentdeckError as exc:
            log.warning("could not look for worktrees left by dead runs: %s", exc.message)

    # session files ------------------------------------------------------------------------

    async def _tree(self, run_id: str) -> dict[str, Any]:
        row = await self._get(run_id)
        tree = loads(row.get("worktree"))
        if not tree:
            raise Unsupported(
                f"Run {run_id} did not work in a git worktree, so it has no change to show; "
                f"only agents with isolation = \"worktree\" have session files on backend '{self.name}'."
            )
        if tree.get("host") != self._host:
            raise Unavailable(
                f"Run {run_id}'s branch {tree['branch']} is in {tree['repo']} on host {tree['host']}; "
                "read it through an agentdeck on that host (get_run lists the changed files from anywhere).",
                retryable=False,
            )
        if tree.get("state") == "failed":
            raise NotFound(f"Run {run_id} has no change: its worktree was never created ({tree.get('error', 'unknown error')}).")
        return dict(tree)

    async def _git(self, fn: Any, *args: Any) -> Any:
        try:
            return await anyio.to_thread.run_sync(fn, *args)
        except worktree.WorktreeError as exc:
            raise NotFound(f"The run's branch cannot be read: {exc}") from None

    async def list_session_files(self, run_id: str, path: str = "") -> SessionFileList:
        tree = await self._tree(run_id)
        clean = home_path(path, allow_home=True)
        sizes: dict[str, int | None] = await self._git(worktree.changed, tree)
        entries: dict[str, SessionFile] = {}
        if not clean:
            diff_size = len(await self._git(worktree.diff, tree))
            entries[worktree.DIFF_NAME] = SessionFile(path=worktree.DIFF_NAME, backend=self.name, size=diff_size)
        prefix = f"{clean}/" if clean else ""
        for changed, size in sizes.items():
            if not changed.startswith(prefix):
                continue
            first, _, rest = changed[len(prefix) :].partition("/")
            entry = prefix + first
            entries.setdefault(entry, SessionFile(path=entry, backend=self.name, is_dir=bool(rest), size=None if rest else size))
        if clean and not entries:
            raise NotFound(f"No directory '{clean}' among the files run {run_id} changed; list_session_files with an empty path shows them.")
        return SessionFileList(run_id=run_id, backend=self.name, path=clean, files=sorted(entries.values(), key=lambda f: f.path))

    async def download_session_file(self, run_id: str, path: str, max_bytes: int) -> FileContent:
        tree = await self._tree(run_id)
        clean = home_path(path, allow_home=False)
        if clean == worktree.DIFF_NAME:
            data, mime = await self._git(worktree.diff, tree), "text/x-diff"
        elif clean in await self._git(worktree.changed, tree):
            data, mime = await self._git(worktree.read, tree, clean), mimetypes.guess_type(clean)[0] or "application/octet-stream"
        else:
            raise NotFound(f"Run {run_id} did not change '{clean}' (or deleted it); list_session_files shows its changed files, and {worktree.DIFF_NAME} has the whole diff.")
        kept, truncated = data[:max_bytes], len(data) > max_bytes
        text = utf8(kept, truncated)
        return FileContent(
            run_id=run_id,
            backend=self.name,
            path=clean,
            size=len(data),
            truncated=truncated,
            mime_type=mime or ("text/plain" if text is not None else "application/octet-stream"),
            text=text,
            base64=None if text is not None else base64.b64encode(kept).decode("ascii"),
        )
