"""The list-runs query, built once for both dialects.

Equality on state, agent, parent run and routine, the keyset bound on seq, newest first: the
same text in both; a dialect gives only its placeholder and its `created_after` condition
(SQLite bounds it by seq so it walks only the newer runs). Stdlib only.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["runs_page"]

_EQUAL = ("state", "agent", "parent_run_id", "routine")


def runs_page(
    filters: Mapping[str, Any], limit: int, before_seq: int | None, *, mark: str, created_after: Callable[[float], tuple[str, list[Any]]]
) -> tuple[str, tuple[Any, ...]]:
    """The SELECT of one page of runs and its arguments; `mark` is the dialect's placeholder."""
    where: list[str] = []
    args: list[Any] = []
    for column in _EQUAL:
        if filters.get(column) is not None:
            where.append(f"{column} = {mark}")
            args.append(filters[column])
    if filters.get("created_after") is not None:
        condition, values = created_after(filters["created_after"])
        where.append(condition)
        args += values
    if before_seq is not None:
        where.append(f"seq < {mark}")
        args.append(before_seq)
    sql = "SELECT * FROM runs" + (" WHERE " + " AND ".join(where) if where else "") + f" ORDER BY seq DESC LIMIT {mark}"
    return sql, (*args, limit)
