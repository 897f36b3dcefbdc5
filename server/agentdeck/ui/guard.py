"""Who may use the dashboard, and which requests count as the person's own.

The same rules as the HTTP transport: on loopback nobody needs to log in; on any other bind
the dashboard refuses to start unless the HTTP bearer tokens or OAuth are configured, and
then a browser logs in once with a token (a form, or `?token=` in the first URL) and keeps an
HttpOnly, SameSite=Strict session cookie. Host and Origin are checked against the same
names as /mcp, against DNS rebinding. Actions also need the page's CSRF token.
"""

from __future__ import annotations

import secrets
from typing import TYPE_CHECKING, Any

from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from agentdeck.config import Config
from agentdeck.transport import _check, _security, is_loopback

if TYPE_CHECKING:
    from agentdeck.ui.dashboard import Dashboard

__all__ = ["Guard", "csrf_ok"]

_COOKIE = "agentdeck_ui"


def csrf_ok(dashboard: Dashboard, submitted: Any) -> bool:
    return isinstance(submitted, str) and secrets.compare_digest(submitted.encode(), dashboard.csrf_token.encode())


class Guard:
    """ASGI middleware in front of the dashboard's routes."""

    def __init__(self, app: ASGIApp, *, dashboard: Dashboard, config: Config, port: int) -> None:
        self.app = app
        self.dashboard = dashboard
        security = _security(config, port)
        self.allowed_hosts = set(security.allowed_hosts or [])
        self.allowed_origins = set(security.allowed_origins or [])
        if not is_loopback(config.http.host):
            self.allowed_origins |= {f"{scheme}://{config.http.host}:{port}" for scheme in ("http", "https")}
        self.tokens = [t.value.get_secret_value().encode() for t in config.http.tokens]
        self.verifier: Any = None
        _check(config)  # the HTTP transport's rules: authentication off loopback, tokens long enough
        if config.http.oauth is not None:
            from agentdeck.identity import RunTokens
            from agentdeck.oauth import IntrospectionVerifier, auth_settings

            resource = auth_settings(config.http.oauth, f"http://{config.http.host}:{port}{config.http.path}").resource_server_url
            self.verifier = IntrospectionVerifier(config.http.oauth, run_tokens=RunTokens(config.http.secret.get_secret_value()), resource=str(resource))
        self.needs_login = bool(self.tokens) or self.verifier is not None
        self._sessions: set[str] = set()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        refusal = self._refusal(Headers(scope=scope), scope["method"])
        if refusal is not None:
            await refusal(scope, receive, send)
            return
        if self.needs_login:
            request = Request(scope, receive)
            if not self._has_session(request):
                response = await self._login(request)
                if response is not None:
                    await response(scope, receive, send)
                    return
        await self.app(scope, receive, send)

    def _refusal(self, headers: Headers, method: str) -> Response | None:
        if headers.get("host", "") not in self.allowed_hosts:
            return PlainTextResponse("This host name is not allowed; open the dashboard at the address agentdeck printed.", status_code=421)
        if method not in ("GET", "HEAD"):
            origin = headers.get("origin")
            if (origin is not None and origin not in self.allowed_origins) or headers.get("sec-fetch-site") == "cross-site":
                return PlainTextResponse("Cross-site request refused.", status_code=403)
        return None

    def _has_session(self, request: Request) -> bool:
        cookie = request.cookies.get(_COOKIE, "")
        if cookie and any(secrets.compare_digest(cookie.encode(), s.encode()) for s in self._sessions):
            return True
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        return scheme.lower() == "bearer" and self._static_token_ok(token.strip())

    def _static_token_ok(self, token: str) -> bool:
        return any(secrets.compare_digest(token.encode(), t) for t in self.tokens)

    async def _token_ok(self, token: str) -> bool:
        if not token:
            return False
        if self._static_token_ok(token):
            return True
        return self.verifier is not None and await self.verifier.verify_token(token) is not None

    async def _login(self, request: Request) -> Response | None:
        """A response that logs the browser in, or asks it to; None lets a bearer-token request through."""
        token = request.query_params.get("token", "")
        if request.method == "POST" and request.url.path.endswith("/login"):
            token = str((await request.form()).get("token", ""))
        if await self._token_ok(token):
            session = secrets.token_urlsafe(32)
            self._sessions.add(session)
            target = request.url.path if request.method == "GET" and not request.url.path.endswith("/login") else "/ui/"
            response = RedirectResponse(target, status_code=303)
            response.set_cookie(_COOKIE, session, httponly=True, samesite="strict", path="/ui")
            return response
        status = 401 if not token else 403
        return self.dashboard.page("login.html", status_code=status, failed=bool(token))
