"""The AGH emulator speaks AGH's agent API: shapes from the API reference page, errors, leases, spawn, channels.

Every test runs against a real server, once over loopback TCP and once over a Unix socket, with a plain
httpx2 client. Lease expiry moves the emulator clock instead of sleeping.
"""

from __future__ import annotations

import re
import shutil
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
import pytest

from tests.emulators import agh
from tests.emulators.faults import Fault
from tests.emulators.serving import serve_in_thread

# ----- expected shapes, transcribed from the seed API reference page (seed 004) ---------------------
# A key ending in "?" may be absent (Go `omitempty`); every other key must be present. No other keys may
# appear. Leaves: "str", "int", "bool", "time" (RFC 3339 UTC), "any", "map" (object of any values),
# a tuple of allowed strings, a one-element list (array of that shape) or a nested dict.

KIND = ("status", "request", "reply", "blocker", "handoff", "result", "review_request")
RUN_STATUS = ("queued", "claimed", "starting", "running", "completed", "failed", "canceled", "needs_attention")
TASK_STATUS = ("draft", "pending", "blocked", "ready", "in_progress", "completed", "failed", "canceled")
SESSION_STATE = ("starting", "active", "stopping", "stopped")
SESSION_TYPE = ("user", "dream", "system", "coordinator", "spawned")
VALIDATION = ("missing", "inactive", "valid", "invalid")

ACTOR = {"kind": "str", "ref?": "str"}
CHANNEL = {"allowed_message_kinds": [KIND], "channel?": "str", "display_name": "str", "id": "str",
           "last_activity_at?": "time", "purpose?": "str", "run_id?": "str", "task_id?": "str",
           "workflow_id?": "str", "workspace_id?": "str"}
LEASE = {"claim_token_hash?": "str", "claimed_by?": ACTOR, "coordination_channel?": CHANNEL,
         "coordination_channel_id?": "str", "heartbeat_at?": "time", "lease_until?": "time", "run_id": "str",
         "session_id?": "str", "status": RUN_STATUS, "task_id": "str"}
TASK_REF = {"effective_paused?": "bool", "id": "str", "identifier?": "str", "latest_event_seq": "int",
            "owner?": ACTOR, "paused?": "bool", "paused_by_task_id?": "str",
            "priority?": ("low", "medium", "high", "urgent"), "scope": ("global", "workspace"),
            "status": TASK_STATUS, "title": "str", "workspace_id?": "str"}
RUN = {"attempt": "int", "claim_token_hash?": "str", "claimed_at?": "time", "claimed_by?": ACTOR,
       "coordination_channel?": CHANNEL, "coordination_channel_id?": "str", "ended_at?": "time", "error?": "str",
       "failure_kind?": "str", "heartbeat_at?": "time", "id": "str", "idempotency_key?": "str",
       "lease_until?": "time", "metadata?": "any", "network_channel?": "str", "origin": ACTOR,
       "previous_run_id?": "str", "queued_at": "time", "result?": "any", "session_id?": "str",
       "started_at?": "time", "status": RUN_STATUS, "task_id": "str"}
CLAIM = {"coordination_channel?": CHANNEL, "lease": LEASE, "run": RUN, "task": TASK_REF}
METADATA = {"coordination_channel_id": "str", "correlation_id": "str", "ext?": "map", "message_kind": KIND,
            "run_id": "str", "task_id": "str", "workflow_id?": "str"}
MESSAGE = {"body": "any", "channel_id": "str", "from_session_id": "str", "message_id": "str",
           "metadata": METADATA, "timestamp": "time", "to_session_id?": "str"}
PERMISSIONS = {k: ["str"] for k in ("mcp_servers", "network_channels", "sandbox_profiles", "skills", "tools",
                                    "workspace_paths")}
LINEAGE = {"auto_stop_on_parent": "bool", "parent_session_id?": "str", "permission_policy": PERMISSIONS,
           "root_session_id?": "str",
           "spawn_budget": {"max_active_per_workspace?": "int", "max_children": "int", "max_depth": "int",
                            "ttl_seconds": "int"},
           "spawn_depth": "int", "spawn_role?": "str", "ttl_expires_at?": "time"}
SELF = {"agent_name": "str", "model?": "str", "provider": "str", "session_id": "str"}
WORKSPACE = {"id?": "str", "name?": "str", "root_dir?": "str"}
AGENT_SESSION = {"channel?": "str", "created_at": "time", "id": "str", "lineage?": LINEAGE, "name?": "str",
                 "state": SESSION_STATE, "type?": SESSION_TYPE, "updated_at": "time"}
CAPABILITY = {"id": "str", "source?": "str", "summary?": "str"}
COORDINATOR = {"agent_name": "str", "default_ttl_seconds": "int", "enabled": "bool",
               "max_active_sessions_per_workspace": "int", "max_children": "int", "model?": "str",
               "provider?": "str", "source": ("workspace", "global", "default"), "workspace_id?": "str"}
