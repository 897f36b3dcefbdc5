"""Issue 23, target 4: task claims from one queue by 4 processes, against B1 called twice per task.

agentdeck: 4 worker processes, each driving its own `agentdeck serve` (stdio, distinct
AGENTDECK_IDENTITY, one shared data dir) in a loop of claim_task + complete_task until the queue
is empty. Throughput is tasks per second from the first worker's start to the last one's end;
a task id handed to more than one claim is a double claim.

B3: 4 worker processes with raw sqlite3 on a file in the same scratch folder, same pragmas as
the store (WAL, synchronous=NORMAL, busy_timeout), doing per task what the store writes per
claim + complete: two BEGIN IMMEDIATE transactions of two single-row UPDATEs by primary key
(claim_next: the task row and the attempt row; settle: the same two). No queries, no choosing.

The target's baseline is the MCP floor: 4 worker processes, each with its own B1 over stdio,
calling echo twice per task (a claim and a complete are two MCP calls). The same B1 workers
take part in the SQLite and the PostgreSQL rounds, alternating with agentdeck. In the SQLite
rounds, 4 more B1 workers served on agentdeck's own stdio transport give an information row:
what agentdeck costs on the same transport. B3 and B3-pg
(information) show what the raw store writes cost.

On PostgreSQL (when AGENTDECK_BENCH_POSTGRES or AGENTDECK_TEST_POSTGRES names a server, see
bench/postgres.py): the same 4 agentdeck workers with AGENTDECK_STORE pointing at a fresh
schema, against B3-pg: raw psycopg on the same server doing B3's transactions the way the
store runs them (autocommit connection; BEGIN, two single-row UPDATEs by primary key, COMMIT;
twice per task). Double claims are checked the same way, from the store's tables.

Workers are this module run as a script: a JSON spec on stdin, "ready" on stdout, then one
JSON command per line, one JSON result line per command.
"""

from __future__ import annotations

import collections
import json
import sqlite3
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio

from bench.postgres import describe, fresh_schema
from bench.servers import PYTHON, REPO, agentdeck, baseline, connect
from bench.settings import Settings
from bench.stats import Figure, Row, summarize

__all__ = ["run"]

WORKERS = 4
SAME = "B1 on agentdeck stdio"
_B3_PRAGMAS = ("PRAGMA journal_mode = WAL", "PRAGMA synchronous = NORMAL", "PRAGMA busy_timeout = 30000")


# ---- the parent ----------------------------------------------------------------------------


class _Group:
    """WORKERS worker processes of one kind, started once, given one command per repeat."""

    def __init__(self, specs: list[dict[str, Any]], log: Any) -> None:
        self.procs = [
            subprocess.Popen([PYTHON, "-m", "bench.claims"], cwd=REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, text=True, bufsize=1)
            for _ in specs
        ]
        for proc, spec in zip(self.procs, specs, strict=True):
            self._send(proc, spec)
        for proc in self.procs:
            line = self._read(proc)
            if line != "ready":
                raise RuntimeError(f"claims worker did not start: {line!r}")

    @staticmethod
    def _send(proc: subprocess.Popen[str], message: Any) -> None:
        assert proc.stdin is not None
        proc.stdin.write(json.dumps(message) + "\n")
        proc.stdin.flush()

    @staticmethod
    def _read(proc: subprocess.Popen[str]) -> str:
        assert proc.stdout is not None
        return proc.stdout.readline().strip()

    def go(self, commands: list[dict[str, Any]]) -> list[dict[str, Any]]:
        for proc, command in zip(self.procs, commands, strict=True):
            self._send(proc, command)
        results = []
        for proc in self.procs:
            line = self._read(proc)
            if not line:
                raise RuntimeError("claims worker exited; see claims.log")
            results.append(json.loads(line))
        return results

    def close(self) -> None:
        for proc in self.procs:
            try:
                self._send(proc, "exit")
                proc.wait(15)
            except (OSError, subprocess.TimeoutExpired):
                proc.kill()


def _span(results: list[dict[str, Any]]) -> float:
    return max(r["end"] for r in results) - min(r["start"] for r in results)


