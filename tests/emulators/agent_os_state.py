"""In-memory state behind the Agent OS emulator: agents, threads, runs, attempts and their
event ledgers, credentials, triggers, a fake clock and scripted run progress.

A run produces its events from a script, a list of `Step`s. Time never passes by itself
(unless `realtime` is on): a test moves it with `clock.advance(seconds)`, or forces the next
steps of one run with `advance(run_id, n)`. Every new event wakes the SSE streams through a
thread-safe `Notifier`, so a test thread can drive a server running on another event loop.

What the public SDK confirms and what is guessed is described in
/work/shared/platforms/agent-os.md; every guess here carries a `# GUESS:` comment.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import threading
import time
import uuid
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

__all__ = [
    "ApiError",
    "Attempt",
    "Clock",
    "Notifier",
    "Run",
    "RUN_STATUSES",
    "State",
    "Step",
    "TERMINAL_TYPES",
    "answer_to",
    "default_script",
    "progress_script",
]

log = logging.getLogger("tests.emulators.agent_os")

# Confirmed: the SDK treats exactly these (upper-cased) payload types as the end of a stream.
TERMINAL_TYPES = frozenset({"RUN_FINISHED", "RUN_FAILED", "RUN_CANCELLED"})

# GUESS: only "running", "waiting_for_human" and "resumed" are visible in the SDK; the queued
# state and the three terminal names are the most likely members of the rest of the union.
RUN_STATUSES = ("queued", "running", "waiting_for_human", "resumed", "completed", "failed", "cancelled")

# GUESS: which event type moves the run to which status. Only the terminal types are confirmed;
# RUN_STARTED / RUN_WAITING_FOR_HUMAN / RUN_RESUMED follow the RUN_* naming pattern.
STATUS_BY_EVENT = {
    "RUN_STARTED": "running",
    "RUN_WAITING_FOR_HUMAN": "waiting_for_human",
    "RUN_RESUMED": "resumed",
    "RUN_FINISHED": "completed",
    "RUN_FAILED": "failed",
    "RUN_CANCELLED": "cancelled",
}

_EPOCH = datetime(2026, 1, 1, tzinfo=UTC)


class ApiError(Exception):
    """An error the HTTP layer turns into a JSON error body with this status and code."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


@dataclass
class Step:
    """One scripted event. `after` is seconds after the previous step (None: the default)."""

    type: str
    payload: dict[str, Any] = field(default_factory=dict)
    after: float | None = None
    status: str | None = None  # overrides STATUS_BY_EVENT for this event
    hold: bool = False  # once emitted, the clock no longer moves this run until resume/advance

    @classmethod
    def of(cls, value: Step | dict[str, Any] | str) -> Step:
        if isinstance(value, Step):
            return Step(value.type, dict(value.payload), value.after, value.status, value.hold)
        if isinstance(value, str):
            return cls(value)
        return cls(**value)


def answer_to(input_: Any) -> str:
    """The emulated agent's answer: what it was given, quoted (GUESS: the words are the emulator's)."""
    told = input_.get("message", input_) if isinstance(input_, dict) else input_
    return f'You said: "{told if isinstance(told, str) else json.dumps(told)}"'


def default_script(input_: Any = None) -> list[Step]:
    """A plain run: start, one node that answers by quoting the input, finish with that answer as output.

    GUESS: NODE_STARTED / NODE_FINISHED and a `text` field in a node event are not confirmed (only the
    terminal types and the `node` payload field are); the output's shape is the emulator's."""
    return [
        Step("RUN_STARTED"),  # GUESS: the name follows the confirmed RUN_* pattern
        Step("NODE_STARTED", {"node": "agent"}),
        Step("NODE_FINISHED", {"node": "agent", "text": answer_to(input_)}),
        Step("RUN_FINISHED", {"output": {"answer": answer_to(input_), "echo": input_}}),
    ]