LIMITS = {"context_section_limit": "int", "max_active_task_leases": "int", "max_children": "int",
          "max_spawn_depth": "int"}
ME = {"active_task_leases": [LEASE], "capabilities": [CAPABILITY], "channels": [CHANNEL],
      "coordinator": COORDINATOR, "limits": LIMITS, "self": SELF, "session": AGENT_SESSION, "workspace": WORKSPACE}
SECTION = {"limit": "int", "returned": "int", "truncated": "bool"}
RUN_SUMMARY = {"attempt": "int", "claim_token_hash?": "str", "claimed_at": "time", "claimed_by?": ACTOR,
               "coordination_channel_id?": "str", "ended_at": "time", "error?": "str", "failure_kind?": "str",
               "heartbeat_at": "time", "id": "str", "lease_until": "time", "max_attempts": "int",
               "previous_run_id?": "str", "queued_at": "time", "session_id?": "str", "started_at": "time",
               "status": RUN_STATUS, "task_id": "str"}
BUNDLE = {"current_run?": RUN_SUMMARY, "execution_profile?": "map", "handoff_summary?": "str",
          "latest_event_seq": "int",
          "limits": {"context_body_max_bytes": "int", "max_runtime_seconds": "int", "summary_max_bytes": "int"},
          "prior_attempts": [RUN_SUMMARY], "recent_events": ["map"], "review_continuation?": "map",
          "review_history": ["map"], "task": TASK_REF}
SOUL_SECTION = {"active": "bool", "config_digest?": "str", "digest?": "str", "enabled": "bool",
                "max_body_bytes?": "int", "max_bytes?": "int", "present": "bool", "principles": ["str"],
                "role?": "str", "snapshot_id?": "str", "source_path?": "str", "tone": ["str"], "truncated?": "bool",
                "valid": "bool", "validation_status?": VALIDATION}
CONTEXT = {
    "capabilities": {"capabilities": [CAPABILITY], "section": SECTION},
    "coordination_channel": {"available": "bool", "channel?": CHANNEL},
    "inbox_summary": {"items": [{"channel_id": "str", "kind": KIND, "message_id": "str", "metadata": METADATA,
                                 "preview?": "str", "timestamp": "time"}],
                      "section": SECTION, "unread_count": "int"},
    "limits": LIMITS,
    "peer_roster": {"peers": [{"capabilities": ["str"], "channel_id?": "str", "display_name?": "str",
                               "peer_id": "str", "session_id?": "str"}], "section": SECTION},
    "provenance": {"generated_at": "time", "source": "str"},
    "self": SELF, "session": AGENT_SESSION, "soul": SOUL_SECTION,
    "task": {"available": "bool", "bundle?": BUNDLE, "lease?": LEASE, "task?": TASK_REF},
    "workspace": WORKSPACE,
}
SOUL = {"active": "bool", "agent_name?": "str", "body?": "str",
        "config_provenance": {"context_projection_bytes": "int", "digest": "str", "enabled": "bool",
                              "max_body_bytes": "int", "source?": "str"},
        "created_at?": "time",
        "diagnostics?": [{"code": "str", "column?": "int", "field?": "str", "line?": "int", "message": "str",
                          "owner_surface?": "str", "section?": "str", "severity": ("info", "warning", "error"),
                          "source_path?": "str"}],
        "digest?": "str", "enabled": "bool",
        "frontmatter": {k + "?": ["str"] for k in ("collaboration", "constraints", "memory_policy", "principles",
                                                   "tags", "tone")} | {"role?": "str", "version?": "str"},
        "limits": {"context_projection_bytes?": "int", "max_body_bytes": "int", "max_bytes?": "int"},
        "present": "bool", "revision_id?": "str", "snapshot_id?": "str", "source_path?": "str", "truncated?": "bool",
        "valid": "bool", "validation_status": VALIDATION}
SESSION = {
    "acp_caps?": {"config_options?": ["map"], "supported_models?": ["str"], "supported_modes?": ["str"],
                  "supports_load_session": "bool"},
    "acp_session_id?": "str",
    "activity?": {"current_tool?": "str", "deadline_at?": "time", "elapsed_ms": "int", "elapsed_seconds": "int",
                  "idle_seconds": "int", "iteration_current": "int", "iteration_max": "int",
                  "last_activity_at?": "time", "last_activity_detail?": "str", "last_activity_kind?": "str",
                  "last_progress_at?": "time", "tool_call_id?": "str", "turn_id?": "str", "turn_source?": "str",
                  "turn_started_at?": "time"},
    "agent_name": "str", "attach_expires_at?": "time", "attachable": "bool", "attached_to?": "str", "badge": "str",
    "channel?": "str", "created_at": "time", "failure?": "map",
    "health?": {"active_prompt": "bool", "agent_name": "str", "attachable": "bool", "eligible_for_wake": "bool",
                "health": ("healthy", "degraded", "stale", "dead", "unknown"), "ineligibility_reason?": "str",
                "last_activity_at?": "time", "last_error?": "str", "last_presence_at?": "time",
                "session_id": "str", "state": ("idle", "prompting", "stopped", "detached"), "updated_at": "time",
                "workspace_id": "str"},
    "id": "str", "lineage?": LINEAGE, "model?": "str", "name?": "str", "provider": "str",
    "reasoning_effort?": "str", "sandbox?": "map", "state": SESSION_STATE, "stop_detail?": "str",
    "stop_reason?": "str", "type?": SESSION_TYPE, "updated_at": "time", "workspace_id?": "str",
    "workspace_path?": "str",
}
SPAWN = {"lineage": LINEAGE, "permissions": PERMISSIONS, "session": SESSION}
ERROR = {"diagnostic?": {"category": "str", "code": "str", "data_freshness": "str", "doc_url?": "str",
                         "evidence?": "map", "id": "str", "message": "str", "severity": "str",
                         "suggested_command?": "str", "title": "str"},
         "error": "str"}

TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?Z$")


def assert_shape(value: Any, shape: Any, path: str = "$") -> None:
    if shape == "any":
        return
    if isinstance(shape, dict):
        assert isinstance(value, dict), f"{path}: expected object, got {value!r}"
        fields = {key.rstrip("?"): key for key in shape}
        unexpected = set(value) - set(fields)
        assert not unexpected, f"{path}: keys not on the seed page: {sorted(unexpected)}"
        for name, key in fields.items():
            if name in value:
                assert_shape(value[name], shape[key], f"{path}.{name}")
            else:
                assert key.endswith("?"), f"{path}: required key {name!r} missing"
    elif isinstance(shape, list):
        assert isinstance(value, list), f"{path}: expected array, got {value!r}"
        for index, item in enumerate(value):
            assert_shape(item, shape[0], f"{path}[{index}]")
    elif isinstance(shape, tuple):
        assert value in shape, f"{path}: {value!r} not one of {shape}"
    elif shape == "map":
        assert isinstance(value, dict), f"{path}: expected object, got {value!r}"
    elif shape == "time":
        assert isinstance(value, str) and TIME.match(value), f"{path}: not an RFC 3339 UTC time: {value!r}"
    elif shape == "int":
        assert isinstance(value, int) and not isinstance(value, bool), f"{path}: expected integer, got {value!r}"
    else:
        expected = {"str": str, "bool": bool}[shape]
        assert isinstance(value, expected), f"{path}: expected {shape}, got {value!r}"


# ----- fixtures --------------------------------------------------------------------------------

IDENTITY = {"X-AGH-Session-ID": "sess-local", "X-AGH-Agent": "local-agent"}


class Emulator:
    """One served emulator app and a client speaking as the seed session."""

    def __init__(self, app: Any, base_url: str, uds: str | None) -> None:
        self.app, self.base_url, self.uds = app, base_url, uds
        self.client = self.client_with(IDENTITY)

    def client_with(self, headers: dict[str, str]) -> httpx2.Client:
        transport = httpx2.HTTPTransport(uds=self.uds) if self.uds else httpx2.HTTPTransport()
        return httpx2.Client(base_url=self.base_url, transport=transport, headers=headers)

    def as_(self, session_id: str, agent: str) -> httpx2.Client:
        """Another client on the same server speaking as a different session."""
        return self.client_with({"X-AGH-Session-ID": session_id, "X-AGH-Agent": agent})


@pytest.fixture(params=["tcp", "uds"])
def serve(request: pytest.FixtureRequest) -> Iterator[Any]:
    """Call serve(**create_app options) to get an Emulator; each one runs over TCP and over a Unix socket."""
    started: list[Any] = []
    directory = tempfile.mkdtemp(prefix="agh", dir="/tmp")  # short: socket paths are capped near 108 bytes

    def start(**options: Any) -> Emulator:
        app = agh.create_app(**options)
        uds = str(Path(directory) / f"agh{len(started)}.sock") if request.param == "uds" else None
        context = serve_in_thread(app, uds=uds)
        base = context.__enter__()
        emulator = Emulator(app, "http://unix" if uds else base, uds)
        started.append((context, emulator))
        return emulator

    yield start
    for context, emulator in started:
        emulator.client.close()
        context.__exit__(None, None, None)
    shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture
def emu(serve: Any) -> Emulator:
    return serve()


def meta(run_id: str = "run-seed-0001", kind: str = "status", **extra: Any) -> dict[str, Any]:
    return {"task_id": "task-seed-0001", "run_id": run_id, "coordination_channel_id": "general",
            "correlation_id": "corr-1", "message_kind": kind, **extra}


def claim(client: httpx2.Client, **body: Any) -> httpx2.Response:
    return client.post("/api/agent/tasks/claim-next", json=body)


# ----- shapes of every endpoint ---------------------------------------------------------------------

