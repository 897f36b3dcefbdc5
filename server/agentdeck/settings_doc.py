"""The configuration reference, rendered as markdown from the settings models in config.py.

docs/configuration.md is this module's output, checked by tests/test_settings_doc.py. After a
change to config.py, regenerate it:

    python -m agentdeck.settings_doc > docs/configuration.md

Secret fields (those excluded from serialization, such as resolved API keys and HTTP tokens)
are never listed: the file only ever names the environment variable that holds a secret.
"""

from __future__ import annotations

import json
import sys
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import annotated_types
from pydantic import BaseModel
from pydantic.fields import FieldInfo

from agentdeck.config import _ENV_KEYS, AgentConfig, BackendConfig, Config, HttpConfig, LocalConfig, OAuthConfig, RoutineConfig
from agentdeck.tools import TOOLSETS

__all__ = ["UPDATE_COMMAND", "backend_models", "documented_models", "render"]

UPDATE_COMMAND = "python -m agentdeck.settings_doc > docs/configuration.md"

# Descriptions for fields whose Field() has none; a description in config.py always wins.
# Keyed by (model name, field) first, then by field name alone.
_NOTES: dict[tuple[str, str] | str, str] = {
    ("Config", "default"): "the backend a tool uses when its `backend` argument is not given",
    ("Config", "backends"): "the configured backends, each a `[backends.NAME]` table with a `kind`",
    ("Config", "data_dir"): "where the local store (SQLite) and run workspaces live; default the user data dir",
    ("Config", "toolsets"): f"toolsets to register ({', '.join(TOOLSETS)}); default all",
    ("Config", "tools"): "tool names to register; default all of the chosen toolsets",
    ("Config", "exclude_tools"): "tool names to leave out",
    ("Config", "read_only"): "register only tools whose readOnlyHint is true",
    ("Config", "log_level"): "log level; logs go to stderr",
    ("Config", "log_format"): "log line format",
    ("Config", "http"): "the Streamable HTTP endpoint of `agentdeck serve --http` (see below)",
    ("HttpConfig", "host"): "address to bind; a non-loopback address needs bearer tokens",
    ("HttpConfig", "port"): "TCP port",
    ("HttpConfig", "path"): "path of the MCP endpoint",
    ("HttpConfig", "allowed_origins"): "extra Origin values to accept besides loopback ones",
    ("HttpConfig", "allowed_hosts"): "extra Host values to accept besides loopback ones (DNS-rebinding protection)",
    ("HttpConfig", "max_body_bytes"): "largest request body accepted",
    ("LocalConfig", "agents"): "agents the model may start (see below); declaring any replaces the built-in `echo`",
    ("LocalConfig", "routines"): "saved spawn templates (see below); declaring any replaces the built-in `greet`",
    ("LocalConfig", "cancel_grace_seconds"): "time between SIGTERM and SIGKILL when a run is cancelled",
    ("AgentConfig", "command"): "argv, never a shell; `{prompt}` (also `{prompt_file}`, `{run_id}`, `{workspace}`) is replaced, as one argument",
    ("AgentConfig", "description"): "shown to the model by list_agents",
    ("AgentConfig", "env"): "extra environment variables for the agent",
    ("AgentConfig", "ttl_seconds"): "a run is stopped after this long",
    ("RoutineConfig", "agent"): "name of an agent of the same backend",
    ("RoutineConfig", "prompt"): "prompt template; `{message}` is replaced by the invocation's message",
    ("RoutineConfig", "description"): "shown to the model by list_routines",
    ("AghConfig", "timeout_seconds"): "read timeout of one platform call",
    ("AghConfig", "spawn_ttl_seconds"): "time limit given to agents spawned through AGH",
    ("AzureFoundryConfig", "api_version"): "the `api-version` query parameter",
    ("AzureFoundryConfig", "user_isolation_key"): "sent as the user isolation key, to keep sessions per user",
    ("AgentOsConfig", "base_url"): "base URL of the Agent OS deployment; paths are under /v1/api",
    ("AgentOsConfig", "auth_header"): "header that carries the key",
    ("AgentOsConfig", "auth_scheme"): 'scheme before the key in that header; `""` sends the bare key',
    "kind": "which platform this backend talks to",
    "base_url": "platform base URL",
    "api_key_env": "environment variable that holds the API key",
    "connect_timeout_seconds": "connect timeout of one platform call",
}

