"""The Streamable HTTP face of the server: the MCP endpoint, /healthz, and who may call.

Loopback by default. A non-loopback bind is refused unless clients must authenticate: with
static bearer tokens (at least 16 characters, compared in constant time), each for a named
identity or for the server's own, or OAuth 2.1 resource-server mode (oauth.py, enforced by the
SDK). Agents this server spawns get a per-run token (identity.RunTokens) and the server's URL.
Who each request is, is decided here and in oauth.py and carried as described in identity.py.

Host and Origin are checked (case-insensitively) against loopback names, the bound address and
configured ones, so a web page cannot reach a local server through DNS rebinding. A connection
that does not finish its request headers within `http.header_timeout_seconds` is closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import secrets
import signal
from collections.abc import Callable, Iterator
from typing import Any

import h11
import uvicorn
from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
from mcp.server.transport_security import TransportSecuritySettings
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount
from starlette.types import ASGIApp, Receive, Scope, Send
from uvicorn.protocols.http.h11_impl import H11Protocol

from agentdeck import __version__
from agentdeck.config import IDENTITY_NAME, Config
from agentdeck.errors import ConfigError
from agentdeck.identity import Caller, RunTokens, access_token, fingerprint, process_caller

__all__ = ["MIN_TOKEN_CHARS", "build_http_app", "is_loopback", "serve_http", "url_host"]

log = logging.getLogger("agentdeck.http")

MIN_TOKEN_CHARS = 16
IDENTITY_HEADER = b"x-agentdeck-identity"

SHUTDOWN_GRACE_SECONDS = 3
"""How long open response streams (a waiting tool call, a live page) get after SIGTERM before the server stops."""

dashboard_mount = "/ui"


def is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def url_host(host: str) -> str:
    """`host` as it is written in a URL or a Host header; a wildcard bind is reached on loopback."""
    bare = host.strip("[]").lower()
    if bare in ("0.0.0.0", ""):
        return "127.0.0.1"
    if bare == "::":
        return "[::1]"
    return f"[{bare}]" if ":" in bare else bare


def _refusal(status: int, message: str, **headers: str) -> Response:
    return JSONResponse({"error": "unauthorized" if status == 401 else "bad_request", "message": message}, status_code=status, headers=headers)


class _Gate:
    """In front of the MCP app: Host and Origin lower-cased, and who the request is.

    `tokens` None means OAuth mode: the SDK authenticates the request behind this gate.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        tokens: list[tuple[bytes, Caller]] | None,
        run_tokens: RunTokens,
        trust_header: bool,
        tokens_hint: str,
        delegated: str | None = None,
    ) -> None:
        self.app = app
        self.tokens = tokens
        self.run_tokens = run_tokens
        self.trust_header = trust_header
        self.tokens_hint = tokens_hint
        self.delegated = delegated  # a mounted app that checks the same credentials itself (the dashboard's login)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        scope["headers"] = [(k, v.lower() if k in (b"host", b"origin") else v) for k, v in scope["headers"]]
        path = scope["path"]
        own_check = self.delegated is not None and (path == self.delegated or path.startswith(self.delegated + "/"))
        refusal = None if path == "/healthz" or own_check else self._authenticate(scope)
        if refusal is not None:
            await refusal(scope, receive, send)
            return
        await self.app(scope, receive, send)

    def _authenticate(self, scope: Scope) -> Response | None:
        """Put the request's user on `scope`, or say why it is refused."""
        authorization = [v for k, v in scope["headers"] if k == b"authorization"]
        if len(authorization) > 1:
            return _refusal(400, "send one Authorization header, not several")
        if self.tokens is None:
            return None
        challenge = {"WWW-Authenticate": 'Bearer realm="agentdeck"'}
        if authorization:
            user = self._bearer(authorization[0])
            if user is None:
                return _refusal(401, f"this bearer token is not one this server accepts; send a token from {self.tokens_hint}", **challenge)
            scope["user"] = user
        elif self.tokens:
            return _refusal(401, f"send Authorization: Bearer <token> with a token from {self.tokens_hint}", **challenge)
        elif self.trust_header:
            names = [v.decode("latin-1") for k, v in scope["headers"] if k == IDENTITY_HEADER]
            if len(names) > 1 or (names and not IDENTITY_NAME.match(names[0])):
                return _refusal(400, "X-Agentdeck-Identity must be one name of letters, digits, '_', '.', '@', '-' (at most 128)")
            if names:
                scope["user"] = AuthenticatedUser(access_token(Caller(names[0]), "", f"header:{names[0]}"))
        return None

    def _bearer(self, header: bytes) -> AuthenticatedUser | None:
        scheme, _, value = header.partition(b" ")
        token = value.strip()
        if scheme.lower() != b"bearer" or not token:
            return None
        caller = None
        for known, who in self.tokens or []:  # every one compared, in constant time
            if secrets.compare_digest(token, known):
                caller = who
        text = token.decode("latin-1")
        caller = caller or self.run_tokens.caller(text)
        return AuthenticatedUser(access_token(caller, text, f"token:{fingerprint(text)}")) if caller else None


