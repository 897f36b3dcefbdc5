"""A client that gives up on wait_for_run cancels it on the server, which stops waiting at once."""

from __future__ import annotations

from pathlib import Path

import anyio
from mcp import Client
from mcp.client.stdio import stdio_client

from tests.helpers import call, server_env, stdio_params, write_config


async def test_cancelling_a_wait_stops_it_on_the_server_and_the_session_goes_on(tmp_path: Path) -> None:
    write_config(tmp_path)
    log = tmp_path / "stderr.log"
    with log.open("w") as errlog:
        async with Client(stdio_client(stdio_params(server_env(tmp_path, AGENTDECK_LOG_LEVEL="info")), errlog=errlog)) as client:
            run = await call(client, "spawn_agent", {"agent": "sleeper", "prompt": "x"})
            with anyio.move_on_after(1.0):
                await client.call_tool("wait_for_run", {"run_id": run["id"], "timeout_seconds": 45})
            with anyio.fail_after(10):
                while "tool wait_for_run cancelled" not in log.read_text():
                    await anyio.sleep(0.05)
            # Giving up on the wait leaves the run itself alone (on a busy machine it may not have started yet).
            assert (await call(client, "get_run", {"run_id": run["id"]}))["state"] in ("queued", "running")
            await call(client, "cancel_run", {"run_id": run["id"]})
