"""Small JSON records an adapter keeps in the data dir, where the platform keeps nothing for it.

    records = Records(data_dir / "oz" / "team")
    async with records.locked("key-hash") as record:   # exclusive across tasks and processes
        if "run_id" not in record.data:
            record.data["run_id"] = ...
            record.save()

One file per key, changed under an exclusive `flock` on a sibling lock file, and replaced
atomically, so concurrent servers sharing a data dir see each other's records and a crash
leaves either the old record or the new one. Without a data dir the records live in memory
(one process only).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread

__all__ = ["Record", "Records"]


class Record:
    """One key's data; `save()` writes it back (call it only while the record is locked)."""

    def __init__(self, records: Records, key: str, data: dict[str, Any]) -> None:
        self._records, self.key, self.data = records, key, data

    def save(self) -> None:
        self._records._write(self.key, self.data)


class Records:
    @classmethod
    def of_backend(cls, data_dir: Path | None, kind: str, name: str, *parts: str) -> Records:
        """The records of backend `name` of `kind` under `data_dir` (in memory without one)."""
        if data_dir is None:
            return cls(None)
        safe_name = "".join(c if c.isalnum() or c in "-_." else "_" for c in name)
        return cls(data_dir.joinpath(kind, safe_name, *parts))

    def __init__(self, directory: Path | None) -> None:
        self.directory = directory
        self._memory: dict[str, dict[str, Any]] = {}
        self._locks: dict[str, anyio.Lock] = {}

    def _file(self, key: str) -> Path:
        assert self.directory is not None
        return self.directory / (hashlib.sha256(key.encode()).hexdigest()[:32] + ".json")

    def read(self, key: str) -> dict[str, Any]:
        """The key's data as last saved ({} when none), without locking."""
        if self.directory is None:
            return json.loads(json.dumps(self._memory.get(key, {})))
        try:
            saved = json.loads(self._file(key).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        return saved if isinstance(saved, dict) else {}

    def _write(self, key: str, data: dict[str, Any]) -> None:
        if self.directory is None:
            self._memory[key] = json.loads(json.dumps(data))
            return
        path = self._file(key)
        temp = path.with_suffix(f".{os.getpid()}.tmp")
        temp.write_text(json.dumps(data), encoding="utf-8")
        os.replace(temp, path)

    @asynccontextmanager
    async def locked(self, key: str) -> AsyncIterator[Record]:
        """Hold the key exclusively (other tasks and processes wait) and yield its record."""
        lock = self._locks.setdefault(key, anyio.Lock())
        async with lock:
            if self.directory is None:
                yield Record(self, key, self.read(key))
                return
            self.directory.mkdir(parents=True, exist_ok=True)
            fd = os.open(self._file(key).with_suffix(".lock"), os.O_RDWR | os.O_CREAT, 0o600)
            try:
                await anyio.to_thread.run_sync(fcntl.flock, fd, fcntl.LOCK_EX)
                yield Record(self, key, self.read(key))
            finally:
                os.close(fd)  # closing the descriptor releases the lock
