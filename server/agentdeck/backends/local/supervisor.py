"""Supervises one local run in a process of its own.

    python -m agentdeck.backends.local.supervisor < spec.json

The spawning agentdeck process starts this with the run's spec on stdin (a SupervisorSpec,
supervisor_spec.py, as JSON: argv, cwd, env, limits) and goes on; the supervisor starts the
agent in a new process group, turns each output line into a run event, enforces the TTL, and
records how the run ended. Because it outlives the MCP server that spawned it, a run survives
its client closing, and any agentdeck process on this machine can cancel it by sending SIGTERM
here: the agent's whole group gets SIGTERM, then SIGKILL after the grace period, so nothing is
left behind.

Every `heartbeat_seconds` it writes a heartbeat into the run's row and reads back whether a
cancel was requested (from any machine: that is how a cancel reaches it through the store) or
whether a reader declared it lost. A reader anywhere that sees no heartbeat for the store's
supervisor timeout records the run as failed (`supervisor_lost`). If the supervisor itself
dies, its guard ends the agent's process group (guard.py).

It records the run through a RunLog: the SQLite file directly (stdlib only, so it starts in a
few tens of milliseconds), or for a PostgreSQL store one plain psycopg connection, imported
only then. Wake-ups go out the store's way: datagrams to this machine's waiters for SQLite,
NOTIFY to every machine's for PostgreSQL.
"""

from __future__ import annotations

import collections
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO, Any

from agentdeck.backends.local import worktree
from agentdeck.backends.local.guard import Guard, die_with_parent, kill_group
from agentdeck.backends.local.store import RunLog, open_run_log
from agentdeck.backends.local.supervisor_spec import SupervisorSpec

_FLUSH_SECONDS = 0.05
_STDERR_TAIL = 20
_DRAIN_SECONDS = 2.0  # output still read after the agent exits, from what it left running


class _Stop:
    reason: str | None = None  # "cancelled", "ttl", or "lost" (another process declared the run over)


def _pump(stream: IO[bytes], kind: str, lines: queue.Queue[tuple[str, str] | None]) -> None:
    for raw in iter(stream.readline, b""):
        lines.put((kind, raw.decode(errors="replace").rstrip("\r\n")))
    lines.put(None)


def _feed(stream: IO[bytes], text: str) -> None:
    try:
        stream.write(text.encode())
        stream.close()
    except OSError:
        pass  # the agent closed its stdin or ended: it did not want the rest


def _write_prompt_file(path: str, text: str) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as file:
        file.write(text)


def _beat(store: RunLog, run_id: str, stop: _Stop) -> None:
    """One heartbeat: tells readers this supervisor lives, and hears about a cancel from any machine."""
    row = store.run_heartbeat(run_id, time.time()) or {}
    if stop.reason is None and row.get("state") not in (None, "queued", "running"):
        stop.reason = "lost"  # a reader took us for dead (we were stalled past the timeout): stop the agent
    elif stop.reason is None and row.get("cancel_requested"):
        stop.reason = "cancelled"


def _start_agent(spec: SupervisorSpec) -> subprocess.Popen[bytes]:
    if spec.prompt_file:
        _write_prompt_file(spec.prompt_file, spec.prompt)
    child = subprocess.Popen(
        spec.argv,
        cwd=spec.cwd,
        env=spec.env,
        stdin=subprocess.DEVNULL if spec.stdin is None else subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
        preexec_fn=die_with_parent,
    )
    if child.stdin is not None:
        threading.Thread(target=_feed, args=(child.stdin, spec.stdin), daemon=True).start()
    return child


def supervise(spec: SupervisorSpec) -> None:
    store, wake = open_run_log(spec.store, spec.db, Path(spec.data_dir))
    run_id = spec.run_id
    stop = _Stop()

    def on_term(signum: int, frame: object) -> None:
        stop.reason = stop.reason or "cancelled"

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    guard = Guard()  # forked before any thread starts
    store.set_supervisor(run_id, os.getpid(), socket.gethostname(), time.time())
    run = store.get_run(run_id) or {}
    if run.get("state") != "queued":  # declared never started while this process was slow to start
        guard.disarm()
        store.close()
        return
    if run.get("cancel_requested"):
        stop.reason = "cancelled"

    # Worktree isolation: the run's own git worktree, made before the agent starts in it.
    tree = spec.worktree
    if tree:
        tree = _start_worktree(store, wake, spec, tree)
        if tree is None:
            guard.disarm()
            store.close()
            return

    try:
        child = _start_agent(spec)
    except OSError as exc:
        guard.disarm()
        if spec.prompt_file:
            Path(spec.prompt_file).unlink(missing_ok=True)
        store.append_events(run_id, [("system", f"could not start the agent: {exc.strerror or exc}")], spec.max_output_bytes)
        store.finish_run(run_id, "failed", time.time(), error_code="spawn_failed", error_message=f"could not start {spec.argv[0]!r}: {exc.strerror or exc}")
        wake(f"run:{run_id}", "runs")
        return
    guard.arm(child.pid)

    store.mark_started(run_id, child.pid, time.time())
    wake(f"run:{run_id}", "runs")
    code, batch, stderr_tail = _watch(child, spec, store, wake, stop)
    kill_group(child.pid, signal.SIGKILL)  # what the agent left running ends with its run
    guard.disarm()
    if spec.prompt_file:
        Path(spec.prompt_file).unlink(missing_ok=True)
    if stop.reason != "lost":  # else the process that declared it lost has recorded its end
        state, error_code, message, note = _outcome(stop.reason, code, spec.ttl_seconds, stderr_tail)
        closing = [*batch, ("system", note)]
        if tree:  # worktree isolation: record the run's change before the run counts as ended
            outcome = worktree.finish(tree, state, keep=tree.get("keep", False))
            store.set_worktree(run_id, outcome)
            closing.append(("system", worktree.describe(outcome)))
        store.append_events(run_id, closing, spec.max_output_bytes)
        store.finish_run(run_id, state, time.time(), exit_code=code if stop.reason is None else None, error_code=error_code, error_message=message)
        wake(f"run:{run_id}", "runs")
    store.close()


