"""The MCP boundary: the one place where a failure becomes what a client sees.

Handlers and backends raise an `AgentdeckError` and nothing else; this module answers it:

- a tool call gets a result with isError, `code: message` as its text and the error's fields
  (code, message, retryable, ...) as structured content;
- a resource read gets a protocol error: -32602 with the message for not_found, -32603 with
  `code: message` for the rest (the SDK picks the number from the exception class).

Anything else that escapes is a bug: its traceback goes to the log (stderr, never stdout), and
the client sees one generic internal error that names no detail, the same for tools and
resources. `AgentdeckServer.call_tool` and `.read_resource` (app.py) send every failure here.
"""

from __future__ import annotations

import logging

from mcp.server.mcpserver.exceptions import ResourceError, ResourceNotFoundError, ToolError, UnexpectedToolError
from mcp.types import CallToolResult, TextContent
from pydantic import ValidationError

from agentdeck.errors import AgentdeckError, InvalidArgument, NotFound

__all__ = ["INTERNAL", "ours", "resource_error", "tool_failure", "tool_result"]

log = logging.getLogger("agentdeck.boundary")

INTERNAL = "agentdeck hit an unexpected error; it is logged on the server's stderr. Try again or report it."


def ours(exc: BaseException, where: str) -> AgentdeckError:
    """`exc` as a client may see it: our error as it is; anything else logged with its traceback and hidden."""
    if isinstance(exc, AgentdeckError):
        return exc
    log.error("%s failed unexpectedly", where, exc_info=exc)
    return AgentdeckError(INTERNAL)


def tool_result(exc: AgentdeckError) -> CallToolResult:
    """The one shape of a failed tool call: isError, `code: message` as text, the fields as structure."""
    return CallToolResult(content=[TextContent(type="text", text=f"{exc.code}: {exc.message}")], structured_content=exc.to_dict(), is_error=True)


def _validation_message(exc: ValidationError) -> str:
    # Field names and pydantic's reasons only: the rejected values are the caller's data.
    parts = [f"{'.'.join(str(p) for p in err['loc']) or 'arguments'}: {err['msg']}" for err in exc.errors(include_url=False)]
    return "Invalid arguments: " + "; ".join(parts[:10]) + ". Fix them as described and call again."


def tool_failure(name: str, exc: ToolError, *, known: bool) -> CallToolResult:
    """A failed call as the SDK reports it (`known`: the server has a tool of that name).

    The SDK raises `ToolError` for an unknown name and for arguments that fail the input
    schema, and `UnexpectedToolError` around whatever the tool raised (our error included),
    with that as its cause.
    """
    if not known:
        return tool_result(NotFound(f"No tool '{name}'. Call tools/list to see the tools this server has."))
    cause = exc.__cause__
    if isinstance(cause, ValidationError) and not isinstance(exc, UnexpectedToolError):
        return tool_result(InvalidArgument(_validation_message(cause)))
    return tool_result(ours(cause or exc, f"tool {name}"))


def resource_error(uri: str, exc: BaseException) -> ResourceError:
    """What a failed resource read raises; `exc` is what the resource's function raised."""
    error = ours(exc, f"resource {uri}")
    if isinstance(error, NotFound):
        return ResourceNotFoundError(error.message)
    return ResourceError(f"{error.code}: {error.message}")
