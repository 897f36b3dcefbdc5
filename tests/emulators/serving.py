"""Serve an emulator on a real loopback port (or Unix socket) from inside a test.

    with serve_in_thread(create_app()) as base_url:
        ...  # "http://127.0.0.1:PORT", or "unix:/path" when uds is given

The server runs in a background thread with its own event loop, so synchronous SDK clients
and async tests can both talk to it.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from typing import Any

import uvicorn


@contextlib.contextmanager
def serve_in_thread(app: Any, *, uds: str | None = None, port: int = 0, timeout: float = 10.0) -> Iterator[str]:
    config = uvicorn.Config(app, host="127.0.0.1", port=port, uds=uds, log_level="warning", lifespan="off")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="emulator", daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("emulator did not start")
        time.sleep(0.01)
    try:
        if uds:
            yield f"unix:{uds}"
        else:
            port = server.servers[0].sockets[0].getsockname()[1]
            yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout)
