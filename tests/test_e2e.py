"""End to end: `agentdeck serve` as a subprocess, driven by the SDK's client over stdio and HTTP.

Each transport runs the whole mission through every tool, as two identities sharing one data
dir, in both protocol eras (2026-07-28 discovery and the legacy initialize handshake).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from mcp import Client

from tests.helpers import call, fail, http_server, local_tool_names, server_env, stdio_params, write_config


@contextlib.asynccontextmanager
async def _sessions(transport: str, tmp_path: Path, mode: str) -> AsyncIterator[tuple[Client, Client]]:
    write_config(tmp_path)
    if transport == "stdio":
        async with Client(stdio_params(server_env(tmp_path, "planner")), mode=mode) as a:  # type: ignore[arg-type]
            async with Client(stdio_params(server_env(tmp_path, "worker")), mode=mode) as b:  # type: ignore[arg-type]
                yield a, b
    else:
        with http_server(server_env(tmp_path, "planner")) as url_a, http_server(server_env(tmp_path, "worker")) as url_b:
            async with Client(url_a, mode=mode) as a, Client(url_b, mode=mode) as b:  # type: ignore[arg-type]
                yield a, b


@pytest.mark.parametrize("mode", ["auto", "legacy"])
@pytest.mark.parametrize("transport", ["stdio", "http"])
async def test_every_tool_works_through_a_real_client_session(transport: str, mode: str, tmp_path: Path) -> None:
    used: set[str] = set()

    async def use(client: Client, tool: str, args: dict[str, object] | None = None) -> dict[str, object]:
        used.add(tool)
        return await call(client, tool, args)

    async with _sessions(transport, tmp_path, mode) as (planner, worker):
        listed = [t.name for t in (await planner.list_tools()).tools]
        assert listed == local_tool_names()

        agents = await use(planner, "list_agents")
        assert "echo" in [a["name"] for a in agents["agents"]]  # type: ignore[index]
        run = await use(planner, "spawn_agent", {"agent": "echo", "prompt": "hello\nworld"})
        done = await use(planner, "wait_for_run", {"run_id": run["id"], "timeout_seconds": 30})
        assert done["state"] == "succeeded"
        assert (await use(worker, "get_run", {"run_id": run["id"]}))["state"] == "succeeded"
        events = await use(planner, "get_run_events", {"run_id": run["id"]})
        assert [e["text"] for e in events["events"] if e["kind"] == "stdout"] == ["hello", "world"]  # type: ignore[index]
        turn = await use(planner, "send_followup", {"run_id": run["id"], "message": "again"})
        assert turn["followup_of"] == run["id"]
        sleeper = await use(planner, "spawn_agent", {"agent": "sleeper", "prompt": "x"})
        assert (await use(worker, "cancel_run", {"run_id": sleeper["id"]}))["state"] == "cancelled"
        runs = await use(planner, "list_runs", {"limit": 10})
        assert {run["id"], turn["id"], sleeper["id"]} <= {r["id"] for r in runs["runs"]}  # type: ignore[index]

        sent = await use(planner, "send_channel_message", {"channel": "general", "body": "who reviews?"})
        got = await use(worker, "receive_channel_messages", {"channel": "general", "wait_seconds": 5})
        assert [m["id"] for m in got["messages"]] == [sent["id"]]  # type: ignore[index]
        assert [c["name"] for c in (await use(worker, "list_channels"))["channels"]] == ["general"]  # type: ignore[index]

        task = await use(planner, "create_task", {"title": "review", "max_attempts": 2})
        lease = (await use(worker, "claim_task", {}))["lease"]
        assert lease["task"]["id"] == task["id"]  # type: ignore[index]
        token = {"run_id": lease["run_id"], "claim_token": lease["claim_token"]}  # type: ignore[index]
        await use(worker, "heartbeat_task", token)
        assert (await use(worker, "release_task", token))["state"] == "queued"
        lease = (await use(worker, "claim_task", {}))["lease"]
        token = {"run_id": lease["run_id"], "claim_token": lease["claim_token"]}  # type: ignore[index]
        assert (await use(worker, "fail_task", token | {"error": "flaky"}))["state"] == "queued"
        lease = (await use(worker, "claim_task", {}))["lease"]
        token = {"run_id": lease["run_id"], "claim_token": lease["claim_token"]}  # type: ignore[index]
        assert (await use(worker, "complete_task", token | {"result": "ok"}))["state"] == "completed"
        stale = await fail(worker, "complete_task", token)
        assert stale["code"] == "lease_lost"

        assert [r["name"] for r in (await use(planner, "list_routines"))["routines"]] == ["greet"]  # type: ignore[index]
        invoked = await use(planner, "invoke_routine", {"routine": "greet", "message": "you", "idempotency_key": "once"})
        again = await use(worker, "invoke_routine", {"routine": "greet", "message": "you", "idempotency_key": "once"})
        assert invoked["id"] == again["id"]
        routine_runs = await use(planner, "list_routine_runs", {"routine": "greet"})
        assert [r["id"] for r in routine_runs["runs"]] == [invoked["id"]]  # type: ignore[index]

        context = await planner.read_resource("agentdeck://context")
        assert '"identity": "planner"' in context.contents[0].text  # type: ignore[union-attr]
        run_resource = await worker.read_resource(f"agentdeck://runs/{run['id']}")
        assert '"succeeded"' in run_resource.contents[0].text  # type: ignore[union-attr]
        events_resource = await worker.read_resource(f"agentdeck://runs/{run['id']}/events")
        assert "world" in events_resource.contents[0].text  # type: ignore[union-attr]

    assert used == set(local_tool_names())


async def test_stdio_progress_notifications_reach_the_client_while_waiting(tmp_path: Path) -> None:
    write_config(tmp_path)
    seen: list[str] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        seen.append(message or "")

    async with Client(stdio_params(server_env(tmp_path))) as client:
        run = await call(client, "spawn_agent", {"agent": "sleeper", "prompt": "x"})
        await call(client, "wait_for_run", {"run_id": run["id"], "timeout_seconds": 2}, progress_callback=on_progress)
        await call(client, "cancel_run", {"run_id": run["id"]})
    assert seen and all(run["id"] in m for m in seen)
