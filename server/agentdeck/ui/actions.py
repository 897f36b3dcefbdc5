"""What a person can do from the dashboard, each through the Backend interface as `human:<name>`
and each written to the audit trail, whether it worked or not."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from urllib.parse import quote

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from agentdeck.backends import Backend
from agentdeck.backends.requests import MessageDraft, RoutineCall
from agentdeck.errors import AgentdeckError, InvalidArgument
from agentdeck.ui.dashboard import MOUNT, Dashboard
from agentdeck.ui.guard import csrf_ok

__all__ = ["ACTION_ROUTES"]

log = logging.getLogger("agentdeck.ui")

# Each returns (target described for the audit trail, detail, where to go next).
Act = Callable[[Backend, FormData], Awaitable[tuple[str, str | None, str]]]


def _field(form: FormData, name: str, *, required: bool = True) -> str:
    value = form.get(name)
    text = value.strip() if isinstance(value, str) else ""
    if required and not text:
        raise InvalidArgument(f"{name} is required")
    return text


async def _post(backend: Backend, form: FormData) -> tuple[str, str | None, str]:
    channel, body = _field(form, "channel"), _field(form, "body")
    reply_to = _field(form, "reply_to", required=False) or None
    message = await backend.send_channel_message(MessageDraft(channel, body, kind=_field(form, "kind", required=False) or None, reply_to=reply_to))
    what = f"#{message.channel} message {message.id}" + (f" (reply to {reply_to})" if reply_to else "")
    return what, body, f"{MOUNT}/channels/{quote(backend.name)}/{quote(message.channel)}"


async def _cancel(backend: Backend, form: FormData) -> tuple[str, str | None, str]:
    run = await backend.cancel_run(_field(form, "run_id"))
    return f"run {run.id}", f"now {run.state}", f"{MOUNT}/runs/{quote(backend.name)}/{quote(run.id)}"


def _override(outcome: str) -> Act:
    async def act(backend: Backend, form: FormData) -> tuple[str, str | None, str]:
        reason = _field(form, "reason", required=False) or f"{outcome} from the dashboard"
        task = await backend.override_claim(_field(form, "task_id"), outcome, reason)
        return f"task {task.id} in {task.queue}", reason, f"{MOUNT}/tasks?backend={quote(backend.name)}&queue={quote(task.queue)}"

    return act


async def _invoke(backend: Backend, form: FormData) -> tuple[str, str | None, str]:
    routine = _field(form, "routine")
    message = _field(form, "message", required=False)
    run = await backend.invoke_routine(RoutineCall(routine, message=message or None))
    return f"routine {routine} as run {run.id}", message or None, f"{MOUNT}/runs/{quote(backend.name)}/{quote(run.id)}"


ACTS: dict[str, Act] = {
    "post": _post,
    "cancel": _cancel,
    "release": _override("released"),
    "fail": _override("failed"),
    "invoke": _invoke,
}


def _handler(action: str) -> Callable[[Request], Awaitable[Response]]:
    act = ACTS[action]

    async def handle(request: Request) -> Response:
        dash: Dashboard = request.app.state.dashboard
        if dash.read_only:
            return dash.page("error.html", status_code=403, message="This dashboard is read-only; it takes no actions.")
        form = await request.form()
        if not csrf_ok(dash, form.get("csrf")):
            return dash.page("error.html", status_code=403, message="The form's CSRF token is missing or stale; reload the page and try again.")
        await dash.ready()
        backend_name = str(form.get("backend") or dash.deck.default)
        target = str(form.get("run_id") or form.get("task_id") or form.get("channel") or form.get("routine") or "")
        try:
            backend = dash.deck.pick(backend_name)
            target, detail, next_url = await act(backend, form)
        except AgentdeckError as exc:
            await _record(dash, action, backend_name, target, None, exc.code)
            return dash.page("error.html", status_code=400 if exc.code == "invalid_argument" else 409, message=f"{exc.code}: {exc.message}")
        await _record(dash, action, backend_name, target, detail, "ok")
        return RedirectResponse(next_url, status_code=303)

    return handle


async def _record(dash: Dashboard, action: str, backend: str, target: str, detail: str | None, outcome: str) -> None:
    entry = await dash.audit.record(dash.actor, action, backend, target, detail, outcome)
    log.info("dashboard: %s %s on %s: %s (audit %s)", dash.actor, action, backend, outcome, entry.id)
    await dash.published("audit")


ACTION_ROUTES = [Route(f"/act/{name}", _handler(name), methods=["POST"]) for name in ACTS]

