"""Files of an Oz run, through the session-file tools: handoff snapshot files and artifacts.

    <filename>             a handoff attachment of the run's latest ended execution
                           (GET /agent/runs/{id}/handoff/attachments, then its download_url)
    artifacts/<uid>        an artifact with an artifact_uid (plans, files, screenshots):
                           GET /agent/artifacts/{uid} gives a plan's `content` inline and a
                           file's or screenshot's `download_url` (oz-agent-sdk 0.15.0
                           `agent.get_artifact`, `types/agent_get_artifact_response.py`)

Download URLs point at storage and are fetched without the API key. A mixin of `OzBackend`.
"""

from __future__ import annotations

import base64
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from agentdeck.backends.http import PlatformClient
from agentdeck.errors import NotFound
from agentdeck.models import FileContent, Run, SessionFile, SessionFileList

__all__ = ["ARTIFACTS", "RunFiles"]

ARTIFACTS = "artifacts"
_TEXT_TYPES = ("text/", "application/json", "application/xml", "application/x-yaml", "application/yaml")


def _decode(content: bytes, mime: str, truncated: bool) -> str | None:
    """UTF-8 text when the file is text (a character cut by truncation is dropped), else None."""
    textual = mime.startswith(_TEXT_TYPES)
    if not textual and (mime != "application/octet-stream" or b"\0" in content):
        return None
    for cut in range(4 if truncated else 1):
        try:
            return content[: len(content) - cut].decode("utf-8")
        except UnicodeDecodeError:
            continue
    return None


class RunFiles:
    name: str
    _storage: PlatformClient
    if TYPE_CHECKING:

        async def _call(self, method: str, path: str, **kwargs: Any) -> Any: ...
        def _path(self, run_id: str, tail: str = "") -> str: ...
        async def get_run(self, run_id: str) -> Run: ...

    async def _attachments(self, run_id: str) -> list[dict[str, Any]]:
        body = await self._call("GET", self._path(run_id, "/handoff/attachments"))
        return [a for a in (body or {}).get("attachments") or [] if isinstance(a, dict)]

    async def _artifact_files(self, run_id: str) -> list[SessionFile]:
        run = await self.get_run(run_id)
        return [SessionFile(path=str(a.data["path"]), backend=self.name) for a in run.artifacts if a.data.get("path")]

    async def list_session_files(self, run_id: str, path: str = "") -> SessionFileList:
        """The entries directly inside `path`; a '/' in an attachment's filename reads as directories."""
        prefix = path.strip("/")
        if prefix == ARTIFACTS:
            return SessionFileList(run_id=run_id, backend=self.name, path=prefix, files=await self._artifact_files(run_id))
        entries: dict[str, SessionFile] = {}
        for name in (str(a.get("filename", "")) for a in await self._attachments(run_id)):
            if name == prefix:
                entries[name] = SessionFile(path=name, backend=self.name)
            elif not prefix or name.startswith(prefix + "/"):
                head, _, rest = name[len(prefix) + 1 if prefix else 0 :].partition("/")
                entry = f"{prefix}/{head}" if prefix else head
                entries[entry] = SessionFile(path=entry, backend=self.name, is_dir=bool(rest))
        if not prefix and ARTIFACTS not in entries and await self._artifact_files(run_id):
            entries[ARTIFACTS] = SessionFile(path=ARTIFACTS, backend=self.name, is_dir=True)
        files = list(entries.values())
        if prefix and not files:
            raise NotFound(f"Run {run_id} has no handoff file under '{prefix}'; call list_session_files without a path to see them all.")
        return SessionFileList(run_id=run_id, backend=self.name, path=prefix, files=files)

    async def download_session_file(self, run_id: str, path: str, max_bytes: int) -> FileContent:
        wanted = path.strip("/")
        if wanted.startswith(ARTIFACTS + "/"):
            return await self._download_artifact(run_id, wanted, max_bytes)
        attachments = await self._attachments(run_id)
        found = next((a for a in attachments if wanted in (a.get("filename"), a.get("attachment_id"))), None)
        if found is None:
            names = ", ".join(a["filename"] for a in attachments) or "none (the run has no ended execution with snapshot files)"
            raise NotFound(f"Run {run_id} has no handoff file '{wanted}'. Files: {names}.")
        return await self._fetch(run_id, found["filename"], found["download_url"], found.get("mime_type"), max_bytes)

    async def _download_artifact(self, run_id: str, path: str, max_bytes: int) -> FileContent:
        uid = path.partition("/")[2]
        if path not in {f.path for f in await self._artifact_files(run_id)}:
            raise NotFound(f"Run {run_id} has no artifact '{uid}'; list_session_files with path 'artifacts' shows its artifacts.")
        artifact = await self._call("GET", f"/agent/artifacts/{quote(uid, safe='')}")
        data = (artifact or {}).get("data") or {}
        if "content" in data:  # a plan: its text comes inline
            raw = str(data["content"]).encode("utf-8")
            kept = raw[:max_bytes]
            text = _decode(kept, "text/plain", len(raw) > max_bytes) or ""
            mime = str(data.get("content_type") or "text/markdown")
            return FileContent(run_id=run_id, backend=self.name, path=path, size=len(raw), truncated=len(raw) > max_bytes, mime_type=mime, text=text)
        if not data.get("download_url"):
            raise NotFound(f"Artifact '{uid}' of run {run_id} has neither content nor a download link.")
        return await self._fetch(run_id, path, str(data["download_url"]), data.get("content_type"), max_bytes)

    async def _fetch(self, run_id: str, path: str, url: str, mime_type: str | None, max_bytes: int) -> FileContent:
        # Ask for one byte more than wanted so truncation shows; storage that ignores Range sends it all.
        response = await self._storage.request("GET", url, headers={"Range": f"bytes=0-{max_bytes}"}, accept={416})
        if response.status_code == 416:  # the range starts past the end: the file has no bytes
            return FileContent(run_id=run_id, backend=self.name, path=path, size=0, mime_type=mime_type or "application/octet-stream", text="")
        content = response.content
        total = len(content)
        content_range = response.headers.get("content-range", "")
        if response.status_code == 206 and "/" in content_range and content_range.rsplit("/", 1)[1].isdigit():
            total = int(content_range.rsplit("/", 1)[1])
        truncated = total > max_bytes or len(content) > max_bytes
        content = content[:max_bytes]
        mime = mime_type or response.headers.get("content-type", "application/octet-stream").split(";")[0]
        text = _decode(content, mime, truncated)
        return FileContent(
            run_id=run_id,
            backend=self.name,
            path=path,
            size=total,
            truncated=truncated,
            mime_type=mime,
            text=text,
            base64=None if text is not None else base64.b64encode(content).decode(),
        )
