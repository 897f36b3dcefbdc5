"""Session files of Azure AI Foundry hosted agents: the sandbox home directory of a session.

A mixin of `AzureFoundryBackend`; paths are checked before any request (no absolute paths, no `..`).
"""

from __future__ import annotations

import mimetypes
import posixpath
from typing import TYPE_CHECKING, Any

import httpx2

from agentdeck.backends.dialect import Overrides, explain
from agentdeck.backends.files import from_bytes, home_path
from agentdeck.backends.http import collect_pages
from agentdeck.backends.times import parse_time
from agentdeck.errors import Conflict, InvalidArgument
from agentdeck.models import FileContent, SessionFile, SessionFileList

__all__ = ["SessionFiles"]

_MAX_LIST_ENTRIES = 1000


class SessionFiles:
    """list/download/upload/delete of session files; the backend supplies `_handle`, `_json`, `_request`."""

    name: str
    max_upload_bytes: int
    if TYPE_CHECKING:

        def _handle(self, run_id: str) -> tuple[str, str]: ...
        def _session_path(self, agent: str, session_id: str) -> str: ...
        async def _json(self, method: str, path: str, *, params: dict[str, Any] | None = None, **kwargs: Any) -> Any: ...
        async def _request(self, method: str, path: str, *, params: dict[str, Any] | None = None, **kwargs: Any) -> httpx2.Response: ...

    def _files(self, run_id: str) -> tuple[str, str]:
        agent, session_id = self._handle(run_id)
        return f"{self._session_path(agent, session_id)}/files", f"{agent}:{session_id}"

    async def list_session_files(self, run_id: str, path: str = "") -> SessionFileList:
        clean = home_path(path, allow_home=True)
        files_path, run = self._files(run_id)

        async def page(after: str | None) -> tuple[list[Any], str | None]:
            params = {"limit": 100, "order": "asc", **({"path": clean} if clean else {}), **({"after": after} if after else {})}
            body = await self._json("GET", files_path, params=params)
            items = body.get("entries") or []
            return items, body.get("last_id") if items and body.get("has_more") is not False else None

        entries = [
            SessionFile(
                path=posixpath.join(clean, str(item["name"])) if clean else str(item["name"]),
                backend=self.name,
                is_dir=bool(item.get("is_directory")),
                size=None if item.get("is_directory") else item.get("size"),
                modified_at=parse_time(item.get("modified_time")),
            )
            for item in await collect_pages(page, max_items=_MAX_LIST_ENTRIES, max_pages=_MAX_LIST_ENTRIES // 100 + 1)
        ]
        return SessionFileList(run_id=run, backend=self.name, path=clean, files=entries)

    async def upload_session_file(self, run_id: str, path: str, content: bytes) -> SessionFileList:
        clean = home_path(path, allow_home=False)
        if len(content) > self.max_upload_bytes:
            raise InvalidArgument(f"The file is {len(content)} bytes; Azure AI Foundry takes at most {self.max_upload_bytes} bytes per session file. Split it or compress it.")
        files_path, run = self._files(run_id)
        written = await self._json(
            "PUT",
            f"{files_path}/content",
            params={"path": clean},
            content=content,
            headers={"Content-Type": "application/octet-stream"},
            idempotent=True,  # it replaces the file with the same bytes
            errors={413: explain(InvalidArgument, "The upload is larger than the service accepts (at most 50 MB per file); split it or compress it.")},
        )
        size = int((written or {}).get("bytes_written", len(content)))
        entry = SessionFile(path=str((written or {}).get("path") or clean), backend=self.name, size=size)
        return SessionFileList(run_id=run, backend=self.name, path=posixpath.dirname(clean), files=[entry])

    async def download_session_file(self, run_id: str, path: str, max_bytes: int) -> FileContent:
        clean = home_path(path, allow_home=False)
        files_path, run = self._files(run_id)
        response = await self._request("GET", f"{files_path}/content", params={"path": clean}, headers={"Accept": "application/octet-stream"})
        return from_bytes(run, self.name, clean, response.content, max_bytes, mimetypes.guess_type(clean)[0])

    async def delete_session_file(self, run_id: str, path: str, recursive: bool = False) -> SessionFileList:
        clean = home_path(path, allow_home=False)
        files_path, _ = self._files(run_id)
        errors: Overrides = {
            "directory_not_empty": explain(
                Conflict, f"{clean!r} is a directory with files in it; call delete_session_file again with recursive=true to delete it and everything inside."
            ),
            409: explain(Conflict, "Read the session with get_run before trying again."),
        }
        await self._request(
            "DELETE",
            files_path,
            params={"path": clean, "recursive": "true" if recursive else "false"},
            headers={"Accept": "*/*"},
            idempotent=True,
            errors=errors,
        )
        return await self.list_session_files(run_id, posixpath.dirname(clean))

