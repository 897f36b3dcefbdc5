"""No run left behind: a supervisor that dies is noticed by every reader, on any machine, and
nothing of its run outlives it.

Supervisors are SIGKILLed for real and the machine's processes are checked through /proc. A
second machine is an agentdeck server in a UTS namespace of its own (`unshare --uts`, root
only) with another host name, sharing the PostgreSQL store: that is how agentdeck tells
machines apart (the supervisor's host name beside its pid).
"""

from __future__ import annotations

import os
import shutil
import signal
import sys
import time
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client, StdioServerParameters

from agentdeck.backends.local.guard import run_processes
from tests.helpers import agents_toml, call, config_for, local_client, server_env, store_rows, use_store

pytestmark = pytest.mark.skipif(not Path("/proc").is_dir(), reason="checks processes through /proc")

TIMEOUT = 3  # supervisor_timeout_seconds in these tests


def _toml() -> str:
    return agents_toml().replace("cancel_grace_seconds = 1.0", f"cancel_grace_seconds = 1.0\nsupervisor_timeout_seconds = {TIMEOUT}")


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def _row(tmp_path: Path, run_id: str) -> dict[str, Any]:
    columns = ("supervisor_pid", "supervisor_host", "child_pid", "state")
    values = store_rows(tmp_path, f"SELECT {', '.join(columns)} FROM runs WHERE id = '{run_id}'")[0]
    return dict(zip(columns, values, strict=True))


async def _started_with_grandchild(client: Client, tmp_path: Path) -> dict[str, Any]:
    """A sleeper run whose agent has started its grandchild."""
    run = await call(client, "spawn_agent", {"agent": "sleeper", "prompt": "x"})
    with anyio.fail_after(30):
        while len(run_processes(run["id"])) < 2 or _row(tmp_path, run["id"])["state"] != "running":
            await anyio.sleep(0.05)
    return run


async def _gone(run_id: str, seconds: float = 15) -> None:
    with anyio.fail_after(seconds):
        while run_processes(run_id):
            await anyio.sleep(0.05)


@pytest.mark.usefixtures("store_url")
async def test_a_killed_supervisor_takes_its_agent_and_grandchildren_along(tmp_path: Path) -> None:
    async with local_client(config_for(tmp_path, toml=_toml())) as client:
        run = await _started_with_grandchild(client, tmp_path)
        os.kill(_row(tmp_path, run["id"])["supervisor_pid"], signal.SIGKILL)
        await _gone(run["id"])
        ended = await call(client, "get_run", {"run_id": run["id"]})
        assert ended["state"] == "failed" and ended["error"]["code"] == "supervisor_lost"


@pytest.mark.usefixtures("store_url")
async def test_the_reaper_ends_what_is_left_when_the_guard_died_too(tmp_path: Path) -> None:
    async with local_client(config_for(tmp_path, toml=_toml())) as client:
        run = await _started_with_grandchild(client, tmp_path)
        row = _row(tmp_path, run["id"])
        guard = [pid for pid in _children(row["supervisor_pid"]) if pid != row["child_pid"]]
        assert len(guard) == 1
        os.kill(guard[0], signal.SIGKILL)
        os.kill(row["supervisor_pid"], signal.SIGKILL)
        with anyio.fail_after(10):  # the agent itself goes with its parent (parent-death signal) ...
            while row["child_pid"] in run_processes(run["id"]):
                await anyio.sleep(0.05)
        assert run_processes(run["id"])  # ... its grandchild is left for the reaper
        ended = await call(client, "get_run", {"run_id": run["id"]})
        assert ended["state"] == "failed" and ended["error"]["code"] == "supervisor_lost"
        await _gone(run["id"], 5)


@pytest.mark.usefixtures("store_url")
async def test_cancel_of_a_run_whose_supervisor_is_gone_ends_it_cancelled(tmp_path: Path) -> None:
    async with local_client(config_for(tmp_path, toml=_toml())) as client:
        run = await _started_with_grandchild(client, tmp_path)
        os.kill(_row(tmp_path, run["id"])["supervisor_pid"], signal.SIGKILL)
        await _gone(run["id"])
        cancelled = await call(client, "cancel_run", {"run_id": run["id"]})
        assert cancelled["state"] == "cancelled"
        assert "could not be reached" in cancelled["error"]["message"]


