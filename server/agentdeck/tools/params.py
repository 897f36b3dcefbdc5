"""Argument types shared by several tools, each with its description written once."""

from __future__ import annotations

import json
from typing import Annotated, Any

from pydantic import BeforeValidator, Field, WithJsonSchema

__all__ = ["AnyJson", "Cursor", "IdempotencyKey", "Limit", "Metadata", "RunId"]

RunId = Annotated[str, Field(min_length=1, max_length=200, description="from spawn_agent or list_runs")]
Cursor = Annotated[str | None, Field(max_length=500, description="from next_cursor")]
Limit = Annotated[int, Field(ge=1, le=100)]
IdempotencyKey = Annotated[
    str | None, Field(min_length=1, max_length=200, description="makes retries safe")
]

_TEXT_OR_NULL = {"anyOf": [{"type": "string"}, {"type": "null"}]}


def _json_object(value: Any) -> Any:
    """Metadata arrives as JSON text (what every provider's strict schema can carry) or as an object."""
    if not isinstance(value, str):
        return value
    try:
        return json.loads(value)
    except ValueError:
        raise ValueError("not JSON text; send a JSON object such as {\"team\": \"docs\"}") from None


# OpenAI's strict mode has no open object, so free-form values are published as text. The
# arguments still validate as before: an object is accepted too, from clients that send one.
Metadata = Annotated[
    dict[str, Any] | None,
    BeforeValidator(_json_object),
    WithJsonSchema(_TEXT_OR_NULL),
    Field(description="JSON object as text"),
]
AnyJson = Annotated[Any, WithJsonSchema(_TEXT_OR_NULL)]
"""Any JSON value; published as text, which is what a strict model sends. Stored as it came."""
