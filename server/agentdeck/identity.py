"""Who is calling: one identity per request, decided once, from what authenticated it.

How identity flows:

- stdio: every request is the process's own caller, `process_caller(config)`: `identity`, else
  the run id (an agent agentdeck spawned), else user@host (`Config.resolved_identity`). It is
  the operator unless the process is itself a run.
- Streamable HTTP: the auth layer (transport.py for static and per-run tokens and the trusted
  header, the SDK with oauth.py for OAuth) puts an SDK `AuthenticatedUser` on the request's
  scope whose `AccessToken` carries a `Caller` in its claims (`access_token`). The SDK binds a
  stateful session to that principal, so a session refuses requests made with another
  credential. A request with no user (a loopback bind without auth) is the server's own caller.
- `bind_callers`, a server middleware, reads the user of the HTTP request that carried each MCP
  message and sets `current` for the duration of its handler. The local backend, the resources
  and the context read `current(...)` wherever they need the caller (channel sender, reader
  cursors, claim holder, spawn budget, agentdeck://me); no tool argument can name it.

Per-run tokens (`RunTokens`) are how an agent spawned by an HTTP server connects as itself:
`<prefix>.<run id>.<expiry>.<HMAC-SHA256>` under the server's secret, so every replica with the
same secret accepts them without a lookup, until the run's time to live has passed.
"""

from __future__ import annotations

import base64
import contextvars
import hashlib
import hmac
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mcp.server.auth.provider import AccessToken

__all__ = ["Caller", "RunTokens", "access_token", "bind_callers", "caller_of", "current", "fingerprint", "process_caller"]

_CLAIM = "agentdeck_caller"


@dataclass(frozen=True)
class Caller:
    """Who a request comes from.

    `run_id` is set only when the caller is a run agentdeck spawned (stdio child, per-run
    token); `operator` is the server's own identity, which may spend any run's spawn budget.
    """

    identity: str
    run_id: str | None = None
    operator: bool = False


def process_caller(config: Any) -> Caller:
    """The caller of a stdio server, and of HTTP requests that carry no identity of their own."""
    return Caller(config.resolved_identity, run_id=config.run_id, operator=config.run_id is None)


_current: contextvars.ContextVar[Caller | None] = contextvars.ContextVar("agentdeck_caller", default=None)


def current(default: Caller) -> Caller:
    """The caller of the request being handled; `default` (the process's own) outside one."""
    return _current.get() or default


def fingerprint(secret: str) -> str:
    """A stable, non-reversible name for a credential, to tell two credentials apart."""
    return hashlib.sha256(secret.encode()).hexdigest()[:32]


def access_token(caller: Caller, token: str, principal: str | None, **fields: Any) -> AccessToken:
    """The SDK's view of an authenticated request: `principal` tells credentials apart, `caller` rides in the claims."""
    from mcp.server.auth.provider import AccessToken  # here, not at the top: supervisors import this module without needing mcp

    claims = {**(fields.pop("claims", None) or {}), _CLAIM: asdict(caller)}
    return AccessToken(token=token, client_id=fields.pop("client_id", caller.identity), subject=principal, scopes=fields.pop("scopes", []), claims=claims, **fields)


def caller_of(user: Any) -> Caller | None:
    """The caller an authenticated request's user stands for; None when the request has none."""
    from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser

    if not isinstance(user, AuthenticatedUser):
        return None
    claim = (user.access_token.claims or {}).get(_CLAIM)
    return Caller(**claim) if isinstance(claim, dict) else None


def bind_callers(default: Caller) -> Callable[..., Any]:
    """Server middleware: each request's handler sees its own caller through `current`."""

    async def middleware(ctx: Any, call_next: Callable[[Any], Any]) -> Any:
        scope = getattr(ctx.request, "scope", None) or {}  # the HTTP request on Streamable HTTP; None on stdio
        token = _current.set(caller_of(scope.get("user")) or default)
        try:
            return await call_next(ctx)
        finally:
            _current.reset(token)

    return middleware


class RunTokens:
    """Bearer tokens that name one run, signed with the server's secret."""

    PREFIX = "adrun1"

    def __init__(self, secret: str) -> None:
        self._key = hashlib.sha256(b"agentdeck run token\0" + secret.encode()).digest()

    def _mac(self, body: str) -> str:
        digest = hmac.new(self._key, body.encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).decode().rstrip("=")

    def issue(self, run_id: str, ttl_seconds: float) -> str:
        body = f"{self.PREFIX}.{run_id}.{int(time.time() + ttl_seconds)}"
        return f"{body}.{self._mac(body)}"

    def verify(self, token: str) -> str | None:
        """The run id `token` was issued for, or None (not one of ours, tampered with, or expired)."""
        parts = token.split(".")
        if len(parts) != 4 or parts[0] != self.PREFIX or not parts[2].isdigit():
            return None
        body = ".".join(parts[:3])
        if not hmac.compare_digest(self._mac(body), parts[3]) or int(parts[2]) < time.time():
            return None
        return parts[1]

    def caller(self, token: str) -> Caller | None:
        run_id = self.verify(token)
        return Caller(run_id, run_id=run_id) if run_id else None
