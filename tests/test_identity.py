"""An identity per HTTP client: three clients with their own tokens on one server, and on two
stateless replicas on one PostgreSQL, each see the others' messages and never their own, read
with cursors of their own, and cannot settle each other's claims; no header, argument or token
trick makes one act as another; an agent the server spawns connects as its own run."""

from __future__ import annotations

import contextlib
import json
import secrets
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from tests.helpers import agents_toml, call, config_for, fail, http_server, local_client, server_env
from tests.test_stateless_replicas import _port, _RoundRobin

NAMES = ("alice", "bob", "carol")
TOKENS = {name: f"{name}-{secrets.token_urlsafe(16)}" for name in NAMES}
OPERATOR = f"operator-{secrets.token_urlsafe(16)}"
HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}


def _env(directory: Path, **extra: str) -> dict[str, str]:
    """alice and bob from the variable, carol from the tokens file, and one bare (operator) token."""
    tokens_file = directory / "tokens"
    tokens_file.write_text(f"# one client a line\ncarol:{TOKENS['carol']}\n")
    (directory / "agentdeck.toml").write_text(agents_toml() + f'\n[http]\ntokens_file = "{tokens_file}"\n')
    variable = f"alice:{TOKENS['alice']},bob:{TOKENS['bob']},{OPERATOR}"
    return server_env(directory, "the-server", AGENTDECK_HTTP_TOKENS=variable, **extra)


@contextlib.asynccontextmanager
async def _client(url: str, token: str, *, transport: Any = None, mode: str = "auto", **headers: str) -> AsyncIterator[Client]:
    http = httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}", **headers}, transport=transport, timeout=httpx2.Timeout(60))
    async with http, Client(streamable_http_client(url, http_client=http), mode=mode) as client:
        yield client


async def _me(client: Client) -> dict[str, Any]:
    result = await client.read_resource("agentdeck://me")
    return json.loads(result.contents[0].text)  # type: ignore[union-attr]


async def _three_clients_keep_to_themselves(clients: dict[str, Client]) -> None:
    for name, client in clients.items():
        assert (await _me(client))["identity"] == name
        sent = await call(client, "send_channel_message", {"channel": "team", "body": f"from {name}"})
        assert sent["sender"] == name

    # each receives the others' messages and never its own, each with its own cursor
    for name, client in clients.items():
        got = await call(client, "receive_channel_messages", {"channel": "team"})
        assert sorted((m["sender"], m["body"]) for m in got["messages"]) == [(o, f"from {o}") for o in NAMES if o != name]
    for client in clients.values():
        assert (await call(client, "receive_channel_messages", {"channel": "team"}))["messages"] == []
    await call(clients["carol"], "send_channel_message", {"channel": "team", "body": "again"})
    for name in ("alice", "bob"):
        got = await call(clients[name], "receive_channel_messages", {"channel": "team"})
        assert [(m["sender"], m["body"]) for m in got["messages"]] == [("carol", "again")]
    assert (await call(clients["carol"], "receive_channel_messages", {"channel": "team"}))["messages"] == []

    # a claim is settled only by the identity that made it, whatever token the other shows
    alice, bob = clients["alice"], clients["bob"]
    await call(alice, "create_task", {"title": "review", "queue": "identity"})
    lease = (await call(alice, "claim_task", {"queue": "identity"}))["lease"]
    assert lease["holder"] == "alice"
    claim = {"run_id": lease["run_id"], "claim_token": lease["claim_token"]}
    for tool, extra in (("heartbeat_task", {}), ("complete_task", {"result": "mine"}), ("fail_task", {"error": "no"}), ("release_task", {})):
        refused = await fail(bob, tool, claim | extra)
        assert refused["code"] == "unauthorized" and "'alice'" in refused["message"] and "'bob'" in refused["message"], refused
    await call(alice, "heartbeat_task", claim)
    assert (await call(alice, "complete_task", claim | {"result": "done"}))["state"] == "completed"


@pytest.mark.parametrize("mode", ["2026-07-28", "legacy"])
async def test_three_clients_with_their_own_tokens_on_one_server(mode: str, tmp_path: Path) -> None:
    with http_server(_env(tmp_path)) as url:
        async with (
            _client(url, TOKENS["alice"], mode=mode) as alice,
            _client(url, TOKENS["bob"], mode=mode) as bob,
            _client(url, TOKENS["carol"], mode=mode) as carol,
        ):
            with anyio.fail_after(60):
                await _three_clients_keep_to_themselves({"alice": alice, "bob": bob, "carol": carol})


