"""Issue 23, target 5: list_runs and claim_task with 100,000 runs and tasks in the store against
100 (<= 1.3 x); receive_channel_messages by a reader that has sent 300,000 messages against one
that sent one (<= 1.2 x). The dashboard's pages at the same sizes are in bench/dashboard.py.

The stores are seeded once per run with bulk SQL (bench/stores.py) and shared with the
dashboard rows. One agentdeck process serves each store; per repeat both are timed in
alternating order. A claim is timed alone; the task is released after it, untimed, so the store
keeps its size. The same operations on the Store class in this process are in the notes, which
separates the database's share from the server's.
"""

from __future__ import annotations

import time
from contextlib import AsyncExitStack
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from mcp import Client

from agentdeck.backends.local.store.sqlite_db import SqliteDb
from bench.calls import call, latencies
from bench.servers import agentdeck
from bench.settings import Settings
from bench.stats import Row, percentile, summarize
from bench.stores import LARGE, READER, SMALL, own_messages, sized

__all__ = ["run"]

OWN_FEW, OWN_MANY = 1, 300_000


async def _receive_rows(settings: Settings, log: Any) -> list[Row]:
    """Receive after the first message: one message back, past the reader's own 1 or 300,000."""
    repeats, n = settings.pick(5, 3), settings.pick(100, 60)
    servers = {own: agentdeck(settings.dir(f"scale-receive-{own}"), log, identity=READER, data_dir=own_messages(settings, own)) for own in (OWN_FEW, OWN_MANY)}
    args = {"channel": "bench", "after": "1", "limit": 20}
    p50: dict[int, list[float]] = {own: [] for own in servers}
    async with AsyncExitStack() as stack:
        clients = {own: await stack.enter_async_context(server.client()) for own, server in servers.items()}
        for own, client in clients.items():
            got = [m["body"] for m in (await call(client, "receive_channel_messages", args))["messages"]]
            if got != ["after"]:
                raise RuntimeError(f"expected the peer's last message past {own} own ones, got {got}")
            await latencies(client, "receive_channel_messages", args, 20)
        for repeat in range(repeats):
            for own in (OWN_FEW, OWN_MANY) if repeat % 2 == 0 else (OWN_MANY, OWN_FEW):
                samples = await latencies(clients[own], "receive_channel_messages", args, n)
                p50[own].append(percentile(samples, 50) * 1000)
    settings.say(f"scale: receive p50 {p50}")
    many, few = p50[OWN_MANY], p50[OWN_FEW]
    return [
        Row(
            "23.5 receive",
            f"receive_channel_messages p50 after {OWN_MANY:,} own messages",
            summarize(many, "ms"),
            summarize(few, "ms"),
            f"after {OWN_FEW}",
            "<=",
            1.2,
            ratio_repeats=[a / b for a, b in zip(many, few, strict=True)],
            note="the reader's own messages are one streak, skipped in the page query by its head's streak_last, not scanned",
        )
    ]


def _iso(moment: float) -> str:
    return datetime.fromtimestamp(moment, tz=UTC).isoformat()


def _operations(now: float) -> dict[str, dict[str, Any]]:
    return {
        "list_runs": {},
        "list_runs state": {"state": "failed"},
        "list_runs created_after": {"created_after": _iso(now - 60)},
        "claim_task": {},
    }


async def _claims(client: Client, n: int) -> list[float]:
    out = []
    for _ in range(n):
        started = time.perf_counter()
        lease = (await call(client, "claim_task", {}))["lease"]
        out.append(time.perf_counter() - started)
        await call(client, "release_task", {"run_id": lease["run_id"], "claim_token": lease["claim_token"]})
    return out


def _store_p50(data_dir: Path, now: float, n: int) -> dict[str, float]:
    """The same operations straight on the SqliteDb (ms, p50): the database's share of the cost."""
    store = SqliteDb(data_dir / "agentdeck.db")
    try:
        ops = {
            "list_runs": lambda: store.list_runs({}, 21, None),
            "list_runs state": lambda: store.list_runs({"state": "failed"}, 21, None),
            "list_runs created_after": lambda: store.list_runs({"created_after": now - 60}, 21, None),
        }
        out = {}
        for name, op in ops.items():
            times = []
            for _ in range(n):
                started = time.perf_counter()
                op()
                times.append(time.perf_counter() - started)
            out[name] = percentile(times, 50) * 1000
        times = []
        for _ in range(n):
            started = time.perf_counter()
            task = store.claim_next("default", "bench", 300, time.time())
            times.append(time.perf_counter() - started)
            assert task is not None
            store.settle(task["lease_run_id"], task["claim_token"], "released", time.time(), holder="bench")
        out["claim_task"] = percentile(times, 50) * 1000
        return out
    finally:
        store.close()


async def run(settings: Settings) -> list[Row]:
    repeats, n = settings.pick(5, 3), settings.pick(100, 50)
    log = settings.log("scale")
    now, dirs = sized(settings)
    servers = {size: agentdeck(settings.dir(f"scale-{size}"), log, data_dir=data_dir) for size, data_dir in dirs.items()}
    operations = _operations(now)
    p50: dict[tuple[str, int], list[float]] = {(op, size): [] for op in operations for size in servers}
    async with AsyncExitStack() as stack:
        clients = {size: await stack.enter_async_context(server.client()) for size, server in servers.items()}
        for size, client in clients.items():  # warm-up, and a check that the data is what we meant
            page = await call(client, "list_runs", operations["list_runs created_after"])
            if len(page["runs"]) != 5:
                raise RuntimeError(f"expected 5 recent runs in the {size} store, got {len(page['runs'])}")
            for op, args in operations.items():
                await (_claims(client, 20) if op == "claim_task" else latencies(client, "list_runs", args, 20))
        for repeat in range(repeats):
            for op, args in operations.items():
                for size in (SMALL, LARGE) if repeat % 2 == 0 else (LARGE, SMALL):
                    client = clients[size]
                    samples = await (_claims(client, n) if op == "claim_task" else latencies(client, "list_runs", args, n))
                    p50[(op, size)].append(percentile(samples, 50) * 1000)
    store = {size: _store_p50(dirs[size], now, n) for size in servers}
    settings.say(f"scale: p50 {p50}; store p50 {store}")
    rows = []
    for op, args in operations.items():
        large, small = p50[(op, LARGE)], p50[(op, SMALL)]
        shown = ", ".join(f"{k}={v}" for k, v in args.items() if k != "created_after") or "no filter"
        if "created_after" in args:
            shown = "created_after=1 min ago (5 match)"
        rows.append(
            Row(
                f"23.5 {op}",
                f"{op.split()[0]} ({shown}) p50 at {LARGE:,}",
                summarize(large, "ms"),
                summarize(small, "ms"),
                f"at {SMALL}",
                "<=",
                1.3,
                ratio_repeats=[a / b for a, b in zip(large, small, strict=True)],
                note=f"Store alone: {store[LARGE][op]:.3f} ms at {LARGE:,} vs {store[SMALL][op]:.3f} ms at {SMALL}",
            )
        )
    return rows + await _receive_rows(settings, log)
