"""`agentdeck demo`: the whole mission, through a real MCP client over stdio.

It starts `agentdeck serve` twice as subprocesses, as two identities sharing one fresh data
dir (a planner and a reviewer), and walks every operation on the embedded platform.
"""

from __future__ import annotations

import os
import sys
import tempfile
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import anyio

__all__ = ["run_demo"]


def _say(text: str) -> None:
    print(text, flush=True)


def _server(data_dir: Path, config: Path, identity: str) -> Any:
    from mcp import StdioServerParameters

    env = {**os.environ, "AGENTDECK_DATA_DIR": str(data_dir), "AGENTDECK_CONFIG": str(config), "AGENTDECK_IDENTITY": identity, "AGENTDECK_LOG_LEVEL": "warning"}
    return StdioServerParameters(command=sys.executable, args=["-m", "agentdeck", "serve"], env=env)


async def _call(client: Any, tool: str, arguments: dict[str, Any], who: str) -> dict[str, Any]:
    _say(f"\n$ {who}: {tool}({', '.join(f'{k}={v!r}' for k, v in arguments.items())})")
    result = await client.call_tool(tool, arguments)
    text = "\n".join(block.text for block in result.content if getattr(block, "text", None))
    _say("  " + text.replace("\n", "\n  "))
    if result.is_error:
        raise RuntimeError(f"{tool} failed: {text}")
    return result.structured_content or {}


async def _demo(data_dir: Path) -> None:
    from mcp import Client

    config = data_dir / "demo-config.toml"
    config.write_text("# the built-in defaults: the echo agent and the greet routine\n")
    async with AsyncExitStack() as stack:
        planner = await stack.enter_async_context(Client(_server(data_dir, config, "planner")))
        reviewer = await stack.enter_async_context(Client(_server(data_dir, config, "reviewer")))
        _say(f"Two MCP clients connected over stdio, as 'planner' and 'reviewer', sharing {data_dir}.")

        _say("\n== 1. Spawn an agent and follow its run")
        await _call(planner, "list_agents", {}, "planner")
        run = await _call(planner, "spawn_agent", {"agent": "echo", "prompt": "Hello from agentdeck!\nEvery output line becomes a run event."}, "planner")
        run = await _call(planner, "wait_for_run", {"run_id": run["id"], "timeout_seconds": 30}, "planner")
        if run["state"] != "succeeded":
            raise RuntimeError(f"the echo run ended {run['state']}")
        await _call(planner, "get_run_events", {"run_id": run["id"]}, "planner")

        _say("\n== 2. Talk on a coordination channel; the reviewer is notified when a message lands")
        _say("\n$ reviewer: subscriptions/listen(agentdeck://channels/general)")
        async with reviewer.listen(resource_subscriptions=["agentdeck://channels/general"]) as updates:
            await _call(planner, "send_channel_message", {"channel": "general", "body": "Can someone review the echo run?", "kind": "request"}, "planner")
            with anyio.fail_after(10):
                event = await anext(updates)
            _say(f"  notifications/resources/updated {getattr(event, 'uri', '?')} (from the planner's server process, through the store)")
        batch = await _call(reviewer, "receive_channel_messages", {"channel": "general", "wait_seconds": 10}, "reviewer")
        if not batch["messages"]:
            raise RuntimeError("the reviewer received nothing")
        await _call(reviewer, "send_channel_message", {"channel": "general", "body": "On it.", "reply_to": batch["messages"][0]["id"]}, "reviewer")
        await _call(planner, "receive_channel_messages", {"channel": "general", "wait_seconds": 10}, "planner")

        _say("\n== 3. Queue a task; another agent claims and completes it")
        await _call(planner, "create_task", {"title": "Review the echo run", "payload": {"run_id": run["id"]}}, "planner")
        claim = await _call(reviewer, "claim_task", {}, "reviewer")
        lease = claim["lease"]
        await _call(reviewer, "heartbeat_task", {"run_id": lease["run_id"], "claim_token": lease["claim_token"]}, "reviewer")
        await _call(reviewer, "complete_task", {"run_id": lease["run_id"], "claim_token": lease["claim_token"], "result": {"verdict": "looks good"}}, "reviewer")

        _say("\n== 4. Invoke a routine")
        await _call(planner, "list_routines", {}, "planner")
        routine_run = await _call(planner, "invoke_routine", {"routine": "greet", "message": "from the demo", "idempotency_key": "demo-1"}, "planner")
        await _call(planner, "wait_for_run", {"run_id": routine_run["id"], "timeout_seconds": 30}, "planner")

        _say("\n== 5. List runs")
        await _call(planner, "list_runs", {"limit": 10}, "planner")
    _say("\nDemo complete: every operation ran on the embedded platform through MCP over stdio.")


def run_demo(data_dir: Path | None = None) -> int:
    with tempfile.TemporaryDirectory(prefix="agentdeck-demo-") as tmp:
        target = data_dir or Path(tmp)
        target.mkdir(parents=True, exist_ok=True)
        try:
            anyio.run(_demo, target)
        except Exception as exc:  # the demo reports, it does not dump a traceback on a new user
            print(f"\nDemo failed: {exc}", file=sys.stderr)
            return 1
    return 0
