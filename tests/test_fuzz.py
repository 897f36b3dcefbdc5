"""Property test: any arguments, valid or deliberately wrong, get a result, never a crash.

Arguments come from each tool's own input schema and from wrong shapes (wrong types, missing
fields, huge strings, deep nesting, control characters, unicode, path-like strings). Every
call goes through a real MCP client session to `agentdeck serve` over stdio; each must return
a result (success, or isError with a stable code and no traceback) and the server must stay up.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import anyio.from_thread
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mcp import Client

from tests.helpers import server_env, stdio_params

CODES = {"not_found", "invalid_argument", "conflict", "lease_lost", "unauthorized", "rate_limited", "unavailable", "unsupported", "timeout"}
FUZZ_CONFIG = f"""
[backends.local]
kind = "local"
[backends.local.agents.echo]
command = ["{sys.executable}", "-m", "agentdeck.backends.local.echo", "{{prompt}}"]
[backends.local.routines.greet]
agent = "echo"
"""
# Nesting past about 64 levels makes the SDK's stdio reader drop the message unanswered (its JSON
# validation gives up before any handler sees it: modelcontextprotocol/python-sdk issue 2751, open);
# 50 levels stays within what it parses.
# Waiting tools would honour a generated 50 s wait; the property is about answers, not patience.
WAIT_ARGUMENTS = ("wait_seconds", "timeout_seconds")

nasty_text = st.one_of(
    st.text(max_size=50),
    st.text(alphabet=st.characters(min_codepoint=0, max_codepoint=31), max_size=20),
    st.sampled_from(["../../etc/passwd", "/etc/shadow", "..\\..\\windows", "~/.ssh/id_rsa", "general\x00", "\u202eevil", "💥" * 50, "%s%n{0}"]),
    st.just("x" * 300_000),
)
nasty_value = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True), nasty_text),
    lambda children: st.one_of(st.lists(children, max_size=4), st.dictionaries(st.text(max_size=8), children, max_size=4)),
    max_leaves=30,
)


def _from_schema(schema: dict[str, Any]) -> st.SearchStrategy[Any]:
    """Values valid for the simple schemas our tools publish (types, enums, bounds, nullability)."""
    if "anyOf" in schema:
        return st.one_of([_from_schema(option) for option in schema["anyOf"]])
    if "enum" in schema:
        return st.sampled_from(schema["enum"])
    kinds = schema.get("type", ["string", "integer", "object", "null"])
    options = []
    for kind in kinds if isinstance(kinds, list) else [kinds]:
        if kind == "string":
            options.append(st.text(min_size=schema.get("minLength", 0), max_size=min(schema.get("maxLength", 200), 200)))
        elif kind == "integer":
            options.append(st.integers(schema.get("minimum"), schema.get("maximum")))
        elif kind == "number":
            options.append(st.floats(schema.get("minimum"), schema.get("maximum"), allow_nan=False))
        elif kind == "boolean":
            options.append(st.booleans())
        elif kind == "null":
            options.append(st.none())
        elif kind == "array":
            options.append(st.lists(st.text(max_size=10), max_size=3))
        elif kind == "object":
            options.append(st.dictionaries(st.text(max_size=10), st.text(max_size=10), max_size=3))
    if not options:  # a schema without a type accepts any JSON
        options.append(st.none() | st.integers() | st.text(max_size=20))
    return st.one_of(options)


def _arguments(schema: dict[str, Any]) -> st.SearchStrategy[dict[str, Any]]:
    properties = schema.get("properties", {})
    required = set(schema.get("required", []))
    fields = {name: _from_schema(sub) for name, sub in properties.items()}
    return st.fixed_dictionaries(
        {name: strategy for name, strategy in fields.items() if name in required},
        optional={name: strategy for name, strategy in fields.items() if name not in required},
    )


def _deep(levels: int) -> Any:
    value: Any = "bottom"
    for _ in range(levels):
        value = {"a": [value]}
    return value


@contextlib.contextmanager
def _session(directory: Path) -> Iterator[tuple[Any, Client, list[dict[str, Any]]]]:
    (directory / "agentdeck.toml").write_text(FUZZ_CONFIG)
    with anyio.from_thread.start_blocking_portal() as portal:
        with portal.wrap_async_context_manager(Client(stdio_params(server_env(directory, "fuzzer")), read_timeout_seconds=30)) as client:
            tools = [t.model_dump(by_alias=True) for t in portal.call(client.list_tools).tools]
            yield portal, client, tools


@pytest.fixture(scope="module")
def session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, Client, list[dict[str, Any]]]]:
    with _session(tmp_path_factory.mktemp("fuzz")) as value:
        yield value


def _check(portal: Any, client: Client, name: str, arguments: Any) -> None:
    if isinstance(arguments, dict):
        for key in WAIT_ARGUMENTS:
            if isinstance(arguments.get(key), int | float) and not isinstance(arguments.get(key), bool):
                arguments[key] = min(arguments[key], 0.2) if arguments[key] >= 0 else arguments[key]
    result = portal.call(client.call_tool, name, arguments)
    texts = " ".join(getattr(block, "text", "") for block in result.content)
    assert "Traceback" not in texts and 'File "' not in texts
    if result.is_error:
        assert result.structured_content is not None, texts
        assert result.structured_content["code"] in CODES, result.structured_content


def _tool_names() -> list[str]:
    from tests.helpers import local_tool_names

    return local_tool_names()


@pytest.mark.parametrize("name", _tool_names())
def test_arguments_generated_from_the_schema_get_an_answer(name: str, session: tuple[Any, Client, list[dict[str, Any]]]) -> None:
    portal, client, tools = session
    schema = next(t["inputSchema"] for t in tools if t["name"] == name)

    @settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
    @given(_arguments(schema))
    def run(arguments: dict[str, Any]) -> None:
        _check(portal, client, name, arguments)

    run()


@pytest.mark.parametrize("name", _tool_names())
def test_wrong_shapes_get_a_coded_error_or_an_answer(name: str, session: tuple[Any, Client, list[dict[str, Any]]]) -> None:
    portal, client, tools = session
    schema = next(t["inputSchema"] for t in tools if t["name"] == name)
    keys = st.sampled_from(sorted(schema.get("properties", {})) or ["x"]) | st.text(max_size=10)

    @settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
    @given(st.dictionaries(keys, nasty_value | st.just(_deep(50)), max_size=5))
    def run(arguments: dict[str, Any]) -> None:
        _check(portal, client, name, arguments)

    run()


def test_the_server_is_still_up_after_the_fuzzing(session: tuple[Any, Client, list[dict[str, Any]]]) -> None:
    portal, client, _ = session
    result = portal.call(client.call_tool, "list_agents", {})
    assert not result.is_error
