"""Settings: one TOML file, overridden by AGENTDECK_* environment variables. Read only here.

The file is AGENTDECK_CONFIG, else `<user config dir>/agentdeck/config.toml`; with no file the
embedded local backend runs with the built-in `echo` agent and `greet` routine. Secrets (API
keys, tokens) are never written in the file: it names the environment variable that holds
each one, or a secrets file, and the value is read here into a SecretStr.

The local platform's settings (agents, routines) live in config_local.py, the base every model
shares in config_base.py; both are imported from here.
"""

from __future__ import annotations

import getpass
import os
import re
import secrets
import socket
import sys
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator

from agentdeck.config_base import NAME, BackendSettings, Settings
from agentdeck.config_local import AgentConfig, LocalConfig, RoutineConfig
from agentdeck.errors import ConfigError

__all__ = [
    "AgentConfig",
    "AghConfig",
    "AgentOsConfig",
    "AnyBackendConfig",
    "ArchAstroConfig",
    "AzureFoundryConfig",
    "BackendConfig",
    "BearerToken",
    "Config",
    "HttpConfig",
    "IDENTITY_NAME",
    "LocalConfig",
    "OAuthConfig",
    "OzConfig",
    "RoutineConfig",
    "default_config_path",
    "default_data_dir",
    "load_config",
]

IDENTITY_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,127}$")
"""What a client may be called: shown to other agents as a sender, and the key of cursors and claims."""


class _Remote(BackendSettings):
    timeout_seconds: float = Field(default=30.0, gt=0, description="read timeout of one platform call")
    connect_timeout_seconds: float = Field(default=5.0, gt=0)
    max_retries: int = Field(default=3, ge=0, description="retries of safe calls")


class AghConfig(_Remote):
    kind: Literal["agh"]
    socket: str | None = Field(default=None, description="daemon Unix socket; default $AGH_HOME/daemon.sock")
    base_url: str | None = Field(default=None, description="TCP base URL instead of the socket, e.g. http://localhost:2123")
    session_id: str | None = Field(default=None, description="default $AGH_SESSION_ID")
    agent: str | None = Field(default=None, description="default $AGH_AGENT")
    workspace_id: str | None = Field(default=None, description="default $AGH_WORKSPACE_ID")
    spawn_ttl_seconds: int = Field(default=3600, gt=0)
    timeout_seconds: float = Field(default=60.0, gt=0)


class _Keyed(_Remote):
    api_key_env: str
    secrets_file: Path | None = Field(default=None, description="TOML file of NAME = value; read when the env var is unset")
    api_key: SecretStr | None = Field(default=None, exclude=True, description="resolved at load; never in the file")

    def credentials(self, name: str) -> tuple[bool, str, str] | None:
        if self.api_key is None:
            fix = f"Fix: export {self.api_key_env}=<key>, or name a secrets_file in backends.{name}."
            return (False, "credentials", f"${self.api_key_env} is not set. {fix}")
        return (True, "credentials", f"${self.api_key_env} is set")


class OzConfig(_Keyed):
    kind: Literal["oz"]
    base_url: str = "https://app.warp.dev/api/v1"
    api_key_env: str = "WARP_API_KEY"


class ArchAstroConfig(_Keyed):
    kind: Literal["archastro"]
    base_url: str = "https://platform.archastro.ai"
    api_key_env: str = "ARCHASTRO_API_KEY"


class AzureFoundryConfig(_Keyed):
    kind: Literal["azure_foundry"]
    endpoint: str = Field(description="project endpoint, https://<resource>.services.ai.azure.com/api/projects/<project>")
    api_version: str = "v1"
    api_key_env: str = Field(default="AZURE_FOUNDRY_TOKEN", description="static bearer token; else azure-identity")
    user_isolation_key: str | None = None
    agents: list[str] = Field(default_factory=list, description="optional: name:version entries pin the version spawn_agent starts for a bare name (else the latest)")
    turn_timeout_seconds: float = Field(default=300.0, gt=0, description="how long to wait for the agent's answer to one prompt")


class AgentOsConfig(_Keyed):
    kind: Literal["agent_os"]
    base_url: str
    api_key_env: str = "AGENT_OS_API_KEY"
    auth_header: str = "Authorization"
    auth_scheme: str = "Bearer"
    headers: dict[str, str] = Field(default_factory=dict, description="extra headers, e.g. tenant or workspace")