def test_me_context_coordinator_and_channels_match_the_seed_page(emu: Emulator) -> None:
    me = emu.client.get("/api/agent/me")
    assert me.status_code == 200 and set(me.json()) == {"me"}
    assert_shape(me.json()["me"], ME)
    assert me.json()["me"]["self"]["session_id"] == "sess-local"
    assert me.json()["me"]["active_task_leases"] == []

    context = emu.client.get("/api/agent/context").json()
    assert_shape(context["context"], CONTEXT)
    assert context["context"]["task"] == {"available": False}
    assert context["context"]["provenance"]["source"] == "daemon.situation"

    emu.app.state.add_session("sess-peer", "peer-agent")
    emu.app.state.post_message("sess-peer", {"text": "hello"}, meta())
    assert claim(emu.client).status_code == 200
    context = emu.client.get("/api/agent/context").json()["context"]
    assert_shape(context, CONTEXT)
    assert context["task"]["available"] is True and context["task"]["lease"]["run_id"] == "run-seed-0001"
    assert context["inbox_summary"]["unread_count"] == 1
    assert context["peer_roster"]["peers"][0]["peer_id"] == "peer-agent.sess-peer"
    me = emu.client.get("/api/agent/me").json()["me"]
    assert_shape(me, ME)
    assert [lease["run_id"] for lease in me["active_task_leases"]] == ["run-seed-0001"]

    coordinator = emu.client.get("/api/agent/coordinator/config", params={"workspace": "ignored"})
    assert coordinator.status_code == 200
    assert_shape(coordinator.json()["coordinator"], COORDINATOR)
    assert coordinator.json()["coordinator"]["source"] == "workspace"

    channels = emu.client.get("/api/agent/channels")
    assert channels.status_code == 200
    for channel in channels.json()["channels"]:
        assert_shape(channel, CHANNEL)
    assert [c["id"] for c in channels.json()["channels"]] == ["general"]


def test_claim_and_every_lease_mutation_match_the_seed_page(emu: Emulator) -> None:
    claimed = claim(emu.client, lease_seconds=120)
    assert claimed.status_code == 200 and set(claimed.json()) == {"claim"}
    body = claimed.json()["claim"]
    assert_shape(body, CLAIM)
    assert body["run"]["status"] == "claimed" and body["lease"]["session_id"] == "sess-local"
    assert body["lease"]["claimed_by"] == {"kind": "agent_session", "ref": "sess-local"}
    assert re.fullmatch(r"sha256:[0-9a-f]{64}", body["lease"]["claim_token_hash"])
    assert "claim_token" not in claimed.text.replace("claim_token_hash", "")

    beat = emu.client.post("/api/agent/tasks/run-seed-0001/heartbeat", json={"lease_seconds": 60})
    assert beat.status_code == 200 and set(beat.json()) == {"lease"}
    assert_shape(beat.json()["lease"], LEASE)
    done = emu.client.post("/api/agent/tasks/run-seed-0001/complete", json={"result": {"ok": True}})
    assert done.status_code == 200
    assert_shape(done.json()["lease"], LEASE)
    assert done.json()["lease"]["status"] == "completed" and "lease_until" not in done.json()["lease"]

    emu.app.state.add_task("second", run_id="run-2")
    assert claim(emu.client).status_code == 200
    failed = emu.client.post("/api/agent/tasks/run-2/fail", json={"error": "boom", "metadata": {"why": 1}})
    assert failed.status_code == 200 and failed.json()["lease"]["status"] == "failed"
    assert_shape(failed.json()["lease"], LEASE)

    emu.app.state.add_task("third", run_id="run-3")
    assert claim(emu.client).status_code == 200
    released = emu.client.post("/api/agent/tasks/run-3/release", json={"reason": "not mine"})
    assert released.status_code == 200
    assert_shape(released.json()["lease"], LEASE)
    assert released.json()["lease"] == {"task_id": released.json()["lease"]["task_id"], "run_id": "run-3",
                                        "status": "queued", "coordination_channel_id": "general"}


def test_channel_send_recv_and_reply_match_the_seed_page(emu: Emulator) -> None:
    emu.app.state.add_session("sess-peer", "peer-agent")
    peer = emu.as_("sess-peer", "peer-agent")
    sent = peer.post("/api/agent/channels/general/send", json={"body": {"text": "hi"}, "metadata": meta()})
    assert sent.status_code == 202 and set(sent.json()) == {"message"}
    assert_shape(sent.json()["message"], MESSAGE)
    assert sent.json()["message"]["from_session_id"] == "sess-peer"
    assert re.fullmatch(r"msg-[0-9a-f]{16}", sent.json()["message"]["message_id"])

    received = emu.client.get("/api/agent/channels/general/recv")
    assert received.status_code == 200 and set(received.json()) == {"messages"}
    [message] = received.json()["messages"]
    assert_shape(message, MESSAGE)
    assert message["from_session_id"] == "peer-agent.sess-peer"  # recv carries the network peer id
    assert message["body"] == {"text": "hi"}

    replied = emu.client.post("/api/agent/channels/reply",
                              json={"reply_to_message_id": message["message_id"], "body": "got it"})
    assert replied.status_code == 202
    assert_shape(replied.json()["message"], MESSAGE)
    assert replied.json()["message"]["to_session_id"] == "peer-agent.sess-peer"
    assert replied.json()["message"]["metadata"]["message_kind"] == "reply"
    [direct] = peer.get("/api/agent/channels/general/recv").json()["messages"]
    assert direct["to_session_id"] == "peer-agent.sess-peer" and direct["body"] == "got it"
    peer.close()


