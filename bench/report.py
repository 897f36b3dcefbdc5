"""The one table `python -m bench` prints, and bench/results.json."""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.stats import Row

__all__ = ["machine", "table", "write_json"]


def machine() -> dict[str, Any]:
    info: dict[str, Any] = {
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "machine": platform.machine(),
    }
    try:
        with open("/proc/cpuinfo") as f:
            names = [line.split(":", 1)[1].strip() for line in f if line.startswith("model name")]
        if names:
            info["cpu"] = names[0]
    except OSError:
        pass
    try:
        from importlib.metadata import version

        info["mcp"] = version("mcp")
        info["agentdeck"] = version("agentdeck")
    except Exception:  # a source checkout without metadata still benchmarks
        pass
    return info


def table(rows: Sequence[Row]) -> str:
    header = ("target", "what", "agentdeck", "baseline", "ratio", "goal", "result")
    lines = [
        (
            row.key,
            row.what,
            row.agentdeck.text(),
            f"{row.baseline_name}: {row.baseline.text()}" if row.baseline else row.baseline_name,
            "" if row.ratio is None else f"{row.ratio:.2f}",
            row.target,
            row.verdict,
        )
        for row in rows
    ]
    widths = [max(len(str(cells[i])) for cells in [header, *lines]) for i in range(len(header))]

    def fmt(cells: Sequence[str]) -> str:
        return "| " + " | ".join(str(c).ljust(w) for c, w in zip(cells, widths, strict=True)) + " |"

    out = [fmt(header), "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    out += [fmt(cells) for cells in lines]
    notes = [f"- {row.key}: {row.note}" for row in rows if row.note]
    if notes:
        out += ["", *notes]
    return "\n".join(out)


def write_json(
    path: Path,
    rows: Sequence[Row],
    *,
    quick: bool,
    elapsed: float,
    failures: dict[str, str],
    load_at_start: float | None,
    postgres: str | None = None,
    sections: dict[str, dict[str, float]] | None = None,
    full: bool = False,
) -> None:
    document = {
        "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "command": " ".join(["python", "-m", "bench", *sys.argv[1:]]),
        "quick": quick,
        "full": full,
        "elapsed_seconds": round(elapsed, 1),
        "seconds_per_benchmark": sections or {},
        "machine": machine() | {"load_average_at_start": load_at_start},
        "postgres": postgres,  # the server of the PostgreSQL rows; None when they were skipped
        "summary": {
            "pass": sum(1 for r in rows if r.verdict == "PASS"),
            "miss": sum(1 for r in rows if r.verdict == "MISS"),
            "missed": [r.key for r in rows if r.verdict == "MISS"],
        },
        "failures": failures,
        "rows": [row.to_dict() for row in rows],
    }
    path.write_text(json.dumps(document, indent=2) + "\n")
