"""Server-sent events: each page's fragment, sent again whenever its store topic wakes and it
changed; a run's new output lines as they are written.

Every message is JSON {target, html, mode}: `html` is rendered by the same autoescaping
templates as the page, so the browser's script only places it (app.js).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

from markupsafe import escape
from sse_starlette.sse import EventSourceResponse
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from agentdeck.backends import Backend, Capability
from agentdeck.errors import AgentdeckError
from agentdeck.ui.dashboard import Dashboard
from agentdeck.ui.pages import VIEWS, build_context

__all__ = ["LIVE_ROUTES", "output_html"]

_WAIT_SECONDS = 15.0
_OUTPUT_BATCH = 500


def output_html(events: list[Any]) -> str:
    """Output lines as escaped HTML: a run's output is whatever its agent printed."""
    return "".join(f'<span class="line {escape(e.kind)}" data-seq="{e.seq}">{escape(e.text)}\n</span>' for e in events)


def _message(target: str, html: str, mode: str = "replace") -> dict[str, str]:
    return {"data": json.dumps({"target": target, "html": html, "mode": mode})}


async def _stream(dash: Dashboard, name: str, backend: Backend, params: dict[str, str]) -> AsyncIterator[dict[str, str]]:
    view = VIEWS[name]
    topic = view.topic(params)
    last_html, after = None, int(params.get("after") or 0)
    follow_output = name == "run" and Capability.RUN_EVENTS in backend.capabilities
    while True:
        with dash.watch(backend, topic) as wait:
            context = await build_context(dash, view, backend, params)
            html = dash.render(view.template, **context)
            if html != last_html:
                last_html = html
                yield _message(name, html)
            if follow_output:
                try:
                    page = await backend.get_run_events(params["run_id"], after_seq=after, limit=_OUTPUT_BATCH)
                except AgentdeckError:
                    page = None
                if page is not None and page.events:
                    after = page.events[-1].seq
                    yield _message("output", output_html(page.events), "append")
                    continue  # more may be waiting: read again before sleeping
            await wait(_WAIT_SECONDS)


def _handler(name: str) -> Any:
    async def handle(request: Request) -> Response:
        dash: Dashboard = request.app.state.dashboard
        params = {**request.query_params, **request.path_params}
        try:
            backend = dash.deck.pick(params.get("backend"))
        except AgentdeckError as exc:
            return Response(f"{exc.code}: {exc.message}", status_code=404, media_type="text/plain")
        return EventSourceResponse(_stream(dash, name, backend, params), ping=15, headers={"Cache-Control": "no-store"})

    return handle


LIVE_ROUTES = [
    Route("/live/", _handler("runs")),
    Route("/live/runs/{backend}/{run_id}", _handler("run")),
    Route("/live/channels", _handler("channels")),
    Route("/live/channels/{backend}/{channel}", _handler("channel")),
    Route("/live/tasks", _handler("tasks")),
    Route("/live/audit", _handler("audit")),
]
