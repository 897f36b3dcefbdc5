"""Whether a run that is not over still has a supervisor: decided by any reader, on any machine.

A supervisor heartbeats into its run's row (supervisor.py). A reader on the supervisor's own
machine can also ask the kernel whether its pid is alive, which notices a death at once; a
reader elsewhere relies on the heartbeat, so a run is declared lost there after
`timeout` seconds without one. Times are compared across machines, which assumes their clocks
agree to within a few seconds (NTP), well under any sensible timeout.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

__all__ = ["NEVER_STARTED_SECONDS", "lost", "pid_alive", "supervised_here"]

NEVER_STARTED_SECONDS = 10.0
"""A queued run without a supervisor after this long, or twice the timeout, never started."""


def pid_alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie has died; only its parent has not collected it yet
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def supervised_here(row: dict[str, Any], host: str) -> bool:
    """Whether the run's supervisor pid means a process on this machine."""
    return row.get("supervisor_host") in (None, host)


def lost(row: dict[str, Any], now: float, host: str, timeout: float) -> tuple[str, str] | None:
    """(error code, why) when an unfinished run has no live supervisor; None while it may have one."""
    if row["state"] not in ("queued", "running"):
        return None
    heartbeat = row.get("heartbeat_at")
    if row["supervisor_pid"]:
        if supervised_here(row, host) and not pid_alive(row["supervisor_pid"]):
            return "supervisor_lost", "the process watching this run died (killed or machine restarted); its outcome is unknown"
        if heartbeat is not None and now - heartbeat > timeout:
            where = row.get("supervisor_host") or "its machine"
            return "supervisor_lost", (
                f"the process watching this run on {where} sent no heartbeat for {now - heartbeat:.0f} s (the limit is {timeout:g} s);"
                " it or its machine is gone, and the run's outcome is unknown"
            )
        return None
    if now - row["created_at"] > max(2 * timeout, NEVER_STARTED_SECONDS):
        return "never_started", "the run was recorded but its process never started"
    return None
