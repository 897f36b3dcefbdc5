"""Test plumbing: configs in a temp dir, and MCP sessions to agentdeck in-process, over stdio and over HTTP."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

import httpx2
from mcp import Client, StdioServerParameters

from agentdeck.app import build_server
from agentdeck.config import Config, load_config

TEST_AGENTS = """
[backends.local]
kind = "local"
cancel_grace_seconds = 1.0

[backends.local.agents.echo]
command = ["{python}", "-m", "agentdeck.backends.local.echo", "{{prompt}}"]
description = "prints its prompt"

[backends.local.agents.fail]
command = ["{python}", "-c", "import sys; print('working'); print('boom: disk full', file=sys.stderr); sys.exit(3)"]
description = "fails with exit code 3"

[backends.local.agents.sleeper]
command = ["{python}", "-c", "import subprocess, sys, time; subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(120)', 'agentdeck-test-grandchild']); print('started', flush=True); time.sleep(120)"]
description = "sleeps with a grandchild; for cancel tests"
ttl_seconds = 120

[backends.local.agents.env]
command = ["{python}", "-c", "import os; [print(k + '=' + os.environ.get(k, '')) for k in ('AGENTDECK_RUN_ID', 'AGENTDECK_IDENTITY', 'AGENTDECK_DATA_DIR', 'SECRET_TOKEN')]"]

[backends.local.routines.greet]
agent = "echo"
prompt = "Hello {{message}}"
"""


INIT = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "0"}},
}
"""A raw handshake-era initialize request, for tests that speak HTTP without an MCP client."""
HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
"""The headers a Streamable HTTP POST must carry."""


FILES_TOML = """
default = "files"

[backends.files]
kind = "azure_foundry"
endpoint = "http://127.0.0.1:9/api/projects/p"
"""


def local_tool_names() -> list[str]:
    """The tools the embedded platform registers on its own, in tools/list order."""
    from agentdeck.backends.local.backend import LocalBackend
    from agentdeck.tools import ALL_TOOLS

    return [spec.name for spec in ALL_TOOLS if spec.capability in LocalBackend.capabilities]


def agents_toml() -> str:
    return TEST_AGENTS.format(python=sys.executable.replace("\\", "\\\\"))


def write_config(directory: Path, toml: str | None = None) -> Path:
    path = directory / "agentdeck.toml"
    path.write_text(agents_toml() if toml is None else toml)
    return path


_store_url: list[str | None] = [None]


def use_store(url: str | None) -> None:
    """Point the processes and configs built from here on at this store (None: the SQLite default)."""
    _store_url[0] = url


def store_url() -> str | None:
    return _store_url[0]


def server_env(directory: Path, identity: str = "tester", **extra: str) -> dict[str, str]:
    """The environment of an agentdeck process under test: its own config, data dir and store only."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AGENTDECK_")}
    env.update(
        AGENTDECK_CONFIG=str(directory / "agentdeck.toml"),
        AGENTDECK_DATA_DIR=str(directory / "data"),
        AGENTDECK_IDENTITY=identity,
        AGENTDECK_LOG_LEVEL="warning",
    )
    if _store_url[0]:
        env["AGENTDECK_STORE"] = _store_url[0]
    env.update(extra)
    return env


def store_rows(directory: Path, sql: str) -> list[tuple[Any, ...]]:
    """Rows of a plain SQL query against the store the tests use (SQLite file or PostgreSQL schema)."""
    url = _store_url[0]
    if url:
        import psycopg

        with psycopg.connect(url) as conn:
            return [tuple(row) for row in conn.execute(sql).fetchall()]
    with contextlib.closing(sqlite3.connect(directory / "data" / "agentdeck.db")) as db:
        return [tuple(row) for row in db.execute(sql).fetchall()]


@contextlib.contextmanager
def postgres_schema(base_url: str) -> Iterator[str]:
    """A fresh, empty schema in the database at `base_url`; yields a URL whose search_path is it."""
    import psycopg

    schema = f"agentdeck_test_{secrets.token_hex(6)}"
    with psycopg.connect(base_url, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    parts = urlsplit(base_url)
    query = "&".join(p for p in (parts.query, "options=" + quote(f"-csearch_path={schema}")) if p)
    try:
        yield urlunsplit(parts._replace(query=query))
    finally:
        try:
            with psycopg.connect(base_url, autocommit=True) as conn:
                conn.execute("SET lock_timeout = '10s'")
                conn.execute(f'DROP SCHEMA "{schema}" CASCADE')
        except psycopg.Error:
            pass  # a straggling supervisor still holds it; the schema is uniquely named anyway


def config_for(directory: Path, identity: str = "tester", toml: str | None = None, **extra: str) -> Config:
    if not (directory / "agentdeck.toml").exists() or toml is not None:
        write_config(directory, toml)
    return load_config(env=server_env(directory, identity, **extra))


@contextlib.asynccontextmanager
async def local_client(config: Config, **client_options: Any) -> AsyncIterator[Client]:
    """An in-memory MCP client session with a server built from `config`."""
    server = build_server(config)
    try:
        async with Client(server, **client_options) as client:
            yield client
    finally:
        await server.deck.aclose()


def stdio_params(env: dict[str, str], *args: str) -> StdioServerParameters:
    return StdioServerParameters(command=sys.executable, args=["-m", "agentdeck", "serve", *args], env=env)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def http_server(env: dict[str, str], *args: str, port: int | None = None, connect: str = "127.0.0.1") -> Iterator[str]:
    """Start `agentdeck serve --http` and yield its MCP URL once /healthz answers at `connect`."""
    port = port or free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "agentdeck", "serve", "--http", "--port", str(port), *args],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"server exited: {proc.stderr.read().decode() if proc.stderr else ''}")
            try:
                if httpx2.get(f"http://{connect}:{port}/healthz", timeout=1).status_code == 200:
                    break
            except httpx2.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("server did not start")
            time.sleep(0.05)
        yield f"http://{connect}:{port}/mcp"
    finally:
        stop_process(proc)


