"""In-memory state of the ArchAstro emulator: agents, routines, agent sessions and routine runs.

Time is a `Clock` the tests move by hand (`clock.advance(seconds)`), so every status change is
deterministic. `Store.settle()` applies each transition whose due time has passed, stamping it
with that due time (not with the time of the read that noticed it).

Session timeline (defaults in `Timings`): `pending` -> `running` after `session_pending` seconds,
then each turn lasts `session_turn` seconds and ends as its scripted outcome (`completed` by
default, or `waiting` / `failed`). A message to a `waiting` session starts another turn.
Routine runs: `pending` -> `running` after `run_pending`, then the scripted outcome
(`completed` by default, or `failed` / `skipped`) after `run_duration`.

The emulated agent is not a model: each turn answers the latest thing it was told (the instructions,
then each message) by quoting it, in a harness `message` event and in the session's `result`.
Behaviours no source states are marked `# GUESS` (README, "ArchAstro: what is confirmed").
"""

from __future__ import annotations

import base64
import binascii
import random
import string
import threading
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

EPOCH = datetime(2026, 1, 1, 9, 0, 0, tzinfo=UTC)
INVOKED_EVENT = "agentroutine.invoked"

SEED_APP = "dap_8e464f18ee9f7a01"
SEED_AGENT = "agi_8e464f18ee9f7a01"
SEED_ROUTINE = "arn_8e464f18ee9f7a01"  # active, invocable, lookup_key "triage"
SEED_DRAFT_ROUTINE = "arn_8e464f18ee9f7a02"  # draft: invoke gives 422
SEED_EVENT_ROUTINE = "arn_8e464f18ee9f7a03"  # active but thread-event triggered: invoke gives 422

SESSION_STATUSES = ("pending", "running", "waiting", "completed", "failed", "cancelled")
SESSION_TERMINAL = frozenset({"completed", "failed", "cancelled"})
SESSION_OUTCOMES = ("completed", "waiting", "failed")
RUN_STATUSES = ("pending", "running", "completed", "failed", "skipped", "cancelled")
RUN_TERMINAL = frozenset({"completed", "failed", "skipped", "cancelled"})
RUN_OUTCOMES = ("completed", "failed", "skipped")
ROUTINE_STATUSES = ("draft", "active", "paused")
HANDLER_TYPES = ("workflow_graph", "script", "preset", "chain")

PRESETS = [
    {"name": "do_task", "label": "Do a task", "description": "Runs the agent on the invoke message.",
     "applicable_events": ["*"], "chainable": True, "sessionable": True, "unique": False},
    {"name": "summarize_thread", "label": "Summarize thread",
     "description": "Posts a summary of a conversation thread.",
     "applicable_events": [INVOKED_EVENT, "thread.message_added"], "chainable": True,
     "sessionable": False, "unique": False},
]


class Problem(Exception):
    """An API refusal: HTTP status, stable error code and message."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class Clock:
    """The emulator's notion of now; it only moves when told to."""

    def __init__(self, start: datetime = EPOCH) -> None:
        self._now = start

    def now(self) -> datetime:
        return self._now

    def advance(self, seconds: float) -> datetime:
        if seconds < 0:
            raise ValueError("the clock does not run backwards")
        self._now += timedelta(seconds=seconds)
        return self._now


@dataclass
class Timings:
    session_pending: float = 1.0
    session_turn: float = 5.0
    run_pending: float = 1.0
    run_duration: float = 3.0


@dataclass
class Session:
    id: str
    seq: int
    agent: str
    instructions: str
    created_at: datetime
    name: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    max_turns: int = 100
    max_tokens: int = 20_000
    max_runs_per_turn: int = 25
    team: str | None = None
    thread: str | None = None
    user: str | None = None
    is_system: bool = False
    status: str = "pending"
    inbox: list[dict[str, Any]] = field(default_factory=list)
    result: dict[str, Any] | None = None
    error: str | None = None
    trajectory: str | None = None
    started_at: datetime | None = None
    completed_at: datetime | None = None
    next_at: datetime | None = None
    script: deque[str] = field(default_factory=deque)
    turns: int = 0
    unread: bool = False
    routine_runs: list[str] = field(default_factory=list)
    told: str = ""  # what the next turn answers: the instructions, then the latest message
    events: list[dict[str, Any]] = field(default_factory=list)  # harness events, oldest first

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id, "agent": self.agent, "status": self.status,
            "instructions": self.instructions, "name": self.name, "metadata": self.metadata,
            "inbox": [dict(m) for m in self.inbox], "result": self.result, "error": self.error,
            "trajectory": self.trajectory, "max_turns": self.max_turns, "max_tokens": self.max_tokens,
            "max_runs_per_turn": self.max_runs_per_turn, "is_system_session": self.is_system,
            "created_at": iso(self.created_at), "started_at": iso(self.started_at),
            "completed_at": iso(self.completed_at),
        }


