"""Spawn delivers the prompt, end to end: a real agentdeck process over stdio, a platform
emulator on a loopback port, and an agent that answers by quoting its prompt.

Each backend is a fixture factory in PLATFORMS that starts its emulator and yields a
`Platform` (the config block, its environment, and the agent to spawn); the test is
parametrized over them, so other backends join by adding an entry.
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client
from mcp.client.stdio import stdio_client

from tests.emulators import azure_foundry, oz
from tests.emulators.serving import serve_in_thread
from tests.helpers import call, server_env, stdio_params

# Kinds of events that carry the caller's own words back, not the agent's.
INPUT_KINDS = frozenset({"user", "prompt"})


@dataclass
class Platform:
    toml: str  # the [backends.<name>] table, named "platform"
    agent: str
    env: dict[str, str] = field(default_factory=dict)


@contextlib.contextmanager
def oz_platform() -> Iterator[Platform]:
    # A realtime clock with short steps: the run goes QUEUED -> ... -> SUCCEEDED within a second or two.
    with serve_in_thread(oz.create_app(seed=False, realtime=True, step_seconds=0.2)) as url:
        yield Platform(f'kind = "oz"\nbase_url = "{url}/api/v1"\n', agent="echo", env={"WARP_API_KEY": "wk-e2e"})


@contextlib.contextmanager
def azure_foundry_platform() -> Iterator[Platform]:
    app = azure_foundry.create_app(start_time=None)
    with serve_in_thread(app) as url:
        yield Platform(f'kind = "azure_foundry"\nendpoint = "{app.endpoint(url)}"\n', agent=azure_foundry.DEFAULTS["agent"], env={"AZURE_FOUNDRY_TOKEN": "e2e-token"})


PLATFORMS: dict[str, Callable[[], contextlib.AbstractContextManager[Platform]]] = {
    "oz": oz_platform,
    "azure_foundry": azure_foundry_platform,
}


@pytest.fixture(params=sorted(PLATFORMS))
def platform(request: pytest.FixtureRequest) -> Iterator[Platform]:
    with PLATFORMS[request.param]() as started:
        yield started


async def test_a_spawned_agent_answers_its_prompt_quoting_it(tmp_path: Path, platform: Platform) -> None:
    token = f"token-{secrets.token_hex(8)}"
    (tmp_path / "agentdeck.toml").write_text(f'default = "platform"\n\n[backends.platform]\n{platform.toml}')
    log = tmp_path / "stderr.log"
    with anyio.fail_after(90), log.open("w") as errlog:
        async with Client(stdio_client(stdio_params(server_env(tmp_path, **platform.env)), errlog=errlog)) as client:
            run = await call(client, "spawn_agent", {"agent": platform.agent, "prompt": f"Please repeat {token} back to me."})
            done: dict[str, Any] = run
            for _ in range(5):  # wait_for_run answers within 50 s; a slow machine may need another call
                done = await call(client, "wait_for_run", {"run_id": run["id"], "timeout_seconds": 15})
                if done["state"] in ("succeeded", "failed", "cancelled"):
                    break
            events = (await call(client, "get_run_events", {"run_id": run["id"]}))["events"]
            shown = await call(client, "get_run", {"run_id": run["id"]})
    assert done["state"] == "succeeded", done
    answers = [e["text"] for e in events if e["kind"] not in INPUT_KINDS]
    assert any(token in text for text in answers), events
    assert shown["state"] == "succeeded"
    noise = [line for line in log.read_text().splitlines() if "Traceback" in line or " ERROR " in line or " WARNING " in line]
    assert noise == []
