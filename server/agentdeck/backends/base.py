"""The Backend interface every platform adapter implements, and its capability flags.

A backend declares the capabilities it really has; the server registers a tool only when some
configured backend has the tool's capability, and a call to a backend that lacks it answers
`unsupported`. Methods a backend does not override raise `Unsupported`.

Backends never import `mcp`: progress reaches them as a plain async callback.
"""

from __future__ import annotations

import enum
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypedDict

import anyio
import anyio.abc

from agentdeck.backends.requests import MessageDraft, RoutineCall, RunFilter, SpawnRequest, TaskDraft
from agentdeck.errors import AgentdeckError, InvalidArgument, Timeout, Unauthorized, Unavailable, Unsupported
from agentdeck.models import (
    AgentList,
    ChannelList,
    ChannelMessage,
    ClaimResult,
    FileContent,
    Lease,
    MessageBatch,
    RoutineList,
    Run,
    RunEventPage,
    RunPage,
    SessionFileList,
    Task,
)

if TYPE_CHECKING:
    import httpx2

    from agentdeck.identity import Caller

__all__ = ["Backend", "BuildEnv", "Capability", "Check", "Progress", "TaskView", "only_metadata_key", "poll_until_done"]

Progress = Callable[[float, str], Awaitable[None]]
"""Called with a monotonically increasing count and a short message while a call waits."""

Check = tuple[bool, str, str]
"""One line of `agentdeck doctor`: passed, what was checked, and the detail (with a fix when it failed)."""


class BuildEnv(TypedDict, total=False):
    """What an adapter is built with besides its own settings; each adapter takes the keys it uses."""

    identity: str
    """Who this process is on channels and task claims."""
    owner: Caller
    """The process's own caller (the local platform's operator)."""
    data_dir: Path
    """Where an adapter keeps what must survive a restart (idempotency keys, the local store)."""
    config_path: str | None
    """The config file the local platform's agents are pointed at."""
    transport: httpx2.AsyncBaseTransport | None
    """None: the network; tests bind an adapter to an in-process emulator with one."""


@dataclass(frozen=True)
class TaskView:
    """A task as the dashboard shows it: with its holder and lease when claimed; `seq` pages the listing."""

    task: Task
    seq: int
    holder: str | None = None
    lease_expires_at: datetime | None = None
    claim_run_id: str | None = None


class Capability(str, enum.Enum):
    AGENTS = "agents"  # list_agents, spawn_agent
    RUNS = "runs"  # list_runs, get_run, wait_for_run
    RUN_CANCEL = "run_cancel"
    RUN_FOLLOWUP = "run_followup"
    RUN_EVENTS = "run_events"
    CHANNELS = "channels"
    TASKS = "tasks"  # claim, heartbeat, complete, fail, release
    TASK_CREATE = "task_create"
    ROUTINES = "routines"
    FILES = "files"  # list and download session files
    FILE_WRITE = "file_write"  # upload and delete session files
    SESSION_DELETE = "session_delete"
    CONTEXT = "context"


