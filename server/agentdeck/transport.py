"""The Streamable HTTP face of the server: the MCP endpoint, /healthz, and who may call.

Loopback by default. A non-loopback bind is refused unless clients must authenticate: with
static bearer tokens (compared in constant time) or OAuth 2.1 resource-server mode (oauth.py,
enforced by the SDK). Host and Origin are checked against loopback names
(plus configured ones) so a web page cannot reach a local server through DNS rebinding.
"""

from __future__ import annotations

import contextlib
import ipaddress
import secrets
import signal
from collections.abc import Callable, Iterator
from typing import Any

import uvicorn

from mcp.server.transport_security import TransportSecuritySettings
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from agentdeck import __version__
from agentdeck.config import Config
from agentdeck.errors import ConfigError

__all__ = ["build_http_app", "is_loopback", "serve_http"]

SHUTDOWN_GRACE_SECONDS = 3
"""How long open response streams (a waiting tool call) get after SIGTERM before the server stops."""


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class _BearerAuth:
    """Refuses MCP requests without one of the configured bearer tokens; /healthz stays open."""

    def __init__(self, app: ASGIApp, tokens: list[str], open_paths: set[str]) -> None:
        self.app = app
        self.tokens = [t.encode() for t in tokens]
        self.open_paths = open_paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in self.open_paths:
            await self.app(scope, receive, send)
            return
        header = dict(scope["headers"]).get(b"authorization", b"")
        scheme, _, token = header.partition(b" ")
        ok = scheme.lower() == b"bearer" and any(secrets.compare_digest(token.strip(), t) for t in self.tokens)
        if not ok:
            response = JSONResponse(
                {"error": "unauthorized", "message": "send Authorization: Bearer <token> with a token from AGENTDECK_HTTP_TOKENS"},
                status_code=401,
                headers={"WWW-Authenticate": 'Bearer realm="agentdeck"'},
            )
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)


def _security(config: Config, port: int) -> TransportSecuritySettings:
    hosts = ["127.0.0.1", "localhost", "[::1]"]
    allowed_hosts = [f"{h}:{port}" for h in hosts] + hosts + config.http.allowed_hosts
    allowed_origins = [f"http://{h}:{port}" for h in hosts] + config.http.allowed_origins
    if not is_loopback(config.http.host):
        allowed_hosts += [config.http.host, f"{config.http.host}:{port}"]
    return TransportSecuritySettings(enable_dns_rebinding_protection=True, allowed_hosts=allowed_hosts, allowed_origins=allowed_origins)


def build_http_app(server: Any, config: Config, *, stateless: bool = False) -> ASGIApp:
    """The ASGI app for `agentdeck serve --http`.

    Raises:
        ConfigError: a non-loopback host with no bearer tokens configured.
    """
    tokens = [t.get_secret_value() for t in config.http.tokens]
    if tokens and config.http.oauth is not None:
        raise ConfigError(f"http.oauth and {config.http.auth_tokens_env} are both set; choose one way to authenticate clients")
    if not is_loopback(config.http.host) and not tokens and config.http.oauth is None:
        raise ConfigError(
            f"refusing to serve on {config.http.host} without authentication: set {config.http.auth_tokens_env} "
            "to one or more bearer tokens (comma-separated), configure [http.oauth], or bind 127.0.0.1"
        )

    @server.custom_route("/healthz", methods=["GET"])
    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok", "version": __version__})

    app = server.streamable_http_app(
        streamable_http_path=config.http.path,
        stateless_http=stateless,
        max_request_body_size=config.http.max_body_bytes,
        session_idle_timeout=config.http.session_idle_seconds,
        transport_security=_security(config, config.http.port),
        host=config.http.host,
    )
    if tokens:
        return _BearerAuth(app, tokens, open_paths={"/healthz"})
    return app


class _Server(uvicorn.Server):
    """uvicorn, with SIGTERM as the normal way to stop: waits answer, then exit status 0.

    uvicorn re-raises a caught SIGTERM once it has shut down, so the process would end as
    killed by the signal, which service managers and test harnesses read as a crash. And it
    gives open requests a grace period, then cancels them mid-response with a traceback; so
    calls that wait are told first (`before_shutdown`) and answer at once.
    """

    def __init__(self, config: uvicorn.Config, before_shutdown: Callable[[], None]) -> None:
        super().__init__(config)
        self._before_shutdown = before_shutdown

    async def shutdown(self, sockets: list[Any] | None = None) -> None:
        self._before_shutdown()
        await super().shutdown(sockets)

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        with super().capture_signals():
            try:
                yield
            finally:
                self._captured_signals = [s for s in self._captured_signals if s != signal.SIGTERM]


def serve_http(app: ASGIApp, config: Config, before_shutdown: Callable[[], None]) -> None:
    """Serve `app` until SIGTERM or SIGINT; the MCP lifespan opens and closes the backends."""
    settings = uvicorn.Config(
        app, host=config.http.host, port=config.http.port, log_level="warning", lifespan="on", timeout_graceful_shutdown=SHUTDOWN_GRACE_SECONDS
    )
    _Server(settings, before_shutdown).run()
