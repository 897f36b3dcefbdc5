"""In-memory state behind the Azure AI Foundry emulator: a clock, agents, sessions, sandbox files.

Nothing here knows about HTTP. Every failure is an `ApiError` carrying the status and the
OpenAI-style error fields the HTTP layer puts in `{"error": {...}}`.

Session status is computed from the emulator clock rather than stored, so it advances
deterministically whenever the clock moves:

    creating --(creating_seconds)--> active --(idle_seconds without activity)--> idle
    any --(stop)--> idle          idle --(file operation or touch)--> active
    any --(30 days without activity)--> expired      (a forced status such as failed wins)
"""

from __future__ import annotations

import posixpath
import re
import threading
import uuid
from dataclasses import dataclass
from typing import Any

__all__ = [
    "SESSION_STATUSES",
    "SESSION_TTL_SECONDS",
    "ApiError",
    "Clock",
    "FoundryState",
    "Sandbox",
    "Session",
    "normalize_path",
]

SESSION_STATUSES = ("creating", "active", "idle", "updating", "failed", "deleting", "deleted", "expired")
SESSION_TTL_SECONDS = 30 * 24 * 3600
# Microsoft's Foundry session-management reference and azure-ai-agentserver-invocations
# (_VOICE_SESSION_ID): 8-128 letters, digits, '_' or '-'.
_SESSION_ID = re.compile(r"^[A-Za-z0-9_-]{8,128}$")
_ID_NAMESPACE = uuid.UUID("6f1f5a52-3c1e-4d8e-9a57-0d6c2f3b9e41")


class ApiError(Exception):
    """A failure the service reports as `{"error": {code, message, param, type}}`."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        param: str | None = None,
        type: str = "invalid_request_error",  # noqa: A002 - the wire name
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.param = param
        self.type = type

    def body(self) -> dict[str, Any]:
        return {"error": {"code": self.code, "message": self.message, "param": self.param, "type": self.type}}


class Clock:
    """Emulator time in integer unix seconds; it moves only when told to."""

    def __init__(self, start: int) -> None:
        self._now = int(start)

    def now(self) -> int:
        return self._now

    def advance(self, seconds: int) -> int:
        if seconds < 0:
            raise ValueError("the emulator clock never goes backwards")
        self._now += int(seconds)
        return self._now

    def set(self, when: int) -> None:
        if when < self._now:
            raise ValueError("the emulator clock never goes backwards")
        self._now = int(when)


def normalize_path(raw: str | None, *, what: str = "path") -> str:
    """Turn a caller's sandbox path into a key relative to the session home ("" is home itself).

    A leading slash means the home directory too (the SDK samples pass "/remote/file.txt").
    GUESS: paths that climb out of home with ".." are refused with 400.
    """
    text = (raw or "").replace("\\", "/").strip()
    if "\x00" in text:
        raise ApiError(400, "invalid_value", f"The {what} contains a NUL character.", param=what)
    parts: list[str] = []
    for part in text.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if not parts:
                raise ApiError(400, "invalid_value", f"The {what} escapes the session home directory.", param=what)
            parts.pop()
            continue
        parts.append(part)
    return "/".join(parts)


@dataclass
class _Node:
    is_directory: bool
    modified_time: int
    data: bytes = b""


class Sandbox:
    """The files of one session's home directory, as a flat map of relative path to node."""

    def __init__(self, now: int) -> None:
        self.nodes: dict[str, _Node] = {"": _Node(True, now)}

    def _node(self, path: str) -> _Node:
        node = self.nodes.get(path)
        if node is None:
            raise ApiError(404, "not_found", f"No file or directory at '{path or '.'}'.", param="path")
        return node

    def _touch_parent(self, path: str, now: int) -> None:
        self.nodes[posixpath.dirname(path)].modified_time = now

    def write(self, path: str, data: bytes, now: int) -> int:
        if not path:
            raise ApiError(400, "invalid_value", "The path must name a file, not the home directory.", param="path")
        existing = self.nodes.get(path)
        if existing is not None and existing.is_directory:  # GUESS: writing over a directory
            raise ApiError(409, "path_conflict", f"'{path}' is a directory.", param="path")
        parent = ""
        for part in path.split("/")[:-1]:
            parent = f"{parent}/{part}" if parent else part
            node = self.nodes.get(parent)
            if node is None:
                self.nodes[parent] = _Node(True, now)
                self._touch_parent(parent, now)
            elif not node.is_directory:
                raise ApiError(409, "path_conflict", f"'{parent}' is a file, not a directory.", param="path")
        self.nodes[path] = _Node(False, now, bytes(data))
        self._touch_parent(path, now)
        return len(data)

    def read(self, path: str) -> bytes:
        node = self._node(path)
        if node.is_directory:  # GUESS: downloading a directory
            raise ApiError(400, "invalid_value", f"'{path or '.'}' is a directory, not a file.", param="path")
        return node.data

    def children(self, path: str) -> list[dict[str, Any]]:
        """The immediate children of a directory, sorted by name."""
        node = self._node(path)
        if not node.is_directory:
            raise ApiError(400, "invalid_value", f"'{path}' is a file, not a directory.", param="path")
        prefix = f"{path}/" if path else ""
        entries = []
        for key, child in self.nodes.items():
            if key and key.startswith(prefix) and "/" not in key[len(prefix) :]:
                entries.append(
                    {
                        "name": key[len(prefix) :],
                        "size": 0 if child.is_directory else len(child.data),
                        "is_directory": child.is_directory,
                        "modified_time": child.modified_time,
                    }
                )
        return sorted(entries, key=lambda entry: entry["name"])  # GUESS: the listing order

    def delete(self, path: str, recursive: bool, now: int) -> None:
        if not path:
            raise ApiError(400, "invalid_value", "The session home directory itself cannot be deleted.", param="path")
        node = self._node(path)
        descendants = [key for key in self.nodes if key.startswith(f"{path}/")]
        if node.is_directory and descendants and not recursive:
            raise ApiError(  # 409 is documented; the code string is a GUESS
                409,
                "directory_not_empty",
                f"'{path}' is a non-empty directory; pass recursive=true to delete it with its contents.",
                param="recursive",
            )
        for key in [*descendants, path]:
            del self.nodes[key]
        self._touch_parent(path, now)

    def paths(self) -> list[str]:
        return sorted(key for key in self.nodes if key)


