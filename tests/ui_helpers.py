"""Test plumbing for the dashboard: `agentdeck ui` as a process, and reading its live stream."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import httpx2

from tests.helpers import stop_process


@contextlib.contextmanager
def ui_server(env: dict[str, str], *args: str) -> Iterator[str]:
    """Start `agentdeck ui` and yield the dashboard URL it prints (…/ui/) once it answers."""
    proc = subprocess.Popen([sys.executable, "-m", "agentdeck", "ui", *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if not line:
            raise RuntimeError(f"agentdeck ui exited: {proc.stderr.read() if proc.stderr else ''}")
        url = line.split(" at ", 1)[1].split()[0]
        deadline = time.monotonic() + 20
        while True:
            try:
                if httpx2.get(url.replace("/ui/", "/healthz"), timeout=2).status_code == 200:
                    break
            except httpx2.TransportError:
                pass
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError("agentdeck ui did not start")
            time.sleep(0.05)
        yield url
    finally:
        stop_process(proc)


def csrf_of(html: str) -> str:
    marker = 'name="csrf" value="'
    start = html.index(marker) + len(marker)
    return html[start : html.index('"', start)]


def next_update(response: Any, lines: Iterator[str]) -> dict[str, Any]:
    """The next {target, html, mode} message of an open event stream."""
    for line in lines:
        if line.startswith("data: "):
            return json.loads(line[6:])  # type: ignore[no-any-return]
    raise AssertionError("the event stream ended")
