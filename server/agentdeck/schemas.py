"""Compact JSON schemas for tools/list: every token there is paid for in each client's context.

Output schemas are cut down to an outline: the fields a result always has, with their
types, one level deep (nested objects and lists are named as such). Results still carry every
field of the model, and the SDK still validates them against the full model; the outline is
what a client is promised, at a small fraction of the tokens.

The SDK's schemas carry a title on every node (a restatement of the name), `default: null`,
and `anyOf [T, null]` for optional values. Dropping the first two and folding the third into
`type: [T, "null"]` keeps the meaning and validation of every schema while making it much
shorter. Output schemas also drop `additionalProperties: false`.
"""

from __future__ import annotations

from typing import Any

__all__ = ["compact_schema", "output_outline"]

_NULL = {"type": "null"}


def compact_schema(node: Any, *, output: bool = False) -> Any:
    """Drop titles, null defaults and string length caps; fold anyOf-null into a type list.

    Length caps stay enforced when the arguments are validated; published, they only say
    "not absurdly long", which no caller needs to read.
    """
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
        if key == "maxLength" or (key == "additionalProperties" and value is True):
            continue  # additionalProperties: true is the default anyway
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


def output_outline(schema: dict[str, Any]) -> dict[str, Any]:
    """The required top-level fields of an output schema with their shallow types."""
    defs = schema.get("$defs", {})
    required = schema.get("required", [])
    properties = {name: _shallow(schema.get("properties", {}).get(name, {}), defs) for name in required}
    return {"type": "object", "properties": properties, "required": required}


def _shallow(node: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    if "$ref" in node:
        node = defs.get(node["$ref"].rsplit("/", 1)[-1], {})
    if "enum" in node:
        return {"enum": node["enum"]}
    kind = node.get("type")
    if kind is None and "anyOf" in node:
        kinds = sorted({_shallow(option, defs).get("type", "object") for option in node["anyOf"]}, key=str)
        return {"type": kinds if len(kinds) > 1 else kinds[0]}
    return {"type": kind} if kind else {}
