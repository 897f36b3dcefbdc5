"""Benchmarks: what agentdeck costs next to the cheapest alternatives, measured in the same run.

    python -m bench              # everything, one table, bench/results.json (a few minutes)
    python -m bench --quick      # fewer and shorter repeats
    python -m bench --only latency,claims

Each benchmark module (latency, proxy, coldstart, claims, wakeup, scale, memory, idle, mixed) has one
`run(settings) -> list[Row]`. Baselines, started and measured next to agentdeck:

    B1  a minimal MCPServer with one `echo` tool (bench/baseline_server.py), same client, same transport
    B2  a direct httpx2 call to the emulator endpoint agentdeck proxies to
    B3  raw sqlite3 doing the write transactions of a claim, on the same file system
    B3-pg  the same transactions with raw psycopg, on the PostgreSQL server of the PostgreSQL rows

Claims (4) and wake-up (5) are also measured with agentdeck's store in PostgreSQL when
AGENTDECK_BENCH_POSTGRES (else AGENTDECK_TEST_POSTGRES) names a server; each run uses a fresh
schema there and drops it (bench/postgres.py). Without either, those rows are skipped.

Benchmarks are not tests: nothing here asserts, and CI times nothing.
"""

__all__: list[str] = []
