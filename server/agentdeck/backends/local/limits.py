"""Size limits on what callers hand the local backend, checked before anything is stored."""

from __future__ import annotations

import json
from typing import Any

from agentdeck.errors import InvalidArgument

__all__ = ["MAX_BODY_BYTES", "MAX_JSON_BYTES", "MAX_PROMPT_BYTES", "json_size", "text_size"]

MAX_BODY_BYTES = 64 * 1024
MAX_JSON_BYTES = 256 * 1024
MAX_PROMPT_BYTES = 256 * 1024


def json_size(value: Any, what: str, limit: int = MAX_JSON_BYTES) -> None:
    if value is not None and len(json.dumps(value)) > limit:
        raise InvalidArgument(f"{what} is larger than {limit // 1024} KiB; store big data elsewhere and pass a reference")


def text_size(value: str, what: str, limit: int) -> None:
    if "\0" in value:
        raise InvalidArgument(f"{what} contains a NUL character, which cannot be stored or passed on; remove it")
    if len(value.encode()) > limit:
        raise InvalidArgument(f"{what} is larger than {limit // 1024} KiB; shorten it or pass a reference to a file")
