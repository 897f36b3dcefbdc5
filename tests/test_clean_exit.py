"""A session that ends leaves a clean exit: status 0 and nothing on stderr above info.

Client hosts (Claude Desktop's logs, IDE output panes) show the server's stderr to users, where a
traceback at exit reads as a crash. Each backend kind is served over stdio against its emulator (A2A against the a2a-sdk reference server),
called once, and the client closes; the same over HTTP ends with SIGTERM. Then sessions end while
a tool is still waiting: the server exits promptly and cleanly, and what it had accepted (the
run, the channel's messages) is still there for the next session.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client, MCPError, StdioServerParameters
from mcp.client.stdio import stdio_client

from tests.emulators import agent_os, agh, archastro, azure_foundry, oz
from tests.emulators.serving import serve_in_thread
from tests.helpers import agents_toml, call, free_port, server_env

KEYS = {"WARP_API_KEY": "k-oz", "ARCHASTRO_API_KEY": "k-aa", "AZURE_FOUNDRY_TOKEN": "k-az", "AGENT_OS_API_KEY": "k-os"}
AGH_IDENTITY = {"AGH_SESSION_ID": "sess-local", "AGH_AGENT": "local-agent"}

# kind -> (emulator factory or None, config body given the emulator's URL, a call it answers)
KINDS: dict[str, tuple[Any, str, tuple[str, dict[str, Any]]]] = {
    "local": (None, "", ("list_runs", {})),
    "agh": (lambda: agh.create_app(sweep_interval=3600), 'base_url = "{url}"', ("list_channels", {})),
    "oz": (oz.create_app, 'base_url = "{url}/api/v1"', ("list_runs", {})),
    "archastro": (archastro.create_app, 'base_url = "{url}"', ("list_runs", {})),
    "azure_foundry": (azure_foundry.create_app, 'endpoint = "{url}/api/projects/_project"', ("list_runs", {"agent": azure_foundry.DEFAULTS["agent"]})),
    "agent_os": (lambda: agent_os.create_app(api_key=KEYS["AGENT_OS_API_KEY"]), 'base_url = "{url}"', ("list_runs", {})),
    # the a2a-sdk reference server with a quoting agent (tests/a2a_agents.py), started below
    "a2a": (None, '[backends.a2a.agents]\nquoter = "{url}"', ("list_agents", {})),
}

# What a clean stderr may hold: nothing at warning level or above, and no traceback.
BAD_MARKS = ("Traceback", " WARNING ", " ERROR ", " CRITICAL ", "Exception", "RuntimeError")


def assert_clean(stderr: str) -> None:
    bad = [line for line in stderr.splitlines() if any(mark in line for mark in BAD_MARKS)]
    assert not bad, "stderr at exit:\n" + stderr


@contextlib.contextmanager
def backend_env(tmp_path: Path, kind: str) -> Iterator[tuple[dict[str, str], tuple[str, dict[str, Any]]]]:
    """The environment of a server whose default backend is `kind`, with its emulator running."""
    factory, body, tool = KINDS[kind]
    with contextlib.ExitStack() as stack:
        if kind == "local":
            toml = agents_toml()
        else:
            if kind == "a2a":
                from tests.test_backend_a2a import agents

                url = stack.enter_context(agents("quoter"))["quoter"][0]
            else:
                url = stack.enter_context(serve_in_thread(factory()))
            toml = f'default = "{kind}"\n\n[backends.{kind}]\nkind = "{kind}"\n{body.format(url=url)}\n'
        (tmp_path / "agentdeck.toml").write_text(toml)
        # info level: the server's own start-up lines are allowed, anything louder is not
        env = server_env(tmp_path, AGENTDECK_LOG_LEVEL="info", AGH_HOME=str(tmp_path / "agh"), **KEYS, **AGH_IDENTITY)
        yield env, tool


def exit_recorder(status_file: Path) -> StdioServerParameters:
    """`agentdeck serve` behind a tiny parent that writes the server's exit status to a file.

    The SDK's stdio client does not expose the process; the parent shares its stdin and stdout
    with the server, so the session is the server's own.
    """
    script = (
        "import subprocess, sys; "
        "rc = subprocess.call([sys.executable, '-m', 'agentdeck', 'serve']); "
        f"open({str(status_file)!r}, 'w').write(str(rc))"
    )
    return StdioServerParameters(command=sys.executable, args=["-c", script])


async def stdio_session_then_close(env: dict[str, str], tmp_path: Path, body: Any) -> tuple[int, str, float]:
    """Run `body(client)` in a stdio session, close the client; the server's status, stderr and exit time."""
    status_file, log = tmp_path / "status", tmp_path / "stderr.log"
    params = exit_recorder(status_file)
    params.env = env
    with log.open("w") as errlog:
        async with Client(stdio_client(params, errlog=errlog)) as client:
            await body(client)
            closed = time.monotonic()
    with anyio.fail_after(15):
        while not status_file.exists() or not status_file.read_text():
            await anyio.sleep(0.05)
    return int(status_file.read_text()), log.read_text(), time.monotonic() - closed


@pytest.mark.parametrize("kind", list(KINDS))
async def test_stdio_session_ends_cleanly_on_every_backend(tmp_path: Path, kind: str) -> None:
    with backend_env(tmp_path, kind) as (env, tool):

        async def one_call(client: Client) -> None:
            await call(client, *tool)

        status, stderr, _ = await stdio_session_then_close(env, tmp_path, one_call)
    assert status == 0, stderr
    assert_clean(stderr)


