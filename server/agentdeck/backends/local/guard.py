"""Nothing of a run outlives its supervisor: a guard process, a parent-death signal, a reaper's kill.

The agent runs in a process group of its own (its pgid is its pid). Three layers end that group:

- `Guard`: before it starts any thread, the supervisor forks a tiny guard that blocks reading
  a pipe only the supervisor writes. When the supervisor dies, however it dies (SIGKILL
  included), the read returns EOF and the guard kills the agent's whole group, grandchildren
  too, then exits. A supervisor that ends normally disarms it first.
- `die_with_parent`: the agent itself gets SIGKILL when the supervisor dies (Linux
  PR_SET_PDEATHSIG), in case the guard was killed as well.
- `end_run_group`: a reaper that finds a run's supervisor gone ends what is left of the run's
  group on this machine, after checking through /proc that the group still belongs to that run
  (a pgid can be reused once the group is empty).

Stdlib only: the supervisor imports it.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
from pathlib import Path

__all__ = ["Guard", "die_with_parent", "end_run_group", "kill_group", "run_processes"]

_PR_SET_PDEATHSIG = 1


def kill_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


class Guard:
    """A forked process that kills the armed process group when this process ends."""

    def __init__(self) -> None:
        read_end, self._write_end = os.pipe()
        pid = os.fork()
        if pid == 0:  # the guard
            os.close(self._write_end)
            _guard_main(read_end)
        os.close(read_end)
        self.pid = pid

    def arm(self, pgid: int) -> None:
        try:
            os.write(self._write_end, f"{pgid}\n".encode())
        except OSError:
            pass  # the guard was killed: the agent's parent-death signal and the reaper remain

    def disarm(self) -> None:
        """The supervisor is ending in order and has ended the group itself: the guard just exits."""
        try:
            os.write(self._write_end, b"0\n")
            os.close(self._write_end)
            os.waitpid(self.pid, 0)
        except OSError:
            pass


def _guard_main(read_end: int) -> None:
    try:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a cancel signals the supervisor, never its guard
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        os.closerange(0, read_end)  # the supervisor's store connection and pipes are not the guard's
        os.closerange(read_end + 1, 1 << 16)
        pgid, buffer = 0, b""
        while chunk := os.read(read_end, 64):
            buffer += chunk
            *lines, buffer = buffer.split(b"\n")
            for line in lines:
                pgid = int(line)
                if pgid == 0:
                    os._exit(0)
        if pgid:
            kill_group(pgid, signal.SIGKILL)
    finally:
        os._exit(0)


# Loaded here, not between fork and exec, where only async-signal-safe work belongs.
_libc = ctypes.CDLL(None, use_errno=True) if sys.platform.startswith("linux") else None


def die_with_parent() -> None:
    """In the agent between fork and exec: SIGKILL when the supervisor dies (Linux only)."""
    if _libc is not None:
        _libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def run_processes(run_id: str) -> list[int]:
    """Pids of this machine's processes that belong to the run (its agent and their children)."""
    marker = f"AGENTDECK_RUN_ID={run_id}".encode()
    found = []
    for entry in Path("/proc").iterdir() if Path("/proc").is_dir() else ():
        if entry.name.isdigit():
            try:
                if marker in (entry / "environ").read_bytes().split(b"\0"):
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def end_run_group(pgid: int | None, run_id: str) -> None:
    """SIGKILL the run's leftover process group, if some process in it is still the run's."""
    if not pgid:
        return
    for pid in run_processes(run_id):
        try:
            if os.getpgid(pid) == pgid:
                kill_group(pgid, signal.SIGKILL)
                return
        except ProcessLookupError:
            continue
