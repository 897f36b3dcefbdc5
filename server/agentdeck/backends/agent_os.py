"""Agent OS adapter: agents, runs, run events by seq, and the live SSE follow of a run.

The wire contract comes from the platform's TypeScript SDK (shared/platforms/agent-os.md):
paths under /v1/api, runs created for an agent with an input and a thread, events kept per
(run, attempt, seq), polled with attemptId/afterSeq/limit and followed over SSE with
Last-Event-ID. The auth header, its scheme and any tenant headers are not documented, so all
three come from config. Unconfirmed parts are marked GUESS.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC
from typing import Any, Unpack
from urllib.parse import quote

import anyio

from agentdeck.backends.agent_os_models import (
    STATUS_PARAM,
    TERMINAL_EVENTS,
    agent_from_agent_os,
    compact,
    event_from_agent_os,
    event_from_sse,
    event_text,
    items_of,
    read_error,
    run_from_agent_os,
)
from agentdeck.backends.base import Backend, BuildEnv, Capability, Progress, only_metadata_key
from agentdeck.backends.dialect import Auth, Dialect, Overrides, explain
from agentdeck.backends.http import PlatformClient, RetryPolicy, Timeouts, collect_pages
from agentdeck.backends.requests import RunFilter, SpawnRequest
from agentdeck.config import AgentOsConfig
from agentdeck.errors import Conflict, InvalidArgument, NotFound, RateLimited, Timeout, Unauthorized, Unavailable, Unsupported
from agentdeck.models import Agent, AgentList, Run, RunEventPage, RunPage

__all__ = ["AgentOsBackend"]

_AGENT_PAGE, _AGENT_PAGES = 100, 20
_STREAM_FAILURES = 3  # connections in a row that break before any event: then poll instead
_FINAL_READ_SECONDS = 5.0


@dataclass
class _Follow:
    """Where a wait stands: the attempt it follows, the last seq reported, progress count."""

    run: Run
    attempt_id: str | None
    last_seq: int
    step: int = 0


class AgentOsBackend(Backend):
    """Agent OS runs, their events (polled by seq or followed live), and the agents behind them."""

    kind = "agent_os"
    capabilities = frozenset({Capability.AGENTS, Capability.RUNS, Capability.RUN_EVENTS, Capability.RUN_CANCEL, Capability.RUN_FOLLOWUP})

    def __init__(self, name: str, settings: AgentOsConfig, **env: Unpack[BuildEnv]) -> None:
        super().__init__(name)
        transport = env.get("transport")
        self.settings = settings
        key = settings.api_key.get_secret_value() if settings.api_key is not None else ""
        refused = explain(Unauthorized, f"Set {settings.api_key_env} to a valid key; auth_header, auth_scheme and headers in backends.{name} must match the server.")
        self.client = PlatformClient(
            "Agent OS",
            base_url=settings.base_url.rstrip("/"),
            headers=settings.headers,
            auth=Auth.key(settings.auth_header, key, scheme=settings.auth_scheme),
            timeouts=Timeouts(read=settings.timeout_seconds, connect=settings.connect_timeout_seconds),
            retry=RetryPolicy(max_retries=settings.max_retries),
            transport=transport,
            dialect=Dialect(read=read_error, statuses={401: refused, 403: refused}),
        )

    async def aclose(self) -> None:
        await self.client.aclose()

    async def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        return await self.client.json(method, "/v1/api" + path, **kwargs)

    # agents ------------------------------------------------------------------------------

    async def list_agents(self) -> AgentList:
        async def page(offset: int) -> tuple[list[Any], int | None]:
            # GUESS: PaginationParams are limit/offset and the wrapper is {items, total}.
            body = await self._call("GET", "/agents", params={"limit": _AGENT_PAGE, "offset": offset})
            items = items_of(body)
            total = body.get("total") if isinstance(body, dict) else None
            more = len(items) == _AGENT_PAGE and not (isinstance(total, int) and offset + _AGENT_PAGE >= total)
            return [a for a in items if isinstance(a, dict) and a.get("id")], offset + _AGENT_PAGE if more else None

        agents: dict[str, Agent] = {}
        for item in await collect_pages(page, 0, max_pages=_AGENT_PAGES, max_items=_AGENT_PAGES * _AGENT_PAGE):
            agents.setdefault(item["id"], agent_from_agent_os(item, self.name))  # a server ignoring offset repeats pages
        return AgentList(agents=list(agents.values()))

    async def spawn_agent(self, request: SpawnRequest) -> Run:
        agent, prompt, idempotency_key = request.agent, request.prompt, request.idempotency_key
        thread_id = only_metadata_key("Agent OS runs", request, "thread_id", "to continue a thread")
        return await self._create_run(agent, prompt, thread_id, idempotency_key)

    async def _create_run(self, agent_id: str, message: str, thread_id: str | None, key: str | None) -> Run:
        # No key from the caller: make one for this call, so a retry after a 5xx or a broken
        # connection finds the first run instead of starting a second one.
        body = {
            "agent_id": agent_id,
            "thread": {"thread_id": thread_id} if thread_id else {"new_thread": True},
            "input": {"message": message},  # the SDK's own example input shape
            "idempotency_key": key or f"agentdeck-{uuid.uuid4().hex}",
        }
        errors: Overrides = {
            404: explain(NotFound, "Use an agent id from list_agents, and a thread_id from one of its runs."),
            409: explain(Conflict, "That idempotency key was used for a different request; use a new key."),
        }
        created = await self._call("POST", "/runs", json=body, idempotent=True, errors=errors)
        run_id = created.get("run_id") if isinstance(created, dict) else None
        if not isinstance(run_id, str) or not run_id:
            raise Unavailable("Agent OS accepted the run but did not return its run_id; find it with list_runs.")
        return await self.get_run(run_id)

    # runs --------------------------------------------------------------------------------

    async def get_run(self, run_id: str) -> Run:
        return run_from_agent_os(await self._call("GET", f"/runs/{_seg(run_id)}", errors=_run_missing(run_id)), self.name)

    async def list_runs(self, query: RunFilter) -> RunPage:
        state, agent, parent_run_id, created_after, limit, cursor = query.state, query.agent, query.parent_run_id, query.created_after, query.limit, query.cursor
        if parent_run_id is not None:
            raise Unsupported("Agent OS runs have no parent run; call list_runs without parent_run_id.")
        offset = _offset(cursor)
        params: dict[str, Any] = {"limit": limit, "offset": offset}  # GUESS: names of paging and filters
        if agent:
            params["agent_id"] = agent
        if state in STATUS_PARAM:
            params["status"] = STATUS_PARAM[state]
        body = await self._call("GET", "/runs", params=params)
        items = items_of(body)
        runs = [run_from_agent_os(item, self.name) for item in items if isinstance(item, dict)]
        if state:
            runs = [r for r in runs if r.state == state]
        if created_after is not None:
            after = created_after if created_after.tzinfo else created_after.replace(tzinfo=UTC)
            runs = [r for r in runs if r.created_at is None or r.created_at > after]
        total = body.get("total") if isinstance(body, dict) else None
        more = offset + len(items) < total if isinstance(total, int) else len(items) >= limit
        return RunPage(runs=runs, next_cursor=str(offset + len(items)) if more and items else None)

    async def cancel_run(self, run_id: str) -> Run:
        run = await self.get_run(run_id)
        if run.done:
            raise Conflict(f"Run {run_id} already ended ({run.platform_state}); there is nothing to cancel.")
        # GUESS: no cancel endpoint is visible in the SDK; POST .../cancel is assumed.
        no_cancel = explain(Unsupported, "This Agent OS server has no run cancel endpoint.")
        errors: Overrides = {404: no_cancel, 405: no_cancel, 409: explain(Conflict, f"Run {run_id} has already ended; get_run shows how.")}
        body = await self._call("POST", f"/runs/{_seg(run_id)}/cancel", json={}, errors=errors)
        if isinstance(body, dict) and body.get("id") == run_id and body.get("status"):
            return run_from_agent_os(body, self.name)
        return await self.get_run(run_id)

    async def send_followup(self, run_id: str, message: str) -> Run:
        """A follow-up is a new run of the same agent on the run's thread."""
        previous = await self.get_run(run_id)
        if not previous.thread_id:
            raise Unsupported(f"Run {run_id} has no thread to continue; start a new run with spawn_agent.")
        run = await self._create_run(previous.agent, message, previous.thread_id, None)
        return run.model_copy(update={"followup_of": run_id})

    # events ------------------------------------------------------------------------------

    async def get_run_events(self, run_id: str, *, after_seq: int | None = None, limit: int = 100) -> RunEventPage:
        run = await self.get_run(run_id)
        attempt_id = run.metadata.get("current_attempt_id")
        after = after_seq or 0
        if not attempt_id:
            return RunEventPage(run_id=run_id, backend=self.name, events=[], next_after_seq=None if run.done else after, run_state=run.state)
        body = await self._events_page(run_id, attempt_id, after, limit)
        events = [event_from_agent_os(e) for e in body["events"]]
        last = events[-1].seq if events else after
        more = bool(body.get("has_more")) or not run.done or last < (run.latest_seq or 0)
        return RunEventPage(run_id=run_id, backend=self.name, events=events, next_after_seq=last if more else None, run_state=run.state)

    async def _events_page(self, run_id: str, attempt_id: str, after: int, limit: int) -> dict[str, Any]:
        params = {"attemptId": attempt_id, "afterSeq": after, "limit": limit}
        body = await self._call("GET", f"/runs/{_seg(run_id)}/events", params=params, errors=_run_missing(run_id))
        if not isinstance(body, dict) or not isinstance(body.get("events"), list):
            raise Unavailable("Agent OS answered the events poll without an events list; call again later.")
        body["events"] = [e for e in body["events"] if isinstance(e, dict) and isinstance(e.get("seq"), int)]
        return body

    async def wait_for_run(self, run_id: str, timeout: float, progress: Progress) -> Run:
        run = await self.get_run(run_id)
        if run.done or timeout <= 0:
            return run
        follow = _Follow(run, run.metadata.get("current_attempt_id"), run.latest_seq or 0)
        with anyio.move_on_after(timeout):
            return await self._follow(run_id, follow, progress)
        with anyio.move_on_after(_FINAL_READ_SECONDS):
            follow.run = await self.get_run(run_id)
        return follow.run

    async def _follow(self, run_id: str, follow: _Follow, progress: Progress) -> Run:
        """Follow the SSE stream, resuming after breaks; poll when streaming is not available."""
        failures = 0
        while True:
            if not follow.attempt_id:
                return await self._poll(run_id, follow, progress)
            seen = follow.last_seq
            try:
                if await self._stream(run_id, follow, progress):
                    return await self.get_run(run_id)
            except (NotFound, InvalidArgument, Unsupported):
                # No stream endpoint (or the attempt moved on): poll, from a fresh read of the run.
                if await self._ended(run_id, follow, progress):
                    return follow.run
                return await self._poll(run_id, follow, progress)
            except (Unavailable, Timeout, RateLimited):
                failures = 0 if follow.last_seq > seen else failures + 1
                if failures >= _STREAM_FAILURES:
                    return await self._poll(run_id, follow, progress)
                await anyio.sleep(0.25 * 2 ** (failures - 1) if failures else 0)
                continue
            # The stream ended without a terminal event: the run may have ended or moved on.
            if await self._ended(run_id, follow, progress):
                return follow.run
            if follow.last_seq == seen:
                await anyio.sleep(1.0)

    async def _stream(self, run_id: str, follow: _Follow, progress: Progress) -> bool:
        """Read one SSE connection; True when a terminal event arrived."""
        # Send the last seq both ways: Last-Event-ID and an exclusive afterSeq. A server that
        # reads afterSeq as inclusive repeats one event, which the seq check drops; one that
        # prefers afterSeq over Last-Event-ID cannot skip one (the SDK's lastSeq+1 could).
        params = {"attemptId": follow.attempt_id, "afterSeq": follow.last_seq}
        headers = {"Last-Event-ID": str(follow.last_seq)} if follow.last_seq else None
        async with self.client.sse(f"/v1/api/runs/{_seg(run_id)}/events/stream", params=params, headers=headers) as events:
            async for sse in events:
                event = event_from_sse(sse)
                if event is not None and event.get("attempt_id", follow.attempt_id) == follow.attempt_id:
                    if await self._report(follow, event, progress):
                        return True
        return False

    async def _poll(self, run_id: str, follow: _Follow, progress: Progress) -> Run:
        """The follow without a stream: read pages of events by seq, then check the run."""
        delay = 0.25
        while True:
            if follow.attempt_id:
                body = await self._events_page(run_id, follow.attempt_id, follow.last_seq, 100)
                for event in body["events"]:
                    if await self._report(follow, event, progress):
                        return await self.get_run(run_id)
                if body["events"]:
                    delay = 0.25
                    if body.get("has_more"):
                        continue
            if await self._ended(run_id, follow, progress):
                return follow.run
            await anyio.sleep(delay)
            delay = min(delay * 1.5, 3.0)

    async def _ended(self, run_id: str, follow: _Follow, progress: Progress) -> bool:
        """Re-read the run; when it has ended, report the events not seen yet and say True."""
        follow.run = await self.get_run(run_id)
        attempt_id = follow.run.metadata.get("current_attempt_id")
        if attempt_id != follow.attempt_id:  # a new attempt restarts seq at 1
            follow.attempt_id, follow.last_seq = attempt_id, 0
        if not follow.run.done:
            return False
        while follow.attempt_id:
            body = await self._events_page(run_id, follow.attempt_id, follow.last_seq, 100)
            for event in body["events"]:
                await self._report(follow, event, progress)
            if not (body.get("has_more") and body["events"]):
                break
        return True

    async def _report(self, follow: _Follow, event: dict[str, Any], progress: Progress) -> bool:
        seq = event["seq"]
        if seq <= follow.last_seq:
            return False  # already reported: a server that repeats on resume
        follow.last_seq, follow.step = seq, follow.step + 1
        kind = str(event.get("type") or "UNKNOWN")
        raw = event.get("payload")
        payload: dict[str, Any] = raw if isinstance(raw, dict) else {}
        text = event_text(payload)
        note = "; waiting for a human" if "WAITING_FOR_HUMAN" in kind.upper() else ""
        await progress(follow.step, f"seq {seq}: {kind}" + (f" ({compact(text, 120)})" if text else "") + note)
        return kind.upper() in TERMINAL_EVENTS


def _seg(value: str) -> str:
    return quote(value, safe="")


def _offset(cursor: str | None) -> int:
    if not cursor:
        return 0
    if not cursor.isdigit():
        raise InvalidArgument("cursor is not one this server gave out; pass next_cursor from the previous page, or omit it.")
    return int(cursor)


def _run_missing(run_id: str) -> Overrides:
    return {404: explain(NotFound, f"No run {run_id} (or its attempt) here; list_runs shows the runs.")}
