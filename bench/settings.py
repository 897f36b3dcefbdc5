"""What one `python -m bench` invocation runs with: full or quick, and where scratch files go."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

__all__ = ["Settings"]


@dataclass
class Settings:
    """`pick(full, quick)` chooses a size; every server's stderr goes to a log file under `root`."""

    quick: bool
    root: Path
    verbose: bool = True
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

    def close(self) -> None:
        for handle in self._logs:
            handle.close()
