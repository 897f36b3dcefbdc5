"""Issue 23, target 3: proxy overhead of get_run through agentdeck to the Oz emulator, over the
cheapest possible MCP proxy's.

The emulator runs as its own process (`python -m tests.emulators oz`). Per repeat, in turns of
50 calls: agentdeck (oz backend) get_run, B1 echo, B2 = httpx2.AsyncClient GET of the same
endpoint with the same headers, decoding the JSON, and the floor: bench/proxy_server.py (B1's
server whose one tool makes B2's call and returns the JSON). Proxy overhead = p50 - B1's p50,
for agentdeck and for the floor; the target is agentdeck's over the floor's, per repeat.
Overhead over B2 (the retired goal) and the emulator's count of TCP connections agentdeck
opened (pooling) are information.
"""

from __future__ import annotations

import contextlib
import statistics
import subprocess
import time
from collections.abc import Iterator
from contextlib import AsyncExitStack
from pathlib import Path

import httpx2

from bench.calls import call, latencies
from bench.servers import PYTHON, REPO, Server, agentdeck, baseline, clean_env
from bench.settings import Settings
from bench.stats import Figure, Row, percentile, summarize

__all__ = ["run"]

API_KEY = "bench-key"
CHUNK = 50  # calls per turn: each repeat is n calls of each, in turns of CHUNK


@contextlib.contextmanager
def emulator(log_name: str, settings: Settings) -> Iterator[str]:
    """Start `python -m tests.emulators oz --port 0`; yield its base URL (http://127.0.0.1:N)."""
    proc = subprocess.Popen([PYTHON, "-m", "tests.emulators", "oz", "--port", "0"], cwd=REPO, stdout=subprocess.PIPE, stderr=settings.log(log_name), text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if "listening on" not in line:
            raise RuntimeError(f"oz emulator did not start: {line!r}")
        yield line.rsplit(" ", 1)[1].strip()
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


async def _b2(client: httpx2.AsyncClient, path: str, n: int) -> list[float]:
    out: list[float] = []
    for _ in range(n):
        started = time.perf_counter()
        response = await client.get(path)
        response.raise_for_status()
        response.json()
        out.append(time.perf_counter() - started)
    return out


async def _stats(client: httpx2.AsyncClient) -> tuple[int, int]:
    body = (await client.get("/_emulator/stats")).json()
    return len(body["requests"]), int(body["connections"])


async def run(settings: Settings) -> list[Row]:
    repeats, n = settings.pick(5, 3), settings.pick(300, 150)
    log = settings.log("proxy")
    with emulator("proxy-emulator", settings) as base:
        config = f'default = "oz"\n\n[backends.oz]\nkind = "oz"\nbase_url = "{base}/api/v1"\n'
        deck = agentdeck(settings.dir("proxy"), log, config=config, WARP_API_KEY=API_KEY)
        b1 = baseline(log)
        floor = Server("proxy floor", [PYTHON, str(Path(__file__).with_name("proxy_server.py"))], clean_env() | {"BENCH_PLATFORM_URL": base, "BENCH_PLATFORM_KEY": API_KEY}, log)
        headers = {"Authorization": f"Bearer {API_KEY}", "Accept": "application/json"}
        async with AsyncExitStack() as stack:
            direct = await stack.enter_async_context(httpx2.AsyncClient(base_url=base, headers=headers))
            listed = (await direct.get("/api/v1/agent/runs", params={"limit": 1})).json()
            run_id = listed["runs"][0]["run_id"]
            path = f"/api/v1/agent/runs/{run_id}"
            await _b2(direct, path, 50)  # warm-up; B2's one pooled connection exists from here on
            ad = await stack.enter_async_context(deck.client())
            base_client = await stack.enter_async_context(b1.client())
            floor_client = await stack.enter_async_context(floor.client())
            await latencies(floor_client, "get_run", {"run_id": run_id}, 100)
            await latencies(base_client, "echo", {"text": run_id}, 100)
            requests0, connections0 = await _stats(direct)  # from here, only agentdeck's requests are counted
            await call(ad, "get_run", {"run_id": run_id})
            await latencies(ad, "get_run", {"run_id": run_id}, 100)
            requests_ad, connections_ad = await _stats(direct)
            p50: dict[str, list[float]] = {"agentdeck": [], "B1": [], "B2": [], "floor": []}
            for repeat in range(repeats):
                order = ["agentdeck", "B1", "B2", "floor"] if repeat % 2 == 0 else ["floor", "B2", "B1", "agentdeck"]
                samples: dict[str, list[float]] = {name: [] for name in order}
                for _ in range(n // CHUNK):  # short turns, so load that comes and goes hits all four alike
                    for name in order:
                        if name == "agentdeck":
                            before = await _stats(direct)
                            samples[name] += await latencies(ad, "get_run", {"run_id": run_id}, CHUNK)
                            after = await _stats(direct)
                            requests_ad += after[0] - before[0]
                            connections_ad += after[1] - before[1]
                        elif name == "B1":
                            samples[name] += await latencies(base_client, "echo", {"text": run_id}, CHUNK)
                        elif name == "floor":
                            samples[name] += await latencies(floor_client, "get_run", {"run_id": run_id}, CHUNK)
                        else:
                            samples[name] += await _b2(direct, path, CHUNK)
                for name in order:
                    p50[name].append(percentile(samples[name], 50) * 1000)
    requests_ad -= requests0
    connections_ad -= connections0
    settings.say(f"proxy: p50 {p50}; agentdeck sent {requests_ad} requests on {connections_ad} connections")
    overhead = [a - b for a, b in zip(p50["agentdeck"], p50["B1"], strict=True)]
    ratios = [o / c for o, c in zip(overhead, p50["B2"], strict=True)]
    pooled = connections_ad * 100 <= requests_ad
    floor_overhead = [a - b for a, b in zip(p50["floor"], p50["B1"], strict=True)]
    return [
        Row("23.3 proxy vs floor", "proxy overhead (oz get_run p50 - B1 p50) over the cheapest MCP proxy's", summarize(overhead, "ms"), summarize(floor_overhead, "ms"), "floor", "<=", 1.1, ratio_repeats=[o / f for o, f in zip(overhead, floor_overhead, strict=True)], note=f"{repeats}x{n} calls each; both as p50 - B1 p50, per repeat; oz get_run p50 {summarize(p50['agentdeck'], 'ms').text()}, floor {summarize(p50['floor'], 'ms').text()}, B1 {summarize(p50['B1'], 'ms').text()}"),
        Row("23.3 overhead/B2", "proxy overhead over B2 (the retired goal 1.2)", summarize(overhead, "ms"), summarize(p50["B2"], "ms"), "B2 httpx2", ratio_repeats=ratios, note=f"information; the cheapest MCP proxy scores {statistics.median(o / c for o, c in zip(floor_overhead, p50['B2'], strict=True)):.2f} on the same scale"),
        Row("23.3 pooling", "TCP connections agentdeck opened to the platform", Figure(connections_ad, connections_ad, connections_ad, "conns"), None, f"for {requests_ad} requests", note="information: " + ("pooled" if pooled else "NOT pooled") + " (at most 1 connection per 100 requests)"),
    ]
