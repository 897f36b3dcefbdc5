"""Benchmarks: what agentdeck costs next to the cheapest alternatives, measured in the same run.

    python -m bench              # issue 23's measurements, one table, bench/results.json
    python -m bench --quick      # fewer and shorter repeats
    python -m bench --full       # the mixed workload for the issue's 30 s per level
    python -m bench --only latency,claims     # --all adds coldstart, wakeup, memory (older targets)

Each benchmark module (latency, mixed, proxy, claims, scale, dashboard, idle, notifications;
coldstart, wakeup, memory) has one `run(settings) -> list[Row]`; rows are keyed by issue 23's
points (23.1-23.7). Baselines, started and measured next to agentdeck:

    B1     a minimal MCPServer with one `echo` tool (bench/baseline_server.py), same client, same transport
    floor  the cheapest MCP proxy: B1 plus one httpx2 call (bench/proxy_server.py)
    B2     a direct httpx2 call to the emulator endpoint agentdeck proxies to (information)
    B3     raw sqlite3 / psycopg doing the write transactions of a claim (information)

The PostgreSQL rows (two replicas, claims, notification across replicas, wake-up) run when
AGENTDECK_BENCH_POSTGRES (else AGENTDECK_TEST_POSTGRES) names a server; each uses a fresh
schema there and drops it (bench/postgres.py). Without either, those rows are skipped.

Benchmarks are not tests: nothing here asserts, and CI times nothing (tests/test_bench_checks.py
checks only that the zero-fault checks can fail).
"""

__all__: list[str] = []
