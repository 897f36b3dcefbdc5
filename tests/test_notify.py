"""Wake-ups between the processes of one machine: one datagram per listening socket, from a
sender that lists the folder of sockets again only when it changed."""

from __future__ import annotations

import os
import socket
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from agentdeck.backends.local.notify import Notifier

pytestmark = pytest.mark.skipif(not hasattr(socket, "AF_UNIX"), reason="Unix sockets only")


@pytest.fixture
def folder() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="adn", dir="/tmp") as name:  # socket paths are capped near 104 bytes
        yield Path(name)


def _listener(path: Path) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.settimeout(2)
    return sock


def test_a_listener_that_binds_after_the_first_send_still_gets_the_next_one(folder: Path) -> None:
    first = _listener(folder / "first.sock")
    notify = Notifier(folder, own=str(folder / "me.sock"))
    notify("queue:a")
    assert first.recv(100) == b"queue:a"
    time.sleep(0.15)  # older than the sender's "too recent to trust the mtime" window
    late = _listener(folder / "late.sock")  # a process that starts later
    notify("queue:b", "run:1")
    assert first.recv(100) == b"queue:b\nrun:1" and late.recv(100) == b"queue:b\nrun:1"
    notify.close()
    first.close()
    late.close()


def test_a_socket_bound_in_the_same_clock_tick_as_the_last_listing_is_not_missed(folder: Path) -> None:
    """Folder mtimes are coarse: a socket bound right after a listing may leave the mtime as it
    was. Here that is made certain by putting the mtime back; a later send must still reach it."""
    first = _listener(folder / "first.sock")
    notify = Notifier(folder)
    notify("a")
    assert first.recv(100) == b"a"
    before = os.stat(folder).st_mtime_ns
    late = _listener(folder / "late.sock")
    os.utime(folder, ns=(before, before))  # the same tick as the listing
    time.sleep(0.15)
    notify("b")
    assert late.recv(100) == b"b"
    notify.close()
    first.close()
    late.close()


def test_the_socket_of_a_process_that_is_gone_is_removed_and_the_others_still_get_theirs(folder: Path) -> None:
    alive = _listener(folder / "alive.sock")
    gone = _listener(folder / "gone.sock")
    gone.close()  # its process ended without unlinking its socket
    notify = Notifier(folder)
    notify("channel:general")
    assert alive.recv(100) == b"channel:general"
    assert sorted(os.listdir(folder)) == ["alive.sock"]
    notify("channel:general")
    assert alive.recv(100) == b"channel:general"
    notify.close()
    alive.close()


async def test_a_process_listens_only_while_someone_in_it_waits(folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Changes made elsewhere cost a process nothing unless someone in it waits: its socket is
    bound by the first waiter (before it looks at the store) and goes a while after the last."""
    import anyio

    from agentdeck.backends.local import wakeups as module

    monkeypatch.setattr(module, "LINGER_SECONDS", 0.2)
    here = module.SocketWakeups(folder)
    here.open()
    other = Notifier(folder)  # another process's sender
    try:
        assert os.listdir(folder) == []  # open, but nobody waits: nothing to send to
        event = here.register("channel:general")
        assert [name for name in os.listdir(folder) if name.endswith(".sock")]
        other("channel:general")
        with anyio.fail_after(5):
            await event.wait()
        here.unregister("channel:general", event)
        with anyio.fail_after(5):
            while os.listdir(folder):  # the listener notices it is idle within a second or so
                await anyio.sleep(0.05)
        again = here.register("channel:general")  # the next waiter binds a new socket
        other("channel:general")
        with anyio.fail_after(5):
            await again.wait()
        here.unregister("channel:general", again)
    finally:
        here.close()
        other.close()
    assert os.listdir(folder) == []
