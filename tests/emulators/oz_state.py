"""In-memory state of the Oz emulator: a clock, runs that follow scripts, agents and artifacts.

Behaviours no source states are marked `# GUESS` where they happen (and listed in the README's
Oz section); states, fields and error codes follow oz-agent-sdk 0.15.0 and Warp's OpenAPI.

A run's life is a *script*: a list of `Step`s, each a RunState held for some seconds of the
emulator clock (None = held until something else happens). Time only moves when a test calls
`clock.advance(seconds)` (or, with `polls_per_step`, when a run is read often enough), so every
state change is deterministic:

    state = OzState()
    run_id = state.add_run("fix the bug", steps=script("FAILED", step_seconds=5))
    state.clock.advance(20)   # QUEUED -> PENDING -> CLAIMED -> INPROGRESS -> FAILED
"""

from __future__ import annotations

import base64
import binascii
import functools
import json
import random
import string
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

__all__ = [
    "ARTIFACT_TYPES", "CANCEL_REFUSED", "ERROR_CODES", "LIFECYCLE", "RUN_SOURCES", "RUN_STATES",
    "TERMINAL", "Clock", "OzError", "OzState", "Run", "RunQuery", "Step", "rfc3339", "script",
]

RUN_STATES = ("QUEUED", "PENDING", "CLAIMED", "INPROGRESS", "SUCCEEDED", "FAILED", "BLOCKED", "ERROR", "CANCELLED")
LIFECYCLE = ("QUEUED", "PENDING", "CLAIMED", "INPROGRESS")
TERMINAL = frozenset({"SUCCEEDED", "FAILED", "ERROR", "CANCELLED"})
# The cancel endpoint treats BLOCKED as terminal too (documented: "SUCCEEDED, FAILED, ERROR, BLOCKED, CANCELLED").
CANCEL_REFUSED = TERMINAL | {"BLOCKED"}
_STARTED = frozenset({"INPROGRESS", "BLOCKED"}) | TERMINAL
_SANDBOX_UP = frozenset({"CLAIMED", "INPROGRESS", "BLOCKED"})
RUN_SOURCES = (
    "LINEAR", "API", "SLACK", "LOCAL", "SCHEDULED_AGENT", "WEB_APP", "GITHUB_ACTION", "CLOUD_MODE", "CLI",
    "JIRA", "SELF_IMPROVEMENT", "GITHUB_WEBHOOK", "GITLAB_WEBHOOK", "AUTOFIX", "RUN_SCORER", "ORCHESTRATION",
)
ERROR_CODES = (
    "insufficient_credits", "feature_not_available", "external_authentication_required", "not_authorized",
    "invalid_request", "resource_not_found", "budget_exceeded", "integration_disabled",
    "integration_not_configured", "operation_not_supported", "environment_setup_failed",
    "content_policy_violation", "conflict", "authentication_required", "resource_unavailable", "internal_error",
)
ARTIFACT_TYPES = ("PLAN", "PULL_REQUEST", "SCREENSHOT", "FILE", "EXTERNAL_REFERENCE")
EPOCH = datetime(2026, 5, 1, 12, 0, 0, tzinfo=UTC)
USER = {"type": "user", "uid": "u7Hc2kLq9ZpR4sTbVw1xYa", "display_name": "Emulator User", "email": "dev@example.com"}
TEAM_UID = "t3Nf8GhJk2LmPq5RsTvWxY"
_FINAL_DEFAULTS: dict[str, tuple[str | None, str | None, bool | None]] = {
    "FAILED": ("Environment setup failed: could not clone acme/backend.", "environment_setup_failed", False),
    "ERROR": ("An unexpected error occurred. Please try again later.", "internal_error", True),
    "BLOCKED": ("Waiting for approval to run a command.", None, None),
    "CANCELLED": (None, None, None),
    "SUCCEEDED": (None, None, None),
}


class OzError(Exception):
    """A refusal the HTTP layer turns into an RFC 7807 problem (code picks status and title)."""

    def __init__(self, code: str, detail: str | None = None, *, status: int | None = None,
                 title: str | None = None, extra: dict[str, Any] | None = None) -> None:
        super().__init__(detail or code)
        self.code, self.detail, self.status, self.title = code, detail, status, title
        self.extra = extra or {}