def _watch(child: subprocess.Popen[bytes], spec: SupervisorSpec, store: RunLog, wake: Any, stop: _Stop) -> tuple[int, list[tuple[str, str]], list[str]]:
    """Record the agent's output and heartbeat until it ends or is stopped.

    Returns its exit code, the output lines not yet recorded, and its last stderr lines.
    """
    run_id = spec.run_id
    lines: queue.Queue[tuple[str, str] | None] = queue.Queue()
    for stream, kind in ((child.stdout, "stdout"), (child.stderr, "stderr")):
        threading.Thread(target=_pump, args=(stream, kind, lines), daemon=True).start()
    stderr_tail: collections.deque[str] = collections.deque(maxlen=_STDERR_TAIL)
    deadline = time.monotonic() + spec.ttl_seconds
    beat_every = spec.heartbeat_seconds or 1.0
    open_streams, batch, killed_at, exited_at = 2, [], None, None
    next_flush = next_beat = time.monotonic()
    while open_streams or child.poll() is None:
        try:
            item = lines.get(timeout=_FLUSH_SECONDS)
        except queue.Empty:
            item = ("", "")
        if item is None:
            open_streams -= 1
        elif item[0]:
            batch.append(item)
            if item[0] == "stderr":
                stderr_tail.append(item[1])
        now = time.monotonic()
        if batch and (now >= next_flush or len(batch) >= 200):
            store.append_events(run_id, batch, spec.max_output_bytes)
            wake(f"run:{run_id}")
            batch, next_flush = [], now + _FLUSH_SECONDS
        if now >= next_beat:
            next_beat = now + beat_every
            _beat(store, run_id, stop)
        if stop.reason is None and now >= deadline:
            stop.reason = "ttl"
        if stop.reason and killed_at is None:
            killed_at = now
            kill_group(child.pid, signal.SIGKILL if stop.reason == "lost" else signal.SIGTERM)
        if killed_at is not None and now - killed_at >= spec.grace_seconds:
            kill_group(child.pid, signal.SIGKILL)
            if child.poll() is not None and now - killed_at >= spec.grace_seconds + 2:
                break  # an escaped grandchild holds the pipes; the run is over all the same
        if exited_at is None and child.poll() is not None:
            exited_at = now
        if exited_at is not None and now - exited_at >= _DRAIN_SECONDS:
            # The agent has ended, but something it started still holds its output open: the
            # run is over with the agent, so what it left behind goes too.
            kill_group(child.pid, signal.SIGKILL)
            if now - exited_at >= _DRAIN_SECONDS + 2:
                break
    return child.wait(), batch, list(stderr_tail)


def _outcome(reason: str | None, code: int, ttl: int, stderr_tail: list[str]) -> tuple[str, str | None, str | None, str]:
    """(state, error code, error message, closing output line) of a run that ended this way."""
    if reason == "cancelled":
        return "cancelled", None, None, "run cancelled"
    if reason == "ttl":
        message = f"the run exceeded its ttl of {ttl} s and was stopped"
        return "failed", "ttl_expired", message, message
    if code == 0:
        return "succeeded", None, None, "run succeeded"
    tail = "\n".join(stderr_tail)
    message = f"the agent exited with code {code}" + (f"; last stderr lines:\n{tail}" if tail else "")
    return "failed", "exit_code", message, f"run failed with exit code {code}"


def _start_worktree(store: RunLog, wake: Any, spec: SupervisorSpec, tree: dict[str, Any]) -> dict[str, Any] | None:
    """Create the run's worktree; when git cannot, the run fails with `worktree_failed` instead (None)."""
    run_id = spec.run_id
    try:
        tree = worktree.create(tree)
    except worktree.WorktreeError as exc:
        store.set_worktree(run_id, tree | {"state": "failed", "error": str(exc), "removed": worktree.remove(tree)})
        store.append_events(run_id, [("system", f"could not create the run's worktree: {exc}")], spec.max_output_bytes)
        store.finish_run(run_id, "failed", time.time(), error_code="worktree_failed", error_message=str(exc))
        wake(f"run:{run_id}", "runs")
        return None
    tree = tree | {"state": "active"}
    store.set_worktree(run_id, tree)
    return tree


def main() -> None:
    spec = SupervisorSpec.from_json(sys.stdin.read())
    sys.stdin.close()
    supervise(spec)


if __name__ == "__main__":
    main()
