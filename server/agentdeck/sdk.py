"""Where agentdeck reaches past the MCP SDK's public API; tests/test_sdk.py (test_stdio.py for the stdio
loop) fails when these move.

Each use is here, and only here, so an SDK upgrade has one module to check:

- `signed`: MCPServer reads a tool's input and output schemas from its function's signature
  and annotations; a tool's function is made at start (the handler's arguments, plus `backend`
  when several exist), so its signature is written rather than declared.
- `publish`: the schemas MCPServer derives are replaced by shorter ones (schemas.py); the
  output schema is a cached property of the SDK's `Tool`, so the value goes into its cache.
- `add_request_handler`: MCPServer has no public way to serve another request method.
- `connection`: the object that lives as long as a client (a request's session is made per
  request).
- `serve_stdio_streams`: MCPServer serves stdio only on the SDK's own threaded stdin and stdout
  (stdio.py reads and writes them on the event loop); the SDK's stdio loop takes any object with
  a file's async line iteration, `write` and `flush`, and the low-level server runs on it.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from typing import Any

from mcp.server.connection import Connection
from mcp.server.context import ServerRequestContext
from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.tools import Tool
from mcp.server.stdio import stdio_server
from pydantic import BaseModel

__all__ = ["add_request_handler", "connection", "publish", "serve_stdio_streams", "signed"]


def signed(fn: Callable[..., Any], name: str, doc: str, parameters: list[inspect.Parameter], returns: Any) -> Callable[..., Any]:
    """`fn` under `name`, with `doc` and the signature MCPServer reads the tool's schemas from."""
    fn.__name__ = name
    fn.__doc__ = doc
    fn.__signature__ = inspect.Signature(parameters, return_annotation=returns)  # type: ignore[attr-defined]  # functions have no declared __signature__; inspect.signature reads it
    fn.__annotations__ = {p.name: p.annotation for p in parameters} | {"return": returns}
    return fn


def publish(tool: Tool, input_schema: dict[str, Any], output_schema: dict[str, Any]) -> None:
    """Make tools/list show these schemas for `tool`; arguments are still validated by its model.

    Results are not validated again on the way out: each is dumped from a model that was
    validated when it was built, and a second pass cost every call as much as its store read.
    (Clients validate what they receive against the published schema; the SDK's do.)
    """
    tool.parameters = input_schema
    tool.__dict__["output_schema"] = output_schema  # Tool.output_schema is a functools.cached_property
    tool.fn_metadata.output_model = None  # a schema without a model is published but not checked (FuncMetadata reads it live)


def add_request_handler(server: MCPServer[Any], method: str, params: type[BaseModel], handler: Callable[..., Awaitable[Any]]) -> None:
    """Serve `method` on `server`: `handler(ctx, params)` answers each request."""
    server._lowlevel_server.add_request_handler(method, params, handler)


def connection(ctx: ServerRequestContext[Any, Any]) -> Connection:
    """The connection a request came on: it lives as long as the client."""
    return ctx.session._connection


async def serve_stdio_streams(server: MCPServer[Any], lines: Any, output: Any) -> None:
    """Serve `server` on the SDK's stdio loop, reading `lines` and writing `output` (see stdio.py)."""
    async with stdio_server(stdin=lines, stdout=output) as (read_stream, write_stream):
        lowlevel = server._lowlevel_server
        await lowlevel.run(read_stream, write_stream, lowlevel.create_initialization_options())
