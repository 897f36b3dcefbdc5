"""Compact JSON schemas for tools/list: every token there is paid for in each client's context.

The SDK's schemas carry a title on every node (a restatement of the name), `default: null`,
and `anyOf [T, null]` for optional values. Dropping the first two and folding the third into
`type: [T, "null"]` keeps the meaning and validation of every schema while making it much
shorter. Output schemas also drop `additionalProperties: false`.
"""

from __future__ import annotations

from typing import Any

__all__ = ["compact_schema"]

_NULL = {"type": "null"}


def compact_schema(node: Any, *, output: bool = False) -> Any:
    if isinstance(node, list):
        return [compact_schema(item, output=output) for item in node]
    if not isinstance(node, dict):
        return node
    result: dict[str, Any] = {}
    for key, value in node.items():
        if key == "title" and isinstance(value, str):
            continue
        if key == "default" and value is None:
            continue
        if output and key == "additionalProperties" and value is False:
            continue
        # "properties" and "$defs" map names to schemas: keep their keys as they are.
        if key in ("properties", "$defs") and isinstance(value, dict):
            result[key] = {name: compact_schema(sub, output=output) for name, sub in value.items()}
        else:
            result[key] = compact_schema(value, output=output)
    return _fold_nullable(result)


def _fold_nullable(node: dict[str, Any]) -> dict[str, Any]:
    options = node.get("anyOf")
    if not (isinstance(options, list) and len(options) == 2 and _NULL in options):
        return node
    other = options[0] if options[1] == _NULL else options[1]
    if not isinstance(other.get("type"), str):
        return node  # a $ref or a union: leave the anyOf as it is
    folded = {key: value for key, value in node.items() if key != "anyOf"}
    folded.update({**other, "type": [other["type"], "null"]})
    if "enum" in other:
        folded["enum"] = [*other["enum"], None]
    return folded