@dataclass
class Run:
    id: str
    seq: int
    routine: str
    agent: str
    app: str
    created_at: datetime
    payload: dict[str, Any]
    metadata: dict[str, Any]
    participants: dict[str, Any] | None
    delivery: dict[str, Any]
    outcome: str
    idempotency_key: str | None = None
    status: str = "pending"
    result: dict[str, Any] | None = None
    duration_ms: int | None = None
    started_at: datetime | None = None
    updated_at: datetime | None = None
    next_at: datetime | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id, "routine": self.routine, "agent": self.agent, "app": self.app,
            "status": self.status, "payload": self.payload, "result": self.result,
            "structured_response": None, "duration_ms": self.duration_ms, "event_id": None,
            "metadata": self.metadata, "participants": self.participants,
            "delivery": dict(self.delivery), "worker": None, "acl": None,
            "created_at": iso(self.created_at), "updated_at": iso(self.updated_at or self.created_at),
        }


# --- body validation -------------------------------------------------------------------------

def _field(body: dict[str, Any], key: str, kinds: type | tuple[type, ...], *, required: bool = False) -> Any:
    value = body.get(key)
    if value is None:
        if required:
            raise Problem(422, "validation_error", f"{key} is required")
        return None
    if isinstance(value, bool) and bool not in (kinds if isinstance(kinds, tuple) else (kinds,)):
        raise Problem(422, "validation_error", f"{key} has the wrong type")
    if not isinstance(value, kinds):
        raise Problem(422, "validation_error", f"{key} has the wrong type")
    if required and isinstance(value, str) and not value.strip():
        raise Problem(422, "validation_error", f"{key} can't be blank")
    return value


def _positive(body: dict[str, Any], key: str, default: int) -> int:
    value = _field(body, key, int)
    if value is None:
        return default
    if value < 1:
        raise Problem(422, "validation_error", f"{key} must be greater than 0")
    return value


def answer_to(text: str) -> str:
    """The emulated agent's answer (GUESS: the words are the emulator's; a real answer comes from its LLM)."""
    return f'You said: "{text}"'