@pytest.mark.parametrize("mode", ["2026-07-28", "legacy"])
async def test_three_clients_on_two_stateless_replicas_of_one_postgresql(mode: str, postgres_url: str, tmp_path: Path) -> None:
    replicas = [tmp_path / "a", tmp_path / "b"]
    shared = secrets.token_urlsafe(32)  # so that a run token from one replica is good on the other
    envs = []
    for directory in replicas:
        directory.mkdir()
        envs.append(_env(directory, AGENTDECK_STORE=postgres_url, AGENTDECK_HTTP_SECRET=shared))
    with http_server(envs[0], "--stateless") as url_a, http_server(envs[1], "--stateless") as url_b:
        balancers = {name: _RoundRobin([_port(url_a), _port(url_b)]) for name in NAMES}
        async with contextlib.AsyncExitStack() as stack:
            clients = {name: await stack.enter_async_context(_client(url_a, TOKENS[name], transport=balancers[name], mode=mode)) for name in NAMES}
            with anyio.fail_after(60):
                await _three_clients_keep_to_themselves(clients)
        assert all(len(b.served) == 2 for b in balancers.values())


async def test_no_header_argument_or_token_trick_acts_as_another_client(tmp_path: Path) -> None:
    with http_server(_env(tmp_path)) as url:
        async with _client(url, TOKENS["alice"], **{"X-Agentdeck-Identity": "bob"}) as alice, _client(url, TOKENS["bob"]) as bob:
            # the identity header is not trusted on a server with tokens
            assert (await _me(alice))["identity"] == "alice"
            sent = await call(alice, "send_channel_message", {"channel": "tricks", "body": "header"})
            assert sent["sender"] == "alice"
            # arguments and _meta that name someone else change nothing
            result = await alice.call_tool("send_channel_message", {"channel": "tricks", "body": "args", "sender": "bob", "identity": "bob"})
            assert result.is_error or result.structured_content["sender"] == "alice"  # type: ignore[index]
            sent = await call(alice, "send_channel_message", {"channel": "tricks", "body": "meta"}, meta={"identity": "bob", "agentdeck/identity": "bob"})
            assert sent["sender"] == "alice"
            got = await call(bob, "receive_channel_messages", {"channel": "tricks"})
            assert {m["sender"] for m in got["messages"]} == {"alice"}

    with http_server(_env(tmp_path)) as url:
        init = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "0"}}}

        def post(*authorization: str, session: str | None = None) -> httpx2.Response:
            headers = [(k, v) for k, v in HEADERS.items()] + [("Authorization", a) for a in authorization]
            if session:
                headers.append(("Mcp-Session-Id", session))
            return httpx2.post(url, json=init if session is None else {"jsonrpc": "2.0", "id": 2, "method": "tools/list"}, headers=headers)

        # two Authorization headers, or a token dressed up: refused, never read as either client
        assert post(f"Bearer {TOKENS['alice']}", f"Bearer {TOKENS['bob']}").status_code == 400
        for forged in (
            f"Bearer alice:{TOKENS['alice']}",
            f"Bearer {TOKENS['alice']},{TOKENS['bob']}",
            f"Bearer {TOKENS['alice'].upper()}",
            f"Bearer {TOKENS['alice'][:-1]}",
            f"Basic {TOKENS['alice']}",
            TOKENS["alice"],
            "Bearer adrun1.run_0000000000000000.9999999999.AAAA",
        ):
            assert post(forged).status_code == 401, forged
        # a session belongs to the credential that opened it
        opened = post(f"Bearer {TOKENS['alice']}")
        session = opened.headers["mcp-session-id"]
        assert post(f"Bearer {TOKENS['bob']}", session=session).status_code == 404
        assert post(f"Bearer {OPERATOR}", session=session).status_code == 404
        assert post(f"Bearer {TOKENS['alice']}", session=session).status_code == 200


AGENT = '''
import asyncio, os, sys
import httpx2
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

async def main():
    own, other = os.environ["AGENTDECK_RUN_ID"], sys.argv[1]
    http = httpx2.AsyncClient(headers={"Authorization": "Bearer " + os.environ["AGENTDECK_TOKEN"]}, timeout=60)
    async with http, Client(streamable_http_client(os.environ["AGENTDECK_URL"], http_client=http)) as client:
        await client.call_tool("send_channel_message", {"channel": "team", "body": "hello from my run"})
        child = await client.call_tool("spawn_agent", {"agent": "echo", "prompt": "grandchild", "parent_run_id": own})
        print("own parent:", "refused" if child.is_error else "spawned", flush=True)
        theft = await client.call_tool("spawn_agent", {"agent": "echo", "prompt": "theft", "parent_run_id": other})
        print("other parent:", theft.structured_content["code"] if theft.is_error else "spawned", flush=True)

asyncio.run(main())
'''


