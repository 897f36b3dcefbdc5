"""Logs go to stderr (stdout is the protocol), as text or JSON lines, one per tool call with its
duration and outcome and never the arguments' values."""

from __future__ import annotations

import json
from pathlib import Path

from mcp import Client
from mcp.client.stdio import stdio_client

from tests.helpers import server_env, stdio_params, write_config


async def test_each_tool_call_is_logged_as_json_with_outcome_and_duration_but_no_argument_values(tmp_path: Path) -> None:
    write_config(tmp_path)
    env = server_env(tmp_path, AGENTDECK_LOG_LEVEL="info")
    log = tmp_path / "stderr.log"
    with log.open("w") as errlog:
        async with Client(stdio_client(stdio_params(env, "--log-format", "json"), errlog=errlog)) as client:
            await client.call_tool("get_run", {"run_id": "run_do-not-log-me"})
            await client.call_tool("send_channel_message", {"channel": "general", "body": "password=hunter2"})
    lines = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    assert lines, log.read_text()
    calls = [entry["message"] for entry in lines if entry["logger"] == "agentdeck.tools"]
    assert any(m.startswith("tool get_run not_found in ") and m.endswith(" ms") for m in calls), calls
    assert any(m.startswith("tool send_channel_message ok in ") for m in calls), calls
    text = log.read_text()
    assert "run_do-not-log-me" not in text and "hunter2" not in text
