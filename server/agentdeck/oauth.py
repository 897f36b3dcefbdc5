"""OAuth 2.1 resource-server mode for the HTTP transport, through the MCP SDK.

With `[http.oauth]` configured, the SDK serves the protected-resource metadata
(/.well-known/oauth-protected-resource/...), answers a request without a valid token with 401
and a WWW-Authenticate header pointing at that metadata, and asks this verifier about each
bearer token. The verifier uses token introspection (RFC 7662) at the authorization server,
authenticating as the resource server's client; the client secret comes from an environment
variable and is never logged. The client's identity (identity.py) is the token's `sub`, or its
`client_id` with `identity_from = "client_id"`. Agents this server spawned show their run
tokens instead, which are checked here without asking the authorization server.
"""

from __future__ import annotations

import logging
from typing import Any

import httpx2
from mcp.server.auth.provider import AccessToken
from mcp.server.auth.settings import AuthSettings

from agentdeck.config import OAuthConfig
from agentdeck.identity import Caller, RunTokens, access_token, fingerprint

__all__ = ["IntrospectionVerifier", "auth_settings"]

log = logging.getLogger("agentdeck.oauth")


def auth_settings(oauth: OAuthConfig, resource_url: str) -> AuthSettings:
    return AuthSettings(
        # Strings, not AnyHttpUrl: the model validates them keeping a path-less URL without the
        # trailing slash that AnyHttpUrl(...) would add (issuer comparison is exact).
        issuer_url=oauth.issuer_url,  # type: ignore[arg-type]  # validated by the model, see above
        resource_server_url=oauth.resource_url or resource_url,  # type: ignore[arg-type]  # likewise
        required_scopes=oauth.required_scopes or None,
        validate_token_resource=oauth.validate_resource,
    )


class IntrospectionVerifier:
    """Asks the authorization server whether a token is active, and for what."""

    def __init__(self, oauth: OAuthConfig, *, run_tokens: RunTokens, resource: str, transport: httpx2.AsyncBaseTransport | None = None) -> None:
        self.url = oauth.introspection_url
        self.identity_from = oauth.identity_from
        self.run_tokens = run_tokens
        self.resource = resource
        self.scopes = oauth.required_scopes
        secret = oauth.client_secret.get_secret_value() if oauth.client_secret else ""
        self._auth = (oauth.client_id, secret) if oauth.client_id else None
        self._client = httpx2.AsyncClient(timeout=httpx2.Timeout(10.0, connect=5.0), transport=transport)

    async def verify_token(self, token: str) -> AccessToken | None:
        run = self.run_tokens.caller(token)
        if run is not None:
            return access_token(run, token, f"token:{fingerprint(token)}", scopes=self.scopes, resource=self.resource)
        try:
            form = {"token": token, "token_type_hint": "access_token"}
            response = await (self._client.post(self.url, data=form, auth=self._auth) if self._auth else self._client.post(self.url, data=form))
            body: Any = response.json() if response.is_success else {}
        except (httpx2.HTTPError, ValueError) as exc:
            log.warning("token introspection failed: %s", type(exc).__name__)
            return None
        if not isinstance(body, dict) or body.get("active") is not True:
            return None
        client_id, subject = str(body.get("client_id", "")), body.get("sub")
        identity = subject if self.identity_from == "subject" else client_id
        if not isinstance(identity, str) or not identity or len(identity) > 256:
            log.warning("an active token has no usable %s to name its client; see http.oauth.identity_from", self.identity_from)
            return None
        audience = body.get("aud")
        claims = {"iss": body["iss"]} if isinstance(body.get("iss"), str) else {}
        return access_token(
            Caller(identity),
            token,
            str(subject) if subject is not None else None,
            client_id=client_id,
            scopes=str(body.get("scope", "")).split(),
            expires_at=body.get("exp"),
            resource=audience[0] if isinstance(audience, list) and audience else audience,
            claims=claims,
        )
