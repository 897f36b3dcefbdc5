"""Where the server's own time goes: cProfile of the agentdeck process under a loop of calls.

    python -m bench.profile                       # get_run over stdio, 2,000 calls
    python -m bench.profile --http                # the same over Streamable HTTP
    python -m bench.profile --http --mixed 50     # the mixed workload of bench/mixed.py, 50 sessions
    python -m bench.profile --out server.prof     # keep the profile for pstats / snakeviz

The server runs under `python -m cProfile` and writes its profile when it exits; the top
functions by own time and by cumulative time are printed, with call counts per tool call (counts
do not depend on how loaded the machine is, times do).
"""

from __future__ import annotations

import argparse
import pstats
import shutil
import sys
import tempfile
import time
from contextlib import AsyncExitStack
from pathlib import Path

import anyio
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from agentdeck.backends.local.notify import wake_dir
from agentdeck.backends.local.store import open_store
from bench.calls import call
from bench.mixed_load import Load
from bench.servers import PYTHON, agentdeck, http_process, seed_run


async def _loop(client: Client, run_id: str, calls: int) -> None:
    for _ in range(calls):
        await call(client, "get_run", {"run_id": run_id})


async def _profile(args: argparse.Namespace, root: Path) -> int:
    run_id = seed_run(root / "data")
    log = open(root / "server.log", "w")  # noqa: SIM115 - closed below
    server = agentdeck(root, log)
    server.argv = [PYTHON, "-m", "cProfile", "-o", str(args.out), *server.argv[1:]]
    calls = args.calls
    try:
        if args.http:
            with http_process(server, timeout=60) as (url, pid):
                if args.mixed:
                    store = open_store(None, root / "data")
                    try:
                        async with AsyncExitStack() as stack:
                            load = Load([(url, pid)], args.mixed, "prof", store, run_id)
                            await load.open(stack)
                            done = await load.slice(args.seconds)
                            faults = await load.finish()
                    finally:
                        await store.close()
                    calls = done.calls
                    print(f"mixed x{args.mixed}: {done.calls} calls, server cpu {done.cpu:.2f} s ({done.cpu / max(done.calls, 1) * 1000:.2f} ms/call), {faults.text()}")
                else:
                    async with Client(streamable_http_client(url)) as client:
                        await _loop(client, run_id, calls)
        else:
            async with server.client() as client:
                await _loop(client, run_id, calls)
    finally:
        log.close()
    deadline = time.monotonic() + 30
    while not args.out.exists() and time.monotonic() < deadline:
        await anyio.sleep(0.1)
    return calls


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.profile")
    parser.add_argument("--http", action="store_true")
    parser.add_argument("--mixed", type=int, default=0, metavar="SESSIONS", help="run the mixed workload with this many sessions (with --http)")
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    root = Path(tempfile.mkdtemp(prefix="agentdeck-profile-"))
    args.out = (args.out or root / "server.prof").resolve()
    try:
        calls = anyio.run(_profile, args, root)
    finally:
        shutil.rmtree(wake_dir(root / "data"), ignore_errors=True)
    stats = pstats.Stats(str(args.out), stream=sys.stdout)
    total_calls = sum(cc for cc, _nc, _tt, _ct, _callers in stats.stats.values())  # type: ignore[attr-defined]
    print(f"{calls} tool calls; {total_calls / calls:.0f} Python function calls per tool call; profile in {args.out}")
    stats.sort_stats("tottime").print_stats(args.top)
    stats.sort_stats("cumulative").print_stats(args.top)
    if not args.out.is_relative_to(root):
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