@contextlib.contextmanager
def http_process(env: dict[str, str]) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "agentdeck", "serve", "--http", "--port", str(port)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        import httpx2

        deadline = time.monotonic() + 20
        while True:
            assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
            with contextlib.suppress(httpx2.TransportError):
                if httpx2.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                    break
            assert time.monotonic() < deadline, "server did not start"
            time.sleep(0.05)
        yield f"http://127.0.0.1:{port}/mcp", proc
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)


def terminate(proc: subprocess.Popen[bytes]) -> tuple[int, str, float]:
    sent = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    status = proc.wait(15)
    return status, proc.stderr.read().decode() if proc.stderr else "", time.monotonic() - sent


@pytest.mark.parametrize("kind", list(KINDS))
async def test_http_server_stops_cleanly_on_sigterm_on_every_backend(tmp_path: Path, kind: str) -> None:
    with backend_env(tmp_path, kind) as (env, tool), http_process(env) as (url, proc):
        async with Client(url) as client:
            await call(client, *tool)
        status, stderr, _ = terminate(proc)
    assert status == 0, stderr
    assert_clean(stderr)


async def test_stdio_session_that_ends_during_waits_exits_promptly_and_loses_nothing(tmp_path: Path) -> None:
    with backend_env(tmp_path, "local") as (env, _):
        run: dict[str, Any] = {}

        async def leave_while_waiting(client: Client) -> None:
            run.update(await call(client, "spawn_agent", {"agent": "sleeper", "prompt": "stay"}))
            async with anyio.create_task_group() as tg:
                tg.start_soon(client.call_tool, "wait_for_run", {"run_id": run["id"], "timeout_seconds": 45})
                tg.start_soon(client.call_tool, "receive_channel_messages", {"channel": "exits", "wait_seconds": 45})
                await anyio.sleep(1)  # both calls are now waiting on the server
                tg.cancel_scope.cancel()  # the client goes away mid-wait

        status, stderr, took = await stdio_session_then_close(env, tmp_path, leave_while_waiting)
        assert status == 0, stderr
        assert_clean(stderr)
        assert took < 5, f"the server took {took:.1f} s to exit"

        # Nothing accepted is lost: the run goes on under its supervisor, and the channel still
        # delivers to this reader what another identity sends after the wait was cut off.
        sender = {**env, "AGENTDECK_IDENTITY": "other"}
        async with Client(stdio_client(StdioServerParameters(command=sys.executable, args=["-m", "agentdeck", "serve"], env=sender))) as client:
            await call(client, "send_channel_message", {"channel": "exits", "body": "still here"})
        async with Client(stdio_client(StdioServerParameters(command=sys.executable, args=["-m", "agentdeck", "serve"], env=env))) as client:
            got = await call(client, "receive_channel_messages", {"channel": "exits"})
            assert [m["body"] for m in got["messages"]] == ["still here"]
            now = await call(client, "get_run", {"run_id": run["id"]})
            assert now["state"] == "running"
            await call(client, "cancel_run", {"run_id": run["id"]})


async def test_http_server_stops_promptly_on_sigterm_while_a_tool_waits(tmp_path: Path) -> None:
    with backend_env(tmp_path, "local") as (env, _), http_process(env) as (url, proc):
        async with Client(url) as client:
            run = await call(client, "spawn_agent", {"agent": "sleeper", "prompt": "stay"})
            cut_off: list[BaseException] = []

            async def wait() -> None:
                try:
                    await client.call_tool("wait_for_run", {"run_id": run["id"], "timeout_seconds": 45})
                except MCPError as exc:  # the server went away mid-call: the client is told so
                    cut_off.append(exc)

            async with anyio.create_task_group() as tg:
                tg.start_soon(wait)
                await anyio.sleep(1)
                status, stderr, took = await anyio.to_thread.run_sync(terminate, proc)
                tg.cancel_scope.cancel()
        assert status == 0, stderr
        assert_clean(stderr)
        assert took < 10, f"the server took {took:.1f} s to stop"
        async with Client(stdio_client(StdioServerParameters(command=sys.executable, args=["-m", "agentdeck", "serve"], env=env))) as client:
            assert (await call(client, "get_run", {"run_id": run["id"]}))["state"] == "running"
            await call(client, "cancel_run", {"run_id": run["id"]})


def test_exit_recorder_reports_a_failing_server(tmp_path: Path) -> None:
    """The harness itself: a server that cannot start is seen as a non-zero status."""
    (tmp_path / "agentdeck.toml").write_text("this is not toml = = =")
    env = server_env(tmp_path)
    params = exit_recorder(tmp_path / "status")
    proc = subprocess.run([params.command, *params.args], env=env, input=b"", capture_output=True, timeout=30)
    assert proc.returncode == 0  # the recorder itself ends normally...
    assert json.loads((tmp_path / "status").read_text()) != 0  # ...and records the server's failure
    assert os.path.getsize(tmp_path / "status") > 0


def test_http_server_stops_cleanly_with_a_live_dashboard_page_open(tmp_path: Path) -> None:
    import httpx2

    with backend_env(tmp_path, "local") as (env, _), http_process(env) as (url, proc):
        live = url.rsplit("/", 1)[0] + "/ui/live/"
        with httpx2.stream("GET", live, timeout=30) as response:
            assert response.status_code == 200
            next(response.iter_lines())  # the page's first fragment: the stream is open
            status, stderr, took = terminate(proc)
    assert status == 0, stderr
    assert_clean(stderr)
    assert took < 10, f"the server took {took:.1f} s to stop"
