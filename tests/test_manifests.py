"""Every manifest under manifests/ parses, and names only real CLI flags and config variables.

Also: the package builds into a wheel (and an sdist when `build` is installed) with the right
metadata, entry point and license.
"""

from __future__ import annotations

import argparse
import configparser
import email.parser
import importlib.util
import json
import re
import shutil
import subprocess
import sys
import tarfile
import tomllib
import zipfile
from pathlib import Path
from typing import Any

import pytest

from agentdeck import __version__, config
from agentdeck.cli import _parser
from agentdeck.config import HttpConfig, load_config
from agentdeck.settings_doc import backend_models

ROOT = Path(__file__).resolve().parent.parent
MANIFESTS = ROOT / "manifests"
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]


def _secret_env() -> set[str]:
    """Variables that hold secrets: each remote backend's default api_key_env, and the HTTP tokens."""
    names = {HttpConfig().auth_tokens_env}
    for model in backend_models():
        field = model.model_fields.get("api_key_env")
        if field is not None and isinstance(field.default, str):
            names.add(field.default)
    return names


def _known_env() -> set[str]:
    """Variables agentdeck reads: the AGENTDECK_* ones in config.py, and the secrets."""
    source = Path(config.__file__).read_text(encoding="utf-8")
    return set(config._ENV_KEYS) | set(re.findall(r'"(AGENTDECK_[A-Z0-9_]+)"', source)) | _secret_env()


def _cli(argv: list[str]) -> argparse.Namespace:
    try:
        return _parser().parse_args(argv)
    except SystemExit:
        pytest.fail(f"`agentdeck {' '.join(argv)}` is not a valid command line")


def _json(name: str) -> Any:
    return json.loads((MANIFESTS / name).read_text(encoding="utf-8"))


def test_every_json_manifest_parses() -> None:
    files = sorted(MANIFESTS.rglob("*.json"))
    assert len(files) >= 6
    for path in files:
        json.loads(path.read_text(encoding="utf-8"))


# --- client configs -------------------------------------------------------------------------

CLIENTS = {
    "claude_desktop_config.json": "mcpServers",
    "claude_code.mcp.json": "mcpServers",
    "cursor.mcp.json": "mcpServers",
    "vscode.mcp.json": "servers",
}


@pytest.mark.parametrize(("name", "key"), CLIENTS.items())
def test_client_config_starts_agentdeck_serve_on_stdio_with_known_variables(name: str, key: str) -> None:
    entry = _json(name)[key]["agentdeck"]
    assert entry["command"] == "agentdeck"
    args = _cli(entry["args"])
    assert args.command == "serve" and not args.http
    assert entry.get("type", "stdio") == "stdio"
    unknown = set(entry.get("env", {})) - _known_env()
    assert not unknown, f"{name} sets variables agentdeck never reads: {sorted(unknown)}"


def test_vscode_config_uses_the_servers_key_with_an_explicit_stdio_type() -> None:
    data = _json("vscode.mcp.json")
    assert "mcpServers" not in data and data["servers"]["agentdeck"]["type"] == "stdio"


def test_each_client_config_gives_its_client_its_own_identity() -> None:
    identities = [_json(name)[key]["agentdeck"]["env"]["AGENTDECK_IDENTITY"] for name, key in CLIENTS.items()]
    assert len(set(identities)) == len(identities)


# --- MCP Registry server.json ----------------------------------------------------------------

_PACKAGE_KEYS = {
    "registryType", "registryBaseUrl", "identifier", "version", "fileSha256", "runtimeHint",
    "transport", "runtimeArguments", "packageArguments", "environmentVariables",
}  # fmt: skip
_INPUT_KEYS = {"name", "description", "isRequired", "format", "value", "isSecret", "default", "placeholder", "choices", "variables"}


def test_registry_server_json_describes_the_pypi_package_run_over_stdio() -> None:
    data = _json("server.json")
    assert re.match(r"^https://static\.modelcontextprotocol\.io/schemas/\d{4}-\d{2}-\d{2}/server\.schema\.json$", data["$schema"])
    assert re.match(r"^[a-zA-Z0-9.-]+/[a-zA-Z0-9._-]+$", data["name"])
    assert 1 <= len(data["description"]) <= 100
    assert data["version"] == __version__ == PROJECT["version"]
    (package,) = data["packages"]
    assert set(package) <= _PACKAGE_KEYS
    assert package["registryType"] == "pypi" and package["registryBaseUrl"] == "https://pypi.org"
    assert package["identifier"] == PROJECT["name"] and package["version"] == PROJECT["version"]
    assert package["transport"] == {"type": "stdio"}
    argv: list[str] = []
    for arg in package["packageArguments"]:
        argv += [arg["value"]] if arg["type"] == "positional" else [arg["name"], *([arg["value"]] if "value" in arg else [])]
    assert _cli(argv).command == "serve"