async def test_a_spawned_agent_connects_as_its_own_run_and_spends_only_its_own_budget(tmp_path: Path) -> None:
    script = tmp_path / "agent.py"
    script.write_text(AGENT)
    env = _env(tmp_path)
    config = tmp_path / "agentdeck.toml"
    python = sys.executable.replace("\\", "\\\\")
    config.write_text(config.read_text() + f'\n[backends.local.agents.client]\ncommand = ["{python}", "{script}", "{{prompt}}"]\n')
    with http_server(env) as url:
        async with _client(url, TOKENS["alice"]) as alice, _client(url, TOKENS["bob"]) as bob, _client(url, OPERATOR) as operator:
            with anyio.fail_after(90):
                mine = await call(alice, "spawn_agent", {"agent": "sleeper", "prompt": "x"})
                # bob may not spend the budget of alice's run; the operator (a bare token) may
                refused = await fail(bob, "spawn_agent", {"agent": "echo", "prompt": "x", "parent_run_id": mine["id"]})
                assert refused["code"] == "unauthorized" and mine["id"] in refused["message"]
                child = await call(operator, "spawn_agent", {"agent": "echo", "prompt": "c", "parent_run_id": mine["id"]})
                assert child["parent_run_id"] == mine["id"]
                # a follow-up of that child counts against the same budget
                assert (await fail(bob, "send_followup", {"run_id": child["id"], "message": "more"}))["code"] == "unauthorized"

                run = await call(alice, "spawn_agent", {"agent": "client", "prompt": mine["id"]})
                done = await call(alice, "wait_for_run", {"run_id": run["id"], "timeout_seconds": 50})
                events = await call(alice, "get_run_events", {"run_id": run["id"]})
                output = [e["text"] for e in events["events"] if e["kind"] == "stdout"]
                assert done["state"] == "succeeded", events
                assert output == ["own parent: spawned", "other parent: unauthorized"]
                got = await call(alice, "receive_channel_messages", {"channel": "team"})
                assert [(m["sender"], m["body"]) for m in got["messages"]] == [(run["id"], "hello from my run")]
                children = await call(alice, "list_runs", {"parent_run_id": run["id"]})
                assert [c["created_by"] for c in children["runs"]] == [run["id"]]
                await call(alice, "cancel_run", {"run_id": mine["id"]})


async def test_over_stdio_a_run_spends_only_its_own_spawn_budget(tmp_path: Path) -> None:
    async with local_client(config_for(tmp_path)) as operator:  # the user's own server: the operator
        own = await call(operator, "spawn_agent", {"agent": "echo", "prompt": "own"})
        other = await call(operator, "spawn_agent", {"agent": "echo", "prompt": "other"})
        async with local_client(config_for(tmp_path, own["id"], AGENTDECK_RUN_ID=own["id"])) as agent:  # that run's own agentdeck
            child = await call(agent, "spawn_agent", {"agent": "echo", "prompt": "child"})
            assert child["parent_run_id"] == own["id"] and child["created_by"] == own["id"]
            refused = await fail(agent, "spawn_agent", {"agent": "echo", "prompt": "theft", "parent_run_id": other["id"]})
            assert refused["code"] == "unauthorized" and other["id"] in refused["message"]
        assert (await call(operator, "spawn_agent", {"agent": "echo", "prompt": "ok", "parent_run_id": other["id"]}))["parent_run_id"] == other["id"]


def test_token_settings_name_the_entry_at_fault_and_never_the_token(tmp_path: Path) -> None:
    from agentdeck.config import load_config
    from agentdeck.errors import ConfigError

    write = tmp_path / "agentdeck.toml"
    write.write_text(agents_toml())
    for variable, expected in (
        ("alice:secret-0123456789abc,bad name:secret-1123456789abc", "AGENTDECK_HTTP_TOKENS entry 2: the identity before ':'"),
        ("alice:secret-0123456789abc,bob:secret-0123456789abc", "AGENTDECK_HTTP_TOKENS entry 2: this token is listed twice"),
    ):
        with pytest.raises(ConfigError) as refused:
            load_config(env=server_env(tmp_path, AGENTDECK_HTTP_TOKENS=variable))
        assert expected in str(refused.value) and "secret-" not in str(refused.value)
    write.write_text(agents_toml() + f'\n[http]\ntokens_file = "{tmp_path / "missing"}"\n')
    with pytest.raises(ConfigError, match="http.tokens_file: cannot read"):
        load_config(env=server_env(tmp_path))
    (tmp_path / "missing").write_text("# comment\n\n  dave:secret-2123456789abc  \nsecret-3123456789abc\n")
    tokens = load_config(env=server_env(tmp_path, AGENTDECK_HTTP_TOKENS="erin:secret-4123456789abc")).http.tokens
    assert [(t.identity, t.value.get_secret_value()) for t in tokens] == [
        ("erin", "secret-4123456789abc"),
        ("dave", "secret-2123456789abc"),
        (None, "secret-3123456789abc"),
    ]


def test_a_run_token_names_its_run_until_it_expires_and_only_under_its_key() -> None:
    from agentdeck.identity import RunTokens

    tokens = RunTokens("key-0123456789abcdef")
    token = tokens.issue("run_abc", 60)
    assert tokens.verify(token) == "run_abc"
    assert RunTokens("another-key-0123456789").verify(token) is None
    assert tokens.verify(token.replace("run_abc", "run_abd")) is None
    assert tokens.verify(tokens.issue("run_abc", -5)) is None
