"""What every settings model shares: unknown keys are refused, and a backend's settings can check themselves."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

__all__ = ["NAME", "BackendSettings", "Settings"]

NAME = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
"""What a backend, agent or routine may be called."""


class Settings(BaseModel):
    model_config = ConfigDict(extra="forbid")


class BackendSettings(Settings):
    """The settings of one backend; `kind` (declared by each subclass) picks the platform."""

    def credentials(self, name: str) -> tuple[bool, str, str] | None:
        """Whether the credential the platform needs is set (None: it needs none); doctor reaches
        the platform only when it is. A check is (passed, what, detail with the fix); `name` is
        the backend's configured name."""
        return None

    def checks(self, name: str) -> list[tuple[bool, str, str]]:
        """What else `agentdeck doctor` can tell from these settings alone, without the platform."""
        return []
