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
from pathlib import Path

__all__ = ["wake_dir", "notify"]


def wake_dir(data_dir: Path) -> Path:
    """Where the sockets of processes sharing `data_dir` live; short, for the 104-byte path limit."""
    digest = hashlib.sha1(str(data_dir.resolve()).encode()).hexdigest()[:12]
    return Path(tempfile.gettempdir()) / f"agentdeck-{digest}"


def notify(directory: Path, *topics: str, own: str | None = None) -> None:
    """Send each topic to every listening process but the socket `own`; stale sockets are removed."""
    if not hasattr(socket, "AF_UNIX"):
        return
    try:
        entries = list(os.scandir(directory))
    except FileNotFoundError:
        return
    payload = "\n".join(topics).encode()
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sender:
        sender.setblocking(False)
        for entry in entries:
            if not entry.name.endswith(".sock") or entry.path == own:
                continue
            try:
                sender.sendto(payload, entry.path)
            except (ConnectionRefusedError, FileNotFoundError):
                _unlink(entry.path)  # its process is gone
            except (BlockingIOError, OSError):
                pass  # a full buffer: that waiter's slow poll covers it


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass
