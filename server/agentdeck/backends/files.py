"""What the session-file tools of every platform share: paths checked one way, bytes returned one way."""

from __future__ import annotations

import base64
import re

from agentdeck.errors import InvalidArgument
from agentdeck.models import FileContent

__all__ = ["from_bytes", "home_path", "utf8"]


def home_path(path: str, *, allow_home: bool) -> str:
    """A path relative to the session home, checked before any request: no absolute paths, no `..`."""
    if "\x00" in path:
        raise InvalidArgument("The path contains a NUL character; remove it.")
    if path.startswith("/") and path.strip("/"):
        raise InvalidArgument(f"Paths are relative to the session home directory: use {path.lstrip('/')!r}, not {path!r}.")
    if ".." in re.split(r"[\\/]", path):
        raise InvalidArgument(f"The path {path!r} leaves the session home directory ('..'); name a path inside it.")
    clean = "/".join(p for p in path.split("/") if p not in ("", "."))
    if not clean and not allow_home:
        raise InvalidArgument("Name a file inside the session home directory, not the directory itself.")
    return clean


def utf8(data: bytes, truncated: bool) -> str | None:
    """The bytes as text when they are UTF-8 (a character cut by truncation is dropped), else None."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        if truncated and exc.reason == "unexpected end of data" and exc.start >= len(data) - 3:
            return data[: exc.start].decode("utf-8", errors="strict")
        return None


def from_bytes(run_id: str, backend: str, path: str, data: bytes, max_bytes: int, mime: str | None = None) -> FileContent:
    """The first `max_bytes` of `data`; without a `mime`, text/plain for text and octet-stream for the rest."""
    kept, truncated = data[:max_bytes], len(data) > max_bytes
    text = utf8(kept, truncated)
    return FileContent(
        run_id=run_id,
        backend=backend,
        path=path,
        size=len(data),
        truncated=truncated,
        mime_type=mime or ("text/plain" if text is not None else "application/octet-stream"),
        text=text,
        base64=None if text is not None else base64.b64encode(kept).decode("ascii"),
    )
