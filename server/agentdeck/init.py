"""`agentdeck init`: write a commented starter config that declares the coding agents found on PATH.

Each coding-agent CLI found is declared as a local agent in its documented headless mode, with
`{prompt}` as one argument. Permission flags are left to the user: the file says how each CLI
grants them, and never grants them itself. The built-in `echo` agent and `greet` routine stay.
An existing file is only replaced with `--force`, and the old one is kept beside it as `.bak`.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import textwrap
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from agentdeck.config import LocalConfig, default_config_path, load_config
from agentdeck.errors import ConfigError

__all__ = ["CODING_AGENTS", "CodingAgent", "detect_agents", "render_config", "run_init"]


@dataclass(frozen=True)
class CodingAgent:
    """A coding-agent CLI and how its documentation says to run it without a terminal."""

    name: str
    title: str
    headless: tuple[str, ...]
    docs: str
    permissions: str


CODING_AGENTS: tuple[CodingAgent, ...] = (
    CodingAgent(
        name="claude",
        title="Claude Code",
        headless=("-p", "{prompt}"),
        docs="https://docs.claude.com/en/docs/claude-code/headless",
        permissions=(
            "Tools that need approval are refused, as no one is there to approve them. "
            'To allow some, add e.g. "--allowedTools", "Read,Grep,Edit" or "--permission-mode", "acceptEdits" before "-p".'
        ),
    ),
    CodingAgent(
        name="codex",
        title="OpenAI Codex CLI",
        headless=("exec", "{prompt}"),
        docs="https://developers.openai.com/codex/noninteractive",
        permissions='codex exec runs in a read-only sandbox by default. To let it edit the workspace, add "--sandbox", "workspace-write" after "exec".',
    ),
    CodingAgent(
        name="gemini",
        title="Gemini CLI",
        headless=("-p", "{prompt}"),
        docs="https://geminicli.com/docs/cli/headless",
        permissions='Actions that need approval are not taken without it. To auto-approve file edits, add "--approval-mode", "auto_edit" before "-p".',
    ),
    CodingAgent(
        name="opencode",
        title="OpenCode",
        headless=("run", "{prompt}"),
        docs="https://opencode.ai/docs/cli",
        permissions='What it may do without asking is set by the "permission" section of its own opencode.json.',
    ),
)


def detect_agents(env: Mapping[str, str] = os.environ) -> dict[str, str]:
    """The coding-agent CLIs on PATH: agent name -> absolute path of the executable."""
    found = {}
    for agent in CODING_AGENTS:
        path = shutil.which(agent.name, path=env.get("PATH", ""))
        if path:
            found[agent.name] = os.path.abspath(path)
    return found


def render_config(found: Mapping[str, str]) -> str:
    """The starter config: echo, the detected coding agents, the greet routine, commented extras."""
    local = LocalConfig()
    echo, greet = local.agents["echo"], local.routines["greet"]
    lines = [
        "# agentdeck configuration, written by `agentdeck init`.",
        "# Every key is described in docs/configuration.md. AGENTDECK_* environment variables",
        "# override the top-level keys (AGENTDECK_IDENTITY, AGENTDECK_READ_ONLY, ...).",
        "# Secrets never go in this file: a remote backend names the variable that holds its key.",
        "",
        'default = "local"',
        '# identity = "me@laptop"         # who you are on channels and task claims (default: user@host)',
        "# read_only = false              # true registers only the read-only tools",
        '# toolsets = ["agents", "runs"]  # register only these toolsets',
        "",
        "[backends.local]",
        'kind = "local"',
        f"# max_children = {local.max_children}      # runs one run may spawn",
        f"# max_depth = {local.max_depth}         # how deep spawned runs may nest",
        f"# lease_seconds = {local.lease_seconds}   # default task lease",
        "",
        "# Agents the model may start. The model never supplies a command: only these run.",
        '# "{prompt}" is replaced by the prompt as one argument; no shell is involved.',
        "",
        "[backends.local.agents.echo]",
        f"command = {_array(echo.command)}",
        f"description = {_string(echo.description)}",
        "",
    ]
    if found:
        example = [*echo.inherit_env, "ANTHROPIC_API_KEY"]
        lines += [
            "# Coding agents found on this machine, each in its documented headless mode.",
            "# PERMISSION FLAGS ARE LEFT TO YOU. A headless run has no one to approve a file edit or a",
            "# shell command, so each CLI refuses or limits such actions until its command grants them.",
            "# Read the note above each agent before adding a flag that lets it act on its own.",
            "# An agent sees only a few variables of agentdeck's environment (PATH, HOME, ...). If it",
            "# logs in with an API key variable rather than its own login, add under its table:",
            f"#   inherit_env = {_array(example)}",
            "",
        ]
    missing = []
    for agent in CODING_AGENTS:
        if agent.name in found:
            lines += [*_notes(agent), f"[backends.local.agents.{agent.name}]", *_keys(agent, found[agent.name]), ""]
        else:
            missing.append(agent)
    if missing:
        lines += ["# Not found on PATH when this file was written; uncomment one after installing it.", ""]
        for agent in missing:
            lines += [*_notes(agent), f"# [backends.local.agents.{agent.name}]", *(f"# {key}" for key in _keys(agent, agent.name)), ""]
    lines += [
        "# Routines are saved prompts for an agent; {message} is replaced by the invocation's message.",
        "[backends.local.routines.greet]",
        f"agent = {_string(greet.agent)}",
        f"prompt = {_string(greet.prompt)}",
        f"description = {_string(greet.description)}",
        "",
        "# For `agentdeck serve --http`. A non-loopback host needs AGENTDECK_HTTP_TOKENS.",
        "# [http]",
        '# host = "127.0.0.1"',
        "# port = 8765",
        "",
        '# A remote platform beside the local one; tools then take backend = "oz".',
        "# [backends.oz]",
        '# kind = "oz"',
        '# api_key_env = "WARP_API_KEY"   # the variable that holds the key (this is the default)',
    ]
    return "\n".join(lines) + "\n"


def _notes(agent: CodingAgent) -> list[str]:
    text = f"{agent.title}. Permissions: {agent.permissions} Headless mode: {agent.docs}"
    return [f"# {line}" for line in textwrap.wrap(text, width=94, break_long_words=False, break_on_hyphens=False)]


def _keys(agent: CodingAgent, executable: str) -> list[str]:
    invocation = " ".join([agent.name, *agent.headless[:-1]])
    return [f"command = {_array([executable, *agent.headless])}", f"description = {_string(f'{agent.title}, headless ({invocation})')}"]


def _string(value: str) -> str:
    """A TOML basic string; JSON's escapes are TOML's, except that TOML also escapes DEL."""
    return json.dumps(value, ensure_ascii=False).replace("\x7f", "\\u007F")


def _array(values: list[str]) -> str:
    return "[" + ", ".join(_string(v) for v in values) + "]"


def _target(path: Path | None, env: Mapping[str, str]) -> Path:
    if path is not None:
        return path
    if env.get("AGENTDECK_CONFIG"):
        return Path(env["AGENTDECK_CONFIG"])
    return default_config_path(env)


def run_init(path: Path | None = None, *, force: bool = False, env: Mapping[str, str] = os.environ, out: TextIO | None = None, err: TextIO | None = None) -> int:
    """Write the starter config to `path` (default: the file agentdeck reads); the exit code.

    1 when the file exists and `force` is not set (nothing is written), 2 when it cannot be written.
    """
    out, err = out or sys.stdout, err or sys.stderr
    target = _target(path, env).expanduser()
    if target.exists() and not force:
        print(f"agentdeck: {target} already exists; left unchanged.", file=err)
        print("Run `agentdeck init --force` to replace it (the old file is kept as .bak), or pass --path.", file=err)
        return 1
    found = detect_agents(env)
    text = render_config(found)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, scratch = tempfile.mkstemp(prefix=".agentdeck-init-", suffix=".toml", dir=target.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as file:
                file.write(text)
            load_config(Path(scratch), env={})  # never leave a file agentdeck would refuse
            if target.exists():
                shutil.copy2(target, target.with_name(target.name + ".bak"))
            os.replace(scratch, target)
        finally:
            if os.path.exists(scratch):
                os.unlink(scratch)
    except OSError as exc:
        print(f"agentdeck: cannot write {target}: {exc.strerror or exc}", file=err)
        return 2
    except ConfigError as exc:  # a bug in the template, not the user's doing
        print(f"agentdeck: the starter config did not validate ({exc}); please report this.", file=err)
        return 2
    print(f"Wrote {target}", file=out)
    print("  agents: echo (built in)" + "".join(f", {name} ({where})" for name, where in found.items()), file=out)
    not_found = [agent.name for agent in CODING_AGENTS if agent.name not in found]
    if not_found:
        print(f"  not found on PATH: {', '.join(not_found)} (left commented out in the file)", file=out)
    if found:
        print("  Permission flags are left to you: read the note above each agent in the file.", file=out)
    print("Next: `agentdeck tools` lists what a client will see; `agentdeck doctor` checks the backends.", file=out)
    return 0
