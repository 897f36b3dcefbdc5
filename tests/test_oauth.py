"""OAuth 2.1 resource-server mode: metadata published, 401 with WWW-Authenticate, tokens checked
by introspection at the authorization server."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from tests.emulators.serving import serve_in_thread
from tests.helpers import agents_toml, call, free_port, http_server, server_env

GOOD = "token-good-1"


def _authorization_server(seen: list[dict[str, Any]]) -> Starlette:
    async def introspect(request: Request) -> JSONResponse:
        form = await request.form()
        client = base64.b64decode(request.headers.get("authorization", "Basic ").split(" ", 1)[1] or b"").decode()
        seen.append({"token": form.get("token"), "client": client})
        if client != "agentdeck-rs:rs-secret":
            return JSONResponse({"error": "invalid_client"}, status_code=401)
        if form.get("token") != GOOD:
            return JSONResponse({"active": False})
        return JSONResponse({"active": True, "client_id": "claude", "scope": "mcp", "sub": "alice", "aud": RESOURCE[0], "exp": 4102444800})

    return Starlette(routes=[Route("/introspect", introspect, methods=["POST"])])


RESOURCE: list[str] = []


@pytest.fixture
def oauth_server(tmp_path: Path):  # type: ignore[no-untyped-def]
    seen: list[dict[str, Any]] = []
    with serve_in_thread(_authorization_server(seen)) as issuer:
        port = free_port()
        RESOURCE[:] = [f"http://127.0.0.1:{port}/mcp"]
        (tmp_path / "agentdeck.toml").write_text(
            agents_toml()
            + f"""
[http.oauth]
issuer_url = "{issuer}"
introspection_url = "{issuer}/introspect"
client_id = "agentdeck-rs"
required_scopes = ["mcp"]
"""
        )
        with http_server(server_env(tmp_path, AGENTDECK_OAUTH_CLIENT_SECRET="rs-secret"), port=port) as url:
            yield url, issuer, seen


def test_unauthenticated_requests_get_401_pointing_at_the_protected_resource_metadata(oauth_server: Any) -> None:
    url, issuer, _ = oauth_server
    response = httpx2.post(url, json={"jsonrpc": "2.0", "id": 1, "method": "ping"}, headers={"Accept": "application/json, text/event-stream"})
    assert response.status_code == 401
    challenge = response.headers["www-authenticate"]
    assert challenge.startswith("Bearer") and "resource_metadata=" in challenge
    metadata_url = challenge.split('resource_metadata="', 1)[1].split('"', 1)[0]
    metadata = httpx2.get(metadata_url).json()
    assert metadata["resource"] == url and metadata["authorization_servers"][0].rstrip("/") == issuer


async def test_an_active_token_gets_through_and_an_inactive_one_does_not(oauth_server: Any) -> None:
    url, _, seen = oauth_server
    bad = httpx2.post(url, json={"jsonrpc": "2.0", "id": 1, "method": "ping"}, headers={"Authorization": "Bearer nope", "Accept": "application/json, text/event-stream"})
    assert bad.status_code == 401
    async with httpx2.AsyncClient(headers={"Authorization": f"Bearer {GOOD}"}) as http:
        async with Client(streamable_http_client(url, http_client=http)) as client:
            agents = await call(client, "list_agents")
    assert "echo" in [a["name"] for a in agents["agents"]]
    assert {"token": GOOD, "client": "agentdeck-rs:rs-secret"} in seen
    assert httpx2.get(url.replace("/mcp", "/healthz")).status_code == 200
