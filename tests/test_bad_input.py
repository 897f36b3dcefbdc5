"""Bad input gets a clean isError result with a stable code and a next step, never a crash."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import call, config_for, fail, local_client

CASES = [
    ("spawn_agent", {"agent": "nope", "prompt": "x"}, "not_found", "list_agents"),
    ("spawn_agent", {"agent": "echo"}, "invalid_argument", "prompt"),
    ("spawn_agent", {"agent": "echo", "prompt": "x", "workspace": "../../etc"}, "invalid_argument", "workspace"),
    ("spawn_agent", {"agent": "echo", "prompt": "x", "parent_run_id": "run_missing"}, "not_found", "list_runs"),
    ("spawn_agent", {"agent": "echo", "prompt": "x", "metadata": "team=docs"}, "invalid_argument", "metadata"),
    ("spawn_agent", {"agent": "echo", "prompt": "x", "metadata": "[1, 2]"}, "invalid_argument", "metadata"),
    ("spawn_agent", {"agent": "echo", "prompt": "a\0b"}, "invalid_argument", "NUL"),
    ("spawn_agent", {"agent": "echo", "prompt": "x", "workspace": "a\0b"}, "invalid_argument", "workspace"),
    ("spawn_agent", {"agent": "echo", "prompt": "x", "workspace": "w" * 1000}, "invalid_argument", "workspace"),
    ("spawn_agent", {"agent": "echo", "prompt": "x", "workspace": "/".join(["w" * 200] * 6)}, "invalid_argument", "workspace"),
    ("get_run", {"run_id": "run_missing"}, "not_found", "list_runs"),
    ("get_run", {"run_id": ""}, "invalid_argument", "run_id"),
    ("cancel_run", {"run_id": "run_missing"}, "not_found", "list_runs"),
    ("get_run_events", {"run_id": "run_missing"}, "not_found", "list_runs"),
    ("send_followup", {"run_id": "run_missing", "message": "x"}, "not_found", "list_runs"),
    ("list_runs", {"limit": -1}, "invalid_argument", "limit"),
    ("list_runs", {"limit": 0}, "invalid_argument", "limit"),
    ("list_runs", {"state": "exploded"}, "invalid_argument", "state"),
    ("list_runs", {"cursor": "garbage"}, "invalid_argument", "cursor"),
    ("get_run_events", {"run_id": "x", "after_seq": -5}, "invalid_argument", "after_seq"),
    ("send_channel_message", {"channel": "", "body": "x"}, "invalid_argument", "channel"),
    ("send_channel_message", {"channel": "bad name!", "body": "x"}, "invalid_argument", "channel"),
    ("send_channel_message", {"channel": "general", "body": "x" * 70_000}, "invalid_argument", "KiB"),
    ("send_channel_message", {"channel": "general", "body": "a\0b"}, "invalid_argument", "NUL"),
    ("receive_channel_messages", {"channel": "general", "limit": -3}, "invalid_argument", "limit"),
    ("receive_channel_messages", {"channel": "general", "wait_seconds": 3600}, "invalid_argument", "wait_seconds"),
    ("receive_channel_messages", {"channel": "general", "after": "9223372036854775808"}, "invalid_argument", "after"),
    ("receive_channel_messages", {"channel": "general", "after": "9" * 40}, "invalid_argument", "after"),
    ("receive_channel_messages", {"channel": "general", "after": "\u00b2"}, "invalid_argument", "after"),
    ("send_channel_message", {"channel": "general", "body": "x", "reply_to": "99999999999999999999"}, "invalid_argument", "reply_to"),
    ("create_task", {"title": "   "}, "invalid_argument", "title"),
    ("create_task", {"title": "t", "payload": {"blob": "x" * 300_000}}, "invalid_argument", "payload"),
    ("create_task", {"title": "t", "max_attempts": 0}, "invalid_argument", "max_attempts"),
    ("claim_task", {"queue": "../etc"}, "invalid_argument", "queue"),
    ("heartbeat_task", {"run_id": "trun_missing", "claim_token": "x"}, "not_found", "claim_task"),
    ("invoke_routine", {"routine": "nope"}, "not_found", "list_routines"),
    ("list_routine_runs", {"routine": "greet", "limit": 1000}, "invalid_argument", "limit"),
    ("no_such_tool", {}, "not_found", "tools/list"),
]


@pytest.mark.parametrize(("tool", "arguments", "code", "hint"), CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
async def test_bad_arguments_give_a_coded_error_naming_what_to_fix(tool: str, arguments: dict[str, object], code: str, hint: str, tmp_path: Path) -> None:
    async with local_client(config_for(tmp_path)) as client:
        error = await fail(client, tool, arguments)
        assert error["code"] == code
        assert hint in error["message"]
        await call(client, "list_agents")  # the server is still up and answering


async def test_an_unknown_resource_is_a_protocol_error_not_a_crash(tmp_path: Path) -> None:
    from mcp import MCPError

    async with local_client(config_for(tmp_path)) as client:
        with pytest.raises(MCPError) as caught:
            await client.read_resource("agentdeck://runs/run_missing")
        assert "No run" in str(caught.value)
        await call(client, "list_agents")


def _as_a_strict_model_fills_them(schema: dict[str, object], given: dict[str, object]) -> dict[str, object]:
    """OpenAI strict mode makes a model send every argument: "" for an unused string, null for the rest."""
    arguments = dict(given)
    for name, field in schema["properties"].items():  # type: ignore[attr-defined]
        if name not in arguments:
            arguments[name] = field.get("default", "" if field.get("type") == "string" else None)
    return arguments


async def test_every_argument_filled_in_the_way_a_strict_model_does_means_none(tmp_path: Path) -> None:
    async with local_client(config_for(tmp_path)) as client:
        schemas = {tool.name: tool.input_schema for tool in (await client.list_tools()).tools}
        run = await call(client, "spawn_agent", _as_a_strict_model_fills_them(schemas["spawn_agent"], {"agent": "echo", "prompt": "hi"}))
        assert run["state"] in ("queued", "running", "succeeded") and run["name"] is None
        page = await call(client, "list_runs", _as_a_strict_model_fills_them(schemas["list_runs"], {}))
        assert [r["id"] for r in page["runs"]] == [run["id"]]
        task = await call(client, "create_task", _as_a_strict_model_fills_them(schemas["create_task"], {"title": "t"}))
        assert task["queue"] == "default" and task["payload"] is None
        sent = await call(client, "send_channel_message", _as_a_strict_model_fills_them(schemas["send_channel_message"], {"channel": "general", "body": "hi"}))
        assert sent["kind"] == "message" and sent["reply_to"] is None


async def test_metadata_comes_as_json_text_or_as_an_object(tmp_path: Path) -> None:
    async with local_client(config_for(tmp_path)) as client:
        as_text = await call(client, "spawn_agent", {"agent": "echo", "prompt": "x", "metadata": '{"team": "docs"}'})
        as_object = await call(client, "spawn_agent", {"agent": "echo", "prompt": "x", "metadata": {"team": "docs"}})
    assert as_text["metadata"] == as_object["metadata"] == {"team": "docs"}
