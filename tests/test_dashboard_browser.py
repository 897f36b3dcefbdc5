"""The dashboard in a real browser: headless Chromium against a live `agentdeck ui`, with agents
working through MCP in other processes. Nothing is reloaded between the steps: a marker set
on the page's window survives only if the page was never navigated away from."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.cdp import CHROMIUM, chromium_page
from tests.helpers import agents_toml, call, config_for, local_client, server_env
from tests.ui_helpers import ui_server

TICKER = """
[backends.local.agents.ticker]
command = ["{python}", "-c", "import time\\nfor i in range(600):\\n    print('tick', i, '<b>bold</b>', flush=True)\\n    time.sleep(0.2)"]
description = "prints a line five times a second for two minutes"
ttl_seconds = 300
"""

HOSTILE = '<img src=x onerror="window.pwned = 1; alert(1)"><script>window.pwned = 2</script>'
SCREENSHOT = Path(__file__).resolve().parent.parent / "docs" / "dashboard.png"


@pytest.fixture(autouse=True)
def _needs_chromium() -> None:
    if not os.access(CHROMIUM, os.X_OK):
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI needs Chromium at {CHROMIUM}; .ci/run installs it")
        pytest.skip(f"browser tests need Chromium at {CHROMIUM}")


def _call(env: dict[str, str], tool: str, **arguments: str) -> dict:  # type: ignore[type-arg]
    done = subprocess.run([sys.executable, "-m", "agentdeck", "call", tool, "--json", json.dumps(arguments)], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)  # type: ignore[no-any-return]


async def test_the_dashboard_follows_agents_live_and_a_person_steps_in(tmp_path: Path) -> None:
    python = sys.executable.replace("\\", "\\\\")
    config = config_for(tmp_path, identity="agent-a", toml=agents_toml() + TICKER.format(python=python))
    other_process = server_env(tmp_path, identity="agent-b")
    async with local_client(config) as agent, chromium_page() as page:
        _call(other_process, "send_channel_message", channel="general", body="agent-b is here")
        with ui_server(server_env(tmp_path), "--as", "alice") as url:
            await page.goto(url)
            await page.wait_for("document.getElementById('live-state').textContent === 'live'")
            await page.evaluate("window.marker = 'no reload'")

            # a run started through MCP appears, and its output streams in
            run = await call(agent, "spawn_agent", {"agent": "ticker", "prompt": "go", "name": "ticker-1"})
            await page.wait_for(f"!!document.querySelector('[data-run=\"{run['id']}\"]')")
            assert await page.evaluate("window.marker") == "no reload"
            await page.click(f"[data-run=\"{run['id']}\"] a")
            await page.wait_for(f"location.pathname.endsWith('/{run['id']}') && document.readyState === 'complete'")
            await page.wait_for("document.getElementById('live-state').textContent === 'live'")
            await page.evaluate("window.marker = 'run page'")
            first = await page.wait_for("document.querySelectorAll('#output .line').length")
            later = await page.wait_for(f"document.querySelectorAll('#output .line').length >= {first + 10} && document.querySelectorAll('#output .line').length")
            assert later >= first + 10 and await page.evaluate("window.marker") == "run page"
            assert (await page.evaluate("document.querySelector('#output .line').textContent")).startswith("tick 0 <b>bold</b>")
            assert await page.evaluate("document.querySelectorAll('#output b').length") == 0

            # a cancel from the page stops the run
            await page.click("#cancel-run")
            await page.wait_for("document.getElementById('run-state') && document.getElementById('run-state').textContent === 'cancelled'", timeout=30)
            assert (await call(agent, "get_run", {"run_id": run["id"]}))["state"] == "cancelled"

            # a message posted by another process appears without reload, as text
            await page.goto(f"{url}channels/local/general")
            await page.wait_for("document.getElementById('live-state').textContent === 'live'")
            await page.evaluate("window.marker = 'channel page'")
            _call(other_process, "send_channel_message", channel="general", body=HOSTILE)
            body = await page.wait_for("[...document.querySelectorAll('pre.body')].map(b => b.textContent).find(t => t.includes('onerror'))")
            assert body == HOSTILE
            assert await page.evaluate("window.marker") == "channel page"
            assert await page.evaluate("window.pwned === undefined") and page.dialogs() == []
            assert await page.evaluate("document.querySelectorAll('#channel img, #channel script').length") == 0

            # a person's post reaches an agent's receive_channel_messages, marked as theirs
            await page.fill("#post-body", "alice here: please stop and summarise")
            await page.click("#post-send")
            await page.wait_for("document.readyState === 'complete' && !!document.getElementById('post-body') && document.getElementById('post-body').value === ''")
            await page.wait_for("[...document.querySelectorAll('li.message.human pre.body')].some(b => b.textContent.includes('alice here'))")
            received = await call(agent, "receive_channel_messages", {"channel": "general", "wait_seconds": 10})
            mine = [m for m in received["messages"] if m["sender"] == "human:alice"]
            assert [m["body"] for m in mine] == ["alice here: please stop and summarise"]
            text = (await agent.call_tool("receive_channel_messages", {"channel": "general", "after": "0"})).content[0].text  # type: ignore[union-attr]
            assert "from human:alice" in text and "content from a person" in text

            # the audit trail shows both actions
            await page.goto(f"{url}audit")
            audit = await page.evaluate("document.getElementById('audit').textContent")
            assert "human:alice" in audit and "cancel" in audit and "post" in audit

            await page.goto(f"{url}channels/local/general")
            await page.wait_for("document.getElementById('live-state').textContent === 'live'")
            shot = SCREENSHOT if os.environ.get("AGENTDECK_UPDATE_SCREENSHOT") else tmp_path / "dashboard.png"
            await page.screenshot(shot)
            assert shot.read_bytes().startswith(b"\x89PNG")