class A2AConfig(_Keyed):
    kind: Literal["a2a"]
    agents: dict[str, str] = Field(description="agent name -> base URL; the card is read from <URL>/.well-known/agent-card.json")
    binding: Literal["auto", "JSONRPC", "HTTP+JSON"] = Field(default="auto", description="protocol binding; auto takes JSON-RPC, else HTTP+JSON")
    api_key_env: str = Field(default="A2A_API_KEY", description="credential sent as the card's security scheme asks (bearer or API key header)")

    @field_validator("agents")
    @classmethod
    def _agent_names(cls, agents: dict[str, str]) -> dict[str, str]:
        if not agents:
            raise ValueError('name at least one agent, e.g. helper = "https://agent.example.com"')
        for name in agents:
            if not name or ":" in name:
                raise ValueError(f"agent name {name!r} may not be empty or hold ':' (run ids are agent:task)")
        return agents


AnyBackendConfig = LocalConfig | AghConfig | OzConfig | ArchAstroConfig | AzureFoundryConfig | AgentOsConfig | A2AConfig
BackendConfig = Annotated[AnyBackendConfig, Field(discriminator="kind")]


class OAuthConfig(Settings):
    """OAuth 2.1 resource-server mode: tokens issued by `issuer_url`, checked by introspection."""

    issuer_url: str = Field(description="the authorization server that issues tokens for this server")
    introspection_url: str = Field(description="its RFC 7662 token introspection endpoint")
    client_id: str | None = Field(default=None, description="this resource server's client id at the authorization server")
    client_secret_env: str = Field(default="AGENTDECK_OAUTH_CLIENT_SECRET", description="environment variable holding the client secret")
    resource_url: str | None = Field(default=None, description="this server's public MCP URL; default http://host:port/path")
    required_scopes: list[str] = Field(default_factory=list, description="scopes every token must carry")
    validate_resource: bool = Field(default=True, description="accept only tokens issued for resource_url (RFC 8707)")
    identity_from: Literal["subject", "client_id"] = Field(
        default="subject", description="which field of the introspected token names the client: `sub` (the user) or `client_id` (the application)"
    )
    client_secret: SecretStr | None = Field(default=None, exclude=True)


class BearerToken(Settings):
    """A static HTTP bearer token and the identity its holder gets (None: the server's own)."""

    identity: str | None
    value: SecretStr


class HttpConfig(Settings):
    host: str = "127.0.0.1"
    port: int = Field(default=8765, ge=0, le=65535)
    path: str = "/mcp"
    auth_tokens_env: str = Field(
        default="AGENTDECK_HTTP_TOKENS", description="environment variable holding comma-separated bearer tokens, each `name:token` or a bare token"
    )
    tokens_file: Path | None = Field(default=None, description="file of more bearer tokens: one `name:token` or bare token a line, `#` comments")
    trust_identity_header: bool = Field(
        default=False, description="on a loopback bind without auth, a client names itself with an X-Agentdeck-Identity header"
    )
    secret_env: str = Field(
        default="AGENTDECK_HTTP_SECRET", description="environment variable holding the key that signs spawned agents' run tokens; share it between replicas"
    )
    header_timeout_seconds: float = Field(default=10.0, gt=0, description="close a connection whose request headers are not complete in this time")
    allowed_origins: list[str] = Field(default_factory=list)
    allowed_hosts: list[str] = Field(default_factory=list)
    max_body_bytes: int = Field(default=4 * 1024 * 1024, gt=0)
    session_idle_seconds: float = Field(
        default=1800, gt=0, allow_inf_nan=False, description="a session with no request in flight (and no open GET stream) this long is closed; its id then answers 404"
    )
    oauth: OAuthConfig | None = Field(default=None, description="OAuth 2.1 resource-server mode instead of static tokens")
    tokens: list[BearerToken] = Field(default_factory=list, exclude=True)
    secret: SecretStr = Field(default_factory=lambda: SecretStr(secrets.token_urlsafe(32)), exclude=True)
    request_state_keys_env: str = Field(
        default="AGENTDECK_REQUEST_STATE_KEYS",
        description="environment variable holding comma-separated keys (32+ random characters each; the first seals) that "
        "seal multi-round-trip request state; set the same value on every replica behind one URL, else each process uses a key of its own",
    )
    request_state_keys: list[SecretStr] = Field(default_factory=list, exclude=True)