class Backend:
    """Base class of every adapter. `name` is the configured name, `kind` the platform."""

    kind: str = ""
    capabilities: frozenset[Capability] = frozenset()
    max_wait_seconds: float = 50.0
    """The longest a call may wait for something to happen (config `max_wait_seconds`)."""

    def __init__(self, name: str) -> None:
        self.name = name

    async def start(self, task_group: anyio.abc.TaskGroup) -> None:
        """Open connections and start background work; called once when the server starts."""

    async def aclose(self) -> None:
        """Release connections and processes; called once when the server stops."""

    def watcher(self, publish: Callable[[Any], Awaitable[None]]) -> Any | None:
        """What reports changes of subscribed resources (see backends/local/watch.py); None: no live updates."""
        return None

    def _unsupported(self, what: str) -> Unsupported:
        return Unsupported(f"Backend '{self.name}' ({self.kind}) cannot {what}; see agentdeck://context for what it supports.")

    # agents
    async def list_agents(self) -> AgentList:
        raise self._unsupported("list agents")

    async def spawn_agent(self, request: SpawnRequest) -> Run:
        raise self._unsupported("spawn agents")

    # runs
    async def list_runs(self, query: RunFilter) -> RunPage:
        raise self._unsupported("list runs")

    async def get_run(self, run_id: str) -> Run:
        raise self._unsupported("read runs")

    async def cancel_run(self, run_id: str) -> Run:
        raise self._unsupported("cancel runs")

    async def send_followup(self, run_id: str, message: str) -> Run:
        raise self._unsupported("send follow-ups")

    async def wait_for_run(self, run_id: str, timeout: float, progress: Progress) -> Run:
        """Return the run once it ends, or as it stands when `timeout` seconds have passed."""
        return await poll_until_done(self.get_run, run_id, timeout, progress)

    async def get_run_events(self, run_id: str, *, after_seq: int | None = None, limit: int = 100) -> RunEventPage:
        raise self._unsupported("read run events")

    # channels
    async def list_channels(self) -> ChannelList:
        raise self._unsupported("use channels")

    async def send_channel_message(self, draft: MessageDraft) -> ChannelMessage:
        raise self._unsupported("use channels")

    async def receive_channel_messages(self, channel: str, *, wait_seconds: float = 0, limit: int = 20, after: str | None = None) -> MessageBatch:
        """New messages for the caller; `after` (a message id) says what it already has, for exactly-once reading."""
        raise self._unsupported("use channels")

    async def channel_history(self, channel: str, *, limit: int = 50) -> MessageBatch:
        """The channel's latest messages, oldest first, without moving anyone's cursor."""
        raise self._unsupported("read channel history")

    # tasks
    async def create_task(self, draft: TaskDraft) -> Task:
        raise self._unsupported("create tasks")

    async def claim_task(self, *, queue: str | None = None, lease_seconds: int | None = None) -> ClaimResult:
        raise self._unsupported("claim tasks")

    async def heartbeat_task(self, run_id: str, claim_token: str | None = None) -> Lease:
        raise self._unsupported("heartbeat tasks")

    async def complete_task(self, run_id: str, claim_token: str | None = None, result: Any = None) -> Task:
        raise self._unsupported("complete tasks")

    async def fail_task(self, run_id: str, claim_token: str | None, error: str, retryable: bool = True) -> Task:
        raise self._unsupported("fail tasks")

    async def release_task(self, run_id: str, claim_token: str | None = None, reason: str | None = None) -> Task:
        raise self._unsupported("release tasks")

    # routines
    async def list_routines(self) -> RoutineList:
        raise self._unsupported("list routines")

    async def invoke_routine(self, call: RoutineCall) -> Run:
        raise self._unsupported("invoke routines")

    async def list_routine_runs(
        self, routine: str, *, status: str | None = None, limit: int = 20, cursor: str | None = None
    ) -> RunPage:
        raise self._unsupported("list routine runs")

    # session files
    async def list_session_files(self, run_id: str, path: str = "") -> SessionFileList:
        raise self._unsupported("list session files")

    async def download_session_file(self, run_id: str, path: str, max_bytes: int) -> FileContent:
        raise self._unsupported("download session files")

    async def upload_session_file(self, run_id: str, path: str, content: bytes) -> SessionFileList:
        raise self._unsupported("upload session files")

    async def delete_session_file(self, run_id: str, path: str, recursive: bool = False) -> SessionFileList:
        raise self._unsupported("delete session files")

    async def delete_session(self, run_id: str) -> Run:
        raise self._unsupported("delete sessions")

    # the dashboard: reads beyond the tools, and a person's override of a claim

    async def task_queues(self) -> dict[str, dict[str, int]]:
        """How many tasks each queue holds in each state (a backend may cap large counts, saying so in its docs)."""
        raise self._unsupported("list task queues")

    async def list_tasks(self, queue: str, *, limit: int = 50, before: int | None = None) -> list[TaskView]:
        """A queue's tasks, newest first; `before` is the `seq` of the last one seen."""
        raise self._unsupported("list tasks")

    async def search_messages(self, channel: str, text: str, *, limit: int = 50, before: str | None = None) -> list[ChannelMessage]:
        """A channel's messages containing `text` (all when empty), newest first, before message id `before`.

        Without a search of its own a backend searches the latest few hundred messages.
        """
        batch = await self.channel_history(channel, limit=500)
        found = [m for m in reversed(batch.messages) if text.lower() in m.body.lower()]
        if before is not None:
            ids = [m.id for m in found]
            found = found[ids.index(before) + 1 :] if before in ids else []
        return found[:limit]

    async def override_claim(self, task_id: str, outcome: str, reason: str) -> Task:
        """End a task's current claim on a person's word: outcome "released" (back to the queue) or "failed"."""
        raise self._unsupported("release or fail a claim it does not hold")

    # context
    async def context(self) -> dict[str, Any]:
        """Platform-side facts about the caller (identity, soul, coordinator); empty when none."""
        return {}

    async def doctor(self) -> list[Check]:
        """Checks for `agentdeck doctor`; by default one cheap read that needs working credentials.

        A backend that knows more about its platform (a store, a daemon, agent cards) overrides it.
        """
        try:
            if Capability.AGENTS in self.capabilities:
                await self.list_agents()
            elif Capability.RUNS in self.capabilities:
                await self.list_runs(RunFilter(limit=1))
            elif Capability.CHANNELS in self.capabilities:
                await self.list_channels()
            return [(True, "reachable, identity accepted", self.kind)]
        except Unauthorized as exc:
            return [(False, "identity accepted", f"{exc.message} Fix: check the key or identity this backend uses.")]
        except (Unavailable, Timeout) as exc:
            return [(False, "reachable", f"{exc.message} Fix: check the URL (base_url/endpoint/socket) and that the platform is up.")]
        except AgentdeckError as exc:
            return [(False, "reachable", f"{exc.code}: {exc.message}")]


