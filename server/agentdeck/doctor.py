"""`agentdeck doctor`: one line per check of each configured backend, with a fix for each failure.

Per backend: whether its credential is set; when it is (or none is needed), what the backend
finds by reaching its platform: `Backend.doctor()`, by default one cheap read that needs working
credentials, and more where a backend knows more (the local store, the AGH daemon, A2A cards);
last, what the settings alone tell (for the local platform, that each agent's command is found).
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
            settings = config.backends[name]
            credentials = settings.credentials(name)
            checks = [credentials] if credentials else []
            if credentials is None or credentials[0]:
                checks += await backend.doctor()
            checks += settings.checks(name)
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
