"""Starting the servers under test the way a client does, and looking at their processes.

agentdeck runs as `python -m agentdeck serve [--http]` with an empty config file (the default
local backend) and its own data dir; B1 runs as `python bench/baseline_server.py [--http]`.
Both are driven by the SDK's `Client`, over stdio or over a Streamable HTTP URL.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from mcp import Client, StdioServerParameters
from mcp.client.stdio import stdio_client

from agentdeck.backends.local.store import new_id
from agentdeck.backends.local.store.sqlite_db import SqliteDb

__all__ = [
    "PYTHON",
    "REPO",
    "Server",
    "agentdeck",
    "baseline",
    "clean_env",
    "connect",
    "free_port",
    "http_process",
    "rss_mib",
    "run_row",
    "seed_run",
]

REPO = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
BASELINE_SCRIPT = Path(__file__).resolve().with_name("baseline_server.py")
_TAG = "BENCH_SERVER_TAG"  # marks a server's process for pid lookup


class Server:
    """How to start one server: argv and environment, for stdio or (with `--http`) HTTP."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], log: IO[str]) -> None:
        self.name = name
        self.argv = argv
        self.env = {**env, _TAG: secrets.token_hex(6)}
        self.log = log

    def stdio(self) -> StdioServerParameters:
        return StdioServerParameters(command=self.argv[0], args=self.argv[1:], env=self.env, cwd=str(REPO))

    def client(self) -> Client:
        """A client session over stdio; server stderr goes to the log file, not the terminal."""
        return connect(self.stdio(), self.log)

    def pid(self) -> int:
        """The pid of this server's (stdio) process, a child of this process."""
        tag = f"{_TAG}={self.env[_TAG]}".encode()
        for entry in os.scandir("/proc"):
            if not entry.name.isdigit():
                continue
            try:
                with open(f"/proc/{entry.name}/environ", "rb") as f:
                    if tag in f.read().split(b"\0"):
                        return int(entry.name)
            except OSError:
                continue
        raise LookupError(f"no process for {self.name}")


def connect(params: StdioServerParameters, log: IO[str]) -> Client:
    return Client(stdio_client(params, errlog=log))


def clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("AGENTDECK_")}


def agentdeck(home: Path, log: IO[str], *, identity: str = "bench", config: str = "", data_dir: Path | None = None, **extra: str) -> Server:
    """agentdeck with `config` as its config file (empty: the default local backend)."""
    home.mkdir(parents=True, exist_ok=True)
    (home / "config.toml").write_text(config)
    env = clean_env() | {
        "AGENTDECK_CONFIG": str(home / "config.toml"),
        "AGENTDECK_DATA_DIR": str(data_dir or home / "data"),
        "AGENTDECK_IDENTITY": identity,
        **extra,
    }
    return Server("agentdeck", [PYTHON, "-m", "agentdeck", "serve"], env, log)


def baseline(log: IO[str], *, agentdeck_stdio: bool = False) -> Server:
    """B1; with `agentdeck_stdio`, served on agentdeck's stdio transport instead of the SDK's."""
    if agentdeck_stdio:
        return Server("B1 on agentdeck stdio", [PYTHON, str(BASELINE_SCRIPT), "--agentdeck-stdio"], clean_env(), log)
    return Server("B1", [PYTHON, str(BASELINE_SCRIPT)], clean_env(), log)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def http_process(server: Server, timeout: float = 30.0) -> Iterator[tuple[str, int]]:
    """Run `server` with `--http --port N`; yield its MCP URL and pid once the port accepts."""
    port = free_port()
    proc = subprocess.Popen([*server.argv, "--http", "--port", str(port)], env=server.env, cwd=REPO, stdout=subprocess.DEVNULL, stderr=server.log)
    try:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"{server.name} --http exited with {proc.returncode}; see {server.log.name}")
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", port)) == 0:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError(f"{server.name} --http did not start")
            time.sleep(0.02)
        yield f"http://127.0.0.1:{port}/mcp", proc.pid
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


def rss_mib(pid: int) -> float:
    """Resident memory of a process (VmRSS), in MiB."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise LookupError(f"no VmRSS for {pid}")


def run_row(run_id: str, created_at: float, **fields: Any) -> dict[str, Any]:
    """A row for SqliteDb.create_run (the local backend's own shape)."""
    row = {
        "id": run_id,
        "agent": "echo",
        "prompt": "benchmark",
        "name": None,
        "created_at": created_at,
        "parent_run_id": None,
        "depth": 0,
        "thread_id": run_id,
        "followup_of": None,
        "routine": None,
        "created_by": "bench",
        "workspace": None,
        "ttl_seconds": 3600,
        "metadata": None,
    }
    row.update(fields)
    return row


def seed_run(data_dir: Path) -> str:
    """Put one finished run in the store at `data_dir`; return its id (what get_run reads)."""
    store = SqliteDb(data_dir / "agentdeck.db")
    try:
        run_id = new_id("run")
        now = time.time()
        store.create_run(run_row(run_id, now - 5), "bench", None)
        store.mark_started(run_id, 0, now - 4)
        store.finish_run(run_id, "succeeded", now - 1, exit_code=0)
    finally:
        store.close()
    return run_id