async def poll_until_done(
    get_run: Callable[[str], Awaitable[Run]],
    run_id: str,
    timeout: float,
    progress: Progress,
    settled: Callable[[Run], bool] = lambda run: run.done,
    describe: Callable[[str, Run], str] = lambda run_id, run: f"run {run_id} is {run.state}",
) -> Run:
    """Poll `get_run` with capped backoff until the run ends (or is `settled`) or `timeout` passes;
    each poll that finds it going on is reported as progress, in the words of `describe`."""
    delay, step = 0.5, 0
    with anyio.move_on_after(timeout):
        while True:
            run = await get_run(run_id)
            step += 1
            if settled(run):
                return run
            await progress(step, describe(run_id, run))
            await anyio.sleep(delay)
            delay = min(delay * 1.5, 5.0)
    return await get_run(run_id)


def only_metadata_key(runs: str, request: SpawnRequest, key: str, purpose: str) -> str | None:
    """For a platform whose spawn takes one metadata string (`key`, for `purpose`): that value.

    Raises:
        Unsupported: the request sets name, workspace, ttl_seconds or parent_run_id; `runs` names the platform's runs.
        InvalidArgument: metadata holds another key, or `key` is not a non-empty string.
    """
    unsupported = {"name": request.name, "workspace": request.workspace, "ttl_seconds": request.ttl_seconds, "parent_run_id": request.parent_run_id}
    for arg, value in unsupported.items():
        if value is not None:
            raise Unsupported(f"{runs} have no {arg}; call spawn_agent again without it.")
    metadata = request.metadata or {}
    extra = sorted(set(metadata) - {key})
    if extra:
        raise InvalidArgument(f"On this platform, metadata may only carry {key} ({purpose}); remove {', '.join(extra)}.")
    value = metadata.get(key)
    if value is not None and (not isinstance(value, str) or not value):
        raise InvalidArgument(f"metadata.{key} must be a non-empty string from a run's thread_id.")
    return value
