"""The HTTP transport against clients that misbehave: short bearer tokens stop the server at
start, a session works only with the credential that opened it, slow request headers are cut
off, and the Host check accepts the bound address (IPv6 loopback, 127.0.0.2) in any case."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

import anyio
import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from tests.helpers import HEADERS, INIT, agents_toml, call, free_port, http_server, server_env, write_config

ONE, TWO = "first-token-0123456789", "second-token-0123456789"


def _start(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "agentdeck", "serve", "--http", "--port", str(free_port()), *args]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("tokens", ["alice:abc123xyz,bob:long-enough-0123456789", "abc123xyz"])
def test_a_bearer_token_shorter_than_16_characters_stops_the_server_at_start(tokens: str, tmp_path: Path) -> None:
    write_config(tmp_path)
    started = _start(server_env(tmp_path, AGENTDECK_HTTP_TOKENS=tokens))
    assert started.returncode == 2
    assert "configuration error: bearer tokens must be at least 16 characters" in started.stderr
    assert ("'alice'" if "alice" in tokens else "a bare one") in started.stderr
    assert "abc123xyz" not in started.stderr and "Traceback" not in started.stderr


def test_a_short_token_in_the_tokens_file_is_refused_too(tmp_path: Path) -> None:
    (tmp_path / "tokens").write_text("carol:abc123xyz\n")
    (tmp_path / "agentdeck.toml").write_text(agents_toml() + f'\n[http]\ntokens_file = "{tmp_path / "tokens"}"\n')
    started = _start(server_env(tmp_path))
    assert started.returncode == 2 and "'carol'" in started.stderr and "abc123xyz" not in started.stderr


def test_a_session_works_only_with_the_token_that_opened_it(tmp_path: Path) -> None:
    write_config(tmp_path)
    with http_server(server_env(tmp_path, AGENTDECK_HTTP_TOKENS=f"{ONE},{TWO}")) as url:  # both are the server's own identity
        opened = httpx2.post(url, json=INIT, headers=HEADERS | {"Authorization": f"Bearer {ONE}"})
        session = {"Mcp-Session-Id": opened.headers["mcp-session-id"]}
        listing = {"jsonrpc": "2.0", "id": 2, "method": "tools/list"}
        other = httpx2.post(url, json=listing, headers=HEADERS | session | {"Authorization": f"Bearer {TWO}"})
        assert other.status_code == 404
        same = httpx2.post(url, json=listing, headers=HEADERS | session | {"Authorization": f"Bearer {ONE}"})
        assert same.status_code == 200


def _closed_after(sock: socket.socket, trickle: bytes | None, limit: float) -> float:
    """Seconds until the server closes `sock`, sending `trickle` every 0.2 s meanwhile."""
    started = time.monotonic()
    sock.settimeout(0.2)
    while time.monotonic() - started < limit:
        try:
            if sock.recv(1024) == b"":
                return time.monotonic() - started
        except TimeoutError:
            pass
        except ConnectionResetError:
            return time.monotonic() - started
        if trickle:
            try:
                sock.sendall(trickle)
            except (BrokenPipeError, ConnectionResetError):
                return time.monotonic() - started
    raise AssertionError(f"the server kept the connection open for {limit} s")


def test_clients_that_do_not_finish_their_request_headers_in_time_are_cut_off(tmp_path: Path) -> None:
    (tmp_path / "agentdeck.toml").write_text(agents_toml() + "\n[http]\nheader_timeout_seconds = 1.0\n")
    with http_server(server_env(tmp_path)) as url:
        port = int(url.split(":")[2].split("/")[0])
        with socket.create_connection(("127.0.0.1", port)) as trickler:
            trickler.sendall(b"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\n")
            assert 0.8 <= _closed_after(trickler, b"X-Slow: a\r\n", limit=15)
        with socket.create_connection(("127.0.0.1", port)) as silent:
            _closed_after(silent, None, limit=15)
        # a client that sends its request is served as before, on a kept-alive connection too
        with httpx2.Client() as http:
            for _ in range(2):
                assert http.get(url.replace("/mcp", "/healthz")).status_code == 200
                time.sleep(0.5)


async def _lists_agents(url: str) -> None:
    with anyio.fail_after(30):
        async with Client(streamable_http_client(url)) as client:
            assert "echo" in [a["name"] for a in (await call(client, "list_agents"))["agents"]]


@pytest.mark.parametrize("host", ["[::1]", "::1"])
async def test_the_ipv6_loopback_can_be_bound(host: str, tmp_path: Path) -> None:
    write_config(tmp_path)
    with http_server(server_env(tmp_path), "--host", host, connect="[::1]") as url:
        await _lists_agents(url)


async def test_a_loopback_address_other_than_127_0_0_1_accepts_its_own_host(tmp_path: Path) -> None:
    write_config(tmp_path)
    with http_server(server_env(tmp_path), "--host", "127.0.0.2", connect="127.0.0.2") as url:
        await _lists_agents(url)
        port = url.split(":")[2].split("/")[0]
        refused = httpx2.post(url, json=INIT, headers=HEADERS | {"Host": f"evil.example.com:{port}"})
        assert refused.status_code == 421


def test_the_host_and_origin_checks_ignore_case(tmp_path: Path) -> None:
    write_config(tmp_path)
    with http_server(server_env(tmp_path)) as url:
        port = url.split(":")[2].split("/")[0]
        for host in (f"LOCALHOST:{port}", f"LocalHost:{port}"):
            assert httpx2.post(url, json=INIT, headers=HEADERS | {"Host": host}).status_code == 200
        assert httpx2.post(url, json=INIT, headers=HEADERS | {"Origin": f"HTTP://LOCALHOST:{port}"}).status_code == 200
        assert httpx2.post(url, json=INIT, headers=HEADERS | {"Host": f"EVIL.example.com:{port}"}).status_code == 421
