"""The whole agentdeck scenario through openai-agents, with its default 5 s call timeout.

Run by tests/test_framework_snippets.py in the framework's own environment, with `agentdeck` on
PATH. Every tool of the default local configuration is called; the waits ask for far more than
5 s and are kept within it by max_wait_seconds = 3, as the README tells openai-agents users.
"""

import asyncio
import json
import os

from agents import Agent, RunContextWrapper
from agents.mcp import MCPServerStdio

DONE = ("succeeded", "failed", "cancelled")


async def main() -> None:
    params = {"command": "agentdeck", "args": ["serve"], "env": {**os.environ, "AGENTDECK_MAX_WAIT_SECONDS": "3"}}
    async with MCPServerStdio(params=params) as deck:  # client_session_timeout_seconds left at its default
        assert deck.client_session_timeout_seconds == 5
        called: set[str] = set()

        async def call(name: str, arguments: dict | None = None) -> dict:
            result = await deck.call_tool(name, arguments or {})
            assert not result.is_error, (name, result.content)
            called.add(name)
            return result.structured_content

        async def finish(run: dict) -> dict:
            while run["state"] not in DONE:
                run = await call("wait_for_run", {"run_id": run["id"], "timeout_seconds": 50})
            return run

        listed = await deck.list_tools()
        agent = Agent(name="ops", mcp_servers=[deck], mcp_config={"convert_schemas_to_strict": True})
        tools = await agent.get_mcp_tools(RunContextWrapper(context=None))  # what Runner.run hands the model
        assert all(tool.strict_json_schema for tool in tools), [t.name for t in tools if not t.strict_json_schema]

        assert any(agent["name"] == "echo" for agent in (await call("list_agents"))["agents"])
        run = await finish(await call("spawn_agent", {"agent": "echo", "prompt": "hello"}))
        assert run["state"] == "succeeded", run
        assert (await call("get_run", {"run_id": run["id"]}))["state"] == "succeeded"
        assert (await call("get_run_events", {"run_id": run["id"]}))["events"]
        assert (await call("list_runs", {}))["runs"]
        again = await finish(await call("send_followup", {"run_id": run["id"], "message": "again"}))
        assert again["state"] == "succeeded", again

        # Nobody writes here: the server would wait 50 s, the client gives up at 5 s; the cap wins.
        assert (await call("receive_channel_messages", {"channel": "quiet", "wait_seconds": 50}))["messages"] == []
        sent = await call("send_channel_message", {"channel": "general", "body": "hi"})
        assert sent["from_you"]
        assert any(c["name"] == "general" for c in (await call("list_channels"))["channels"])

        task = await call("create_task", {"title": "review", "payload": json.dumps({"pr": 7})})
        lease = (await call("claim_task", {}))["lease"]
        assert lease["task"]["id"] == task["id"]
        token = {"run_id": lease["run_id"], "claim_token": lease["claim_token"]}
        await call("heartbeat_task", token)
        assert (await call("complete_task", {**token, "result": "done"}))["state"] == "completed"
        for tool, state in (("fail_task", "failed"), ("release_task", "queued")):
            await call("create_task", {"title": tool, "max_attempts": 1})
            lease = (await call("claim_task", {}))["lease"]
            extra = {"error": "no", "retryable": False} if tool == "fail_task" else {}
            assert (await call(tool, {"run_id": lease["run_id"], "claim_token": lease["claim_token"], **extra}))["state"] == state

        assert any(r["name"] == "greet" for r in (await call("list_routines"))["routines"])
        greeted = await finish(await call("invoke_routine", {"routine": "greet", "message": "you"}))
        assert greeted["state"] == "succeeded", greeted
        assert (await call("list_routine_runs", {"routine": "greet"}))["runs"]

        cancelled = await call("spawn_agent", {"agent": "echo", "prompt": "bye"})
        result = await deck.call_tool("cancel_run", {"run_id": cancelled["id"]})  # may have ended already: conflict
        assert not result.is_error or result.structured_content["code"] == "conflict", result.content
        called.add("cancel_run")

        missing = {tool.name for tool in listed} - called
        assert not missing, f"not called: {missing}"
        print(f"scenario passed: {len(called)} tools")


asyncio.run(main())
