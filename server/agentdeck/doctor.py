"""`agentdeck doctor`: one line per check of each configured backend, with a fix for each failure.

Checks, per backend: credentials present, platform reachable, identity accepted (one cheap
read), and for the local platform that each agent's command can be found. A backend may
offer its own `doctor()` (AGH does) with checks that only it knows.
"""

from __future__ import annotations

import shutil
from typing import Any

import anyio

from agentdeck.backends import Capability, Deck
from agentdeck.backends.requests import RunFilter
from agentdeck.config import Config, LocalConfig
from agentdeck.errors import AgentdeckError, Timeout, Unauthorized, Unavailable

__all__ = ["run_doctor"]

Check = tuple[bool, str, str]


def _local_checks(name: str, settings: LocalConfig) -> list[Check]:
    checks: list[Check] = []
    for agent, spec in settings.agents.items():
        program = spec.command[0]
        found = shutil.which(program)
        detail = found or f"'{program}' is not on PATH; install it or fix backends.{name}.agents.{agent}.command"
        checks.append((found is not None, f"{name}: agent {agent}", detail))
    return checks


async def _probe(backend: Any) -> Check:
    """One read that needs working credentials: the cheapest the backend offers."""
    try:
        if Capability.AGENTS in backend.capabilities:
            await backend.list_agents()
        elif Capability.RUNS in backend.capabilities:
            await backend.list_runs(RunFilter(limit=1))
        elif Capability.CHANNELS in backend.capabilities:
            await backend.list_channels()
        return True, f"{backend.name}: reachable, identity accepted", backend.kind
    except Unauthorized as exc:
        return False, f"{backend.name}: identity accepted", f"{exc.message} Fix: check the key or identity this backend uses."
    except (Unavailable, Timeout) as exc:
        return False, f"{backend.name}: reachable", f"{exc.message} Fix: check the URL (base_url/endpoint/socket) and that the platform is up."
    except AgentdeckError as exc:
        return False, f"{backend.name}: reachable", f"{exc.code}: {exc.message}"


async def _check(config: Config) -> list[Check]:
    results: list[Check] = [(True, "config", f"valid; default backend '{config.default}', identity '{config.resolved_identity}'")]
    deck = Deck.from_config(config)
    try:
        for name, backend in deck.backends.items():
            settings = config.backends[name]
            if isinstance(settings, LocalConfig):
                results += [(ok, f"{name}: {what}", detail) for ok, what, detail in await backend.doctor()]
                results += _local_checks(name, settings)
                continue
            env_var = getattr(settings, "api_key_env", None)
            if env_var is not None and getattr(settings, "api_key", None) is None:
                results.append((False, f"{name}: credentials", f"${env_var} is not set. Fix: export {env_var}=<key>, or name a secrets_file in backends.{name}."))
                continue
            own = getattr(backend, "doctor", None)
            if own is not None:
                results += [(ok, f"{name}: {what}", detail) for ok, what, detail in await own()]
            else:
                if env_var is not None:
                    results.append((True, f"{name}: credentials", f"${env_var} is set"))
                results.append(await _probe(backend))
    finally:
        await deck.aclose()
    return results


def run_doctor(config: Config) -> int:
    results = anyio.run(_check, config)
    for ok, what, detail in results:
        print(f"{'ok  ' if ok else 'FAIL'} {what}: {detail}")
    failed = sum(1 for ok, _, _ in results if not ok)
    print(f"\n{len(results) - failed} checks passed, {failed} failed")
    return 1 if failed else 0