class Config(Settings):
    default: str = "local"
    backends: dict[str, BackendConfig] = Field(default_factory=lambda: {"local": LocalConfig()})  # type: ignore[arg-type]  # a dict of the union is built from one member
    identity: str | None = Field(default=None, description="who this caller is on channels and task claims")
    run_id: str | None = Field(default=None, description="set for agents spawned by agentdeck")
    data_dir: Path | None = None
    toolsets: list[str] | None = None
    tools: list[str] | None = None
    exclude_tools: list[str] = Field(default_factory=list)
    read_only: bool = False
    max_wait_seconds: float = Field(
        default=50,
        ge=1,
        le=50,
        description="longest any tool call waits (wait_for_run, receive_channel_messages, cancel_run); below your MCP client's request timeout",
    )
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_format: Literal["text", "json"] = "text"
    http: HttpConfig = Field(default_factory=HttpConfig)

    @property
    def resolved_identity(self) -> str:
        return self.identity or self.run_id or f"{_user()}@{socket.gethostname()}"

    @property
    def resolved_data_dir(self) -> Path:
        return self.data_dir or default_data_dir()


def _user() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no user name in a container without passwd entry
        return "user"


def default_config_path(env: Mapping[str, str] = os.environ) -> Path:
    if sys.platform == "darwin":
        base = Path.home() / "Library" / "Application Support"
    elif os.name == "nt":
        base = Path(env.get("APPDATA", Path.home() / "AppData" / "Roaming"))
    else:
        base = Path(env.get("XDG_CONFIG_HOME") or Path.home() / ".config")
    return base / "agentdeck" / "config.toml"


def default_data_dir(env: Mapping[str, str] = os.environ) -> Path:
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Application Support" / "agentdeck"
    if os.name == "nt":
        return Path(env.get("LOCALAPPDATA", Path.home() / "AppData" / "Local")) / "agentdeck"
    return Path(env.get("XDG_DATA_HOME") or Path.home() / ".local" / "share") / "agentdeck"


def _split(value: str) -> list[str]:
    return [part.strip() for part in value.split(",") if part.strip()]


def _truthy(value: str) -> bool:
    return value.strip().lower() in {"1", "true", "yes", "on"}


# AGENTDECK_* variable -> (top-level key, parser)
_ENV_KEYS: dict[str, tuple[str, Any]] = {
    "AGENTDECK_DEFAULT": ("default", str),
    "AGENTDECK_IDENTITY": ("identity", str),
    "AGENTDECK_RUN_ID": ("run_id", str),
    "AGENTDECK_DATA_DIR": ("data_dir", str),
    "AGENTDECK_TOOLSETS": ("toolsets", _split),
    "AGENTDECK_TOOLS": ("tools", _split),
    "AGENTDECK_EXCLUDE_TOOLS": ("exclude_tools", _split),
    "AGENTDECK_READ_ONLY": ("read_only", _truthy),
    "AGENTDECK_MAX_WAIT_SECONDS": ("max_wait_seconds", float),
    "AGENTDECK_LOG_LEVEL": ("log_level", str.lower),
    "AGENTDECK_LOG_FORMAT": ("log_format", str.lower),
}


def load_config(path: Path | None = None, env: Mapping[str, str] = os.environ, overrides: Mapping[str, Any] | None = None) -> Config:
    """Read the file, apply AGENTDECK_* variables then `overrides` (command-line flags), validate.

    Raises:
        ConfigError: the file cannot be read or a key is invalid; the message names the key.
    """
    explicit = path or (Path(env["AGENTDECK_CONFIG"]) if env.get("AGENTDECK_CONFIG") else None)
    file = explicit or default_config_path(env)
    raw: dict[str, Any] = {}
    if file.exists():
        try:
            raw = tomllib.loads(file.read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"cannot read config file {file}: {exc}") from exc
    elif explicit:
        raise ConfigError(f"config file {file} does not exist (from {'--config' if path else 'AGENTDECK_CONFIG'})")
    for var, (key, parse) in _ENV_KEYS.items():
        if env.get(var):
            raw[key] = parse(env[var])
    http = dict(raw.get("http", {}))
    for var, key, parse in (("AGENTDECK_HTTP_HOST", "host", str), ("AGENTDECK_HTTP_PORT", "port", int), ("AGENTDECK_HTTP_PATH", "path", str)):
        if env.get(var):
            http[key] = parse(env[var])
    if http:
        raw["http"] = http
    if env.get("AGENTDECK_STORE"):
        for section in raw.get("backends", {"local": {"kind": "local"}}).values():
            if isinstance(section, dict) and section.get("kind") == "local":
                section.setdefault("store", env["AGENTDECK_STORE"])
        raw.setdefault("backends", {"local": {"kind": "local", "store": env["AGENTDECK_STORE"]}})
    for key, value in (overrides or {}).items():
        if value is not None:
            raw[key] = value
    try:
        config = Config.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(f"{_key(err['loc'])}: {err['msg']}" for err in exc.errors())
        raise ConfigError(f"invalid configuration in {file if file.exists() else 'environment'}: {problems}") from None
    _check(config)
    _resolve_secrets(config, env)
    return config


