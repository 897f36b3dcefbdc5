"""Compact JSON schemas for tools/list: every token there is paid for in each client's context.

Input schemas must pass, unchanged, the converters each model provider's SDK runs on them
(Gemini's `types.Schema`, OpenAI strict mode, Anthropic): tests/test_provider_schemas.py calls
them. So no type is a list (Gemini refuses ["string", "null"]), no enum holds null, every value
has a type, and an object without properties is closed with `additionalProperties: false`.
An optional number or enum stays `anyOf [T, {"type": "null"}]`: OpenAI strict mode makes every
argument required, and null is how a model says "none" there. An optional string is published
as a plain string: an empty one means "none" (see `blank_means_none`), which saves the anyOf
on two thirds of all arguments.

Output schemas are cut down to an outline: the fields a result always has, with their
types, one level deep (nested objects and lists are named as such). Results still carry every
field of the model, and the SDK still validates them against the full model; the outline is
what a client is promised, at a small fraction of the tokens.

The SDK's schemas carry a title on every node (a restatement of the name) and `default: null`;
dropping both keeps the meaning of every schema while making it much shorter.
"""

from __future__ import annotations

from typing import Any

__all__ = ["blank_means_none", "compact_schema", "output_outline"]

# String length caps stay enforced when the arguments are validated; published, they only say
# "not empty" or "not absurdly long", which no caller needs to read.
_UNPUBLISHED = ("maxLength", "minLength")
_NULL = {"type": "null"}


def _optional_string(node: Any) -> bool:
    options = node.get("anyOf") if isinstance(node, dict) else None
    return isinstance(options, list) and len(options) == 2 and _NULL in options and any(o.get("type") == "string" and "enum" not in o for o in options)


def blank_means_none(schema: dict[str, Any]) -> frozenset[str]:
    """The arguments of an input schema (as pydantic wrote it) that are optional strings."""
    return frozenset(name for name, sub in schema.get("properties", {}).items() if _optional_string(sub))


def compact_schema(node: Any, *, output: bool = False) -> Any:
    """Drop titles, null defaults and string length caps; close an object that has no properties."""
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
        if key in _UNPUBLISHED or (key == "additionalProperties" and value is True):
            continue  # additionalProperties: true is the default anyway
        if output and key == "additionalProperties" and value is False:
            continue
        # "properties" and "$defs" map names to schemas: keep their keys as they are.
        if key in ("properties", "$defs") and isinstance(value, dict):
            result[key] = {name: compact_schema(sub, output=output) for name, sub in value.items()}
        else:
            result[key] = compact_schema(value, output=output)
    if not output and _optional_string(result):
        string = next(o for o in result.pop("anyOf") if o != _NULL)
        result = {**result, **string}
    if not output and result.get("type") == "object" and not result.get("properties") and "additionalProperties" not in result:
        result["properties"] = {}
        result["additionalProperties"] = False
    return result


def output_outline(schema: dict[str, Any], fields: tuple[str, ...] | None = None) -> dict[str, Any]:
    """`fields` (default: the required ones) of an output schema with their shallow types.

    `backend` is left out: every result has it, and it is the backend the call named (or the
    default one).
    """
    defs = schema.get("$defs", {})
    required = [name for name in fields or schema.get("required", []) if name != "backend"]
    properties = {name: _shallow(schema.get("properties", {}).get(name, {}), defs) for name in required}
    return {"type": "object", "properties": properties, "required": required}


def _shallow(node: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    if "$ref" in node:
        node = defs.get(node["$ref"].rsplit("/", 1)[-1], {})
    kind = node.get("type")
    if kind is None and "enum" in node:
        kind = "string"  # the values are in the input schemas and the descriptions
    if kind is None and "anyOf" in node:
        kinds = sorted({_shallow(option, defs).get("type", "object") for option in node["anyOf"]}, key=str)
        return {"type": kinds if len(kinds) > 1 else kinds[0]}
    return {"type": kind} if kind else {}
