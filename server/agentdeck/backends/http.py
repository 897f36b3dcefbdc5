"""The one HTTP core every remote adapter uses (httpx2, pooled connections).

    client = PlatformClient("oz", base_url=..., auth=Auth.key("Authorization", key, scheme="Bearer"), dialect=OZ)
    run = await client.json("GET", f"/agent/runs/{run_id}")

It sets connect and read timeouts, retries what is safe to retry (reads, writes marked
idempotent, and any request refused before the platform acted: connection refused, 429) with
capped exponential backoff and jitter, honours Retry-After, signs each call as the platform's
`Auth` says, and raises every failure once as an `AgentdeckError` whose code says what happened
and whether retrying can help: the platform's `Dialect` (dialect.py) reads its error bodies and
names the error for its codes and statuses. Secret values (`secrets`, the credential, the latest
token) are redacted from every message it builds. Adapters never see httpx2 exceptions.
"""

from __future__ import annotations

import email.utils
import logging
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Iterable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import anyio
import httpx2

from agentdeck.backends.dialect import Auth, Dialect, Overrides, refusal
from agentdeck.errors import AgentdeckError, Timeout, Unauthorized, Unavailable, Unsupported

__all__ = ["DEFAULT_RETRY", "DEFAULT_TIMEOUTS", "PlatformClient", "RetryPolicy", "ServerSentEvent", "Timeouts", "collect_pages", "redact"]

log = logging.getLogger("agentdeck.http")

ServerSentEvent = httpx2.ServerSentEvent

_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})


