"""Live notifications: a client subscribed to a run or a channel hears when another process changes it.

Each test subscribes through a real MCP client session, in both protocol eras (2026-07-28
`subscriptions/listen` and the legacy `resources/subscribe`), and makes the change from another
OS process: a second agentdeck server with another identity sharing the store, or another
replica on the same PostgreSQL.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from mcp import Client

from tests.helpers import call, http_server, server_env, stdio_params, write_config
from tests.subscribing import subscribed

MODES = ["2026-07-28", "legacy"]
CHANNEL = "agentdeck://channels/ops"


async def _read(client: Client, uri: str) -> dict:  # type: ignore[type-arg]
    result = await client.read_resource(uri)
    return json.loads(result.contents[0].text)  # type: ignore[union-attr]


@pytest.mark.parametrize("mode", MODES)
async def test_a_subscriber_hears_channel_and_run_changes_made_by_another_process(mode: str, tmp_path: Path) -> None:
    write_config(tmp_path)
    async with Client(stdio_params(server_env(tmp_path, "peer"))) as peer:
        sleeper = await call(peer, "spawn_agent", {"agent": "sleeper", "prompt": "x"})
        run_uri = f"agentdeck://runs/{sleeper['id']}"
        uris = [CHANNEL, run_uri, f"{run_uri}/events"]
        async with subscribed(stdio_params(server_env(tmp_path, "watcher")), mode, uris) as (client, updates):
            await call(peer, "send_channel_message", {"channel": "ops", "body": "deploy done"})
            await updates.wait_for(CHANNEL)
            assert [m["body"] for m in (await _read(client, CHANNEL))["messages"]] == ["deploy done"]

            await call(peer, "cancel_run", {"run_id": sleeper["id"]})
            await updates.wait_for(run_uri)
            await updates.wait_for(f"{run_uri}/events")
            assert (await _read(client, run_uri))["state"] == "cancelled"


@pytest.mark.parametrize("mode", MODES)
async def test_a_client_never_hears_of_its_own_channel_messages(mode: str, tmp_path: Path) -> None:
    write_config(tmp_path)
    async with (
        Client(stdio_params(server_env(tmp_path, "peer"))) as peer,
        subscribed(stdio_params(server_env(tmp_path, "watcher")), mode, [CHANNEL]) as (client, updates),
    ):
        await call(client, "send_channel_message", {"channel": "ops", "body": "mine"})
        # Longer than the watcher's fallback look at the store (1 s): it has seen the message by then.
        assert [u for u in await updates.none_within(2.5) if u != "list_changed"] == []
        await call(peer, "send_channel_message", {"channel": "ops", "body": "theirs"})
        await updates.wait_for(CHANNEL)


@pytest.mark.parametrize("mode", MODES)
async def test_after_a_dropped_connection_resubscribing_and_rereading_misses_nothing(mode: str, tmp_path: Path) -> None:
    write_config(tmp_path)
    with http_server(server_env(tmp_path, "watcher")) as url:
        async with Client(stdio_params(server_env(tmp_path, "peer"))) as peer:
            async with subscribed(url, mode, [CHANNEL]) as (client, updates):
                await call(peer, "send_channel_message", {"channel": "ops", "body": "m1"})
                await updates.wait_for(CHANNEL)
                assert [m["body"] for m in (await call(client, "receive_channel_messages", {"channel": "ops"}))["messages"]] == ["m1"]
            # the connection is gone; meanwhile two more messages land
            for body in ("m2", "m3"):
                await call(peer, "send_channel_message", {"channel": "ops", "body": body})
            async with subscribed(url, mode, [CHANNEL]) as (client, updates):
                # re-read after subscribing: what landed while away is there
                assert [m["body"] for m in (await call(client, "receive_channel_messages", {"channel": "ops"}))["messages"]] == ["m2", "m3"]
                await call(peer, "send_channel_message", {"channel": "ops", "body": "m4"})
                await updates.wait_for(CHANNEL)
                assert [m["body"] for m in (await call(client, "receive_channel_messages", {"channel": "ops"}))["messages"]] == ["m4"]


async def test_a_listener_hears_when_the_set_of_runs_or_channels_changes(tmp_path: Path) -> None:
    write_config(tmp_path)
    async with (
        Client(stdio_params(server_env(tmp_path, "peer"))) as peer,
        subscribed(stdio_params(server_env(tmp_path, "watcher")), "2026-07-28", []) as (_, updates),
    ):
        await call(peer, "send_channel_message", {"channel": "brand-new", "body": "hello"})
        await updates.wait_for("list_changed")
        await call(peer, "spawn_agent", {"agent": "echo", "prompt": "hi"})
        await updates.wait_for("list_changed")


@pytest.mark.parametrize("mode", MODES)
async def test_replicas_on_postgresql_notify_subscribers_of_changes_made_on_another_replica(mode: str, postgres_url: str, tmp_path: Path) -> None:
    replicas = [tmp_path / "a", tmp_path / "b"]
    for directory in replicas:
        directory.mkdir()
        write_config(directory)
    key = "k" * 16 + "0123456789abcdef"  # one request-state key shared by both replicas
    envs = [server_env(d, identity, AGENTDECK_STORE=postgres_url, AGENTDECK_REQUEST_STATE_KEYS=key) for d, identity in zip(replicas, ("watcher", "peer"), strict=True)]
    # A legacy subscription needs a session to push on, so its replica keeps session state.
    listening_args = ["--stateless"] if mode != "legacy" else []
    with http_server(envs[0], *listening_args) as url_a, http_server(envs[1], "--stateless") as url_b:
        async with Client(url_b) as peer:
            sleeper = await call(peer, "spawn_agent", {"agent": "sleeper", "prompt": "x"})
            run_uri = f"agentdeck://runs/{sleeper['id']}"
            async with subscribed(url_a, mode, [CHANNEL, run_uri]) as (client, updates):
                await call(peer, "send_channel_message", {"channel": "ops", "body": "from b"})
                await updates.wait_for(CHANNEL)
                assert [m["body"] for m in (await _read(client, CHANNEL))["messages"]] == ["from b"]
                await call(peer, "cancel_run", {"run_id": sleeper["id"]})
                await updates.wait_for(run_uri)
                assert (await _read(client, run_uri))["state"] == "cancelled"


def test_a_request_state_key_too_short_to_be_secret_is_refused_naming_the_variable(tmp_path: Path) -> None:
    from agentdeck.config import load_config
    from agentdeck.errors import ConfigError

    write_config(tmp_path)
    with pytest.raises(ConfigError, match="AGENTDECK_REQUEST_STATE_KEYS") as caught:
        load_config(env=server_env(tmp_path, AGENTDECK_REQUEST_STATE_KEYS="short-key"))
    assert "short-key" not in str(caught.value)


async def test_a_legacy_subscribe_to_a_stateless_server_is_refused_saying_what_works(tmp_path: Path) -> None:
    import warnings

    from mcp import MCPError

    write_config(tmp_path)
    with http_server(server_env(tmp_path), "--stateless") as url:
        async with Client(url, mode="legacy") as client:
            with warnings.catch_warnings(), pytest.raises(MCPError, match="subscriptions/listen") as caught:
                warnings.simplefilter("ignore")
                await client.subscribe_resource(CHANNEL)
            assert "without --stateless" in str(caught.value)
            assert (await call(client, "list_channels"))["channels"] == []  # the session goes on


@pytest.mark.parametrize("mode", MODES)
async def test_over_http_each_token_hears_the_others_messages_and_never_its_own(mode: str, tmp_path: Path) -> None:
    """Identity per HTTP client reaches the notifications: the filter uses the token's identity."""
    import httpx2
    from mcp.client.streamable_http import streamable_http_client

    tokens = {"alice": "alice-token-0123456789", "bob": "bob-token-0123456789ab"}
    write_config(tmp_path)
    env = server_env(tmp_path, AGENTDECK_HTTP_TOKENS=",".join(f"{name}:{token}" for name, token in tokens.items()))
    with http_server(env) as url:
        alice_http = httpx2.AsyncClient(headers={"Authorization": f"Bearer {tokens['alice']}"}, timeout=httpx2.Timeout(60))
        bob_http = httpx2.AsyncClient(headers={"Authorization": f"Bearer {tokens['bob']}"}, timeout=httpx2.Timeout(60))
        async with (
            alice_http,
            bob_http,
            Client(streamable_http_client(url, http_client=bob_http)) as bob,
            subscribed(streamable_http_client(url, http_client=alice_http), mode, [CHANNEL]) as (alice, updates),
        ):
            await call(alice, "send_channel_message", {"channel": "ops", "body": "from alice"})
            assert [u for u in await updates.none_within(2.5) if u != "list_changed"] == []
            await call(bob, "send_channel_message", {"channel": "ops", "body": "from bob"})
            await updates.wait_for(CHANNEL)
            assert "from bob" in [m["body"] for m in (await _read(alice, CHANNEL))["messages"]]