def encode_cursor(seq: int) -> str:
    # GUESS: cursors are opaque; this encoding is the emulator's.
    return base64.urlsafe_b64encode(f"arr:{seq}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        prefix, _, number = raw.partition(":")
        if prefix != "arr" or not number.isdigit():
            raise ValueError(raw)
        return int(number)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise Problem(400, "invalid_cursor", "invalid cursor") from None


class Store:
    """Everything the emulator knows. Hold `lock` while reading or changing it."""

    def __init__(self, *, clock: Clock, timings: Timings, seed: bool = True, plan_llm: bool = True,
                 step: float = 0.0) -> None:
        self.lock = threading.RLock()
        self.clock = clock
        self.timings = timings
        self.step = step  # seconds the clock moves before each API request (0: only by hand)
        self._seed, self._plan_llm = seed, plan_llm
        self.reset(seed=seed)

    def reset(self, seed: bool | None = None) -> None:
        with self.lock:
            self._rng = random.Random("archastro-emulator")
            self._seq = 0
            self.app_id = SEED_APP
            self.plan = {"llm": self._plan_llm}
            self.agents: dict[str, dict[str, Any]] = {}
            self.routines: dict[str, dict[str, Any]] = {}
            self.sessions: dict[str, Session] = {}
            self.runs: dict[str, Run] = {}
            self.next_session_script: deque[str] = deque()
            self.next_run_outcomes: deque[str] = deque()
            self.keyed_sessions: dict[tuple[str, str], str] = {}
            if self._seed if seed is None else seed:
                self._seed_data()

    def _seed_data(self) -> None:
        self.add_agent("Support triage agent", agent_id=SEED_AGENT, lookup_key="support-triage")
        self.add_routine(SEED_AGENT, "Triage an inbound request", routine_id=SEED_ROUTINE, lookup_key="triage",
                         preset_config={"instructions": "Triage the request.", "session_mode": "stateless"})
        self.add_routine(SEED_AGENT, "Weekly digest (draft)", routine_id=SEED_DRAFT_ROUTINE,
                         lookup_key="weekly-digest", status="draft")
        self.add_routine(SEED_AGENT, "Answer new thread messages", routine_id=SEED_EVENT_ROUTINE,
                         lookup_key="on-thread-message", event_type="thread.message_added")

    def new_id(self, prefix: str) -> str:
        # GUESS: the prefixes are confirmed; the alphabet and length after them are not.
        alphabet = string.ascii_lowercase + string.digits
        return prefix + "_" + "".join(self._rng.choice(alphabet) for _ in range(20))

    def _next_seq(self) -> int:
        self._seq += 1
        return self._seq

    # --- agents and routines -----------------------------------------------------------------

    def add_agent(self, name: str = "Agent", *, agent_id: str | None = None, lookup_key: str | None = None) -> str:
        with self.lock:
            agent_id = agent_id or self.new_id("agi")
            self.agents[agent_id] = {"id": agent_id, "name": name, "app": self.app_id, "lookup_key": lookup_key}
            return agent_id

    def add_routine(self, agent: str, name: str, *, routine_id: str | None = None, status: str = "active",
                    event_type: str | None = INVOKED_EVENT, lookup_key: str | None = None,
                    handler_type: str = "preset", preset_name: str | None = "do_task",
                    preset_config: dict[str, Any] | None = None, **extra: Any) -> dict[str, Any]:
        with self.lock:
            if agent not in self.agents:
                raise Problem(404, "not_found", "agent not found")
            now = iso(self.clock.now())
            routine = {
                "id": routine_id or self.new_id("arn"), "agent": agent, "app": self.app_id, "name": name,
                "description": None, "status": status, "handler_type": handler_type, "event_type": event_type,
                "event_config": {event_type: {"filters": {}}} if event_type else None, "schedule": None,
                "preset_name": preset_name if handler_type == "preset" else None,
                "preset_config": (preset_config or {}) if handler_type == "preset" else None,
                "script": None, "config": None, "steps": [], "trigger_context": "event",
                "lookup_key": lookup_key, "acl": None, "metadata": None, "message_policy": None, "user": None,
                "last_applied_template_config": None, "created_at": now, "updated_at": now,
            }
            routine.update(extra)
            self.routines[routine["id"]] = routine
            return routine

    def find_routine(self, ref: str) -> dict[str, Any]:
        routine = self.routines.get(ref)
        if routine is None:
            routine = next((r for r in self.routines.values() if r.get("lookup_key") == ref), None)
        if routine is None:
            raise Problem(404, "not_found", "routine not found")
        return routine

    def list_routines(self, agents: list[str], event_type: str | None) -> list[dict[str, Any]]:
        for agent in agents:
            if agent not in self.agents:
                raise Problem(404, "not_found", f"agent {agent} not found")
        found = [r for r in self.routines.values()
                 if (not agents or r["agent"] in agents) and (event_type is None or r["event_type"] == event_type)]
        return [dict(r) for r in found]

    # --- sessions ----------------------------------------------------------------------------

    def create_session(self, body: dict[str, Any], *, routine_run: str | None = None) -> Session:
        agent = _field(body, "agent", str, required=True)
        instructions = _field(body, "instructions", str, required=True)
        metadata = _field(body, "metadata", dict)
        session = Session(
            id=self.new_id("ase"), seq=self._next_seq(), agent=agent, instructions=instructions,
            created_at=self.clock.now(), name=_field(body, "name", str), metadata=metadata or {},
            max_turns=_positive(body, "max_turns", 100), max_tokens=_positive(body, "max_tokens", 20_000),
            max_runs_per_turn=_positive(body, "max_runs_per_turn", 25), team=_field(body, "team", str),
            thread=_field(body, "thread", str), user=_field(body, "user", str), told=instructions,
        )
        start_idle = _field(body, "start_idle", bool)
        if agent not in self.agents:
            raise Problem(404, "not_found", "agent not found")
        session.script = self.next_session_script
        self.next_session_script = deque()
        if routine_run:
            session.routine_runs.append(routine_run)
        if start_idle:
            session.status = "waiting"
        else:
            session.next_at = session.created_at + timedelta(seconds=self.timings.session_pending)
        self.sessions[session.id] = session
        return session

    def session(self, session_id: str) -> Session:
        session = self.sessions.get(session_id)
        if session is None:
            raise Problem(404, "not_found", "agent session not found")
        return session

    def list_sessions(self, *, agents: list[str], statuses: list[str], routine_runs: list[str],
                      exclude_system: bool, limit: int) -> list[Session]:
        for status in statuses:
            if status not in SESSION_STATUSES:
                raise Problem(422, "validation_error", f"unknown session status {status!r}")  # GUESS
        if len(routine_runs) > 100:
            raise Problem(422, "validation_error", "at most 100 routine_run values")  # GUESS: the status
        found = [s for s in sorted(self.sessions.values(), key=lambda s: s.seq, reverse=True)
                 if (not agents or s.agent in agents) and (not statuses or s.status in statuses)
                 and (not routine_runs or set(s.routine_runs) & set(routine_runs))
                 and not (exclude_system and s.is_system)]
        return found[:limit]

    def message_session(self, session_id: str, body: dict[str, Any], *, sender: tuple[str, str]) -> Session:
        session = self.session(session_id)
        content = _field(body, "content", str, required=True)
        role = _field(body, "role", str) or "user"
        metadata = _field(body, "metadata", dict) or {}
        # GUESS: what a message to an ended session does is not documented (422 is only "Validation
        # failed"); here it is stored in the inbox and starts nothing.
        now = self.clock.now()
        session.inbox.append({"id": self.new_id("msg"), "role": role, "content": content, "sender_id": sender[0],
                              "sender_type": sender[1], "sent_at": iso(now), "metadata": metadata})
        if session.status not in SESSION_TERMINAL:
            session.told = content
        if session.status == "waiting":
            self._begin_turn(session, now)
        elif session.status == "running":
            session.unread = True
        return session

    def cancel_session(self, session_id: str) -> Session:
        session = self.session(session_id)
        if session.status not in SESSION_TERMINAL:
            session.status, session.completed_at, session.next_at = "cancelled", self.clock.now(), None
        return session

    def update_session(self, session_id: str, body: dict[str, Any]) -> Session:
        session = self.session(session_id)
        if "metadata" in body:
            metadata = _field(body, "metadata", dict)
            session.metadata = metadata if metadata is not None else {}
        return session

    def delete_session(self, session_id: str) -> None:
        session = self.session(session_id)
        if session.status not in SESSION_TERMINAL:
            raise Problem(422, "session_not_terminal",
                          f"agent session is {session.status}; only completed, failed or cancelled sessions can be deleted")
        del self.sessions[session_id]

    def finish_session(self, session: Session, status: str, *, result: dict[str, Any] | None = None,
                       error: str | None = None) -> None:
        at = session.next_at if session.next_at and session.next_at <= self.clock.now() else self.clock.now()
        session.status, session.next_at, session.unread = status, None, False
        if status in ("completed", "failed") and session.started_at is None:
            session.started_at, session.trajectory = at, session.trajectory or self.new_id("trj")
        if status == "completed":
            # GUESS: `result` is agent-defined; the emulator's holds the last answer.
            session.result = result if result is not None else {"output": answer_to(session.told), "turns": session.turns}
            session.completed_at = at
            self._harness(session, "finished", at, {"status": "completed"})
        elif status == "failed":
            session.error = error or "the agent run failed"
            session.completed_at = at
            self._harness(session, "error", at, {"message": session.error})
        elif status == "cancelled":
            session.completed_at = at

    def _harness(self, session: Session, event: str, at: datetime, payload: dict[str, Any]) -> None:
        """Record one harness event. GUESS: the SDK says only sessions running a coding harness emit
        events; every emulated session does, with payload fields of the emulator's choosing."""
        session.events.append({"id": self.new_id("cse"), "event": event, "harness": "claude_code",
                               "occurred_at": iso(at), "payload": payload})

    def _begin_turn(self, session: Session, at: datetime) -> None:
        if session.started_at is None:
            self._harness(session, "session_started", at, {})
        session.status = "running"
        session.started_at = session.started_at or at
        session.trajectory = session.trajectory or self.new_id("trj")
        session.unread = False
        session.next_at = at + timedelta(seconds=self.timings.session_turn)

    def _step_session(self, session: Session) -> None:
        at = session.next_at
        assert at is not None
        if session.status == "pending":
            self._begin_turn(session, at)
            return
        session.turns += 1
        self._harness(session, "message", at, {"role": "assistant", "text": answer_to(session.told)})
        self._harness(session, "turn_complete", at, {"turn": session.turns})
        # GUESS: unless scripted, a turn completes the session (a real agent decides when it is done).
        outcome = session.script.popleft() if session.script else "completed"
        if outcome == "waiting" and session.unread:
            self._begin_turn(session, at)  # messages arrived mid-turn: the agent reads them next turn
        elif outcome == "waiting":
            session.status, session.next_at = "waiting", None
            self._harness(session, "needs_input", at, {})
        else:
            self.finish_session(session, outcome)

    # --- routine runs ------------------------------------------------------------------------

    def invoke(self, ref: str, body: dict[str, Any]) -> Run:
        routine = self.find_routine(ref)
        message = _field(body, "message", str, required=True)
        key = _field(body, "idempotency_key", str)
        session_key, user = _field(body, "session_key", str), _field(body, "user", str)
        _field(body, "thread_id", str)
        metadata, participants = _field(body, "metadata", dict), _field(body, "participants", dict)
        delivery = _delivery(_field(body, "delivery", dict))
        if routine["status"] != "active":
            raise Problem(422, "routine_not_active", f"routine is {routine['status']}; only active routines can be invoked")
        if routine["event_type"] != INVOKED_EVENT:
            raise Problem(422, "routine_not_invocable", f"routine event_type must be {INVOKED_EVENT} to be invoked")
        config = routine.get("preset_config") or {}
        scope = config.get("session_scope")
        if scope == "per_key" and not session_key:
            raise Problem(422, "validation_error", "session_key is required when session_scope is per_key")
        if scope == "per_user" and not user:
            raise Problem(422, "validation_error", "user is required when session_scope is per_user")
        if not self.plan.get("llm"):
            raise Problem(402, "payment_required", "your plan does not include LLM calls; upgrade to invoke routines")
        if key:
            earlier = [r for r in self.runs.values() if r.routine == routine["id"] and r.idempotency_key == key]
            if any(r.status == "completed" for r in earlier):
                raise Problem(409, "idempotency_conflict", "a completed run already exists for this idempotency_key")
            in_flight = [r for r in earlier if r.status not in RUN_TERMINAL]
            # GUESS: a repeat while the first run is in flight is not documented; here it returns that run.
            if in_flight:
                return in_flight[0]
        payload = {k: body[k] for k in ("message", "session_key", "thread_id", "user") if body.get(k) is not None}
        now = self.clock.now()
        run = Run(id=self.new_id("arr"), seq=self._next_seq(), routine=routine["id"], agent=routine["agent"],
                  app=self.app_id, created_at=now, payload=payload, metadata=metadata or {},
                  participants=participants, delivery=delivery, idempotency_key=key,
                  outcome=self.next_run_outcomes.popleft() if self.next_run_outcomes else "completed",
                  next_at=now + timedelta(seconds=self.timings.run_pending))
        self.runs[run.id] = run
        if config.get("session_mode") == "session":
            self._route_to_session(routine, run, message, scope_key=session_key or user or "")
        return run

    def _route_to_session(self, routine: dict[str, Any], run: Run, message: str, *, scope_key: str) -> None:
        # GUESS: how a `session` preset routes its invokes into keyed sessions (scopes are documented, the mechanics not).
        sender = (self.app_id, "app")
        known = self.sessions.get(self.keyed_sessions.get((routine["id"], scope_key), ""))
        if known is not None and known.status not in SESSION_TERMINAL:
            known.routine_runs.append(run.id)
            self.message_session(known.id, {"content": message}, sender=sender)
            return
        instructions = (routine.get("preset_config") or {}).get("instructions") or routine["name"]
        session = self.create_session({"agent": routine["agent"], "instructions": instructions, "start_idle": True},
                                      routine_run=run.id)
        self.keyed_sessions[(routine["id"], scope_key)] = session.id
        self.message_session(session.id, {"content": message}, sender=sender)

    def run(self, run_id: str) -> Run:
        run = self.runs.get(run_id)
        if run is None:
            raise Problem(404, "not_found", "routine run not found")
        return run

    def list_runs(self, *, routine: str | None = None, agents: list[str] | None = None, status: str | None = None,
                  limit: int = 50, before: str | None = None, after: str | None = None) -> dict[str, Any]:
        if status is not None and status not in RUN_STATUSES:
            raise Problem(422, "validation_error", f"unknown run status {status!r}")
        before_seq = decode_cursor(before) if before else None
        after_seq = decode_cursor(after) if after else None
        agent_ids = set()
        for ref in agents or []:
            agent_ids.add(ref)
            agent_ids.update(a["id"] for a in self.agents.values() if a.get("lookup_key") == ref)
        matching = sorted((r for r in self.runs.values()
                           if (routine is None or r.routine == routine) and (not agents or r.agent in agent_ids)
                           and (status is None or r.status == status)), key=lambda r: r.seq, reverse=True)
        window = [r for r in matching if (before_seq is None or r.seq < before_seq)
                  and (after_seq is None or r.seq > after_seq)]
        # Newest first; paging towards newer runs takes the ones closest to the cursor.
        page = window[-limit:] if after_seq is not None and before_seq is None else window[:limit]
        if page:
            older_than, newer_than = page[-1].seq, page[0].seq
        else:  # an empty page still points back the way the caller came
            older_than = after_seq + 1 if after_seq is not None else 0
            newer_than = before_seq - 1 if before_seq is not None else 1 << 62
        has_older = any(r.seq < older_than for r in matching)
        has_newer = any(r.seq > newer_than for r in matching)
        return {
            "data": [r.to_json() for r in page],
            "before_cursor": encode_cursor(older_than) if has_older else None,
            "after_cursor": encode_cursor(newer_than) if has_newer else None,
        }

    def finish_run(self, run: Run, status: str, *, result: dict[str, Any] | None = None) -> None:
        now = self.clock.now()
        at = run.next_at if run.next_at and run.next_at <= now else now
        started = run.started_at or at
        run.status, run.next_at, run.updated_at = status, None, at
        if status in RUN_TERMINAL:
            run.duration_ms = int((at - started).total_seconds() * 1000)
        if status == "completed":
            run.result = result if result is not None else {
                "message": f"Handled: {run.payload.get('message', '')}"[:200], "status": "ok"}  # GUESS: agent-defined
            if run.delivery["type"] != "none":
                run.delivery.update(status="delivered", delivered_at=iso(at), delivered_message=self.new_id("msg"))
        elif status == "failed":
            run.result = result
            if run.delivery["type"] != "none":
                run.delivery.update(status="failed", last_error="run_failed")

    def _step_run(self, run: Run) -> None:
        at = run.next_at
        assert at is not None
        if run.status == "pending":
            run.status, run.started_at, run.updated_at = "running", at, at
            run.next_at = at + timedelta(seconds=self.timings.run_duration)
        else:
            self.finish_run(run, run.outcome)

    # --- time --------------------------------------------------------------------------------

    def settle(self) -> None:
        """Apply, in time order, every transition due at or before now."""
        with self.lock:
            now = self.clock.now()
            while True:
                due = [(s.next_at, 0, s.seq, s) for s in self.sessions.values() if s.next_at and s.next_at <= now]
                due += [(r.next_at, 1, r.seq, r) for r in self.runs.values() if r.next_at and r.next_at <= now]
                if not due:
                    return
                _, kind, _, record = min(due, key=lambda item: item[:3])
                if kind == 0:
                    self._step_session(record)
                else:
                    self._step_run(record)


def _delivery(value: dict[str, Any] | None) -> dict[str, Any]:
    # GUESS: the 422s for a delivery missing its thread or message (the fields are documented).
    if not value:
        return {"type": "none", "status": "not_requested"}
    kind = value.get("type")
    if kind not in ("none", "thread", "reply"):
        raise Problem(422, "validation_error", "delivery.type must be none, thread or reply")
    if kind == "thread" and not value.get("thread"):
        raise Problem(422, "validation_error", "delivery.thread is required when delivery.type is thread")
    if kind == "reply" and not value.get("message"):
        raise Problem(422, "validation_error", "delivery.message is required when delivery.type is reply")
    if kind == "none":
        return {"type": "none", "status": "not_requested"}
    shaped = {"type": kind, "status": "pending", "thread": value.get("thread")}
    if kind == "reply":
        shaped["message"] = value["message"]
    return shaped