def test_registry_server_json_marks_exactly_the_secret_variables_secret() -> None:
    (package,) = _json("server.json")["packages"]
    variables = {var["name"]: var for var in package["environmentVariables"]}
    for var in variables.values():
        assert set(var) <= _INPUT_KEYS and var["description"]
    assert set(variables) <= _known_env()
    assert _secret_env() <= set(variables)
    assert {"WARP_API_KEY", "ARCHASTRO_API_KEY", "AGENT_OS_API_KEY", "AZURE_FOUNDRY_TOKEN", "AGENTDECK_HTTP_TOKENS"} <= set(variables)
    for name, var in variables.items():
        assert var.get("isSecret", False) is (name in _secret_env()), name


# --- Claude Desktop extension bundle (MCPB) --------------------------------------------------

_MCPB_KEYS = {
    "$schema", "manifest_version", "name", "display_name", "version", "description", "long_description",
    "author", "repository", "homepage", "documentation", "support", "icon", "icons", "screenshots",
    "localization", "server", "tools", "tools_generated", "prompts", "prompts_generated", "keywords",
    "license", "privacy_policies", "compatibility", "user_config", "_meta",
}  # fmt: skip
_USER_CONFIG_KEYS = {"type", "title", "description", "required", "default", "multiple", "sensitive", "min", "max"}


def test_mcpb_manifest_follows_the_spec_and_runs_agentdeck_serve() -> None:
    bundle = MANIFESTS / "mcpb"
    manifest = json.loads((bundle / "manifest.json").read_text(encoding="utf-8"))
    assert set(manifest) <= _MCPB_KEYS
    for key in ("manifest_version", "name", "version", "description", "author", "server"):
        assert manifest[key], key
    assert manifest["manifest_version"] == "0.4" and manifest["version"] == __version__
    assert manifest["license"] == PROJECT["license"]
    server = manifest["server"]
    assert server["type"] == "uv" and (bundle / server["entry_point"]).is_file()
    mcp_config = server["mcp_config"]
    args = mcp_config["args"]
    assert server["entry_point"] in args
    assert _cli(args[args.index(server["entry_point"]) + 1 :]).command == "serve"
    assert set(mcp_config["env"]) <= _known_env()


def test_mcpb_user_config_holds_every_key_and_marks_secrets_sensitive() -> None:
    manifest = json.loads((MANIFESTS / "mcpb" / "manifest.json").read_text(encoding="utf-8"))
    options = manifest["user_config"]
    for name, option in options.items():
        assert set(option) <= _USER_CONFIG_KEYS and {"type", "title", "description"} <= set(option), name
        assert option["type"] in {"string", "number", "boolean", "directory", "file"}
        # An optional value without a default would reach agentdeck as the literal "${user_config.x}".
        assert option.get("required") or "default" in option, name
    env = manifest["server"]["mcp_config"]["env"]
    for var, value in env.items():
        refs = re.findall(r"\$\{user_config\.([^}]+)\}", value)
        assert refs and all(ref in options for ref in refs), f"{var} refers to an undefined user_config"
        for ref in refs:
            assert bool(options[ref].get("sensitive")) is (var in _secret_env()), var
    backend_keys = _secret_env() - {HttpConfig().auth_tokens_env}
    assert backend_keys <= set(env)


