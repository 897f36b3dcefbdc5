"""Routines on the embedded platform: saved spawn templates with idempotent invocation."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import call, config_for, fail, local_client

pytestmark = pytest.mark.usefixtures("store_url")


async def test_invoke_routine_runs_its_agent_with_the_prompt_template(tmp_path: Path) -> None:
    async with local_client(config_for(tmp_path)) as client:
        routines = await call(client, "list_routines")
        assert [r["name"] for r in routines["routines"]] == ["greet"]
        run = await call(client, "invoke_routine", {"routine": "greet", "message": "world"})
        assert run["routine"] == "greet" and run["agent"] == "echo"
        await call(client, "wait_for_run", {"run_id": run["id"]})
        events = await call(client, "get_run_events", {"run_id": run["id"]})
        assert [e["text"] for e in events["events"] if e["kind"] == "stdout"] == ["Hello world"]


async def test_the_same_idempotency_key_returns_the_same_run_instead_of_a_second(tmp_path: Path) -> None:
    async with local_client(config_for(tmp_path)) as client:
        first = await call(client, "invoke_routine", {"routine": "greet", "message": "a", "idempotency_key": "deploy-42"})
        second = await call(client, "invoke_routine", {"routine": "greet", "message": "a", "idempotency_key": "deploy-42"})
        other = await call(client, "invoke_routine", {"routine": "greet", "message": "a", "idempotency_key": "deploy-43"})
        assert first["id"] == second["id"] != other["id"]
        runs = await call(client, "list_routine_runs", {"routine": "greet"})
        assert {r["id"] for r in runs["runs"]} == {first["id"], other["id"]}


async def test_routine_runs_filter_by_status_and_unknown_routines_are_not_found(tmp_path: Path) -> None:
    async with local_client(config_for(tmp_path)) as client:
        run = await call(client, "invoke_routine", {"routine": "greet", "message": "x"})
        await call(client, "wait_for_run", {"run_id": run["id"]})
        done = await call(client, "list_routine_runs", {"routine": "greet", "status": "succeeded"})
        assert [r["id"] for r in done["runs"]] == [run["id"]]
        none = await call(client, "list_routine_runs", {"routine": "greet", "status": "failed"})
        assert none["runs"] == []
        missing = await fail(client, "invoke_routine", {"routine": "nope"})
        assert missing["code"] == "not_found" and "greet" in missing["message"]