def _seed_b3(path: Path, rows: int) -> None:
    db = sqlite3.connect(path, isolation_level=None)
    for pragma in _B3_PRAGMAS:
        db.execute(pragma)
    db.execute("CREATE TABLE tasks (seq INTEGER PRIMARY KEY, state TEXT NOT NULL, holder TEXT, updated_at REAL)")
    db.execute("CREATE TABLE attempts (seq INTEGER PRIMARY KEY, holder TEXT, claimed_at REAL, ended_at REAL, outcome TEXT)")
    db.execute("BEGIN")
    db.executemany("INSERT INTO tasks (seq, state) VALUES (?, 'queued')", ((i,) for i in range(rows)))
    db.executemany("INSERT INTO attempts (seq) VALUES (?)", ((i,) for i in range(rows)))
    db.execute("COMMIT")
    db.close()


def _seed_b3_pg(url: str, rows: int) -> None:
    """B3-pg's tables, beside the store's in the run's own schema: B3's, in PostgreSQL types."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE TABLE b3_tasks (seq INTEGER PRIMARY KEY, state TEXT NOT NULL, holder TEXT, updated_at DOUBLE PRECISION)")
        conn.execute("CREATE TABLE b3_attempts (seq INTEGER PRIMARY KEY, holder TEXT, claimed_at DOUBLE PRECISION, ended_at DOUBLE PRECISION, outcome TEXT)")
        with conn.transaction():
            conn.execute("INSERT INTO b3_tasks (seq, state) SELECT i, 'queued' FROM generate_series(0, %s) AS i", (rows - 1,))
            conn.execute("INSERT INTO b3_attempts (seq) SELECT i FROM generate_series(0, %s) AS i", (rows - 1,))
        conn.execute("ANALYZE b3_tasks")
        conn.execute("ANALYZE b3_attempts")


def _task(queue: str, i: int) -> dict[str, Any]:
    from agentdeck.backends.local.store import new_id

    return {"id": new_id("task"), "queue": queue, "title": f"task {i}", "payload": {"n": i}, "priority": 0, "max_attempts": 3, "created_at": time.time()}


def _seed_agentdeck(data_dir: Path, queue: str, count: int) -> None:
    from agentdeck.backends.local.store.sqlite_db import SqliteDb

    store = SqliteDb(data_dir / "agentdeck.db")
    try:
        for i in range(count):
            store.create_task(_task(queue, i), "bench", None)
    finally:
        store.close()


def _db_check(data_dir: Path, queue: str) -> tuple[int, int]:
    """(tasks completed, tasks claimed more than once) as the store itself records them."""
    db = sqlite3.connect(data_dir / "agentdeck.db")
    try:
        completed = db.execute("SELECT COUNT(*) FROM tasks WHERE queue = ? AND state = 'completed'", (queue,)).fetchone()[0]
        again = db.execute("SELECT COUNT(*) FROM tasks WHERE queue = ? AND attempts <> 1", (queue,)).fetchone()[0]
    finally:
        db.close()
    return int(completed), int(again)


def _pg_check(url: str, queue: str) -> tuple[int, int]:
    """_db_check on the PostgreSQL store: the same two counts, read with psycopg."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        completed = conn.execute("SELECT COUNT(*) FROM tasks WHERE queue = %s AND state = 'completed'", (queue,)).fetchone()
        again = conn.execute("SELECT COUNT(*) FROM tasks WHERE queue = %s AND attempts <> 1", (queue,)).fetchone()
    return int(completed[0] if completed else 0), int(again[0] if again else 0)


class _Tally:
    """What the agentdeck rounds of one store got wrong: double claims, failed completes, mismatches."""

    def __init__(self) -> None:
        self.double_claims = self.lost = self.db_problems = 0

    def add(self, results: list[dict[str, Any]], tasks: int, completed: int, again: int) -> None:
        counts = collections.Counter(task for r in results for task in r["claimed"])
        self.double_claims += sum(c - 1 for c in counts.values() if c > 1)
        self.lost += sum(r["errors"] for r in results)
        self.db_problems += (tasks - completed) + again
        if len(counts) != tasks:
            self.db_problems += abs(tasks - len(counts))

    @property
    def total(self) -> int:
        return self.double_claims + self.lost + self.db_problems


