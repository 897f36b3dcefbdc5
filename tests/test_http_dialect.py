"""The HTTP core raises a platform's refusal once, read through that platform's Dialect and signed by its Auth.

A real PlatformClient over httpx2's MockTransport (the platform side only): each case shows what
a caller sees for one answer, and which of the tables decided it.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx2
import pytest

from agentdeck.backends.a2a_wire import DIALECT as A2A
from agentdeck.backends.agh_models import IDENTITY_CODES, read_error
from agentdeck.backends.dialect import Auth, Dialect, explain
from agentdeck.backends.http import PlatformClient, RetryPolicy
from agentdeck.backends.oz_models import DIALECT as OZ
from agentdeck.errors import AgentdeckError, Conflict, InvalidArgument, LeaseLost, NotFound, RateLimited, Unauthorized, Unavailable

NO_RETRY = RetryPolicy(max_retries=0)


def answering(status: int, body: Any, seen: list[httpx2.Request] | None = None, headers: dict[str, str] | None = None) -> httpx2.MockTransport:
    def handle(request: httpx2.Request) -> httpx2.Response:
        if seen is not None:
            seen.append(request)
        return httpx2.Response(status, content=json.dumps(body).encode(), headers={"content-type": "application/json", **(headers or {})})

    return httpx2.MockTransport(handle)


async def refusal(client: PlatformClient, **kwargs: Any) -> AgentdeckError:
    with pytest.raises(AgentdeckError) as caught:
        await client.json("GET", "/thing", **kwargs)
    await client.aclose()
    return caught.value


def problem(code: str, status: int, **extra: Any) -> dict[str, Any]:
    return {"type": f"https://docs.warp.dev/errors/{code.replace('_', '-')}", "title": "Refused", "status": status, **extra}


async def test_an_oz_problem_names_its_code_and_keeps_the_platforms_retryable_flag() -> None:
    body = problem("insufficient_credits", 402, detail="no credits left", retryable=False, trace_id="t-1")
    error = await refusal(PlatformClient("oz", base_url="http://oz", transport=answering(402, body), retry=NO_RETRY, dialect=OZ))
    assert isinstance(error, Unavailable) and error.retryable is False  # the class says retryable; the body says not
    assert error.message == "oz answered 402: Refused (no credits left) [error code insufficient_credits, trace t-1]. Add credits in the team's Warp billing settings, then call again."
    assert (error.platform_code, error.platform_status, error.platform_body) == ("insufficient_credits", 402, body)


async def test_a_calls_own_code_table_wins_and_states_its_own_retryable() -> None:
    body = problem("conflict", 409, retryable=False)
    pending = {"conflict": lambda text: Conflict(f"{text}. Call again in a few seconds.", retryable=True)}
    error = await refusal(PlatformClient("oz", base_url="http://oz", transport=answering(409, body), retry=NO_RETRY, dialect=OZ), errors=pending)
    assert isinstance(error, Conflict) and error.retryable is True
    assert error.message == "oz answered 409: Refused [error code conflict]. Call again in a few seconds."


async def test_429_stays_rate_limited_with_its_retry_after_whatever_code_it_carries() -> None:
    transport = answering(429, problem("resource_unavailable", 429), headers={"retry-after": "40"})
    error = await refusal(PlatformClient("oz", base_url="http://oz", transport=transport, retry=NO_RETRY, dialect=OZ))
    assert isinstance(error, RateLimited) and error.retry_after == 40
    assert error.platform_code == "resource_unavailable"


def agh(transport: httpx2.MockTransport) -> PlatformClient:
    who = lambda text: Unauthorized(f"{text}. Run it from a live AGH session.")  # noqa: E731
    dialect = Dialect(read=read_error, codes=dict.fromkeys(IDENTITY_CODES, who), statuses={401: who})
    return PlatformClient("AGH", base_url="http://agh", transport=transport, retry=NO_RETRY, dialect=dialect)


async def test_a_platform_code_beats_a_calls_status_table_and_a_code_in_the_text_is_read() -> None:
    identity = {"error": "not your workspace", "diagnostic": {"code": "identity_unauthorized", "title": "Agent identity error"}}
    elsewhere = {403: explain(InvalidArgument, "Omit queue.")}
    error = await refusal(agh(answering(403, identity)), errors=elsewhere)
    assert isinstance(error, Unauthorized)
    assert error.message == "AGH answered 403: not your workspace [AGH identity_unauthorized: Agent identity error]. Run it from a live AGH session."

    foreign = {"error": 'task: autonomy lease rejected: AUTONOMY_FOREIGN_RUN: run "r1" is not owned by session "s1"'}
    lost: dict[int | str, Callable[[str], AgentdeckError]] = {"AUTONOMY_FOREIGN_RUN": explain(LeaseLost, "Claim new work."), 403: explain(Unauthorized, "Refused.")}
    error = await refusal(agh(answering(403, foreign)), errors=lost)
    assert isinstance(error, LeaseLost) and error.platform_code == "AUTONOMY_FOREIGN_RUN"


async def test_a_refreshed_token_signs_each_call_and_never_shows_in_a_message() -> None:
    tokens = iter(["tok-first-0001", "tok-second-0002"])
    seen: list[httpx2.Request] = []

    async def token() -> str:
        return next(tokens)

    client = PlatformClient("Azure AI Foundry", base_url="http://az", transport=answering(404, {"error": {"message": "who is tok-second-0002?"}}, seen), retry=NO_RETRY, auth=Auth(token=token))
    with pytest.raises(NotFound):
        await client.json("GET", "/a")
    error = await refusal(client)
    assert [r.headers["authorization"] for r in seen] == ["Bearer tok-first-0001", "Bearer tok-second-0002"]
    assert "tok-second" not in error.message and "[redacted]" in error.message


async def test_a_missing_credential_is_refused_before_anything_is_sent() -> None:
    seen: list[httpx2.Request] = []
    auth = Auth.key("x-api-key", "", missing="No key: set EXAMPLE_KEY and restart.")
    error = await refusal(PlatformClient("Example", base_url="http://ex", transport=answering(200, {}, seen), auth=auth))
    assert isinstance(error, Unauthorized) and error.message == "No key: set EXAMPLE_KEY and restart."
    assert seen == []


async def test_an_a2a_refusal_inside_a_success_reads_in_the_agents_own_words() -> None:
    client = PlatformClient("A2A agent quoter", base_url="http://a2a", dialect=A2A)
    body = {"jsonrpc": "2.0", "id": 1, "error": {"code": -32001, "message": "Task t-9 not found"}}
    error = client.refused(body)
    assert isinstance(error, NotFound) and error.platform_code == "TASK_NOT_FOUND"
    assert error.message == "Task t-9 not found. The agent does not know that task; list_runs or spawn_agent give run ids it knows."
    assert client.refused({"jsonrpc": "2.0", "id": 2, "error": {"code": -32099, "message": "odd"}}) is None  # unknown: the caller words it