@pytest.mark.usefixtures("store_url")
async def test_a_run_ends_with_its_agent_and_takes_what_it_left_running_along(tmp_path: Path) -> None:
    python = sys.executable.replace("\\", "\\\\")
    leaver = "import subprocess, sys; subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(120)']); print('bye')"
    toml = _toml() + f'\n[backends.local.agents.leaver]\ncommand = ["{python}", "-c", "{leaver}"]\n'
    async with local_client(config_for(tmp_path, toml=toml)) as client:
        run = await call(client, "spawn_agent", {"agent": "leaver", "prompt": "x"})
        with anyio.fail_after(30):  # the child it left holds its output open, yet the run ends
            ended = await call(client, "wait_for_run", {"run_id": run["id"], "timeout_seconds": 25})
        assert ended["state"] == "succeeded"
        await _gone(run["id"], 5)


def _other_host(directory: Path, host: str) -> StdioServerParameters:
    """An agentdeck server on "another machine": its own UTS namespace and host name."""
    code = f"import os, socket, sys; socket.sethostname({host!r}); os.execv(sys.executable, [sys.executable, '-m', 'agentdeck', 'serve'])"
    return StdioServerParameters(command="unshare", args=["--uts", "--", sys.executable, "-c", code], env=server_env(directory, "far-away"))


@pytest.fixture
def two_hosts(postgres_url: str) -> Any:
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        pytest.skip("a second host name needs `unshare --uts` as root")
    use_store(postgres_url)
    try:
        yield postgres_url
    finally:
        use_store(None)


@pytest.mark.usefixtures("two_hosts")
async def test_on_two_hosts_a_lost_supervisor_is_noticed_and_a_live_one_obeys_cancel(tmp_path: Path) -> None:
    config = config_for(tmp_path, toml=_toml())
    async with Client(_other_host(tmp_path, "agentdeck-other-host"), read_timeout_seconds=60) as far, local_client(config) as near:
        doomed = await _started_with_grandchild(far, tmp_path)
        live = await _started_with_grandchild(far, tmp_path)
        assert _row(tmp_path, doomed["id"])["supervisor_host"] == "agentdeck-other-host"

        # A live run on the other machine: its supervisor carries out a cancel made here.
        started = time.monotonic()
        cancelled = await call(near, "cancel_run", {"run_id": live["id"]})
        assert cancelled["state"] == "cancelled" and cancelled["error"] is None
        assert time.monotonic() - started < 5
        await _gone(live["id"])

        # Its machine's supervisor dies: its processes go at once, and this machine, which
        # cannot see that pid, declares the run lost once its heartbeats are overdue.
        os.kill(_row(tmp_path, doomed["id"])["supervisor_pid"], signal.SIGKILL)
        await _gone(doomed["id"])
        with anyio.fail_after(TIMEOUT + 15):
            while (current := await call(near, "get_run", {"run_id": doomed["id"]}))["state"] == "running":
                await anyio.sleep(0.2)
        assert current["state"] == "failed" and current["error"]["code"] == "supervisor_lost"
        assert "heartbeat" in current["error"]["message"] and "agentdeck-other-host" in current["error"]["message"]
        running = await call(near, "list_runs", {"state": "running"})
        assert running["runs"] == []


@pytest.mark.usefixtures("two_hosts")
async def test_on_two_hosts_cancel_of_a_run_whose_machine_is_gone_ends_it_cancelled(tmp_path: Path) -> None:
    config = config_for(tmp_path, toml=_toml())
    async with Client(_other_host(tmp_path, "agentdeck-other-host"), read_timeout_seconds=60) as far, local_client(config) as near:
        run = await _started_with_grandchild(far, tmp_path)
        os.kill(_row(tmp_path, run["id"])["supervisor_pid"], signal.SIGKILL)
        await _gone(run["id"])
        with anyio.fail_after(TIMEOUT + 15):
            cancelled = await call(near, "cancel_run", {"run_id": run["id"]})
        assert cancelled["state"] == "cancelled"
        assert "could not be reached" in cancelled["error"]["message"]
