"""In-memory daemon state behind the AGH emulator: sessions, tasks and runs, channels, souls.

`agh.py` turns HTTP requests into calls on `AghState` and renders the records it returns.
Every public method takes the state lock, because tests mutate state from their own thread
while the server answers requests from another. Failures are raised as `AghError`, which
carries the HTTP status, the `error` text and (for identity failures) the `diagnostic` item.

The rules follow compozy/agh as described in /work/shared/platforms/agh.md (§2, §5, §6).
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

UTC = UTC
MESSAGE_KINDS = ("status", "request", "reply", "blocker", "handoff", "result", "review_request")
PRIORITY_RANK = {"low": 10, "medium": 20, "high": 30, "urgent": 40}
ACTIVE_RUN_STATES = ("claimed", "starting", "running")
LIVE_SESSION_STATES = ("starting", "active", "stopping")
PERMISSION_CATEGORIES = ("tools", "skills", "mcp_servers", "workspace_paths", "network_channels", "sandbox_profiles")
MAX_LEASE_SECONDS = 86_400
MAX_RESULT_BYTES = 64 * 1024
INBOX_DEPTH = 100
SWEEP_BATCH = 100
CLAIM_TOKEN_VALUE = re.compile(r"(?i)agh_claim_[A-Za-z0-9_-]+")
NO_RESULT = object()  # a run that has no stored result (distinct from a stored JSON null)


class Clock:
    """Wall-clock time plus an offset that tests move forward with `advance`, so nothing sleeps."""

    def __init__(self) -> None:
        self._offset = timedelta(0)
        self._lock = threading.Lock()

    def now(self) -> datetime:
        with self._lock:
            return datetime.now(UTC) + self._offset

    def advance(self, seconds: float) -> datetime:
        with self._lock:
            self._offset += timedelta(seconds=seconds)
        return self.now()


class AghError(Exception):
    """One error answer: status, the `error` string and an optional `diagnostic` item."""

    def __init__(self, status: int, message: str, diagnostic: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.diagnostic = diagnostic


def identity_error(code: str, status: int, message: str, hint: str) -> AghError:
    diagnostic = {
        "id": f"agentidentity.{code}",
        "code": code,
        "severity": "error",
        "category": "session",
        "title": "Agent identity error",
        "message": message,
        "data_freshness": "live",
        "suggested_command": hint,
    }
    return AghError(status, f"{message}: {hint}", diagnostic)


def new_id(prefix: str) -> str:
    # GUESS: ids are opaque in AGH; `msg-<16 hex>` is inferred, the other prefixes are the emulator's.
    return f"{prefix}-{secrets.token_hex(8)}"


def has_claim_token(value: Any, *, check_strings: bool = True) -> bool:
    """True when a `claim_token` key (any case) or a raw `agh_claim_...` string appears anywhere."""
    if isinstance(value, dict):
        return any(
            k.strip().lower() == "claim_token" or has_claim_token(v, check_strings=check_strings)
            for k, v in value.items()
        )
    if isinstance(value, list):
        return any(has_claim_token(v, check_strings=check_strings) for v in value)
    if check_strings and isinstance(value, str):
        return any(t.lower() != "agh_claim_token" for t in CLAIM_TOKEN_VALUE.findall(value))
    return False


def validate_metadata(meta: Any) -> str | None:
    """The first problem with coordination metadata, worded as AGH words it, or None."""
    if not isinstance(meta, dict):
        return "contract: invalid coordination message metadata: task_id is required"
    for key in ("task_id", "run_id", "coordination_channel_id", "correlation_id"):
        if not isinstance(meta.get(key), str) or not meta[key].strip():
            return f"contract: invalid coordination message metadata: {key} is required"
    kind = meta.get("message_kind")
    if kind not in MESSAGE_KINDS:
        return f'contract: invalid coordination message metadata: unsupported message_kind "{kind or ""}"'
    if has_claim_token(meta.get("ext") or {}):
        return "contract: coordination metadata must not contain raw lease credentials"
    return None


@dataclass
class Session:
    id: str
    agent_name: str
    workspace_id: str
    workspace_path: str = ""
    workspace_name: str = ""
    provider: str = "claude"
    model: str = ""
    name: str = ""
    type: str = "user"
    state: str = "active"
    channel: str = ""
    lineage: dict[str, Any] | None = None
    capabilities: list[dict[str, str]] = field(default_factory=list)
    created_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    updated_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    stop_reason: str = ""
    stop_detail: str = ""

    @property
    def peer_id(self) -> str:
        return f"{self.agent_name.strip().lower()}.{self.id}" if self.agent_name else self.id


@dataclass
class Task:
    id: str
    title: str
    workspace_id: str
    scope: str = "workspace"
    status: str = "ready"
    priority: str = "medium"
    identifier: str = ""
    owner: dict[str, str] | None = None
    paused: bool = False
    max_attempts: int = 3
    latest_event_seq: int = 1
    updated_at: datetime = field(default_factory=lambda: datetime.now(UTC))


@dataclass
class Run:
    id: str
    task_id: str
    queued_at: datetime
    status: str = "queued"
    attempt: int = 1
    origin: dict[str, str] = field(default_factory=lambda: {"kind": "cli", "ref": "agh task run"})
    coordination_channel_id: str = ""
    network_channel: str = ""
    required_capabilities: list[str] = field(default_factory=list)
    session_id: str = ""
    claimed_by: dict[str, str] | None = None
    claim_token: str = ""
    claim_token_hash: str = ""
    lease_until: datetime | None = None
    heartbeat_at: datetime | None = None
    claimed_at: datetime | None = None
    started_at: datetime | None = None
    ended_at: datetime | None = None
    error: str = ""
    result: Any = NO_RESULT

    def requeue(self) -> None:
        self.status = "queued"
        self.session_id = self.claim_token = self.claim_token_hash = self.error = ""
        self.claimed_by = self.lease_until = self.heartbeat_at = None
        self.claimed_at = self.started_at = self.ended_at = None
        self.result = NO_RESULT


@dataclass
class Envelope:
    """One network message as it sits in a session's pending inbound queue."""

    id: str
    workspace_id: str
    channel: str
    from_session: str
    from_peer: str
    body: Any
    metadata: dict[str, Any] | None
    ts: int  # whole seconds, as the network protocol carries it
    to_peer: str = ""
    recipients: list[str] = field(default_factory=list)


