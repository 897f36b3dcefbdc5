"""The local platform's runs: started as a supervised subprocess each, read back reaped, waited for.

A run is recorded in the store, then handed to a supervisor process of its own (supervisor.py,
through launch.py), which records its output and how it ended. Whoever reads a run reaps it
first (liveness.py): a run whose supervisor is gone is recorded as ended there and then, on any
machine, so no run stays "running" forever.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from agentdeck.backends.base import Progress
from agentdeck.backends.local.guard import end_run_group
from agentdeck.backends.local.launch import agent_argv, check_prompt, make_workspace, prompt_file, start_supervisor, workspace_folder
from agentdeck.backends.local.limits import MAX_PROMPT_BYTES, json_size, text_size
from agentdeck.backends.local.liveness import lost, pid_alive, supervised_here
from agentdeck.backends.local.part import Part
from agentdeck.backends.local.rows import ended, event_from_row, run_from_row
from agentdeck.backends.local.store import Row, is_postgres, new_id, sqlite_path
from agentdeck.backends.local.supervisor_spec import SupervisorSpec
from agentdeck.backends.local.worktree_runs import WorktreeRuns
from agentdeck.config import AgentConfig, LocalConfig
from agentdeck.errors import AgentdeckError, Conflict, InvalidArgument, NotFound, Unauthorized
from agentdeck.models import Run, RunEventPage, RunPage

__all__ = ["SUPERVISOR_LOG", "Runs"]

log = logging.getLogger("agentdeck.local")

SUPERVISOR_LOG = "supervisor.log"
"""Where run supervisors write their own log lines, in the data folder."""

Credentials = Callable[[str, float], dict[str, str]]
"""(run id, seconds) -> environment that lets the run's agent connect to this server as itself."""


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


