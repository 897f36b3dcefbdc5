"""The stdio wire: only protocol messages on stdout, whichever way stdin and stdout are connected.

agentdeck reads and writes stdin and stdout on its event loop when both are pipes (stdio.py), and
falls back to the SDK's transport otherwise. Either way a stray write to fd 1, by the server's
own code or a child process, lands on stderr, and an answer is written out before the server
exits at the end of its input.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from mcp import Client, StdioServerParameters
from mcp.client.stdio import stdio_client

from tests.helpers import server_env, write_config

NOISY_SERVER = textwrap.dedent(
    """
    import os, subprocess, sys

    import anyio
    from mcp.server.mcpserver import MCPServer

    from agentdeck.stdio import serve_stdio

    server = MCPServer("noisy")


    @server.tool()
    async def noisy(text: str) -> str:
        print("stray print from the tool")
        os.write(1, b"stray write to fd 1\\n")
        subprocess.run([sys.executable, "-c", "print('stray output of a child process')"], check=True)
        return text


    anyio.run(serve_stdio, server)
    """
)


async def test_stray_output_of_a_tool_and_its_children_goes_to_stderr_not_the_wire(tmp_path: Path) -> None:
    script = tmp_path / "noisy.py"
    script.write_text(NOISY_SERVER)
    errlog = (tmp_path / "stderr.txt").open("w")
    params = StdioServerParameters(command=sys.executable, args=[str(script)], env=server_env(tmp_path))
    with errlog:
        async with Client(stdio_client(params, errlog=errlog)) as client:
            for n in range(3):
                result = await client.call_tool("noisy", {"text": f"answer {n}"})
                assert not result.is_error
                assert result.content[0].text == f"answer {n}"  # type: ignore[union-attr]
    stderr = (tmp_path / "stderr.txt").read_text()
    for stray in ("stray print from the tool", "stray write to fd 1", "stray output of a child process"):
        assert stderr.count(stray) == 3, stderr


INITIALIZE = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "script", "version": "1"}}}
INITIALIZED = {"jsonrpc": "2.0", "method": "notifications/initialized"}
LIST_TOOLS = {"jsonrpc": "2.0", "id": 2, "method": "tools/list"}


def _lines(*messages: object) -> str:
    return "".join(json.dumps(message) + "\n" for message in messages)


@pytest.mark.parametrize("stderr", ["own pipe", "same pipe as stdout"])
def test_a_scripted_session_over_pipes_is_answered_and_ends_cleanly(tmp_path: Path, stderr: str) -> None:
    """Pipes with stderr apart are served on the event loop; stderr sharing stdout's pipe by the SDK's transport."""
    write_config(tmp_path)
    proc = subprocess.Popen(
        [sys.executable, "-m", "agentdeck", "serve"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE if stderr == "own pipe" else subprocess.STDOUT,
        text=True,
        env=server_env(tmp_path),
    )
    assert proc.stdin is not None and proc.stdout is not None
    try:
        proc.stdin.write(_lines(INITIALIZE, INITIALIZED, LIST_TOOLS))
        proc.stdin.flush()
        answers = {}
        while 2 not in answers:
            line = proc.stdout.readline()
            assert line, "the server closed stdout before answering"
            message = json.loads(line)  # anything but protocol messages on stdout fails here
            answers[message["id"]] = message
        proc.stdin.close()  # the client leaves: the server exits
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    assert answers[1]["result"]["serverInfo"]["name"] == "agentdeck"
    assert "claim_task" in {tool["name"] for tool in answers[2]["result"]["tools"]}
    rest = proc.stdout.read() + (proc.stderr.read() if proc.stderr else "")
    assert "Traceback" not in rest, rest


def test_a_session_read_from_a_file_is_answered_and_ends_at_its_end(tmp_path: Path) -> None:
    """stdin a regular file: the SDK's transport. The handshake is answered before the next line is read."""
    write_config(tmp_path)
    source = tmp_path / "requests.jsonl"
    source.write_text(_lines(INITIALIZE))
    with source.open() as handle:
        done = subprocess.run([sys.executable, "-m", "agentdeck", "serve"], stdin=handle, capture_output=True, text=True, env=server_env(tmp_path), timeout=60)
    assert done.returncode == 0, done.stderr
    assert [json.loads(line)["result"]["serverInfo"]["name"] for line in done.stdout.splitlines()] == ["agentdeck"]
    assert "Traceback" not in done.stderr
