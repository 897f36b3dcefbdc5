"""Server-rendered pages. Each view is a context builder and a fragment template, so the live
stream (live.py) re-renders exactly what the page first showed."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from agentdeck.backends import Backend, Capability
from agentdeck.backends.local.overview import COUNT_CAP
from agentdeck.backends.local.store import queue_topic
from agentdeck.backends.requests import RunFilter
from agentdeck.errors import AgentdeckError, InvalidArgument
from agentdeck.models import ChannelMessage, Run
from agentdeck.ui.dashboard import Dashboard

__all__ = ["PAGE_ROUTES", "VIEWS", "View", "build_context"]

PAGE = 50
_OUTPUT_PAGE = 500
_MAX_TREE = 50


@dataclass(frozen=True)
class View:
    template: str  # the fragment, also the id of the element it fills
    build: Callable[[Dashboard, Backend, dict[str, str]], Awaitable[dict[str, Any]]]
    topic: Callable[[dict[str, str]], str | None]  # the wake-up that means "render again"
    capability: Capability | None
    live: Callable[[dict[str, str]], bool] = lambda params: True  # older pages stay still


async def _runs(dash: Dashboard, backend: Backend, params: dict[str, str]) -> dict[str, Any]:
    page = await backend.list_runs(RunFilter(limit=PAGE, cursor=params.get("cursor") or None, state=params.get("state") or None))
    return {"runs": page.runs, "next_cursor": page.next_cursor}


async def _run(dash: Dashboard, backend: Backend, params: dict[str, str]) -> dict[str, Any]:
    run = await backend.get_run(params["run_id"])
    ancestors: list[Run] = []
    parent_id = run.parent_run_id
    while parent_id and len(ancestors) < 10:
        try:
            parent = await backend.get_run(parent_id)
        except AgentdeckError:
            break
        ancestors.insert(0, parent)
        parent_id = parent.parent_run_id
    children = []
    if Capability.RUNS in backend.capabilities:
        try:
            children = (await backend.list_runs(RunFilter(parent_run_id=run.id, limit=_MAX_TREE))).runs
        except AgentdeckError:
            pass  # a platform that cannot filter by parent shows no children
    return {"run": run, "ancestors": ancestors, "children": children}


async def _channels(dash: Dashboard, backend: Backend, params: dict[str, str]) -> dict[str, Any]:
    return {"channels": (await backend.list_channels()).channels}


async def _channel(dash: Dashboard, backend: Backend, params: dict[str, str]) -> dict[str, Any]:
    newest_first = await backend.search_messages(params["channel"], params.get("q", ""), limit=PAGE, before=params.get("before") or None)
    messages = list(reversed(newest_first))
    by_id: dict[str, ChannelMessage] = {m.id: m for m in messages}
    older = newest_first[-1].id if len(newest_first) == PAGE else None
    return {"messages": messages, "by_id": by_id, "older": older}


async def _tasks(dash: Dashboard, backend: Backend, params: dict[str, str]) -> dict[str, Any]:
    queues = await backend.task_queues()
    queue = params.get("queue") or (next(iter(queues)) if queues else "default")
    before = params.get("before")
    if before is not None and not before.isdigit():
        raise InvalidArgument("before must be a task seq from this page")
    tasks = await backend.list_tasks(queue, limit=PAGE, before=int(before) if before else None)
    older = tasks[-1].seq if len(tasks) == PAGE else None
    return {"queues": queues, "queue": queue, "tasks": tasks, "older": older, "count_cap": COUNT_CAP}


async def _routines(dash: Dashboard, backend: Backend, params: dict[str, str]) -> dict[str, Any]:
    return {"routines": (await backend.list_routines()).routines}


async def _audit(dash: Dashboard, backend: Backend, params: dict[str, str]) -> dict[str, Any]:
    before = params.get("before")
    if before is not None and not before.isdigit():
        raise InvalidArgument("before must be an audit entry id")
    entries = await dash.audit.latest(PAGE, int(before) if before else None)
    return {"entries": entries, "older": entries[-1].id if len(entries) == PAGE else None}


VIEWS: dict[str, View] = {
    "runs": View("runs.html", _runs, lambda p: "runs", Capability.RUNS, lambda p: not p.get("cursor")),
    "run": View("run.html", _run, lambda p: f"run:{p['run_id']}", Capability.RUNS),
    "channels": View("channels.html", _channels, lambda p: None, Capability.CHANNELS),
    "channel": View("channel.html", _channel, lambda p: f"channel:{p['channel']}", Capability.CHANNELS, lambda p: not p.get("before")),
    "tasks": View("tasks.html", _tasks, lambda p: queue_topic(p["queue"]) if p.get("queue") else None, Capability.TASKS, lambda p: not p.get("before")),
    "routines": View("routines.html", _routines, lambda p: None, Capability.ROUTINES, lambda p: False),
    "audit": View("audit.html", _audit, lambda p: "audit", None, lambda p: not p.get("before")),
}


async def build_context(dash: Dashboard, view: View, backend: Backend, params: dict[str, str]) -> dict[str, Any]:
    """The fragment's context; a platform error becomes a message in the page, not a failure."""
    await dash.ready()
    context: dict[str, Any] = {"backend": backend, "params": params, "error": None}
    if view.capability is not None and view.capability not in backend.capabilities:
        context["error"] = f"Backend '{backend.name}' ({backend.kind}) has no {view.capability.value}."
        return context
    try:
        context.update(await view.build(dash, backend, params))
    except AgentdeckError as exc:
        context["error"] = f"{exc.code}: {exc.message}"
    return context


def _params(request: Request) -> dict[str, str]:
    return {**request.query_params, **request.path_params}


def _handler(name: str) -> Callable[[Request], Awaitable[Response]]:
    view = VIEWS[name]

    async def handle(request: Request) -> Response:
        dash: Dashboard = request.app.state.dashboard
        params = _params(request)
        try:
            backend = dash.deck.pick(params.get("backend"))
        except AgentdeckError as exc:
            return dash.page("error.html", status_code=404, message=f"{exc.code}: {exc.message}")
        params["backend"] = backend.name
        context = await build_context(dash, view, backend, params)
        extra: dict[str, Any] = {}
        if name == "run" and context.get("run") is not None:
            extra = await _output(backend, params["run_id"])
        live = f"{request.url.path.replace('/ui/', '/ui/live/', 1)}?{urlencode(params)}" if view.live(params) else None
        return dash.page("page.html", view=name, fragment=view.template, live=live, csrf=dash.csrf_token, **context, **extra)

    return handle


async def _output(backend: Backend, run_id: str) -> dict[str, Any]:
    """A run's output so far (the first pages), and where the live stream goes on from."""
    if Capability.RUN_EVENTS not in backend.capabilities:
        return {"events": [], "after": 0, "output_note": f"Backend '{backend.name}' does not keep run output."}
    events, after = [], 0
    for _ in range(4):
        page = await backend.get_run_events(run_id, after_seq=after, limit=_OUTPUT_PAGE)
        events += page.events
        after = page.events[-1].seq if page.events else after
        if len(page.events) < _OUTPUT_PAGE:
            break
    return {"events": events, "after": after, "output_note": None}


PAGE_ROUTES = [
    Route("/", _handler("runs")),
    Route("/runs/{backend}/{run_id}", _handler("run")),
    Route("/channels", _handler("channels")),
    Route("/channels/{backend}/{channel}", _handler("channel")),
    Route("/tasks", _handler("tasks")),
    Route("/routines", _handler("routines")),
    Route("/audit", _handler("audit")),
]
