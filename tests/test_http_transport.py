"""The Streamable HTTP transport refuses what it should: foreign Hosts and Origins, missing or
wrong bearer tokens, oversized bodies, and public binds without authentication."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
from mcp import Client

from tests.helpers import HEADERS, INIT, agents_toml, call, http_server, server_env, write_config


@pytest.fixture(scope="module")
def plain_server(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    directory = tmp_path_factory.mktemp("http")
    write_config(directory)
    with http_server(server_env(directory)) as url:
        yield url


@pytest.fixture(scope="module")
def token_server(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    directory = tmp_path_factory.mktemp("http-auth")
    write_config(directory)
    with http_server(server_env(directory, AGENTDECK_HTTP_TOKENS="tok-one-0123456789,tok-two-0123456789")) as url:
        yield url


def test_healthz_answers_for_orchestrators(plain_server: str) -> None:
    response = httpx2.get(plain_server.replace("/mcp", "/healthz"))
    assert response.status_code == 200 and response.json()["status"] == "ok"


def test_a_foreign_host_header_is_refused(plain_server: str) -> None:
    response = httpx2.post(plain_server, json=INIT, headers=HEADERS | {"Host": "evil.example.com"})
    assert response.status_code == 421


def test_a_foreign_origin_is_refused_and_a_local_one_accepted(plain_server: str) -> None:
    refused = httpx2.post(plain_server, json=INIT, headers=HEADERS | {"Origin": "https://evil.example.com"})
    assert refused.status_code == 403
    port = plain_server.split(":")[2].split("/")[0]
    accepted = httpx2.post(plain_server, json=INIT, headers=HEADERS | {"Origin": f"http://127.0.0.1:{port}"})
    assert accepted.status_code == 200


def test_an_oversized_body_is_refused(plain_server: str) -> None:
    body = json.dumps({**INIT, "padding": "x" * (5 * 1024 * 1024)})
    response = httpx2.post(plain_server, content=body, headers=HEADERS)
    assert response.status_code == 413


def test_requests_without_a_valid_bearer_token_are_refused_when_tokens_are_configured(token_server: str) -> None:
    missing = httpx2.post(token_server, json=INIT, headers=HEADERS)
    assert missing.status_code == 401 and missing.headers["www-authenticate"].startswith("Bearer")
    wrong = httpx2.post(token_server, json=INIT, headers=HEADERS | {"Authorization": "Bearer tok-three-0123456789"})
    assert wrong.status_code == 401
    assert "tok-one" not in missing.text + wrong.text
    health = httpx2.get(token_server.replace("/mcp", "/healthz"))
    assert health.status_code == 200


async def test_a_client_with_a_configured_token_gets_through(token_server: str) -> None:
    http = httpx2.AsyncClient(headers={"Authorization": "Bearer tok-two-0123456789"})
    from mcp.client.streamable_http import streamable_http_client

    async with http:
        async with Client(streamable_http_client(token_server, http_client=http)) as client:
            agents = await call(client, "list_agents")
    assert "echo" in [a["name"] for a in agents["agents"]]


def test_public_bind_with_tokens_starts(tmp_path: Path) -> None:
    write_config(tmp_path)
    with http_server(server_env(tmp_path, AGENTDECK_HTTP_TOKENS="tok-0123456789abcdef"), "--host", "0.0.0.0") as url:
        assert httpx2.get(url.replace("/mcp", "/healthz")).status_code == 200


async def test_request_headers_narrow_the_tool_set_but_never_widen_it(tmp_path: Path) -> None:
    from mcp.client.streamable_http import streamable_http_client

    write_config(tmp_path)

    async def names(url: str, headers: dict[str, str]) -> tuple[set[str], Any]:
        async with httpx2.AsyncClient(headers=headers) as http:
            async with Client(streamable_http_client(url, http_client=http)) as client:
                listed = {t.name for t in (await client.list_tools()).tools}
                spawn = await client.call_tool("spawn_agent", {"agent": "echo", "prompt": "x"})
        return listed, spawn

    with http_server(server_env(tmp_path)) as url:
        read_only, spawn = await names(url, {"X-Agentdeck-Read-Only": "1"})
        assert "get_run" in read_only and "spawn_agent" not in read_only
        assert spawn.is_error and spawn.structured_content["code"] == "not_found"
        channels, _ = await names(url, {"X-Agentdeck-Toolsets": "channels", "X-Agentdeck-Exclude-Tools": "list_channels"})
        assert channels == {"send_channel_message", "receive_channel_messages"}
        everything, spawn = await names(url, {})
        assert "spawn_agent" in everything and not spawn.is_error
    with http_server(server_env(tmp_path, AGENTDECK_READ_ONLY="1")) as url:
        widened, spawn = await names(url, {"X-Agentdeck-Tools": "spawn_agent,get_run"})
        assert widened == {"get_run"} and spawn.is_error


async def test_an_idle_session_is_closed_after_the_configured_time_and_an_active_one_is_kept(tmp_path: Path) -> None:
    idle_seconds = 2.0
    write_config(tmp_path, agents_toml() + f"\n[http]\nsession_idle_seconds = {idle_seconds}\n")
    ping = {"jsonrpc": "2.0", "id": 2, "method": "ping"}

    async def open_session(http: httpx2.AsyncClient, url: str) -> dict[str, str]:
        opened = await http.post(url, json=INIT, headers=HEADERS)
        assert opened.status_code == 200
        session = HEADERS | {"mcp-session-id": opened.headers["mcp-session-id"], "mcp-protocol-version": "2025-11-25"}
        initialized = await http.post(url, json={"jsonrpc": "2.0", "method": "notifications/initialized"}, headers=session)
        assert initialized.status_code == 202
        return session

    with http_server(server_env(tmp_path)) as url:
        async with httpx2.AsyncClient(timeout=10) as http:
            active, idle = await open_session(http, url), await open_session(http, url)
            with anyio.fail_after(30):
                deadline = anyio.current_time() + 2.5 * idle_seconds
                while anyio.current_time() < deadline:  # one request every 0.2 s keeps `active` alive
                    assert (await http.post(url, json=ping, headers=active)).status_code == 200
                    await anyio.sleep(0.2)
            gone = await http.post(url, json=ping, headers=idle)
            kept = await http.post(url, json=ping, headers=active)
    assert gone.status_code == 404 and gone.json()["error"]["message"] == "Session not found"
    assert kept.status_code == 200 and "result" in kept.text
