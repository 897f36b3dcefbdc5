"""Every backend delivers the prompt: spawn_agent with a unique token, and the agent's answer quotes it.

One test, through a real MCP client session over stdio (`agentdeck serve` as a subprocess), parametrized
over backends. Each backend is a fixture named `<kind>_backend` that starts what it needs (an emulator on
loopback or a Unix socket) and yields a `Deployment`: the config file's text, the environment, and
optionally the agent to spawn (else the first one list_agents shows). To add a backend, write its
fixture (here or in a module conftest imports) and add its kind to BACKENDS.

Every emulator's agent (and the A2A reference server's test agent) answers a prompt by quoting it, so the token in an answer proves the prompt
reached the agent: local runs its built-in echo agent.
"""

from __future__ import annotations

import json
import secrets
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client
from mcp.client.stdio import stdio_client

from tests.emulators import agent_os, agh, archastro, azure_foundry, oz
from tests.emulators.serving import serve_in_thread
from tests.helpers import agents_toml, call, server_env, stdio_params

BACKENDS = ["local", "agh", "oz", "archastro", "azure_foundry", "agent_os", "a2a"]
PROMPT_KINDS = {"user_message", "user", "prompt", "message.user"}  # events that carry the prompt itself, not an answer


@dataclass
class Deployment:
    toml: str
    env: dict[str, str] = field(default_factory=dict)
    agent: str | None = None
    quotes: bool = True  # the agent says 'You said: "<prompt>"' (the Oz and Foundry emulators echo it otherwise)


@pytest.fixture
def local_backend() -> Iterator[Deployment]:
    yield Deployment(toml='default = "local"\n' + agents_toml(), agent="echo")


@pytest.fixture
def agh_backend() -> Iterator[Deployment]:
    directory = tempfile.mkdtemp(prefix="agh", dir="/tmp")  # Unix socket paths are capped near 104 bytes
    socket = f"{directory}/daemon.sock"
    try:
        with serve_in_thread(agh.create_app(turn_seconds=0.5), uds=socket):
            yield Deployment(toml=f'default = "agh"\n\n[backends.agh]\nkind = "agh"\nsocket = "{socket}"\n',
                             env={"AGH_SESSION_ID": "sess-local", "AGH_AGENT": "local-agent"}, agent="worker")
    finally:
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture
def archastro_backend() -> Iterator[Deployment]:
    with serve_in_thread(archastro.create_app(step=1)) as url:  # each request moves the platform clock 1 s
        yield Deployment(toml=f'default = "astro"\n\n[backends.astro]\nkind = "archastro"\nbase_url = "{url}"\n',
                         env={"ARCHASTRO_API_KEY": "sk_test_prompt_delivery"})


@pytest.fixture
def oz_backend() -> Iterator[Deployment]:
    # A realtime clock with short steps: the run goes QUEUED -> ... -> SUCCEEDED within a second or two.
    with serve_in_thread(oz.create_app(seed=False, realtime=True, step_seconds=0.2)) as url:
        yield Deployment(toml=f'default = "oz"\n\n[backends.oz]\nkind = "oz"\nbase_url = "{url}/api/v1"\n',
                         env={"WARP_API_KEY": "wk-e2e"}, agent="echo", quotes=False)


@pytest.fixture
def azure_foundry_backend() -> Iterator[Deployment]:
    app = azure_foundry.create_app(start_time=None)
    with serve_in_thread(app) as url:
        yield Deployment(toml=f'default = "foundry"\n\n[backends.foundry]\nkind = "azure_foundry"\nendpoint = "{app.endpoint(url)}"\n',
                         env={"AZURE_FOUNDRY_TOKEN": "e2e-token"}, agent=azure_foundry.DEFAULTS["agent"], quotes=False)


@pytest.fixture
def a2a_backend() -> Iterator[Deployment]:
    from tests.test_backend_a2a import agents  # the a2a-sdk reference server with the quoting agent

    with agents("quoter") as served:
        url = served["quoter"][0]
        yield Deployment(toml=f'default = "peers"\n\n[backends.peers]\nkind = "a2a"\n[backends.peers.agents]\nquoter = "{url}"\n', agent="quoter")


@pytest.fixture
def agent_os_backend() -> Iterator[Deployment]:
    with serve_in_thread(agent_os.create_app(realtime=True, step_seconds=0.2)) as url:
        yield Deployment(toml=f'default = "aos"\n\n[backends.aos]\nkind = "agent_os"\nbase_url = "{url}"\n',
                         env={"AGENT_OS_API_KEY": agent_os.DEFAULT_API_KEY})


@pytest.fixture(params=BACKENDS)
def deployment(request: pytest.FixtureRequest) -> Deployment:
    return request.getfixturevalue(f"{request.param}_backend")  # type: ignore[no-any-return]


async def _settled(client: Client, run_id: str) -> dict[str, Any]:
    """wait_for_run until the run ends or waits for input (each call returns within 50 s)."""
    while True:
        run = await call(client, "wait_for_run", {"run_id": run_id, "timeout_seconds": 20})
        if run["state"] in ("succeeded", "failed", "cancelled", "waiting"):
            return run


async def test_the_agent_answers_its_prompt_quoting_the_token(deployment: Deployment, tmp_path: Path) -> None:
    (tmp_path / "agentdeck.toml").write_text(deployment.toml)
    token = f"tok-{secrets.token_hex(8)}"
    log = tmp_path / "stderr.log"
    with anyio.fail_after(150), log.open("w") as errlog:
        async with Client(stdio_client(stdio_params(server_env(tmp_path, **deployment.env)), errlog=errlog)) as client:
            agent = deployment.agent or (await call(client, "list_agents"))["agents"][0]["name"]
            spawned = await call(client, "spawn_agent", {"agent": agent, "prompt": f"Please repeat {token}"})
            run = await _settled(client, spawned["id"])
            events = (await call(client, "get_run_events", {"run_id": spawned["id"]}))["events"]
            got = await call(client, "get_run", {"run_id": spawned["id"]})
    assert log.read_text() == ""  # nothing at warning or above (the server logs at warning), no traceback at exit
    assert run["state"] in ("succeeded", "waiting"), run
    answers = [e["text"] for e in events if token in e["text"] and e["kind"] not in PROMPT_KINDS]
    assert answers, f"no answer quoting {token} among {[(e['kind'], e['text']) for e in events]}"
    assert got["id"] == spawned["id"] and got["state"] == run["state"]
    if deployment.quotes and deployment.agent != "echo":  # an emulated agent also says it in its own words
        assert any(f'You said: "Please repeat {token}"' in text for text in answers + [json.dumps(got["artifacts"])])
