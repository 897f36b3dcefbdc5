"""What agentdeck assumes of the installed MCP SDK beyond its public API (all of it in
agentdeck/sdk.py), and the failure paths boundary.py reads, still hold: an SDK upgrade that
moves one of them fails here, by name, before it shows up as a wrong schema or error."""

from __future__ import annotations

import inspect
import warnings
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

import pytest
from mcp import Client
from mcp.server.connection import Connection
from mcp.server.context import ServerRequestContext
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError, UnexpectedResourceError
from mcp.server.mcpserver.tools import Tool
from mcp.types import CallToolResult, EmptyResult, SubscribeRequestParams, TextContent
from pydantic import BaseModel, Field

from agentdeck import sdk
from agentdeck.errors import NotFound


class Answer(BaseModel):
    value: int
    note: str


class State:
    """What the test server's lifespan yields."""


def _counter() -> Tool:
    async def body(ctx: Context[State, Any], **kwargs: Any) -> CallToolResult:
        state = type(ctx.request_context.lifespan_context).__name__
        return CallToolResult(content=[TextContent(type="text", text="ok")], structured_content={"value": kwargs["count"], "note": state})

    parameters = [
        inspect.Parameter("count", inspect.Parameter.KEYWORD_ONLY, annotation=Annotated[int, Field(ge=1)]),
        inspect.Parameter("ctx", inspect.Parameter.KEYWORD_ONLY, annotation=Context),
    ]
    return Tool.from_function(sdk.signed(body, "count_up", "Counts up.", parameters, Annotated[CallToolResult, Answer]), name="count_up")


PUBLISHED_INPUT = {"type": "object", "properties": {"count": {"type": "integer"}}, "required": ["count"]}
PUBLISHED_OUTPUT = {"type": "object", "properties": {"value": {"type": "integer"}}, "required": ["value"]}


async def test_a_tool_takes_its_schemas_from_the_written_signature_and_lists_the_published_ones() -> None:
    tool = _counter()
    assert (tool.name, tool.description, tool.context_kwarg) == ("count_up", "Counts up.", "ctx")
    assert tool.parameters["properties"]["count"]["minimum"] == 1 and tool.parameters["required"] == ["count"]
    assert tool.output_schema is not None and tool.output_schema["required"] == ["value", "note"]
    sdk.publish(tool, PUBLISHED_INPUT, PUBLISHED_OUTPUT)

    @asynccontextmanager
    async def lifespan(_: MCPServer[State]) -> AsyncIterator[State]:
        yield State()

    async with Client(MCPServer("pin", tools=[tool], lifespan=lifespan)) as client:
        (listed,) = (await client.list_tools()).tools
        done = await client.call_tool("count_up", {"count": 2})
        refused = await client.call_tool("count_up", {"count": 0})
    assert (listed.input_schema, listed.output_schema) == (PUBLISHED_INPUT, PUBLISHED_OUTPUT)
    # The call reads what the lifespan yielded, and arguments are still checked by the signature's model.
    assert done.structured_content == {"value": 2, "note": "State"}
    assert refused.is_error


async def test_a_published_tool_result_is_not_validated_again_by_the_server() -> None:
    """Results are dumped from models validated when built; the SDK's second pass (a pydantic
    validation per call) is switched off by `publish`, and the published schema is what clients check."""

    async def body(ctx: Context[State, Any]) -> CallToolResult:
        return CallToolResult(content=[TextContent(type="text", text="ok")], structured_content={"value": 1})  # no "note": Answer would refuse it

    signed = sdk.signed(body, "partial", "Answers part of Answer.", [inspect.Parameter("ctx", inspect.Parameter.KEYWORD_ONLY, annotation=Context)], Annotated[CallToolResult, Answer])
    checked, published = Tool.from_function(signed, name="partial"), Tool.from_function(signed, name="published")
    sdk.publish(published, {"type": "object", "properties": {}}, PUBLISHED_OUTPUT)
    async with Client(MCPServer("pin", tools=[checked, published])) as client:
        refused = await client.call_tool("partial", {})
        answered = await client.call_tool("published", {})
    assert refused.is_error  # the SDK validates against the model when nothing was published
    assert not answered.is_error and answered.structured_content == {"value": 1}


async def test_an_added_request_handler_serves_its_method_and_sees_one_connection_per_client() -> None:
    seen: list[Connection] = []

    async def subscribe(ctx: ServerRequestContext[Any, Any], params: SubscribeRequestParams) -> EmptyResult:
        seen.append(sdk.connection(ctx))
        return EmptyResult()

    server: MCPServer[Any] = MCPServer("pin")
    sdk.add_request_handler(server, "resources/subscribe", SubscribeRequestParams, subscribe)
    async with Client(server, mode="legacy") as client:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # resources/subscribe is deprecated at 2026-07-28, and this is the 2025 era
            await client.subscribe_resource("pin://one")
            await client.subscribe_resource("pin://two")
    assert len(seen) == 2 and isinstance(seen[0], Connection) and seen[0] is seen[1]


async def test_our_error_raised_in_a_tool_or_a_resource_reaches_the_server_as_the_cause_of_the_sdk_error() -> None:
    server: MCPServer[Any] = MCPServer("pin")

    @server.tool()
    async def lookup() -> str:
        raise NotFound("No such thing.")

    @server.resource("pin://things/{name}")
    async def thing(name: str) -> str:
        raise NotFound(f"No thing {name}.")

    with pytest.raises(ToolError) as tool_failed:
        await server.call_tool("lookup", {})
    with pytest.raises(UnexpectedResourceError) as read_failed:
        await server.read_resource("pin://things/x")
    assert isinstance(tool_failed.value.__cause__, NotFound) and isinstance(read_failed.value.__cause__, NotFound)
