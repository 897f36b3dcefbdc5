"""Long outputs stay readable: texts are cut with a note, the structured result keeps them whole."""

from __future__ import annotations

from pathlib import Path

from tests.helpers import call, config_for, local_client


async def test_a_long_message_is_cut_in_the_text_with_a_note_and_kept_whole_in_the_structure(tmp_path: Path) -> None:
    async with local_client(config_for(tmp_path, "alice")) as alice, local_client(config_for(tmp_path, "bob")) as bob:
        await call(alice, "send_channel_message", {"channel": "general", "body": "y" * 10_000})
        result = await bob.call_tool("receive_channel_messages", {"channel": "general"})
        text = result.content[0].text  # type: ignore[union-attr]
        assert "8000 more characters" in text and len(text) < 3000
        assert result.structured_content["messages"][0]["body"] == "y" * 10_000  # type: ignore[index]


async def test_a_long_output_line_is_cut_in_the_events_text(tmp_path: Path) -> None:
    async with local_client(config_for(tmp_path)) as client:
        run = await call(client, "spawn_agent", {"agent": "echo", "prompt": "z" * 5000})
        await call(client, "wait_for_run", {"run_id": run["id"]})
        result = await client.call_tool("get_run_events", {"run_id": run["id"]})
        text = result.content[0].text  # type: ignore[union-attr]
        assert "3000 more characters" in text and "events[0].text" in text
        assert result.structured_content["events"][0]["text"] == "z" * 5000  # type: ignore[index]
