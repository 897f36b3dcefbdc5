"""A failure nobody planned for (here: the store broken under a running server) is logged with its
traceback on the server's stderr, and reaches the client as one generic internal error that
names no detail, the same for a tool call and a resource read; the server keeps serving."""

from __future__ import annotations

import contextlib
import sqlite3
from pathlib import Path

import anyio
import pytest
from mcp import Client, MCPError
from mcp.client.stdio import stdio_client

from tests.helpers import call, fail, server_env, stdio_params, write_config

INTERNAL = "agentdeck hit an unexpected error; it is logged on the server's stderr. Try again or report it."


async def test_an_unexpected_failure_is_one_generic_error_for_tools_and_resources_with_its_traceback_on_stderr(tmp_path: Path) -> None:
    write_config(tmp_path)
    log = tmp_path / "stderr.log"
    with log.open("w") as errlog, anyio.fail_after(60):
        async with Client(stdio_client(stdio_params(server_env(tmp_path)), errlog=errlog)) as client:
            await call(client, "list_runs")
            with contextlib.closing(sqlite3.connect(tmp_path / "data" / "agentdeck.db", timeout=30)) as db:
                db.execute("DROP TABLE runs")
            tool_error = await fail(client, "get_run", {"run_id": "run_gone"})
            with pytest.raises(MCPError) as resource_error:
                await client.read_resource("agentdeck://runs/run_gone")
            await call(client, "list_channels")
    assert tool_error == {"code": "internal", "message": INTERNAL, "retryable": False}
    assert resource_error.value.error.message == f"internal: {INTERNAL}"
    stderr = log.read_text()
    assert "tool get_run failed unexpectedly" in stderr and "resource agentdeck://runs/run_gone failed unexpectedly" in stderr
    assert stderr.count("Traceback") == 2 and stderr.count("no such table: runs") >= 2