def _check(config: Config) -> None:
    http = config.http
    tokens_env = http.auth_tokens_env
    if http.tokens and http.oauth is not None:
        raise ConfigError(f"http.oauth and bearer tokens ({tokens_env} or http.tokens_file) are both set; choose one way to authenticate clients")
    if not is_loopback(http.host) and not http.tokens and http.oauth is None:
        raise ConfigError(
            f"refusing to serve on {http.host} without authentication: set {tokens_env} "
            "to one or more bearer tokens (comma-separated), configure [http.oauth], or bind 127.0.0.1"
        )
    short = [f"the one for '{t.identity}'" if t.identity else "a bare one" for t in http.tokens if len(t.value.get_secret_value()) < MIN_TOKEN_CHARS]
    if short:
        raise ConfigError(
            f"bearer tokens must be at least {MIN_TOKEN_CHARS} characters; too short: {', '.join(short)}. "
            "Make one with: python3 -c 'import secrets; print(secrets.token_urlsafe(32))'"
        )
    if len(http.secret.get_secret_value()) < MIN_TOKEN_CHARS:
        raise ConfigError(f"{http.secret_env} must be at least {MIN_TOKEN_CHARS} characters")
    if http.trust_identity_header and (http.tokens or http.oauth is not None or not is_loopback(http.host)):
        raise ConfigError("http.trust_identity_header applies only to a loopback bind without bearer tokens or OAuth; turn it off or drop the others")


def _security(config: Config, port: int) -> TransportSecuritySettings:
    names = list(dict.fromkeys(["127.0.0.1", "localhost", "[::1]", url_host(config.http.host), config.http.host.lower()]))
    allowed_hosts = [f"{h}:{port}" for h in names] + names + [h.lower() for h in config.http.allowed_hosts]
    allowed_origins = [f"http://{h}:{port}" for h in names] + [o.lower() for o in config.http.allowed_origins]
    return TransportSecuritySettings(enable_dns_rebinding_protection=True, allowed_hosts=allowed_hosts, allowed_origins=allowed_origins)


def build_http_app(server: Any, config: Config, *, stateless: bool = False, dashboard: Any = None) -> ASGIApp:
    """The ASGI app for `agentdeck serve --http` (with `dashboard`, an agentdeck.ui.Dashboard, also /ui);
    from now on the deck's agents get run tokens.

    Raises:
        ConfigError: no authentication on a public bind, tokens too short, settings that contradict.
    """
    _check(config)
    http = config.http
    run_tokens = RunTokens(http.secret.get_secret_value())
    url = f"http://{url_host(http.host)}:{http.port}{http.path}"
    server.deck.give_runs_credentials(lambda run_id, seconds: {"AGENTDECK_URL": url, "AGENTDECK_TOKEN": run_tokens.issue(run_id, seconds)})

    @server.custom_route("/healthz", methods=["GET"])  # type: ignore[untyped-decorator]  # the SDK types `server` as Any here
    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok", "version": __version__})

    app = server.streamable_http_app(
        streamable_http_path=http.path,
        stateless_http=stateless,
        max_request_body_size=http.max_body_bytes,
        session_idle_timeout=http.session_idle_seconds,
        transport_security=_security(config, http.port),
        host=http.host,
    )
    if dashboard is not None:
        # The dashboard checks hosts, tokens (or its login cookie) and CSRF itself (ui/guard.py).
        app.router.routes.append(Mount(dashboard_mount, app=dashboard.mounted_app()))
        app.router.lifespan_context = _closing(app.router.lifespan_context, dashboard)
    owner = process_caller(config)
    tokens = None if http.oauth is not None else [(t.value.get_secret_value().encode(), Caller(t.identity) if t.identity else owner) for t in http.tokens]
    hint = f"{http.auth_tokens_env} or http.tokens_file"
    delegated = dashboard_mount if dashboard is not None else None
    return _Gate(app, tokens=tokens, run_tokens=run_tokens, trust_header=http.trust_identity_header, tokens_hint=hint, delegated=delegated)


def _closing(lifespan: Any, dashboard: Any) -> Any:
    """The app's lifespan, then the dashboard's backends closed on the same event loop."""

    @contextlib.asynccontextmanager
    async def run(app: Any) -> Any:
        try:
            async with lifespan(app) as state:
                yield state
        finally:
            await dashboard.aclose()

    return run


class _HeaderDeadline(H11Protocol):
    """uvicorn's h11 protocol, closing a connection whose request headers take too long (slowloris)."""

    header_timeout = 10.0
    _deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]  # uvicorn narrows it the same way
        super().connection_made(transport)
        self._watch()

    def data_received(self, data: bytes) -> None:
        self._watch()
        super().data_received(data)
        self._watch()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
        super().connection_lost(exc)

    def _watch(self) -> None:
        """Time the headers of the request being read; stop timing once they are all in."""
        reading = self.conn.their_state is h11.IDLE
        if reading and self._deadline is None:
            self._deadline = self.loop.call_later(self.header_timeout, self._expired)
        elif not reading and self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _expired(self) -> None:
        self._deadline = None
        if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
            log.info("closed a connection whose request headers took over %g s", self.header_timeout)
            self.transport.close()


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


def serve_http(server: Any, config: Config, *, stateless: bool = False, dashboard: Any = None) -> None:
    """Serve until SIGTERM or SIGINT (`agentdeck serve --http`); the MCP lifespan opens and closes the backends."""
    app = build_http_app(server, config, stateless=stateless, dashboard=dashboard)
    protocol = type("HeaderDeadline", (_HeaderDeadline,), {"header_timeout": config.http.header_timeout_seconds})
    where = f"http://{url_host(config.http.host)}:{config.http.port}{config.http.path}"
    log.info("serving MCP at %s%s", where, " and the dashboard at /ui/" if dashboard is not None else "")
    settings = uvicorn.Config(
        app,
        host=config.http.host.strip("[]"),
        port=config.http.port,
        http=protocol,
        log_level="warning",
        lifespan="on",
        timeout_graceful_shutdown=SHUTDOWN_GRACE_SECONDS,
    )
    _Server(settings, before_shutdown=server.deck.stop_waiting).run()
