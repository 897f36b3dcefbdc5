"""What each part of the local backend is built from (LocalBackend in backend.py builds them)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from agentdeck.backends.local.store import Store
from agentdeck.backends.local.wakeups import Wakeups
from agentdeck.identity import Caller

__all__ = ["Part"]


@dataclass(eq=False, repr=False)  # by identity, and no repr that could show the store URL or agents' env
class Part:
    """A part of backend `name`: what it keeps is in `store`, `wakeups` tells waiters across
    processes, and `caller` says who the request being served comes from (identity.py)."""

    name: str
    store: Store
    wakeups: Wakeups
    caller: Callable[[], Caller]
