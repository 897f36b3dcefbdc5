"""`agentdeck doctor`: one line per check of each configured backend, with a fix for each failure."""

from __future__ import annotations

from typing import Any

import anyio

from agentdeck.config import Config
from agentdeck.errors import AgentdeckError

__all__ = ["run_doctor"]


async def _check(config: Config) -> list[tuple[bool, str, str]]:
    from agentdeck.backends import Deck

    results: list[tuple[bool, str, str]] = [(True, "config", f"valid; default backend '{config.default}', identity '{config.resolved_identity}'")]
    deck = Deck.from_config(config)
    try:
        for name, backend in deck.backends.items():
            check: Any = getattr(backend, "doctor", None)
            try:
                if check is not None:
                    for ok, what, detail in await check():
                        results.append((ok, f"{name}: {what}", detail))
                else:
                    await backend.context()
                    results.append((True, f"{name}: reachable", backend.kind))
            except AgentdeckError as exc:
                results.append((False, f"{name}: reachable", f"{exc.code}: {exc.message}"))
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