class AghState:
    """Everything the emulated daemon knows. Options are documented on `agh.create_app`."""

    def __init__(self, clock: Clock, *, default_lease_seconds: int = 300, sweep_interval: float = 15.0,
                 soul_max_body_bytes: int = 32768, soul_projection_bytes: int = 2048,
                 coordinator: dict[str, Any] | None = None) -> None:
        self.lock = threading.RLock()
        self.clock = clock
        self.default_lease_seconds = default_lease_seconds
        self.sweep_interval = sweep_interval
        self.soul_max_body_bytes = soul_max_body_bytes
        self.soul_projection_bytes = soul_projection_bytes
        self.coordinator = {"enabled": False, "agent_name": "coordinator", "provider": "", "model": "",
                            "default_ttl_seconds": 7200, "max_children": 5,
                            "max_active_sessions_per_workspace": 5, **(coordinator or {})}
        self.identity_unavailable = False
        self.sessions: dict[str, Session] = {}
        self.tasks: dict[str, Task] = {}
        self.runs: dict[str, Run] = {}
        self.channel_meta: dict[str, dict[str, Any]] = {}  # stored network channel metadata entries
        self.inboxes: dict[str, list[Envelope]] = {}
        self.history: dict[str, Envelope] = {}
        self.souls: dict[str, str] = {}  # agent name -> SOUL.md text; absent means no SOUL.md
        self.workspaces: dict[str, dict[str, str]] = {}
        self._last_sweep = clock.now()

    # ----- identity ------------------------------------------------------------------

    def resolve_caller(self, session_id: str, agent: str, workspace_id: str) -> Session:
        session_id, agent, workspace_id = session_id.strip(), agent.strip(), workspace_id.strip()
        required_hint = "run this command from an AGH-managed agent session"
        if not session_id:
            raise identity_error("identity_required", 401, "AGH_SESSION_ID is required for agent commands",
                                 required_hint)
        if not agent:
            raise identity_error("identity_required", 401, "AGH_AGENT is required for agent commands", required_hint)
        with self.lock:
            if self.identity_unavailable:
                raise identity_error("identity_lookup_unavailable", 503, "agent identity cannot be validated",
                                     "retry after the daemon is reachable")
            self.maintain()
            session = self.sessions.get(session_id)
            stale_hint = "start or resume the AGH session, then retry"
            if session is None:
                raise identity_error("identity_stale", 401, "agent session identity is not known to the daemon",
                                     stale_hint)
            if session.state != "active":
                raise identity_error("identity_stale", 401, "agent session identity is not active", stale_hint)
            if session.agent_name != agent:
                raise identity_error("identity_mismatch", 401, "AGH_AGENT does not match the daemon session agent",
                                     "clear stale AGH identity environment variables and retry")
            if workspace_id and session.workspace_id != workspace_id:
                raise identity_error("identity_unauthorized", 403,
                                     "agent session does not belong to the requested workspace",
                                     "use the session workspace or start a session in the requested workspace")
            return session

    # ----- background work the daemon does on timers, run lazily -----------------------

    def maintain(self) -> None:
        """Run the spawn reaper and, when due, the expired-lease sweep (both on the emulator clock)."""
        with self.lock:
            now = self.clock.now()
            self._reap_children(now)
            if (now - self._last_sweep).total_seconds() >= self.sweep_interval:
                self.sweep(now)

    def sweep(self, now: datetime | None = None) -> list[str]:
        """Re-queue runs whose lease has run out (what the scheduler sweep does). Returns their ids."""
        with self.lock:
            now = now or self.clock.now()
            self._last_sweep = now
            expired = [r for r in self.runs.values()
                       if r.status in ACTIVE_RUN_STATES and r.lease_until is not None and r.lease_until <= now]
            for run in expired[:SWEEP_BATCH]:
                run.requeue()
                self._touch_task(run.task_id, "ready")
            return [r.id for r in expired[:SWEEP_BATCH]]

    def _reap_children(self, now: datetime) -> None:
        for child in list(self.sessions.values()):
            lineage = child.lineage or {}
            parent_id = lineage.get("parent_session_id")
            if child.type != "spawned" or child.state not in LIVE_SESSION_STATES or not parent_id:
                continue
            parent = self.sessions.get(parent_id)
            expires = lineage.get("ttl_expires_at")
            if expires is not None and expires <= now:
                self.stop_session(child.id, "timeout", "spawn_reaper:ttl_expired")
            elif parent is None:
                self.stop_session(child.id, "user_canceled", "spawn_reaper:orphaned")
            elif parent.state not in LIVE_SESSION_STATES and lineage.get("auto_stop_on_parent"):
                self.stop_session(child.id, "user_canceled", "spawn_reaper:parent_stopped")

    # ----- sessions, tasks, messages: also the helpers tests call -------------------------

    def add_session(self, session_id: str | None = None, agent_name: str = "peer-agent", *,
                    workspace_id: str | None = None, channel: str | None = "general", **fields: Any) -> Session:
        with self.lock:
            now = self.clock.now()
            workspace_id = workspace_id if workspace_id is not None else next(iter(self.workspaces), "")
            ws = self.workspaces.get(workspace_id, {})
            session = Session(id=session_id or new_id("sess"), agent_name=agent_name, workspace_id=workspace_id,
                              workspace_path=ws.get("root_dir", ""), workspace_name=ws.get("name", ""),
                              channel=channel or "", created_at=now, updated_at=now, **fields)
            self.sessions[session.id] = session
            self.inboxes.setdefault(session.id, [])
            return session

    def add_workspace(self, workspace_id: str, name: str = "", root_dir: str = "") -> None:
        with self.lock:
            self.workspaces[workspace_id] = {"id": workspace_id, "name": name, "root_dir": root_dir}

    def stop_session(self, session_id: str, stop_reason: str = "completed", stop_detail: str = "") -> None:
        """Stop a session: its leases go back to the queue and its pending inbox is dropped."""
        with self.lock:
            session = self.sessions[session_id]
            for run in self.runs.values():
                if run.session_id == session_id and run.status in ACTIVE_RUN_STATES:
                    run.requeue()
                    self._touch_task(run.task_id, "ready")
            session.state, session.stop_reason, session.stop_detail = "stopped", stop_reason, stop_detail
            session.updated_at = self.clock.now()
            self.inboxes.pop(session_id, None)

    def add_task(self, title: str = "Queued task", *, workspace_id: str | None = None, scope: str = "workspace",
                 channel: str = "general", priority: str = "medium", status: str = "ready",
                 required_capabilities: list[str] | tuple[str, ...] = (), owner: dict[str, str] | None = None,
                 paused: bool = False, task_id: str | None = None, run_id: str | None = None,
                 identifier: str = "") -> tuple[Task, Run]:
        """Create a task with one queued run. `channel` becomes the run's coordination channel."""
        with self.lock:
            now = self.clock.now()
            if workspace_id is None:
                workspace_id = next(iter(self.workspaces), "") if scope == "workspace" else ""
            task = Task(id=task_id or new_id("task"), title=title, workspace_id=workspace_id, scope=scope,
                        status=status, priority=priority, owner=owner, paused=paused, identifier=identifier,
                        updated_at=now)
            run = Run(id=run_id or new_id("run"), task_id=task.id, queued_at=now, coordination_channel_id=channel,
                      network_channel=channel, required_capabilities=list(required_capabilities))
            self.tasks[task.id], self.runs[run.id] = task, run
            return task, run

    def _touch_task(self, task_id: str, status: str) -> None:
        task = self.tasks[task_id]
        task.status, task.updated_at = status, self.clock.now()
        task.latest_event_seq += 1

    def post_message(self, from_session_id: str, body: Any = None, metadata: dict[str, Any] | None = None, *,
                     channel: str | None = None, to_session_id: str | None = None,
                     message_id: str | None = None) -> str:
        """Publish as `from_session_id`: to every other live peer of the channel, or directly to one session.

        Messages without `metadata` are delivered but never show up in recv (no coordination metadata)."""
        with self.lock:
            sender = self.sessions[from_session_id]
            channel = channel or sender.channel
            message_id = message_id or new_id("msg")
            if message_id in self.history:
                return message_id
            if to_session_id is not None:
                target = self.sessions[to_session_id]
                recipients, to_peer = [target], target.peer_id
            else:
                recipients = [s for s in self.sessions.values() if s.id != sender.id and s.channel == channel
                              and s.workspace_id == sender.workspace_id and s.state in LIVE_SESSION_STATES]
                to_peer = ""
            envelope = Envelope(id=message_id, workspace_id=sender.workspace_id, channel=channel,
                                from_session=sender.id, from_peer=sender.peer_id, body=body, metadata=metadata,
                                ts=int(self.clock.now().timestamp()), to_peer=to_peer,
                                recipients=[r.id for r in recipients])
            self.history[message_id] = envelope
            for recipient in recipients:
                queue = self.inboxes.setdefault(recipient.id, [])
                queue.append(envelope)
                del queue[:-INBOX_DEPTH]  # a full queue evicts its oldest entry
            return message_id

    def inbox(self, session_id: str) -> list[Envelope]:
        with self.lock:
            return list(self.inboxes.get(session_id, []))

    def deliver_inbox(self, session_id: str) -> list[Envelope]:
        """Empty a session's pending queue, as the daemon does when it hands messages to the agent."""
        with self.lock:
            drained = self.inboxes.get(session_id, [])
            self.inboxes[session_id] = []
            return drained

    # ----- tasks ----------------------------------------------------------------------

    def active_run_for(self, session_id: str) -> Run | None:
        """The run a session currently holds by status (an expired lease counts until the sweep)."""
        with self.lock:
            held = [r for r in self.runs.values() if r.session_id == session_id and r.status in ACTIVE_RUN_STATES]
            return max(held, key=lambda r: r.claimed_at or r.queued_at) if held else None

    def claim_next(self, caller: Session, *, workspace_id: str, capabilities: list[str], priority_min: int,
                   lease_seconds: int) -> tuple[Task, Run] | None:
        with self.lock:
            now = self.clock.now()
            if caller.state != "active":  # re-checked on every poll of a waiting claim
                raise AghError(403, f'task: permission denied: agent session "{caller.id}" is not active')
            target_ws = workspace_id.strip() or caller.workspace_id
            if not caller.workspace_id and target_ws:
                raise AghError(403, "task: permission denied: agent session has no workspace for workspace task claims")
            if caller.workspace_id and target_ws != caller.workspace_id:
                raise AghError(403, f'task: permission denied: agent session "{caller.id}" cannot claim '
                                    f'workspace "{target_ws}"')
            duration = self.lease_duration(lease_seconds)
            if priority_min < 0:
                raise AghError(422, f"task: validation failed: priority_min must be zero or positive: {priority_min}")
            if any(r.session_id == caller.id and r.status in ACTIVE_RUN_STATES
                   and (r.lease_until is None or r.lease_until > now) for r in self.runs.values()):
                raise AghError(409, f'task: active run lease exists: session "{caller.id}" already owns an '
                                    "active task-run lease")
            offered = set(capabilities) | {c["id"] for c in caller.capabilities}
            candidates = [r for r in self.runs.values() if self._claimable(r, caller, target_ws, offered,
                                                                             priority_min)]
            if not candidates:
                return None
            candidates.sort(key=lambda r: (-PRIORITY_RANK.get(self.tasks[r.task_id].priority, 20), r.queued_at, r.id))
            run = candidates[0]
            run.status, run.session_id = "claimed", caller.id
            run.claimed_by = {"kind": "agent_session", "ref": caller.id}
            run.claim_token = "agh_claim_" + secrets.token_urlsafe(24).replace("-", "_")
            run.claim_token_hash = "sha256:" + hashlib.sha256(run.claim_token.encode()).hexdigest()
            run.lease_until, run.heartbeat_at, run.claimed_at = now + duration, now, now
            run.started_at = run.ended_at = None
            run.error, run.result = "", NO_RESULT
            self._touch_task(run.task_id, "in_progress")
            return self.tasks[run.task_id], run

    def _claimable(self, run: Run, caller: Session, workspace_id: str, offered: set[str], priority_min: int) -> bool:
        task = self.tasks[run.task_id]
        if run.status != "queued" or task.paused or task.status in ("draft", "blocked", "canceled"):
            return False
        if PRIORITY_RANK.get(task.priority, 20) < priority_min:
            return False
        if workspace_id:
            if task.scope != "workspace" or task.workspace_id != workspace_id:
                return False
        elif task.scope != "global":
            return False
        if caller.channel and run.coordination_channel_id != caller.channel:
            return False
        owner = task.owner
        if owner and not ((owner.get("kind") == "pool" and owner.get("ref") == caller.agent_name)
                          or (owner.get("kind") == "agent_session" and owner.get("ref") == caller.id)):
            return False
        return set(run.required_capabilities) <= offered

    def lease_duration(self, seconds: int) -> timedelta:
        if seconds < 0:
            raise AghError(422, f"task: validation failed: lease_seconds must be zero or positive: {seconds}")
        if seconds > MAX_LEASE_SECONDS:
            raise AghError(422, f"task: validation failed: lease_seconds exceeds {MAX_LEASE_SECONDS}")
        return timedelta(seconds=seconds or self.default_lease_seconds)

    def leased_run(self, caller: Session, run_id: str) -> Run:
        """Find the caller's live lease on `run_id`, or raise the 403/409 AGH gives (never 404)."""
        with self.lock:
            now = self.clock.now()
            sid = caller.id
            mine = [r for r in self.runs.values() if r.session_id == sid and r.claim_token_hash]
            live = [r for r in mine if r.status in ACTIVE_RUN_STATES and r.lease_until and r.lease_until > now]
            target = next((r for r in mine if r.id == run_id), None)
            prefix = "task: autonomy lease rejected: "
            foreign = AghError(403, f'{prefix}AUTONOMY_FOREIGN_RUN: task: permission denied: run "{run_id}" is not '
                                    f'owned by session "{sid}"')
            if target is None:
                if live:
                    raise foreign
                raise AghError(409, f"{prefix}AUTONOMY_NO_ACTIVE_LEASE: task: invalid claim token: session "
                                    f'"{sid}" has no active task-run lease')
            if target not in live:
                raise AghError(409, f'{prefix}AUTONOMY_LEASE_EXPIRED: task: lease expired: run "{run_id}" is not '
                                    f'an active lease for session "{sid}"')
            if live and live[0].id != run_id:
                raise foreign
            return target

    def heartbeat(self, caller: Session, run_id: str, lease_seconds: int) -> Run:
        with self.lock:
            duration = self.lease_duration(lease_seconds)
            run = self.leased_run(caller, run_id)
            now = self.clock.now()
            run.lease_until, run.heartbeat_at = now + duration, now
            return run

    def finish(self, caller: Session, run_id: str, *, failed: bool, result: Any = NO_RESULT, error: str = "") -> Run:
        """complete (failed=False) or fail (failed=True) the caller's leased run."""
        with self.lock:
            run = self.leased_run(caller, run_id)
            run.status = "failed" if failed else "completed"
            run.lease_until = run.heartbeat_at = None
            run.claim_token = ""
            run.ended_at = self.clock.now()
            run.error, run.result = (error, NO_RESULT) if failed else ("", result)
            self._touch_task(run.task_id, run.status)
            return run

    def release(self, caller: Session, run_id: str) -> Run:
        with self.lock:
            run = self.leased_run(caller, run_id)
            run.requeue()
            self._touch_task(run.task_id, "ready")
            return run

    # ----- spawn ----------------------------------------------------------------------

    @staticmethod
    def effective_lineage(session: Session) -> dict[str, Any]:
        lineage = dict(session.lineage or {})
        budget = dict(lineage.get("spawn_budget") or {})
        budget["max_children"] = budget.get("max_children") or 5
        budget["max_depth"] = budget.get("max_depth") or 1
        lineage["spawn_budget"] = budget
        lineage.setdefault("spawn_depth", 0)
        policy = lineage.get("permission_policy") or {}
        lineage["permission_policy"] = {c: list(policy.get(c) or []) for c in PERMISSION_CATEGORIES}
        return lineage

    def spawn(self, parent: Session, req: dict[str, Any]) -> Session:
        def invalid(detail: str) -> AghError:
            return AghError(422, f"session: spawn validation failed: {detail}")

        with self.lock:
            agent_name = req.get("agent_name", "").strip()
            role = req.get("spawn_role", "").strip() or "worker"
            ttl = int(req.get("ttl_seconds", 0))
            if not agent_name:
                raise invalid("agent_name is required")
            if ttl <= 0:
                raise invalid("ttl is required and must be positive")
            if role.lower() == "coordinator":
                raise invalid("coordinator spawn role is not supported in MVP")
            if parent.state != "active":
                raise invalid(f'parent session "{parent.id}" is "{parent.state}"')
            lineage = self.effective_lineage(parent)
            budget = lineage["spawn_budget"]
            depth = lineage["spawn_depth"] + 1
            if depth > budget["max_depth"]:
                raise AghError(409, f"session: spawn limit exceeded: child depth {depth} exceeds max_depth "
                                    f"{budget['max_depth']}")
            root_id = lineage.get("root_session_id") or parent.id
            live_spawned = [s for s in self.sessions.values() if s.lineage and s.state in LIVE_SESSION_STATES]
            children = sum(1 for s in live_spawned if s.lineage.get("parent_session_id") == parent.id)
            if children >= budget["max_children"]:
                raise AghError(409, f'session: spawn limit exceeded: parent "{parent.id}" has {children} active '
                                    f"children, max_children {budget['max_children']}")
            per_ws = budget.get("max_active_per_workspace") or 0
            in_ws = sum(1 for s in live_spawned if s.workspace_id == parent.workspace_id
                        and (s.lineage.get("root_session_id") or "") == root_id)
            if per_ws > 0 and in_ws >= per_ws:
                raise AghError(409, f'session: spawn limit exceeded: workspace "{parent.workspace_id}" has {in_ws} '
                                    f"active spawned sessions, max_active_per_workspace {per_ws}")
            asked = req.get("permissions") or {}
            policy = {c: [a.strip() for a in (asked.get(c) or [])] for c in PERMISSION_CATEGORIES}
            for category in PERMISSION_CATEGORIES:
                allowed = set(lineage["permission_policy"][category])
                for atom in policy[category]:
                    if not atom:
                        raise AghError(403, f"session: spawn permission denied: child {category} includes a blank "
                                            "permission atom")
                    if atom not in allowed:
                        raise AghError(403, f'session: spawn permission denied: child {category} permission atom '
                                            f'"{atom}" widens parent permissions')
            now = self.clock.now()
            child_budget = {"max_children": budget["max_children"], "max_depth": budget["max_depth"],
                            "ttl_seconds": ttl}
            if per_ws > 0:
                child_budget["max_active_per_workspace"] = per_ws
            child_lineage = {"parent_session_id": parent.id, "root_session_id": root_id, "spawn_depth": depth,
                             "spawn_role": role, "ttl_expires_at": now + timedelta(seconds=ttl),
                             "auto_stop_on_parent": bool(req.get("auto_stop_on_parent", True)),
                             "spawn_budget": child_budget, "permission_policy": policy}
            child_id = new_id("sess")
            # `model` is decoded but never reaches the session (agent_spawn.go::spawnOptsFromAgentRequest).
            # GUESS: the child is `active` as soon as spawn answers (its state then is not confirmed).
            return self.add_session(
                child_id, agent_name, workspace_id=parent.workspace_id, channel=parent.channel,
                provider=req.get("provider", "").strip() or parent.provider, type="spawned",
                name=req.get("name", "").strip() or f"{agent_name}-{child_id[-6:]}", lineage=child_lineage)

    # ----- channels -------------------------------------------------------------------

    def add_channel(self, name: str, *, workspace_id: str | None = None, purpose: str = "") -> None:
        """Store network channel metadata (once any is stored, /channels lists only such channels)."""
        with self.lock:
            ws = workspace_id if workspace_id is not None else next(iter(self.workspaces), "")
            self.channel_meta[name] = {"workspace_id": ws, "purpose": purpose, "updated_at": self.clock.now()}

    def channel_names(self, caller: Session) -> list[str]:
        with self.lock:
            present = {s.channel for s in self.sessions.values()
                       if s.channel and s.workspace_id == caller.workspace_id and s.state in LIVE_SESSION_STATES}
            meta = {n for n, m in self.channel_meta.items() if m["workspace_id"] == caller.workspace_id}
            names = {n for n in present if not meta or n in meta or n == caller.channel} | meta
            if caller.channel:
                names.add(caller.channel)
            return sorted(names)

    def send(self, caller: Session, channel: str, body: Any, metadata: dict[str, Any], message_id: str) -> str:
        with self.lock:
            self._require_joined(caller, channel)
            return self.post_message(caller.id, body, metadata, channel=channel, message_id=message_id or None)

    def reply_source(self, caller: Session, message_id: str) -> Envelope:
        with self.lock:
            for envelope in self.inboxes.get(caller.id, []):
                if envelope.id == message_id:
                    return envelope
            envelope = self.history.get(message_id)
            if envelope is not None and caller.id in envelope.recipients:
                return envelope
            raise AghError(404, f'network: target peer not found: message_id="{message_id}"')

    def reply(self, caller: Session, source: Envelope, body: Any, metadata: dict[str, Any], message_id: str) -> str:
        with self.lock:
            self._require_joined(caller, source.channel)
            target = self.sessions.get(source.from_session)
            if target is None or target.state not in LIVE_SESSION_STATES or target.channel != source.channel:
                raise AghError(404, f'network: target peer not found: peer_id="{source.from_peer}" '
                                    f'channel="{source.channel}"')
            return self.post_message(caller.id, body, metadata, channel=source.channel, to_session_id=target.id,
                                     message_id=message_id or None)

    @staticmethod
    def _require_joined(caller: Session, channel: str) -> None:
        if not caller.channel:
            raise AghError(404, f'network: local peer not found: session="{caller.id}"')
        if caller.channel != channel:
            raise AghError(404, f'network: local peer not found: session="{caller.id}" channel="{channel}"')

    # ----- soul -----------------------------------------------------------------------

    def set_soul(self, agent_name: str, text: str | None) -> None:
        with self.lock:
            if text is None:
                self.souls.pop(agent_name, None)
            else:
                self.souls[agent_name] = text

    def resolve_soul(self, agent_name: str, proposed: str | None = None) -> dict[str, Any]:
        """Resolve SOUL.md for an agent (or a proposed text): present/valid flags, frontmatter, body, diagnostics."""
        with self.lock:
            text = proposed if proposed is not None else self.souls.get(agent_name)
        path = f".agh/agents/{agent_name}/SOUL.md"
        if text is None:
            return {"present": False, "valid": True, "source_path": path, "frontmatter": {}, "body": "",
                    "diagnostics": [], "digest": ""}
        front, body, diagnostics = parse_soul(text, self.soul_max_body_bytes, path)
        normalized = text.replace("\r\n", "\n")
        digest = "sha256:" + hashlib.sha256(b"agh.soul.v1\n" + normalized.encode()).hexdigest()
        return {"present": True, "valid": not diagnostics, "source_path": path, "frontmatter": front,
                "body": body if not diagnostics else "", "diagnostics": diagnostics, "digest": digest}


