"""Two `agentdeck serve --http --stateless` replicas on one PostgreSQL store answer one client.

Every HTTP request of the client goes to the other replica than the one before, as behind a
load balancer without sticky sessions, in both protocol eras (2026-07-28 and the 2025 initialize
handshake): run ids, claim tokens, list cursors and channel cursors made on one replica work on
the other, and a receive waiting on one replica wakes when a third process sends.
"""

from __future__ import annotations

import itertools
from collections import Counter
from pathlib import Path

import anyio
import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from tests.helpers import call, config_for, fail, http_server, local_client, server_env, write_config


class _RoundRobin(httpx2.AsyncBaseTransport):
    """Sends each request to the next replica in turn, Host header and all."""

    def __init__(self, ports: list[int]) -> None:
        self._next = itertools.cycle(ports)
        self._inner = httpx2.AsyncHTTPTransport()
        self.served: Counter[int] = Counter()

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        port = next(self._next)
        request.url = request.url.copy_with(port=port)
        request.headers["Host"] = f"127.0.0.1:{port}"
        self.served[port] += 1
        return await self._inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self._inner.aclose()


def _port(url: str) -> int:
    return int(url.split(":")[2].split("/")[0])


@pytest.mark.parametrize("mode", ["2026-07-28", "legacy"])
async def test_one_client_alternating_between_two_stateless_replicas_sees_one_platform(mode: str, postgres_url: str, tmp_path: Path) -> None:
    replicas = [tmp_path / "a", tmp_path / "b"]  # separate machines as far as files go
    for directory in replicas:
        directory.mkdir()
        write_config(directory)
    envs = [server_env(d, "client", AGENTDECK_STORE=postgres_url) for d in replicas]
    with http_server(envs[0], "--stateless") as url_a, http_server(envs[1], "--stateless") as url_b:
        balancer = _RoundRobin([_port(url_a), _port(url_b)])
        async with (
            httpx2.AsyncClient(transport=balancer, timeout=httpx2.Timeout(60)) as http,
            Client(streamable_http_client(url_a, http_client=http), mode=mode) as client,
            local_client(config_for(tmp_path, "peer", AGENTDECK_STORE=postgres_url)) as peer,
        ):
            # tasks: the claim token from one replica settles the task on the other
            created = await call(client, "create_task", {"title": "review", "queue": "replicas"})
            lease = (await call(client, "claim_task", {"queue": "replicas"}))["lease"]
            assert lease["task"]["id"] == created["id"]
            token = {"run_id": lease["run_id"], "claim_token": lease["claim_token"]}
            await call(client, "heartbeat_task", token)
            assert (await call(client, "complete_task", token | {"result": {"ok": True}}))["state"] == "completed"
            assert (await fail(client, "complete_task", token))["code"] == "lease_lost"

            # runs: spawned through one replica, followed and cancelled through the other
            run = await call(client, "spawn_agent", {"agent": "echo", "prompt": "one\ntwo"})
            done = await call(client, "wait_for_run", {"run_id": run["id"], "timeout_seconds": 30})
            assert done["state"] == "succeeded"
            events = await call(client, "get_run_events", {"run_id": run["id"]})
            assert [e["text"] for e in events["events"] if e["kind"] == "stdout"] == ["one", "two"]
            sleeper = await call(client, "spawn_agent", {"agent": "sleeper", "prompt": "x"})
            assert (await call(client, "cancel_run", {"run_id": sleeper["id"]}))["state"] == "cancelled"
            first_page = await call(client, "list_runs", {"limit": 1})
            second_page = await call(client, "list_runs", {"limit": 1, "cursor": first_page["next_cursor"]})
            assert [r["id"] for r in first_page["runs"] + second_page["runs"]] == [sleeper["id"], run["id"]]

            # channels: one reader cursor, whichever replica answers; a wait wakes across processes
            for i in range(3):
                await call(peer, "send_channel_message", {"channel": "ops", "body": f"m{i}"})
            bodies = [(await call(client, "receive_channel_messages", {"channel": "ops", "limit": 1}))["messages"][0]["body"] for _ in range(3)]
            assert bodies == ["m0", "m1", "m2"]
            got: dict[str, object] = {}

            async def receive() -> None:
                got["batch"] = await call(client, "receive_channel_messages", {"channel": "ops", "wait_seconds": 30})

            with anyio.fail_after(20):
                async with anyio.create_task_group() as tg:
                    tg.start_soon(receive)
                    await anyio.sleep(0.5)  # let the receive start waiting on its replica
                    sent_at = anyio.current_time()
                    await call(peer, "send_channel_message", {"channel": "ops", "body": "wake"})
                latency = anyio.current_time() - sent_at
            assert [m["body"] for m in got["batch"]["messages"]] == ["wake"]  # type: ignore[index]
            assert latency < 5.0  # NOTIFY, not the listening replica's 10 s fallback poll
        assert min(balancer.served.values()) >= 5 and len(balancer.served) == 2
