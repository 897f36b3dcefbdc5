"""Cross-process wake-ups for the local platform.

Every agentdeck process that waits on something binds one Unix datagram socket in a small
per-data-dir folder. Whoever commits a change (a message, a task, a run state) sends the
topic name to every socket there, so a waiting receive in another process wakes within
milliseconds instead of at its next poll. Datagrams can be lost (a full buffer, a platform
without Unix sockets), so waiters also poll slowly: a lost wake-up costs latency, never data.

Stdlib only: the run supervisor imports this and must start fast.
"""

from __future__ import annotations

import hashlib
import os
import socket
import tempfile
import time
from pathlib import Path

__all__ = ["Notifier", "wake_dir"]


def wake_dir(data_dir: Path) -> Path:
    """Where the sockets of processes sharing `data_dir` live; short, for the 104-byte path limit."""
    digest = hashlib.sha1(str(data_dir.resolve()).encode()).hexdigest()[:12]
    return Path(tempfile.gettempdir()) / f"agentdeck-{digest}"


class Notifier:
    """Sends topics to every process listening in `directory` but the socket `own`, from one socket.

    The folder is listed again unless it is unchanged (binding or removing a socket changes its
    mtime) since a listing made well after its last change: mtimes are coarse, so a socket bound
    just after a listing, in the same clock tick, would not move it. One stat per send instead of
    a listing and a new socket, 21 us a send before.
    """

    _MARGIN_NS = 100_000_000  # far more than the coarsest mtime tick

    def __init__(self, directory: Path, own: str | None = None) -> None:
        self.directory = directory
        self.own = own
        self._sock: socket.socket | None = None
        self._mtime = -1  # the folder's mtime when `_paths` was read,
        self._listed_at = 0  # and when that was (time.time_ns)
        self._paths: list[str] = []

    def __call__(self, *topics: str) -> None:
        if not hasattr(socket, "AF_UNIX"):
            return
        try:
            changed = os.stat(self.directory).st_mtime_ns
            if changed != self._mtime or self._listed_at - changed < self._MARGIN_NS:
                self._listed_at = time.time_ns()
                self._paths = [e.path for e in os.scandir(self.directory) if e.name.endswith(".sock") and e.path != self.own]
                self._mtime = changed
        except FileNotFoundError:
            return
        if self._sock is None:
            self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            self._sock.setblocking(False)
        payload = "\n".join(topics).encode()
        for path in self._paths:
            try:
                self._sock.sendto(payload, path)
            except (ConnectionRefusedError, FileNotFoundError):
                _unlink(path)  # its process is gone
                self._mtime = -1
            except OSError:
                pass  # a full buffer: that waiter's slow poll covers it

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass
