"""B1: the smallest MCP server the SDK makes, with one tool that returns its input.

    python bench/baseline_server.py                      # stdio, as `agentdeck serve`
    python bench/baseline_server.py --http --port 8800   # Streamable HTTP at /mcp, as `agentdeck serve --http`
    python bench/baseline_server.py --agentdeck-stdio    # stdio on agentdeck's transport (information rows)

It is served exactly as agentdeck is (MCPServer.run_stdio_async; uvicorn with the SDK's
streamable_http_app), and deliberately untuned: SDK defaults everywhere. agentdeck serves stdio
on its own transport (agentdeck/stdio.py); with --agentdeck-stdio B1 does too, so a row can show
what agentdeck adds on the same transport beside the target's SDK-default B1.
"""

from __future__ import annotations

import argparse

from mcp.server.mcpserver import MCPServer

server = MCPServer("baseline")


@server.tool()
async def echo(text: str) -> str:
    """Return the input."""
    return text


def main() -> None:
    parser = argparse.ArgumentParser(prog="baseline_server")
    parser.add_argument("--http", action="store_true")
    parser.add_argument("--port", type=int, default=8800)
    parser.add_argument("--agentdeck-stdio", action="store_true")
    args = parser.parse_args()
    if args.http:
        import uvicorn

        app = server.streamable_http_app(host="127.0.0.1")
        uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning", lifespan="on")
    else:
        import anyio

        if args.agentdeck_stdio:
            from agentdeck.stdio import serve_stdio

            anyio.run(serve_stdio, server)
        else:
            anyio.run(server.run_stdio_async)


if __name__ == "__main__":
    main()
