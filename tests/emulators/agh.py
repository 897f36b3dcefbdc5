"""Emulator of compozy AGH's runtime agent API (`/api/agent/*`), for testing agentdeck's AGH adapter;
`agh_sessions.py` adds the daemon's session routes and agent catalog that prompt and follow a spawned child.

Wire facts come from /work/shared/platforms/agh.md and the API reference page (seed 004). The same app
serves TCP (`--port`) and a Unix socket (`--uds`); as in AGH, only the HTTP transport caps bodies at
4 MiB and masks 5xx texts. State lives in `agh_state.AghState`; this module parses requests and renders
AGH's JSON shapes (Go `omitempty` fields are left out when empty, list fields are always arrays).

Test helpers hang off `app.state` (the FaultInjector passes attribute lookups through):

    app.state.clock.advance(seconds)      move emulator time (lease expiry, spawn TTL, the sweep)
    app.state.add_task(title, ...)        -> (Task, Run); a queued run on channel "general" by default
    app.state.add_session(id, agent, ...) -> Session (active, joined to "general" by default)
    app.state.post_message(from_session_id, body, metadata, channel=..., to_session_id=...) -> message id
    app.state.deliver_inbox(session_id)   drain a pending queue, as the daemon does when it prompts the agent
    app.state.stop_session(session_id)    stop a session (its leases are re-queued)
    app.state.sweep()                     re-queue expired leases now
    app.state.set_soul(agent, text|None)  write or remove the agent's SOUL.md
    app.state.add_channel(name, purpose=) store network channel metadata
    app.state.agh                         the AghState itself (sessions, tasks, runs, inboxes, ...)
    app.state.sessions                    the session routes (agh_sessions.SessionRoutes: events, turns)
    app.state.seed                        ids of the seed data
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
from datetime import UTC, datetime
from http import HTTPStatus
from typing import Any

import anyio
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from tests.emulators.agh_sessions import SessionRoutes
from tests.emulators.agh_state import (
    CLAIM_TOKEN_VALUE,
    MAX_RESULT_BYTES,
    MESSAGE_KINDS,
    NO_RESULT,
    AghError,
    AghState,
    Clock,
    Envelope,
    Run,
    Session,
    Task,
    has_claim_token,
    json_size,
    validate_metadata,
)
from tests.emulators.faults import FaultInjector

HTTP_BODY_LIMIT = 4 * 1024 * 1024
SECTION_LIMIT = 8
CHANNEL_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
GO_BOOLS = {"1": True, "t": True, "T": True, "true": True, "TRUE": True, "True": True,
            "0": False, "f": False, "F": False, "false": False, "FALSE": False, "False": False}
ZERO_TIME = "0001-01-01T00:00:00Z"


# ----- small helpers -----------------------------------------------------------------------

def ts(value: datetime | None) -> str | None:
    """Go's RFC 3339 form of a UTC time: fractional seconds only when non-zero, trailing zeros dropped."""
    if value is None:
        return None
    text = value.strftime("%Y-%m-%dT%H:%M:%S")
    if value.microsecond:
        text += f".{value.microsecond:06d}".rstrip("0")
    return text + "Z"


def compact(payload: dict[str, Any]) -> dict[str, Any]:
    """Drop the fields Go would omit: None, "" and {} (lists and False are kept on purpose)."""
    return {k: v for k, v in payload.items() if v is not None and v != "" and v != {}}


def transport(request: Request) -> str:
    server = request.scope.get("server")
    return "udsapi" if server and server[1] is None else "httpapi"


def error_response(request: Request, err: AghError) -> JSONResponse:
    message = err.message
    if err.status >= 500 and transport(request) == "httpapi":
        message = HTTPStatus(err.status).phrase
    body: dict[str, Any] = {"error": CLAIM_TOKEN_VALUE.sub("agh_claim_[REDACTED]", message)}
    if err.diagnostic:
        body["diagnostic"] = err.diagnostic
    return JSONResponse(body, status_code=err.status)


class DecodeError(Exception):
    """A request body Go's JSON decoder would refuse; the caller wraps the text in its own prefix."""


GO_TYPES = {str: "string", int: "int64", bool: "bool", list: "[]string"}


