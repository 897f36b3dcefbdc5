"""Issue 23, target 2: many clients over HTTP, a mixed workload against one agentdeck server, next to B1.

At each level (10, 50 and 100 sessions) the same client process opens that many SDK sessions
on agentdeck and on B1 (bench/mixed_load.py: agentdeck's sessions cycle over send, receive
with a cursor, create, claim, complete and get_run; B1's make six echo calls per cycle). The
level's time is split into slices that alternate between the two servers, so load that comes
and goes on the machine hits both alike; each slice gives calls per second, p50 and p99 of
every call, and the server process's CPU time (utime + stime from /proc) per call, and each
figure is the median over slices [min-max], its ratio the median of per-slice-pair ratios.

Checks (agentdeck), counted after the level, and failing the level's checks row when not 0:
errors, messages lost, repeated or delivered where they should not be, tasks completed twice.

With a PostgreSQL server (AGENTDECK_BENCH_POSTGRES, see bench/postgres.py) the workload also
runs on two `--stateless` replicas sharing one fresh schema, sessions spread over both, beside
one replica on the same store (alternating slices again), with the same checks.

Seconds per level and server: 6 (`--quick`: 3; `--full`: the issue's 30); BENCH_MIXED_SECONDS
overrides. The rows' notes say which was used.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from contextlib import AsyncExitStack

from agentdeck.backends.local.store import open_store
from bench.mixed_load import Faults, Load, Slice
from bench.postgres import fresh_schema
from bench.servers import Server, agentdeck, baseline, http_process, run_row, seed_run
from bench.settings import Settings
from bench.stats import Figure, Row, percentile, summarize

__all__ = ["run"]

LEVELS = (10, 50, 100)
ISSUE_SECONDS = 30
SLICES = 4  # per server and level
CALLS_PER_CYCLE = 6  # at most, for agentdeck's cycle; exactly, for B1's


def seconds_per_level(settings: Settings) -> float:
    if os.environ.get("BENCH_MIXED_SECONDS"):
        return float(os.environ["BENCH_MIXED_SECONDS"])
    return ISSUE_SECONDS if settings.full else settings.pick(6, 2)


async def _alternate(loads: dict[str, Load], seconds: float) -> dict[str, list[Slice]]:
    """SLICES slices of seconds / SLICES per load, taking turns (order flips every round)."""
    slices: dict[str, list[Slice]] = {name: [] for name in loads}
    for n in range(SLICES):
        for name in list(loads) if n % 2 == 0 else list(reversed(loads)):
            slices[name].append(await loads[name].slice(seconds / SLICES))
    return slices


def _rate(s: Slice) -> float:
    return s.calls / s.seconds


def _p50(s: Slice) -> float:
    return percentile(s.latencies, 50) * 1000 if s.latencies else float("nan")


def _p99(s: Slice) -> float:
    return percentile(s.latencies, 99) * 1000 if s.latencies else float("nan")


def _cpu(s: Slice) -> float:
    return s.cpu / s.calls * 1000 if s.calls else float("nan")


def _rows(sessions: int, seconds: float, deck: list[Slice], b1: list[Slice], faults: Faults, b1_faults: Faults) -> list[Row]:
    key = f"23.2 mixed x{sessions}"
    how = f"{len(deck)} slices of {seconds / SLICES:g} s per server ({seconds:g} s per level{'' if seconds >= ISSUE_SECONDS else f'; the issue asks {ISSUE_SECONDS} s: --full'})"

    def row(suffix: str, what: str, measure: Callable[[Slice], float], unit: str, op: str, limit: float, note: str = "") -> Row:
        a, b = [measure(s) for s in deck], [measure(s) for s in b1]
        return Row(f"{key} {suffix}", f"{sessions} HTTP sessions, {what}", summarize(a, unit), summarize(b, unit), "B1", op, limit, ratio_repeats=[x / y for x, y in zip(a, b, strict=True)], note=note)

    total = faults.total + b1_faults.errors
    checks = faults.text() + f"; B1 errors {b1_faults.errors}" + (f"; first error: {faults.first_error or b1_faults.first_error}" if total else "")
    calls = sum(s.calls for s in deck), sum(s.calls for s in b1)
    if min(s.calls for s in deck + b1) <= sessions * CALLS_PER_CYCLE:  # each session finishes its cycle when a slice ends
        how += "; WARNING: a slice held at most one cycle per session (the machine is too slow or busy for this slice length), so calls/s, p50 and p99 say little"
    return [
        row("calls/s", "mixed workload, calls per second", _rate, "calls/s", ">=", 0.9, f"{how}; {calls[0]} calls, B1 {calls[1]}"),
        row("p50", "p50 of every call", _p50, "ms", "<=", 1.2),
        row("p99", "p99 of every call", _p99, "ms", "<=", 1.5),
        row("cpu", "server CPU per call", _cpu, "ms", "<=", 1.3, f"server process utime+stime: {sum(s.cpu for s in deck):.2f} s, B1 {sum(s.cpu for s in b1):.2f} s"),
        Row(f"{key} checks", f"{sessions} HTTP sessions: errors, messages lost/repeated/unexpected, tasks completed twice", Figure(total, total, total, "faults"), None, "", passed=total == 0, note=checks),
    ]


async def run(settings: Settings) -> list[Row]:
    seconds = seconds_per_level(settings)
    home = settings.dir("mixed")
    log = settings.log("mixed")
    run_id = seed_run(home / "data")
    deck, b1 = agentdeck(home, log), baseline(log)
    store = open_store(None, home / "data")
    rows: list[Row] = []
    try:
        with http_process(deck) as deck_target, http_process(b1) as b1_target:
            for sessions in LEVELS:
                loads = {"agentdeck": Load([deck_target], sessions, f"mix{sessions}", store, run_id), "B1": Load([b1_target], sessions, f"mix{sessions}", None, run_id)}
                async with AsyncExitStack() as stack:
                    for load in loads.values():
                        await load.open(stack)
                    slices = await _alternate(loads, seconds)
                    faults = {name: await load.finish() for name, load in loads.items()}
                settings.say(f"mixed x{sessions}: agentdeck {[s.calls for s in slices['agentdeck']]} calls, {faults['agentdeck'].text()}; B1 {[s.calls for s in slices['B1']]} calls, errors {faults['B1'].errors}")
                rows += _rows(sessions, seconds, slices["agentdeck"], slices["B1"], faults["agentdeck"], faults["B1"])
    finally:
        await store.close()
    if settings.postgres:
        try:
            rows += await _replicas(settings, 50, seconds)
        except Exception as exc:  # the SQLite rows above still count
            settings.fail("mixed replicas", exc)
    return rows


async def _replicas(settings: Settings, sessions: int, seconds: float) -> list[Row]:
    """The same workload on two stateless replicas sharing one PostgreSQL store, beside one replica."""
    assert settings.postgres is not None
    log = settings.log("mixed-replicas")
    with fresh_schema(settings.postgres, warn=settings.say) as url:
        store = open_store(url, settings.dir("mixed-replicas"))
        try:
            run = run_row(f"run_{os.urandom(8).hex()}", time.time())
            await store.create_run(run, "bench", None)
            servers: list[Server] = []
            for i in range(2):
                server = agentdeck(settings.dir(f"mixed-replica-{i}"), log, AGENTDECK_STORE=url)
                server.argv = [*server.argv, "--stateless"]
                servers.append(server)
            with http_process(servers[0]) as first, http_process(servers[1]) as second:
                loads = {"one": Load([first], sessions, f"pg1x{sessions}", store, run["id"]), "two": Load([first, second], sessions, f"pg2x{sessions}", store, run["id"])}
                async with AsyncExitStack() as stack:
                    for load in loads.values():
                        await load.open(stack)
                    slices = await _alternate(loads, seconds)
                    faults = {name: await load.finish() for name, load in loads.items()}
        finally:
            await store.close()
    one, two = faults["one"], faults["two"]
    settings.say(f"mixed replicas x{sessions}: one replica {[s.calls for s in slices['one']]} calls, {one.text()}; two {[s.calls for s in slices['two']]} calls, {two.text()}")
    rates = {name: summarize([_rate(s) for s in slices[name]], "calls/s") for name in slices}
    first_error = two.first_error or one.first_error
    return [
        Row(
            f"23.2 replicas x{sessions}",
            f"{sessions} sessions on 2 stateless replicas, one PostgreSQL: errors, messages lost/repeated/unexpected, tasks completed twice",
            Figure(two.total, two.total, two.total, "faults"),
            None,
            "",
            passed=one.total + two.total == 0,
            note=f"{seconds:g} s each in {SLICES} alternating slices; two: {two.text()}; one replica's faults {one.total}" + (f"; first error: {first_error}" if first_error else ""),
        ),
        Row(
            f"23.2 replicas x{sessions} calls/s",
            "calls per second, two replicas beside one (information)",
            rates["two"],
            rates["one"],
            "one replica",
            ratio_repeats=[_rate(a) / _rate(b) for a, b in zip(slices["two"], slices["one"], strict=True)],
            note="information: the issue asks this printed, with no goal; on 2 cores a second replica competes with the first for CPU",
        ),
    ]
