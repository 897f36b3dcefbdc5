"""What the spawning process tells a run's supervisor (supervisor.py): one type, sent as JSON on its stdin.

Stdlib only: the supervisor imports it and must start fast.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = ["SupervisorSpec"]


@dataclass(frozen=True)
class SupervisorSpec:
    """One run to start and watch: its process, its limits, and where to record it."""

    run_id: str
    argv: list[str]
    cwd: str
    env: dict[str, str] = field(repr=False)
    """The agent's whole environment, the run's credentials included: never printed."""
    prompt: str
    stdin: str | None
    """Written to the agent's standard input (agents with `prompt_stdin`); None: no input."""
    prompt_file: str | None
    """Where to write the prompt before the agent starts (commands naming `{prompt_file}`)."""
    ttl_seconds: int
    grace_seconds: float
    """Between SIGTERM and SIGKILL when the run is stopped."""
    heartbeat_seconds: float
    max_output_bytes: int
    data_dir: str
    db: str
    """The SQLite store's file; empty for a PostgreSQL store."""
    store: str | None
    """The PostgreSQL store's URL; None for SQLite."""
    worktree: dict[str, Any] | None
    """The run's worktree plan (worktree.py) when its agent is isolated in one."""

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> SupervisorSpec:
        return cls(**json.loads(text))
