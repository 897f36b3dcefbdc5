"""Whole-inventory checks: what no single tool test would catch."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from agentdeck.backends import Deck
from agentdeck.errors import ConfigError
from agentdeck.inventory import estimate_tokens, model_visible, tools_list
from agentdeck.selection import select_tools
from agentdeck.tools import ALL_TOOLS, TOOLSETS
from tests.helpers import FILES_TOML, config_for, local_tool_names

PACKAGE = Path(__file__).parent.parent / "server" / "agentdeck"
HINT_DEFAULTS = {"readOnlyHint": False, "destructiveHint": True, "idempotentHint": False, "openWorldHint": True}


@pytest.fixture(scope="module")
def listed(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, object]]:
    return tools_list(config_for(tmp_path_factory.mktemp("inventory")))


@pytest.fixture(scope="module")
def every_tool(tmp_path_factory: pytest.TempPathFactory, listed: list[dict[str, object]]) -> list[dict[str, object]]:
    """Every tool as some single-backend deployment lists it."""
    files = tools_list(config_for(tmp_path_factory.mktemp("files"), toml=FILES_TOML, AZURE_FOUNDRY_TOKEN="unused"))
    names = {t["name"] for t in listed}
    return listed + [t for t in files if t["name"] not in names]


def test_every_tool_has_a_toolset_title_true_hints_and_an_output_schema(every_tool: list[dict[str, object]]) -> None:
    specs = {spec.name: spec for spec in ALL_TOOLS}
    names = [tool["name"] for tool in every_tool]
    assert len(names) == len(set(names)) and set(names) == set(specs)
    for tool in every_tool:
        name = str(tool["name"])
        assert re.fullmatch(r"[a-z]+(_[a-z]+)+", name), name
        assert specs[name].toolset in TOOLSETS
        assert tool.get("title")
        annotations = tool["annotations"]
        assert isinstance(annotations, dict)
        # What a client reads: a hint left out takes the MCP default, so only differences are sent.
        read = {hint: annotations.get(hint, default) for hint, default in HINT_DEFAULTS.items()}
        spec = specs[name]
        assert read["readOnlyHint"] == spec.read_only and read["openWorldHint"] == spec.open_world, name
        if not spec.read_only:  # the other two mean something only for a tool that writes
            assert (read["destructiveHint"], read["idempotentHint"]) == (spec.destructive, spec.idempotent), name
        assert tool.get("outputSchema"), f"{name} has no output schema"
        schema = tool["inputSchema"]
        assert isinstance(schema, dict) and not {"anyOf", "oneOf", "allOf"} & set(schema), name
        description = str(tool["description"])
        assert description and len(description.splitlines()[0]) < 200


def test_tools_list_order_is_fixed(listed: list[dict[str, object]]) -> None:
    assert [t["name"] for t in listed] == local_tool_names()


def test_hints_match_what_each_tool_does() -> None:
    for spec in ALL_TOOLS:
        reads = spec.name.startswith(("list_", "get_", "wait_", "download_"))
        assert spec.read_only == reads, spec.name
        assert spec.destructive == spec.name.startswith(("cancel_", "delete_")), spec.name
        if spec.read_only:
            assert spec.idempotent and not spec.destructive


def test_read_only_mode_registers_only_read_only_tools(tmp_path: Path) -> None:
    config = config_for(tmp_path, AGENTDECK_READ_ONLY="1")
    tools = tools_list(config)
    assert tools and all(t["annotations"]["readOnlyHint"] for t in tools)  # type: ignore[index]
    assert {t["name"] for t in tools} == {s.name for s in ALL_TOOLS if s.read_only and s.name in local_tool_names()}


def test_toolsets_and_exclusions_narrow_the_list_and_unknown_names_fail_clearly(tmp_path: Path) -> None:
    config = config_for(tmp_path)
    deck = Deck.from_config(config)
    try:
        only = select_tools(deck, toolsets=["channels"], exclude_tools=["list_channels"])
        assert [s.name for s in only] == ["send_channel_message", "receive_channel_messages"]
        with pytest.raises(ConfigError, match="unknown toolset nope"):
            select_tools(deck, toolsets=["nope"])
        with pytest.raises(ConfigError, match="unknown tool get_runz"):
            select_tools(deck, tools=["get_runz"])
    finally:
        import anyio

        anyio.run(deck.aclose)


# Every client pays for tools/list in its context window, and a model pays for the part it is
# shown (name, description, input schema) on every turn. About four characters of compact JSON
# make a token.
BUDGET_TOKENS = 3000
MODEL_VISIBLE_BUDGET_TOKENS = 2000
TOOL_BUDGET_TOKENS = 220


def test_the_default_tool_list_stays_within_the_context_budget(tmp_path: Path) -> None:
    listed = tools_list(config_for(tmp_path, toml=""))  # no config file content: the defaults
    cost, visible = estimate_tokens(listed), estimate_tokens([model_visible(t) for t in listed])
    assert cost <= BUDGET_TOKENS, f"tools/list costs ~{cost} tokens; the budget is {BUDGET_TOKENS}"
    assert visible <= MODEL_VISIBLE_BUDGET_TOKENS, f"the model sees ~{visible} tokens; the budget is {MODEL_VISIBLE_BUDGET_TOKENS}"
    over = {t["name"]: estimate_tokens(t) for t in listed if estimate_tokens(t) > TOOL_BUDGET_TOKENS}
    assert not over, f"tools over {TOOL_BUDGET_TOKENS} tokens: {over}"


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module.split(".")[0])
    return found


def test_backends_never_import_mcp_and_tools_never_import_httpx() -> None:
    for path in (PACKAGE / "backends").rglob("*.py"):
        assert "mcp" not in _imports(path), f"{path} imports mcp"
    for path in (PACKAGE / "tools").rglob("*.py"):
        assert not {"httpx2", "httpx"} & _imports(path), f"{path} imports httpx2"


def test_the_run_supervisor_imports_only_the_standard_library_and_our_store() -> None:
    for name in ("supervisor.py", "store/sqlite_db.py", "notify.py"):
        imports = _imports(PACKAGE / "backends" / "local" / name) - {"__future__"}
        assert imports <= {"collections", "json", "os", "queue", "signal", "subprocess", "sys", "threading", "time", "pathlib", "typing", "agentdeck", "secrets", "sqlite3", "contextlib", "hashlib", "socket", "tempfile"}, (name, imports)