def test_spawn_returns_201_with_the_seed_page_shape(emu: Emulator) -> None:
    spawned = emu.client.post("/api/agent/spawn", json={
        "agent_name": "worker", "ttl_seconds": 600, "spawn_role": "worker", "auto_stop_on_parent": True,
        "permissions": {"tools": [], "skills": []}})
    assert spawned.status_code == 201 and set(spawned.json()) == {"spawn"}
    body = spawned.json()["spawn"]
    assert_shape(body, SPAWN)
    assert body["session"]["type"] == "spawned" and body["session"]["channel"] == "general"
    assert body["lineage"]["parent_session_id"] == "sess-local" and body["lineage"]["spawn_depth"] == 1
    assert body["lineage"]["spawn_budget"] == {"max_children": 5, "max_depth": 1, "ttl_seconds": 600}


def test_soul_and_soul_validate_match_the_seed_page(emu: Emulator) -> None:
    missing = emu.client.get("/api/agent/soul")
    assert missing.status_code == 200
    assert_shape(missing.json(), SOUL)
    assert missing.json()["validation_status"] == "missing" and missing.json()["present"] is False

    good = "---\nrole: reviewer\ntone: [calm, precise]\n---\nBe kind."
    valid = emu.client.post("/api/agent/soul/validate", json={"body": good})
    assert valid.status_code == 200
    assert_shape(valid.json(), SOUL)
    assert valid.json()["frontmatter"] == {"role": "reviewer", "tone": ["calm", "precise"]}

    invalid = emu.client.post("/api/agent/soul/validate", json={"body": "---\nmood: odd\n---\n"})
    assert invalid.status_code == 422  # same payload, not the error envelope
    assert_shape(invalid.json(), SOUL)
    assert invalid.json()["validation_status"] == "invalid"
    assert invalid.json()["diagnostics"][0]["code"] == "unsupported_field"

    emu.app.state.set_soul("local-agent", good)
    assert emu.client.get("/api/agent/soul").json()["validation_status"] == "valid"
    assert emu.client.post("/api/agent/soul/validate", content=b"").status_code == 200
    soul = emu.client.get("/api/agent/context").json()["context"]["soul"]
    assert soul["role"] == "reviewer" and soul["tone"] == ["calm", "precise"]


# ----- identity -------------------------------------------------------------------------------------

@pytest.mark.parametrize(("headers", "status", "code", "text"), [
    ({}, 401, "identity_required", "AGH_SESSION_ID is required for agent commands"),
    ({"X-AGH-Session-ID": "sess-local"}, 401, "identity_required", "AGH_AGENT is required for agent commands"),
    ({"X-AGH-Session-ID": "sess-nope", "X-AGH-Agent": "local-agent"}, 401, "identity_stale",
     "agent session identity is not known to the daemon"),
    ({"X-AGH-Session-ID": "sess-local", "X-AGH-Agent": "other-agent"}, 401, "identity_mismatch",
     "AGH_AGENT does not match the daemon session agent"),
    ({**IDENTITY, "X-AGH-Workspace-ID": "ws-other"}, 403, "identity_unauthorized",
     "agent session does not belong to the requested workspace"),
])
def test_identity_header_errors_use_the_agh_error_body(emu: Emulator, headers: dict, status: int, code: str,
                                                       text: str) -> None:
    client = emu.client_with(headers)
    for method, path in [("GET", "/api/agent/me"), ("POST", "/api/agent/tasks/claim-next"),
                         ("POST", "/api/agent/tasks/run-seed-0001/heartbeat"), ("POST", "/api/agent/spawn")]:
        response = client.request(method, path)  # no body: identity is checked before the body
        assert response.status_code == status, (method, path, response.text)
        assert_shape(response.json(), ERROR)
        assert response.json()["error"].startswith(text + ": ")
        diagnostic = response.json()["diagnostic"]
        assert (diagnostic["code"], diagnostic["id"]) == (code, f"agentidentity.{code}")
        assert (diagnostic["category"], diagnostic["severity"], diagnostic["data_freshness"]) == \
            ("session", "error", "live")
    client.close()


def test_matching_workspace_header_is_accepted(emu: Emulator) -> None:
    assert emu.client.get("/api/agent/me", headers={"X-AGH-Workspace-ID": "ws-local"}).status_code == 200


