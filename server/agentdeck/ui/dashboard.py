"""The Dashboard: a deck of its own acting as `human:<name>`, its templates, and its ASGI app."""

from __future__ import annotations

import contextlib
import getpass
import re
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import anyio
import jinja2
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from agentdeck import __version__
from agentdeck.backends import Backend, Deck
from agentdeck.backends.local.store import Store, open_store
from agentdeck.config import Config
from agentdeck.errors import InvalidArgument
from agentdeck.ui.audit import AuditTrail
from agentdeck.ui.guard import Guard

__all__ = ["MOUNT", "Dashboard"]

MOUNT = "/ui"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$")
_REMOTE_POLL_SECONDS = 3.0


def human_identity(name: str | None) -> str:
    """`human:<name>` for a person's name (default: the login name).

    Raises:
        InvalidArgument: a name that is not 1-64 letters, digits, '_', '.', '@' or '-'.
    """
    name = (name or getpass.getuser()).removeprefix("human:")
    if not _NAME.match(name):
        raise InvalidArgument("a person's name must be 1-64 letters, digits, '_', '.', '@' or '-'")
    return f"human:{name}"


def _iso(value: datetime | None) -> str:
    return value.astimezone(UTC).isoformat() if value else ""


class Dashboard:
    """Everything the dashboard serves, for one person, against the configured backends.

    It builds its own Deck from the config with the person's identity, so what they post,
    claim or start carries `human:<name>` to the agents, exactly as an agent's identity would.
    """

    def __init__(self, config: Config, *, human: str | None = None, read_only: bool | None = None, port: int | None = None) -> None:
        self.actor = human_identity(human)
        self.read_only = config.read_only if read_only is None else read_only
        self.deck = Deck.from_config(config.model_copy(update={"identity": self.actor, "run_id": None}))
        self.csrf_token = secrets.token_urlsafe(32)
        self.guard_settings = (config, port or config.http.port)
        self._own_store: Store | None = None
        self.audit = AuditTrail(self._audit_store(config))
        self.templates = jinja2.Environment(
            loader=jinja2.PackageLoader("agentdeck.ui", "templates"),
            autoescape=True,  # every value is text unless a template says otherwise; agents' text never is
            undefined=jinja2.StrictUndefined,
        )
        self.templates.filters["iso"] = _iso
        self.templates.globals.update(root=MOUNT, dashboard=self, version=__version__)
        self._opened = False
        self._open_lock = anyio.Lock()

    def _audit_store(self, config: Config) -> Store:
        for backend in self.deck.backends.values():
            store = getattr(backend, "store", None)
            if store is not None:
                return store
        self._own_store = open_store(None, config.resolved_data_dir)
        return self._own_store

    async def ready(self) -> None:
        """Open the local stores and wake-up listeners on first use (a mounted app has no lifespan)."""
        if self._opened:
            return
        async with self._open_lock:
            if not self._opened:
                for backend in self.deck.backends.values():
                    store, wakeups = getattr(backend, "store", None), getattr(backend, "wakeups", None)
                    if store is not None:
                        await store.open()
                    if wakeups is not None:
                        wakeups.open()
                if self._own_store is not None:
                    await self._own_store.open()
                self._opened = True

    async def aclose(self) -> None:
        await self.deck.aclose()
        if self._own_store is not None:
            await self._own_store.close()

    def render(self, template: str, **context: Any) -> str:
        return self.templates.get_template(template).render(**context)

    def page(self, template: str, status_code: int = 200, **context: Any) -> Response:
        return Response(self.render(template, **context), status_code=status_code, media_type="text/html; charset=utf-8")

    @contextlib.contextmanager
    def watch(self, backend: Backend, topic: str | None) -> Iterator[Callable[[float], Awaitable[None]]]:
        """Register for `topic`'s wake-ups before reading, then wait: a change in between is not missed."""
        wakeups = getattr(backend, "wakeups", None)
        if wakeups is None or topic is None:

            async def poll(timeout: float) -> None:
                await anyio.sleep(min(timeout, _REMOTE_POLL_SECONDS if wakeups is None else wakeups.fallback_seconds))

            yield poll
            return
        event = wakeups.register(topic)
        try:
            yield lambda timeout: wakeups.wait(event, timeout)
        finally:
            wakeups.unregister(topic, event)

    async def published(self, *topics: str) -> None:
        """Wake watchers of `topics` (the audit trail's) in every process sharing the store."""
        for backend in self.deck.backends.values():
            wakeups = getattr(backend, "wakeups", None)
            if wakeups is not None:
                await wakeups.publish(*topics)
                return

    def routes(self) -> list[Any]:
        from agentdeck.ui.actions import ACTION_ROUTES
        from agentdeck.ui.live import LIVE_ROUTES
        from agentdeck.ui.pages import PAGE_ROUTES

        static = StaticFiles(packages=[("agentdeck.ui", "static")])
        return [*PAGE_ROUTES, *LIVE_ROUTES, *ACTION_ROUTES, Mount("/static", app=static, name="static")]

    def mounted_app(self) -> Starlette:
        """The dashboard to mount at /ui, guarded; used by `serve --http` and by `app()`."""
        config, port = self.guard_settings
        app = Starlette(routes=self.routes(), middleware=[Middleware(Guard, dashboard=self, config=config, port=port)])
        app.state.dashboard = self
        return app

    def app(self) -> Starlette:
        """The standalone app of `agentdeck ui`: the dashboard under /ui, / sending there."""

        async def home(request: Request) -> Response:
            return RedirectResponse(f"{MOUNT}/", status_code=307)

        async def healthz(request: Request) -> Response:
            return JSONResponse({"status": "ok", "version": __version__})

        @contextlib.asynccontextmanager
        async def lifespan(_: Starlette) -> AsyncIterator[None]:
            try:
                yield
            finally:
                await self.aclose()

        mounted = self.mounted_app()
        mounted.build_middleware_stack()  # the guard refuses an unauthenticated non-loopback bind now, not at the first request
        return Starlette(routes=[Route("/", home), Route("/healthz", healthz), Mount(MOUNT, app=mounted)], lifespan=lifespan)