class Clock:
    """The emulator's notion of now: frozen at `start` and moved by `advance` (or wall time if realtime)."""

    def __init__(self, start: datetime = EPOCH, *, realtime: bool = False) -> None:
        self._start, self._offset, self._realtime = start, 0.0, realtime
        self._origin = time.monotonic()

    def now(self) -> datetime:
        elapsed = self._offset + (time.monotonic() - self._origin if self._realtime else 0.0)
        return self._start + timedelta(seconds=elapsed)

    def advance(self, seconds: float) -> datetime:
        if seconds < 0:
            raise ValueError("the emulator clock only moves forward")
        self._offset += seconds
        return self.now()


@dataclass(frozen=True)
class Step:
    """Hold `state` for `seconds` of emulator time (None: until a cancel or follow-up moves it)."""

    state: str
    seconds: float | None = None
    message: str | None = None
    error_code: str | None = None
    retryable: bool | None = None

    def __post_init__(self) -> None:
        if self.state not in RUN_STATES:
            raise ValueError(f"unknown RunState {self.state!r}; use one of {RUN_STATES}")
        if self.error_code is not None and self.error_code not in ERROR_CODES:
            raise ValueError(f"unknown error code {self.error_code!r}")


def script(final: str = "SUCCEEDED", *, step_seconds: float = 10.0, start: str = "QUEUED",
           message: str | None = None, error_code: str | None = None, retryable: bool | None = None) -> list[Step]:
    """The usual path QUEUED -> PENDING -> CLAIMED -> INPROGRESS -> `final`, one step per `step_seconds`.

    `final` may be a lifecycle state (the run then stays there, e.g. "PENDING"), BLOCKED, or a
    terminal state. FAILED, ERROR and BLOCKED get a default status message (and error code).
    """
    if final not in RUN_STATES or start not in LIFECYCLE:
        raise ValueError(f"bad script {start!r} -> {final!r}")
    path = list(LIFECYCLE[LIFECYCLE.index(start):])
    if final in LIFECYCLE:
        path = path[: path.index(final) + 1] if final in path else [final]
        return [Step(s, step_seconds) for s in path[:-1]] + [Step(final)]
    default_message, default_code, default_retryable = _FINAL_DEFAULTS[final]
    last = Step(final, None, message or default_message, error_code or default_code,
                retryable if retryable is not None else default_retryable)
    return [Step(s, step_seconds) for s in path] + [last]


@dataclass
class Run:
    """One run as the emulator keeps it; `OzState.to_wire` renders the RunItem."""

    run_id: str
    seq: int
    prompt: str
    title: str
    created_at: datetime
    steps: list[Step]
    entered_at: datetime
    source: str = "API"
    execution_location: str = "REMOTE"
    state: str = "QUEUED"
    index: int = 0
    updated_at: datetime = EPOCH
    started_at: datetime | None = None
    exec_started_at: datetime | None = None
    ended_at: datetime | None = None
    exec_seconds: float = 0.0
    status_message: dict[str, Any] | None = None
    config: dict[str, Any] = field(default_factory=dict)
    agent_skill: dict[str, Any] | None = None
    parent_run_id: str | None = None
    conversation_id: str | None = None
    session_id: str | None = None
    trigger_url: str | None = None
    schedule: dict[str, str] | None = None
    metadata: dict[str, str] = field(default_factory=dict)
    artifacts: list[dict[str, Any]] = field(default_factory=list)
    usage: dict[str, float] | None = None
    team: bool = True
    creator: dict[str, Any] = field(default_factory=lambda: dict(USER))
    executor: dict[str, Any] = field(default_factory=lambda: dict(USER))
    followups: list[dict[str, Any]] = field(default_factory=list)
    handoff: list[dict[str, Any]] = field(default_factory=list)
    ended_once: bool = False
    reads: int = 0
    forbidden: bool = False
    request: dict[str, Any] = field(default_factory=dict)