@dataclass(frozen=True)
class Timeouts:
    """Seconds to wait for a connection and for each read."""

    connect: float = 5.0
    read: float = 30.0


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently to retry a call that is safe to repeat."""

    max_retries: int = 3
    backoff_base: float = 0.5
    backoff_max: float = 8.0
    max_retry_after: float = 30.0  # a longer Retry-After is reported, not slept through


DEFAULT_TIMEOUTS = Timeouts()
DEFAULT_RETRY = RetryPolicy()


def redact(text: str, secrets: Iterable[str]) -> str:
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, "[redacted]")
    return text


def _retry_after(response: httpx2.Response) -> float | None:
    value = response.headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


class PlatformClient:
    """An async HTTP client for one platform: base URL, auth headers, timeouts, retries, errors."""

    def __init__(
        self,
        platform: str,
        *,
        base_url: str,
        headers: Mapping[str, str] | None = None,
        secrets: Iterable[str] = (),
        timeouts: Timeouts = DEFAULT_TIMEOUTS,
        retry: RetryPolicy = DEFAULT_RETRY,
        transport: httpx2.AsyncBaseTransport | None = None,
        uds: str | None = None,
        auth: Auth = Auth(),
        dialect: Dialect = Dialect(),
    ) -> None:
        self.platform = platform
        self.retry = retry
        self.dialect = dialect
        self._auth = auth
        self._token = ""  # the latest token from auth.token, redacted like the other secrets
        self._secrets = [s for s in (*secrets, *auth.secrets) if s]
        self._base_url = base_url
        self._options: dict[str, Any] = {
            "headers": {**(headers or {}), **auth.headers},
            "timeout": httpx2.Timeout(timeouts.read, connect=timeouts.connect),
            "follow_redirects": False,
        }
        self._transport = transport
        self._uds = uds
        self._http: httpx2.AsyncClient | None = None

    def __repr__(self) -> str:
        return f"PlatformClient({self.platform!r}, base_url={self._base_url!r}, headers=[secure])"

    @property
    def _client(self) -> httpx2.AsyncClient:
        # Made on first use, so its connections belong to the event loop that serves; aclose()
        # drops it, and a later session on another loop gets a fresh one.
        if self._http is None:
            transport = self._transport or httpx2.AsyncHTTPTransport(uds=self._uds, retries=0)
            self._http = httpx2.AsyncClient(base_url=self._base_url, transport=transport, **self._options)
        return self._http

    async def aclose(self) -> None:
        http, self._http = self._http, None
        if http is not None:
            await http.aclose()

    async def _signed(self, headers: Mapping[str, str] | None) -> Mapping[str, str] | None:
        """The call's headers with a fresh token when the platform signs by token; refuses when no credential is set."""
        if self._auth.missing is not None:
            raise Unauthorized(self._auth.missing)
        if self._auth.token is None:
            return headers
        self._token = await self._auth.token()
        return {"Authorization": f"Bearer {self._token}", **(headers or {})}

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Any = None,
        json: Any = None,
        content: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        idempotent: bool | None = None,
        errors: Overrides | None = None,
        redirect: bool = False,
        accept: Collection[int] = (),
    ) -> httpx2.Response:
        """Send one call, retrying when safe; returns a 2xx response or raises an AgentdeckError.

        With `redirect`, a 3xx answer is returned too, for the caller to read its Location; a
        status in `accept` is returned as well (an answer that is no failure for this call).

        `idempotent` marks a write as safe to repeat (it carries an idempotency key, or the
        platform documents it as idempotent); reads are always safe. `errors` is the call's own
        reading of some answers, by status or platform code (see dialect.py).
        """
        method = method.upper()
        safe = method in _SAFE_METHODS if idempotent is None else idempotent
        headers = await self._signed(headers)
        attempt = 0
        while True:
            started = time.perf_counter()
            try:
                response = await self._client.request(method, path, params=params, json=json, content=content, headers=headers)
            except (httpx2.ConnectError, httpx2.ConnectTimeout) as exc:
                # The request never reached the platform, so even a write may be sent again.
                error: AgentdeckError = Unavailable(f"Cannot reach {self.platform} ({type(exc).__name__}); check that it is up and the URL is right, then call again.")
                if attempt < self.retry.max_retries:
                    attempt += 1
                    await anyio.sleep(self._backoff(attempt))
                    continue
                raise error from exc
            except httpx2.TimeoutException as exc:
                if safe and attempt < self.retry.max_retries:
                    attempt += 1
                    await anyio.sleep(self._backoff(attempt))
                    continue
                raise Timeout(f"{self.platform} did not answer {method} {self._path(path)} in time ({type(exc).__name__}); call again or check the platform.") from exc
            except httpx2.TransportError as exc:
                if safe and attempt < self.retry.max_retries:
                    attempt += 1
                    await anyio.sleep(self._backoff(attempt))
                    continue
                what = "" if safe else " It may or may not have taken effect: read the object before repeating the call."
                raise Unavailable(f"The connection to {self.platform} broke during {method} {self._path(path)} ({type(exc).__name__}).{what}") from exc
            log.debug("%s %s %s -> %s in %.1f ms", self.platform, method, self._path(path), response.status_code, (time.perf_counter() - started) * 1000)
            if response.is_success or (redirect and response.is_redirect) or response.status_code in accept:
                return response
            await response.aread()
            retry_after = _retry_after(response)
            retryable = response.status_code in _RETRY_STATUSES and (safe or response.status_code == 429)
            if retryable and attempt < self.retry.max_retries and (retry_after is None or retry_after <= self.retry.max_retry_after):
                attempt += 1
                await anyio.sleep(retry_after if retry_after is not None else self._backoff(attempt))
                continue
            raise self._error(response, retry_after, errors or {})

    async def json(self, method: str, path: str, **kwargs: Any) -> Any:
        """Like `request`, returning the decoded JSON body (None for an empty body).

        A body that is not JSON is read again when the call is safe to repeat.
        """
        safe = method.upper() in _SAFE_METHODS if kwargs.get("idempotent") is None else kwargs["idempotent"]
        attempt = 0
        while True:
            response = await self.request(method, path, **kwargs)
            if not response.content:
                return None
            try:
                return response.json()
            except ValueError as exc:
                if not safe or attempt >= self.retry.max_retries:
                    what = "" if safe else " It may or may not have taken effect: read the object before repeating the call."
                    raise Unavailable(f"{self.platform} answered {method} {self._path(path)} with a body that is not JSON.{what}") from exc
                attempt += 1
                await anyio.sleep(self._backoff(attempt))

    @asynccontextmanager
    async def sse(
        self, path: str, *, method: str = "GET", json: Any = None, params: Any = None, headers: Mapping[str, str] | None = None
    ) -> AsyncIterator[AsyncIterator[ServerSentEvent]]:
        """Open a server-sent event stream; iterating yields events. Errors map like `request`.

        A stream that breaks mid-way raises Unavailable; the caller resumes from the last id. A
        success answered with a plain body instead of a stream raises Unsupported, carrying the
        decoded body (platforms refuse a subscription that way, e.g. to a finished task).
        """
        timeout = httpx2.Timeout(None, connect=self._client.timeout.connect)
        headers = await self._signed(headers)
        try:
            async with self._client.sse(path, method=method, json=json, params=params, headers=headers, timeout=timeout) as source:
                response = source.response
                if not response.is_success:
                    await response.aread()
                    raise self._error(response, _retry_after(response), {})
                if "text/event-stream" not in response.headers.get("content-type", ""):
                    await response.aread()
                    body = _decoded(response)
                    error = self.refused(body) or Unsupported(f"{self.platform} answered {self._path(path)} without an event stream.")
                    error.platform_body = body
                    raise error
                yield self._events(source)
        except (httpx2.ConnectError, httpx2.ConnectTimeout) as exc:
            raise Unavailable(f"Cannot reach {self.platform} ({type(exc).__name__}).") from exc
        except httpx2.TransportError as exc:
            raise Unavailable(f"The {self.platform} event stream broke ({type(exc).__name__}).") from exc

    @asynccontextmanager
    async def stream(self, method: str, path: str, *, json: Any = None, errors: Overrides | None = None) -> AsyncIterator[httpx2.Response]:
        """Send one call without retries and yield its 2xx response unread, for bodies read bit by bit.

        Leaving the block closes the connection, whatever is left unread. Errors map like `request`.
        """
        headers = await self._signed(None)
        try:
            async with self._client.stream(method, path, json=json, headers=headers) as response:
                if not response.is_success:
                    await response.aread()
                    raise self._error(response, _retry_after(response), errors or {})
                yield response
        except (httpx2.ConnectError, httpx2.ConnectTimeout) as exc:
            raise Unavailable(f"Cannot reach {self.platform} ({type(exc).__name__}); check that it is up and the URL is right, then call again.") from exc
        except httpx2.TimeoutException as exc:
            raise Timeout(f"{self.platform} did not answer {method} {self._path(path)} in time ({type(exc).__name__}).") from exc
        except httpx2.TransportError as exc:
            raise Unavailable(f"The connection to {self.platform} broke during {method} {self._path(path)} ({type(exc).__name__}).") from exc

    async def _events(self, source: Any) -> AsyncIterator[ServerSentEvent]:
        try:
            async for event in source:
                yield event
        except httpx2.TransportError as exc:
            raise Unavailable(f"The {self.platform} event stream broke ({type(exc).__name__}).") from exc

    def _backoff(self, attempt: int) -> float:
        ceiling = min(self.retry.backoff_max, self.retry.backoff_base * 2 ** (attempt - 1))
        return ceiling * random.uniform(0.5, 1.0)

    def _path(self, path: str) -> str:
        return redact(path.split("?", 1)[0], self._secrets)

    def _error(self, response: httpx2.Response, retry_after: float | None, overrides: Overrides) -> AgentdeckError:
        """The one error for a non-2xx answer, worded by the platform's dialect."""
        body = _decoded(response)
        problem = self.dialect.read(body) if body is not None else None
        detail = redact(problem.text if problem else response.text[:300], self._secrets_now()).strip() or response.reason_phrase
        error = refusal(self.platform, response.status_code, detail, problem, self.dialect, overrides, retry_after)
        error.platform_body, error.platform_status = body, response.status_code
        error.platform_code = problem.code if problem else None
        return error

    def refused(self, body: Any) -> AgentdeckError | None:
        """Our error for a refusal sent inside a successful answer (a JSON-RPC error, a plain body
        where a stream was asked for), when the dialect knows its code; else None."""
        problem = self.dialect.read(body) if body is not None else None
        if problem is None or problem.code is None or problem.code not in self.dialect.codes:
            return None
        detail = redact(problem.text, self._secrets_now()).strip()
        error = self.dialect.codes[problem.code](detail if self.dialect.own_words else f"{self.platform} refused: {detail}")
        error.platform_body, error.platform_code = body, problem.code
        return error

    def _secrets_now(self) -> list[str]:
        return [*self._secrets, self._token] if self._token else self._secrets


def _decoded(response: httpx2.Response) -> Any:
    """The answer's JSON body, or None when it has none."""
    try:
        return response.json()
    except ValueError:
        return None


Page = tuple[list[Any], Any]
"""A page's items and the cursor of the next page (None at the end)."""


async def collect_pages(fetch: Callable[[Any], Awaitable[Page]], first: Any = None, *, max_items: int = 1000, max_pages: int = 20) -> list[Any]:
    """Follow a platform's paging from `first` until it ends, or the item or page bound is hit.

    `fetch(cursor)` reads one page in whatever style the platform pages (cursor, page
    number, offset) and says where the next one starts; bounds keep one call from reading
    an unbounded listing.
    """
    items: list[Any] = []
    cursor = first
    for _ in range(max_pages):
        page, cursor = await fetch(cursor)
        items += page
        if cursor is None or not page or len(items) >= max_items:
            break
    return items[:max_items]
