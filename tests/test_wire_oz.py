"""Wire equality with the official SDK: for every operation the Oz adapter performs, the requests
it sends to the API (method, path, query, body) equal those `oz-agent-sdk` 0.15.0 sends for the
same operation. Each side talks to its own fresh emulator (same seed, so the same run ids); a
recorder in front of each captures what arrived.

The SDK has no call for a run's conversation or transcript. Those requests are checked against
Warp's published OpenAPI file instead: `warpdotdev/docs` at commit 9d837ad,
`developers/agent-api-openapi.yaml`, operations `getRunConversation`
(`GET /agent/runs/{runId}/conversation`) and `getRunTranscript` (`GET /agent/runs/{runId}/transcript`):
both take only the `runId` path parameter, no query and no body.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import anyio
import httpx2
import pytest
from mcp import Client
from oz_agent_sdk import OzAPI

from agentdeck.app import build_server
from agentdeck.backends import Deck
from agentdeck.backends.oz_models import KEY_FIELD
from agentdeck.config import load_config
from tests.emulators.oz import create_app
from tests.emulators.serving import serve_in_thread
from tests.helpers import call, file_result

API = "/api/v1"


class Recorder:
    """ASGI wrapper that records each API request (method, path, sorted query, body) and passes it on."""

    def __init__(self, app: Any) -> None:
        self.app, self.seen = app, []

    def __getattr__(self, name: str) -> Any:
        return getattr(self.app, name)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(API):
            return await self.app(scope, receive, send)
        chunks, more = [], True
        while more:
            message = await receive()
            chunks.append(message.get("body", b""))
            more = message.get("more_body", False)
        raw = b"".join(chunks)
        try:
            body = json.loads(raw) if raw.strip() else None
        except ValueError:
            body = raw
        query = sorted(parse_qsl(scope["query_string"].decode(), keep_blank_values=True))
        self.seen.append((scope["method"], scope["path"].removeprefix(API), query, body))
        replayed = False

        async def replay() -> dict[str, Any]:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": raw, "more_body": False}

        await self.app(scope, replay, send)


def _seed(app: Any) -> dict[str, str]:
    done = app.add_run("Plan the work", "SUCCEEDED")
    plan = app.add_artifact(done, "PLAN", content="# Plan\n")
    app.add_handoff_attachment(done, "notes.txt", b"hi", "text/plain")
    blocked = app.add_run("Waiting", "BLOCKED")
    busy = app.add_run("Busy", "INPROGRESS", hold=True)
    return {"done": done, "plan": str(plan), "blocked": blocked, "busy": busy}


@pytest.fixture
def sides(tmp_path: Path) -> Iterator[tuple[Recorder, Recorder, OzAPI, dict[str, str]]]:
    ours, theirs = Recorder(create_app(seed=False)), Recorder(create_app(seed=False))
    ids = _seed(ours)
    assert _seed(theirs) == ids  # the same seed gives the same ids
    with serve_in_thread(theirs) as root, OzAPI(api_key="wk-test", base_url=f"{root}{API}", max_retries=0) as sdk:
        yield ours, theirs, sdk, ids


async def _same(ours: Recorder, theirs: Recorder, adapter_step: Callable[[], Any], sdk_step: Callable[[], Any]) -> list[Any]:
    a, s = len(ours.seen), len(theirs.seen)
    await adapter_step()
    await anyio.to_thread.run_sync(sdk_step)
    assert ours.seen[a:] and ours.seen[a:] == theirs.seen[s:]
    return ours.seen[a:]


async def test_every_adapter_operation_sends_what_oz_agent_sdk_sends(tmp_path: Path, sides: Any) -> None:
    ours, theirs, sdk, ids = sides
    config_file = tmp_path / "c.toml"
    config_file.write_text('default = "oz"\n[backends.oz]\nkind = "oz"\nbase_url = "http://testserver/api/v1"\n')
    cfg = load_config(path=config_file, env={"WARP_API_KEY": "wk-test", "AGENTDECK_DATA_DIR": str(tmp_path)})
    deck = Deck.from_config(cfg, transports={"oz": httpx2.ASGITransport(app=ours)})
    try:
        async with Client(build_server(cfg, deck)) as client:
            hashed = hashlib.sha256(f"{deck.backends['oz'].identity}\0job-1".encode()).hexdigest()[:40]  # as the adapter stores it
            await _same(ours, theirs, lambda: call(client, "list_agents"), lambda: sdk.agent.list())
            spawned: dict[str, Any] = {}

            async def spawn() -> None:
                spawned.update(await call(client, "spawn_agent", {"agent": "fixer", "prompt": "Fix it", "name": "Fix", "idempotency_key": "job-1", "metadata": {"ticket": "T-1", "mode": "plan"}}))

            def sdk_spawn() -> None:
                sdk.agent.runs.list(metadata={KEY_FIELD: hashed}, sort_by="created_at", sort_order="asc", limit=1)
                sdk.agent.list()  # is "fixer" a skill?
                run = sdk.agent.run(prompt="Fix it", config={"name": "fixer"}, title="Fix", mode="plan", metadata={"ticket": "T-1", KEY_FIELD: hashed})
                sdk.agent.runs.retrieve(run.run_id)

            await _same(ours, theirs, spawn, sdk_spawn)
            run_id = spawned["id"]
            await _same(ours, theirs, lambda: call(client, "get_run", {"run_id": run_id}), lambda: sdk.agent.runs.retrieve(run_id))
            since = datetime(2026, 5, 1, tzinfo=UTC)
            await _same(
                ours,
                theirs,
                lambda: call(client, "list_runs", {"state": "queued", "agent": "fixer", "created_after": since.isoformat(), "limit": 5}),
                lambda: sdk.agent.runs.list(limit=5, sort_by="created_at", sort_order="desc", state=["QUEUED", "PENDING", "CLAIMED"], name="fixer", created_after="2026-05-01T00:00:00Z"),
            )

            def sdk_followup() -> None:
                sdk.agent.runs.submit_followup(ids["blocked"], message="go on", mode="orchestrate")
                sdk.agent.runs.retrieve(ids["blocked"])

            await _same(ours, theirs, lambda: call(client, "send_followup", {"run_id": ids["blocked"], "message": "/orchestrate go on"}), sdk_followup)

            def sdk_cancel() -> None:
                sdk.agent.runs.cancel(ids["busy"])
                sdk.agent.runs.retrieve(ids["busy"])

            await _same(ours, theirs, lambda: call(client, "cancel_run", {"run_id": ids["busy"]}), sdk_cancel)

            def sdk_root() -> None:
                sdk.agent.runs.list_handoff_attachments(ids["done"])
                sdk.agent.runs.retrieve(ids["done"])

            await _same(ours, theirs, lambda: call(client, "list_session_files", {"run_id": ids["done"]}), sdk_root)

            async def download_plan() -> None:
                plan = file_result(await client.call_tool("download_session_file", {"run_id": ids["done"], "path": f"artifacts/{ids['plan']}"}))
                assert plan["text"] == "# Plan\n"

            def sdk_plan() -> None:
                sdk.agent.runs.retrieve(ids["done"])
                assert sdk.agent.get_artifact(ids["plan"]).data.content == "# Plan\n"

            await _same(ours, theirs, download_plan, sdk_plan)

            async def download_note() -> None:
                assert file_result(await client.call_tool("download_session_file", {"run_id": ids["done"], "path": "notes.txt"}))["text"] == "hi"

            await _same(ours, theirs, download_note, lambda: sdk.agent.runs.list_handoff_attachments(ids["done"]))

            # Not in the SDK: checked against getRunConversation in the OpenAPI file named above.
            start = len(ours.seen)
            events = await call(client, "get_run_events", {"run_id": ids["done"]})
            assert ours.seen[start:] == [("GET", f"/agent/runs/{ids['done']}", [], None), ("GET", f"/agent/runs/{ids['done']}/conversation", [], None)]
            assert events["events"][-1]["text"] == 'You said: "Plan the work"'
    finally:
        await deck.aclose()


async def test_the_transcript_request_follows_the_openapi_file(tmp_path: Path) -> None:
    app = Recorder(create_app(seed=False))
    run_id = app.add_run("Summarise", "SUCCEEDED", config={"harness": {"type": "codex"}})
    config_file = tmp_path / "c.toml"
    config_file.write_text('default = "oz"\n[backends.oz]\nkind = "oz"\nbase_url = "http://testserver/api/v1"\n')
    cfg = load_config(path=config_file, env={"WARP_API_KEY": "wk-test", "AGENTDECK_DATA_DIR": str(tmp_path)})
    deck = Deck.from_config(cfg, transports={"oz": httpx2.ASGITransport(app=app)})
    try:
        async with Client(build_server(cfg, deck)) as client:
            events = await call(client, "get_run_events", {"run_id": run_id})
    finally:
        await deck.aclose()
    # getRunTranscript: GET /agent/runs/{runId}/transcript, runId only; then the download URL, outside /api/v1.
    assert app.seen[-1] == ("GET", f"/agent/runs/{run_id}/transcript", [], None)
    assert 'assistant: You said: "Summarise"' in events["events"][0]["text"]
