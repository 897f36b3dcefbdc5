"""MCP over stdin and stdout, read and written on the event loop.

The SDK's stdio transport reads each line and writes each message through a worker thread
(anyio.wrap_file): three thread hand-offs per tool call, which cost more CPU than the call's own
work and added their scheduling delay to every answer. When stdin and stdout are pipes or sockets,
as every MCP client host starts a server, agentdeck reads and writes them with the event loop's
own pipe transports instead. Anything else (a file or a terminal on stdin or stdout, stdout
shared with stderr, Windows) is served by the SDK's transport unchanged: a pipe transport puts
its descriptor in non-blocking mode, which a terminal or a shared stderr must not be left in.

Like the SDK's, it keeps the wire to itself while it serves: fd 0 reads /dev/null and fd 1
writes to stderr, so neither a stray print nor a child process can corrupt the protocol
stream; both are given back at exit.
"""

from __future__ import annotations

import asyncio
import fcntl
import logging
import os
import stat
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import anyio.lowlevel

from agentdeck import sdk

__all__ = ["serve_stdio"]

log = logging.getLogger("agentdeck.stdio")

LINE_LIMIT = 256 * 1024 * 1024
"""The longest message read, in bytes: above the largest file upload (50 MiB) once base64-encoded."""


async def serve_stdio(server: Any) -> None:
    """Serve `server` (an MCPServer) to the client on this process's stdin and stdout."""
    if not _pipes_only():
        await server.run_stdio_async()
        return
    async with _wire() as (lines, out):
        await sdk.serve_stdio_streams(server, lines, out)


def _pipes_only() -> bool:
    """Whether stdin and stdout are pipes or sockets that stderr does not share."""
    if sys.platform == "win32":
        return False
    try:
        modes = [os.fstat(fd) for fd in (0, 1, 2)]
    except OSError:
        return False
    streams = all(stat.S_ISFIFO(m.st_mode) or stat.S_ISSOCK(m.st_mode) for m in modes[:2])
    shared = (modes[1].st_dev, modes[1].st_ino) == (modes[2].st_dev, modes[2].st_ino)
    return streams and not shared


def _take(fd: int, stand_in: int) -> int:
    """Move the wire on `fd` to a private descriptor (returned) and put `stand_in` on `fd`."""
    private = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 3)
    os.dup2(stand_in, fd)
    os.close(stand_in)
    return private


def _give_back(fd: int, private: int) -> None:
    os.set_blocking(private, True)
    os.dup2(private, fd)
    os.close(private)


@asynccontextmanager
async def _wire() -> AsyncIterator[tuple[Lines, Output]]:
    loop = asyncio.get_running_loop()
    wire_in = _take(0, os.open(os.devnull, os.O_RDONLY))
    wire_out = _take(1, os.dup(2))
    reader = asyncio.StreamReader(limit=LINE_LIMIT)
    in_transport, _ = await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), os.fdopen(wire_in, "rb", buffering=0, closefd=False))
    out_transport, flow = await loop.connect_write_pipe(_Flow, os.fdopen(wire_out, "wb", buffering=0, closefd=False))
    # Flow control at zero: a flush returns once the message is in the pipe, as the SDK's does.
    out_transport.set_write_buffer_limits(high=0)
    try:
        yield Lines(reader), Output(out_transport, flow)
    finally:
        # Closing stops the loop watching both descriptors at once; the file objects do not own them.
        in_transport.close()
        out_transport.close()
        _give_back(0, wire_in)
        _give_back(1, wire_out)
        with anyio.CancelScope(shield=True):
            await anyio.lowlevel.checkpoint()  # lets the transports' connection_lost callbacks run


class Lines:
    """The client's messages, one line at a time, as the SDK's stdio loop iterates a file."""

    def __init__(self, reader: asyncio.StreamReader) -> None:
        self._reader = reader

    def __aiter__(self) -> Lines:
        return self

    async def __anext__(self) -> str:
        try:
            line = await self._reader.readline()
        except ValueError:
            # A line over LINE_LIMIT: the reader dropped what it had of it. What the SDK makes of a
            # line that is not JSON (an error it logs) is the right answer to this one too.
            log.warning("a message over %d MiB from the client was dropped", LINE_LIMIT // (1024 * 1024))
            return "\n"
        if not line:
            raise StopAsyncIteration
        return line.decode("utf-8", errors="replace")


class _Flow(asyncio.Protocol):
    """Write-side flow control: `drained` waits while the transport holds bytes the pipe did not take."""

    def __init__(self) -> None:
        self._open = asyncio.Event()
        self._open.set()
        self.lost = False

    def pause_writing(self) -> None:
        self._open.clear()

    def resume_writing(self) -> None:
        self._open.set()

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        self._open.set()

    async def drained(self) -> None:
        await self._open.wait()


class Output:
    """The wire to the client, with the write and flush the SDK's stdio loop calls on a file."""

    def __init__(self, transport: asyncio.WriteTransport, flow: _Flow) -> None:
        self._transport = transport
        self._flow = flow

    async def write(self, text: str) -> None:
        if self._flow.lost or self._transport.is_closing():
            return  # the client is gone; its end of stdin closes too, which ends the session
        self._transport.write(text.encode("utf-8"))

    async def flush(self) -> None:
        await self._flow.drained()