_KINDS = {"local", "agh", "oz", "archastro", "azure_foundry", "agent_os", "a2a"}


def _key(loc: tuple[Any, ...]) -> str:
    """The dotted TOML key of a validation error, without pydantic's union tag."""
    parts = [str(p) for p in loc]
    if len(parts) > 2 and parts[0] == "backends" and parts[2] in _KINDS:
        del parts[2]
    return ".".join(parts) or "(top)"


def _check(config: Config) -> None:
    if config.default not in config.backends:
        raise ConfigError(f"default: backend {config.default!r} is not configured; choose one of {sorted(config.backends)}")
    for name, backend in config.backends.items():
        if not re.match(NAME, name):
            raise ConfigError(f"backends.{name}: names are letters, digits, '_', '.', '-'")
        if isinstance(backend, LocalConfig):
            for routine, spec in backend.routines.items():
                if spec.agent not in backend.agents:
                    raise ConfigError(f"backends.{name}.routines.{routine}.agent: no agent {spec.agent!r} in backends.{name}.agents")


def _resolve_secrets(config: Config, env: Mapping[str, str]) -> None:
    for backend in config.backends.values():
        if isinstance(backend, _Keyed):
            value = env.get(backend.api_key_env) or _from_secrets_file(backend.secrets_file, backend.api_key_env)
            backend.api_key = SecretStr(value) if value else None
        elif isinstance(backend, AghConfig):
            backend.session_id = backend.session_id or env.get("AGH_SESSION_ID")
            backend.agent = backend.agent or env.get("AGH_AGENT")
            backend.workspace_id = backend.workspace_id or env.get("AGH_WORKSPACE_ID")
            if not backend.socket and not backend.base_url:
                home = Path(env.get("AGH_HOME") or Path.home() / ".agh")
                backend.socket = str(home / "daemon.sock")
    _resolve_tokens(config.http, env)
    keys = _split(env.get(config.http.request_state_keys_env, ""))
    if any(len(k) < 32 for k in keys):
        raise ConfigError(f"{config.http.request_state_keys_env}: each key must be at least 32 characters; make one with `openssl rand -hex 32`")
    config.http.request_state_keys = [SecretStr(k) for k in keys]
    if config.http.oauth is not None:
        secret = env.get(config.http.oauth.client_secret_env)
        config.http.oauth.client_secret = SecretStr(secret) if secret else None


def _resolve_tokens(http: HttpConfig, env: Mapping[str, str]) -> None:
    """Static bearer tokens from the variable and the tokens file; the run-token key (random unless set)."""
    sources = [(f"{http.auth_tokens_env} entry {i}", entry) for i, entry in enumerate(_split(env.get(http.auth_tokens_env, "")), 1)]
    if http.tokens_file is not None:
        try:
            lines = http.tokens_file.read_text(encoding="utf-8").splitlines()
        except OSError as exc:
            raise ConfigError(f"http.tokens_file: cannot read {http.tokens_file}: {type(exc).__name__}") from None
        sources += [(f"http.tokens_file line {n}", line.strip()) for n, line in enumerate(lines, 1) if line.strip() and not line.strip().startswith("#")]
    tokens: list[BearerToken] = []
    for where, entry in sources:
        name, colon, value = entry.partition(":")
        if not colon:
            name, value = "", entry
        if colon and not IDENTITY_NAME.match(name):
            raise ConfigError(f"{where}: the identity before ':' must be letters, digits, '_', '.', '@', '-' (at most 128)")
        if any(t.value.get_secret_value() == value for t in tokens):
            raise ConfigError(f"{where}: this token is listed twice; give each client its own token")
        tokens.append(BearerToken(identity=name or None, value=SecretStr(value)))
    http.tokens = tokens
    if env.get(http.secret_env):
        http.secret = SecretStr(env[http.secret_env])


def _from_secrets_file(path: Path | None, name: str) -> str | None:
    if path is None or not path.exists():
        return None
    try:
        value = tomllib.loads(path.read_text(encoding="utf-8")).get(name)
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"cannot read secrets file {path}: {type(exc).__name__}") from None
    return str(value) if value else None
