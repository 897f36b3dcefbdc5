"""No API key or token ever reaches the client or the server's stderr, whatever fails.

Each remote backend gets a recognisable fake secret; the emulators answer with faults
(5xx, 401, 404, 429, malformed bodies) while a stdio session drives every backend's tools
with debug logging on. The secret must appear in no tool result, no resource and no log line.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import pytest
from mcp import Client
from mcp.client.stdio import stdio_client

from tests.emulators import agent_os, archastro, azure_foundry, oz
from tests.emulators.faults import Fault
from tests.emulators.serving import serve_in_thread
from tests.helpers import server_env, stdio_params

SECRETS = {
    "WARP_API_KEY": "SECRET-oz-5f1c9a",
    "ARCHASTRO_API_KEY": "SECRET-archastro-77b2e0",
    "AZURE_FOUNDRY_TOKEN": "SECRET-azure-9d4411",
    "AGENT_OS_API_KEY": "SECRET-agentos-c3e8a5",
    "AGENTDECK_HTTP_TOKENS": "SECRET-http-0a0a0a",
}
FAULTS = [Fault(status=500, times=2), Fault(status=401), Fault(malformed=True), Fault(status=429, retry_after=99), Fault(status=404)]


def _texts(result: Any) -> str:
    parts = [getattr(block, "text", "") for block in getattr(result, "content", None) or getattr(result, "contents", [])]
    return " ".join(parts) + str(getattr(result, "structured_content", "") or "")


@pytest.fixture
def emulators():  # type: ignore[no-untyped-def]
    apps = {
        "oz": oz.create_app(),
        "archastro": archastro.create_app(),
        "foundry": azure_foundry.create_app(),
        "agentos": agent_os.create_app(api_key=SECRETS["AGENT_OS_API_KEY"]),
    }
    with contextlib.ExitStack() as stack:
        urls = {name: stack.enter_context(serve_in_thread(app)) for name, app in apps.items()}
        yield apps, urls


async def test_secrets_never_reach_results_resources_or_logs(tmp_path: Path, emulators: Any) -> None:
    apps, urls = emulators
    (tmp_path / "agentdeck.toml").write_text(
        f"""
default = "oz"
[backends.oz]
kind = "oz"
base_url = "{urls['oz']}/api/v1"
max_retries = 1
[backends.archastro]
kind = "archastro"
base_url = "{urls['archastro']}"
max_retries = 1
[backends.foundry]
kind = "azure_foundry"
endpoint = "{urls['foundry']}/api/projects/_project"
user_isolation_key = "also-not-for-eyes"
max_retries = 1
[backends.agentos]
kind = "agent_os"
base_url = "{urls['agentos']}"
max_retries = 1
"""
    )
    env = server_env(tmp_path, **SECRETS, AGENTDECK_LOG_LEVEL="debug")
    seen: list[str] = []
    calls = [
        ("list_agents", {}),
        ("spawn_agent", {"agent": "x", "prompt": "leak?", "idempotency_key": "k-1"}),
        ("list_runs", {}),
        ("get_run", {"run_id": "nope"}),
        ("cancel_run", {"run_id": "nope"}),
        ("send_followup", {"run_id": "nope", "message": "x"}),
        ("list_routines", {}),
        ("invoke_routine", {"routine": "triage", "message": "x", "idempotency_key": "k-2"}),
        ("list_session_files", {"run_id": "agent:nope"}),
    ]
    log = tmp_path / "stderr.log"
    with log.open("w") as errlog:
        async with Client(stdio_client(stdio_params(env), errlog=errlog)) as client:
            for backend in ("oz", "archastro", "foundry", "agentos"):
                for fault in FAULTS:
                    for app in apps.values():
                        app.faults.add(Fault(**{**fault.__dict__}))
                    for name, arguments in calls:
                        seen.append(_texts(await client.call_tool(name, {**arguments, "backend": backend})))
                    for app in apps.values():
                        app.faults.clear()
            seen.append(_texts(await client.read_resource("agentdeck://context")))
    seen.append(log.read_text())
    everything = "\n".join(seen)
    assert "unavailable" in everything and "unauthorized" in everything  # the faults really happened
    for name, secret in SECRETS.items():
        assert secret not in everything, f"the value of {name} leaked"
    assert "also-not-for-eyes" not in everything
