"""How a run starts: where its agent works, how its prompt reaches it, and its supervisor.

The workspace and the prompt are checked before the run is recorded. An agent's command is an argv with placeholders: `{prompt}` (the prompt as one argument),
`{prompt_file}` (the path of a file holding the prompt, for prompts too long for an
argument), `{run_id}` and `{workspace}`. With `prompt_stdin = true` the prompt is also written
to the agent's standard input. Linux caps one argument at 128 KiB (MAX_ARG_STRLEN, with its
terminating NUL) and no argument can hold a NUL, so a spawn whose argv could never be executed
is refused here, before anything is created, instead of failing later in the supervisor.
"""

from __future__ import annotations

import functools
import subprocess
import sys
import threading
from pathlib import Path

from agentdeck.backends.local.supervisor_spec import SupervisorSpec
from agentdeck.errors import InvalidArgument

__all__ = ["MAX_ARG_BYTES", "agent_argv", "check_prompt", "make_workspace", "prompt_file", "start_supervisor", "workspace_folder"]

MAX_ARG_BYTES = 128 * 1024 - 1
_MAX_WORKSPACE_BYTES = 1024


def workspace_folder(root: Path, workspace: str | None) -> Path:
    """The folder a run works in: `workspace` under `root`, or `root` itself.

    Raises:
        InvalidArgument: the name is too long, holds a NUL, or leads out of `root`.
    """
    if workspace and ("\0" in workspace or len(workspace.encode()) > _MAX_WORKSPACE_BYTES or any(len(p.encode()) > 255 for p in workspace.split("/"))):
        raise InvalidArgument(
            f"workspace must be a relative path of at most {_MAX_WORKSPACE_BYTES} bytes, each name at most 255 bytes, without NUL; pick a shorter name"
        )
    target = (root / workspace).resolve() if workspace else root
    if target != root and root not in target.parents:
        raise InvalidArgument(f"workspace must stay inside {root}; pass a relative path without '..' or links out of it")
    return target


def make_workspace(target: Path) -> None:
    try:
        target.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InvalidArgument(f"workspace {str(target)!r} cannot be created ({exc.strerror or exc}); pick another relative path") from None


def prompt_file(data_dir: Path, run_id: str) -> Path:
    """Where the supervisor writes the prompt of a run whose command names `{prompt_file}`."""
    return data_dir / "prompts" / f"{run_id}.txt"


def agent_argv(command: list[str], *, prompt: str, run_id: str, workspace: Path, data_dir: Path) -> list[str]:
    values = {"{prompt_file}": str(prompt_file(data_dir, run_id)), "{prompt}": prompt, "{run_id}": run_id, "{workspace}": str(workspace)}
    return [functools.reduce(lambda s, kv: s.replace(*kv), values.items(), part) for part in command]


def check_prompt(prompt: str, argv: list[str], agent: str) -> None:
    """Refuse a prompt the agent's process could never be started with.

    Raises:
        InvalidArgument: the prompt holds a NUL, or an argument it fills is over 128 KiB.
    """
    if "\0" in prompt:
        raise InvalidArgument("prompt contains a NUL character, which no agent process can receive; remove it")
    for part in argv:
        size = len(part.encode())
        if size > MAX_ARG_BYTES:
            raise InvalidArgument(
                f"prompt makes one argument of agent '{agent}' {size} bytes, over the {MAX_ARG_BYTES}-byte limit the operating system"
                " puts on one argument; shorten it, or configure the agent with `{prompt_file}` or `prompt_stdin = true` in its command"
            )


def start_supervisor(spec: SupervisorSpec, log_path: Path) -> None:
    """Start the run's supervisor (supervisor.py) in a session of its own and hand it `spec`.

    The supervisor outlives the server that starts it, so it must not hold that server's
    stderr: a client host would see the pipe stay open after the server exits, and the
    supervisor's next line there would fail once the host stops reading. It appends to
    `log_path` instead.
    """
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log_file:
        proc = subprocess.Popen(
            [sys.executable, "-m", "agentdeck.backends.local.supervisor"],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=log_file,
            start_new_session=True,
        )
    assert proc.stdin is not None
    proc.stdin.write(spec.to_json().encode())
    proc.stdin.close()
    # Reap it when it ends so it does not linger as a zombie of this process.
    threading.Thread(target=proc.wait, daemon=True).start()