def test_stopped_session_is_stale(emu: Emulator) -> None:
    emu.app.state.stop_session("sess-local")
    response = emu.client.get("/api/agent/me")
    assert response.status_code == 401
    assert response.json()["diagnostic"]["code"] == "identity_stale"
    assert response.json()["error"].startswith("agent session identity is not active")


# ----- tasks ----------------------------------------------------------------------------------------

def test_claim_with_no_queued_task_returns_204(emu: Emulator) -> None:
    assert claim(emu.client).status_code == 200
    assert emu.client.post("/api/agent/tasks/run-seed-0001/complete", json={}).status_code == 200
    empty = claim(emu.client)
    assert empty.status_code == 204 and empty.content == b""


def test_second_claim_while_holding_a_lease_returns_409(emu: Emulator) -> None:
    emu.app.state.add_task("another")
    assert claim(emu.client).status_code == 200
    again = claim(emu.client, wait=True)  # 409 even when waiting
    assert again.status_code == 409
    assert_shape(again.json(), ERROR)
    assert again.json()["error"] == ('task: active run lease exists: session "sess-local" already owns an active '
                                     "task-run lease")


def test_expired_lease_refuses_a_stale_complete_with_409(serve: Any) -> None:
    emu = serve(sweep_interval=3600)
    assert claim(emu.client, lease_seconds=30).status_code == 200
    emu.app.state.clock.advance(31)
    stale = emu.client.post("/api/agent/tasks/run-seed-0001/complete", json={"result": "late"})
    assert stale.status_code == 409
    assert "AUTONOMY_LEASE_EXPIRED" in stale.json()["error"]
    assert emu.client.post("/api/agent/tasks/run-seed-0001/heartbeat", json={}).status_code == 409
    # The session may claim again at once; the run itself only returns to the queue with the sweep.
    assert claim(emu.client).status_code == 204
    emu.app.state.sweep()
    again = claim(emu.client)
    assert again.status_code == 200 and again.json()["claim"]["run"]["id"] == "run-seed-0001"


def test_sweep_on_the_emulator_clock_requeues_and_the_old_holder_gets_409(emu: Emulator) -> None:
    assert claim(emu.client, lease_seconds=20).status_code == 200
    emu.app.state.clock.advance(21)  # past the lease and the 15 s sweep interval
    stale = emu.client.post("/api/agent/tasks/run-seed-0001/complete", json={})
    assert stale.status_code == 409 and "AUTONOMY_NO_ACTIVE_LEASE" in stale.json()["error"]
    assert emu.app.state.agh.runs["run-seed-0001"].status == "queued"


def test_default_lease_is_configurable_and_heartbeat_resets_it(serve: Any) -> None:
    emu = serve(lease_seconds=10, sweep_interval=3600)
    claimed = claim(emu.client).json()["claim"]
    assert emu.app.state.agh.runs["run-seed-0001"].lease_until is not None
    emu.app.state.clock.advance(8)
    beat = emu.client.post("/api/agent/tasks/run-seed-0001/heartbeat", json={})
    assert beat.status_code == 200 and beat.json()["lease"]["lease_until"] > claimed["lease"]["lease_until"]
    emu.app.state.clock.advance(8)  # 16 s after the claim, 8 s after the heartbeat
    assert emu.client.post("/api/agent/tasks/run-seed-0001/complete", json={}).status_code == 200


def test_lease_mutations_need_a_json_object_body(emu: Emulator) -> None:
    assert claim(emu.client).status_code == 200
    for action in ("heartbeat", "complete", "fail", "release"):
        empty = emu.client.post(f"/api/agent/tasks/run-seed-0001/{action}")
        assert empty.status_code == 400 and empty.json()["error"].endswith("request: EOF")
        wrong = emu.client.post(f"/api/agent/tasks/run-seed-0001/{action}", json=[1])
        assert wrong.status_code == 400
    assert emu.client.post("/api/agent/tasks/claim-next", json=["x"]).status_code == 400
    assert emu.client.post("/api/agent/tasks/run-seed-0001/fail", json={"error": " "}).status_code == 422


def test_run_lookup_is_per_session_409_without_a_lease_and_403_for_a_foreign_run(emu: Emulator) -> None:
    nothing = emu.client.post("/api/agent/tasks/run-nope/heartbeat", json={})
    assert nothing.status_code == 409 and "AUTONOMY_NO_ACTIVE_LEASE" in nothing.json()["error"]
    assert claim(emu.client).status_code == 200
    foreign = emu.client.post("/api/agent/tasks/run-nope/heartbeat", json={})
    assert foreign.status_code == 403 and "AUTONOMY_FOREIGN_RUN" in foreign.json()["error"]
    emu.app.state.add_session("sess-peer", "peer-agent")
    peer = emu.as_("sess-peer", "peer-agent")
    assert peer.post("/api/agent/tasks/run-seed-0001/complete", json={}).status_code == 409
    peer.close()


