"""A worktree run's change as session files: the files it changed, as they are at its last commit,
and `run.diff` (worktree.DIFF_NAME), the run's whole unified diff. Read with git on the machine
that holds the worktree's branch.
"""

from __future__ import annotations

import mimetypes
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import anyio

from agentdeck.backends.files import from_bytes, home_path
from agentdeck.backends.local import worktree
from agentdeck.backends.local.rows import loads
from agentdeck.backends.local.store import Row
from agentdeck.errors import NotFound, Unavailable, Unsupported
from agentdeck.models import FileContent, SessionFile, SessionFileList

__all__ = ["SessionFiles"]


@dataclass(eq=False, repr=False)
class SessionFiles:
    """The session files of backend `name`'s worktree runs on this machine (`host`); `get_row` reads a run's row, reaped."""

    name: str
    host: str
    get_row: Callable[[str], Awaitable[Row]]

    async def _tree(self, run_id: str) -> dict[str, Any]:
        row = await self.get_row(run_id)
        tree = loads(row.get("worktree"))
        if not tree:
            raise Unsupported(
                f"Run {run_id} did not work in a git worktree, so it has no change to show; "
                f"only agents with isolation = \"worktree\" have session files on backend '{self.name}'."
            )
        if tree.get("host") != self.host:
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

    async def list_files(self, run_id: str, path: str) -> SessionFileList:
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

    async def download(self, run_id: str, path: str, max_bytes: int) -> FileContent:
        tree = await self._tree(run_id)
        clean = home_path(path, allow_home=False)
        if clean == worktree.DIFF_NAME:
            data, mime = await self._git(worktree.diff, tree), "text/x-diff"
        elif clean in await self._git(worktree.changed, tree):
            data, mime = await self._git(worktree.read, tree, clean), mimetypes.guess_type(clean)[0] or "application/octet-stream"
        else:
            raise NotFound(f"Run {run_id} did not change '{clean}' (or deleted it); list_session_files shows its changed files, and {worktree.DIFF_NAME} has the whole diff.")
        return from_bytes(run_id, self.name, clean, data, max_bytes, mime)