@dataclass(eq=False, repr=False)
class Runs(Part):
    """The runs of backend `name`, kept in `store` and supervised on this machine (`host`).

    `worktrees` plans and reaps isolated runs' worktrees; `config_path` is handed to agents so
    their own agentdeck reads the same configuration.
    """

    config: LocalConfig
    data_dir: Path
    workspace_root: Path
    worktrees: WorktreeRuns
    host: str
    config_path: str | None
    credentials: Credentials | None = None
    """Set when serving HTTP: runs started from then on can connect back as themselves."""

    @property
    def heartbeat_seconds(self) -> float:
        """How often supervisors heartbeat: often enough that a cancel lands within about a second."""
        return min(1.0, self.config.supervisor_timeout_seconds / 5)

    # starting -----------------------------------------------------------------------------

    async def start(self, agent: str, prompt: str, *, scope: str, key: str | None, parent_run_id: str | None = None, **fields: Any) -> Run:
        """Record a run of `agent` and start its supervisor; the run that `key` already made in `scope`, if any.

        `fields`: name, workspace, ttl_seconds, metadata, thread_id, followup_of, routine, base_ref.
        """
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
        tree = await self.worktrees.plan(spec, workspace, fields, run_id)  # worktree isolation
        cwd = Path(tree["path"]) if tree else workspace_folder(self.workspace_root, workspace)
        argv = agent_argv(spec.command, prompt=prompt, run_id=run_id, workspace=cwd, data_dir=self.data_dir)
        check_prompt(prompt, argv, agent)
        if not tree:
            make_workspace(cwd)
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
            "created_by": self.caller().identity,
            "workspace": str(cwd),
            "ttl_seconds": ttl,
            "metadata": fields.get("metadata"),
        }
        stored, created = await self.store.create_run(row, scope, key)
        if created:
            if tree:
                await self.store.set_worktree(run_id, tree)
                stored["worktree"] = json.dumps(tree)
            start_supervisor(self._supervisor_spec(stored, argv, spec, cwd, ttl, tree), self.data_dir / SUPERVISOR_LOG)
            await self.wakeups.publish("runs")
        return run_from_row(stored, self.name)

    def _may_spend_budget_of(self, parent_run_id: str) -> None:
        caller = self.caller()
        if not caller.operator and caller.run_id != parent_run_id:
            raise Unauthorized(
                f"Only run {parent_run_id} itself (or the server's operator) may spend its spawn budget, and you are '{caller.identity}'. "
                "Start a run of your own without parent_run_id; a follow-up counts against the parent of the run it follows."
            )

    def _supervisor_spec(self, run: Row, argv: list[str], agent: AgentConfig, cwd: Path, ttl: int, worktree: dict[str, Any] | None) -> SupervisorSpec:
        env = {k: os.environ[k] for k in agent.inherit_env if k in os.environ}
        env.update(agent.env)
        env.update(
            AGENTDECK_RUN_ID=run["id"],
            AGENTDECK_IDENTITY=run["id"],
            AGENTDECK_DATA_DIR=str(self.data_dir),
            PYTHONUNBUFFERED="1",
        )
        if self.credentials is not None:
            env.update(self.credentials(run["id"], ttl + self.config.cancel_grace_seconds + 60))
        if self.config_path:
            env["AGENTDECK_CONFIG"] = self.config_path
        store = self.config.store
        if store:
            env["AGENTDECK_STORE"] = store  # the agent's own agentdeck shares this store
        return SupervisorSpec(
            run_id=run["id"],
            argv=argv,
            cwd=str(cwd),
            env=env,
            prompt=run["prompt"],
            stdin=run["prompt"] if agent.prompt_stdin else None,
            prompt_file=str(prompt_file(self.data_dir, run["id"])) if any("{prompt_file}" in p for p in agent.command) else None,
            ttl_seconds=ttl,
            grace_seconds=self.config.cancel_grace_seconds,
            heartbeat_seconds=self.heartbeat_seconds,
            max_output_bytes=self.config.max_output_bytes,
            data_dir=str(self.data_dir),
            db="" if is_postgres(store) else str(sqlite_path(store, self.data_dir)),
            store=store if is_postgres(store) else None,
            worktree=worktree,
        )

    async def followup(self, run_id: str, message: str) -> Run:
        """A new run in `run_id`'s thread, with the same agent and parent, where that run worked."""
        row = await self.row(run_id)
        return await self.start(
            row["agent"],
            message,
            parent_run_id=row["parent_run_id"],
            thread_id=row["thread_id"],
            followup_of=run_id,
            **self.worktrees.followup_place(row),
            scope=f"followup:{self.caller().identity}",
            key=None,
        )

    # reading ------------------------------------------------------------------------------

    async def row(self, run_id: str) -> Row:
        """The run's row, reaped.

        Raises:
            NotFound: no such run (with a hint when the id is a task claim's).
        """
        row = await self.store.get_run(run_id)
        if row is None:
            if run_id.startswith("trun_"):
                raise NotFound(
                    f"'{run_id}' is a task claim from claim_task, not a run: pass it as run_id, with its claim_token,"
                    " to heartbeat_task, complete_task, fail_task or release_task."
                )
            raise NotFound(f"No run '{run_id}' on backend '{self.name}'; list_runs shows the runs that exist.")
        return await self.reap(row)

    async def reap(self, row: Row) -> Row:
        """A run whose supervisor is gone will never finish by itself: record how it ended.

        A cancelled one ends cancelled, the others failed; on the supervisor's machine, what
        is left of the run's processes is killed first.
        """
        found = lost(row, time.time(), self.host, self.config.supervisor_timeout_seconds)
        if found is None:
            return row
        code, message = found
        if supervised_here(row, self.host):
            end_run_group(row["child_pid"], row["id"])
            prompt_file(self.data_dir, row["id"]).unlink(missing_ok=True)
        if row["cancel_requested"]:
            state, message = "cancelled", f"cancelled, but its process could not be reached: {message}"
        else:
            state = "failed"
        if await self.store.finish_run(row["id"], state, time.time(), error_code=code, error_message=message):
            await self.worktrees.reap(row, state)  # worktree isolation: record the change, remove the folder
            await self.wakeups.publish(f"run:{row['id']}", "runs")
        return await self.store.get_run(row["id"]) or row

    async def run(self, run_id: str) -> Run:
        return run_from_row(await self.row(run_id), self.name)

    async def page(self, filters: dict[str, Any], created_after: datetime | None, limit: int, cursor: str | None) -> RunPage:
        """Runs matching `filters` (state, agent, parent_run_id, routine), newest first, `limit` a page."""
        filters = dict(filters)
        if created_after is not None:
            moment = created_after if created_after.tzinfo else created_after.replace(tzinfo=UTC)
            # Times travel as ISO strings with microseconds; a run created within that same
            # microsecond is not "after" it, whatever the stored float's extra digits say.
            filters["created_after"] = moment.timestamp() + 0.0000005
        before = _uncursor(cursor) if cursor else None
        rows = await self.store.list_runs(filters, limit + 1, before)
        page = [await self.reap(r) for r in rows[:limit]]
        next_cursor = _cursor(rows[limit - 1]["seq"]) if len(rows) > limit else None
        return RunPage(runs=[run_from_row(r, self.name) for r in page], next_cursor=next_cursor)

    async def events(self, run_id: str, after_seq: int | None, limit: int) -> RunEventPage:
        row = await self.row(run_id)
        rows = await self.store.run_events(run_id, after_seq or 0, limit)
        events = [event_from_row(r) for r in rows]
        last = events[-1].seq if events else (after_seq or 0)
        more = last < row["last_seq"] or not ended(row)
        return RunEventPage(run_id=run_id, backend=self.name, events=events, next_after_seq=last if more else None, run_state=row["state"])

    # ending -------------------------------------------------------------------------------

    async def cancel(self, run_id: str, max_wait_seconds: float) -> Run:
        """Ask the run to stop and wait (up to `max_wait_seconds`) for it to end."""
        row = await self.store.get_run(run_id)
        if row is None:
            raise NotFound(f"No run '{run_id}' on backend '{self.name}'; list_runs shows the runs that exist.")
        if ended(row):
            raise Conflict(f"Run {run_id} already ended ({row['state']}); there is nothing to cancel.")
        await self.store.request_cancel(run_id)
        row = await self.reap({**row, "cancel_requested": 1})  # with its supervisor gone, it ends cancelled here
        if row["state"] not in ("queued", "running"):
            return run_from_row(row, self.name)
        here = supervised_here(row, self.host)
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
        return await self.wait(run_id, min(timeout, max_wait_seconds), None)

    async def wait(self, run_id: str, timeout: float, progress: Progress | None) -> Run:
        """The run once it ends, or as it stands after `timeout` seconds; `progress` hears of each change."""
        deadline = time.monotonic() + timeout
        topic, reported, step = f"run:{run_id}", None, 0
        while True:
            event = self.wakeups.register(topic)
            try:
                run = await self.run(run_id)
                self.wakeups.open()  # a no-op once listening; starts it if the store was down at start
                remaining = deadline - time.monotonic()
                if run.done or remaining <= 0:
                    return run
                if progress is not None and (run.state, run.latest_seq) != reported:
                    reported, step = (run.state, run.latest_seq), step + 1
                    await progress(step, f"run {run_id} is {run.state}; {run.latest_seq or 0} output lines so far")
                # A supervisor that dies sends no wake-up: look again after a heartbeat or so.
                await self.wakeups.wait(event, min(remaining, self.heartbeat_seconds * 2))
            finally:
                self.wakeups.unregister(topic, event)

    async def sweep_worktrees(self) -> None:
        """At start: reap the worktree folders this machine still holds for runs that are over."""
        folder = self.data_dir / "worktrees"
        try:
            for run_id in [p.name for p in folder.iterdir()] if folder.is_dir() else []:
                if await self.store.get_run(run_id) is not None:
                    await self.row(run_id)  # reaps it if its supervisor died
        except AgentdeckError as exc:
            log.warning("could not look for worktrees left by dead runs: %s", exc.message)
