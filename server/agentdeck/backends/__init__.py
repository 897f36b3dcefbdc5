"""The configured backends of one server, built from config; adapters are imported lazily."""

from __future__ import annotations

import importlib
import logging
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from contextlib import asynccontextmanager, contextmanager
from typing import TYPE_CHECKING, Protocol, Unpack

import anyio
import anyio.abc

from agentdeck.backends.base import Backend, BuildEnv, Capability
from agentdeck.config import AnyBackendConfig, Config
from agentdeck.errors import ConfigError, InvalidArgument
from agentdeck.identity import Caller, current, process_caller

if TYPE_CHECKING:
    import httpx2

__all__ = ["Backend", "Capability", "Deck", "build"]

log = logging.getLogger("agentdeck")

# kind -> "module:Class", imported on first use; each class takes (name, its own settings, **BuildEnv).
ADAPTERS: dict[str, str] = {
    "local": "agentdeck.backends.local.backend:LocalBackend",
    "agh": "agentdeck.backends.agh:AghBackend",
    "oz": "agentdeck.backends.oz:OzBackend",
    "archastro": "agentdeck.backends.archastro:ArchAstroBackend",
    "azure_foundry": "agentdeck.backends.azure_foundry:AzureFoundryBackend",
    "agent_os": "agentdeck.backends.agent_os:AgentOsBackend",
    "a2a": "agentdeck.backends.a2a:A2ABackend",
}


class _Adapter(Protocol):
    """An adapter class: built from its own settings (the table above pairs each kind with its class)."""

    def __call__(self, name: str, settings: AnyBackendConfig, **env: Unpack[BuildEnv]) -> Backend: ...


def build(name: str, settings: AnyBackendConfig, env: BuildEnv) -> Backend:
    """The adapter of `settings.kind`, built from its settings.

    Raises:
        ConfigError: the adapter's module (or a library it needs) is not in this build.
    """
    module_name, _, class_name = ADAPTERS[settings.kind].partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        raise ConfigError(f"backends.{name}: the {settings.kind} adapter is not available in this build ({exc.name})") from None
    adapter: _Adapter = getattr(module, class_name)
    return adapter(name, settings, **env)


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
    def from_config(cls, config: Config, transports: Mapping[str, httpx2.AsyncBaseTransport] | None = None) -> Deck:
        """Build every configured backend; `transports` (tests) binds a remote one to an in-process app."""
        owner = process_caller(config)
        backends: dict[str, Backend] = {}
        for name, settings in config.backends.items():
            env = BuildEnv(identity=config.resolved_identity, owner=owner, data_dir=config.resolved_data_dir, transport=(transports or {}).get(name))
            backends[name] = build(name, settings, env)
            backends[name].max_wait_seconds = config.max_wait_seconds
        return cls(backends, config.default, owner)

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
