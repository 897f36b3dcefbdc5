"""Argument types shared by several tools, each with its description written once."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field

__all__ = ["Cursor", "IdempotencyKey", "Limit", "Metadata", "RunId"]

RunId = Annotated[str, Field(min_length=1, max_length=200, description="from spawn_agent or list_runs")]
Cursor = Annotated[str | None, Field(max_length=500, description="next_cursor of the previous page")]
Limit = Annotated[int, Field(ge=1, le=100, description="page size")]
IdempotencyKey = Annotated[
    str | None, Field(min_length=1, max_length=200, description="same key, same result: makes retries safe")
]
Metadata = Annotated[dict[str, Any] | None, Field(description="free-form JSON")]