# Sections that the models' own docstrings do not introduce.
_INTROS: dict[str, str] = {
    "Config": "Keys at the top of the file.",
    "HttpConfig": "Used by `agentdeck serve --http`. Loopback is the default bind; any other address is "
    "refused unless clients must authenticate: bearer tokens (in the variable named by `auth_tokens_env` "
    "or in `tokens_file`, each at least 16 characters) or `[http.oauth]`. A `name:token` entry gives its "
    "client the identity `name`; a bare token is the server's own identity.",
    "LocalConfig": "The embedded platform: a SQLite store plus subprocess agents. It is the default backend, "
    "with the built-in `echo` agent and `greet` routine, when the file configures none.",
}

# Environment variables read by load_config outside the _ENV_KEYS table: (variable, key, meaning).
_OTHER_ENV: tuple[tuple[str, str, str], ...] = (
    ("AGENTDECK_CONFIG", "", "the config file (else `<user config dir>/agentdeck/config.toml`)"),
    ("AGENTDECK_HTTP_HOST", "`http.host`", "HTTP bind address"),
    ("AGENTDECK_HTTP_PORT", "`http.port`", "HTTP port"),
    ("AGENTDECK_HTTP_PATH", "`http.path`", "HTTP path of the MCP endpoint"),
    ("AGENTDECK_STORE", "`backends.<local>.store`", "database URL of every local backend that sets none"),
)


def backend_models() -> list[type[BaseModel]]:
    """The settings model of each backend kind, in the order of the BackendConfig union."""
    union = get_args(BackendConfig)[0]
    return list(get_args(union))


def documented_models() -> list[type[BaseModel]]:
    """Every settings model the reference documents."""
    return [Config, HttpConfig, OAuthConfig, LocalConfig, AgentConfig, RoutineConfig, *[m for m in backend_models() if m is not LocalConfig]]


def render() -> str:
    """The whole reference, as markdown."""
    return "\n".join(_lines()) + "\n"


def _lines() -> Iterator[str]:
    yield "# Configuration reference"
    yield ""
    yield "<!-- Generated from server/agentdeck/config.py; do not edit by hand."
    yield f"     Regenerate with: {UPDATE_COMMAND} -->"
    yield ""
    yield "agentdeck reads one TOML file: `AGENTDECK_CONFIG`, else `config.toml` in the user config dir"
    yield "(`~/.config/agentdeck/` on Linux, `~/Library/Application Support/agentdeck/` on macOS,"
    yield "`%APPDATA%\\agentdeck\\` on Windows). `agentdeck init` writes a commented starter file."
    yield "Without a file, the embedded local backend runs with the built-in `echo` agent and `greet`"
    yield "routine. An unknown or invalid key stops agentdeck at start with a message naming the key."
    yield ""
    yield "Secrets are never keys of the file. A remote backend names the environment variable that"
    yield "holds its key (`api_key_env`), or a `secrets_file`; HTTP bearer tokens come from the variable"
    yield "named by `http.auth_tokens_env` or from `http.tokens_file`."
    yield ""
    yield from _env_section()
    yield from _model_section("Top level", Config)
    yield from _model_section("`[http]`", HttpConfig)
    yield from _model_section("`[http.oauth]`", OAuthConfig, level=3)
    yield "## Backends"
    yield ""
    yield "Each backend is a `[backends.NAME]` table whose `kind` picks the platform; several can be"
    yield "configured at once, and `default` names the one tools use unless told otherwise."
    yield ""
    for model in backend_models():
        kind = _kind(model)
        yield from _model_section(f'`kind = "{kind}"`', model, level=3)
        if model is LocalConfig:
            yield from _model_section("`[backends.NAME.agents.AGENT]`", AgentConfig, level=4)
            yield from _model_section("`[backends.NAME.routines.ROUTINE]`", RoutineConfig, level=4)


