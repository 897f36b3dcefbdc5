"""How a platform says no, and how its calls are signed: the values an adapter gives the HTTP core.

    OZ = Dialect(read=read_problem, codes={"not_authorized": explain(Unauthorized, "Use a key with access.")})
    client = PlatformClient("oz", base_url=..., auth=Auth.key("Authorization", key, scheme="Bearer"), dialect=OZ)

The core reads a failed answer's body with `Dialect.read` into a `Problem` (the platform's text,
its own code, its own retryable flag), words it as "<platform> answered <status>: <text>", and
picks our error class from the first of these that knows the answer:

1. the call's own table (`errors=`), by platform code: a call that reads one answer its own way;
2. status 429: RateLimited, with the Retry-After the platform sent;
3. the dialect's table, by platform code;
4. the call's own table, by status;
5. the dialect's table, by status;
6. our default for the status.

The platform's retryable flag then wins over the class's, except after (1), whose entry states its
own. The error carries `platform_body`, `platform_code` and `platform_status`, so a caller that must
react to one particular answer tests those on the typed error; nothing parses a body twice.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from agentdeck.errors import AgentdeckError, Conflict, InvalidArgument, NotFound, RateLimited, Unauthorized, Unavailable

__all__ = ["Auth", "Dialect", "ErrorFactory", "Overrides", "Problem", "explain", "read_plain", "refusal"]

ErrorFactory = Callable[[str], AgentdeckError]
"""Our error for a refusal, given its text ("<platform> answered <status>: <platform's text>")."""
Overrides = Mapping[int | str, ErrorFactory]
"""A call's own reading of some answers: by HTTP status (int) or by platform code (str)."""


@dataclass(frozen=True)
class Problem:
    """A platform's error body in our terms."""

    text: str
    code: str | None = None
    retryable: bool | None = None


def read_plain(body: Any) -> Problem | None:
    """The common shapes: a `message`, `detail`, `error_description`, `title` or `error` field (or error.message)."""
    if isinstance(body, dict):
        for key in ("message", "detail", "error_description", "title", "error"):
            value = body.get(key)
            if isinstance(value, str) and value:
                return Problem(value)
            if isinstance(value, dict) and isinstance(value.get("message"), str):
                return Problem(value["message"])
    return Problem(str(body)[:300])


def explain(cls: type[AgentdeckError], step: str) -> ErrorFactory:
    """An entry of a code table: the refusal's text, then the next step to take."""
    return lambda text: cls(f"{text}. {step}")


@dataclass(frozen=True)
class Dialect:
    """How one platform's error bodies read, and which of its answers mean which of our errors."""

    read: Callable[[Any], Problem | None] = read_plain
    """The decoded JSON body (never None) as a Problem; None when it is not the platform's error shape."""
    codes: Mapping[str, ErrorFactory] = field(default_factory=dict)
    statuses: Mapping[int, ErrorFactory] = field(default_factory=dict)
    own_words: bool = False
    """An entry of `codes` gets the platform's text alone, not "<platform> answered <status>: ..."."""


@dataclass(frozen=True)
class Auth:
    """How a platform's calls are signed: fixed credential headers, or a bearer token fetched before each call.

    `missing`, when set, says no credential is configured: every call raises Unauthorized with it
    before anything is sent. `secrets` are redacted from every message the core builds.
    """

    headers: Mapping[str, str] = field(default_factory=dict)
    secrets: tuple[str, ...] = ()
    token: Callable[[], Awaitable[str]] | None = None
    """Returns a current bearer token (the provider caches and renews it)."""
    missing: str | None = None

    @classmethod
    def key(cls, header: str, key: str, *, scheme: str = "", missing: str | None = None) -> Auth:
        """A static key sent in `header` (after `scheme`, when given); `missing` when the key is empty."""
        if not key:
            return cls(missing=missing)
        return cls(headers={header: f"{scheme} {key}" if scheme else key}, secrets=(key,))


def refusal(platform: str, status: int, detail: str, problem: Problem | None, dialect: Dialect, overrides: Overrides, retry_after: float | None) -> AgentdeckError:
    """Our error for a platform's non-2xx answer (see the module docstring for the order)."""
    text = f"{platform} answered {status}: {detail}"
    code = problem.code if problem else None
    if code is not None and code in overrides:
        return overrides[code](text)
    if status == 429:
        wait = f"; call again in {retry_after:g} s" if retry_after is not None else "; wait a little and call again"
        error: AgentdeckError = RateLimited(f"{text}{wait}.", retry_after=retry_after)
    elif code is not None and code in dialect.codes:
        error = dialect.codes[code](detail if dialect.own_words else text)
    elif status in overrides:
        error = overrides[status](text)
    elif status in dialect.statuses:
        error = dialect.statuses[status](text)
    else:
        error = _by_status(status, text)
    if problem is not None and isinstance(problem.retryable, bool):
        error.retryable = problem.retryable
    return error


def _by_status(status: int, text: str) -> AgentdeckError:
    if status in (401, 403):
        return Unauthorized(f"{text}. Check the credentials and identity in the configuration (agentdeck doctor).")
    if status == 404:
        return NotFound(f"{text}. Check the id, or list what exists.")
    if status == 409:
        return Conflict(f"{text}. Read the object's current state before trying again.")
    if status == 413:
        return InvalidArgument(f"{text}. The request is too large; send less.")
    if 400 <= status < 500:
        return InvalidArgument(f"{text}. Correct the arguments and call again.")
    return Unavailable(f"{text}. The platform failed; call again in a little while.", retryable=True)
