"""The local backend: the embedded platform behind the Backend interface, a facade over its parts.

Runs are subprocesses watched by a supervisor process each (runs.py, supervisor.py); channels,
task queues and idempotency keys live in the store (the store package: SQLite by default, PostgreSQL
for a `postgresql://` store URL); waits wake up across processes through wakeups.py. Each part
is built here from the store, the wake-ups and who is calling (identity.py); this class only
hands each Backend method to its part. The parts see the async Store interface and do not care
which one it is.
"""

from __future__ import annotations

import functools
import logging
import socket
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, Unpack

import anyio
import anyio.abc

from agentdeck.backends.base import Backend, BuildEnv, Capability, Progress, TaskView
from agentdeck.backends.local.channels import Channels
from agentdeck.backends.local.limits import MAX_BODY_BYTES
from agentdeck.backends.local.notify import wake_dir
from agentdeck.backends.local.overview import Overview
from agentdeck.backends.local.routines import Routines
from agentdeck.backends.local.runs import SUPERVISOR_LOG, Credentials, Runs
from agentdeck.backends.local.session_files import SessionFiles
from agentdeck.backends.local.store import Store, describe_store, open_store
from agentdeck.backends.local.tasks import Tasks
from agentdeck.backends.local.wakeups import SocketWakeups, Wakeups
from agentdeck.backends.local.watch import Change, Watcher
from agentdeck.backends.local.worktree_runs import WorktreeRuns
from agentdeck.backends.requests import MessageDraft, RoutineCall, RunFilter, SpawnRequest, TaskDraft
from agentdeck.config import LocalConfig
from agentdeck.errors import AgentdeckError
from agentdeck.identity import Caller, current
from agentdeck.models import (
    Agent,
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

__all__ = ["SUPERVISOR_LOG", "LocalBackend"]

log = logging.getLogger("agentdeck.local")


def _wakeups_for(store: Store, data_dir: Path) -> Wakeups:
    if store.kind == "postgresql":
        from agentdeck.backends.local.postgres_wakeups import PostgresWakeups

        return PostgresWakeups(store)  # type: ignore[arg-type]  # a store of kind "postgresql" is a PostgresStore
    return SocketWakeups(wake_dir(data_dir))


class LocalBackend(Backend):
    kind = "local"
    capabilities = frozenset(
        {
            Capability.AGENTS,
            Capability.RUNS,
            Capability.RUN_CANCEL,
            Capability.RUN_FOLLOWUP,
            Capability.RUN_EVENTS,
            Capability.CHANNELS,
            Capability.TASKS,
            Capability.TASK_CREATE,
            Capability.ROUTINES,
            Capability.CONTEXT,
        }
    )

    def __init__(self, name: str, config: LocalConfig, **env: Unpack[BuildEnv]) -> None:
        super().__init__(name)
        owner, data_dir, config_path = env["owner"], env["data_dir"], env.get("config_path")
        self.config = config
        self.owner = owner
        self.data_dir = data_dir
        self.workspace_root = (config.workspace_root or data_dir / "workspaces").expanduser().resolve()
        self.store: Store = open_store(config.store, data_dir)
        self.wakeups: Wakeups = _wakeups_for(self.store, data_dir)
        caller = functools.partial(current, owner)
        host = socket.gethostname()
        worktrees = WorktreeRuns(self.store, data_dir, self.workspace_root, host)
        self.runs = Runs(
            name, self.store, self.wakeups, caller, config=config, data_dir=data_dir, workspace_root=self.workspace_root, worktrees=worktrees, host=host, config_path=config_path
        )
        self.routines = Routines(name, config.routines, self.runs, caller)
        self.channels = Channels(name, self.store, self.wakeups, caller)
        self.tasks = Tasks(name, self.store, self.wakeups, caller, config.lease_seconds)
        self.overview = Overview(name, self.store, self.wakeups, caller)
        self.files = SessionFiles(name, host, self.runs.row)
        if any(a.isolation == "worktree" for a in config.agents.values()):
            self.capabilities = self.capabilities | {Capability.FILES}  # a worktree run's change, read as session files

    @property
    def run_credentials(self) -> Credentials | None:
        """(run id, seconds) -> environment that lets the run's agent connect to this server as itself; set when serving HTTP."""
        return self.runs.credentials

    @run_credentials.setter
    def run_credentials(self, credentials: Credentials | None) -> None:
        self.runs.credentials = credentials

    @property
    def caller(self) -> Caller:
        """Who the request being served comes from (identity.py); the process's own outside a request."""
        return current(self.owner)

    @property
    def identity(self) -> str:
        return self.caller.identity

    async def start(self, task_group: anyio.abc.TaskGroup) -> None:
        try:
            await self.store.open()
        except AgentdeckError as exc:
            # Serve anyway: each call answers `unavailable` until the store is back, which a
            # client can show, where a server that exits at start only shows "disconnected".
            log.warning("the store is not reachable yet: %s", exc.message)
        self.wakeups.open()
        if Capability.FILES in self.capabilities:
            task_group.start_soon(self.runs.sweep_worktrees)  # worktree isolation: reap what dead supervisors left

    async def aclose(self) -> None:
        self.wakeups.close()
        await self.store.close()

    def watcher(self, publish: Callable[[Change], Awaitable[None]]) -> Watcher:
        return Watcher(self.store, self.wakeups, publish)

    async def doctor(self) -> list[tuple[bool, str, str]]:
        """Reach the store and report its schema version."""
        try:
            version = await self.store.schema_version()
        except AgentdeckError as exc:
            return [(False, "store", f"{describe_store(self.config.store)}: {exc.message}")]
        return [(True, "store", f"{describe_store(self.config.store)}, schema version {version}")]

    async def context(self) -> dict[str, Any]:
        return {
            "data_dir": str(self.data_dir),
            "agents": sorted(self.config.agents),
            "routines": sorted(self.config.routines),
            "limits": {
                "max_children": self.config.max_children,
                "max_depth": self.config.max_depth,
                "lease_seconds": self.config.lease_seconds,
                "max_output_bytes": self.config.max_output_bytes,
                "max_message_bytes": MAX_BODY_BYTES,
            },
        }

    # agents and runs (runs.py) --------------------------------------------------------------

    async def list_agents(self) -> AgentList:
        return AgentList(agents=[Agent(name=n, backend=self.name, description=a.description) for n, a in self.config.agents.items()])

    async def spawn_agent(self, request: SpawnRequest) -> Run:
        parent, scope = request.parent_run_id or self.caller.run_id, f"spawn:{self.identity}"
        return await self.runs.start(
            request.agent,
            request.prompt,
            name=request.name,
            workspace=request.workspace,
            ttl_seconds=request.ttl_seconds,
            metadata=request.metadata,
            parent_run_id=parent,
            scope=scope,
            key=request.idempotency_key,
        )

    async def get_run(self, run_id: str) -> Run:
        return await self.runs.run(run_id)

    async def list_runs(self, query: RunFilter) -> RunPage:
        filters = {"state": query.state, "agent": query.agent, "parent_run_id": query.parent_run_id, "routine": None}
        return await self.runs.page(filters, query.created_after, query.limit, query.cursor)

    async def cancel_run(self, run_id: str) -> Run:
        return await self.runs.cancel(run_id, self.max_wait_seconds)

    async def send_followup(self, run_id: str, message: str) -> Run:
        return await self.runs.followup(run_id, message)

    async def wait_for_run(self, run_id: str, timeout: float, progress: Progress) -> Run:
        return await self.runs.wait(run_id, timeout, progress)

    async def get_run_events(self, run_id: str, *, after_seq: int | None = None, limit: int = 100) -> RunEventPage:
        return await self.runs.events(run_id, after_seq, limit)

    # routines (routines.py) -----------------------------------------------------------------

    async def list_routines(self) -> RoutineList:
        return self.routines.list_routines()

    async def invoke_routine(self, call: RoutineCall) -> Run:
        return await self.routines.invoke(call.routine, call.message, call.idempotency_key, call.session_key, call.metadata)

    async def list_routine_runs(self, routine: str, *, status: str | None = None, limit: int = 20, cursor: str | None = None) -> RunPage:
        return await self.routines.page(routine, status, limit, cursor)

    # channels (channels.py) -----------------------------------------------------------------

    async def list_channels(self) -> ChannelList:
        return await self.channels.list_channels()

    async def send_channel_message(self, draft: MessageDraft) -> ChannelMessage:
        return await self.channels.send(draft.channel, draft.body, draft.kind, draft.correlation_id, draft.reply_to, draft.idempotency_key)

    async def receive_channel_messages(self, channel: str, *, wait_seconds: float = 0, limit: int = 20, after: str | None = None) -> MessageBatch:
        return await self.channels.receive(channel, wait_seconds=wait_seconds, limit=limit, after=after)

    async def channel_history(self, channel: str, *, limit: int = 50) -> MessageBatch:
        return await self.channels.history(channel, limit=limit)

    # tasks (tasks.py) -----------------------------------------------------------------------

    async def create_task(self, draft: TaskDraft) -> Task:
        return await self.tasks.create(draft.title, draft.payload, draft.queue, draft.priority, draft.max_attempts, draft.idempotency_key)

    async def claim_task(self, *, queue: str | None = None, lease_seconds: int | None = None) -> ClaimResult:
        return await self.tasks.claim(queue, lease_seconds)

    async def heartbeat_task(self, run_id: str, claim_token: str | None = None, lease_seconds: int | None = None) -> Lease:
        return await self.tasks.heartbeat(run_id, claim_token, lease_seconds)

    async def complete_task(self, run_id: str, claim_token: str | None = None, result: Any = None) -> Task:
        return await self.tasks.complete(run_id, claim_token, result)

    async def fail_task(self, run_id: str, claim_token: str | None, error: str, retryable: bool = True) -> Task:
        return await self.tasks.fail(run_id, claim_token, error, retryable)

    async def release_task(self, run_id: str, claim_token: str | None = None, reason: str | None = None) -> Task:
        return await self.tasks.release(run_id, claim_token, reason)

    # the dashboard (overview.py) ------------------------------------------------------------

    async def task_queues(self) -> dict[str, dict[str, int]]:
        return await self.overview.task_queues()

    async def list_tasks(self, queue: str, *, limit: int = 50, before: int | None = None) -> list[TaskView]:
        return await self.overview.list_tasks(queue, limit=limit, before=before)

    async def search_messages(self, channel: str, text: str, *, limit: int = 50, before: str | None = None) -> list[ChannelMessage]:
        return await self.overview.search_messages(channel, text, limit=limit, before=before)

    async def override_claim(self, task_id: str, outcome: str, reason: str) -> Task:
        return await self.overview.override_claim(task_id, outcome, reason)

    # session files of worktree runs (session_files.py) --------------------------------------

    async def list_session_files(self, run_id: str, path: str = "") -> SessionFileList:
        return await self.files.list_files(run_id, path)

    async def download_session_file(self, run_id: str, path: str, max_bytes: int) -> FileContent:
        return await self.files.download(run_id, path, max_bytes)
