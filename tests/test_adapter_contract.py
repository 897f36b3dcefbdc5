"""The contract every remote adapter keeps, checked for each against its emulator over a real connection.

- A well-formed id the platform does not know is `not_found`.
- A missing credential is `unauthorized`, and the message names the variable to set.
- A create repeated with the same idempotency key makes one object and returns it again.
- Platform faults, for each kind the emulator injects (429 with Retry-After, 500, 502, 503, a
  response slower than the read timeout, a dropped connection, a body that is not JSON):
  a read is retried and succeeds; a create sent without an idempotency key is never sent twice
  (it fails with a coded, retryable-or-not error, except a 429, refused before the platform
  acted, which is retried); a create that carries an idempotency key (Agent OS always sends
  one) is retried and makes exactly one object.

The A2A adapter is held to the same contract against the protocol's reference server (a2a-sdk)
behind the same fault injector; where a case does not apply to a platform, the table says why.
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
from tests.emulators.faults import Fault, FaultInjector
from tests.emulators.serving import serve_in_thread
from tests.helpers import free_port, local_client


@dataclass
class Platform:
    name: str
    app: Any
    toml: str  # the backend section, with {url}
    env: dict[str, str]  # the credential (and identity) the adapter needs
    read: tuple[str, dict[str, Any]]
    spawn: dict[str, Any]
    create_path: str
    unknown_run: str  # a run id of the platform's own form that names nothing
    create_is_keyed: bool = False
    port: int = 0
    no_key: str | None = None  # why a missing credential cannot happen, where it cannot
    objects: Any = None  # how many objects the platform holds, where it dedupes keyed creates itself

    def created(self) -> int:
        return self.objects(self.app) if self.objects else _created(self)


def _a2a() -> Platform:
    pytest.importorskip("a2a")
    from tests.a2a_agents import create_app
    from tests.test_backend_a2a import _Gate

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    app = FaultInjector(_Gate(create_app("quoter", base, bearer=True), token="a2a-contract-token"))
    return Platform("a2a", app, 'kind = "a2a"\nbinding = "HTTP+JSON"\n' + _COMMON + "[backends.p.agents]\nquoter = \"{url}\"\n",
                    {"A2A_API_KEY": "a2a-contract-token"}, ("list_runs", {}), {"agent": "quoter", "prompt": "x"},
                    "/rest/message:send", "quoter:00000000-0000-4000-8000-000000000000", port=port)


_COMMON = "timeout_seconds = 1.0\nmax_retries = 2\n"


def _platforms() -> list[Platform]:
    archastro_app = archastro.create_app()
    agent_os_app = agent_os.create_app(api_key="k")
    agent_os_agent = next(iter(agent_os_app.emulator.agents))
    return [
        Platform("oz", oz.create_app(), 'kind = "oz"\nbase_url = "{url}/api/v1"\n' + _COMMON, {"WARP_API_KEY": "k"},
                 ("list_runs", {}), {"agent": "faulty", "prompt": "x"}, "/api/v1/agent/runs", "00000000-0000-4000-8000-000000000000"),
        Platform("archastro", archastro_app, 'kind = "archastro"\nbase_url = "{url}"\n' + _COMMON, {"ARCHASTRO_API_KEY": "k"},
                 ("list_runs", {}), {"agent": archastro_app.seeded["agent"], "prompt": "x"}, "/api/v1/agent_sessions", "ase_0000000000000000"),
        Platform("azure", azure_foundry.create_app(), 'kind = "azure_foundry"\nendpoint = "{url}/api/projects/_project"\nagents = ["agentdeck-echo:1"]\n' + _COMMON,
                 {"AZURE_FOUNDRY_TOKEN": "k"}, ("list_runs", {}), {"agent": "agentdeck-echo:1", "prompt": "x"},
                 "/api/projects/_project/agents/agentdeck-echo/endpoint/sessions", "agentdeck-echo:nosuchsession0"),
        Platform("agent_os", agent_os_app, 'kind = "agent_os"\nbase_url = "{url}"\n' + _COMMON, {"AGENT_OS_API_KEY": "k"},
                 ("list_runs", {}), {"agent": agent_os_agent, "prompt": "x"}, "/v1/api/runs", "run_00000000000000000000", create_is_keyed=True,
                 objects=lambda app: len(app.emulator.runs)),
        Platform("agh", agh.create_app(), 'kind = "agh"\nbase_url = "{url}"\n' + _COMMON,
                 {"AGH_SESSION_ID": "sess-local", "AGH_AGENT": "local-agent"}, ("list_channels", {}),
                 {"agent": "local-agent", "prompt": "x"}, "/api/agent/spawn", "sess-does-not-exist",
                 no_key="AGH has no credential: the daemon trusts its local socket and the session identity"),
        _a2a(),
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
    with serve_in_thread(platform.app, port=platform.port) as url:
        yield url


@pytest.fixture(scope="module", params=_platforms(), ids=lambda p: p.name)
def platform(request: pytest.FixtureRequest) -> Iterator[tuple[Platform, str]]:
    with _served(request.param) as url:
        yield request.param, url


def _config(tmp_path: Path, platform: Platform, url: str, *, credentials: bool = True) -> Any:
    path = tmp_path / "agentdeck.toml"
    path.write_text('default = "p"\n[backends.p]\n' + platform.toml.format(url=url))
    env = platform.env if credentials else {}
    return load_config(path, env={"AGENTDECK_DATA_DIR": str(tmp_path / "data"), "AGENTDECK_IDENTITY": "faults", **env})


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


async def test_an_unknown_run_id_is_not_found(platform: tuple[Platform, str], tmp_path: Path) -> None:
    spec, url = platform
    async with local_client(_config(tmp_path, spec, url)) as client:
        spec.app.faults.clear()
        result = await client.call_tool("get_run", {"run_id": spec.unknown_run})
    assert result.is_error and result.structured_content["code"] == "not_found", result.structured_content


async def test_a_missing_credential_is_unauthorized_and_names_the_variable(platform: tuple[Platform, str], tmp_path: Path) -> None:
    spec, url = platform
    if spec.no_key:
        pytest.skip(spec.no_key)
    (variable,) = spec.env
    async with local_client(_config(tmp_path, spec, url, credentials=False)) as client:
        spec.app.faults.clear()
        tool, arguments = spec.read
        result = await client.call_tool(tool, arguments)
    assert result.is_error and result.structured_content["code"] == "unauthorized", result.structured_content
    assert variable in result.structured_content["message"]


async def test_a_keyed_create_repeated_makes_one_object(platform: tuple[Platform, str], tmp_path: Path) -> None:
    spec, url = platform
    async with local_client(_config(tmp_path, spec, url)) as client:
        spec.app.faults.clear()
        created = spec.created()
        key = {"idempotency_key": f"contract-{spec.name}-{tmp_path.name}"}
        first = await client.call_tool("spawn_agent", spec.spawn | key)
        again = await client.call_tool("spawn_agent", spec.spawn | key)
    assert not first.is_error and not again.is_error, (first.content, again.content)
    assert again.structured_content["id"] == first.structured_content["id"]
    assert spec.created() - created == 1
