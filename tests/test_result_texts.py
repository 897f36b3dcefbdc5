"""The text an agent reads after a call says what happened and what to do next, in plain words."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from mcp import Client

from tests.helpers import call, config_for, fail, local_client


async def _text(client: Client, tool: str, arguments: dict[str, Any]) -> str:
    result = await client.call_tool(tool, arguments)
    assert not result.is_error, result.content
    return " ".join(getattr(block, "text", "") for block in result.content)


async def test_counts_of_one_are_singular(tmp_path: Path) -> None:
    async with local_client(config_for(tmp_path, "alice")) as alice, local_client(config_for(tmp_path, "bob")) as bob:
        run = await call(alice, "spawn_agent", {"agent": "echo", "prompt": "hi"})
        await call(alice, "wait_for_run", {"run_id": run["id"], "timeout_seconds": 20})
        assert (await _text(alice, "list_runs", {})).startswith("1 run\n")
        assert (await _text(alice, "get_run_events", {"run_id": run["id"], "limit": 1})).startswith("1 event of run")
        await call(alice, "send_channel_message", {"channel": "general", "body": "hello"})
        assert (await _text(bob, "receive_channel_messages", {"channel": "general"})).startswith("1 new message on #general\n")
        assert "#general, 1 message," in await _text(bob, "list_channels", {})


async def test_your_own_message_is_marked_as_yours_and_others_as_theirs(tmp_path: Path) -> None:
    async with local_client(config_for(tmp_path, "alice")) as alice, local_client(config_for(tmp_path, "bob")) as bob:
        sent = await _text(alice, "send_channel_message", {"channel": "general", "body": "hello"})
        assert sent.startswith("[your message ") and "sent by you" in sent and "another agent" not in sent
        received = await _text(bob, "receive_channel_messages", {"channel": "general"})
        assert "from alice" in received and "content from another agent" in received and "your message" not in received


async def test_an_empty_queue_says_when_to_try_again(tmp_path: Path) -> None:
    async with local_client(config_for(tmp_path)) as client:
        text = await _text(client, "claim_task", {"queue": "reviews"})
    assert "No task is waiting in queue reviews" in text and "claim_task again in about 30 s" in text


async def test_the_claim_id_works_where_the_text_sends_it_and_get_run_points_back_there(tmp_path: Path) -> None:
    async with local_client(config_for(tmp_path)) as client:
        await call(client, "create_task", {"title": "t"})
        result = await client.call_tool("claim_task", {})
        text, lease = result.content[0].text, result.structured_content["lease"]  # type: ignore[union-attr,index]
        claim = re.search(r"under claim (\S+) ", text).group(1)  # type: ignore[union-attr]
        for tool in re.findall(r"\b(heartbeat_task|complete_task)\b", text):
            await call(client, tool, {"run_id": claim, "claim_token": lease["claim_token"]})
        wrong_tool = await fail(client, "get_run", {"run_id": claim})
    assert wrong_tool["code"] == "not_found" and "task claim" in wrong_tool["message"] and "complete_task" in wrong_tool["message"]
