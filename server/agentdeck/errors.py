"""The one error hierarchy of agentdeck.

Every failure a client can act on is an `AgentdeckError` with a stable `code`. Handlers and
backends raise them; boundary.py alone turns them into MCP tool results (isError) and resource errors.

    AgentdeckError
    ├── NotFound            not_found
    ├── InvalidArgument     invalid_argument
    ├── Conflict            conflict
    │   └── LeaseLost       lease_lost
    ├── Unauthorized        unauthorized
    ├── RateLimited         rate_limited      (retry_after seconds when the platform said)
    ├── Unavailable         unavailable
    ├── Unsupported         unsupported
    └── Timeout             timeout

A class's docstring is its default message, written as the next step to take. `retryable`
says whether the same call can succeed later without changing anything.
"""

from __future__ import annotations

__all__ = [
    "AgentdeckError",
    "Conflict",
    "ConfigError",
    "InvalidArgument",
    "LeaseLost",
    "NotFound",
    "RateLimited",
    "Timeout",
    "Unauthorized",
    "Unavailable",
    "Unsupported",
]


class AgentdeckError(Exception):
    """The request failed; read the message for what to do next."""

    code = "internal"
    retryable = False
    platform_body: object = None
    """The platform's decoded error body, when the error came from one; for adapters, never sent to clients."""
    platform_code: str | None = None
    """The platform's own code for the refusal, when its error body names one (an adapter may branch on it)."""
    platform_status: int | None = None
    """The HTTP status of the platform's answer, when the error came from one."""

    def __init__(self, message: str | None = None, *, retryable: bool | None = None) -> None:
        self.message = message or (self.__doc__ or "").strip()
        if retryable is not None:
            self.retryable = retryable
        super().__init__(self.message)

    def to_dict(self) -> dict[str, object]:
        return {"code": self.code, "message": self.message, "retryable": self.retryable}


class NotFound(AgentdeckError):
    """Nothing has that id or name; list what exists and use one of those."""

    code = "not_found"


class InvalidArgument(AgentdeckError):
    """An argument is not valid; correct it as the message says and call again."""

    code = "invalid_argument"


class Conflict(AgentdeckError):
    """The object is not in a state that allows this; read it again and decide."""

    code = "conflict"


class LeaseLost(Conflict):
    """This claim no longer holds the task (expired or taken over); claim a new task."""

    code = "lease_lost"


class Unauthorized(AgentdeckError):
    """The platform refused our credentials or identity; fix the configuration (see `agentdeck doctor`)."""

    code = "unauthorized"


class RateLimited(AgentdeckError):
    """The platform is rate limiting us; wait and call again."""

    code = "rate_limited"
    retryable = True

    def __init__(self, message: str | None = None, *, retry_after: float | None = None) -> None:
        self.retry_after = retry_after
        if message is None and retry_after is not None:
            message = f"The platform is rate limiting us; call again in {retry_after:g} s."
        super().__init__(message)

    def to_dict(self) -> dict[str, object]:
        return {**super().to_dict(), "retry_after": self.retry_after}


class Unavailable(AgentdeckError):
    """The platform could not be reached or failed; call again in a little while."""

    code = "unavailable"
    retryable = True


class Unsupported(AgentdeckError):
    """This backend cannot do that; use a backend that can (see agentdeck://context)."""

    code = "unsupported"


class Timeout(AgentdeckError):
    """The platform did not answer in time; call again, or check it is up."""

    code = "timeout"
    retryable = True


class ConfigError(Exception):
    """The configuration is not valid; the message names the key to fix."""