def test_release_requeues_the_same_run_for_anyone(emu: Emulator) -> None:
    assert claim(emu.client).status_code == 200
    assert emu.client.post("/api/agent/tasks/run-seed-0001/release", json={}).status_code == 200
    emu.app.state.add_session("sess-peer", "peer-agent")
    peer = emu.as_("sess-peer", "peer-agent")
    again = claim(peer)
    assert again.status_code == 200
    assert again.json()["claim"]["run"]["id"] == "run-seed-0001" and again.json()["claim"]["run"]["attempt"] == 1
    peer.close()


def test_claim_filters_by_capability_priority_and_workspace(emu: Emulator) -> None:
    emu.app.state.add_task("needs gpu", run_id="run-gpu", required_capabilities=["gpu"], priority="urgent")
    first = claim(emu.client).json()["claim"]
    assert first["run"]["id"] == "run-seed-0001"  # the urgent run needs a capability the caller lacks
    emu.client.post("/api/agent/tasks/run-seed-0001/complete", json={})
    assert claim(emu.client, priority_min=50).status_code == 204
    assert claim(emu.client, workspace_id="ws-other").status_code == 403
    assert claim(emu.client, lease_seconds=-1).status_code == 422
    assert claim(emu.client, required_capabilities=["gpu"]).json()["claim"]["run"]["id"] == "run-gpu"


# ----- spawn ----------------------------------------------------------------------------------------

def test_spawn_over_max_children_is_refused_with_409(serve: Any) -> None:
    emu = serve(spawn_max_children=1)
    request = {"agent_name": "worker", "ttl_seconds": 60}
    assert emu.client.post("/api/agent/spawn", json=request).status_code == 201
    refused = emu.client.post("/api/agent/spawn", json=request)
    assert refused.status_code == 409
    assert_shape(refused.json(), ERROR)
    assert refused.json()["error"] == ('session: spawn limit exceeded: parent "sess-local" has 1 active children, '
                                       "max_children 1")


def test_spawn_deeper_than_max_depth_is_refused_with_409(emu: Emulator) -> None:
    child = emu.client.post("/api/agent/spawn", json={"agent_name": "worker", "ttl_seconds": 60}).json()["spawn"]
    as_child = emu.as_(child["session"]["id"], "worker")
    refused = as_child.post("/api/agent/spawn", json={"agent_name": "grandchild", "ttl_seconds": 60})
    assert refused.status_code == 409 and "child depth 2 exceeds max_depth 1" in refused.json()["error"]
    as_child.close()


def test_spawn_validation_and_permission_errors(serve: Any) -> None:
    emu = serve(permission_policy={"tools": ["read"]})
    post = emu.client.post
    assert post("/api/agent/spawn", json={"agent_name": "w", "ttl_seconds": 5, "extra": 1}).status_code == 422
    assert post("/api/agent/spawn", content=b"").status_code == 422
    assert post("/api/agent/spawn", json={"agent_name": "w"}).status_code == 422
    assert post("/api/agent/spawn", json={"agent_name": "w", "ttl_seconds": 5,
                                          "spawn_role": "coordinator"}).status_code == 422
    widened = post("/api/agent/spawn", json={"agent_name": "w", "ttl_seconds": 5, "permissions": {"tools": ["rm"]}})
    assert widened.status_code == 403 and "widens parent permissions" in widened.json()["error"]
    narrowed = post("/api/agent/spawn", json={"agent_name": "w", "ttl_seconds": 5, "permissions": {"tools": ["read"]}})
    assert narrowed.status_code == 201 and narrowed.json()["spawn"]["permissions"]["tools"] == ["read"]


def test_spawned_child_is_reaped_when_its_ttl_passes(emu: Emulator) -> None:
    child = emu.client.post("/api/agent/spawn", json={"agent_name": "worker", "ttl_seconds": 30}).json()["spawn"]
    emu.app.state.clock.advance(31)
    as_child = emu.as_(child["session"]["id"], "worker")
    assert as_child.get("/api/agent/me").json()["diagnostic"]["code"] == "identity_stale"
    stopped = emu.app.state.agh.sessions[child["session"]["id"]]
    assert (stopped.stop_reason, stopped.stop_detail) == ("timeout", "spawn_reaper:ttl_expired")
    assert emu.client.post("/api/agent/spawn", json={"agent_name": "w", "ttl_seconds": 5}).status_code == 201
    as_child.close()


# ----- channels -------------------------------------------------------------------------------------

def test_recv_does_not_consume_messages(emu: Emulator) -> None:
    emu.app.state.add_session("sess-peer", "peer-agent")
    first = emu.app.state.post_message("sess-peer", {"n": 1}, meta())
    emu.app.state.clock.advance(1)
    second = emu.app.state.post_message("sess-peer", {"n": 2}, meta(kind="request"))
    emu.app.state.post_message("sess-peer", "no metadata, so recv skips it")
    for _ in range(3):
        ids = [m["message_id"] for m in emu.client.get("/api/agent/channels/general/recv").json()["messages"]]
        assert ids == [first, second]
    limited = emu.client.get("/api/agent/channels/general/recv", params={"limit": 1}).json()["messages"]
    assert [m["message_id"] for m in limited] == [first]  # limit keeps the oldest
    assert emu.client.get("/api/agent/context").json()["context"]["inbox_summary"]["unread_count"] == 2
    emu.app.state.deliver_inbox("sess-local")  # the daemon hands the queue to the agent
    assert emu.client.get("/api/agent/channels/general/recv").json()["messages"] == []


