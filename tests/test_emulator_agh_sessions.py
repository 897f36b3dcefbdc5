"""The AGH emulator's session routes behave as the daemon's source says (compozy/agh `8cb155af`:
httpapi/prompt.go, core/handlers.go, core/workspace_scope.go, core/prompt_stream.go), with a plain
httpx2 client over loopback TCP."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx2
import pytest

from tests.emulators import agh
from tests.emulators.serving import serve_in_thread

IDENTITY = {"X-AGH-Session-ID": "sess-local", "X-AGH-Agent": "local-agent"}


@pytest.fixture
def daemon() -> Iterator[tuple[Any, httpx2.Client]]:
    app = agh.create_app()
    with serve_in_thread(app) as url, httpx2.Client(base_url=url, timeout=10) as client:
        yield app, client


def _child(client: httpx2.Client) -> str:
    spawned = client.post("/api/agent/spawn", json={"agent_name": "worker", "ttl_seconds": 60}, headers=IDENTITY)
    assert spawned.status_code == 201
    return str(spawned.json()["spawn"]["session"]["id"])


def test_prompt_streams_the_turn_starting_with_its_id_and_the_events_record_it(daemon: Any) -> None:
    _, client = daemon
    child = _child(client)
    base = f"/api/workspaces/ws-local/sessions/{child}"
    answer = client.post(base + "/prompt", json={"messages": [{"role": "user", "parts": [{"type": "text", "text": "hi there"}]}]})
    frames = [json.loads(line[5:]) for line in answer.text.splitlines() if line.startswith("data:") and line != "data: [DONE]"]
    assert answer.status_code == 200 and answer.headers["x-vercel-ai-ui-message-stream"] == "v1"
    assert answer.headers["content-type"].startswith("text/event-stream") and answer.text.endswith("data: [DONE]\n\n")
    assert frames[0]["type"] == "start" and frames[-1] == {"type": "finish"}
    events = client.get(base + "/events", params={"after_sequence": 1}).json()["events"]
    assert [(e["sequence"], e["type"], e["content"]["schema"]) for e in events] == [(2, "agent_message", "agh.session.event.v1"), (3, "done", "agh.session.event.v1")]
    assert events[0]["turn_id"] == frames[0]["messageId"] and events[0]["content"]["text"] == 'You said: "hi there"'
    assert client.get(base).json()["session"]["badge"] == "idle"


def test_session_routes_refuse_what_the_daemon_refuses(daemon: Any) -> None:
    _, client = daemon
    child = _child(client)
    base = f"/api/workspaces/ws-local/sessions/{child}"
    assert client.post(base + "/prompt", json={"mode": "queue"}).json() == {"error": "message is required"}
    assert client.get(f"/api/workspaces/ws-other/sessions/{child}").status_code == 404  # not in that workspace
    assert client.post(base + "/stop").status_code == 204
    stopped = client.get(base).json()["session"]
    assert (stopped["state"], stopped["stop_reason"]) == ("stopped", "user_canceled")
    refused = client.post(base + "/prompt", json={"message": "late"})
    assert refused.status_code == 400 and "not active" in refused.json()["error"]
    assert client.get(base + "/events").json()["events"][-1]["type"] == "session_stopped"
    assert client.delete(base).status_code == 204 and client.get(base).status_code == 404


def test_agents_and_sessions_are_listed(daemon: Any) -> None:
    _, client = daemon
    child = _child(client)
    assert [a["name"] for a in client.get("/api/agents").json()["agents"]] == ["local-agent", "worker"]
    listed = {s["id"] for s in client.get("/api/sessions", params={"workspace": "ws-local"}).json()["sessions"]}
    assert {"sess-local", child} <= listed
