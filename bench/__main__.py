"""`python -m bench [--quick] [--only NAME[,NAME]] [--out FILE] [--keep]`: run, print the table, write results.json."""

from __future__ import annotations

import argparse
import importlib
import os
import shutil
import sys
import tempfile
import time
import traceback
from pathlib import Path

import anyio

from bench.postgres import SKIPPED, describe, postgres_url
from bench.report import table, write_json
from bench.settings import Settings, describe_error
from bench.stats import Row

BENCHMARKS = ("latency", "proxy", "coldstart", "claims", "wakeup", "notifications", "scale", "memory", "dashboard", "idle", "mixed")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description="agentdeck against baselines measured in the same run")
    parser.add_argument("--quick", action="store_true", help="fewer, shorter repeats (under two minutes)")
    parser.add_argument("--only", help=f"comma-separated benchmarks: {', '.join(BENCHMARKS)}")
    parser.add_argument("--out", type=Path, default=Path(__file__).with_name("results.json"), help="where to write the JSON (default bench/results.json)")
    parser.add_argument("--keep", action="store_true", help="keep the scratch folder (data dirs, server logs)")
    parser.add_argument("--quiet", action="store_true", help="print only the table")
    args = parser.parse_args(argv)
    chosen = {n.strip() for n in args.only.split(",") if n.strip()} if args.only else set(BENCHMARKS)
    unknown = sorted(chosen - set(BENCHMARKS))
    if unknown:
        parser.error(f"unknown benchmark {', '.join(unknown)}; choose from {', '.join(BENCHMARKS)}")
    names = [name for name in BENCHMARKS if name in chosen]

    busy = round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None
    if busy is not None and busy > 0.5 * (os.cpu_count() or 1):
        print(f"warning: load average {busy:.1f} before starting; other work on this machine skews every figure", file=sys.stderr)
    root = Path(tempfile.mkdtemp(prefix="agentdeck-bench-"))
    postgres = postgres_url() if {"claims", "wakeup", "notifications", "mixed"} & chosen else None
    settings = Settings(quick=args.quick, root=root, verbose=not args.quiet, postgres=postgres)
    rows: list[Row] = []
    failures = settings.failures
    started = time.perf_counter()
    try:
        for name in names:
            settings.say(f"{name} ...")
            t0 = time.perf_counter()
            module = importlib.import_module(f"bench.{name}")
            try:
                rows += anyio.run(module.run, settings)
            except Exception as exc:  # one broken benchmark must not hide the others' figures
                failures[name] = describe_error(exc)
                traceback.print_exc(file=sys.stderr)
            settings.say(f"{name} done in {time.perf_counter() - t0:.1f} s")
    finally:
        settings.close()
        _remove_wake_dirs(root)
        if args.keep or failures:
            print(f"scratch files (data dirs, server logs *.log) kept in {root}", file=sys.stderr)
        else:
            shutil.rmtree(root, ignore_errors=True)
    elapsed = time.perf_counter() - started
    print(table(rows))
    for name, error in failures.items():
        print(f"benchmark {name} did not finish: {error}")
    if postgres is None and {"claims", "wakeup", "notifications"} & chosen:
        print(SKIPPED)
    print(f"\n{sum(r.verdict == 'PASS' for r in rows)} pass, {sum(r.verdict == 'MISS' for r in rows)} miss, in {elapsed:.0f} s; written to {args.out}")
    write_json(args.out, rows, quick=args.quick, elapsed=elapsed, failures=failures, load_at_start=busy, postgres=describe(postgres) if postgres else None)
    return 1 if failures else 0


def _remove_wake_dirs(root: Path) -> None:
    """The local backend keeps a wake-up socket folder per data dir in the temp dir; drop ours."""
    try:
        from agentdeck.backends.local.notify import wake_dir
    except ImportError:  # the product moved it; leaving a few empty folders behind is harmless
        return
    for db in root.rglob("agentdeck.db"):
        shutil.rmtree(wake_dir(db.parent), ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