def test_mcpb_entry_point_runs_the_agentdeck_cli() -> None:
    entry = MANIFESTS / "mcpb" / "server" / "main.py"
    result = subprocess.run([sys.executable, str(entry), "--version"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"agentdeck {__version__}"


# --- container image -------------------------------------------------------------------------


def _dockerfile() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of manifests/Dockerfile, continuation lines joined, comments dropped."""
    instructions, pending = [], ""
    for line in (MANIFESTS / "Dockerfile").read_text(encoding="utf-8").splitlines():
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        pending += line.rstrip()
        if pending.endswith("\\"):
            pending = pending[:-1] + " "
            continue
        word, _, rest = pending.strip().partition(" ")
        instructions.append((word.upper(), rest.strip()))
        pending = ""
    return instructions


def _final_stage(instructions: list[tuple[str, str]]) -> list[tuple[str, str]]:
    start = max(i for i, (word, _) in enumerate(instructions) if word == "FROM")
    return instructions[start:]


def test_dockerfile_runs_as_a_non_root_user_on_a_slim_python() -> None:
    stage = _final_stage(_dockerfile())
    assert re.match(r"^python:3\.1[1-9]-slim\b", stage[0][1])
    users = [rest for word, rest in stage if word == "USER"]
    assert users, "the final stage must switch to a non-root USER"
    user = users[-1].split(":")[0]
    assert user not in {"root", "0"}


def test_dockerfile_cmd_serves_http_on_all_interfaces_with_real_flags() -> None:
    stage = _final_stage(_dockerfile())
    (cmd,) = [json.loads(rest) for word, rest in stage if word == "CMD"]
    assert cmd[0] == "agentdeck"
    args = _cli(cmd[1:])
    assert args.command == "serve" and args.http and args.host == "0.0.0.0"
    # Such a bind is refused without tokens: the file must tell the operator to pass them.
    assert HttpConfig().auth_tokens_env in (MANIFESTS / "Dockerfile").read_text(encoding="utf-8")
    assert any(word == "HEALTHCHECK" and "/healthz" in rest for word, rest in stage)


def test_dockerfile_sets_only_variables_agentdeck_reads() -> None:
    names = []
    for word, rest in _dockerfile():
        if word == "ENV":
            names += re.findall(r"(?:^|\s)([A-Za-z_][A-Za-z0-9_]*)=", rest)
    assert names
    unknown = {n for n in names if not n.startswith("PYTHON")} - _known_env()
    assert not unknown, f"the Dockerfile sets variables agentdeck never reads: {sorted(unknown)}"
    assert not set(names) & _secret_env(), "secrets must be passed at run time, never baked into the image"


def test_dockerfile_copies_only_files_that_exist_and_the_dockerignore_lets_in() -> None:
    ignore = (MANIFESTS / "Dockerfile.dockerignore").read_text(encoding="utf-8").splitlines()
    allowed = {line[1:].rstrip("/") for line in ignore if line.startswith("!")}
    for word, rest in _dockerfile():
        if word == "COPY" and not rest.startswith("--from"):
            *sources, _dest = rest.split()
            for source in sources:
                assert (ROOT / source).exists(), source
                assert source.rstrip("/") in allowed, f"{source} is excluded by Dockerfile.dockerignore"


# --- Kubernetes sidecar ----------------------------------------------------------------------


def _scalar(text: str) -> Any:
    if text[:1] in '["{':
        return json.loads(text)
    if text in ("true", "false"):
        return text == "true"
    if re.fullmatch(r"-?\d+", text):
        return int(text)
    return text.strip("'")


class _MiniYaml:
    """Block-style YAML as this repository writes it: mappings, `- ` sequences, JSON-style flow
    values, `|` literals and full-line comments. Enough to check the manifest without PyYAML."""

    def __init__(self, lines: list[str]) -> None:
        self.lines, self.i = lines, 0

    def _peek(self) -> tuple[int, str] | None:
        while self.i < len(self.lines):
            stripped = self.lines[self.i].strip()
            if stripped and not stripped.startswith("#"):
                return len(self.lines[self.i]) - len(self.lines[self.i].lstrip()), stripped
            self.i += 1
        return None

    def parse(self) -> Any:
        top = self._peek()
        return None if top is None else self._block(top[0])

    def _block(self, indent: int) -> Any:
        top = self._peek()
        assert top is not None
        return self._seq(indent) if top[1].startswith("- ") else self._map(indent)

    def _map(self, indent: int) -> dict[str, Any]:
        out: dict[str, Any] = {}
        while (top := self._peek()) and top[0] == indent and not top[1].startswith("- "):
            self.i += 1
            key, _, rest = top[1].partition(":")
            out[key.strip()] = self._value(rest.strip(), indent)
        assert not top or top[0] < indent or top[1].startswith("- "), f"bad indent at line {self.i + 1}"
        return out

    def _value(self, rest: str, indent: int) -> Any:
        if rest == "|":
            return self._literal(indent)
        if rest:
            return _scalar(rest)
        top = self._peek()
        if top and (top[0] > indent or (top[0] == indent and top[1].startswith("- "))):
            return self._block(top[0])
        return None

    def _seq(self, indent: int) -> list[Any]:
        out: list[Any] = []
        while (top := self._peek()) and top[0] == indent and top[1].startswith("- "):
            item = top[1][2:].strip()
            if re.match(r"^[\w.-]+:(\s|$)", item):  # a mapping that starts on the dash line
                self.lines[self.i] = " " * (indent + 2) + item
                out.append(self._map(indent + 2))
            else:
                self.i += 1
                out.append(_scalar(item))
        return out

    def _literal(self, indent: int) -> str:
        block = []
        while self.i < len(self.lines) and (not self.lines[self.i].strip() or len(self.lines[self.i]) - len(self.lines[self.i].lstrip()) > indent):
            block.append(self.lines[self.i])
            self.i += 1
        while block and not block[-1].strip():
            block.pop()
        cut = min(len(line) - len(line.lstrip()) for line in block if line.strip())
        return "\n".join(line[cut:] for line in block) + "\n"


def _yaml_documents(text: str) -> list[Any]:
    documents: list[list[str]] = [[]]
    for line in text.splitlines():
        if line.strip() == "---":
            documents.append([])
        else:
            documents[-1].append(line)
    parsed = [_MiniYaml(lines).parse() for lines in documents]
    return [doc for doc in parsed if doc is not None]


def _k8s() -> list[Any]:
    text = (MANIFESTS / "k8s-sidecar.yaml").read_text(encoding="utf-8")
    documents = _yaml_documents(text)
    if importlib.util.find_spec("yaml"):
        import yaml

        assert documents == [doc for doc in yaml.safe_load_all(text) if doc is not None]
    return documents


def _kind(documents: list[Any], kind: str) -> dict[str, Any]:
    (found,) = [doc for doc in documents if doc["kind"] == kind]
    return found


def _agentdeck_container(pod: dict[str, Any]) -> dict[str, Any]:
    (container,) = [c for c in pod["spec"]["containers"] if c.get("command", [""])[0] == "agentdeck"]
    return container


def test_k8s_sidecar_serves_http_on_the_pods_loopback_with_real_flags() -> None:
    pod = _kind(_k8s(), "Pod")
    assert len(pod["spec"]["containers"]) == 2
    args = _cli(_agentdeck_container(pod)["command"][1:])
    assert args.command == "serve" and args.http and args.host == "127.0.0.1" and args.port == 8765
    (agent,) = [c for c in pod["spec"]["containers"] if c["name"] != "agentdeck"]
    urls = [e["value"] for e in agent["env"] if "value" in e]
    assert f"http://127.0.0.1:8765{HttpConfig().path}" in urls
    assert pod["spec"]["securityContext"]["runAsNonRoot"] is True


def test_k8s_sidecar_readiness_probe_checks_healthz_on_port_8765() -> None:
    probe = _agentdeck_container(_kind(_k8s(), "Pod"))["readinessProbe"]
    if "httpGet" in probe:
        assert probe["httpGet"]["path"] == "/healthz" and probe["httpGet"]["port"] == 8765
    else:
        # Loopback-bound, so the probe must run inside the container: an httpGet goes to the Pod IP.
        assert "http://127.0.0.1:8765/healthz" in " ".join(probe["exec"]["command"])


def test_k8s_sidecar_sets_only_variables_agentdeck_reads_and_takes_keys_from_secrets() -> None:
    container = _agentdeck_container(_kind(_k8s(), "Pod"))
    names = {e["name"] for e in container["env"]}
    assert names <= _known_env(), sorted(names - _known_env())
    for entry in container["env"]:
        if entry["name"] in _secret_env():
            assert "secretKeyRef" in entry.get("valueFrom", {}), f"{entry['name']} must come from a Secret"


def test_k8s_sidecar_config_map_is_a_valid_config_at_the_path_agentdeck_reads(tmp_path: Path) -> None:
    documents = _k8s()
    config_map, pod = _kind(documents, "ConfigMap"), _kind(documents, "Pod")
    container = _agentdeck_container(pod)
    env = {e["name"]: e.get("value") for e in container["env"]}
    (volume,) = [v for v in pod["spec"]["volumes"] if v.get("configMap", {}).get("name") == config_map["metadata"]["name"]]
    (mount,) = [m for m in container["volumeMounts"] if m["name"] == volume["name"]]
    filename = env["AGENTDECK_CONFIG"].removeprefix(mount["mountPath"].rstrip("/") + "/")
    assert filename in config_map["data"]
    path = tmp_path / filename
    path.write_text(config_map["data"][filename], encoding="utf-8")
    assert load_config(path, env={}).default == "local"


# --- package build ---------------------------------------------------------------------------


def _source_copy(destination: Path) -> Path:
    """The files a build needs, copied out so the build leaves no build/ or egg-info in the repo."""
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy2(ROOT / name, destination / name)
    shutil.copytree(ROOT / "server" / "agentdeck", destination / "server" / "agentdeck", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    return destination


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Build once per module: sdist and wheel with `python -m build` if installed, else the wheel with pip."""
    source = _source_copy(tmp_path_factory.mktemp("source"))
    out = tmp_path_factory.mktemp("dist")
    if importlib.util.find_spec("build.__main__"):  # not a stray build/ folder on sys.path
        command = [sys.executable, "-m", "build", "--outdir", str(out), str(source)]
    else:
        command = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-cache-dir", "--quiet", "--wheel-dir", str(out), str(source)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    found = {"wheel": next(out.glob("agentdeck-*.whl"))}
    sdists = list(out.glob("agentdeck-*.tar.gz"))
    if sdists:
        found["sdist"] = sdists[0]
    return found


def test_wheel_metadata_names_version_license_python_and_dependencies(built: dict[str, Path]) -> None:
    with zipfile.ZipFile(built["wheel"]) as wheel:
        info = f"agentdeck-{__version__}.dist-info"
        metadata = email.parser.Parser().parsestr(wheel.read(f"{info}/METADATA").decode())
        assert metadata["Name"] == "agentdeck" and metadata["Version"] == __version__
        assert (metadata["License-Expression"] or metadata["License"]) == "Apache-2.0"
        assert metadata["Requires-Python"] == ">=3.11"
        required = {re.split(r"[ <>=!~;\[(]", req, maxsplit=1)[0].lower() for req in metadata.get_all("Requires-Dist", []) if "extra ==" not in req}
        assert {"mcp", "httpx2", "pydantic", "anyio"} <= required
        license_files = metadata.get_all("License-File", [])
        assert "LICENSE" in license_files
        assert any(name.endswith("/LICENSE") and name.startswith(info) for name in wheel.namelist())


def test_wheel_declares_the_agentdeck_console_script(built: dict[str, Path]) -> None:
    with zipfile.ZipFile(built["wheel"]) as wheel:
        entry_points = configparser.ConfigParser()
        entry_points.read_string(wheel.read(f"agentdeck-{__version__}.dist-info/entry_points.txt").decode())
    assert entry_points["console_scripts"]["agentdeck"] == "agentdeck.cli:main"


def test_wheel_contains_every_module_of_the_package_and_no_tests(built: dict[str, Path]) -> None:
    package = ROOT / "server" / "agentdeck"
    expected = {f"agentdeck/{p.relative_to(package).as_posix()}" for p in package.rglob("*.py") if "__pycache__" not in p.parts}
    with zipfile.ZipFile(built["wheel"]) as wheel:
        names = set(wheel.namelist())
    assert expected <= names, sorted(expected - names)
    assert not any(name.startswith("tests/") for name in names)


def test_wheel_carries_the_dashboard_templates_and_static_files(built: dict[str, Path]) -> None:
    ui = ROOT / "server" / "agentdeck" / "ui"
    expected = {f"agentdeck/ui/{p.relative_to(ui).as_posix()}" for folder in ("templates", "static") for p in (ui / folder).iterdir()}
    with zipfile.ZipFile(built["wheel"]) as wheel:
        names = set(wheel.namelist())
    assert expected and expected <= names, sorted(expected - names)


def test_sdist_carries_the_license_readme_and_sources(built: dict[str, Path]) -> None:
    if "sdist" not in built:
        pytest.skip("`build` is not installed: only the wheel was built")
    with tarfile.open(built["sdist"]) as sdist:
        names = {name.split("/", 1)[1] for name in sdist.getnames() if "/" in name}
    assert {"LICENSE", "README.md", "pyproject.toml", "server/agentdeck/cli.py"} <= names
