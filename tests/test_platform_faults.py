"""Platform faults as a client sees them, for every remote adapter over a real connection.

For each fault the emulator injects (429 with Retry-After, 500, 502, 503, a response slower
than the read timeout, a dropped connection, a body that is not JSON):
- a read is retried and succeeds;
- a create sent without an idempotency key is never sent twice: it fails with a coded,
  retryable-or-not error, except a 429 (refused before the platform acted), which is retried;
- a create that carries an idempotency key (Agent OS always sends one) is retried and makes
  exactly one object.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import pytest

from agentdeck.config import load_config
from tests.emulators import agent_os, agh, archastro, azure_foundry, oz
from tests.emulators.faults import Fault
from tests.emulators.serving import serve_in_thread
from tests.helpers import local_client


@dataclass
class Platform:
    name: str
    app: Any
    toml: str  # the backend section, with {url}
    env: dict[str, str]
    read: tuple[str, dict[str, Any]]
    spawn: dict[str, Any]
    create_path: str
    create_is_keyed: bool = False


def _platforms() -> list[Platform]:
    archastro_app = archastro.create_app()
    agent_os_app = agent_os.create_app(api_key="k")
    agent_os_agent = next(iter(agent_os_app.emulator.agents))
    common = "timeout_seconds = 1.0\nmax_retries = 2\n"
    return [
        Platform("oz", oz.create_app(), 'kind = "oz"\nbase_url = "{url}/api/v1"\n' + common, {"WARP_API_KEY": "k"},
                 ("list_runs", {}), {"agent": "faulty", "prompt": "x"}, "/api/v1/agent/runs"),
        Platform("archastro", archastro_app, 'kind = "archastro"\nbase_url = "{url}"\n' + common, {"ARCHASTRO_API_KEY": "k"},
                 ("list_runs", {}), {"agent": archastro_app.seeded["agent"], "prompt": "x"}, "/api/v1/agent_sessions"),
        Platform("azure", azure_foundry.create_app(), 'kind = "azure_foundry"\nendpoint = "{url}/api/projects/_project"\nagents = ["agentdeck-echo:1"]\n' + common,
                 {"AZURE_FOUNDRY_TOKEN": "k"}, ("list_runs", {}), {"agent": "agentdeck-echo:1", "prompt": "x"},
                 "/api/projects/_project/agents/agentdeck-echo/endpoint/sessions"),
        Platform("agent_os", agent_os_app, 'kind = "agent_os"\nbase_url = "{url}"\n' + common, {"AGENT_OS_API_KEY": "k"},
                 ("list_runs", {}), {"agent": agent_os_agent, "prompt": "x"}, "/v1/api/runs", create_is_keyed=True),
        Platform("agh", agh.create_app(), 'kind = "agh"\nbase_url = "{url}"\n' + common,
                 {"AGH_SESSION_ID": "sess-local", "AGH_AGENT": "local-agent"}, ("list_channels", {}),
                 {"agent": "local-agent", "prompt": "x"}, "/api/agent/spawn"),
    ]


FAULTS = {
    "429": Fault(status=429, retry_after=1),
    "500": Fault(status=500),
    "502": Fault(status=502),
    "503": Fault(status=503),
    "slow": Fault(delay=2.5),
    "dropped": Fault(drop=True),
    "not-json": Fault(malformed=True),
}
EXPECTED_WRITE_ERROR = {"500": "unavailable", "502": "unavailable", "503": "unavailable", "slow": "timeout", "dropped": "unavailable", "not-json": "unavailable"}


@contextlib.contextmanager
def _served(platform: Platform) -> Iterator[str]:
    with serve_in_thread(platform.app) as url:
        yield url


@pytest.fixture(scope="module", params=_platforms(), ids=lambda p: p.name)
def platform(request: pytest.FixtureRequest) -> Iterator[tuple[Platform, str]]:
    with _served(request.param) as url:
        yield request.param, url


def _config(tmp_path: Path, platform: Platform, url: str) -> Any:
    path = tmp_path / "agentdeck.toml"
    path.write_text('default = "p"\n[backends.p]\n' + platform.toml.format(url=url))
    return load_config(path, env={"AGENTDECK_DATA_DIR": str(tmp_path / "data"), "AGENTDECK_IDENTITY": "faults", **platform.env})


def _created(platform: Platform) -> int:
    return sum(1 for r in platform.app.faults.requests if r["method"] == "POST" and r["path"] == platform.create_path and not r["faulted"] and (r["status"] or 0) < 300)


def _sent(platform: Platform) -> int:
    return sum(1 for r in platform.app.faults.requests if r["method"] == "POST" and r["path"] == platform.create_path)


@pytest.mark.parametrize("fault", list(FAULTS))
async def test_a_read_is_retried_through_the_fault_and_succeeds(platform: tuple[Platform, str], fault: str, tmp_path: Path) -> None:
    spec, url = platform
    async with local_client(_config(tmp_path, spec, url)) as client:
        spec.app.faults.clear()
        spec.app.faults.add(Fault(**{**FAULTS[fault].__dict__, "method": "GET", "times": 1}))
        tool, arguments = spec.read
        result = await client.call_tool(tool, arguments)
        assert not result.is_error, result.content
        assert not spec.app.faults.pending  # the fault was really met


@pytest.mark.parametrize("fault", list(FAULTS))
async def test_a_create_is_never_duplicated_by_a_fault(platform: tuple[Platform, str], fault: str, tmp_path: Path) -> None:
    spec, url = platform
    async with local_client(_config(tmp_path, spec, url)) as client:
        spec.app.faults.clear()
        sent, created = _sent(spec), _created(spec)
        spec.app.faults.add(Fault(**{**FAULTS[fault].__dict__, "method": "POST", "path": spec.create_path, "times": 1}))
        result = await client.call_tool("spawn_agent", spec.spawn)
        assert not spec.app.faults.pending
        if fault == "slow":
            await anyio.sleep(2.0)  # let the emulator finish the slow request the client gave up on
        new_objects = _created(spec) - created
        if fault == "429" or spec.create_is_keyed:
            assert not result.is_error, result.content
            assert new_objects == 1
        else:
            assert result.is_error and result.structured_content is not None
            assert result.structured_content["code"] == EXPECTED_WRITE_ERROR[fault], result.structured_content
            assert _sent(spec) - sent == 1, "a create without an idempotency key was sent twice"
            assert new_objects <= 1
