"""The local backend: the embedded platform behind the Backend interface.

Runs are subprocesses watched by a supervisor process each (supervisor.py); channels, task
queues and idempotency keys live in the store (store_api.py: SQLite by default, PostgreSQL
for a `postgresql://` store URL); waits wake up across processes through wakeups.py. The
backend only sees the async Store interface and does not care which one it has.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import signal
import socket
import time
from collections.abc import Awaitable, Callable
from datetime import UTC
from pathlib import Path
from typing import Any, Unpack

import anyio
import anyio.abc

from agentdeck.backends.base import Backend, BuildEnv, Capability, Progress
from agentdeck.backends.local.channels import Channels
from agentdeck.backends.local.guard import end_run_group
from agentdeck.backends.local.launch import agent_argv, check_prompt, prompt_file, start_supervisor
from agentdeck.backends.local.limits import MAX_BODY_BYTES, MAX_PROMPT_BYTES, json_size, loads, text_size, ts
from agentdeck.backends.local.liveness import lost, pid_alive, supervised_here
from agentdeck.backends.local.notify import wake_dir
from agentdeck.backends.local.overview import Overview
from agentdeck.backends.local.store import Store, describe_store, is_postgres, new_id, open_store, sqlite_path
from agentdeck.backends.local.tasks import Tasks
from agentdeck.backends.local.wakeups import SocketWakeups, Wakeups
from agentdeck.backends.local.watch import Change, Watcher
from agentdeck.backends.local.worktree_runs import WorktreeRuns
from agentdeck.backends.requests import RoutineCall, RunFilter, SpawnRequest
from agentdeck.config import AgentConfig, LocalConfig
from agentdeck.errors import AgentdeckError, Conflict, InvalidArgument, NotFound, Unauthorized
from agentdeck.identity import Caller, current
from agentdeck.models import (
    Agent,
    AgentList,
    Routine,
    RoutineList,
    Run,
    RunError,
    RunEvent,
    RunEventPage,
    RunPage,
)

__all__ = ["LocalBackend"]

log = logging.getLogger("agentdeck.local")

SUPERVISOR_LOG = "supervisor.log"
"""Where run supervisors write their own log lines, in the data folder."""

_MAX_WORKSPACE_BYTES = 1024


def _cursor(seq: int) -> str:
    return base64.urlsafe_b64encode(f"seq:{seq}".encode()).decode().rstrip("=")


def _uncursor(cursor: str) -> int:
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        kind, _, value = text.partition(":")
        if kind == "seq":
            return int(value)
    except (ValueError, UnicodeDecodeError):
        pass
    raise InvalidArgument("cursor is not one this server gave out; pass next_cursor from the previous page, or omit it")


class LocalBackend(Overview, Channels, Tasks, WorktreeRuns, Backend):
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

    run_credentials: Callable[[str, float], dict[str, str]] | None = None
    """(run id, seconds) -> environment that lets the run's agent connect to this server as itself; set when serving HTTP."""

    def __init__(self, name: str, config: LocalConfig, **env: Unpack[BuildEnv]) -> None:
        super().__init__(name)
        owner, data_dir, config_path = env["owner"], env["data_dir"], env.get("config_path")
        self.config = config
        self.owner = owner
        self.data_dir = data_dir
        self._config_path = config_path
        self.workspace_root = (config.workspace_root or data_dir / "workspaces").expanduser().resolve()
        self.store: Store = open_store(config.store, data_dir)
        self.wakeups: Wakeups = self._wakeups_for(self.store)
        self._host = socket.gethostname()
        if any(a.isolation == "worktree" for a in config.agents.values()):
            self.capabilities = self.capabilities | {Capability.FILES}  # a worktree run's change, read as session files

    @property
    def caller(self) -> Caller:
        """Who the request being served comes from (identity.py); the process's own outside a request."""
        return current(self.owner)

    @property
    def identity(self) -> str:  # type: ignore[override]
        return self.caller.identity

    @property
    def _heartbeat_seconds(self) -> float:
        """How often supervisors heartbeat: often enough that a cancel lands within about a second."""
        return min(1.0, self.config.supervisor_timeout_seconds / 5)

    def _wakeups_for(self, store: Store) -> Wakeups:
        if store.kind == "postgresql":
            from agentdeck.backends.local.postgres_wakeups import PostgresWakeups

            return PostgresWakeups(store)  # type: ignore[arg-type]
        return SocketWakeups(wake_dir(self.data_dir))

    async def start(self, task_group: anyio.abc.TaskGroup) -> None:
        try:
            await self.store.open()
        except AgentdeckError as exc:
            # Serve anyway: each call answers `unavailable` until the store is back, which a
            # client can show, where a server that exits at start only shows "disconnected".
            log.warning("the store is not reachable yet: %s", exc.message)
        self.wakeups.open()
        if Capability.FILES in self.capabilities:
            task_group.start_soon(self._sweep_worktrees)  # worktree isolation: reap what dead supervisors left

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

    # agents and runs --------------------------------------------------------------------

    async def list_agents(self) -> AgentList:
        return AgentList(agents=[Agent(name=n, backend=self.name, description=a.description) for n, a in self.config.agents.items()])

    async def spawn_agent(self, request: SpawnRequest) -> Run:
        agent, prompt, name, workspace = request.agent, request.prompt, request.name, request.workspace
        ttl_seconds, metadata, parent_run_id, idempotency_key = request.ttl_seconds, request.metadata, request.parent_run_id, request.idempotency_key
        return await self._start_run(
            agent,
            prompt,
            name=name,
            workspace=workspace,
            ttl_seconds=ttl_seconds,
            metadata=metadata,
            parent_run_id=parent_run_id or self.caller.run_id,
            scope=f"spawn:{self.identity}",
            key=idempotency_key,
        )

    async def _start_run(self, agent: str, prompt: str, *, scope: str, key: str | None, parent_run_id: str | None = None, **fields: Any) -> Run:
        spec = self.config.agents.get(agent)
        if spec is None:
            names = ", ".join(sorted(self.config.agents)) or "none"
            raise NotFound(f"No agent '{agent}' on backend '{self.name}'. Configured agents: {names}. Call list_agents.")
        text_size(prompt, "prompt", MAX_PROMPT_BYTES)
        json_size(fields.get("metadata"), "metadata", 16 * 1024)
        depth = 0
        if parent_run_id:
            self._may_spend_budget_of(parent_run_id)
            parent = await self.store.get_run(parent_run_id)
            if parent is None:
                raise NotFound(f"No parent run '{parent_run_id}'; pass a run id from list_runs, or omit parent_run_id.")
            depth = parent["depth"] + 1
            if depth > self.config.max_depth:
                raise Conflict(f"Spawn budget: runs may nest at most {self.config.max_depth} deep; finish this work without spawning.")
            if await self.store.count_children(parent_run_id) >= self.config.max_children:
                raise Conflict(f"Spawn budget: run {parent_run_id} already has {self.config.max_children} children; wait for them instead.")
        workspace = fields.pop("workspace", None)
        ttl = fields.pop("ttl_seconds", None) or spec.ttl_seconds
        run_id = new_id("run")
        tree = await self._plan_worktree(spec, workspace, fields, run_id)  # worktree isolation (worktree_runs.py)
        cwd = Path(tree["path"]) if tree else self._workspace(workspace)
        argv = agent_argv(spec.command, prompt=prompt, run_id=run_id, workspace=cwd, data_dir=self.data_dir)
        check_prompt(prompt, argv, agent)
        if not tree:
            self._make_workspace(cwd)
        row = {
            "id": run_id,
            "agent": agent,
            "prompt": prompt,
            "name": fields.get("name"),
            "created_at": time.time(),
            "parent_run_id": parent_run_id,
            "depth": depth,
            "thread_id": fields.get("thread_id") or run_id,
            "followup_of": fields.get("followup_of"),
            "routine": fields.get("routine"),
            "created_by": self.identity,
            "workspace": str(cwd),
            "ttl_seconds": ttl,
            "metadata": fields.get("metadata"),
        }
        stored, created = await self.store.create_run(row, scope, key)
        if created:
            if tree:
                await self.store.set_worktree(run_id, tree)
                stored["worktree"] = json.dumps(tree)
            self._launch(stored, argv, spec, cwd, ttl, worktree=tree)
            await self.wakeups.publish("runs")
        return self._run(stored)

    def _may_spend_budget_of(self, parent_run_id: str) -> None:
        caller = self.caller
        if not caller.operator and caller.run_id != parent_run_id:
            raise Unauthorized(
                f"Only run {parent_run_id} itself (or the server's operator) may spend its spawn budget, and you are '{caller.identity}'. "
                "Start a run of your own without parent_run_id; a follow-up counts against the parent of the run it follows."
            )

    def _workspace(self, workspace: str | None) -> Path:
        root = self.workspace_root
        if workspace and ("\0" in workspace or len(workspace.encode()) > _MAX_WORKSPACE_BYTES or any(len(p.encode()) > 255 for p in workspace.split("/"))):
            raise InvalidArgument(
                f"workspace must be a relative path of at most {_MAX_WORKSPACE_BYTES} bytes, each name at most 255 bytes, without NUL; pick a shorter name"
            )
        target = (root / workspace).resolve() if workspace else root
        if target != root and root not in target.parents:
            raise InvalidArgument(f"workspace must stay inside {root}; pass a relative path without '..' or links out of it")
        return target

    @staticmethod
    def _make_workspace(target: Path) -> None:
        try:
            target.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise InvalidArgument(f"workspace {str(target)!r} cannot be created ({exc.strerror or exc}); pick another relative path") from None

    def _launch(self, run: dict[str, Any], argv: list[str], agent: AgentConfig, cwd: Path, ttl: int, worktree: dict[str, Any] | None = None) -> None:
        env = {k: os.environ[k] for k in agent.inherit_env if k in os.environ}
        env.update(agent.env)
        env.update(
            AGENTDECK_RUN_ID=run["id"],
            AGENTDECK_IDENTITY=run["id"],
            AGENTDECK_DATA_DIR=str(self.data_dir),
            PYTHONUNBUFFERED="1",
        )
        if self.run_credentials is not None:
            env.update(self.run_credentials(run["id"], ttl + self.config.cancel_grace_seconds + 60))
        if self._config_path:
            env["AGENTDECK_CONFIG"] = self._config_path
        if self.config.store:
            env["AGENTDECK_STORE"] = self.config.store  # the agent's own agentdeck shares this store
        spec = {
            "store": self.config.store if is_postgres(self.config.store) else None,
            "db": "" if is_postgres(self.config.store) else str(sqlite_path(self.config.store, self.data_dir)),
            "data_dir": str(self.data_dir),
            "run_id": run["id"],
            "argv": argv,
            "stdin": run["prompt"] if agent.prompt_stdin else None,
            "prompt_file": str(prompt_file(self.data_dir, run["id"])) if any("{prompt_file}" in p for p in agent.command) else None,
            "prompt": run["prompt"],
            "cwd": str(cwd),
            "env": env,
            "ttl_seconds": ttl,
            "grace_seconds": self.config.cancel_grace_seconds,
            "heartbeat_seconds": self._heartbeat_seconds,
            "max_output_bytes": self.config.max_output_bytes,
            "worktree": worktree,
        }
        start_supervisor(spec, self.data_dir / SUPERVISOR_LOG)

    async def _get(self, run_id: str) -> dict[str, Any]:
        row = await self.store.get_run(run_id)
        if row is None:
            if run_id.startswith("trun_"):
                raise NotFound(
                    f"'{run_id}' is a task claim from claim_task, not a run: pass it as run_id, with its claim_token,"
                    " to heartbeat_task, complete_task, fail_task or release_task."
                )
            raise NotFound(f"No run '{run_id}' on backend '{self.name}'; list_runs shows the runs that exist.")
        return await self._reap(row)

    async def _reap(self, row: dict[str, Any]) -> dict[str, Any]:
        """A run whose supervisor is gone will never finish by itself: record how it ended.

        A cancelled one ends cancelled, the others failed; on the supervisor's machine, what
        is left of the run's processes is killed first.
        """
        found = lost(row, time.time(), self._host, self.config.supervisor_timeout_seconds)
        if found is None:
            return row
        code, message = found
        if supervised_here(row, self._host):
            end_run_group(row["child_pid"], row["id"])
            prompt_file(self.data_dir, row["id"]).unlink(missing_ok=True)
        if row["cancel_requested"]:
            state, message = "cancelled", f"cancelled, but its process could not be reached: {message}"
        else:
            state = "failed"
        if await self.store.finish_run(row["id"], state, time.time(), error_code=code, error_message=message):
            await self._reap_worktree(row, state)  # worktree isolation: record the change, remove the folder
            await self.wakeups.publish(f"run:{row['id']}", "runs")
        return await self.store.get_run(row["id"]) or row

    def _run(self, row: dict[str, Any]) -> Run:
        error = RunError(code=row["error_code"], message=row["error_message"] or "") if row["error_code"] else None
        return Run(
            id=row["id"],
            backend=self.name,
            agent=row["agent"],
            state=row["state"],
            platform_state=row["state"],
            name=row["name"],
            created_at=ts(row["created_at"]),
            started_at=ts(row["started_at"]),
            ended_at=ts(row["ended_at"]),
            parent_run_id=row["parent_run_id"],
            thread_id=row["thread_id"],
            followup_of=row["followup_of"],
            routine=row["routine"],
            created_by=row["created_by"],
            exit_code=row["exit_code"],
            error=error,
            latest_seq=row["last_seq"],
            metadata=loads(row["metadata"]) or {},
            artifacts=self._worktree_artifacts(row),
        )

    async def get_run(self, run_id: str) -> Run:
        return self._run(await self._get(run_id))

    async def list_runs(self, query: RunFilter, routine: str | None = None) -> RunPage:
        state, agent, parent_run_id, created_after, limit, cursor = query.state, query.agent, query.parent_run_id, query.created_after, query.limit, query.cursor
        filters: dict[str, Any] = {"state": state, "agent": agent, "parent_run_id": parent_run_id, "routine": routine}
        if created_after is not None:
            moment = created_after if created_after.tzinfo else created_after.replace(tzinfo=UTC)
            # Times travel as ISO strings with microseconds; a run created within that same
            # microsecond is not "after" it, whatever the stored float's extra digits say.
            filters["created_after"] = moment.timestamp() + 0.0000005
        before = _uncursor(cursor) if cursor else None
        rows = await self.store.list_runs(filters, limit + 1, before)
        page = [await self._reap(r) for r in rows[:limit]]
        next_cursor = _cursor(rows[limit - 1]["seq"]) if len(rows) > limit else None
        return RunPage(runs=[self._run(r) for r in page], next_cursor=next_cursor)

    async def cancel_run(self, run_id: str) -> Run:
        row = await self.store.get_run(run_id)
        if row is None:
            raise NotFound(f"No run '{run_id}' on backend '{self.name}'; list_runs shows the runs that exist.")
        if row["state"] in ("succeeded", "failed", "cancelled"):
            raise Conflict(f"Run {run_id} already ended ({row['state']}); there is nothing to cancel.")
        await self.store.request_cancel(run_id)
        row = await self._reap({**row, "cancel_requested": 1})  # with its supervisor gone, it ends cancelled here
        if row["state"] not in ("queued", "running"):
            return self._run(row)
        here = supervised_here(row, self._host)
        if row["supervisor_pid"] and here and pid_alive(row["supervisor_pid"]):
            try:
                os.kill(row["supervisor_pid"], signal.SIGTERM)
            except ProcessLookupError:
                pass
        elif not row["supervisor_pid"] and await self.store.finish_run(run_id, "cancelled", time.time()):
            await self.wakeups.publish(f"run:{run_id}", "runs")
        # Elsewhere the supervisor hears of the cancel at its next heartbeat; if it is gone, the
        # reaper ends the run as cancelled once its heartbeats are overdue.
        timeout = self.config.cancel_grace_seconds + 5.0
        if not here:
            timeout = max(timeout, self.config.supervisor_timeout_seconds + 2.0)
        return await self._wait(run_id, min(timeout, self.max_wait_seconds), None)

    async def send_followup(self, run_id: str, message: str) -> Run:
        row = await self._get(run_id)
        return await self._start_run(
            row["agent"],
            message,
            parent_run_id=row["parent_run_id"],
            thread_id=row["thread_id"],
            followup_of=run_id,
            **self._followup_place(row),
            scope=f"followup:{self.identity}",
            key=None,
        )

    async def wait_for_run(self, run_id: str, timeout: float, progress: Progress) -> Run:
        return await self._wait(run_id, timeout, progress)

    async def _wait(self, run_id: str, timeout: float, progress: Progress | None) -> Run:
        deadline = time.monotonic() + timeout
        topic, reported, step = f"run:{run_id}", None, 0
        while True:
            event = self.wakeups.register(topic)
            try:
                run = self._run(await self._get(run_id))
                self.wakeups.open()  # a no-op once listening; starts it if the store was down at start
                remaining = deadline - time.monotonic()
                if run.done or remaining <= 0:
                    return run
                if progress is not None and (run.state, run.latest_seq) != reported:
                    reported, step = (run.state, run.latest_seq), step + 1
                    await progress(step, f"run {run_id} is {run.state}; {run.latest_seq or 0} output lines so far")
                # A supervisor that dies sends no wake-up: look again after a heartbeat or so.
                await self.wakeups.wait(event, min(remaining, self._heartbeat_seconds * 2))
            finally:
                self.wakeups.unregister(topic, event)

    async def get_run_events(self, run_id: str, *, after_seq: int | None = None, limit: int = 100) -> RunEventPage:
        row = await self._get(run_id)
        rows = await self.store.run_events(run_id, after_seq or 0, limit)
        events = [RunEvent(seq=r["seq"], at=ts(r["at"]), kind=r["kind"], text=r["text"]) for r in rows]  # type: ignore[arg-type]
        last = events[-1].seq if events else (after_seq or 0)
        more = last < row["last_seq"] or row["state"] not in ("succeeded", "failed", "cancelled")
        return RunEventPage(run_id=run_id, backend=self.name, events=events, next_after_seq=last if more else None, run_state=row["state"])

    # routines ---------------------------------------------------------------------------

    async def list_routines(self) -> RoutineList:
        return RoutineList(
            routines=[Routine(name=n, backend=self.name, agent=r.agent, description=r.description) for n, r in self.config.routines.items()]
        )

    def _routine(self, routine: str) -> Any:
        spec = self.config.routines.get(routine)
        if spec is None:
            names = ", ".join(sorted(self.config.routines)) or "none"
            raise NotFound(f"No routine '{routine}' on backend '{self.name}'. Defined routines: {names}. Call list_routines.")
        return spec

    async def invoke_routine(self, call: RoutineCall) -> Run:
        routine, message, idempotency_key, session_key, metadata = call.routine, call.message, call.idempotency_key, call.session_key, call.metadata
        spec = self._routine(routine)
        return await self._start_run(
            spec.agent,
            spec.prompt.replace("{message}", message or ""),
            routine=routine,
            metadata=metadata,
            thread_id=f"{routine}:{session_key}" if session_key else None,
            parent_run_id=self.caller.run_id,
            scope=f"routine:{routine}",
            key=idempotency_key,
        )

    async def list_routine_runs(self, routine: str, *, status: str | None = None, limit: int = 20, cursor: str | None = None) -> RunPage:
        self._routine(routine)
        return await self.list_runs(RunFilter(state=status, limit=limit, cursor=cursor), routine=routine)

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