@dataclass
class Session:
    """One hosted-agent session; its status is derived from the clock on every read."""

    agent_name: str
    session_id: str
    agent_version: str
    seq: int
    created_at: int
    ready_at: int
    last_accessed_at: int
    sandbox: Sandbox
    isolation_key: str | None = None
    stopped: bool = False
    stopped_at: int | None = None
    forced_status: str | None = None

    def idle_since(self, now: int, idle_seconds: int) -> int | None:
        """When an unattended session went idle, if it has."""
        if idle_seconds <= 0 or self.stopped:
            return None
        moment = max(self.last_accessed_at, self.ready_at) + idle_seconds
        return moment if now >= moment else None

    def status(self, now: int, idle_seconds: int) -> str:
        if self.forced_status is not None:
            return self.forced_status
        if now >= self.last_accessed_at + SESSION_TTL_SECONDS:
            return "expired"
        if self.stopped:
            return "idle"
        if now < self.ready_at:
            return "creating"
        if self.idle_since(now, idle_seconds) is not None:
            return "idle"
        return "active"

    def to_wire(self, now: int, idle_seconds: int) -> dict[str, Any]:
        body: dict[str, Any] = {
            "agent_session_id": self.session_id,
            "version_indicator": {"type": "version_ref", "agent_version": self.agent_version},
            "status": self.status(now, idle_seconds),
            "created_at": self.created_at,
            "last_accessed_at": self.last_accessed_at,
            "expires_at": self.last_accessed_at + SESSION_TTL_SECONDS,
        }
        stopped_at = self.idle_since(now, idle_seconds) or self.stopped_at
        if stopped_at is not None:
            body["stopped_at"] = stopped_at
        return body


