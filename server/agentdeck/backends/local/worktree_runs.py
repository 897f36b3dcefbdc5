"""Worktree isolation in the local backend: planning a run's worktree, and reaping it when its supervisor died.

An agent with `isolation = "worktree"` works on a git checkout (its `repo`, or the spawn's
`workspace`), both under workspace_root. Each run gets a worktree of its own on a new branch
`agentdeck/<run id>` (worktree.py); its supervisor creates it before the agent starts and
records the outcome before the run ends. Here: the checks made at spawn, before anything is
created, where a follow-up works, and the reaper's share (runs whose supervisor died). The
outcome shows as a `git_worktree` artifact of the run (rows.py), and the change as session
files (session_files.py).
"""

from __future__ import annotations

import fnmatch
import functools
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio

from agentdeck.backends.local import worktree
from agentdeck.backends.local.rows import loads
from agentdeck.backends.local.store import Row, Store
from agentdeck.config import AgentConfig
from agentdeck.errors import InvalidArgument

__all__ = ["WorktreeRuns"]

log = logging.getLogger("agentdeck.local")


@dataclass(eq=False, repr=False)
class WorktreeRuns:
    """Worktrees of this machine (`host`): planned under `data_dir`, for checkouts under `workspace_root`."""

    store: Store
    data_dir: Path
    workspace_root: Path
    host: str

    # at spawn -----------------------------------------------------------------------------

    async def plan(self, spec: AgentConfig, workspace: str | None, fields: dict[str, Any], run_id: str) -> dict[str, Any] | None:
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
            return worktree.plan(repo, base_ref, run_id, self.data_dir / "worktrees" / run_id, self.host)
        except worktree.WorktreeError as exc:
            raise InvalidArgument(str(exc)) from None

    def followup_place(self, row: Row) -> dict[str, Any]:
        """Where a follow-up works: a worktree run's follow-up continues from its branch."""
        tree = loads(row.get("worktree"))
        if tree:
            return {"workspace": os.path.relpath(tree["repo"], self.workspace_root), "base_ref": tree["branch"]}
        return {"workspace": os.path.relpath(row["workspace"], self.workspace_root) if row["workspace"] else None}

    # when its supervisor died ------------------------------------------------------------

    async def reap(self, row: Row, run_state: str) -> None:
        """The reaper's share: a dead supervisor's worktree gets its outcome recorded and its folder removed."""
        tree = loads(row.get("worktree"))
        if not tree or tree.get("state") not in ("planned", "active") or tree.get("host") != self.host:
            return  # another machine's worktree is that machine's to reap
        outcome = await anyio.to_thread.run_sync(functools.partial(worktree.finish, tree, run_state, keep=tree.get("keep", False)))
        await self.store.set_worktree(row["id"], outcome | {"reaped": True})
        log.info("reaped the worktree of run %s: %s", row["id"], worktree.describe(outcome))
