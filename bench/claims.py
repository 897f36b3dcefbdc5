"""Target 4: task claims from one queue by 4 processes on the local store, against raw SQLite (B3).

agentdeck: 4 worker processes, each driving its own `agentdeck serve` (stdio, distinct
AGENTDECK_IDENTITY, one shared data dir) in a loop of claim_task + complete_task until the queue
is empty. Throughput is tasks per second from the first worker's start to the last one's end;
a task id handed to more than one claim is a double claim.

B3: 4 worker processes with raw sqlite3 on a file in the same scratch folder, same pragmas as
the store (WAL, synchronous=NORMAL, busy_timeout), doing per task what the store writes per
claim + complete: two BEGIN IMMEDIATE transactions of two single-row UPDATEs by primary key
(claim_next: the task row and the attempt row; settle: the same two). No queries, no choosing.

Also shown (information): the MCP floor, 4 workers each calling B1's echo twice per task.

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
from pathlib import Path
from typing import Any

import anyio

from bench.servers import PYTHON, REPO, agentdeck, baseline, connect
from bench.settings import Settings
from bench.stats import Figure, Row, summarize

__all__ = ["run"]

WORKERS = 4
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


def _seed_agentdeck(data_dir: Path, queue: str, count: int) -> None:
    from agentdeck.backends.local.store import Store, new_id

    store = Store(data_dir / "agentdeck.db")
    try:
        for i in range(count):
            now = time.time()
            store.create_task({"id": new_id("task"), "queue": queue, "title": f"task {i}", "payload": {"n": i}, "priority": 0, "max_attempts": 3, "created_at": now}, "bench", None)
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


async def run(settings: Settings) -> list[Row]:
    repeats, tasks = settings.pick(3, 2), settings.pick(1600, 400)
    per_worker = tasks // WORKERS
    tasks = per_worker * WORKERS
    log = settings.log("claims")
    home = settings.dir("claims")
    data_dir = home / "data"
    _seed_agentdeck(data_dir, "warmup", WORKERS * 5)
    b3_path = home / "b3.db"
    _seed_b3(b3_path, tasks * (repeats + 1))
    specs = {
        "agentdeck": [{"kind": "agentdeck", "env": agentdeck(home / f"w{i}", log, identity=f"worker-{i}", data_dir=data_dir).env} for i in range(WORKERS)],
        "B3": [{"kind": "sqlite", "db": str(b3_path), "holder": f"worker-{i}"} for i in range(WORKERS)],
        "B1": [{"kind": "b1", "env": baseline(log).env} for _ in range(WORKERS)],
    }
    groups: dict[str, _Group] = {}
    rates: dict[str, list[float]] = {name: [] for name in specs}
    double_claims, lost, db_problems = 0, 0, 0
    try:
        for name, group_specs in specs.items():
            groups[name] = await anyio.to_thread.run_sync(_Group, group_specs, log)
        # one unmeasured round of B3 on its own rows, like the warm-up the others had
        groups["B3"].go([{"ids": [i * per_worker, (i + 1) * per_worker]} for i in range(WORKERS)])
        for repeat in range(repeats):
            queue = f"bench{repeat}"
            _seed_agentdeck(data_dir, queue, tasks)
            order = list(specs) if repeat % 2 == 0 else list(reversed(specs))
            for name in order:
                if name == "agentdeck":
                    commands = [{"queue": queue}] * WORKERS
                elif name == "B3":
                    first = (repeat + 1) * tasks
                    commands = [{"ids": [first + i * per_worker, first + (i + 1) * per_worker]} for i in range(WORKERS)]
                else:
                    commands = [{"calls": 2 * per_worker}] * WORKERS
                results = await anyio.to_thread.run_sync(groups[name].go, commands)
                rates[name].append(tasks / _span(results))
                if name == "agentdeck":
                    counts = collections.Counter(task for r in results for task in r["claimed"])
                    double_claims += sum(c - 1 for c in counts.values() if c > 1)
                    lost += sum(r["errors"] for r in results)
                    completed, again = _db_check(data_dir, queue)
                    db_problems += (tasks - completed) + again
                    if len(counts) != tasks:
                        db_problems += abs(tasks - len(counts))
    finally:
        for group in groups.values():
            group.close()
    settings.say(f"claims: tasks/s {rates}; double claims {double_claims}, failed completes {lost}, store mismatches {db_problems}")
    agentdeck_rate, b3, floor = summarize(rates["agentdeck"], "tasks/s"), summarize(rates["B3"], "tasks/s"), summarize(rates["B1"], "tasks/s")
    checks = double_claims + lost + db_problems
    return [
        Row("4 claims", f"claim+complete, {WORKERS} processes, one queue", agentdeck_rate, b3, "B3 sqlite", ">=", 0.5, ratio_repeats=[a / b for a, b in zip(rates["agentdeck"], rates["B3"], strict=True)], note=f"{repeats}x{tasks} tasks; B3 = 2 BEGIN IMMEDIATE transactions of 2 single-row UPDATEs per task"),
        Row("4 double claims", "tasks handed to two claims", Figure(double_claims, double_claims, double_claims, "tasks"), None, f"failed completes {lost}, store mismatches {db_problems}", passed=checks == 0, note="goal: 0 (from the claims returned and from the store's own attempts counts)"),
        Row("4 MCP floor", "agentdeck against B1 echo called twice per task", agentdeck_rate, floor, "B1 x2", ratio_repeats=[a / b for a, b in zip(rates["agentdeck"], rates["B1"], strict=True)], note=f"information: 4 workers calling B1's echo twice per task reach {floor.median / b3.median:.3f} x B3, so no MCP server meets target 4 here"),
    ]


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


async def _mcp_worker(spec: dict[str, Any]) -> None:
    from mcp import StdioServerParameters

    kind = spec["kind"]
    argv = [PYTHON, "-m", "agentdeck", "serve"] if kind == "agentdeck" else [PYTHON, str(Path(__file__).with_name("baseline_server.py"))]
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
    else:
        anyio.run(_mcp_worker, spec)


if __name__ == "__main__":
    _worker()
