"""Driving a connected client: sequential latencies and concurrent throughput of one tool call."""

from __future__ import annotations

import time
from typing import Any

import anyio
from mcp import Client

__all__ = ["call", "latencies", "throughput"]


async def call(client: Client, tool: str, args: dict[str, Any]) -> dict[str, Any]:
    """One call that must succeed (a benchmark of failures would measure the wrong thing)."""
    result = await client.call_tool(tool, args)
    if result.is_error:
        raise RuntimeError(f"{tool} failed: {result.content}")
    return result.structured_content or {}


async def latencies(client: Client, tool: str, args: dict[str, Any], n: int) -> list[float]:
    """Seconds per call, for `n` calls one after another."""
    out: list[float] = []
    for _ in range(n):
        started = time.perf_counter()
        result = await client.call_tool(tool, args)
        out.append(time.perf_counter() - started)
        if result.is_error:
            raise RuntimeError(f"{tool} failed: {result.content}")
    return out


async def throughput(client: Client, tool: str, args: dict[str, Any], total: int, concurrency: int) -> float:
    """Calls per second with `concurrency` calls in flight on one session, `total` calls in all."""
    remaining = total
    failures: list[str] = []

    async def worker() -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            result = await client.call_tool(tool, args)
            if result.is_error:
                failures.append(str(result.content))

    started = time.perf_counter()
    async with anyio.create_task_group() as tg:
        for _ in range(concurrency):
            tg.start_soon(worker)
    elapsed = time.perf_counter() - started
    if failures:
        raise RuntimeError(f"{tool} failed {len(failures)} times: {failures[0]}")
    return total / elapsed
