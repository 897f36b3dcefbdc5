"""The local platform's routines: named prompts from the configuration, each invocation a run."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from agentdeck.backends.local.runs import Runs
from agentdeck.config import RoutineConfig
from agentdeck.errors import NotFound
from agentdeck.identity import Caller
from agentdeck.models import Routine, RoutineList, Run, RunPage

__all__ = ["Routines"]


@dataclass(eq=False, repr=False)
class Routines:
    """Backend `name`'s configured `routines`, started as runs of `runs` on behalf of `caller`."""

    name: str
    routines: dict[str, RoutineConfig]
    runs: Runs
    caller: Callable[[], Caller]

    def _routine(self, routine: str) -> RoutineConfig:
        spec = self.routines.get(routine)
        if spec is None:
            names = ", ".join(sorted(self.routines)) or "none"
            raise NotFound(f"No routine '{routine}' on backend '{self.name}'. Defined routines: {names}. Call list_routines.")
        return spec

    def list_routines(self) -> RoutineList:
        return RoutineList(routines=[Routine(name=n, backend=self.name, agent=r.agent, description=r.description) for n, r in self.routines.items()])

    async def invoke(self, routine: str, message: str | None, key: str | None, session_key: str | None, metadata: dict[str, Any] | None) -> Run:
        """A run of the routine's agent with its prompt; `session_key` keeps invocations in one thread."""
        spec = self._routine(routine)
        return await self.runs.start(
            spec.agent,
            spec.prompt.replace("{message}", message or ""),
            routine=routine,
            metadata=metadata,
            thread_id=f"{routine}:{session_key}" if session_key else None,
            parent_run_id=self.caller().run_id,
            scope=f"routine:{routine}",
            key=key,
        )

    async def page(self, routine: str, status: str | None, limit: int, cursor: str | None) -> RunPage:
        """The routine's runs, newest first."""
        self._routine(routine)
        return await self.runs.page({"state": status, "agent": None, "parent_run_id": None, "routine": routine}, None, limit, cursor)
