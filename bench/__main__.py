"""`python -m bench [--quick | --full] [--only NAME[,NAME]] [--out FILE] [--keep]`: run, print the table, write results.json."""

from __future__ import annotations

import argparse
import importlib
import os
import resource
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

# Issue 23's measurements, in the order of its points; `python -m bench` runs these.
BENCHMARKS = ("latency", "mixed", "proxy", "claims", "scale", "dashboard", "idle", "notifications")
# Older targets that issue 23 no longer names: run only when asked for by name (--only) or --all.
EXTRAS = ("coldstart", "wakeup", "memory")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description="agentdeck against baselines measured in the same run")
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="fewer, shorter repeats (under two minutes)")
    size.add_argument("--full", action="store_true", help="the mixed workload for issue 23's 30 s per level (about 4 minutes longer)")
    parser.add_argument("--only", help=f"comma-separated benchmarks: {', '.join(BENCHMARKS + EXTRAS)}")
    parser.add_argument("--all", action="store_true", help=f"also the older benchmarks issue 23 does not name ({', '.join(EXTRAS)})")
    parser.add_argument("--out", type=Path, default=Path(__file__).with_name("results.json"), help="where to write the JSON (default bench/results.json)")
    parser.add_argument("--keep", action="store_true", help="keep the scratch folder (data dirs, server logs)")
    parser.add_argument("--quiet", action="store_true", help="print only the table")
    args = parser.parse_args(argv)
    everything = BENCHMARKS + EXTRAS
    chosen = {n.strip() for n in args.only.split(",") if n.strip()} if args.only else set(everything if args.all else BENCHMARKS)
    unknown = sorted(chosen - set(everything))
    if unknown:
        parser.error(f"unknown benchmark {', '.join(unknown)}; choose from {', '.join(everything)}")
    names = [name for name in everything if name in chosen]

    busy = round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None
    if busy is not None and busy > 0.5 * (os.cpu_count() or 1):
        print(f"warning: load average {busy:.1f} before starting; other work on this machine skews every figure", file=sys.stderr)
    root = Path(tempfile.mkdtemp(prefix="agentdeck-bench-"))
    postgres = postgres_url() if {"claims", "wakeup", "notifications", "mixed"} & chosen else None
    settings = Settings(quick=args.quick, root=root, verbose=not args.quiet, postgres=postgres, full=args.full)
    rows: list[Row] = []
    failures = settings.failures
    sections: dict[str, float] = {}
    cpu: dict[str, float] = {}  # this process and its ended children: a load-independent measure of a benchmark's cost
    started = time.perf_counter()
    try:
        for name in names:
            settings.say(f"{name} ...")
            t0, c0 = time.perf_counter(), _cpu_seconds()
            module = importlib.import_module(f"bench.{name}")
            try:
                rows += anyio.run(module.run, settings)
            except Exception as exc:  # one broken benchmark must not hide the others' figures
                failures[name] = describe_error(exc)
                traceback.print_exc(file=sys.stderr)
            sections[name] = round(time.perf_counter() - t0, 1)
            cpu[name] = round(_cpu_seconds() - c0, 1)
            settings.say(f"{name} done in {sections[name]:.1f} s ({cpu[name]:.1f} s CPU)")
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
    if postgres is None and {"claims", "wakeup", "notifications", "mixed"} & chosen:
        print(SKIPPED)
    load_now = round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None
    print(f"\nseconds per benchmark (CPU seconds): {', '.join(f'{k} {v:.0f} ({cpu[k]:.0f})' for k, v in sections.items())}; load average {busy} at the start, {load_now} at the end")
    print(f"{sum(r.verdict == 'PASS' for r in rows)} pass, {sum(r.verdict == 'MISS' for r in rows)} miss, in {elapsed:.0f} s; written to {args.out}")
    write_json(args.out, rows, quick=args.quick, elapsed=elapsed, failures=failures, load_at_start=busy, postgres=describe(postgres) if postgres else None, sections={k: {"seconds": v, "cpu_seconds": cpu[k]} for k, v in sections.items()}, full=args.full)
    return 1 if failures else 0


def _cpu_seconds() -> float:
    """CPU time of this process and of its children that have ended (every benchmark's servers)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


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