def _json_kind(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return f"number {value}"
    return {str: "string", list: "array", dict: "object"}.get(type(value), "null")


def decode_object(raw: bytes, *, allow_empty: bool, strict: bool = False) -> dict[str, Any]:
    """Decode the first JSON value of a body as an object (gin ignores anything after it unless strict)."""
    text = raw.decode("utf-8", errors="replace").lstrip()
    if not text:
        if allow_empty:
            return {}
        raise DecodeError("EOF")
    try:
        value, end = json.JSONDecoder().raw_decode(text)
    except json.JSONDecodeError as exc:
        raise DecodeError(f"invalid JSON: {exc.msg} at offset {exc.pos}") from None
    if strict and text[end:].strip():
        raise DecodeError("request body must contain a single JSON object")
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise DecodeError(f"json: cannot unmarshal {_json_kind(value).split()[0]} into Go value of type object")
    return value


def field(body: dict[str, Any], key: str, kind: type, default: Any) -> Any:
    """Read one typed field the way encoding/json does: null or absent gives the zero value."""
    value = body.get(key)
    if value is None:
        return default
    ok = isinstance(value, kind) and not (kind is int and isinstance(value, bool))
    if kind is list:
        ok = isinstance(value, list) and all(isinstance(v, str) for v in value)
    if not ok:
        raise DecodeError(f"json: cannot unmarshal {_json_kind(value)} into Go struct field .{key} of type "
                          f"{GO_TYPES[kind]}")
    return value


async def read_body(request: Request) -> bytes:
    raw = await request.body()
    if transport(request) == "httpapi" and len(raw) > HTTP_BODY_LIMIT:
        raise AghError(413, "request body too large")
    return raw


# ----- payloads ----------------------------------------------------------------------------

def all_kinds() -> list[str]:
    return list(MESSAGE_KINDS)


def network_channel(agh: AghState, name: str, workspace_id: str) -> dict[str, Any]:
    meta = agh.channel_meta.get(name, {})
    return compact({"id": name, "channel": name, "display_name": name,
                    "purpose": meta.get("purpose") or "network_channel",
                    "workspace_id": meta.get("workspace_id") or workspace_id,
                    "allowed_message_kinds": all_kinds(), "last_activity_at": ts(meta.get("updated_at"))})


def claim_channel(agh: AghState, task: Task, run: Run) -> dict[str, Any] | None:
    """The coordination channel a claim reports (from the run, enriched by stored channel metadata)."""
    cid = run.coordination_channel_id
    if not cid:
        return None
    meta = agh.channel_meta.get(cid, {})
    return compact({"id": cid, "channel": cid, "display_name": cid, "purpose": meta.get("purpose"),
                    "workspace_id": meta.get("workspace_id") or task.workspace_id, "task_id": task.id,
                    "run_id": run.id, "allowed_message_kinds": all_kinds(),
                    "last_activity_at": ts(meta.get("updated_at"))})


def lease_payload(run: Run, channel: dict[str, Any] | None = None) -> dict[str, Any]:
    return compact({"task_id": run.task_id, "run_id": run.id, "status": run.status, "session_id": run.session_id,
                    "claimed_by": run.claimed_by, "claim_token_hash": run.claim_token_hash,
                    "lease_until": ts(run.lease_until), "heartbeat_at": ts(run.heartbeat_at),
                    "coordination_channel_id": run.coordination_channel_id or (channel or {}).get("id"),
                    "coordination_channel": channel})


def run_payload(run: Run, channel: dict[str, Any] | None) -> dict[str, Any]:
    payload = compact({"id": run.id, "task_id": run.task_id, "status": run.status, "attempt": run.attempt,
                       "claimed_by": run.claimed_by, "session_id": run.session_id, "origin": run.origin,
                       "network_channel": run.network_channel, "claim_token_hash": run.claim_token_hash,
                       "lease_until": ts(run.lease_until), "heartbeat_at": ts(run.heartbeat_at),
                       "coordination_channel_id": run.coordination_channel_id, "coordination_channel": channel,
                       "queued_at": ts(run.queued_at), "claimed_at": ts(run.claimed_at),
                       "started_at": ts(run.started_at), "ended_at": ts(run.ended_at), "error": run.error})
    if run.result is not NO_RESULT:
        payload["result"] = run.result
    return payload


def run_summary(run: Run, task: Task) -> dict[str, Any]:
    """The context bundle's run view, whose times are plain Go values (zero time when unset)."""
    payload = compact({"id": run.id, "task_id": run.task_id, "status": run.status, "attempt": run.attempt,
                       "session_id": run.session_id, "claimed_by": run.claimed_by,
                       "claim_token_hash": run.claim_token_hash,
                       "coordination_channel_id": run.coordination_channel_id, "error": run.error})
    payload["max_attempts"] = task.max_attempts
    for key in ("lease_until", "heartbeat_at", "queued_at", "claimed_at", "started_at", "ended_at"):
        payload[key] = ts(getattr(run, key)) or ZERO_TIME
    return payload


def task_ref(task: Task) -> dict[str, Any]:
    return compact({"id": task.id, "identifier": task.identifier, "title": task.title, "status": task.status,
                    "priority": task.priority, "owner": task.owner, "scope": task.scope,
                    "workspace_id": task.workspace_id, "latest_event_seq": task.latest_event_seq,
                    "paused": task.paused or None, "effective_paused": task.paused or None})


def lineage_payload(lineage: dict[str, Any] | None) -> dict[str, Any] | None:
    if lineage is None:
        return None
    out = compact({"parent_session_id": lineage.get("parent_session_id"),
                   "root_session_id": lineage.get("root_session_id"), "spawn_role": lineage.get("spawn_role"),
                   "ttl_expires_at": ts(lineage.get("ttl_expires_at"))})
    budget = dict(lineage.get("spawn_budget") or {})
    policy = lineage.get("permission_policy") or {}
    return {**out, "spawn_depth": lineage.get("spawn_depth", 0),
            "auto_stop_on_parent": bool(lineage.get("auto_stop_on_parent")),
            "spawn_budget": {"max_children": budget.get("max_children", 0), "max_depth": budget.get("max_depth", 0),
                             "ttl_seconds": budget.get("ttl_seconds", 0),
                             **({"max_active_per_workspace": budget["max_active_per_workspace"]}
                                if budget.get("max_active_per_workspace") else {})},
            "permission_policy": {k: list(policy.get(k) or []) for k in
                                  ("tools", "skills", "mcp_servers", "workspace_paths", "network_channels",
                                   "sandbox_profiles")}}


def self_payload(s: Session) -> dict[str, Any]:
    return {"session_id": s.id, "agent_name": s.agent_name, "provider": s.provider} | compact({"model": s.model})


def agent_session_payload(s: Session) -> dict[str, Any]:
    return compact({"id": s.id, "name": s.name, "type": s.type, "state": s.state, "channel": s.channel,
                    "lineage": lineage_payload(s.lineage), "created_at": ts(s.created_at),
                    "updated_at": ts(s.updated_at)})


def workspace_payload(s: Session) -> dict[str, Any]:
    return compact({"id": s.workspace_id, "name": s.workspace_name, "root_dir": s.workspace_path})


def session_payload(s: Session) -> dict[str, Any]:
    """The full SessionPayload (spawn answers with it). GUESS: `health`, `activity` and `acp_caps` hold
    placeholder values (their fields follow contract.SessionPayload; the values come from no source)."""
    live = s.state != "stopped"
    health = compact({"session_id": s.id, "workspace_id": s.workspace_id, "agent_name": s.agent_name,
                      "state": "idle" if live else "stopped", "health": "healthy" if live else "dead",
                      "updated_at": ts(s.updated_at)})
    health |= {"workspace_id": s.workspace_id, "active_prompt": False, "attachable": False,
               "eligible_for_wake": live}
    return compact({"id": s.id, "name": s.name, "agent_name": s.agent_name, "model": s.model,
                    "workspace_id": s.workspace_id, "workspace_path": s.workspace_path, "channel": s.channel,
                    "type": s.type, "state": s.state, "stop_reason": s.stop_reason, "stop_detail": s.stop_detail,
                    "acp_caps": {"supports_load_session": False},
                    "activity": {"iteration_current": 0, "iteration_max": 0, "idle_seconds": 0,
                                 "elapsed_seconds": 0, "elapsed_ms": 0},
                    "lineage": lineage_payload(s.lineage), "health": health, "created_at": ts(s.created_at),
                    "updated_at": ts(s.updated_at)}) | {"provider": s.provider, "badge": "idle" if live else "stopped",
                                                         "attachable": False}


def coordinator_payload(agh: AghState, s: Session) -> dict[str, Any]:
    cfg = agh.coordinator
    return compact({"enabled": cfg["enabled"], "agent_name": cfg["agent_name"], "provider": cfg.get("provider"),
                    "model": cfg.get("model"), "default_ttl_seconds": cfg["default_ttl_seconds"],
                    "max_children": cfg["max_children"],
                    "max_active_sessions_per_workspace": cfg["max_active_sessions_per_workspace"],
                    "source": "workspace" if s.workspace_id else "global", "workspace_id": s.workspace_id})


def limits_payload(agh: AghState) -> dict[str, int]:
    return {"max_children": agh.coordinator["max_children"] or 5, "max_spawn_depth": 1,
            "max_active_task_leases": 1, "context_section_limit": SECTION_LIMIT}


def section(total: int) -> dict[str, Any]:
    return {"limit": SECTION_LIMIT, "returned": min(total, SECTION_LIMIT), "truncated": total > SECTION_LIMIT}


def metadata_payload(meta: dict[str, Any]) -> dict[str, Any]:
    out = {k: meta.get(k, "") for k in ("task_id", "run_id", "coordination_channel_id", "message_kind",
                                        "correlation_id")}
    if meta.get("workflow_id"):
        out["workflow_id"] = meta["workflow_id"]
    if meta.get("ext"):
        out["ext"] = meta["ext"]
    return out


def message_from_envelope(env: Envelope) -> dict[str, Any]:
    """A recv entry: `from_session_id` carries the sender's network peer id, the time whole seconds."""
    meta = env.metadata or {}
    return compact({"message_id": env.id, "channel_id": meta.get("coordination_channel_id") or env.channel,
                    "from_session_id": env.from_peer, "to_session_id": env.to_peer,
                    "metadata": metadata_payload(meta),
                    "timestamp": ts(datetime.fromtimestamp(env.ts, tz=UTC))}) | {"body": env.body}


def context_task(agh: AghState, caller: Session) -> tuple[dict, dict, str]:
    """The task and coordination_channel sections of /context, plus the channel the session works in."""
    run = agh.active_run_for(caller.id)
    if run is None:
        return {"available": False}, {"available": False}, ""
    task = agh.tasks[run.task_id]
    cid = run.coordination_channel_id or run.network_channel
    channel = compact({"id": cid, "channel": run.network_channel or cid, "display_name": run.network_channel or cid,
                       "purpose": "task_run_coordination", "workspace_id": task.workspace_id, "task_id": task.id,
                       "run_id": run.id, "allowed_message_kinds": all_kinds(),
                       "last_activity_at": ts(max(t for t in (run.queued_at, run.claimed_at, task.updated_at) if t))})
    lease = lease_payload(run, channel if cid else None)
    bundle = {"task": task_ref(task), "latest_event_seq": task.latest_event_seq,
              # GUESS: the bundle's fields beyond task and current_run are not confirmed (agh.md §5.1).
              "current_run": run_summary(run, task), "prior_attempts": [], "recent_events": [],
              "limits": {"max_runtime_seconds": 0, "summary_max_bytes": 4096, "context_body_max_bytes": 16384},
              "review_history": []}
    task_section = {"available": True, "task": task_ref(task), "lease": lease, "bundle": bundle}
    channel_section = {"available": True, "channel": channel} if cid else {"available": False}
    return task_section, channel_section, channel.get("channel", "")


def soul_section(agh: AghState, agent: str) -> dict[str, Any]:
    soul = agh.resolve_soul(agent)
    if not soul["present"]:
        return {"enabled": False, "present": False, "active": False, "valid": False, "tone": [], "principles": []}
    front = soul["frontmatter"]
    status = "valid" if soul["valid"] else "invalid"
    return compact({"enabled": True, "present": True, "active": soul["valid"], "valid": soul["valid"],
                    "validation_status": status, "snapshot_id": "soulsnap-" + soul["digest"][7:23],
                    "digest": soul["digest"], "config_digest": config_digest(agh),
                    "source_path": soul["source_path"], "role": front.get("role"),
                    "max_bytes": agh.soul_projection_bytes, "max_body_bytes": agh.soul_max_body_bytes}) | {
        "tone": list(front.get("tone", [])), "principles": list(front.get("principles", []))}


def config_digest(agh: AghState) -> str:
    text = f"enabled=true;max_body_bytes={agh.soul_max_body_bytes};projection={agh.soul_projection_bytes}"
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def soul_payload(agh: AghState, agent: str, proposed: str | None = None) -> tuple[dict[str, Any], int]:
    soul = agh.resolve_soul(agent, proposed)
    present, valid = soul["present"], soul["valid"]
    status = "missing" if not present else "invalid" if not valid else "valid"
    payload = compact({"agent_name": agent, "validation_status": status, "digest": soul["digest"],
                       "source_path": soul["source_path"], "body": soul["body"]})
    payload |= {"enabled": True, "present": present, "active": present and valid, "valid": valid,
                "frontmatter": soul["frontmatter"],
                "limits": {"max_body_bytes": agh.soul_max_body_bytes,
                           "context_projection_bytes": agh.soul_projection_bytes},
                "config_provenance": {"digest": config_digest(agh), "source": "default", "enabled": True,
                                      "max_body_bytes": agh.soul_max_body_bytes,
                                      "context_projection_bytes": agh.soul_projection_bytes}}
    if soul["diagnostics"]:
        payload["diagnostics"] = soul["diagnostics"]
    return payload, 200 if (valid or not present) else 422


# ----- routes --------------------------------------------------------------------------------

class AgentApi:
    """The 15 handlers. Each resolves the caller from the identity headers before reading the body."""

    def __init__(self, agh: AghState) -> None:
        self.agh = agh

    def routes(self) -> list[Route]:
        def route(path: str, method: str, handler: Any) -> Route:
            return Route(f"/api/agent{path}", self._guarded(handler), methods=[method])

        return [
            route("/me", "GET", self.me),
            route("/context", "GET", self.context),
            route("/soul", "GET", self.soul),
            route("/soul/validate", "POST", self.soul_validate),
            route("/coordinator/config", "GET", self.coordinator),
            route("/spawn", "POST", self.spawn),
            route("/channels", "GET", self.channels),
            route("/channels/reply", "POST", self.reply),
            route("/channels/{channel}/recv", "GET", self.recv),
            route("/channels/{channel}/send", "POST", self.send),
            route("/tasks/claim-next", "POST", self.claim_next),
            route("/tasks/{run_id}/heartbeat", "POST", self.heartbeat),
            route("/tasks/{run_id}/complete", "POST", self.complete),
            route("/tasks/{run_id}/fail", "POST", self.fail),
            route("/tasks/{run_id}/release", "POST", self.release),
        ]

    def _guarded(self, handler: Any) -> Any:
        async def endpoint(request: Request) -> Response:
            try:
                headers = request.headers
                caller = self.agh.resolve_caller(headers.get("x-agh-session-id", ""), headers.get("x-agh-agent", ""),
                                                 headers.get("x-agh-workspace-id", ""))
                return await handler(request, caller)
            except AghError as err:
                return error_response(request, err)

        return endpoint

    # -- identity, context, coordinator, soul --

    async def me(self, request: Request, caller: Session) -> Response:
        with self.agh.lock:
            task_section, channel_section, _ = context_task(self.agh, caller)
            # The task's coordination channel first; the network listing wins on the same id (as in AGH).
            channels = {}
            if channel_section.get("channel"):
                channels[channel_section["channel"]["id"]] = channel_section["channel"]
            for name in self.agh.channel_names(caller):
                channels[name] = network_channel(self.agh, name, caller.workspace_id)
            me = {"self": self_payload(caller), "workspace": workspace_payload(caller),
                  "session": agent_session_payload(caller), "capabilities": sorted_capabilities(caller),
                  "channels": sorted(channels.values(), key=lambda c: (c.get("workspace_id", ""), c["id"])),
                  "active_task_leases": [task_section["lease"]] if task_section.get("lease") else [],
                  "coordinator": coordinator_payload(self.agh, caller), "limits": limits_payload(self.agh)}
        return JSONResponse({"me": me})

    async def context(self, request: Request, caller: Session) -> Response:
        agh = self.agh
        with agh.lock:
            task_section, channel_section, work_channel = context_task(agh, caller)
            active_cid = (channel_section.get("channel") or {}).get("id", "")
            items = []
            for env in agh.inbox(caller.id):
                meta = env.metadata
                if meta is None or (active_cid and meta.get("coordination_channel_id") != active_cid):
                    continue
                items.append(compact({"message_id": env.id,
                                      "channel_id": meta.get("coordination_channel_id") or env.channel,
                                      "kind": meta.get("message_kind"), "preview": preview(env.body),
                                      "timestamp": ts(datetime.fromtimestamp(env.ts, tz=UTC))})
                             | {"metadata": metadata_payload(meta)})
            items.sort(key=lambda i: i["message_id"])
            items.sort(key=lambda i: i["timestamp"], reverse=True)
            channel = work_channel or caller.channel
            peers = sorted((compact({"peer_id": s.peer_id, "session_id": s.id, "display_name": s.agent_name,
                                     "channel_id": s.channel}) | {"capabilities": [c["id"] for c in s.capabilities]}
                            for s in agh.sessions.values()
                            if channel and s.id != caller.id and s.channel == channel and s.state == "active"
                            and s.workspace_id == caller.workspace_id),
                           key=lambda p: (p.get("channel_id", ""), p["peer_id"]))
            capabilities = sorted_capabilities(caller)
            context = {
                "self": self_payload(caller), "workspace": workspace_payload(caller),
                "session": agent_session_payload(caller), "soul": soul_section(agh, caller.agent_name),
                "task": task_section, "coordination_channel": channel_section,
                "inbox_summary": {"section": section(len(items)), "unread_count": len(items),
                                  "items": items[:SECTION_LIMIT]},
                "peer_roster": {"section": section(len(peers)), "peers": peers[:SECTION_LIMIT]},
                "capabilities": {"section": section(len(capabilities)), "capabilities": capabilities[:SECTION_LIMIT]},
                "limits": limits_payload(agh),
                "provenance": {"generated_at": ts(agh.clock.now()), "source": "daemon.situation"},
            }
        return JSONResponse({"context": context})

    async def coordinator(self, request: Request, caller: Session) -> Response:
        return JSONResponse({"coordinator": coordinator_payload(self.agh, caller)})

    async def soul(self, request: Request, caller: Session) -> Response:
        payload, status = soul_payload(self.agh, caller.agent_name)
        return JSONResponse(payload, status_code=status)

    async def soul_validate(self, request: Request, caller: Session) -> Response:
        try:
            body = decode_object(await read_body(request), allow_empty=True, strict=True)
            workspace_id = field(body, "workspace_id", str, "").strip() or caller.workspace_id
            agent = field(body, "agent_name", str, "").strip() or caller.agent_name
            text = field(body, "body", str, "")
        except DecodeError as exc:
            raise AghError(400, f"decode request body: {exc}") from None
        with self.agh.lock:
            if workspace_id not in self.agh.workspaces:
                raise AghError(404, f'workspace: workspace not found: "{workspace_id}"')
            known = {s.agent_name for s in self.agh.sessions.values()} | set(self.agh.souls)
            if agent not in known:
                raise AghError(404, f'workspace: agent not available: "{agent}"')
        payload, status = soul_payload(self.agh, agent, text if text.strip() else None)
        return JSONResponse(payload, status_code=status)

    # -- spawn --

    async def spawn(self, request: Request, caller: Session) -> Response:
        known = {"agent_name": str, "provider": str, "model": str, "name": str, "prompt_overlay": str,
                 "spawn_role": str, "ttl_seconds": int, "auto_stop_on_parent": bool, "permissions": dict,
                 "idempotency_key": str}
        try:
            body = decode_object(await read_body(request), allow_empty=False, strict=True)
            for key in body:
                if key not in known:
                    raise DecodeError(f'json: unknown field "{key}"')
            req = {k: field(body, k, kind, None) for k, kind in known.items() if kind is not dict}
            permissions = body.get("permissions") or {}
            if not isinstance(permissions, dict):
                raise DecodeError(f"json: cannot unmarshal {_json_kind(permissions)} into Go struct field "
                                  ".permissions of type contract.SpawnPermissionPolicyPayload")
            for key in permissions:
                if key not in ("tools", "skills", "mcp_servers", "workspace_paths", "network_channels",
                               "sandbox_profiles"):
                    raise DecodeError(f'json: unknown field "{key}"')
            req["permissions"] = {k: field(permissions, k, list, []) for k in permissions}
        except DecodeError as exc:
            raise AghError(422, f"session: spawn validation failed: {transport(request)}: decode agent spawn "
                                f"request: {exc}") from None
        req = {k: v for k, v in req.items() if v is not None}
        with self.agh.lock:
            child = self.agh.spawn(caller, req)
            payload = {"session": session_payload(child), "lineage": lineage_payload(child.lineage),
                       "permissions": lineage_payload(child.lineage)["permission_policy"]}
        return JSONResponse({"spawn": payload}, status_code=201)

    # -- channels --

    async def channels(self, request: Request, caller: Session) -> Response:
        with self.agh.lock:
            items = [network_channel(self.agh, n, caller.workspace_id) for n in self.agh.channel_names(caller)]
        items.sort(key=lambda c: (c.get("workspace_id", ""), c["id"]))
        return JSONResponse({"channels": items})

    async def recv(self, request: Request, caller: Session) -> Response:
        channel = request.path_params["channel"].strip()
        if not CHANNEL_NAME.match(channel):
            raise AghError(400, f'network validation error: network: invalid field: channel="{channel}"')
        wait_raw = request.query_params.get("wait", "").strip()
        limit_raw = request.query_params.get("limit", "").strip()
        if wait_raw and wait_raw not in GO_BOOLS:
            raise AghError(400, f'network validation error: query parameter "wait" must be a boolean: '
                                f'strconv.ParseBool: parsing "{wait_raw}": invalid syntax')
        if limit_raw and (not re.fullmatch(r"[+-]?\d+", limit_raw) or int(limit_raw) <= 0):
            raise AghError(400, f'network validation error: query parameter "limit" must be a positive integer: '
                                f"{limit_raw}")
        limit = int(limit_raw) if limit_raw else 0
        if wait_raw and GO_BOOLS[wait_raw]:
            while not any(env.channel == channel for env in self.agh.inbox(caller.id)):
                if caller.state != "active":  # a stopped session's queue is gone
                    break
                if await request.is_disconnected():
                    raise AghError(408, "context canceled")
                await anyio.sleep(0.05)
        envelopes = [e for e in self.agh.inbox(caller.id) if e.channel == channel and e.metadata is not None
                     and not has_claim_token({"body": e.body, "metadata": e.metadata})]
        messages = sorted((message_from_envelope(e) for e in envelopes),
                          key=lambda m: (m["timestamp"], m["message_id"]))
        return JSONResponse({"messages": messages[:limit] if limit else messages})

    async def send(self, request: Request, caller: Session) -> Response:
        channel = request.path_params["channel"].strip()
        try:
            body = decode_object(await read_body(request), allow_empty=False)
            key = field(body, "idempotency_key", str, "").strip()
            if "metadata" in body:
                problem = validate_metadata(body["metadata"])
                if problem:
                    raise DecodeError(problem)
        except DecodeError as exc:
            raise AghError(400, f"{transport(request)}: decode agent channel send request: {exc}") from None
        if "body" not in body:
            raise AghError(400, "network validation error: body is required")
        metadata = body.get("metadata") or {}
        problem = validate_metadata(metadata)
        if problem:
            raise AghError(400, f"network validation error: {problem}")
        if has_claim_token({"body": body["body"], "metadata": metadata, "idempotency_key": key}):
            raise AghError(400, "network validation error: contract: coordination metadata must not contain raw "
                                "lease credentials")
        message_id = self.agh.send(caller, channel, body["body"], metadata, key)
        return JSONResponse({"message": sent_message(message_id, metadata.get("coordination_channel_id") or channel,
                                                     caller.id, "", body["body"], metadata, self.agh)},
                            status_code=202)

    async def reply(self, request: Request, caller: Session) -> Response:
        try:
            raw = decode_object(await read_body(request), allow_empty=False)
        except DecodeError as exc:
            raise AghError(400, f"decode agent channel reply request: {exc}") from None
        invalid = "network validation error: "
        if has_claim_token(raw):
            raise AghError(400, invalid + "contract: coordination metadata must not contain raw lease credentials")
        for key in ("reply_to_message_id", "idempotency_key"):
            if raw.get(key) is not None and not isinstance(raw[key], str):
                raise AghError(400, f"{invalid}{key}: json: cannot unmarshal {_json_kind(raw[key])} into Go value "
                                    "of type string")
        if "body" not in raw:
            raise AghError(400, invalid + "body is required")
        given = raw.get("metadata")
        if given not in (None, {}):
            problem = validate_metadata(given)
            if problem:
                raise AghError(400, f"{invalid}metadata: {problem}")
        reply_to = (raw.get("reply_to_message_id") or "").strip()
        if not reply_to:
            raise AghError(400, invalid + "reply_to_message_id is required")
        source = self.agh.reply_source(caller, reply_to)
        if given in (None, {}):
            if source.metadata is None:
                raise AghError(400, invalid + "metadata is required when the source message has no coordination "
                                              "metadata")
            metadata = {**metadata_payload(source.metadata), "message_kind": "reply"}
        elif given.get("message_kind") != "reply":
            raise AghError(400, invalid + "metadata.message_kind must be reply for agent channel replies")
        else:
            metadata = given
        message_id = self.agh.reply(caller, source, raw["body"], metadata, (raw.get("idempotency_key") or "").strip())
        return JSONResponse({"message": sent_message(message_id, metadata.get("coordination_channel_id")
                                                     or source.channel, caller.id, source.from_peer, raw["body"],
                                                     metadata, self.agh)}, status_code=202)

    # -- tasks --

    async def claim_next(self, request: Request, caller: Session) -> Response:
        try:
            body = decode_object(await read_body(request), allow_empty=True)
            workspace_id = field(body, "workspace_id", str, "")
            capabilities = field(body, "required_capabilities", list, [])
            priority_min = field(body, "priority_min", int, 0)
            lease_seconds = field(body, "lease_seconds", int, 0)
            wait = field(body, "wait", bool, False)
            field(body, "idempotency_key", str, "")  # accepted, unused (as in AGH)
        except DecodeError as exc:
            raise AghError(400, f"task: validation failed: {transport(request)}: decode agent task claim request: "
                                f"{exc}") from None
        while True:
            claimed = self.agh.claim_next(caller, workspace_id=workspace_id, capabilities=capabilities,
                                          priority_min=priority_min, lease_seconds=lease_seconds)
            if claimed is not None:
                break
            if not wait:
                return Response(status_code=204)
            if await request.is_disconnected():
                raise AghError(408, "context canceled")
            await anyio.sleep(0.1)
            self.agh.maintain()
        task, run = claimed
        with self.agh.lock:
            channel = claim_channel(self.agh, task, run)
            claim = compact({"task": task_ref(task), "run": run_payload(run, channel),
                             "lease": lease_payload(run, channel), "coordination_channel": channel})
        return JSONResponse({"claim": claim})

    async def _lease_body(self, request: Request, action: str) -> dict[str, Any]:
        try:
            return decode_object(await read_body(request), allow_empty=False)
        except DecodeError as exc:
            raise AghError(400, f"task: validation failed: {transport(request)}: decode agent task {action} "
                                f"request: {exc}") from None

    def _typed(self, request: Request, action: str, body: dict[str, Any], key: str, kind: type, default: Any) -> Any:
        try:
            return field(body, key, kind, default)
        except DecodeError as exc:
            raise AghError(400, f"task: validation failed: {transport(request)}: decode agent task {action} "
                                f"request: {exc}") from None

    async def heartbeat(self, request: Request, caller: Session) -> Response:
        body = await self._lease_body(request, "heartbeat")
        seconds = self._typed(request, "heartbeat", body, "lease_seconds", int, 0)
        with self.agh.lock:
            run = self.agh.heartbeat(caller, request.path_params["run_id"].strip(), seconds)
            return JSONResponse({"lease": lease_payload(run)})

    async def complete(self, request: Request, caller: Session) -> Response:
        body = await self._lease_body(request, "complete")
        result = body.get("result", NO_RESULT)
        if result is not NO_RESULT:
            if json_size(result) > MAX_RESULT_BYTES:
                raise AghError(413, f"task: payload too large: run_result.value exceeds {MAX_RESULT_BYTES} bytes")
            if has_claim_token(result, check_strings=False):
                raise AghError(422, "task: validation failed: run_result.value must not contain raw lease "
                                    "credentials")
        with self.agh.lock:
            run = self.agh.finish(caller, request.path_params["run_id"].strip(), failed=False, result=result)
            return JSONResponse({"lease": lease_payload(run)})

    async def fail(self, request: Request, caller: Session) -> Response:
        body = await self._lease_body(request, "fail")
        error = self._typed(request, "fail", body, "error", str, "").strip()
        metadata = body.get("metadata")
        if not error:
            raise AghError(422, "task: validation failed: run_failure.error is required")
        if metadata is not None and json_size(metadata) > MAX_RESULT_BYTES:
            raise AghError(413, f"task: payload too large: run_failure.metadata exceeds {MAX_RESULT_BYTES} bytes")
        if has_claim_token(metadata, check_strings=False):
            raise AghError(422, "task: validation failed: run_failure.metadata must not contain raw lease "
                                "credentials")
        with self.agh.lock:
            run = self.agh.finish(caller, request.path_params["run_id"].strip(), failed=True, error=error)
            return JSONResponse({"lease": lease_payload(run)})

    async def release(self, request: Request, caller: Session) -> Response:
        body = await self._lease_body(request, "release")
        self._typed(request, "release", body, "reason", str, "")
        with self.agh.lock:
            run = self.agh.release(caller, request.path_params["run_id"].strip())
            return JSONResponse({"lease": lease_payload(run)})


def sorted_capabilities(s: Session) -> list[dict[str, str]]:
    caps = [compact({"id": c["id"], "summary": c.get("summary"), "source": c.get("source")}) for c in s.capabilities]
    return sorted(caps, key=lambda c: (c.get("source", ""), c["id"]))


def preview(body: Any) -> str:
    text = body if isinstance(body, str) else json.dumps(body)
    text = " ".join(text.split())
    return text[:180]


def sent_message(message_id: str, channel_id: str, from_session: str, to_peer: str, body: Any,
                 metadata: dict[str, Any], agh: AghState) -> dict[str, Any]:
    """The 202 echo of send/reply: bare caller session id, server time with fractions."""
    return compact({"message_id": message_id, "channel_id": channel_id, "from_session_id": from_session,
                    "to_session_id": to_peer, "metadata": metadata_payload(metadata),
                    "timestamp": ts(agh.clock.now())}) | {"body": body}


# ----- app -----------------------------------------------------------------------------------

async def not_found(request: Request, exc: Exception) -> Response:
    # gin answers unknown paths and unregistered methods alike with a plain-text 404.
    return PlainTextResponse("404 page not found", status_code=404)


def create_app(session: str = "sess-local", agent: str = "local-agent", workspace: str = "ws-local",
               seed: bool = True, **opts: Any) -> FaultInjector:
    """Build the emulator.

    Options (all keyword): `lease_seconds` default lease when a claim/heartbeat gives none (300);
    `sweep_interval` seconds of emulator time between expired-lease sweeps (15); `spawn_max_children`,
    `spawn_max_depth`, `spawn_max_active_per_workspace` and `permission_policy` give the seed session a
    lineage with that spawn budget / permission policy (without them AGH's defaults apply: 5 children,
    depth 1, empty policy); `coordinator` overrides coordinator config fields; `capabilities` (list of
    ids) for the seed session; `provider` / `model` of the seed session; `channel` joined by the seed
    session ("general"); `soul` SOUL.md text for the seed agent; `turn_seconds` how long the emulated agent
    takes to answer a prompt (0); `agents` the agent definitions `GET /api/agents` lists.
    """
    clock = Clock()
    agh = AghState(clock, default_lease_seconds=int(opts.get("lease_seconds", 300)),
                   sweep_interval=float(opts.get("sweep_interval", 15.0)), coordinator=opts.get("coordinator"))
    agh.add_workspace(workspace, name=workspace, root_dir=f"/workspaces/{workspace}")
    seed_ids: dict[str, str] = {"session_id": session, "agent_name": agent, "workspace_id": workspace}
    if seed:
        lineage = None
        budget_keys = ("spawn_max_children", "spawn_max_depth", "spawn_max_active_per_workspace")
        if any(k in opts for k in budget_keys) or "permission_policy" in opts:
            budget = {"max_children": opts.get("spawn_max_children", 5), "max_depth": opts.get("spawn_max_depth", 1),
                      "ttl_seconds": 0, "max_active_per_workspace": opts.get("spawn_max_active_per_workspace", 0)}
            lineage = {"spawn_depth": 0, "auto_stop_on_parent": False, "spawn_budget": budget,
                       "permission_policy": opts.get("permission_policy") or {}}
        agh.add_session(session, agent, workspace_id=workspace, channel=opts.get("channel", "general"),
                        name=f"{agent}-session", provider=opts.get("provider", "claude"), model=opts.get("model", ""),
                        lineage=lineage,
                        capabilities=[{"id": c, "source": "agent"} for c in opts.get("capabilities", [])])
        task, run = agh.add_task("Seed task", workspace_id=workspace, channel=opts.get("channel", "general"),
                                 task_id="task-seed-0001", run_id="run-seed-0001", identifier="SEED-1")
        seed_ids |= {"task_id": task.id, "run_id": run.id, "channel": opts.get("channel", "general")}
        if opts.get("soul") is not None:
            agh.set_soul(agent, opts["soul"])
    api = AgentApi(agh)
    catalog = opts.get("agents")
    if catalog is None:
        catalog = [{"name": n, "provider": "claude", "prompt": f"You are {n}."} for n in (agent, "worker")]
    sessions = SessionRoutes(agh, turn_seconds=float(opts.get("turn_seconds", 0.0)), agents=catalog)
    app = Starlette(routes=api.routes() + sessions.routes(), exception_handlers={404: not_found, 405: not_found})
    app.state.agh = agh
    app.state.sessions = sessions
    app.state.clock = clock
    app.state.seed = seed_ids
    for name in ("add_task", "add_session", "post_message", "deliver_inbox", "stop_session", "sweep", "set_soul",
                 "add_channel"):
        setattr(app.state, name, getattr(agh, name))
    return FaultInjector(app, error_body=lambda status, message: {"error": message})


def parse_options(argv: list[str]) -> dict[str, Any]:
    """Flags for `python -m tests.emulators agh ...`: --session, --agent, --workspace, --lease-seconds."""
    parser = argparse.ArgumentParser(prog="python -m tests.emulators agh")
    parser.add_argument("--session", default="sess-local", help="seed session id")
    parser.add_argument("--agent", default="local-agent", help="seed session agent name")
    parser.add_argument("--workspace", default="ws-local", help="seed workspace id")
    parser.add_argument("--lease-seconds", type=int, default=300, help="default task lease")
    parser.add_argument("--turn-seconds", type=float, default=0.0, help="how long the agent takes to answer")
    args = parser.parse_args(argv)
    return {"session": args.session, "agent": args.agent, "workspace": args.workspace,
            "lease_seconds": args.lease_seconds, "turn_seconds": args.turn_seconds}