def _env_section() -> Iterator[str]:
    yield "## Environment variables"
    yield ""
    yield "They override the file. List values are comma-separated; booleans accept 1, true, yes, on."
    yield ""
    yield "| variable | key | meaning |"
    yield "|---|---|---|"
    for var, (key, _parse) in _ENV_KEYS.items():
        field = Config.model_fields[key]
        yield f"| `{var}` | `{key}` | {_cell(_description(Config, key, field))} |"
    for var, key, meaning in _OTHER_ENV:
        yield f"| `{var}` | {key} | {_cell(meaning)} |"
    tokens = HttpConfig.model_fields["auth_tokens_env"].default
    yield f"| `{tokens}` | | HTTP bearer tokens, comma-separated, each `name:token` or bare (the default of `http.auth_tokens_env`) |"
    secret = HttpConfig.model_fields["secret_env"].default
    yield f"| `{secret}` | | key that signs spawned agents' run tokens; the same on every replica (the default of `http.secret_env`) |"
    keys = HttpConfig.model_fields["request_state_keys_env"].default
    yield f"| `{keys}` | | keys sealing multi-round-trip request state, shared by replicas (the default of `http.request_state_keys_env`) |"
    for model in backend_models():
        field = model.model_fields.get("api_key_env")  # type: ignore[assignment]  # None is tested right below
        if field is not None and isinstance(field.default, str):
            yield f'| `{field.default}` | | API key of `kind = "{_kind(model)}"` backends (the default of their `api_key_env`) |'
    yield ""


def _model_section(title: str, model: type[BaseModel], level: int = 2) -> Iterator[str]:
    yield f"{'#' * level} {title}"
    yield ""
    intro = _INTROS.get(model.__name__) or " ".join((model.__doc__ or "").split())
    if intro:
        yield intro
        yield ""
    yield "| key | type | default | description |"
    yield "|---|---|---|---|"
    for name, field in _fields(model):
        row = (f"`{name}`", _type_cell(field), _default(field), _description(model, name, field))
        yield "| " + " | ".join(_cell(part) for part in row) + " |"
    yield ""


def _fields(model: type[BaseModel]) -> list[tuple[str, FieldInfo]]:
    """The documented fields of a model: `kind` first, then declaration order, secrets left out."""
    fields = [(name, field) for name, field in model.model_fields.items() if not field.exclude]
    return sorted(fields, key=lambda item: item[0] != "kind")


def _kind(model: type[BaseModel]) -> str:
    return str(get_args(model.model_fields["kind"].annotation)[0])


def _description(model: type[BaseModel], name: str, field: FieldInfo) -> str:
    return field.description or _NOTES.get((model.__name__, name)) or _NOTES.get(name, "")


def _type_cell(field: FieldInfo) -> str:
    text = _type(field.annotation)
    bounds = []
    for item in field.metadata:
        if isinstance(item, annotated_types.Gt):
            bounds.append(f"> {item.gt}")
        elif isinstance(item, annotated_types.Ge):
            bounds.append(f">= {item.ge}")
        elif isinstance(item, annotated_types.Lt):
            bounds.append(f"< {item.lt}")
        elif isinstance(item, annotated_types.Le):
            bounds.append(f"<= {item.le}")
        elif isinstance(item, annotated_types.MinLen):
            bounds.append(f"at least {item.min_length}")
    return ", ".join([text, *bounds])


_NAMES: dict[Any, str] = {str: "string", int: "integer", float: "number", bool: "boolean", Path: "path"}
_TABLES: dict[Any, str] = {AgentConfig: "agent", RoutineConfig: "routine", HttpConfig: "table", OAuthConfig: "table"}


def _type(annotation: Any) -> str:
    origin, args = get_origin(annotation), get_args(annotation)
    if origin is Annotated:
        return _type(args[0])
    if origin in (Union, types.UnionType):
        members = [a for a in args if a is not type(None)]
        if len(members) == 1:
            return _type(members[0])
        if all(isinstance(m, type) and issubclass(m, BaseModel) for m in members):
            return "backend"
        return " or ".join(_type(m) for m in members)
    if origin is Literal:
        return " or ".join(json.dumps(a) for a in args)
    if origin is list:
        return f"list of {_plural(_type(args[0]))}"
    if origin is dict:
        return f"table of {_plural(_type(args[1]))}"
    return str(_NAMES.get(annotation) or _TABLES.get(annotation) or getattr(annotation, "__name__", str(annotation)))


def _plural(noun: str) -> str:
    return noun if " " in noun or noun.endswith("s") else noun + "s"


def _default(field: FieldInfo) -> str:
    if field.is_required():
        return "required"
    value = field.get_default(call_default_factory=True)
    if value is None:
        return "unset"
    if isinstance(value, BaseModel):
        return "see below"
    if isinstance(value, dict) and value and all(isinstance(v, BaseModel) for v in value.values()):
        return ", ".join(f"`{name}`" for name in value)
    return f"`{_toml(value)}`"


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Path):
        return json.dumps(str(value))
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k} = {_toml(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return json.dumps(value)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def main() -> None:
    sys.stdout.write(render())


if __name__ == "__main__":
    main()
