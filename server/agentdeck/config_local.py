"""Settings of the embedded local platform: the agents it may start and its saved routines."""

from __future__ import annotations

import re
import shutil
import sys
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from agentdeck.config_base import NAME, BackendSettings, Settings

__all__ = ["AgentConfig", "LocalConfig", "RoutineConfig"]


class AgentConfig(Settings):
    """An agent the local platform may start. `{prompt}` in the command is replaced by the prompt.

    One argument holds at most 128 KiB: for longer prompts use `{prompt_file}` (a file holding
    the prompt) or `prompt_stdin`.
    """

    command: list[str] = Field(min_length=1)
    description: str = ""
    env: dict[str, str] = Field(default_factory=dict)
    inherit_env: list[str] = Field(
        default_factory=lambda: ["PATH", "HOME", "LANG", "LC_ALL", "TERM", "TMPDIR", "USER", "SYSTEMROOT"],
        description="variables of agentdeck's own environment the agent sees; secrets are not passed unless listed",
    )
    ttl_seconds: int = Field(default=3600, gt=0)
    isolation: Literal["none", "worktree"] = Field(
        default="none", description="worktree: each run works in a fresh git worktree on its own branch agentdeck/RUN_ID"
    )
    repo: Path | None = Field(default=None, description="git checkout a worktree agent works on, under workspace_root; a spawn's workspace may name another")
    base_ref: str = Field(default="HEAD", description="ref a worktree run starts from; a spawn may pass metadata.base_ref")
    allowed_base_refs: list[str] = Field(default_factory=lambda: ["*"], description="glob patterns of the base refs a spawn may choose")
    keep_worktree: bool = Field(default=False, description="keep each run's worktree folder after it ends (the branch is always kept)")
    prompt_stdin: bool = Field(default=False, description="also write the prompt to the agent's standard input, then close it")


class RoutineConfig(Settings):
    """A saved spawn template: `{message}` in the prompt is replaced by the invocation's message."""

    agent: str
    prompt: str = "{message}"
    description: str = ""


def _builtin_agents() -> dict[str, AgentConfig]:
    echo = [sys.executable, "-m", "agentdeck.backends.local.echo", "{prompt}"]
    return {"echo": AgentConfig(command=echo, description="Built-in demo agent: prints its prompt back line by line.")}


def _builtin_routines() -> dict[str, RoutineConfig]:
    greet = RoutineConfig(agent="echo", prompt="Hello from the greet routine!\n{message}", description="Demo routine: echoes a greeting and your message.")
    return {"greet": greet}


class LocalConfig(BackendSettings):
    kind: Literal["local"] = "local"
    agents: dict[str, AgentConfig] = Field(default_factory=_builtin_agents)
    routines: dict[str, RoutineConfig] = Field(default_factory=_builtin_routines)
    store: str | None = Field(default=None, description="database URL; default the SQLite file in the data dir")
    workspace_root: Path | None = Field(default=None, description="spawned agents' workspaces must lie under it")
    max_children: int = Field(default=8, ge=0, description="runs one run may spawn")
    max_depth: int = Field(default=3, ge=0, description="how deep spawned runs may nest")
    lease_seconds: int = Field(default=300, gt=0, description="default task lease")
    max_output_bytes: int = Field(default=1_000_000, gt=0, description="output kept per run")
    cancel_grace_seconds: float = Field(default=3.0, ge=0)
    supervisor_timeout_seconds: float = Field(
        default=30.0, ge=1, description="a run whose supervisor sent no heartbeat for this long is failed as supervisor_lost, by any reader"
    )

    @model_validator(mode="after")
    def _builtin_routines_need_their_agent(self) -> LocalConfig:
        # A file that declares its own agents (and no routines) should not fail on the demo
        # routine's missing echo agent: the built-in routines go where their agent went.
        if "routines" not in self.model_fields_set:
            self.routines = {n: r for n, r in self.routines.items() if r.agent in self.agents}
        return self

    def checks(self, name: str) -> list[tuple[bool, str, str]]:
        """Each agent's command can be found."""
        checks = []
        for agent, spec in self.agents.items():
            program = spec.command[0]
            found = shutil.which(program)
            detail = found or f"'{program}' is not on PATH; install it or fix backends.{name}.agents.{agent}.command"
            checks.append((found is not None, f"agent {agent}", detail))
        return checks

    @field_validator("agents", "routines")
    @classmethod
    def _names(cls, value: dict[str, Any]) -> dict[str, Any]:
        for name in value:
            if not re.match(NAME, name):
                raise ValueError(f"name {name!r} must be letters, digits, '_', '.', '-' (at most 64)")
        return value