def test_recv_validates_its_channel_and_query(emu: Emulator) -> None:
    get = emu.client.get
    assert get("/api/agent/channels/Bad.Name/recv").status_code == 400
    assert get("/api/agent/channels/general/recv", params={"limit": 0}).status_code == 400
    assert get("/api/agent/channels/general/recv", params={"wait": "maybe"}).status_code == 400
    assert get("/api/agent/channels/general/recv", params={"wait": "f"}).json() == {"messages": []}


def test_recv_wait_returns_once_a_message_arrives(emu: Emulator) -> None:
    emu.app.state.add_session("sess-peer", "peer-agent")
    timer = threading.Timer(0.3, emu.app.state.post_message, args=("sess-peer", "late", meta()))
    timer.start()
    waited = emu.client.get("/api/agent/channels/general/recv", params={"wait": "true"}, timeout=10)
    timer.join()
    assert [m["body"] for m in waited.json()["messages"]] == ["late"]


def test_send_errors(emu: Emulator) -> None:
    post = emu.client.post
    assert post("/api/agent/channels/other/send", json={"body": 1, "metadata": meta()}).status_code == 404
    assert post("/api/agent/channels/general/send", content=b"").status_code == 400
    assert post("/api/agent/channels/general/send", json={"metadata": meta()}).status_code == 400
    bad_kind = post("/api/agent/channels/general/send", json={"body": 1, "metadata": meta(kind="gossip")})
    assert bad_kind.status_code == 400 and "unsupported message_kind" in bad_kind.json()["error"]
    leak = post("/api/agent/channels/general/send", json={"body": {"Claim_Token": "x"}, "metadata": meta()})
    assert leak.status_code == 400 and "raw lease credentials" in leak.json()["error"]
    null_body = post("/api/agent/channels/general/send", json={"body": None, "metadata": meta()})
    assert null_body.status_code == 202 and null_body.json()["message"]["body"] is None
    keyed = [post("/api/agent/channels/general/send", json={"body": 1, "metadata": meta(),
                                                             "idempotency_key": "k-1"}) for _ in range(2)]
    assert [r.json()["message"]["message_id"] for r in keyed] == ["k-1", "k-1"]


def test_reply_errors(emu: Emulator) -> None:
    post = emu.client.post
    assert post("/api/agent/channels/reply", json={"reply_to_message_id": "msg-x", "body": 1}).status_code == 404
    assert post("/api/agent/channels/reply", json={"body": 1}).status_code == 400
    emu.app.state.add_session("sess-peer", "peer-agent")
    source = emu.app.state.post_message("sess-peer", "q", meta(kind="request"))
    wrong = post("/api/agent/channels/reply", json={"reply_to_message_id": source, "body": 1, "metadata": meta()})
    assert wrong.status_code == 400 and "must be reply" in wrong.json()["error"]
    emu.app.state.stop_session("sess-peer")
    gone = post("/api/agent/channels/reply", json={"reply_to_message_id": source, "body": 1})
    assert gone.status_code == 404 and "target peer not found" in gone.json()["error"]


# ----- faults and transport odds ------------------------------------------------------------------------

def test_queued_429_fault_comes_back_with_retry_after(emu: Emulator) -> None:
    emu.app.faults.add(Fault(status=429, retry_after=2, path="/api/agent/tasks/claim-next", times=1))
    limited = claim(emu.client)
    assert limited.status_code == 429 and limited.headers["retry-after"] == "2"
    assert_shape(limited.json(), ERROR)
    assert claim(emu.client).status_code == 200  # the fault was used up


def test_faults_can_be_queued_over_http(emu: Emulator) -> None:
    queued = emu.client.post("/_emulator/faults", json={"status": 503, "path": "/api/agent/me"})
    assert queued.status_code == 201
    assert emu.client.get("/api/agent/me").status_code == 503
    assert emu.client.get("/api/agent/me").status_code == 200


def test_unknown_routes_and_methods_get_gins_plain_404(emu: Emulator) -> None:
    for response in (emu.client.get("/api/agent/nope"), emu.client.delete("/api/agent/me")):
        assert response.status_code == 404 and response.text == "404 page not found"


def test_parse_options_reads_the_standalone_flags() -> None:
    options = agh.parse_options(["--session", "sess-x", "--agent", "agent-x"])
    assert options["session"] == "sess-x" and options["agent"] == "agent-x"
    app = agh.create_app(**options)
    assert app.state.agh.sessions["sess-x"].agent_name == "agent-x"
