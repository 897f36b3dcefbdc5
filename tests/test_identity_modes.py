"""Where a client's identity comes from besides static tokens: OAuth (the token's subject or
client id, and run tokens for spawned agents), and on a loopback bind without auth, a header
the operator chose to trust."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import anyio
import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from tests.emulators.serving import serve_in_thread
from tests.helpers import HEADERS, INIT, agents_toml, call, free_port, http_server, server_env

ACCOUNTS = {"token-of-alice-1": {"sub": "alice", "client_id": "app-a"}, "token-of-bob-22": {"sub": "bob", "client_id": "app-b"}}
PRINT_CREDENTIALS = """
[backends.local.agents.credentials]
command = ["{python}", "-c", "import os; print(os.environ['AGENTDECK_URL']); print(os.environ['AGENTDECK_TOKEN'])"]
"""


@contextlib.asynccontextmanager
async def _client(url: str, **headers: str) -> AsyncIterator[Client]:
    http = httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(60))
    async with http, Client(streamable_http_client(url, http_client=http)) as client:
        yield client


async def _me(client: Client) -> str:
    result = await client.read_resource("agentdeck://me")
    return str(json.loads(result.contents[0].text)["identity"])  # type: ignore[union-attr]


@contextlib.contextmanager
def _oauth_server(directory: Path, identity_from: str) -> Iterator[str]:
    port = free_port()
    resource = f"http://127.0.0.1:{port}/mcp"

    async def introspect(request: Request) -> JSONResponse:
        account = ACCOUNTS.get(str((await request.form()).get("token")))
        if account is None:
            return JSONResponse({"active": False})
        return JSONResponse({"active": True, "scope": "mcp", "aud": resource, "exp": 4102444800, "iss": "http://issuer.test"} | account)

    with serve_in_thread(Starlette(routes=[Route("/introspect", introspect, methods=["POST"])])) as issuer:
        (directory / "agentdeck.toml").write_text(
            agents_toml()
            + PRINT_CREDENTIALS.format(python=sys.executable.replace("\\", "\\\\"))
            + f'\n[http.oauth]\nissuer_url = "{issuer}"\nintrospection_url = "{issuer}/introspect"\nrequired_scopes = ["mcp"]\nidentity_from = "{identity_from}"\n'
        )
        with http_server(server_env(directory, "the-server"), port=port) as url:
            yield url


@pytest.mark.parametrize(("identity_from", "alice", "bob"), [("subject", "alice", "bob"), ("client_id", "app-a", "app-b")])
async def test_oauth_clients_are_named_by_their_token(identity_from: str, alice: str, bob: str, tmp_path: Path) -> None:
    with _oauth_server(tmp_path, identity_from) as url:
        tokens = list(ACCOUNTS)
        async with _client(url, Authorization=f"Bearer {tokens[0]}") as first, _client(url, Authorization=f"Bearer {tokens[1]}") as second:
            with anyio.fail_after(60):
                assert (await _me(first), await _me(second)) == (alice, bob)
                await call(first, "send_channel_message", {"channel": "oauth", "body": "hi"})
                got = await call(second, "receive_channel_messages", {"channel": "oauth"})
                assert [(m["sender"], m["body"]) for m in got["messages"]] == [(alice, "hi")]
                assert (await call(first, "receive_channel_messages", {"channel": "oauth"}))["messages"] == []


async def test_an_agent_spawned_by_an_oauth_server_connects_with_its_run_token(tmp_path: Path) -> None:
    with _oauth_server(tmp_path, "subject") as url:
        async with _client(url, Authorization=f"Bearer {next(iter(ACCOUNTS))}") as alice:
            with anyio.fail_after(60):
                run = await call(alice, "spawn_agent", {"agent": "credentials", "prompt": "x"})
                await call(alice, "wait_for_run", {"run_id": run["id"], "timeout_seconds": 30})
                events = await call(alice, "get_run_events", {"run_id": run["id"]})
                agent_url, token = [e["text"] for e in events["events"] if e["kind"] == "stdout"]
                assert agent_url == url
                async with _client(agent_url, Authorization=f"Bearer {token}") as agent:
                    assert await _me(agent) == run["id"]
                tampered = token.replace(run["id"], "run_0000000000000000")
                assert httpx2.post(url, json=INIT, headers=HEADERS | {"Authorization": f"Bearer {tampered}"}).status_code == 401


@pytest.fixture(scope="module")
def trusting_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    directory = tmp_path_factory.mktemp("trusting")
    (directory / "agentdeck.toml").write_text(agents_toml() + "\n[http]\ntrust_identity_header = true\n")
    with http_server(server_env(directory, "the-server")) as url:
        yield url


async def test_with_trust_identity_header_a_loopback_client_names_itself(trusting_server: str) -> None:
    url = trusting_server
    async with _client(url, **{"X-Agentdeck-Identity": "alice"}) as alice, _client(url, **{"X-Agentdeck-Identity": "bob"}) as bob, _client(url) as nameless:
        with anyio.fail_after(60):
            assert (await _me(alice), await _me(bob), await _me(nameless)) == ("alice", "bob", "the-server")
            await call(alice, "send_channel_message", {"channel": "local", "body": "a"})
            await call(bob, "send_channel_message", {"channel": "local", "body": "b"})
            assert [m["sender"] for m in (await call(alice, "receive_channel_messages", {"channel": "local"}))["messages"]] == ["bob"]
            assert [m["sender"] for m in (await call(bob, "receive_channel_messages", {"channel": "local"}))["messages"]] == ["alice"]
    for headers in ([("X-Agentdeck-Identity", "alice"), ("X-Agentdeck-Identity", "bob")], [("X-Agentdeck-Identity", "alice\tbob")], [("X-Agentdeck-Identity", "x" * 200)]):
        assert httpx2.post(url, json=INIT, headers=list(HEADERS.items()) + headers).status_code == 400, headers
    opened = httpx2.post(url, json=INIT, headers=HEADERS | {"X-Agentdeck-Identity": "alice"})
    listing = {"jsonrpc": "2.0", "id": 2, "method": "tools/list"}
    session = {"Mcp-Session-Id": opened.headers["mcp-session-id"]}
    assert httpx2.post(url, json=listing, headers=HEADERS | session | {"X-Agentdeck-Identity": "bob"}).status_code == 404
    assert httpx2.post(url, json=listing, headers=HEADERS | session).status_code == 404


async def test_without_trust_identity_header_the_header_is_ignored(tmp_path: Path) -> None:
    (tmp_path / "agentdeck.toml").write_text(agents_toml())
    with http_server(server_env(tmp_path, "the-server")) as url:
        async with _client(url, **{"X-Agentdeck-Identity": "alice"}) as client:
            assert await _me(client) == "the-server"


@pytest.mark.parametrize(("env", "args"), [({"AGENTDECK_HTTP_TOKENS": "alice:0123456789abcdefgh"}, ()), ({"AGENTDECK_HTTP_TOKENS": "0123456789abcdefgh"}, ("--host", "0.0.0.0"))])
def test_trust_identity_header_is_refused_where_it_would_trust_strangers(env: dict[str, str], args: tuple[str, ...], tmp_path: Path) -> None:
    (tmp_path / "agentdeck.toml").write_text(agents_toml() + "\n[http]\ntrust_identity_header = true\n")
    command = [sys.executable, "-m", "agentdeck", "serve", "--http", "--port", str(free_port()), *args]
    started = subprocess.run(command, env=server_env(tmp_path, **env), capture_output=True, text=True, timeout=60)
    assert started.returncode == 2 and "http.trust_identity_header applies only to a loopback bind" in started.stderr
