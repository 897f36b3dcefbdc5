"""`agentdeck doctor`: one line per check of each configured backend, with a fix for each failure.

Per backend, first what its settings alone tell (credentials present; for the local platform,
that each agent's command can be found), then, when those pass, what the backend finds by
reaching its platform: `Backend.doctor()`, by default one cheap read that needs working
credentials, and more where a backend knows more (the local store, the AGH daemon, A2A cards).
"""

from __future__ import annotations

import anyio

from agentdeck.backends import Deck
from agentdeck.backends.base import Check
from agentdeck.config import Config

__all__ = ["run_doctor"]


async def _check(config: Config) -> list[Check]:
    results: list[Check] = [(True, "config", f"valid; default backend '{config.default}', identity '{config.resolved_identity}'")]
    deck = Deck.from_config(config)
    try:
        for name, backend in deck.backends.items():
            checks = config.backends[name].checks(name)
            if all(ok for ok, _, _ in checks):
                checks += await backend.doctor()
            results += [(ok, f"{name}: {what}", detail) for ok, what, detail in checks]
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
