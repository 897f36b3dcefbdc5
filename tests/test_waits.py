"""Waiting tools stay within a client's request timeout: progress while they wait, a configurable cap."""

from __future__ import annotations

import time
from pathlib import Path

import anyio
import pytest

from tests.helpers import call, config_for, local_client

# The issue asks for a notification at least every 2 s; the server aims at 1 s to leave room.
LONGEST_SILENCE = 2.0

WAITS = [
    ("wait_for_run", lambda run_id: {"run_id": run_id, "timeout_seconds": 5}),
    ("receive_channel_messages", lambda run_id: {"channel": "quiet", "wait_seconds": 5}),
]


@pytest.mark.parametrize(("tool", "arguments"), WAITS, ids=[w[0] for w in WAITS])
async def test_a_waiting_tool_sends_progress_at_least_every_two_seconds(tool: str, arguments: object, tmp_path: Path) -> None:
    arrivals: list[float] = []

    async def on_progress(value: float, total: float | None, message: str | None) -> None:
        arrivals.append(time.monotonic())

    async with local_client(config_for(tmp_path)) as client:
        run = await call(client, "spawn_agent", {"agent": "sleeper", "prompt": "x"})
        started = time.monotonic()
        with anyio.fail_after(30):
            await call(client, tool, arguments(run["id"]), progress_callback=on_progress)  # type: ignore[operator]
        ended = time.monotonic()
        await call(client, "cancel_run", {"run_id": run["id"]})
    assert ended - started >= 4.5, "the call did not wait"
    gaps = [b - a for a, b in zip([started, *arrivals], [*arrivals, ended], strict=True)]
    assert max(gaps) <= LONGEST_SILENCE, f"silent for {max(gaps):.1f} s while waiting; gaps {[round(g, 1) for g in gaps]}"


async def test_max_wait_seconds_caps_every_wait_and_default_and_is_published(tmp_path: Path) -> None:
    config = config_for(tmp_path, AGENTDECK_MAX_WAIT_SECONDS="2")
    async with local_client(config) as client:
        tools = {tool.name: tool.input_schema for tool in (await client.list_tools()).tools}
        assert (tools["wait_for_run"]["properties"]["timeout_seconds"]["maximum"], tools["wait_for_run"]["properties"]["timeout_seconds"]["default"]) == (2, 2)
        assert tools["receive_channel_messages"]["properties"]["wait_seconds"]["maximum"] == 2

        run = await call(client, "spawn_agent", {"agent": "sleeper", "prompt": "x"})
        for tool, arguments in [
            ("wait_for_run", {"run_id": run["id"]}),  # its default of 30 s
            ("wait_for_run", {"run_id": run["id"], "timeout_seconds": 40}),  # asked for more than the cap
            ("receive_channel_messages", {"channel": "quiet", "wait_seconds": 40}),
        ]:
            started = time.monotonic()
            with anyio.fail_after(20):
                result = await call(client, tool, arguments)
            waited = time.monotonic() - started
            assert 1.5 <= waited < 10, f"{tool} waited {waited:.1f} s with max_wait_seconds = 2"
            assert result.get("state", "running") == "running" and result.get("messages", []) == []
        await call(client, "cancel_run", {"run_id": run["id"]})
