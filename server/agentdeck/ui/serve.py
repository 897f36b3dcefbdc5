"""`agentdeck ui`: the dashboard on its own port, beside any stdio or HTTP servers sharing the store."""

from __future__ import annotations

import logging
import socket
import sys
import threading
import webbrowser

import uvicorn

from agentdeck.config import Config
from agentdeck.transport import is_loopback
from agentdeck.ui.dashboard import MOUNT, Dashboard

__all__ = ["serve_dashboard"]

log = logging.getLogger("agentdeck.ui")


def serve_dashboard(config: Config, *, host: str | None, port: int | None, human: str | None, read_only: bool | None, open_browser: bool) -> None:
    """Bind first (so the printed port is the real one, also for --port 0), then serve until interrupted.

    Raises:
        ConfigError: a non-loopback host without HTTP tokens or OAuth.
    """
    host = host or "127.0.0.1"
    family = socket.AF_INET6 if ":" in host.strip("[]") else socket.AF_INET
    # IPPROTO_TCP named, so asyncio turns Nagle off on the connections it accepts (it only does
    # so for sockets that say they are TCP): without it each page waited ~40 ms on delayed ACKs.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host.strip("[]"), port or 0))
    bound = sock.getsockname()[1]
    config.http = config.http.model_copy(update={"host": host, "port": bound})
    dashboard = Dashboard(config, human=human, read_only=read_only, port=bound)
    app = dashboard.app()  # refuses an unauthenticated non-loopback bind before anything is served
    shown = host if is_loopback(host) or ":" not in host else f"[{host}]"
    url = f"http://{shown}:{bound}{MOUNT}/"
    print(f"agentdeck dashboard at {url} (acting as {dashboard.actor}{', read-only' if dashboard.read_only else ''})", file=sys.stdout, flush=True)
    if open_browser:
        threading.Timer(0.5, webbrowser.open, args=(url,)).start()
    # Live pages hold their event streams open; on Ctrl-C they are closed after a short grace.
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on", timeout_graceful_shutdown=2))
    server.run(sockets=[sock])