class FoundryState:
    """Agents and their sessions, guarded by one lock shared with test helpers."""

    def __init__(self, *, clock: Clock, creating_seconds: int, idle_seconds: int, max_upload_bytes: int) -> None:
        self.lock = threading.RLock()
        self.clock = clock
        self.creating_seconds = creating_seconds
        self.idle_seconds = idle_seconds
        self.max_upload_bytes = max_upload_bytes
        self.agents: dict[str, list[str]] = {}  # name -> versions, oldest first (the last is "latest")
        self.agent_created: dict[str, int] = {}
        self.responses: dict[str, dict[str, Any]] = {}  # id -> {"agent", "session_id", "body"}
        self.sessions: dict[tuple[str, str], Session] = {}
        # Sort keys of every session ever listed, so a cursor stays valid after its session is deleted.
        self.cursors: dict[tuple[str, str], tuple[int, int]] = {}
        self._seq = 0

    # -- agents -------------------------------------------------------------------------------

    def add_agent(self, name: str, *versions: str) -> None:
        with self.lock:
            known = self.agents.setdefault(name, [])
            self.agent_created.setdefault(name, self.clock.now())
            known += [v for v in versions or ("1",) if v not in known]

    def _require_agent(self, name: str) -> list[str]:
        versions = self.agents.get(name)
        if versions is None:
            raise ApiError(404, "not_found", f"Agent '{name}' was not found in this project.")
        return versions

    # -- sessions -----------------------------------------------------------------------------

    def _new_id(self) -> str:
        return str(uuid.uuid5(_ID_NAMESPACE, str(self._seq)))

    def create_session(
        self,
        agent_name: str,
        agent_version: str,
        session_id: str | None = None,
        *,
        isolation_key: str | None = None,
        ready: bool = False,
    ) -> Session:
        with self.lock:
            versions = self._require_agent(agent_name)
            if agent_version not in versions:
                raise ApiError(
                    404,
                    "not_found",
                    f"Version '{agent_version}' of agent '{agent_name}' was not found.",
                    param="version_indicator.agent_version",
                )
            if session_id is not None and not _SESSION_ID.match(session_id):
                raise ApiError(
                    400,
                    "invalid_value",
                    "agent_session_id must be 8-128 characters: letters, digits, '_' or '-'.",
                    param="agent_session_id",
                )
            self._seq += 1
            session_id = session_id or self._new_id()
            if (agent_name, session_id) in self.sessions:
                raise ApiError(
                    409,
                    "session_already_exists",
                    f"A session with id '{session_id}' already exists for agent '{agent_name}'.",
                    param="agent_session_id",
                )
            now = self.clock.now()
            session = Session(
                agent_name=agent_name,
                session_id=session_id,
                agent_version=agent_version,
                seq=self._seq,
                created_at=now,
                ready_at=now if ready else now + self.creating_seconds,
                last_accessed_at=now,
                sandbox=Sandbox(now),
                isolation_key=isolation_key,
            )
            self.sessions[(agent_name, session_id)] = session
            self.cursors[(agent_name, session_id)] = _sort_key(session)
            return session

    def get_session(self, agent_name: str, session_id: str, isolation_key: str | None = None) -> Session:
        """The session, unless it is missing or owned by a different isolation key (both are 404, a GUESS)."""
        with self.lock:
            self._require_agent(agent_name)
            session = self.sessions.get((agent_name, session_id))
            if session is None or not _visible(session, isolation_key):
                raise ApiError(404, "not_found", f"Session '{session_id}' was not found for agent '{agent_name}'.")
            return session

    def wire(self, session: Session) -> dict[str, Any]:
        with self.lock:
            return session.to_wire(self.clock.now(), self.idle_seconds)

    def list_sessions(
        self,
        agent_name: str,
        *,
        limit: int,
        order: str,
        after: str | None,
        before: str | None,
        isolation_key: str | None,
    ) -> dict[str, Any]:
        with self.lock:
            self._require_agent(agent_name)
            rows = [
                s
                for (name, _), s in self.sessions.items()
                if name == agent_name and _visible(s, isolation_key)
            ]
            descending = order == "desc"
            rows.sort(key=_sort_key, reverse=descending)
            if after is not None:
                mark = self._cursor(agent_name, after, "after")
                rows = [s for s in rows if (_sort_key(s) < mark if descending else _sort_key(s) > mark)]
            if before is not None:
                mark = self._cursor(agent_name, before, "before")
                rows = [s for s in rows if (_sort_key(s) > mark if descending else _sort_key(s) < mark)]
            page, has_more = _take(rows, limit, from_end=before is not None and after is None)
            data = [s.to_wire(self.clock.now(), self.idle_seconds) for s in page]
            return _envelope("data", data, [d["agent_session_id"] for d in data], has_more)

    def _cursor(self, agent_name: str, session_id: str, param: str) -> tuple[int, int]:  # GUESS: 400 for a foreign cursor
        mark = self.cursors.get((agent_name, session_id))
        if mark is None:
            raise ApiError(400, "invalid_value", f"'{session_id}' is not a session id of this agent.", param=param)
        return mark

    def stop_session(self, session: Session) -> None:
        with self.lock:
            if session.status(self.clock.now(), self.idle_seconds) in ("expired", "failed"):  # GUESS: stopping an ended session is a quiet no-op
                return
            if not session.stopped:
                # A session that already went idle keeps the moment it did; stopping adds nothing new.
                now = self.clock.now()
                session.stopped_at = session.idle_since(now, self.idle_seconds) or now
                session.stopped = True

    def delete_session(self, agent_name: str, session_id: str, isolation_key: str | None = None) -> None:
        """Delete if present and visible; a missing session is not an error (the service answers 204)."""
        with self.lock:
            self._require_agent(agent_name)
            session = self.sessions.get((agent_name, session_id))
            if session is not None and _visible(session, isolation_key):
                del self.sessions[(agent_name, session_id)]

    def touch(self, session: Session) -> None:
        """Record activity: wakes an idle or stopped session and rolls its expiry forward.

        The 30-day expiry from the last activity is documented; that a file call counts as
        activity and wakes the session, and the 409 for an ended session, are GUESSes."""
        with self.lock:
            now = self.clock.now()
            status = session.status(now, self.idle_seconds)
            if status in ("expired", "failed", "deleting", "deleted"):
                raise ApiError(
                    409,
                    "session_not_active",
                    f"Session '{session.session_id}' is {status}; its sandbox is not available.",
                )
            idle_moment = session.idle_since(now, self.idle_seconds)
            if idle_moment is not None:
                session.stopped_at = idle_moment
            session.stopped = False
            session.ready_at = min(session.ready_at, now) if status == "idle" else session.ready_at
            session.last_accessed_at = now

    # -- files --------------------------------------------------------------------------------

    def list_files(
        self, session: Session, path: str, *, limit: int, order: str, after: str | None, before: str | None
    ) -> dict[str, Any]:
        with self.lock:
            self.touch(session)
            entries = session.sandbox.children(path)
            descending = order == "desc"
            if descending:
                entries.reverse()
            if after is not None:
                entries = [e for e in entries if (e["name"] < after if descending else e["name"] > after)]
            if before is not None:
                entries = [e for e in entries if (e["name"] > before if descending else e["name"] < before)]
            page, has_more = _take(entries, limit, from_end=before is not None and after is None)
            body = {"path": path or "."}
            body.update(_envelope("entries", page, [e["name"] for e in page], has_more))
            return body


def _visible(session: Session, isolation_key: str | None) -> bool:  # GUESS: how the service scopes by key
    # A caller without a key sees everything (2.3+ SDKs send none); a keyed caller sees sessions
    # created with its key and sessions created without one, never another key's sessions.
    return isolation_key is None or session.isolation_key is None or session.isolation_key == isolation_key


def _sort_key(session: Session) -> tuple[int, int]:
    return (session.created_at, session.seq)


def _take(rows: list[Any], limit: int, *, from_end: bool) -> tuple[list[Any], bool]:
    if from_end:
        return rows[-limit:], len(rows) > limit
    return rows[:limit], len(rows) > limit


def _envelope(key: str, items: list[Any], ids: list[str], has_more: bool) -> dict[str, Any]:
    # OpenAI-style: last_id names the page's last item and is null only on an empty page, which
    # is what ends the SDK's iteration (it follows last_id and ignores has_more). GUESS: the
    # values of first_id and has_more.
    return {
        key: items,
        "first_id": ids[0] if ids else None,
        "last_id": ids[-1] if ids else None,
        "has_more": has_more,
    }