def stop_process(proc: subprocess.Popen[Any]) -> None:
    """Ask a process to end (SIGTERM), and kill it when it has not within 10 s."""
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)


async def call(client: Client, tool: str, arguments: dict[str, Any] | None = None, **kwargs: Any) -> dict[str, Any]:
    """Call a tool that must succeed; return its structured content."""
    result = await client.call_tool(tool, arguments or {}, **kwargs)
    assert not result.is_error, f"{tool} failed: {result.content}"
    assert result.structured_content is not None
    return result.structured_content


async def fail(client: Client, tool: str, arguments: dict[str, Any] | None = None) -> dict[str, Any]:
    """Call a tool that must fail cleanly; return the error body {code, message, retryable}."""
    result = await client.call_tool(tool, arguments or {})
    assert result.is_error, f"{tool} unexpectedly succeeded: {result.structured_content}"
    text = result.content[0].text  # type: ignore[union-attr]
    assert "Traceback" not in text
    assert result.structured_content is not None, text
    assert text.startswith(result.structured_content["code"] + ": ")
    return result.structured_content


def file_result(result: Any) -> dict[str, Any]:
    """A download_session_file result as one dict: its facts plus the embedded resource's text or base64."""
    assert not result.is_error, result.content
    (resource,) = [block.resource for block in result.content if getattr(block, "type", None) == "resource"]
    facts = dict(result.structured_content)
    assert facts["text"] is None and facts["base64"] is None  # the bytes travel once, in the resource
    assert resource.uri.startswith("agentdeck://files/")
    return facts | {"text": getattr(resource, "text", None), "base64": getattr(resource, "blob", None), "mime_type": resource.mime_type}


class ToolSession:
    """An in-process MCP client session to agentdeck that keeps the text of every result.

    A test reaches the configured backends through `deck`, and checks what reached the client
    with `carried` (say, that no credential ever did).
    """

    def __init__(self, client: Client, deck: Any) -> None:
        self.client, self.deck = client, deck
        self.seen: list[str] = []

    @property
    def backend(self) -> Any:
        """The default backend."""
        return self.deck.pick(None)

    async def call(self, tool: str, arguments: dict[str, Any] | None = None, /, progress: Any = None, **more: Any) -> Any:
        """Call a tool with `arguments` and/or keyword arguments; `progress` receives its progress notifications."""
        result = await self.client.call_tool(tool, {**(arguments or {}), **more}, progress_callback=progress)
        self.seen.append(result.content[0].text + json.dumps(result.structured_content))
        return result

    async def ok(self, tool: str, arguments: dict[str, Any] | None = None, /, progress: Any = None, **more: Any) -> dict[str, Any]:
        """A call that must succeed: its structured content."""
        result = await self.call(tool, arguments, progress, **more)
        assert not result.is_error, result.content[0].text
        return dict(result.structured_content)

    async def error(self, tool: str, arguments: dict[str, Any] | None = None, /, **more: Any) -> dict[str, Any]:
        """A call that must fail cleanly: its error body {code, message, retryable}."""
        result = await self.call(tool, arguments, **more)
        assert result.is_error, result.content[0].text
        text = result.content[0].text
        assert text.startswith(result.structured_content["code"] + ": ")
        assert "Traceback" not in text
        return dict(result.structured_content)

    async def file(self, **arguments: Any) -> dict[str, Any]:
        return file_result(await self.call("download_session_file", **arguments))

    async def resource(self, uri: str) -> Any:
        return json.loads((await self.client.read_resource(uri)).contents[0].text)

    def carried(self, text: str) -> bool:
        """Whether any result so far carried `text`."""
        return any(text in seen for seen in self.seen)


@contextlib.asynccontextmanager
async def tool_session(config: Config, *, transports: dict[str, Any] | None = None, deck: Any = None,
                       never_shown: tuple[str, ...] = (), make: Any = ToolSession) -> AsyncIterator[Any]:
    """A ToolSession with a server built from `config`; `transports` binds remote backends to emulator apps.

    When the session ends, no result may have carried any text in `never_shown` (credentials).
    `make(client, deck)` builds the session object, for a test module's subclass.
    """
    from agentdeck.backends import Deck

    deck = deck or Deck.from_config(config, transports=transports)
    try:
        async with Client(build_server(config, deck)) as client:
            session = make(client, deck)
            yield session
            for secret in never_shown:
                assert not session.carried(secret), "a credential reached a tool result"
    finally:
        await deck.aclose()