def progress_script(progress: int = 3, *, human: bool = False, outcome: str = "RUN_FINISHED") -> list[Step]:
    """RUN_STARTED, `progress` node events, optionally a human pause and resume, then `outcome`."""
    steps = [Step("RUN_STARTED")]
    steps += [Step("NODE_FINISHED", {"node": f"step-{i}", "progress": i, "of": progress}) for i in range(1, progress + 1)]
    if human:
        steps.append(Step("RUN_WAITING_FOR_HUMAN", {"node": "review", "prompt": "approve?"}, hold=True))
        steps.append(Step("RUN_RESUMED", {"node": "review"}))
    terminal = {"RUN_FINISHED": {"output": {"ok": True}}, "RUN_FAILED": {"error": {"message": "scripted failure"}}}
    steps.append(Step(outcome, terminal.get(outcome, {})))
    return steps


class Notifier:
    """A change counter whose waiters may live on any event loop; `notify` is thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = []
        self.version = 0

    def notify(self) -> None:
        with self._lock:
            self.version += 1
            waiters, self._waiters = self._waiters, []
        for loop, event in waiters:
            try:
                loop.call_soon_threadsafe(event.set)
            except RuntimeError:  # that loop is already closed
                pass

    async def wait(self, seen: int, timeout: float | None) -> bool:
        """Wait until the version differs from `seen`; False when `timeout` ran out first."""
        entry = (asyncio.get_running_loop(), asyncio.Event())
        with self._lock:
            if self.version != seen:
                return True
            self._waiters.append(entry)
        try:
            await asyncio.wait_for(entry[1].wait(), timeout)
            return True
        except TimeoutError:
            return False
        finally:
            with self._lock:
                if entry in self._waiters:
                    self._waiters.remove(entry)


class Clock:
    """Fake time in seconds since 2026-01-01T00:00:00Z. `advance` runs every step that falls due."""

    def __init__(self, state: State) -> None:
        self._state = state
        self.time = 0.0

    def now(self) -> datetime:
        return _EPOCH + timedelta(seconds=self.time)

    def iso(self) -> str:
        return self.now().isoformat(timespec="milliseconds").replace("+00:00", "Z")

    def advance(self, seconds: float) -> list[dict[str, Any]]:
        """Move time forward; returns the events produced on the way, in order."""
        return self._state.advance_time(seconds)


@dataclass
class Attempt:
    id: str
    no: int
    script: deque[Step]
    events: list[dict[str, Any]] = field(default_factory=list)
    next_due: float | None = None
    held: bool = False
    closed: bool = False  # superseded by a newer attempt

    @property
    def latest_seq(self) -> int:
        return self.events[-1]["seq"] if self.events else 0

    @property
    def finished(self) -> bool:
        return bool(self.events) and self.events[-1]["type"].upper() in TERMINAL_TYPES


@dataclass
class Run:
    id: str
    agent_id: str
    thread_id: str
    input: Any
    created_at: str
    attempts: list[Attempt]
    status: str = "queued"  # GUESS: the state before the first RUN_STARTED
    output: Any = None
    error: Any = None
    started_at: str | None = None
    completed_at: str | None = None
    idempotency_key: str | None = None

    @property
    def attempt(self) -> Attempt:
        return self.attempts[-1]

    def to_dict(self) -> dict[str, Any]:
        # GUESS: the fields before `input` are not visible; id/agent_id/thread_id/status are likely.
        return {
            "id": self.id,
            "agent_id": self.agent_id,
            "thread_id": self.thread_id,
            "status": self.status,
            "input": self.input,
            "output": self.output,
            "error": self.error,
            "current_attempt_id": self.attempt.id,
            "current_attempt_no": self.attempt.no,
            "latest_seq": self.attempt.latest_seq,
            "created_at": self.created_at,
            "started_at": self.started_at,
            "completed_at": self.completed_at,
        }


@dataclass
class _Drop:
    after: int
    mode: str  # "abort": break the connection; "eof": end the response cleanly
    run_id: str | None


class State:
    """Everything the emulator knows. Safe to call from the test thread and the server loop."""

    def __init__(self, *, step_seconds: float = 1.0, script: Iterable[Any] | None = None,
                 realtime: bool = False, id_seed: int = 0) -> None:
        self.lock = threading.RLock()
        self.notifier = Notifier()
        self.clock = Clock(self)
        self.step_seconds = step_seconds
        self.default_steps = [Step.of(s) for s in script] if script is not None else None
        self.realtime = realtime
        self._wall = time.monotonic()
        self._rng = random.Random(id_seed)
        self.agents: dict[str, dict[str, Any]] = {}
        self.threads: dict[str, dict[str, Any]] = {}
        self.runs: dict[str, Run] = {}
        self.credentials: dict[str, dict[str, Any]] = {}
        self.triggers: list[dict[str, Any]] = []
        self._agent_keys: dict[str, str] = {}
        self._run_keys: dict[str, str] = {}
        self.secret_reads: list[str] = []  # credential ids whose values were handed out
        self.credential_reads: list[dict[str, Any]] = []
        self.stream_log: list[dict[str, Any]] = []
        self._drops: list[_Drop] = []

    # ---- ids and seed data ----

    def new_id(self) -> str:
        return str(uuid.UUID(int=self._rng.getrandbits(128), version=4))

    def seed(self) -> None:
        support = self.create_agent("Support triage", {"team": "support"})[0]
        self.create_agent("Research assistant", None)
        cred = self.new_id()
        self.credentials[cred] = {
            "id": cred, "name": "Chatwoot (support)", "type": "chatwoot", "created_at": self.clock.iso(),
            "publicConfig": {"url": "https://chatwoot.example.test", "account_id": "1"},
            "data": {},
            "values": {"api_access_token": "cw-secret-token-do-not-leak"},
        }
        self.triggers.append({
            "id": self.new_id(), "agent_id": support["id"], "type": "chatwoot",
            "config": {"chat_platform": "chatwoot", "credential_id": cred}, "created_at": self.clock.iso(),
        })

    # ---- agents ----

    def create_agent(self, name: Any, metadata: Any, key: str | None = None) -> tuple[dict[str, Any], bool]:
        with self.lock:
            if not isinstance(name, str) or not name:
                raise ApiError(400, "VALIDATION_ERROR", "name is required")
            if key is not None and key in self._agent_keys:
                # Documented by the SDK: a reused agent idempotency key is a 409, not a replay.
                raise ApiError(409, "IDEMPOTENCY_CONFLICT", "idempotency key already used")
            now = self.clock.iso()
            agent = {"id": self.new_id(), "name": name, "live_bundle_id": None, "metadata": metadata,
                     "created_at": now, "updated_at": now,
                     "last_run_id": None, "last_run_status": None, "last_run_at": None}
            self.agents[agent["id"]] = agent
            if key is not None:
                self._agent_keys[key] = agent["id"]
            return agent, True

    def agent(self, agent_id: str) -> dict[str, Any]:
        agent = self.agents.get(agent_id)
        if agent is None:
            raise ApiError(404, "AGENT_NOT_FOUND", f"agent {agent_id} not found")
        return agent

    def update_agent(self, agent_id: str, body: dict[str, Any]) -> dict[str, Any]:
        with self.lock:
            agent = self.agent(agent_id)
            for key in ("name", "live_bundle_id", "metadata"):
                if key in body:
                    agent[key] = body[key]
            agent["updated_at"] = self.clock.iso()
            return agent

    def delete_agent(self, agent_id: str) -> None:
        with self.lock:
            self.agent(agent_id)
            del self.agents[agent_id]

    # ---- runs ----

    def create_run(self, agent_id: Any, thread: Any, input_: Any, key: str | None) -> tuple[Run, bool]:
        """Returns (run, replayed). The same idempotency key gives back the same run."""
        with self.lock:
            if not isinstance(agent_id, str) or not agent_id:
                raise ApiError(400, "VALIDATION_ERROR", "agent_id is required")
            if key is not None and key in self._run_keys:
                run = self.runs[self._run_keys[key]]
                if run.agent_id != agent_id or run.input != input_:
                    # GUESS: reusing a key for a different request is refused rather than replayed.
                    raise ApiError(409, "IDEMPOTENCY_KEY_REUSED", "idempotency key used for another request")
                return run, True
            self.agent(agent_id)
            thread_id = self._thread_for(agent_id, thread)
            now = self.clock.iso()
            steps = self.default_steps if self.default_steps is not None else default_script(input_)
            run = Run(self.new_id(), agent_id, thread_id, input_, now,
                      [Attempt(self.new_id(), 1, deque(Step.of(s) for s in steps))], idempotency_key=key)
            self.runs[run.id] = run
            if key is not None:
                self._run_keys[key] = run.id
            self._schedule(run.attempt)
            self._touch_agent(run)
            self.advance_time(0)
            return run, False

    def _thread_for(self, agent_id: str, thread: Any) -> str:
        if thread is None:
            thread = {"new_thread": True}  # GUESS: no thread given means a fresh thread
        if not isinstance(thread, dict):
            raise ApiError(400, "VALIDATION_ERROR", "thread must be {thread_id} or {new_thread: true}")
        if thread.get("thread_id"):
            existing = self.threads.get(thread["thread_id"])
            if existing is None:
                raise ApiError(404, "THREAD_NOT_FOUND", f"thread {thread['thread_id']} not found")
            return existing["id"]
        if thread.get("new_thread") is True:
            new = {"id": self.new_id(), "agent_id": agent_id, "created_at": self.clock.iso()}
            self.threads[new["id"]] = new
            return new["id"]
        raise ApiError(400, "VALIDATION_ERROR", "thread must be {thread_id} or {new_thread: true}")

    def run(self, run_id: str) -> Run:
        run = self.runs.get(run_id)
        if run is None:
            raise ApiError(404, "RUN_NOT_FOUND", f"run {run_id} not found")
        return run

    def attempt(self, run_id: str, attempt_id: str | None) -> Attempt:
        run = self.run(run_id)
        if not attempt_id:
            raise ApiError(400, "VALIDATION_ERROR", "attemptId is required")
        for attempt in run.attempts:
            if attempt.id == attempt_id:
                return attempt
        raise ApiError(404, "ATTEMPT_NOT_FOUND", f"attempt {attempt_id} not found for run {run_id}")

    def list_runs(self, agent_id: str | None, status: str | None, thread_id: str | None) -> list[Run]:
        with self.lock:
            runs = [r for r in self.runs.values()
                    if (agent_id is None or r.agent_id == agent_id)
                    and (status is None or r.status == status)
                    and (thread_id is None or r.thread_id == thread_id)]
            return runs[::-1]  # GUESS: newest first

    def events_after(self, run_id: str, attempt_id: str, after_seq: int) -> tuple[list[dict[str, Any]], Attempt]:
        with self.lock:
            attempt = self.attempt(run_id, attempt_id)
            return [e for e in attempt.events if e["seq"] > after_seq], attempt

    # ---- progress ----

    def _schedule(self, attempt: Attempt, base: float | None = None) -> None:
        if attempt.script and not attempt.held and not attempt.closed:
            step = attempt.script[0]
            after = self.step_seconds if step.after is None else step.after
            attempt.next_due = (self.clock.time if base is None else base) + after
        else:
            attempt.next_due = None

    def _emit(self, run: Run, attempt: Attempt, step: Step) -> dict[str, Any]:
        now = self.clock.iso()
        event = {"id": self.new_id(), "seq": attempt.latest_seq + 1, "type": step.type,
                 "timestamp": now, "attempt_id": attempt.id, "payload": dict(step.payload)}
        attempt.events.append(event)
        kind = step.type.upper()
        status = step.status or STATUS_BY_EVENT.get(kind)
        if status is not None and attempt is run.attempt:
            run.status = status
            if status == "running" and run.started_at is None:
                run.started_at = now
        if kind in TERMINAL_TYPES:
            attempt.script.clear()
            if attempt is run.attempt:
                run.completed_at = now
                run.output = step.payload.get("output", run.output)
                run.error = step.payload.get("error", run.error)
        attempt.held = step.hold
        self._schedule(attempt)
        self._touch_agent(run)
        self.notifier.notify()
        return event

    def _touch_agent(self, run: Run) -> None:
        agent = self.agents.get(run.agent_id)
        if agent is not None:
            agent.update(last_run_id=run.id, last_run_status=run.status, last_run_at=run.created_at)

    def advance_time(self, seconds: float) -> list[dict[str, Any]]:
        produced = []
        with self.lock:
            target = self.clock.time + max(0.0, seconds)
            while True:
                due = [(a.next_due, i, r, a) for i, r in enumerate(self.runs.values()) for a in r.attempts
                       if a.next_due is not None and a.next_due <= target]
                if not due:
                    break
                when, _, run, attempt = min(due, key=lambda d: (d[0], d[1]))
                self.clock.time = max(self.clock.time, when)
                produced.append(self._emit(run, attempt, attempt.script.popleft()))
            self.clock.time = target
        return produced

    def advance(self, run_id: str, n: int | None = 1) -> list[dict[str, Any]]:
        """Emit the next `n` steps of the run's current attempt now (all of them when n is None)."""
        produced = []
        with self.lock:
            attempt = self.run(run_id).attempt
            while attempt.script and (n is None or len(produced) < n):
                attempt.held = False
                produced.append(self._emit(self.runs[run_id], attempt, attempt.script.popleft()))
        return produced

    def set_script(self, run_id: str, steps: Iterable[Any]) -> None:
        """Replace what is left of the current attempt's script."""
        with self.lock:
            attempt = self.run(run_id).attempt
            attempt.script = deque(Step.of(s) for s in steps)
            self._schedule(attempt)
        self.advance_time(0)

    def resume(self, run_id: str, payload: dict[str, Any] | None = None) -> dict[str, Any]:
        """Answer a waiting_for_human run: emit its RUN_RESUMED step (or a made-up one)."""
        with self.lock:
            run = self.run(run_id)
            if run.status != "waiting_for_human":
                raise ApiError(409, "RUN_NOT_WAITING", f"run {run_id} is {run.status}, not waiting_for_human")
            attempt = run.attempt
            attempt.held = False
            if attempt.script and attempt.script[0].type.upper() == "RUN_RESUMED":
                step = attempt.script.popleft()
            else:
                step = Step("RUN_RESUMED")
            step.payload = {**step.payload, **(payload or {})}
            return self._emit(run, attempt, step)

    def cancel(self, run_id: str, reason: str | None = None) -> dict[str, Any]:
        with self.lock:
            run = self.run(run_id)
            if run.attempt.finished:
                raise ApiError(409, "RUN_ALREADY_FINISHED", f"run {run_id} is already {run.status}")
            return self._emit(run, run.attempt, Step("RUN_CANCELLED", {"reason": reason} if reason else {}))

    def new_attempt(self, run_id: str, steps: Iterable[Any] | None = None) -> Attempt:
        """Start attempt no+1 (seq restarts at 1); streams on the old attempt end."""
        with self.lock:
            run = self.run(run_id)
            old = run.attempt
            old.closed, old.next_due = True, None
            script = [Step.of(s) for s in steps] if steps is not None else default_script(run.input)
            attempt = Attempt(self.new_id(), old.no + 1, deque(script))
            run.attempts.append(attempt)
            run.status, run.output, run.error, run.completed_at = "queued", None, None, None
            self._schedule(attempt)
            self.notifier.notify()
        self.advance_time(0)
        return attempt

    def sync_realtime(self) -> None:
        """In realtime mode, move the fake clock by the wall-clock time since the last call."""
        if not self.realtime:
            return
        now = time.monotonic()
        elapsed, self._wall = now - self._wall, now
        self.advance_time(elapsed)

    def seconds_to_next_step(self) -> float | None:
        with self.lock:
            dues = [a.next_due for r in self.runs.values() for a in r.attempts if a.next_due is not None]
            return max(0.0, min(dues) - self.clock.time) if dues else None

    # ---- stream drops ----

    def drop_stream(self, after: int, mode: str = "abort", run_id: str | None = None) -> None:
        """The next stream (for `run_id`, or any) breaks after sending `after` events, once."""
        if mode not in ("abort", "eof"):
            raise ValueError("mode is 'abort' or 'eof'")
        with self.lock:
            self._drops.append(_Drop(after, mode, run_id))

    def take_drop(self, run_id: str) -> _Drop | None:
        with self.lock:
            for drop in self._drops:
                if drop.run_id in (None, run_id):
                    self._drops.remove(drop)
                    return drop
            return None

    # ---- credentials and triggers ----

    def credential(self, credential_id: str, include_values: bool) -> dict[str, Any]:
        with self.lock:
            cred = self.credentials.get(credential_id)
            if cred is None:
                raise ApiError(404, "CREDENTIAL_NOT_FOUND", f"credential {credential_id} not found")
            self.credential_reads.append({"id": credential_id, "include_values": include_values})
            shown = {k: v for k, v in cred.items() if k != "values"}
            if include_values:
                self.secret_reads.append(credential_id)
                log.warning("agent_os emulator: secret values of credential %s were read", credential_id)
                shown["values"] = dict(cred["values"])
            return shown
