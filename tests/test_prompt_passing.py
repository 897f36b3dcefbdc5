"""Every spawn that is accepted can start: a prompt too big for one argument is refused before
anything is created, or reaches the agent another configured way ({prompt_file}, stdin)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from agentdeck.backends.local.launch import MAX_ARG_BYTES
from agentdeck.backends.local.limits import MAX_PROMPT_BYTES
from tests.helpers import agents_toml, call, config_for, fail, local_client

pytestmark = pytest.mark.usefixtures("store_url")

_MEASURE = "import sys; text = {source}; print(len(text.encode()), text[:3], text[-3:])"


def _toml() -> str:
    python = sys.executable.replace("\\", "\\\\")
    from_file = _MEASURE.format(source="open(sys.argv[1], encoding='utf-8').read()")
    from_stdin = _MEASURE.format(source="sys.stdin.read()")
    return (
        agents_toml()
        + f"""
[backends.local.agents.from_file]
command = ["{python}", "-c", "{from_file}", "{{prompt_file}}"]

[backends.local.agents.from_stdin]
command = ["{python}", "-c", "{from_stdin}"]
prompt_stdin = true
"""
    )


async def _output(client: object, run_id: str) -> list[str]:
    run = await call(client, "wait_for_run", {"run_id": run_id, "timeout_seconds": 50})  # type: ignore[arg-type]
    assert run["state"] == "succeeded", run
    events = await call(client, "get_run_events", {"run_id": run_id, "limit": 100})  # type: ignore[arg-type]
    return [e["text"] for e in events["events"] if e["kind"] == "stdout"]


async def test_a_prompt_of_exactly_one_argument_s_limit_starts(tmp_path: Path) -> None:
    prompt = "ab" + "x" * (MAX_ARG_BYTES - 4) + "yz"
    async with local_client(config_for(tmp_path, toml=_toml())) as client:
        run = await call(client, "spawn_agent", {"agent": "echo", "prompt": prompt})
        assert await _output(client, run["id"]) == [prompt]


@pytest.mark.parametrize("prompt", ["x" * (MAX_ARG_BYTES + 1), "é" * (MAX_ARG_BYTES // 2 + 1)], ids=["ascii", "two-byte"])
async def test_a_prompt_one_byte_over_the_argument_limit_is_refused_and_nothing_is_created(prompt: str, tmp_path: Path) -> None:
    async with local_client(config_for(tmp_path, toml=_toml())) as client:
        error = await fail(client, "spawn_agent", {"agent": "echo", "prompt": prompt, "workspace": "never-made"})
        assert error["code"] == "invalid_argument" and "{prompt_file}" in error["message"]
        assert (await call(client, "list_runs", {}))["runs"] == []
    assert not (tmp_path / "data" / "workspaces" / "never-made").exists()


async def test_the_largest_prompt_reaches_an_agent_through_a_prompt_file_that_is_removed_after(tmp_path: Path) -> None:
    prompt = "ab" + "é" * ((MAX_PROMPT_BYTES - 4) // 2) + "yz"
    async with local_client(config_for(tmp_path, toml=_toml())) as client:
        run = await call(client, "spawn_agent", {"agent": "from_file", "prompt": prompt})
        assert await _output(client, run["id"]) == [f"{len(prompt.encode())} abé éyz"]
    assert not list((tmp_path / "data" / "prompts").iterdir())


async def test_the_largest_prompt_reaches_an_agent_on_standard_input(tmp_path: Path) -> None:
    prompt = "ab" + "x" * (MAX_PROMPT_BYTES - 4) + "yz"
    async with local_client(config_for(tmp_path, toml=_toml())) as client:
        run = await call(client, "spawn_agent", {"agent": "from_stdin", "prompt": prompt})
        assert await _output(client, run["id"]) == [f"{MAX_PROMPT_BYTES} abx xyz"]
        over = await fail(client, "spawn_agent", {"agent": "from_stdin", "prompt": prompt + "!"})
        assert over["code"] == "invalid_argument" and "KiB" in over["message"]