@dataclass
class RunQuery:
    """Validated list-runs filters, sort and page position (built by the HTTP layer)."""

    states: frozenset[str] = frozenset()
    source: str | None = None
    execution_location: str | None = None
    creator: str | None = None
    executor: str | None = None
    name: str | None = None
    model_id: str | None = None
    environment_id: str | None = None
    skills: tuple[str, ...] = ()
    schedule_id: str | None = None
    ancestor_run_id: str | None = None
    artifact_type: str | None = None
    q: str | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None
    updated_after: datetime | None = None
    metadata: dict[str, str] = field(default_factory=dict)
    sort_by: str = "updated_at"
    sort_order: str = "desc"
    limit: int = 20
    cursor: str | None = None


def rfc3339(moment: datetime) -> str:
    text = moment.astimezone(UTC).isoformat(timespec="microseconds" if moment.microsecond else "seconds")
    return text.replace("+00:00", "Z")


def _duration(seconds: float) -> str:
    whole = int(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    text = "PT" + (f"{hours}H" if hours else "") + (f"{minutes}M" if minutes else "")
    return text + (f"{secs}S" if secs or text == "PT" else "")


class OzState:
    """Everything the emulator knows. Public methods are the test helpers; all are thread-safe."""

    def __init__(self, *, step_seconds: float = 10.0, polls_per_step: int | None = None,
                 realtime: bool = False, max_depth: int = 3, rng_seed: int = 7) -> None:
        self.clock = Clock(realtime=realtime)
        self.step_seconds, self.polls_per_step, self.max_depth = step_seconds, polls_per_step, max_depth
        self.at_capacity = False
        self.runs: dict[str, Run] = {}
        self.agents: list[dict[str, Any]] = []
        self.environments: list[dict[str, Any]] = []
        self.artifact_index: dict[str, tuple[str, dict[str, Any]]] = {}  # uid -> (run_id, extras)
        self._next_scripts: deque[list[Step]] = deque()
        self._rng = random.Random(rng_seed)
        self._seq = 0
        self._lock = threading.RLock()

    # ---- identifiers -------------------------------------------------------------------
    def new_uuid(self) -> str:
        return str(uuid.UUID(int=self._rng.getrandbits(128), version=4))

    def new_uid(self) -> str:
        return "".join(self._rng.choice(string.ascii_letters + string.digits) for _ in range(22))

    # ---- runs: creation and scripts ----------------------------------------------------
    def queue_script(self, steps: list[Step]) -> None:
        """Make the next run created through the API follow `steps` (FIFO)."""
        with self._lock:
            self._next_scripts.append(list(steps))

    def add_run(self, prompt: str = "Emulated task", state: str = "QUEUED", *, steps: list[Step] | None = None,
                hold: bool = False, title: str | None = None, source: str = "API", created_ago: float = 0.0,
                message: str | None = None, error_code: str | None = None, retryable: bool | None = None,
                **fields: Any) -> str:
        """Add a run that is already in `state` (entered now, created `created_ago` seconds ago).

        A lifecycle state continues along the default script unless `hold` is set; BLOCKED and
        terminal states stay. `steps` (a script) overrides both. Other keyword arguments set Run fields
        (config, metadata, parent_run_id, execution_location, schedule, trigger_url, forbidden,
        team, usage, agent_skill). Returns the run id.
        """
        with self._lock:
            now = self.clock.now()
            if steps is not None:
                steps = list(steps)
            elif state in LIFECYCLE and not hold:
                steps = script(start=state, step_seconds=self.step_seconds)
            else:
                default_message, default_code, default_retryable = _FINAL_DEFAULTS.get(state, (None, None, None))
                steps = [Step(state, None, message or default_message, error_code or default_code,
                              retryable if retryable is not None else default_retryable)]
            created_at = now - timedelta(seconds=created_ago)
            run = self._new_run(prompt, title, steps, created_at, source=source, **fields)
            if steps[0].state in _STARTED:
                run.started_at = run.exec_started_at = created_at
                self._attach_session(run)
            self._enter(run, steps[0], now)
            return run.run_id

    def create_run(self, request: dict[str, Any]) -> Run:
        """Create a run from a validated RunAgentRequest (keys as on the wire)."""
        with self._lock:
            self.sync()
            config = dict(request.get("config") or {})
            parent_id = request.get("parent_run_id")
            metadata: dict[str, str] = {}
            if parent_id is not None:
                parent = self.runs.get(parent_id)
                if parent is None:
                    raise OzError("invalid_request", f"parent run {parent_id} not found")
                if self._depth(parent) + 1 > self.max_depth:
                    raise OzError("invalid_request", f"maximum orchestration depth of {self.max_depth} exceeded")
                metadata.update(parent.metadata)  # agent_run_params.py: request keys override keys inherited from the parent
            metadata.update(request.get("metadata") or {})
            env_id = config.get("environment_id")
            if env_id and not any(e["uid"] == env_id for e in self.environments):
                raise OzError("resource_not_found", f"environment {env_id} not found")  # GUESS: an unknown environment is 404 resource_not_found
            skill_spec = request.get("skill") or config.get("skill_spec") or (config.get("skills") or [None])[0]
            agent_skill = None
            if skill_spec:
                config["skill_spec"] = skill_spec
                agent_skill = self._skill_info(skill_spec)
                config.setdefault("name", agent_skill["name"])
            prompt = request.get("prompt") or ""
            title = request.get("title") or self._title_for(prompt or skill_spec or "Cloud agent run")
            steps = self._next_scripts.popleft() if self._next_scripts else script(step_seconds=self.step_seconds)
            now = self.clock.now()
            run = self._new_run(prompt, title, steps, now, source="API", config=config, metadata=metadata,
                                parent_run_id=parent_id, agent_skill=agent_skill,
                                team=request.get("team", True), request=request)
            if request.get("conversation_id"):
                run.conversation_id = request["conversation_id"]
            if request.get("agent_identity_uid"):
                run.executor = {"type": "service_account", "uid": request["agent_identity_uid"]}
            self._enter(run, steps[0], now)
            return run

    def set_script(self, run_id: str, steps: list[Step]) -> None:
        """Replace what is left of a run's script: it enters steps[0] now."""
        with self._lock:
            run = self._get(run_id)
            run.steps, run.index = list(steps), 0
            self._enter(run, run.steps[0], self.clock.now())

    def _new_run(self, prompt: str, title: str | None, steps: list[Step], created_at: datetime, *,
                 source: str, **fields: Any) -> Run:
        if not steps:
            raise ValueError("a script needs at least one step")
        self._seq += 1
        run = Run(run_id=self.new_uuid(), seq=self._seq, prompt=prompt, title=title or self._title_for(prompt),
                  created_at=created_at, steps=steps, entered_at=created_at, source=source,
                  updated_at=created_at, **fields)
        if source in ("LOCAL", "CLI") and "execution_location" not in fields:
            run.execution_location = "LOCAL"
        self.runs[run.run_id] = run
        return run

    @staticmethod
    def _title_for(text: str) -> str:  # GUESS: how Oz generates a missing title
        first = text.strip().splitlines()[0] if text.strip() else "Cloud agent run"
        return first if len(first) <= 60 else first[:57].rstrip() + "..."

    def _depth(self, run: Run) -> int:
        depth = 0
        while run.parent_run_id and run.parent_run_id in self.runs:
            run, depth = self.runs[run.parent_run_id], depth + 1
        return depth

    def _skill_info(self, spec: str) -> dict[str, Any]:
        for agent in self.agents:
            for variant in agent["variants"]:
                if variant["id"] == spec or spec.endswith(":" + agent["name"]):
                    return {"name": agent["name"], "description": variant["description"], "full_path": variant["id"]}
        name = spec.rsplit(":", 1)[-1].removesuffix("/SKILL.md").rsplit("/", 1)[-1]
        return {"name": name, "full_path": spec}

    # ---- runs: advancing -----------------------------------------------------------------
    def _enter(self, run: Run, step: Step, at: datetime) -> None:
        run.state, run.entered_at, run.updated_at = step.state, at, at
        run.status_message = None
        if step.message is not None:
            run.status_message = {"message": step.message}
            if step.error_code is not None:
                run.status_message["error_code"] = step.error_code
            if step.retryable is not None:
                run.status_message["retryable"] = step.retryable
        if step.state == "QUEUED":
            run.ended_at = None
        if step.state in ("CLAIMED", "INPROGRESS") and run.conversation_id is None:
            run.conversation_id = self.new_uuid()  # GUESS: when a run gets its conversation id
        if step.state in _STARTED and run.exec_started_at is None:
            run.exec_started_at = at
            run.started_at = run.started_at or at
            self._attach_session(run)
        if step.state in TERMINAL:
            if run.exec_started_at is not None:
                run.exec_seconds += (at - run.exec_started_at).total_seconds()
            run.exec_started_at, run.ended_at, run.ended_once = None, at, True

    def _attach_session(self, run: Run) -> None:
        if run.session_id is None:
            run.session_id = self.new_uuid()
        if run.conversation_id is None:
            run.conversation_id = self.new_uuid()

    def sync(self) -> None:
        """Bring every run's state up to the clock."""
        with self._lock:
            now = self.clock.now()
            for run in self.runs.values():
                while run.index + 1 < len(run.steps):
                    seconds = run.steps[run.index].seconds
                    if seconds is None or run.entered_at + timedelta(seconds=seconds) > now:
                        break
                    run.index += 1
                    self._enter(run, run.steps[run.index], run.entered_at + timedelta(seconds=seconds))

    def step(self, run_id: str) -> str:
        """Move a run to its next script step now, whatever the clock says. Returns the new state."""
        with self._lock:
            run = self._get(run_id)
            if run.index + 1 < len(run.steps):
                run.index += 1
                self._enter(run, run.steps[run.index], self.clock.now())
            return run.state

    def snapshot(self) -> list[Run]:
        """Every run, synced to the clock (a copy of the list, safe to iterate)."""
        with self._lock:
            self.sync()
            return list(self.runs.values())

    def _get(self, run_id: str) -> Run:
        run = self.runs.get(run_id)
        if run is None:
            raise OzError("resource_not_found", f"run {run_id} not found")
        if run.forbidden:
            raise OzError("not_authorized", "caller cannot access this run")
        return run

    def peek(self, run_id: str) -> Run:
        """The run synced to the clock, without counting a read."""
        with self._lock:
            self.sync()
            return self.runs[run_id]

    def read(self, run_id: str) -> Run:
        """The run as GET /agent/runs/{id} sees it (counts the read for `polls_per_step`)."""
        with self._lock:
            self.sync()
            run = self._get(run_id)
            run.reads += 1
            if self.polls_per_step and run.reads % self.polls_per_step == 0:
                self.step(run_id)
            return run

    # ---- runs: cancel and follow-ups -------------------------------------------------------
    def cancel(self, run_id: str) -> str:
        with self._lock:
            self.sync()
            run = self._get(run_id)
            if run.state in CANCEL_REFUSED:
                raise OzError("invalid_request", f"run is already in a terminal state ({run.state})")
            worker = run.config.get("worker_host")
            if run.source in ("LOCAL", "GITHUB_ACTION") or run.execution_location == "LOCAL" or (
                    worker and worker != "warp"):
                kind = "Self-hosted" if worker and worker != "warp" else (
                    "GitHub Action" if run.source == "GITHUB_ACTION" else "Local")
                raise OzError("operation_not_supported", title=f"{kind} agent runs cannot be cancelled with the API.")
            if run.state == "PENDING":
                raise OzError("conflict", title="Pending agent runs cannot be cancelled, retry after a moment.")
            run.steps, run.index = [Step("CANCELLED")], 0
            self._enter(run, run.steps[0], self.clock.now())
            return run.run_id

    def submit_followup(self, run_id: str, message: str, mode: str) -> dict[str, Any]:
        """Route a follow-up by state: queued/running runs keep going, BLOCKED resumes, ended runs re-run."""
        with self._lock:
            self.sync()
            run = self._get(run_id)
            now = self.clock.now()
            record = {"message": message, "mode": mode, "state": run.state, "at": rfc3339(now)}
            run.followups.append(record)
            if run.state == "BLOCKED":  # GUESS: a follow-up resumes a BLOCKED run
                run.steps, run.index = [Step("INPROGRESS", self.step_seconds), Step("SUCCEEDED")], 0
                self._enter(run, run.steps[0], now)
            elif run.state in TERMINAL:  # GUESS: a follow-up re-runs an ended run from QUEUED
                run.steps, run.index = script(step_seconds=self.step_seconds), 0
                self._enter(run, run.steps[0], now)
            else:
                run.updated_at = now
            return record

    def followups(self, run_id: str) -> list[dict[str, Any]]:
        with self._lock:
            if run_id not in self.runs:
                raise OzError("resource_not_found", f"run {run_id} not found")
            return list(self.runs[run_id].followups)

    # ---- artifacts and handoff files ---------------------------------------------------------
    def add_artifact(self, run_id: str, artifact_type: str, *, content: bytes | str | None = None,
                     **data: Any) -> str | None:
        """Attach an artifact (defaults fill the required data keys). Returns its artifact_uid, if it has one."""
        with self._lock:
            run, now = self.runs[run_id], self.clock.now()
            uid: str | None = data.pop("artifact_uid", None) or self.new_uuid()
            body = content.encode() if isinstance(content, str) else content
            if artifact_type == "PLAN":
                notebook = data.get("notebook_uid") or self.new_uid()
                defaults: dict[str, Any] = {
                    "document_uid": self.new_uid(), "artifact_uid": uid, "notebook_uid": notebook,
                    "title": "Implementation plan", "url": f"https://app.warp.dev/drive/notebook/{notebook}"}
                body = body if body is not None else b"# Plan\n\n1. Reproduce the bug\n2. Fix it\n3. Add a test\n"
            elif artifact_type == "SCREENSHOT":
                defaults = {"artifact_uid": uid, "mime_type": "image/png", "description": "Screenshot of the result"}
                body = body if body is not None else b"\x89PNG\r\n\x1a\nemulated-screenshot"
            elif artifact_type == "FILE":
                path = data.get("filepath", "out/report.md")
                body = body if body is not None else b"# Report\n\nAll tests pass.\n"
                defaults = {"artifact_uid": uid, "filename": path.rsplit("/", 1)[-1], "filepath": path,
                            "mime_type": "text/markdown", "size_bytes": len(body), "title": "Report"}
            elif artifact_type == "PULL_REQUEST":
                uid, defaults = None, {"branch": f"oz/{run_id[:8]}", "url": "https://github.com/acme/backend/pull/42"}
            elif artifact_type == "EXTERNAL_REFERENCE":
                uid, defaults = None, {"reference_type": "linear_issue", "url": "https://linear.app/acme/issue/ENG-7",
                                       "title": "ENG-7"}
            else:
                raise ValueError(f"unknown artifact type {artifact_type!r}; use one of {ARTIFACT_TYPES}")
            item = {"artifact_type": artifact_type, "created_at": rfc3339(now), "data": defaults | data}
            run.artifacts.append(item)
            run.updated_at = now
            if uid is not None:
                self.artifact_index[uid] = (run_id, {"item": item, "content": body or b""})
            return uid

    def artifact(self, uid: str, base_url: str) -> dict[str, Any]:
        """The GET /agent/artifacts/{uid} body: plan content inline, files and screenshots as signed URLs."""
        with self._lock:
            if uid not in self.artifact_index:
                raise OzError("resource_not_found", f"artifact {uid} not found")
            run_id, entry = self.artifact_index[uid]
            self._get(run_id)
            item, data = entry["item"], dict(entry["item"]["data"])
            kind = item["artifact_type"]
            out: dict[str, Any] = {"artifact_type": kind, "artifact_uid": uid, "created_at": item["created_at"]}
            if kind == "PLAN":
                out["data"] = {"content": entry["content"].decode(), "content_type": "text/markdown",
                               "document_uid": data["document_uid"],
                               "notebook_uid": data.get("notebook_uid") or data["document_uid"]}
                out["data"].update({k: data[k] for k in ("title", "url") if k in data})
                return out
            signed = {"content_type": data.pop("mime_type"), "download_url": self._signed(base_url, "artifacts", uid),
                      "expires_at": rfc3339(self.clock.now() + timedelta(minutes=15))}  # GUESS: the link's lifetime
            data.pop("artifact_uid", None)
            out["data"] = signed | data
            return out

    def add_handoff_attachment(self, run_id: str, filename: str, content: bytes | str = b"",
                               mime_type: str | None = None) -> str:
        """Record a snapshot file; it is listed once the run has an ended execution."""
        with self._lock:
            attachment_id = self.new_uuid()
            body = content.encode() if isinstance(content, str) else content
            self.runs[run_id].handoff.append(
                {"attachment_id": attachment_id, "filename": filename, "mime_type": mime_type, "content": body})
            return attachment_id

    def handoff_attachments(self, run_id: str, base_url: str) -> list[dict[str, Any]]:
        with self._lock:
            self.sync()
            run = self._get(run_id)
            if not run.ended_once:  # GUESS: attachments appear once an execution has ended
                return []
            out = []
            for a in run.handoff:
                entry = {"attachment_id": a["attachment_id"], "filename": a["filename"],
                         "download_url": self._signed(base_url, "handoff", a["attachment_id"])}
                out.append(entry | ({"mime_type": a["mime_type"]} if a["mime_type"] else {}))
            return out

    def download(self, kind: str, ident: str) -> tuple[bytes, str] | None:
        """Content behind a signed download URL, as (bytes, media type)."""
        with self._lock:
            if kind == "artifacts" and ident in self.artifact_index:
                entry = self.artifact_index[ident][1]
                return entry["content"], entry["item"]["data"].get("mime_type", "application/octet-stream")
            for run in self.runs.values():
                for a in run.handoff if kind == "handoff" else ():
                    if a["attachment_id"] == ident:
                        return a["content"], a["mime_type"] or "application/octet-stream"
            return None

    def _signed(self, base_url: str, kind: str, ident: str) -> str:
        expires = int((self.clock.now() + timedelta(minutes=15)).timestamp())  # GUESS: signed URL shape and lifetime
        return f"{base_url.rstrip('/')}/storage/{kind}/{ident}?Expires={expires}&Signature=emulated"

    # ---- listing ---------------------------------------------------------------------------
    def list_runs(self, query: RunQuery) -> tuple[list[Run], str | None]:
        """One page of runs for `query`, plus the cursor of the next page (None on the last page)."""
        with self._lock:
            self.sync()
            if query.ancestor_run_id is not None and query.ancestor_run_id not in self.runs:
                raise OzError("invalid_request", f"ancestor run {query.ancestor_run_id} not found")
            desc = query.sort_order == "desc"
            after = self._decode_cursor(query) if query.cursor else None
            compare = functools.partial(_compare, desc=desc)
            runs = [r for r in self.runs.values() if self._matches(r, query)]
            runs.sort(key=functools.cmp_to_key(lambda a, b: compare(self._key(a, query), self._key(b, query))))
            if after is not None:
                runs = [r for r in runs if compare(self._key(r, query), after) > 0]
            page = runs[: query.limit]
            if len(runs) <= query.limit:
                return page, None
            key = self._key(page[-1], query)
            raw = json.dumps([query.sort_by, query.sort_order, key[0], key[1]]).encode()
            return page, base64.urlsafe_b64encode(raw).decode().rstrip("=")

    @staticmethod
    def _key(run: Run, query: RunQuery) -> tuple[Any, int]:
        if query.sort_by == "created_at":
            return run.created_at.timestamp(), run.seq
        if query.sort_by == "title":
            return run.title.casefold(), run.seq
        if query.sort_by == "agent":
            return run.config.get("skill_spec"), run.seq
        return run.updated_at.timestamp(), run.seq

    @staticmethod
    def _decode_cursor(query: RunQuery) -> tuple[Any, int]:
        try:
            text = query.cursor or ""
            sort_by, sort_order, primary, seq = json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
        except (ValueError, TypeError, binascii.Error) as exc:
            raise OzError("invalid_request", "invalid cursor") from exc
        if (sort_by, sort_order) != (query.sort_by, query.sort_order) or not isinstance(seq, int):
            raise OzError("invalid_request", "cursor does not match the requested sort")  # GUESS: 400 for a cursor of another sort
        return primary, seq

    def _matches(self, run: Run, q: RunQuery) -> bool:
        config, spec = run.config, run.config.get("skill_spec")
        checks = [
            not q.states or run.state in q.states,
            q.source is None or run.source == q.source,
            q.execution_location is None or run.execution_location == q.execution_location,
            q.creator is None or run.creator.get("uid") == q.creator,
            q.executor is None or run.executor.get("uid") == q.executor,
            q.name is None or config.get("name") == q.name,
            q.model_id is None or config.get("model_id") == q.model_id,
            q.environment_id is None or config.get("environment_id") == (
                None if q.environment_id == "empty-environment" else q.environment_id),
            all(s == spec or s in (config.get("skills") or []) for s in q.skills),
            q.schedule_id is None or (run.schedule or {}).get("schedule_id") == q.schedule_id,
            q.artifact_type is None or any(a["artifact_type"] == q.artifact_type for a in run.artifacts),
            q.created_after is None or run.created_at > q.created_after,
            q.created_before is None or run.created_at < q.created_before,
            q.updated_after is None or run.updated_at > q.updated_after,
            all(run.metadata.get(k) == v for k, v in q.metadata.items()),
            q.q is None or q.q.casefold() in f"{run.title}\n{run.prompt}\n{spec or ''}".casefold(),
        ]
        if q.ancestor_run_id is not None:
            checks.append(self._has_ancestor(run, q.ancestor_run_id))
        return all(checks)

    def _has_ancestor(self, run: Run, ancestor_id: str) -> bool:
        while run.parent_run_id:
            if run.parent_run_id == ancestor_id:
                return True
            if run.parent_run_id not in self.runs:
                return False
            run = self.runs[run.parent_run_id]
        return False

    # ---- rendering -------------------------------------------------------------------------
    def to_wire(self, run: Run) -> dict[str, Any]:
        """The RunItem JSON object for `run` (optional fields omitted when unset)."""
        with self._lock:
            now = self.clock.now()
            item: dict[str, Any] = {
                "run_id": run.run_id, "task_id": run.run_id, "title": run.title, "state": run.state,
                "prompt": run.prompt, "created_at": rfc3339(run.created_at), "updated_at": rfc3339(run.updated_at),
                "started_at": rfc3339(run.started_at) if run.started_at else None,
                "execution_location": run.execution_location, "source": run.source,
                "creator": run.creator, "executor": run.executor,
                "scope": {"type": "Team", "uid": TEAM_UID} if run.team else {"type": "User", "uid": USER["uid"]},
                "is_run_type_cancellable": run.source not in ("LOCAL", "GITHUB_ACTION"),
                "is_sandbox_running": self._sandbox_running(run, now),
                "artifacts": list(run.artifacts),
            }
            optional = {
                "status_message": run.status_message, "conversation_id": run.conversation_id,
                "session_id": run.session_id, "parent_run_id": run.parent_run_id, "trigger_url": run.trigger_url,
                "schedule": run.schedule, "agent_skill": run.agent_skill, "agent_config": run.config or None,
                "metadata": run.metadata or None,
            }
            item.update({k: v for k, v in optional.items() if v is not None})
            if run.session_id:
                item["session_link"] = f"https://app.warp.dev/session/{run.session_id}"  # GUESS: the session link's URL shape
            seconds = run.exec_seconds + ((now - run.exec_started_at).total_seconds() if run.exec_started_at else 0)
            if run.started_at is not None:
                item["run_time"] = _duration(seconds)
                item["request_usage"] = run.usage if run.usage is not None else _usage(seconds)
            return item

    @staticmethod
    def _sandbox_running(run: Run, now: datetime) -> bool:
        if run.state in _SANDBOX_UP:
            return True
        if run.state == "CANCELLED" or run.ended_at is None or run.started_at is None:
            return False
        idle = run.config.get("idle_timeout_minutes") or 10  # ambient_agent_config.py: "defaults to 10 minutes"
        return now < run.ended_at + timedelta(minutes=idle)


def _usage(seconds: float) -> dict[str, float]:  # GUESS: credit and USD numbers are invented
    minutes = seconds / 60
    credits = {"inference_cost": round(2.0 * minutes, 2), "compute_cost": round(0.5 * minutes, 2), "platform_cost": 0.0}
    return credits | {f"{k}_usd": round(v * 0.02, 4) for k, v in credits.items()}


def _compare(a: tuple[Any, int], b: tuple[Any, int], *, desc: bool) -> int:
    """Order two sort keys; a None primary (a run without a skill) always sorts last."""
    (pa, sa), (pb, sb) = a, b
    if pa != pb:
        if pa is None or pb is None:
            return 1 if pa is None else -1
        result = -1 if pa < pb else 1
    elif sa != sb:
        result = -1 if sa < sb else 1
    else:
        return 0
    return -result if desc else result
