"""compozy AGH adapter: the runtime agent API (`/api/agent/*`) of a local AGH daemon.

    [backends.agh]
    kind = "agh"          # identity from $AGH_SESSION_ID, $AGH_AGENT (and $AGH_WORKSPACE_ID)
    # socket = "/home/me/.agh/daemon.sock"   the default ($AGH_HOME/daemon.sock), or
    # base_url = "http://localhost:2123"      the daemon's loopback HTTP port

AGH has no API key: the caller is the AGH session named by the X-AGH-Session-ID / X-AGH-Agent
(/ X-AGH-Workspace-ID) headers, which the daemon checks on every call. When session or agent is
missing, every call answers `unauthorized` before any request is made; `doctor()` says why.

Mapping (wire facts: shared/platforms/agh.md):
- Agents and runs (agh_runs.py): list_agents reads GET /api/agents; spawn_agent creates the child with
  POST /spawn and gives it the prompt as its first turn through the daemon's session prompt route;
  the run is the child session (run id = session id), read, followed and stopped through the session
  routes. `metadata` may only hold the spawn options of SPAWN_OPTIONS.
- Channels: recv is a peek at the caller's pending inbound queue that consumes nothing, so this
  adapter keeps, per channel, the ids it has already returned: receive_channel_messages returns each
  pending message once (per process, or across processes when given a data dir). channel_history
  shows the pending queue without marking anything returned. A send needs coordination metadata:
  task and run come from the caller's active lease, else `session:<session id>`.
- Tasks: one lease per session, identified by run id and the caller's session; claim tokens do not
  exist on AGH, so a given claim_token is ignored. 409 on a lease mutation and 403
  AUTONOMY_FOREIGN_RUN both mean "you do not hold this run" and answer `lease_lost`.
- context() returns /me, /context, /coordinator/config and /soul; failures are recorded per part.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any, Unpack
from urllib.parse import quote

import anyio

from agentdeck.backends.agh_models import (
    IDENTITY_CODES,
    channel_name,
    lease_from_agh,
    message_from_agh,
    message_kind,
    read_error,
    task_from_info,
    task_info,
    when,
)
from agentdeck.backends.agh_runs import AghRuns
from agentdeck.backends.base import Backend, BuildEnv, Capability
from agentdeck.backends.dialect import Dialect, Overrides, explain
from agentdeck.backends.http import PlatformClient, RetryPolicy, Timeouts
from agentdeck.backends.requests import MessageDraft
from agentdeck.config import AghConfig
from agentdeck.errors import AgentdeckError, Conflict, InvalidArgument, LeaseLost, Timeout, Unauthorized
from agentdeck.models import Channel, ChannelList, ChannelMessage, ClaimResult, Lease, MessageBatch, Run, Task

__all__ = ["AghBackend"]

_POLL = 0.5  # seconds between peeks while a receive waits behind messages already returned


class AghBackend(AghRuns, Backend):
    kind = "agh"
    capabilities = frozenset({
        Capability.AGENTS, Capability.RUNS, Capability.RUN_CANCEL, Capability.RUN_FOLLOWUP, Capability.RUN_EVENTS,
        Capability.CHANNELS, Capability.TASKS, Capability.CONTEXT,
    })

    def __init__(self, name: str, settings: AghConfig, **env: Unpack[BuildEnv]) -> None:
        super().__init__(name)
        transport, data_dir = env.get("transport"), env.get("data_dir")
        self.settings = settings
        self._session = (settings.session_id or "").strip()
        self._agent = (settings.agent or "").strip()
        self._workspace = (settings.workspace_id or "").strip()
        headers = {"X-AGH-Session-ID": self._session, "X-AGH-Agent": self._agent}
        if self._workspace:
            headers["X-AGH-Workspace-ID"] = self._workspace
        self._socket = None if settings.base_url else os.path.expanduser(settings.socket or "~/.agh/daemon.sock")
        self._socket_used = self._socket is not None and transport is None  # a given transport (tests) replaces it
        self._client = PlatformClient(
            "AGH",
            base_url=settings.base_url or "http://unix",
            headers={k: v for k, v in headers.items() if v},
            timeouts=Timeouts(connect=settings.connect_timeout_seconds, read=settings.timeout_seconds),
            retry=RetryPolicy(max_retries=settings.max_retries),
            transport=transport,
            uds=self._socket,
            dialect=Dialect(
                read=read_error,
                codes={code: self._unauthorized for code in IDENTITY_CODES},
                statuses={401: self._unauthorized, 403: explain(Unauthorized, "AGH does not allow this for your session.")},
            ),
        )
        self._tasks: dict[str, dict[str, Any]] = {}  # run id -> what the claim told us about its task
        self._spawned: dict[str, Run] = {}  # idempotency key -> run (AGH does not deduplicate spawns)
        self._state_file = data_dir / "agh" / f"{name}.{re.sub(r'[^A-Za-z0-9_.-]', '_', self._session)}.json" if data_dir else None
        self._seen: dict[str, set[str]] = self._load_seen()

    async def aclose(self) -> None:
        await self._client.aclose()

    # plumbing -------------------------------------------------------------------------------

    def _identity_missing(self) -> list[str]:
        return [var for var, value in (("AGH_SESSION_ID", self._session), ("AGH_AGENT", self._agent)) if not value]

    def _unauthorized(self, text: str) -> Unauthorized:
        return Unauthorized(
            f"{text}. agentdeck speaks as the AGH session in AGH_SESSION_ID/AGH_AGENT (session '{self._session}', "
            f"agent '{self._agent}'); run it from a live AGH agent session or fix backends.{self.name} (agentdeck doctor)."
        )

    def _check_identity(self) -> None:
        missing = self._identity_missing()
        if missing:
            raise Unauthorized(
                f"No AGH identity: {' and '.join(missing)} {'is' if len(missing) == 1 else 'are'} not set. Start agentdeck from an AGH agent "
                f"session (AGH sets them), or set session_id and agent under [backends.{self.name}]; then call again."
            )

    async def _call(self, method: str, path: str, *, json: Any = None, params: Any = None, idempotent: bool | None = None, errors: Overrides | None = None) -> Any:
        self._check_identity()
        if method == "POST" and json is None:
            json = {}  # AGH refuses an empty body on most routes
        return await self._client.json(method, path, json=json, params=params, idempotent=idempotent, errors=errors)

    def _stream(self, method: str, path: str, *, json: Any = None, errors: Overrides | None = None) -> Any:
        self._check_identity()
        return self._client.stream(method, path, json=json, errors=errors)

    async def _me(self) -> dict[str, Any]:
        me = (await self._call("GET", "/api/agent/me"))["me"]
        self._workspace = self._workspace or (me.get("workspace") or {}).get("id") or ""
        return me

    async def _queue(self) -> str:
        """AGH's one task queue per caller is its session's workspace; its id names the queue."""
        if not self._workspace:
            await self._me()
        return self._workspace or "global"

    # channels ---------------------------------------------------------------------------------

    async def list_channels(self) -> ChannelList:
        body = await self._call("GET", "/api/agent/channels")
        return ChannelList(
            channels=[
                Channel(name=c["id"], backend=self.name, last_message_at=when(c.get("last_activity_at")), description=c.get("purpose") or "")
                for c in body.get("channels") or []
            ]
        )

    async def send_channel_message(self, draft: MessageDraft) -> ChannelMessage:
        channel, body, kind, correlation_id, reply_to, idempotency_key = draft.channel, draft.body, draft.kind, draft.correlation_id, draft.reply_to, draft.idempotency_key
        channel = channel_name(channel)
        key = {"idempotency_key": idempotency_key} if idempotency_key else {}
        if reply_to:
            # AGH answers the sender directly; task, run, channel and correlation come from the source message.
            sent = await self._call("POST", "/api/agent/channels/reply", json={"reply_to_message_id": reply_to, "body": body, **key}, idempotent=bool(key))
        else:
            kind = message_kind(kind)
            leases = (await self._me()).get("active_task_leases") or []
            lease = leases[0] if leases else {}
            fallback = f"session:{self._session}"
            run_id = lease.get("run_id") or fallback
            metadata = {
                "task_id": lease.get("task_id") or fallback, "run_id": run_id, "coordination_channel_id": channel,
                "correlation_id": correlation_id or run_id, "message_kind": kind,
            }
            sent = await self._call("POST", f"/api/agent/channels/{channel}/send", json={"body": body, "metadata": metadata, **key}, idempotent=bool(key))
        message = message_from_agh(self.name, sent["message"], channel)
        message.sender = f"{self._agent.lower()}.{self._session}"  # AGH echoes the bare session id; recv shows peer ids
        message.reply_to = reply_to
        return message

    async def _peek(self, channel: str, wait: bool = False) -> list[dict[str, Any]]:
        body = await self._call("GET", f"/api/agent/channels/{channel}/recv", params={"wait": "true"} if wait else None)
        return list(body.get("messages") or [])

    def _take(self, channel: str, pending: list[dict[str, Any]], limit: int) -> tuple[list[dict[str, Any]], bool]:
        """The first `limit` pending messages not returned before; marks them returned."""
        # An id that left the queue was delivered by the daemon and never comes back, so it is forgotten.
        before = self._seen.get(channel, set())
        seen = before & {m["message_id"] for m in pending}
        fresh = [m for m in pending if m["message_id"] not in seen]
        batch = fresh[:limit]
        self._seen[channel] = seen | {m["message_id"] for m in batch}
        if self._seen[channel] != before:
            self._save_seen()
        return batch, len(fresh) > limit

    async def receive_channel_messages(self, channel: str, *, wait_seconds: float = 0, limit: int = 20, after: str | None = None) -> MessageBatch:
        """Pending messages this backend has not returned yet, oldest first; waits up to wait_seconds for one."""
        if after is not None:
            raise InvalidArgument("AGH tracks which messages it handed over itself; call again without after")
        channel = channel_name(channel)
        pending = await self._peek(channel)
        batch, more = self._take(channel, pending, limit)
        if not batch and wait_seconds > 0:
            with anyio.move_on_after(wait_seconds):
                while not batch:
                    if pending:
                        await anyio.sleep(_POLL)  # AGH's wait returns at once while anything is pending
                    try:
                        pending = await self._peek(channel, wait=not pending)
                    except Timeout:  # a long poll outlived timeout_seconds: look again
                        pending = []
                    batch, more = self._take(channel, pending, limit)
                    if not batch and not pending:
                        await anyio.sleep(_POLL)  # woken by a message recv does not show (no coordination metadata)
        return MessageBatch(channel=channel, backend=self.name, messages=[message_from_agh(self.name, m, channel) for m in batch], more=more)

    async def channel_history(self, channel: str, *, limit: int = 50) -> MessageBatch:
        """The latest pending (not yet delivered) messages, returned or not; marks nothing returned."""
        channel = channel_name(channel)
        pending = await self._peek(channel)
        return MessageBatch(channel=channel, backend=self.name, messages=[message_from_agh(self.name, m, channel) for m in pending[-limit:]], more=len(pending) > limit)

    def _load_seen(self) -> dict[str, set[str]]:
        try:
            saved = json.loads(self._state_file.read_text()) if self._state_file else {}
        except (OSError, ValueError):
            return {}
        if not isinstance(saved, dict) or saved.get("session_id") != self._session:
            return {}  # another session's inbox
        return {str(c): set(ids) for c, ids in (saved.get("seen") or {}).items()}

    def _save_seen(self) -> None:
        if self._state_file is None:
            return
        self._state_file.parent.mkdir(parents=True, exist_ok=True)
        temp = self._state_file.with_suffix(f".{os.getpid()}.tmp")
        temp.write_text(json.dumps({"session_id": self._session, "seen": {c: sorted(ids) for c, ids in self._seen.items()}}))
        os.replace(temp, self._state_file)

    # tasks ------------------------------------------------------------------------------------

    async def claim_task(self, *, queue: str | None = None, lease_seconds: int | None = None) -> ClaimResult:
        body: dict[str, Any] = {"lease_seconds": lease_seconds} if lease_seconds else {}
        if queue and queue != "default":
            body["workspace_id"] = queue  # AGH's only queue is the caller's workspace
        errors: Overrides = {
            409: explain(Conflict, "You already hold a task (see agentdeck://me); complete_task, fail_task or release_task it, then claim again."),
            403: explain(InvalidArgument, "AGH gives you tasks of your own workspace only; omit queue."),
        }
        claim = await self._call("POST", "/api/agent/tasks/claim-next", json=body, errors=errors)
        queue_name = queue if queue and queue != "default" else await self._queue()
        if claim is None:  # 204: nothing to claim
            return ClaimResult(queue=queue_name, backend=self.name, lease=None)
        claim = claim["claim"]
        lease = claim.get("lease") or {}
        info = task_info(claim.get("task") or {}, lease, claim.get("run") or {}, queue_name) | {"lease_seconds": lease_seconds}
        try:  # max_attempts is only in the context bundle
            info["max_attempts"] = (await self._held_task(lease["run_id"], queue_name) or {}).get("max_attempts")
        except AgentdeckError:
            pass
        self._tasks[lease["run_id"]] = info
        return ClaimResult(queue=info["queue"], backend=self.name, lease=lease_from_agh(self.name, lease, info))

    async def _held_task(self, run_id: str, queue: str) -> dict[str, Any] | None:
        """The task facts of /context when the caller's live lease is on `run_id`."""
        section = (await self._call("GET", "/api/agent/context"))["context"].get("task") or {}
        if (section.get("lease") or {}).get("run_id") != run_id:
            return None
        return task_info(section.get("task") or {}, section["lease"], (section.get("bundle") or {}).get("current_run") or {}, queue)

    async def _task_info(self, run_id: str) -> dict[str, Any]:
        """What we know of the task behind `run_id`: from our claim, else from /context while the lease lives."""
        if run_id in self._tasks:
            return self._tasks[run_id]
        queue = self._workspace or "global"
        return await self._held_task(run_id, queue) or {"id": None, "title": "", "queue": queue}

    async def _mutate(self, run_id: str, action: str, body: dict[str, Any], info: dict[str, Any] | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
        info = info or await self._task_info(run_id)

        lost = explain(LeaseLost, f"You no longer hold run {run_id} (the lease expired, was released, or was never yours); claim_task for new work.")
        errors: Overrides = {409: lost, "AUTONOMY_FOREIGN_RUN": lost, 403: explain(Unauthorized, "AGH refused this for your session.")}
        path = f"/api/agent/tasks/{quote(run_id, safe='')}/{action}"
        # Only a heartbeat may be repeated safely: it resets the lease; a second complete would be refused.
        lease = (await self._call("POST", path, json=body, idempotent=action == "heartbeat", errors=errors))["lease"]
        info = info if info.get("id") else info | {"id": lease["task_id"]}
        if action != "heartbeat":
            self._tasks.pop(run_id, None)
        return lease, info

    async def heartbeat_task(self, run_id: str, claim_token: str | None = None) -> Lease:
        info = await self._task_info(run_id)
        lease, info = await self._mutate(run_id, "heartbeat", {"lease_seconds": info["lease_seconds"]} if info.get("lease_seconds") else {}, info)
        return lease_from_agh(self.name, lease, info)

    async def complete_task(self, run_id: str, claim_token: str | None = None, result: Any = None) -> Task:
        lease, info = await self._mutate(run_id, "complete", {"result": result} if result is not None else {})
        return task_from_info(self.name, info, lease.get("status", "completed"), result=result)

    async def fail_task(self, run_id: str, claim_token: str | None, error: str, retryable: bool = True) -> Task:
        # AGH does not retry a failed run by itself; `retryable` is kept in the failure metadata for whoever does.
        lease, info = await self._mutate(run_id, "fail", {"error": error, "metadata": {"retryable": retryable}})
        return task_from_info(self.name, info, lease.get("status", "failed"), error=error)

    async def release_task(self, run_id: str, claim_token: str | None = None, reason: str | None = None) -> Task:
        lease, info = await self._mutate(run_id, "release", {"reason": reason} if reason else {})
        return task_from_info(self.name, info, lease.get("status", "queued"))

    # context and doctor -----------------------------------------------------------------------

    async def context(self) -> dict[str, Any]:
        """The caller as AGH sees it; a part that fails is recorded as {"error": ...}, identity errors raise."""
        out: dict[str, Any] = {}
        for key, path in (("me", "/api/agent/me"), ("context", "/api/agent/context"), ("coordinator", "/api/agent/coordinator/config"), ("soul", "/api/agent/soul")):
            try:
                body = await self._call("GET", path)
                out[key] = body if key == "soul" else body.get(key)
            except Unauthorized:
                raise
            except AgentdeckError as exc:
                # An invalid soul comes back as its normal payload, with status 422.
                payload = exc.platform_body
                if key == "soul" and isinstance(payload, dict) and "validation_status" in payload:
                    out[key] = {**payload, "error": exc.to_dict()}
                else:
                    out[key] = {"error": exc.to_dict()}
        return out

    async def doctor(self) -> list[tuple[bool, str, str]]:
        """Identity present, daemon reachable, identity accepted; each with the fix when it fails."""
        missing = self._identity_missing()
        where = f"socket {self._socket}" if self._socket else f"HTTP {self.settings.base_url}"
        checks = [(not missing, "AGH identity", f"session {self._session}, agent {self._agent}" + (f", workspace {self._workspace}" if self._workspace else "")
                   if not missing else f"{' and '.join(missing)} not set; run agentdeck from an AGH agent session or set session_id/agent in backends.{self.name}")]
        if self._socket_used and not Path(self._socket or "").exists():
            return checks + [(False, "AGH daemon", f"no {where}; start the daemon (agh daemon start) or set socket/base_url in backends.{self.name}")]
        try:
            await self._client.json("GET", "/api/agent/me")
            return checks + [(True, "AGH daemon", f"answers on {where}"), (True, "AGH identity accepted", "GET /api/agent/me succeeded")]
        except AgentdeckError as exc:
            if exc.code in ("unavailable", "timeout"):
                return checks + [(False, "AGH daemon", f"{where}: {exc.message}")]
            return checks + [(True, "AGH daemon", f"answers on {where}"), (False, "AGH identity accepted", exc.message)]