async def _rounds(
    groups: dict[str, _Group],
    repeats: int,
    tasks: int,
    seed: Callable[[str, int], Awaitable[None]],
    check: Callable[[str], tuple[int, int]],
) -> tuple[dict[str, list[float]], _Tally]:
    """`repeats` rounds of every group on `tasks` tasks, in alternating order; tasks/s per group.

    Group names say what a round is: "agentdeck" claims a fresh queue (seeded by `seed`,
    checked by `check`), "B3..." updates its own not yet used rows, "B1" calls echo twice per task.
    """
    per_worker = tasks // WORKERS
    rates: dict[str, list[float]] = {name: [] for name in groups}
    tally = _Tally()
    for name, group in groups.items():
        if name.startswith("B3"):  # one unmeasured round on its own rows, like the others' warm-up
            await anyio.to_thread.run_sync(group.go, [{"ids": [i * per_worker, (i + 1) * per_worker]} for i in range(WORKERS)])
    for repeat in range(repeats):
        queue = f"bench{repeat}"
        await seed(queue, tasks)
        order = list(groups) if repeat % 2 == 0 else list(reversed(groups))
        for name in order:
            if name == "agentdeck":
                commands: list[dict[str, Any]] = [{"queue": queue}] * WORKERS
            elif name.startswith("B3"):
                first = (repeat + 1) * tasks
                commands = [{"ids": [first + i * per_worker, first + (i + 1) * per_worker]} for i in range(WORKERS)]
            else:
                commands = [{"calls": 2 * per_worker}] * WORKERS
            results = await anyio.to_thread.run_sync(groups[name].go, commands)
            rates[name].append(tasks / _span(results))
            if name == "agentdeck":
                tally.add(results, tasks, *await anyio.to_thread.run_sync(check, queue))
    return rates, tally


async def _start(specs: dict[str, list[dict[str, Any]]], log: Any, groups: dict[str, _Group]) -> None:
    for name, group_specs in specs.items():
        groups[name] = await anyio.to_thread.run_sync(_Group, group_specs, log)


def _close(groups: dict[str, _Group]) -> None:
    for group in groups.values():
        group.close()


async def run(settings: Settings) -> list[Row]:
    repeats, tasks = settings.pick(3, 2), settings.pick(800, 300)
    tasks = tasks // WORKERS * WORKERS
    log = settings.log("claims")
    home = settings.dir("claims")
    floor: dict[str, _Group] = {}
    try:  # the MCP floor's workers serve both stores' rounds, so each store is compared in its own rounds
        await _start({"B1": [{"kind": "b1", "env": baseline(log).env} for _ in range(WORKERS)]}, log, floor)
        rows = await _run_sqlite(settings, log, home, repeats, tasks, floor["B1"])
        if settings.postgres:
            try:
                rows += await _run_postgres(settings, log, home, settings.pick(3, 2), settings.pick(600, 200), floor["B1"])
            except Exception as exc:  # the SQLite rows above still count
                settings.fail("claims on PostgreSQL", exc)
    finally:
        _close(floor)
    return rows


def _rows(key: str, store: str, rates: dict[str, list[float]], b3: str, tally: _Tally, note: str) -> list[Row]:
    """The target row (agentdeck against B1 called twice per task), the checks, and B3 for information."""
    agentdeck_rate, floor = summarize(rates["agentdeck"], "tasks/s"), summarize(rates["B1"], "tasks/s")
    raw = summarize(rates[b3], "tasks/s")
    return [
        Row(key, f"claim+complete, {WORKERS} processes, one queue, {store}", agentdeck_rate, floor, "B1 echo x2 per task", ">=", 0.8, ratio_repeats=[a / b for a, b in zip(rates["agentdeck"], rates["B1"], strict=True)], note=note),
        _double_claims_row(f"{key} checks", tally),
        Row(f"{key} raw", f"the same against raw {store} ({b3})", agentdeck_rate, raw, b3, ratio_repeats=[a / b for a, b in zip(rates["agentdeck"], rates[b3], strict=True)], note=f"information: the retired goal was >= 0.5; B1 x2 itself reaches {floor.median / raw.median:.3f} x {b3}"),
    ]


