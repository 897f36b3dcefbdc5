"""Wire equality with the official SDK: for every operation the Azure AI Foundry adapter performs,
the requests it sends (method, path, query, body) equal those `azure-ai-projects` 2.10 (and the
OpenAI client it hands out for an agent, for the Responses turns) sends for the same operation.

Each side talks to its own fresh emulator with the same seed; both request logs are compared
after response ids (random) are replaced by a placeholder. The SDK goes over a loopback port
with the plain-http bearer policy of test_emulator_azure_foundry; the adapter goes through a
real MCP client session.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
from azure.ai.projects import AIProjectClient
from azure.ai.projects.models import VersionRefIndicator
from mcp import Client

from agentdeck.app import build_server
from agentdeck.backends import Deck
from agentdeck.config import load_config
from tests.emulators import azure_foundry
from tests.emulators.serving import serve_in_thread
from tests.helpers import call, file_result
from tests.test_emulator_azure_foundry import _PlainHttpBearerPolicy, _StaticCredential

AGENT = azure_foundry.DEFAULTS["agent"]
SESSION = "wire-session-01"
RUN = f"{AGENT}:{SESSION}"


def _wire(app: Any, since: int = 0) -> list[tuple[Any, ...]]:
    """What reached the emulator: method, path, query (sorted), JSON body parsed (raw bytes otherwise)."""
    sent = []
    for entry in app.request_log[since:]:
        raw = entry["body"]
        try:
            body: Any = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode("latin-1")  # raw bytes (an upload), compared as they are
        text = re.sub(r"resp_[0-9a-f]{32}", "resp_*", json.dumps(body, sort_keys=True))
        sent.append((entry["method"], entry["path"], sorted(entry["query"].items()), text))
    return sent


@pytest.fixture
def sdk_app() -> Any:
    return azure_foundry.create_app()


@pytest.fixture
def sdk(sdk_app: Any) -> Any:
    with serve_in_thread(sdk_app) as base_url:
        credential = _StaticCredential()
        client = AIProjectClient(
            endpoint=sdk_app.endpoint(base_url),
            credential=credential,  # type: ignore[arg-type]
            authentication_policy=_PlainHttpBearerPolicy(credential, "https://ai.azure.com/.default"),
            retry_total=0,
            allow_preview=True,  # get_openai_client(agent_name=...) needs it
        )
        with client:
            yield client


@asynccontextmanager
async def _adapter(tmp_path: Path, app: Any) -> AsyncIterator[Client]:
    config_file = tmp_path / "c.toml"
    config_file.write_text('default = "azure"\n[backends.azure]\nkind = "azure_foundry"\nendpoint = "http://foundry.test/api/projects/_project"\n')
    cfg = load_config(path=config_file, env={"AZURE_FOUNDRY_TOKEN": "t", "AGENTDECK_DATA_DIR": str(tmp_path)})
    deck = Deck.from_config(cfg, transports={"azure": httpx2.ASGITransport(app=app)})
    try:
        async with Client(build_server(cfg, deck)) as client:
            yield client
    finally:
        await deck.aclose()


def _first_page(paged: Any) -> list[Any]:
    # The adapter stops at has_more=false; the SDK's iterator asks once more (it follows last_id only).
    return list(next(iter(paged.by_page())))


async def _same(adapter_app: Any, sdk_app: Any, adapter_step: Callable[[], Any], sdk_step: Callable[[], Any]) -> None:
    a, s = len(adapter_app.request_log), len(sdk_app.request_log)
    await adapter_step()
    await anyio.to_thread.run_sync(sdk_step)
    assert _wire(adapter_app, a) == _wire(sdk_app, s)


async def test_every_adapter_operation_sends_what_the_official_sdk_sends(tmp_path: Path, sdk: Any, sdk_app: Any) -> None:
    app = azure_foundry.create_app()
    openai = sdk.get_openai_client(agent_name=AGENT)
    responses: list[str] = []

    def sdk_spawn() -> None:
        latest = sdk.agents.get(agent_name=AGENT).versions["latest"].version
        sdk.agents.create_session(agent_name=AGENT, version_indicator=VersionRefIndicator(agent_version=latest), agent_session_id=SESSION)
        responses.append(openai.responses.create(input="wire prompt", extra_body={"agent_session_id": SESSION}).id)
        sdk.agents.get_session(agent_name=AGENT, session_id=SESSION)

    def sdk_followup() -> None:
        sdk.agents.get_session(agent_name=AGENT, session_id=SESSION)
        openai.responses.create(input="next", previous_response_id=responses[-1], extra_body={"agent_session_id": SESSION})
        sdk.agents.get_session(agent_name=AGENT, session_id=SESSION)

    async with _adapter(tmp_path, app) as client:
        await _same(app, sdk_app, lambda: call(client, "list_agents"), lambda: list(sdk.agents.list(kind="hosted", limit=100)))
        spawned: dict[str, Any] = {}

        async def spawn() -> None:
            spawned.update(await call(client, "spawn_agent", {"agent": AGENT, "prompt": "wire prompt", "name": SESSION}))

        await _same(app, sdk_app, spawn, sdk_spawn)
        assert spawned["metadata"]["output"] == 'You said: "wire prompt"'
        await _same(app, sdk_app, lambda: call(client, "send_followup", {"run_id": RUN, "message": "next"}), sdk_followup)
        await _same(app, sdk_app, lambda: call(client, "get_run", {"run_id": RUN}), lambda: sdk.agents.get_session(agent_name=AGENT, session_id=SESSION))

        await _same(app, sdk_app, lambda: call(client, "list_runs", {"agent": AGENT}), lambda: _first_page(sdk.agents.list_sessions(agent_name=AGENT, limit=20, order="desc")))
        await _same(
            app,
            sdk_app,
            lambda: call(client, "upload_session_file", {"run_id": RUN, "path": "notes/a.txt", "content": "hello"}),
            lambda: sdk.agents.upload_session_file(agent_name=AGENT, session_id=SESSION, content=b"hello", path="notes/a.txt"),
        )

        async def download() -> None:
            assert file_result(await client.call_tool("download_session_file", {"run_id": RUN, "path": "notes/a.txt"}))["text"] == "hello"

        await _same(app, sdk_app, download, lambda: b"".join(sdk.agents.download_session_file(agent_name=AGENT, session_id=SESSION, path="notes/a.txt")))
        await _same(
            app,
            sdk_app,
            lambda: call(client, "list_session_files", {"run_id": RUN, "path": "notes"}),
            lambda: _first_page(sdk.agents.list_session_files(agent_name=AGENT, session_id=SESSION, path="notes", limit=100, order="asc")),
        )

        def sdk_delete_file() -> None:
            sdk.agents.delete_session_file(agent_name=AGENT, session_id=SESSION, path="notes/a.txt", recursive=False)
            _first_page(sdk.agents.list_session_files(agent_name=AGENT, session_id=SESSION, path="notes", limit=100, order="asc"))

        await _same(app, sdk_app, lambda: call(client, "delete_session_file", {"run_id": RUN, "path": "notes/a.txt"}), sdk_delete_file)

        def sdk_stop() -> None:
            sdk.agents.get_session(agent_name=AGENT, session_id=SESSION)
            sdk.agents.stop_session(agent_name=AGENT, session_id=SESSION)
            sdk.agents.get_session(agent_name=AGENT, session_id=SESSION)

        await _same(app, sdk_app, lambda: call(client, "cancel_run", {"run_id": RUN}), sdk_stop)

        def sdk_delete() -> None:
            sdk.agents.get_session(agent_name=AGENT, session_id=SESSION)
            sdk.agents.delete_session(agent_name=AGENT, session_id=SESSION)

        await _same(app, sdk_app, lambda: call(client, "delete_session", {"run_id": RUN}), sdk_delete)
        assert app.session(AGENT, SESSION) is None and sdk_app.session(AGENT, SESSION) is None


def test_the_sdks_openai_client_holds_a_conversation_with_the_emulated_agent(sdk: Any, sdk_app: Any) -> None:
    session = sdk.agents.create_session(agent_name=AGENT, version_indicator=VersionRefIndicator(agent_version="1"))
    openai = sdk.get_openai_client(agent_name=AGENT)
    first = openai.responses.create(input="what is 2+2?", extra_body={"agent_session_id": session.agent_session_id})
    assert (first.status, first.output_text) == ("completed", 'You said: "what is 2+2?"')
    second = openai.responses.create(input="and 3+3?", previous_response_id=first.id, extra_body={"agent_session_id": session.agent_session_id})
    assert (second.output_text, second.previous_response_id) == ('You said: "and 3+3?"', first.id)
    turns = [r for r in sdk_app.request_log if r["path"].endswith("/protocols/openai/responses")]
    assert {t["headers"]["foundry-features"] for t in turns} >= {"WorkflowAgents=V1Preview,ExternalAgents=V1Preview,DraftAgents=V1Preview,VoiceAgents=V1Preview,DigitalWorker=V1Preview,GitHubCopilot=V1Preview,Skills=V1Preview,MicrosoftCopilot=V1Preview,ModelRouterControls=V1Preview"}
    with pytest.raises(Exception, match="agent_session_id"):
        openai.responses.create(input="x", extra_body={"agent_session_id": "bad.id"})
    assert sdk.agents.get_session(agent_name=AGENT, session_id=session.agent_session_id).status == "active"
