"""Wire shapes of Azure AI Foundry sessions: status table, ids, home-relative paths, error bodies.

Pure functions, no HTTP; `azure_foundry.py` uses them at the boundary.
"""

from __future__ import annotations

import re
from typing import Any

from agentdeck.backends.dialect import Problem
from agentdeck.backends.times import parse_time
from agentdeck.errors import InvalidArgument
from agentdeck.models import RunState

__all__ = ["ENDED", "STATES", "check_id", "check_session_id", "home_path", "iso", "read_error", "utf8"]

_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
# The documented rule for agent_session_id (Microsoft's Foundry session-management reference and
# azure-ai-agentserver-invocations' _VOICE_SESSION_ID): 8-128 letters, digits, '_' or '-'.
_SESSION_ID = re.compile(r"^[A-Za-z0-9_-]{8,128}$")
STATES: dict[str, RunState] = {  # session status -> normalized run state
    "creating": "queued",
    "active": "running",
    "updating": "running",
    "idle": "waiting",
    "failed": "failed",
    "deleting": "cancelled",
    "deleted": "cancelled",
    "expired": "succeeded",
}
ENDED = frozenset({"failed", "deleting", "deleted", "expired"})



def iso(value: Any) -> str | None:
    when = parse_time(value)
    return when.isoformat() if when else None


def check_id(value: str, what: str) -> str:
    if not _ID.match(value):
        raise InvalidArgument(f"{what} {value!r} is not valid: use 1-128 letters, digits, '.', '_' or '-', starting with a letter or digit.")
    return value


def check_session_id(value: str, what: str) -> str:
    if not _SESSION_ID.match(value):
        raise InvalidArgument(f"{what} {value!r} is not valid: Foundry session ids are 8-128 letters, digits, '_' or '-' (no dots or spaces).")
    return value


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


def read_error(body: Any) -> Problem | None:
    """The platform's `{"error": {code, message, param}}` as one line; its code is the Problem's code."""
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        return None
    tags = [f"{key} {error[key]}" for key in ("code", "param") if error.get(key)]
    text = str(error.get("message") or "")
    code = error.get("code")
    return Problem(f"{text} ({', '.join(tags)})" if tags else text, str(code) if code else None)


def utf8(data: bytes, truncated: bool) -> str | None:
    """The bytes as text when they are UTF-8 (a character cut by truncation is dropped), else None."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        if truncated and exc.reason == "unexpected end of data" and exc.start >= len(data) - 3:
            return data[: exc.start].decode("utf-8", errors="strict")
        return None