async def _run_sqlite(settings: Settings, log: Any, home: Path, repeats: int, tasks: int, floor: _Group) -> list[Row]:
    data_dir = home / "data"
    _seed_agentdeck(data_dir, "warmup", WORKERS * 5)
    b3_path = home / "b3.db"
    _seed_b3(b3_path, tasks * (repeats + 1))
    specs: dict[str, list[dict[str, Any]]] = {
        "agentdeck": [{"kind": "agentdeck", "env": agentdeck(home / f"w{i}", log, identity=f"worker-{i}", data_dir=data_dir).env} for i in range(WORKERS)],
        "B3": [{"kind": "sqlite", "db": str(b3_path), "holder": f"worker-{i}"} for i in range(WORKERS)],
        SAME: [{"kind": "b1", "env": same.env, "argv": same.argv} for same in [baseline(log, agentdeck_stdio=True)] * WORKERS],
    }

    async def seed(queue: str, count: int) -> None:
        _seed_agentdeck(data_dir, queue, count)

    groups: dict[str, _Group] = {}
    try:
        await _start(specs, log, groups)
        rates, tally = await _rounds(groups | {"B1": floor}, repeats, tasks, seed, lambda queue: _db_check(data_dir, queue))
    finally:
        _close(groups)
    settings.say(f"claims: tasks/s {rates}; double claims {tally.double_claims}, failed completes {tally.lost}, store mismatches {tally.db_problems}")
    rows = _rows("23.4 claims SQLite", "SQLite", rates, "B3", tally, f"{repeats}x{tasks} tasks; B3 = 2 BEGIN IMMEDIATE transactions of 2 single-row UPDATEs per task")
    same = summarize(rates[SAME], "tasks/s")
    ratios = [a / b for a, b in zip(rates["agentdeck"], rates[SAME], strict=True)]
    rows.insert(2, Row("23.4 claims SQLite same transport", "the same against B1 on agentdeck's stdio transport", rows[0].agentdeck, same, "B1 echo x2, agentdeck stdio", ratio_repeats=ratios, note="information: what agentdeck costs on the same stdio transport"))
    return rows


async def _run_postgres(settings: Settings, log: Any, home: Path, repeats: int, tasks: int, floor: _Group) -> list[Row]:
    """Target 4 again with agentdeck's store in PostgreSQL (AGENTDECK_STORE), against the same B1 workers."""
    from agentdeck.backends.local.store import open_store

    tasks = tasks // WORKERS * WORKERS
    data_dir = home / "pg-data"
    with fresh_schema(settings.postgres or "", settings.say) as url:
        store = open_store(url, data_dir)
        await store.open()  # creates the store's tables before the servers start
        groups: dict[str, _Group] = {}
        try:

            async def seed(queue: str, count: int) -> None:
                for i in range(count):
                    await store.create_task(_task(queue, i), "bench", None)

            await seed("warmup", WORKERS * 5)
            _seed_b3_pg(url, tasks * (repeats + 1))
            specs = {
                "agentdeck": [
                    {"kind": "agentdeck", "env": agentdeck(home / f"pg{i}", log, identity=f"worker-{i}", data_dir=data_dir, AGENTDECK_STORE=url).env}
                    for i in range(WORKERS)
                ],
                "B3-pg": [{"kind": "postgres", "url": url, "holder": f"worker-{i}"} for i in range(WORKERS)],
            }
            await _start(specs, log, groups)
            rates, tally = await _rounds(groups | {"B1": floor}, repeats, tasks, seed, lambda queue: _pg_check(url, queue))
        finally:
            _close(groups)
            await store.close()
    settings.say(f"claims on PostgreSQL: tasks/s {rates}; double claims {tally.double_claims}, failed completes {tally.lost}, store mismatches {tally.db_problems}")
    note = f"{repeats}x{tasks} tasks, store on {describe(url)}; B3-pg = raw psycopg on the same server, 2 transactions (BEGIN, 2 single-row UPDATEs, COMMIT) per task"
    return _rows("23.4 claims PostgreSQL", "PostgreSQL", rates, "B3-pg", tally, note)


def _double_claims_row(key: str, tally: _Tally) -> Row:
    n = tally.double_claims
    return Row(
        key,
        "tasks handed to two claims",
        Figure(n, n, n, "tasks"),
        None,
        f"failed completes {tally.lost}, store mismatches {tally.db_problems}",
        passed=tally.total == 0,
        note="goal: 0 (from the claims returned and from the store's own attempts counts)",
    )


# ---- the workers --------------------------------------------------------------------------


