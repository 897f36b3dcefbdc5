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

__all__ = ["ENDED", "STATES", "check_id", "check_session_id", "iso", "read_error"]

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


def read_error(body: Any) -> Problem | None:
    """The platform's `{"error": {code, message, param}}` as one line; its code is the Problem's code."""
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        return None
    tags = [f"{key} {error[key]}" for key in ("code", "param") if error.get(key)]
    text = str(error.get("message") or "")
    code = error.get("code")
    return Problem(f"{text} ({', '.join(tags)})" if tags else text, str(code) if code else None)
