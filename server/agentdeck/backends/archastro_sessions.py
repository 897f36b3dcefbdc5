"""ArchAstro session events: read them, and follow a session through its stream until it settles.

Wire facts (archastro-sdk 0.11.0 `agent_sessions.events` / `stream`): `GET /api/v1/agent_sessions/{id}/events`
(`after` = an event id, `limit` at most 1000) gives a bare array of harness events, oldest first; the SSE
`GET .../stream` replays the session as `session_update` on connect, sends one on each status change and a
`session_event` per new harness event, and closes on a terminal status.
"""

from __future__ import annotations

import json
from typing import Any

import anyio

from agentdeck.backends.archastro_models import API, EVENT_PAGE, EVENT_PAGES, event_from, event_text
from agentdeck.backends.base import Progress, poll_until_done
from agentdeck.errors import InvalidArgument, NotFound, Timeout, Unavailable, Unsupported
from agentdeck.models import Run, RunEventPage

__all__ = ["SessionEvents"]


class SessionEvents:
    """Mixin of ArchAstroBackend: get_run_events and wait_for_run. The backend provides what is declared here."""

    name: str
    _client: Any

    async def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        raise NotImplementedError

    def _session_id(self, run_id: str) -> str:
        raise NotImplementedError

    def _session_run(self, data: dict[str, Any]) -> Run:
        raise NotImplementedError

    async def get_run(self, run_id: str) -> Run:
        raise NotImplementedError

    async def _events(self, session_id: str, after: str | None, limit: int) -> list[dict[str, Any]]:
        params: dict[str, Any] = {"limit": limit} | ({"after": after} if after else {})
        events = await self._call("GET", f"/agent_sessions/{session_id}/events", params=params)
        return [e for e in events or [] if isinstance(e, dict)]

    async def get_run_events(self, run_id: str, *, after_seq: int | None = None, limit: int = 100) -> RunEventPage:
        """The session's harness events; seq is an event's place in the session (the platform pages by event id)."""
        if run_id.startswith("arr_"):
            raise Unsupported("A routine run has no events of its own; read the session it drives (list_runs shows sessions).")
        session_id = self._session_id(run_id)
        skip, wanted = after_seq or 0, (after_seq or 0) + limit + 1  # one more than asked says whether more exist
        found: list[dict[str, Any]] = []
        after = None
        for _ in range(EVENT_PAGES):
            ask = min(EVENT_PAGE, wanted - len(found))
            page = await self._events(session_id, after, ask)
            found += page
            if len(page) < ask or len(found) >= wanted:
                break
            after = page[-1].get("id")
        events = [event_from(skip + i + 1, item) for i, item in enumerate(found[skip:skip + limit])]
        run = await self.get_run(run_id)
        more = len(found) > skip + limit
        return RunEventPage(run_id=run_id, backend=self.name, events=events, next_after_seq=skip + limit if more else None, run_state=run.state)

    async def wait_for_run(self, run_id: str, timeout: float, progress: Progress) -> Run:
        """Until the session ends or waits for a message, reporting each harness event as progress.

        Follows the session's stream; where it cannot be opened or ends early, polls the session and
        its events for the time left."""
        if run_id.startswith("arr_"):
            return await poll_until_done(self.get_run, run_id, timeout, progress)
        session_id = self._session_id(run_id)
        with anyio.move_on_after(timeout):
            step = 0
            try:
                step, run = await self._follow(session_id, progress)
                if run is not None:
                    return run
            except (Unavailable, InvalidArgument, NotFound, Timeout):
                pass  # no stream here: poll instead
            return await self._poll(session_id, progress, step)
        return await self.get_run(run_id)

    async def _follow(self, session_id: str, progress: Progress) -> tuple[int, Run | None]:
        """Read the session stream until the session settles; (progress step, the settled run or None)."""
        step = 0
        async with self._client.sse(f"{API}/agent_sessions/{session_id}/stream") as events:
            async for event in events:
                try:
                    data = json.loads(event.data) if event.data else {}
                except ValueError:
                    continue  # a frame that is not JSON (a keepalive or a torn line) says nothing
                step += 1
                if event.event == "session_update":
                    run = self._session_run(data)
                    if run.done or run.state == "waiting":
                        return step, run
                    await progress(step, f"run {session_id} is {run.platform_state}")
                elif event.event == "session_event":
                    await progress(step, f"{data.get('event') or 'event'}: {event_text(data.get('payload'))[:200]}")
        return step, None

    async def _poll(self, session_id: str, progress: Progress, step: int) -> Run:
        after, delay = None, 0.5
        while True:
            run = await self.get_run(session_id)
            for item in await self._events(session_id, after, EVENT_PAGE):
                step, after = step + 1, item.get("id") or after
                await progress(step, f"{item.get('event') or 'event'}: {event_text(item.get('payload'))[:200]}")
            if run.done or run.state == "waiting":
                return run
            step += 1
            await progress(step, f"run {session_id} is {run.platform_state}")
            await anyio.sleep(delay)
            delay = min(delay * 1.5, 5.0)
