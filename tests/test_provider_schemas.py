"""Every tool's input schema goes, unchanged, through each model provider's own converter.

Agent frameworks hand an MCP tool's input schema to the model provider's SDK as it is. Each SDK
has rules of its own (Gemini: one type per node, string enums; OpenAI strict mode: closed
objects, every value typed). These tests call the converters themselves, offline: no request
leaves the machine. They need the `converters` extra (`pip install -e '.[converters]'`).
"""

from __future__ import annotations

import copy
import logging
from typing import Any

import pytest

from agentdeck.inventory import tools_list
from tests.helpers import FILES_TOML, config_for

genai_types = pytest.importorskip("google.genai.types", reason="needs the converters extra")
langchain_google_genai = pytest.importorskip("langchain_google_genai")
langchain_anthropic = pytest.importorskip("langchain_anthropic")
agents_mcp = pytest.importorskip("agents.mcp")

from langchain_core.messages import HumanMessage  # noqa: E402
from langchain_core.tools import StructuredTool  # noqa: E402
from mcp.types import Tool as McpTool  # noqa: E402


@pytest.fixture(scope="module")
def every_tool(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    """Every tool as tools/list sends it: the local platform's, then a files backend's."""
    tools = tools_list(config_for(tmp_path_factory.mktemp("local"), toml=""))
    names = {t["name"] for t in tools}
    files = tools_list(config_for(tmp_path_factory.mktemp("files"), toml=FILES_TOML, AZURE_FOUNDRY_TOKEN="unused"))
    return tools + [t for t in files if t["name"] not in names]


@pytest.fixture(scope="module")
def two_backends(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    """With two backends every tool gains a `backend` choice: an enum that is optional."""
    toml = '[backends.local]\nkind = "local"\n' + FILES_TOML.replace('default = "files"\n', "")
    return tools_list(config_for(tmp_path_factory.mktemp("two"), toml=toml, AZURE_FOUNDRY_TOKEN="unused"))


def _langchain_tools(tools: list[dict[str, Any]]) -> list[StructuredTool]:
    """What langchain-mcp-adapters builds from an MCP tool: the input schema as the args schema."""

    async def call(**_: Any) -> str:
        return ""

    return [StructuredTool(name=t["name"], description=t["description"], args_schema=t["inputSchema"], coroutine=call) for t in tools]


@pytest.mark.parametrize("listing", ["every_tool", "two_backends"])
def test_gemini_accepts_every_schema_as_google_genai_types(listing: str, request: pytest.FixtureRequest) -> None:
    for tool in request.getfixturevalue(listing):
        schema = genai_types.Schema.model_validate(tool["inputSchema"])  # extra keys are refused, too
        genai_types.FunctionDeclaration(name=tool["name"], description=tool["description"], parameters=schema)


@pytest.mark.parametrize("listing", ["every_tool", "two_backends"])
def test_gemini_request_builds_with_every_tool_bound_through_langchain(listing: str, request: pytest.FixtureRequest) -> None:
    tools = request.getfixturevalue(listing)
    model = langchain_google_genai.ChatGoogleGenerativeAI(model="gemini-2.5-flash", google_api_key="offline")
    bound = model.bind_tools(_langchain_tools(tools))
    built = model._prepare_request([HumanMessage("hi")], **bound.kwargs)  # what invoke() would send
    declared = [d.name for tool in built["config"].tools for d in tool.function_declarations]
    assert declared == [t["name"] for t in tools]


@pytest.mark.parametrize("listing", ["every_tool", "two_backends"])
def test_openai_agents_keeps_every_tool_strict(listing: str, request: pytest.FixtureRequest, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="openai.agents")
    server = agents_mcp.MCPServerStreamableHttp(params={"url": "http://127.0.0.1:9/mcp"})  # never connected
    for tool in request.getfixturevalue(listing):
        original = copy.deepcopy(tool["inputSchema"])
        function = agents_mcp.MCPUtil.to_function_tool(McpTool.model_validate(tool), server, convert_schemas_to_strict=True)
        assert function.strict_json_schema, f"{tool['name']} fell back to a non-strict schema: {caplog.text}"
        assert tool["inputSchema"] == original


@pytest.mark.parametrize("listing", ["every_tool", "two_backends"])
def test_anthropic_binds_every_tool_through_langchain(listing: str, request: pytest.FixtureRequest) -> None:
    tools = request.getfixturevalue(listing)
    model = langchain_anthropic.ChatAnthropic(model="claude-sonnet-4-5", api_key="offline")
    bound = model.bind_tools(_langchain_tools(tools))
    sent = {t["name"]: t["input_schema"] for t in bound.kwargs["tools"]}
    assert sent == {t["name"]: t["inputSchema"] for t in tools}


def test_a_strict_model_can_leave_out_every_optional_argument(every_tool: list[dict[str, Any]]) -> None:
    """Strict mode makes every argument required; each optional one must still have a way to say "none"."""
    for tool in every_tool:
        schema = tool["inputSchema"]
        for name, field in schema["properties"].items():
            if name in schema.get("required", []) or "default" in field:
                continue
            says_none = field.get("type") == "string" or {"type": "null"} in field.get("anyOf", [])
            assert says_none, f"{tool['name']}.{name}: a strict model must send it and has no value meaning 'none'"
