"""The configured backends of one server, built from config; adapters are imported lazily."""

from __future__ import annotations

import importlib
import logging
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import anyio
import anyio.abc

from agentdeck.backends.base import Backend, Capability
from agentdeck.errors import ConfigError, InvalidArgument
from agentdeck.identity import Caller, current, process_caller

__all__ = ["Backend", "Capability", "Deck"]

log = logging.getLogger("agentdeck")

# kind -> "module:Class"; a remote adapter's class takes (name, settings, *, identity, transport),
# where transport is None (real network) or an httpx2 transport that tests bind to an emulator.
ADAPTERS = {
    "agh": "agentdeck.backends.agh:AghBackend",
    "oz": "agentdeck.backends.oz:OzBackend",
    "archastro": "agentdeck.backends.archastro:ArchAstroBackend",
    "azure_foundry": "agentdeck.backends.azure_foundry:AzureFoundryBackend",
    "agent_os": "agentdeck.backends.agent_os:AgentOsBackend",
    "a2a": "agentdeck.backends.a2a:A2ABackend",
}


class Deck:
    """The backends by configured name, with the default one; `owner` is the process's own caller."""

    def __init__(self, backends: dict[str, Backend], default: str, owner: Caller) -> None:
        self.backends = backends
        self.default = default
        self.owner = owner
        self._sessions = 0
        self._waiting: set[anyio.CancelScope] = set()
        self._stopping = False

    @classmethod
    def from_config(cls, config: Any, transports: dict[str, Any] | None = None) -> Deck:
        """Build every configured backend; `transports` (tests) binds a remote one to an in-process app."""
        backends: dict[str, Backend] = {}
        for name, settings in config.backends.items():
            backends[name] = _build(name, settings, config, (transports or {}).get(name))
            backends[name].max_wait_seconds = config.max_wait_seconds
        return cls(backends, config.default, process_caller(config))

    def caller(self) -> Caller:
        """Who the request being served comes from (see identity.py)."""
        return current(self.owner)

    def give_runs_credentials(self, credentials: Callable[[str, float], dict[str, str]]) -> None:
        """Agents the local platform starts from now on get `credentials(run_id, seconds)` in their environment."""
        for backend in self.backends.values():
            if hasattr(backend, "run_credentials"):
                backend.run_credentials = credentials

    def any_has(self, capability: Capability) -> bool:
        return any(capability in b.capabilities for b in self.backends.values())

    def pick(self, name: str | None) -> Backend:
        backend = self.backends.get(name or self.default)
        if backend is None:
            raise InvalidArgument(f"No backend '{name}'; configured backends: {', '.join(self.backends)}.")
        return backend

    @asynccontextmanager
    async def serving(self, task_group: anyio.abc.TaskGroup) -> AsyncIterator[Deck]:
        """Keep the backends open for one server session, on the session's own event loop.

        The first session opens them and the last one to end closes them, so connections and
        pools never outlive the loop that made them (closing them from another loop fails).
        """
        if self._sessions == 0:
            await self.start(task_group)
        self._sessions += 1
        try:
            yield self
        finally:
            self._sessions -= 1
            if self._sessions == 0:
                with anyio.CancelScope(shield=True):
                    await self.aclose()

    @contextmanager
    def cut_short_on_stop(self) -> Iterator[anyio.CancelScope]:
        """A scope for a call that waits: cancelled when the server starts to stop (`stop_waiting`)."""
        scope = anyio.CancelScope()
        if self._stopping:
            scope.cancel()
        self._waiting.add(scope)
        try:
            with scope:
                yield scope
        finally:
            self._waiting.discard(scope)

    def stop_waiting(self) -> None:
        """Cut every waiting call short, so each answers before the server stops instead of being cut off."""
        self._stopping = True
        for scope in list(self._waiting):
            scope.cancel()

    async def start(self, task_group: anyio.abc.TaskGroup) -> None:
        self._stopping = False
        for backend in self.backends.values():
            await backend.start(task_group)

    async def aclose(self) -> None:
        """Close every backend; safe to call again, and a closed deck opens again on next use."""
        for backend in self.backends.values():
            try:
                await backend.aclose()
            except Exception:
                log.exception("closing backend %s failed", backend.name)


def _build(name: str, settings: Any, config: Any, transport: Any) -> Backend:
    if settings.kind == "local":
        from agentdeck.backends.local.backend import LocalBackend

        data_dir: Path = config.resolved_data_dir
        return LocalBackend(
            name,
            settings,
            owner=process_caller(config),
            data_dir=data_dir,
            config_path=getattr(config, "source_path", None),
        )
    target = ADAPTERS.get(settings.kind)
    if target is None:
        raise ConfigError(f"backends.{name}.kind: unknown kind {settings.kind!r}")
    module_name, _, class_name = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        raise ConfigError(f"backends.{name}: the {settings.kind} adapter is not available in this build ({exc.name})") from None
    adapter: type[Backend] = getattr(module, class_name)
    extra = {"data_dir": config.resolved_data_dir} if settings.kind in ("agh", "oz", "azure_foundry") else {}
    return adapter(name, settings, identity=config.resolved_identity, transport=transport, **extra)  # type: ignore[call-arg]