SOUL_LIST_FIELDS = ("tone", "principles", "constraints", "collaboration", "memory_policy", "tags")


def parse_soul(text: str, max_body_bytes: int, path: str) -> tuple[dict[str, Any], str, list[dict[str, Any]]]:
    """A small reader for SOUL.md: optional `---` frontmatter (scalars, [a, b] or `- item` lists), then a body.

    GUESS: the diagnostic codes and texts below are the emulator's; AGH's own YAML reader says more."""

    def diag(code: str, message: str, line: int = 1, column: int = 1, fld: str = "") -> dict[str, Any]:
        item = {"code": code, "severity": "error", "message": message, "source_path": path, "line": line,
                "column": column}
        return {**item, "field": fld} if fld else item

    lines = text.replace("\r\n", "\n").split("\n")
    if lines[0].strip() != "---":
        body = "\n".join(lines).strip()
        if len(body.encode()) > max_body_bytes:
            too_big = f"SOUL.md body exceeds agents.soul.max_body_bytes ({max_body_bytes})"
            return {}, "", [diag("oversized_body", too_big)]
        return {}, body, []
    end = next((i for i in range(1, len(lines)) if lines[i].strip() == "---"), None)
    if end is None:
        return {}, "", [diag("malformed_frontmatter", "SOUL.md frontmatter is unterminated or malformed")]
    body = "\n".join(lines[end + 1:]).strip()
    if len(body.encode()) > max_body_bytes:
        return {}, "", [diag("oversized_body", f"SOUL.md body exceeds agents.soul.max_body_bytes ({max_body_bytes})",
                             end + 2)]
    raw: dict[str, tuple[Any, int]] = {}
    current = None
    for number, line in enumerate(lines[1:end], start=2):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.startswith("- ") and current is not None and isinstance(raw[current][0], list):
            raw[current][0].append(stripped[2:].strip().strip("\"'"))
            continue
        key, sep, value = line.partition(":")
        if not sep or line[:1].isspace() or not key.strip():
            return {}, "", [diag("malformed_frontmatter", "SOUL.md frontmatter is not valid YAML", 2)]
        current, value = key.strip(), value.strip()
        if value.startswith("[") and value.endswith("]"):
            parsed: Any = [v.strip().strip("\"'") for v in value[1:-1].split(",") if v.strip()]
        elif value == "":
            parsed = []
        else:
            parsed = value.strip("\"'")
        raw[current] = (parsed, number)
    front: dict[str, Any] = {}
    problems = []
    for key in sorted(raw):
        value, number = raw[key]
        if key not in ("version", "role", *SOUL_LIST_FIELDS):
            problems.append(diag("unsupported_field", f'SOUL.md frontmatter field "{key}" is not supported',
                                 number, 1, key))
        elif key in SOUL_LIST_FIELDS and not isinstance(value, list):
            problems.append(diag("invalid_field_type", f'SOUL.md frontmatter field "{key}" must be a list of '
                                 "strings", number, 1, key))
        elif key in ("version", "role") and not isinstance(value, str):
            problems.append(diag("invalid_field_type", f'SOUL.md frontmatter field "{key}" must be a string',
                                 number, 1, key))
        elif value:
            front[key] = value
    return ({}, "", problems) if problems else (front, body, [])


def json_size(value: Any) -> int:
    return len(json.dumps(value, separators=(",", ":")).encode())
