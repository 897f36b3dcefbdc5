"""Supervises one local run in a process of its own.

    python -m agentdeck.backends.local.supervisor < spec.json

The spawning agentdeck process starts this with the run's spec on stdin (argv, cwd, env,
limits) and goes on; the supervisor starts the agent in a new process group, turns each
output line into a run event, enforces the TTL, and records how the run ended. Because it
outlives the MCP server that spawned it, a run survives its client closing, and any agentdeck
process can cancel it by sending SIGTERM here: the agent's whole group gets SIGTERM, then
SIGKILL after the grace period, so nothing is left behind.

It records the run through a RunLog: the SQLite file directly (stdlib only, so it starts in a
few tens of milliseconds), or for a PostgreSQL store one plain psycopg connection, imported
only then. Wake-ups go out the store's way: datagrams to this machine's waiters for SQLite,
NOTIFY to every machine's for PostgreSQL.
"""

from __future__ import annotations

import collections
import json
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
from agentdeck.backends.local.store_api import open_run_log

_FLUSH_SECONDS = 0.05
_STDERR_TAIL = 20


class _Stop:
    reason: str | None = None  # "cancelled" or "ttl"


def _pump(stream: IO[bytes], kind: str, lines: queue.Queue[tuple[str, str] | None]) -> None:
    for raw in iter(stream.readline, b""):
        lines.put((kind, raw.decode(errors="replace").rstrip("\r\n")))
    lines.put(None)


def _kill_group(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def supervise(spec: dict[str, Any]) -> None:
    store, wake = open_run_log(spec.get("store"), spec["db"], Path(spec["data_dir"]))
    run_id: str = spec["run_id"]
    stop = _Stop()

    def on_term(signum: int, frame: object) -> None:
        stop.reason = stop.reason or "cancelled"

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    store.set_supervisor(run_id, os.getpid(), socket.gethostname())
    if (store.get_run(run_id) or {}).get("cancel_requested"):
        stop.reason = "cancelled"

    # Worktree isolation: the run's own git worktree, made before the agent starts in it.
    tree = spec.get("worktree")
    if tree:
        tree = _start_worktree(store, wake, spec)
        if tree is None:
            return

    try:
        child = subprocess.Popen(
            spec["argv"],
            cwd=spec.get("cwd"),
            env=spec["env"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
    except OSError as exc:
        store.append_events(run_id, [("system", f"could not start the agent: {exc.strerror or exc}")], spec["max_output_bytes"])
        store.finish_run(run_id, "failed", time.time(), error_code="spawn_failed", error_message=f"could not start {spec['argv'][0]!r}: {exc.strerror or exc}")
        wake(f"run:{run_id}", "runs")
        return

    store.mark_started(run_id, child.pid, time.time())
    wake(f"run:{run_id}", "runs")
    lines: queue.Queue[tuple[str, str] | None] = queue.Queue()
    readers = [
        threading.Thread(target=_pump, args=(child.stdout, "stdout", lines), daemon=True),
        threading.Thread(target=_pump, args=(child.stderr, "stderr", lines), daemon=True),
    ]
    for reader in readers:
        reader.start()

    stderr_tail: collections.deque[str] = collections.deque(maxlen=_STDERR_TAIL)
    deadline = time.monotonic() + spec["ttl_seconds"]
    open_streams, batch, killed_at = 2, [], None
    next_flush = next_db_check = time.monotonic()
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
            store.append_events(run_id, batch, spec["max_output_bytes"])
            wake(f"run:{run_id}")
            batch, next_flush = [], now + _FLUSH_SECONDS
        if stop.reason is None and now >= next_db_check:
            next_db_check = now + 1.0  # a cancel whose signal we missed still lands
            if (store.get_run(run_id) or {}).get("cancel_requested"):
                stop.reason = "cancelled"
        if stop.reason is None and now >= deadline:
            stop.reason = "ttl"
        if stop.reason and killed_at is None:
            killed_at = now
            _kill_group(child.pid, signal.SIGTERM)
        if killed_at is not None and now - killed_at >= spec["grace_seconds"]:
            _kill_group(child.pid, signal.SIGKILL)
            if child.poll() is not None and now - killed_at >= spec["grace_seconds"] + 2:
                break  # an escaped grandchild holds the pipes; the run is over all the same
    code = child.wait()
    if killed_at is not None:
        _kill_group(child.pid, signal.SIGKILL)  # whatever of the group is still alive

    if stop.reason == "cancelled":
        state, error_code, message = "cancelled", None, None
        batch.append(("system", "run cancelled"))
    elif stop.reason == "ttl":
        state, error_code, message = "failed", "ttl_expired", f"the run exceeded its ttl of {spec['ttl_seconds']} s and was stopped"
        batch.append(("system", message))
    elif code == 0:
        state, error_code, message = "succeeded", None, None
        batch.append(("system", "run succeeded"))
    else:
        tail = "\n".join(stderr_tail)
        state, error_code = "failed", "exit_code"
        message = f"the agent exited with code {code}" + (f"; last stderr lines:\n{tail}" if tail else "")
        batch.append(("system", f"run failed with exit code {code}"))
    if tree:  # worktree isolation: record the run's change before the run counts as ended
        outcome = worktree.finish(tree, state, keep=tree.get("keep", False))
        store.set_worktree(run_id, outcome)
        batch.append(("system", worktree.describe(outcome)))
    store.append_events(run_id, batch, spec["max_output_bytes"])
    store.finish_run(run_id, state, time.time(), exit_code=code if stop.reason is None else None, error_code=error_code, error_message=message)
    wake(f"run:{run_id}", "runs")
    store.close()


def _start_worktree(store: Any, wake: Any, spec: dict[str, Any]) -> dict[str, Any] | None:
    """Create the run's worktree; when git cannot, the run fails with `worktree_failed` instead (None)."""
    run_id, tree = spec["run_id"], spec["worktree"]
    try:
        tree = worktree.create(tree)
    except worktree.WorktreeError as exc:
        store.set_worktree(run_id, tree | {"state": "failed", "error": str(exc), "removed": worktree.remove(tree)})
        store.append_events(run_id, [("system", f"could not create the run's worktree: {exc}")], spec["max_output_bytes"])
        store.finish_run(run_id, "failed", time.time(), error_code="worktree_failed", error_message=str(exc))
        wake(f"run:{run_id}", "runs")
        return None
    tree = tree | {"state": "active"}
    store.set_worktree(run_id, tree)
    return tree


def main() -> None:
    spec = json.loads(sys.stdin.read())
    sys.stdin.close()
    supervise(spec)


if __name__ == "__main__":
    main()
