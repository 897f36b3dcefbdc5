"""What one `python -m bench` invocation runs with: full or quick, and where scratch files go."""

from __future__ import annotations

import sys
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

__all__ = ["Settings", "describe_error"]


@dataclass
class Settings:
    """`pick(full, quick)` chooses a size; every server's stderr goes to a log file under `root`.

    `postgres` is the PostgreSQL server URL for the PostgreSQL rows (None: skip them).
    `failures` collects parts of a benchmark that did not finish while the rest went on.
    `shared` holds what several benchmarks use and one of them made (bench/stores.py).
    `full` runs the mixed workload for the issue's 30 s per level.
    """

    quick: bool
    root: Path
    verbose: bool = True
    postgres: str | None = None
    failures: dict[str, str] = field(default_factory=dict)
    shared: dict[str, Any] = field(default_factory=dict)
    full: bool = False
    _logs: list[IO[str]] = field(default_factory=list)

    def pick(self, full: int, quick: int) -> int:
        return quick if self.quick else full

    def dir(self, name: str) -> Path:
        path = self.root / name
        path.mkdir(parents=True, exist_ok=True)
        return path

    def log(self, name: str) -> IO[str]:
        handle = open(self.root / f"{name}.log", "a", encoding="utf-8")  # noqa: SIM115 - closed in close()
        self._logs.append(handle)
        return handle

    def say(self, text: str) -> None:
        if self.verbose:
            print(f"  {text}", file=sys.stderr, flush=True)

    def fail(self, name: str, exc: BaseException) -> None:
        """Record that part `name` did not finish (the benchmark's other rows still count)."""
        self.failures[name] = describe_error(exc)
        traceback.print_exception(exc, file=sys.stderr)

    def close(self) -> None:
        for handle in self._logs:
            handle.close()


def describe_error(exc: BaseException) -> str:
    """The innermost error: task groups wrap a dead server's "Connection closed" twice."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return f"{type(exc).__name__}: {exc}"
