"""The cheapest MCP proxy: B1's server with one tool that makes B2's call and returns the JSON.

    BENCH_PLATFORM_URL=http://127.0.0.1:N python bench/proxy_server.py

The baseline of issue 23's target 3: what composing one MCP hop (B1) with one HTTP call (B2)
costs on this machine before any adapter code runs; agentdeck's proxy overhead is compared
with this one's.
"""

from __future__ import annotations

import os
from typing import Any

import anyio
import httpx2
from mcp.server.mcpserver import MCPServer

server = MCPServer("proxy-floor")
client = httpx2.AsyncClient(
    base_url=os.environ["BENCH_PLATFORM_URL"],
    headers={"Authorization": f"Bearer {os.environ['BENCH_PLATFORM_KEY']}", "Accept": "application/json"},
)


@server.tool()
async def get_run(run_id: str) -> dict[str, Any]:
    """Return the platform's run as it is."""
    response = await client.get(f"/api/v1/agent/runs/{run_id}")
    response.raise_for_status()
    data: dict[str, Any] = response.json()
    return data


if __name__ == "__main__":
    anyio.run(server.run_stdio_async)