def _sqlite_worker(spec: dict[str, Any]) -> None:
    db = sqlite3.connect(spec["db"], timeout=30.0, isolation_level=None)
    for pragma in _B3_PRAGMAS:
        db.execute(pragma)
    holder = spec["holder"]
    print("ready", flush=True)
    for line in sys.stdin:
        command = json.loads(line)
        if command == "exit":
            break
        start = time.time()
        for seq in range(*command["ids"]):
            for state, outcome in (("claimed", None), ("completed", "completed")):
                now = time.time()
                db.execute("BEGIN IMMEDIATE")
                db.execute("UPDATE tasks SET state = ?, holder = ?, updated_at = ? WHERE seq = ?", (state, holder, now, seq))
                db.execute("UPDATE attempts SET holder = ?, claimed_at = ?, ended_at = ?, outcome = ? WHERE seq = ?", (holder, now, now, outcome, seq))
                db.execute("COMMIT")
        print(json.dumps({"start": start, "end": time.time(), "claimed": [], "errors": 0}), flush=True)


def _postgres_worker(spec: dict[str, Any]) -> None:
    """B3-pg: B3's two transactions per task, with psycopg on one connection, as the store runs them."""
    import psycopg

    conn = psycopg.connect(spec["url"], autocommit=True)
    holder = spec["holder"]
    print("ready", flush=True)
    for line in sys.stdin:
        command = json.loads(line)
        if command == "exit":
            break
        start = time.time()
        for seq in range(*command["ids"]):
            for state, outcome in (("claimed", None), ("completed", "completed")):
                now = time.time()
                with conn.transaction():
                    conn.execute("UPDATE b3_tasks SET state = %s, holder = %s, updated_at = %s WHERE seq = %s", (state, holder, now, seq))
                    conn.execute("UPDATE b3_attempts SET holder = %s, claimed_at = %s, ended_at = %s, outcome = %s WHERE seq = %s", (holder, now, now, outcome, seq))
        print(json.dumps({"start": start, "end": time.time(), "claimed": [], "errors": 0}), flush=True)
    conn.close()


async def _mcp_worker(spec: dict[str, Any]) -> None:
    from mcp import StdioServerParameters

    kind = spec["kind"]
    argv = [PYTHON, "-m", "agentdeck", "serve"] if kind == "agentdeck" else spec.get("argv") or [PYTHON, str(Path(__file__).with_name("baseline_server.py"))]
    params = StdioServerParameters(command=argv[0], args=argv[1:], env=spec["env"], cwd=str(REPO))
    async with connect(params, sys.stderr) as client:
        await client.list_tools()
        for _ in range(5):
            if kind == "agentdeck":
                await _claim_loop(client, "warmup", limit=5)
            else:
                await client.call_tool("echo", {"text": "warm-up"})
        print("ready", flush=True)
        while True:
            line = await anyio.to_thread.run_sync(sys.stdin.readline)
            if not line or json.loads(line) == "exit":
                break
            command = json.loads(line)
            start = time.time()
            claimed: list[str] = []
            errors = 0
            if kind == "agentdeck":
                claimed, errors = await _claim_loop(client, command["queue"])
            else:
                for _ in range(command["calls"]):
                    errors += bool((await client.call_tool("echo", {"text": "task"})).is_error)
            print(json.dumps({"start": start, "end": time.time(), "claimed": claimed, "errors": errors}), flush=True)


async def _claim_loop(client: Any, queue: str, limit: int | None = None) -> tuple[list[str], int]:
    claimed: list[str] = []
    errors = 0
    while limit is None or len(claimed) < limit:
        result = await client.call_tool("claim_task", {"queue": queue})
        if result.is_error:
            raise RuntimeError(f"claim_task failed: {result.content}")
        lease = (result.structured_content or {}).get("lease")
        if lease is None:
            break
        claimed.append(lease["task"]["id"])
        done = await client.call_tool("complete_task", {"run_id": lease["run_id"], "claim_token": lease["claim_token"], "result": "ok"})
        errors += bool(done.is_error)
    return claimed, errors


def _worker() -> None:
    spec = json.loads(sys.stdin.readline())
    if spec["kind"] == "sqlite":
        _sqlite_worker(spec)
    elif spec["kind"] == "postgres":
        _postgres_worker(spec)
    else:
        anyio.run(_mcp_worker, spec)


if __name__ == "__main__":
    _worker()
