"""The AGH backend, driven through a real MCP client session against the AGH emulator.

Every tool call goes Client -> agentdeck server -> AghBackend -> httpx2 -> emulator: in-process
(ASGITransport) for the bulk, and over loopback TCP and a Unix socket for the transport tests.
Lease expiry moves the emulator clock (`app.state.clock.advance`); nothing here sleeps.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest

from agentdeck.backends import Deck
from agentdeck.backends.agh import AghBackend
from agentdeck.backends.agh_models import run_from_session
from agentdeck.config import load_config
from agentdeck.doctor import _check
from agentdeck.identity import process_caller
from tests.emulators.agh import create_app
from tests.emulators.faults import Fault
from tests.emulators.serving import serve_in_thread
from tests.helpers import ToolSession, tool_session

IDENTITY = {"AGH_SESSION_ID": "sess-local", "AGH_AGENT": "local-agent"}
RECV = "/api/agent/channels/general/recv"
AGH_TOOLS = {
    "list_agents", "spawn_agent", "list_channels", "send_channel_message", "receive_channel_messages",
    "claim_task", "heartbeat_task", "complete_task", "fail_task", "release_task",
    "list_runs", "get_run", "wait_for_run", "get_run_events", "send_followup", "cancel_run",
}


def meta(kind: str = "status", **extra: Any) -> dict[str, Any]:
    return {"task_id": "task-seed-0001", "run_id": "run-seed-0001", "coordination_channel_id": "general",
            "correlation_id": "corr-1", "message_kind": kind, **extra}


def _config(tmp_path: Path, toml: str = "", env: dict[str, str] | None = None, *, default: str = "agh") -> Any:
    path = tmp_path / "c.toml"
    path.write_text(f'default = "{default}"\n\n[backends.agh]\nkind = "agh"\n{toml}')
    base = {"AGENTDECK_DATA_DIR": str(tmp_path), "AGH_HOME": str(tmp_path / "agh-home")}
    return load_config(path=path, env=base | (IDENTITY if env is None else env))


@contextlib.asynccontextmanager
async def serve(config: Any, app: Any = None, deck: Deck | None = None) -> AsyncIterator[ToolSession]:
    transports = {"agh": httpx2.ASGITransport(app=app)} if app is not None else None
    # AGH never hands out the raw claim token, and neither do we.
    async with tool_session(config, transports=transports, deck=deck, never_shown=("agh_claim_",)) as session:
        yield session


@pytest.fixture
def app() -> Any:
    return create_app(sweep_interval=3600)


@pytest.fixture
def short_dir() -> Iterator[Path]:
    directory = tempfile.mkdtemp(prefix="agh", dir="/tmp")  # Unix socket paths are capped near 104 bytes
    yield Path(directory)
    shutil.rmtree(directory, ignore_errors=True)


# ----- registration -------------------------------------------------------------------------------

async def test_only_the_tools_agh_can_serve_are_registered_without_a_backend_argument(tmp_path: Path, app: Any) -> None:
    async with serve(_config(tmp_path), app) as mcp:
        tools = {t.name: t for t in (await mcp.client.list_tools()).tools}
        assert set(tools) == AGH_TOOLS
        assert all("backend" not in t.input_schema.get("properties", {}) for t in tools.values())


# ----- agents -------------------------------------------------------------------------------------

async def test_list_agents_lists_the_agent_definitions_spawn_accepts(tmp_path: Path, app: Any) -> None:
    async with serve(_config(tmp_path), app) as mcp:
        agents = await mcp.ok("list_agents")
        assert [a["name"] for a in agents["agents"]] == ["local-agent", "worker"]
        assert agents["agents"][0]["backend"] == "agh" and "claude" in agents["agents"][0]["description"]


async def test_spawn_agent_returns_the_child_session_after_its_first_turn_with_spawn_options(tmp_path: Path) -> None:
    app = create_app(permission_policy={"tools": ["read"]})
    async with serve(_config(tmp_path), app) as mcp:
        run = await mcp.ok("spawn_agent", agent="worker", prompt="review the diff", name="rev",
                           metadata={"permissions": {"tools": ["read"]}, "auto_stop_on_parent": False, "spawn_role": "worker"})
    child = app.state.agh.sessions[run["id"]]
    assert (run["state"], run["platform_state"], run["agent"], run["backend"]) == ("waiting", "active:idle", "worker", "agh")
    assert run["parent_run_id"] == "sess-local" and run["name"] == "rev" and child.type == "spawned"
    assert run["metadata"]["permissions"]["tools"] == ["read"] and run["metadata"]["channel"] == "general"
    assert run["metadata"]["prompt_delivered"] is True and run["metadata"]["turn_id"]
    assert child.lineage["auto_stop_on_parent"] is False
    assert child.lineage["spawn_budget"]["ttl_seconds"] == 3600  # spawn_ttl_seconds, the default


async def test_spawn_ttl_comes_from_the_call_or_the_setting(tmp_path: Path, app: Any) -> None:
    async with serve(_config(tmp_path, "spawn_ttl_seconds = 90\n"), app) as mcp:
        default = await mcp.ok("spawn_agent", agent="worker", prompt="x")
        explicit = await mcp.ok("spawn_agent", agent="worker", prompt="x", ttl_seconds=30)
    assert app.state.agh.sessions[default["id"]].lineage["spawn_budget"]["ttl_seconds"] == 90
    assert app.state.agh.sessions[explicit["id"]].lineage["spawn_budget"]["ttl_seconds"] == 30
    assert explicit["metadata"]["ttl_expires_at"]


async def test_spawn_over_the_budget_returns_conflict(tmp_path: Path) -> None:
    async with serve(_config(tmp_path), create_app(spawn_max_children=1)) as mcp:
        await mcp.ok("spawn_agent", agent="worker", prompt="one")
        refused = await mcp.error("spawn_agent", agent="worker", prompt="two")
    assert refused["code"] == "conflict" and "spawn limit exceeded" in refused["message"]


async def test_spawn_with_wider_permissions_than_the_parent_returns_invalid_argument(tmp_path: Path, app: Any) -> None:
    async with serve(_config(tmp_path), app) as mcp:
        refused = await mcp.error("spawn_agent", agent="worker", prompt="x", metadata={"permissions": {"tools": ["rm"]}})
        assert refused["code"] == "invalid_argument" and "widens parent permissions" in refused["message"]


async def test_spawn_refuses_workspace_foreign_parent_and_free_form_metadata_before_any_request(tmp_path: Path, app: Any) -> None:
    async with serve(_config(tmp_path), app) as mcp:
        for arguments in ({"workspace": "sub"}, {"parent_run_id": "sess-other"}, {"metadata": {"purpose": "x"}}):
            refused = await mcp.error("spawn_agent", agent="worker", prompt="x", **arguments)
            assert refused["code"] == "invalid_argument"
        assert app.faults.count("POST", "/api/agent/spawn") == 0


async def test_spawn_with_a_repeated_idempotency_key_starts_one_child(tmp_path: Path, app: Any) -> None:
    async with serve(_config(tmp_path), app) as mcp:
        first = await mcp.ok("spawn_agent", agent="worker", prompt="x", idempotency_key="k-1")
        second = await mcp.ok("spawn_agent", agent="worker", prompt="x", idempotency_key="k-1")
        assert first["id"] == second["id"] and app.faults.count("POST", "/api/agent/spawn") == 1


@pytest.mark.parametrize(("state", "reason", "expected"), [
    ("starting", "", "queued"), ("active", "", "running"), ("stopping", "", "running"),
    ("stopped", "completed", "succeeded"), ("stopped", "", "succeeded"), ("stopped", "user_canceled", "cancelled"),
    ("stopped", "shutdown", "cancelled"), ("stopped", "timeout", "failed"), ("stopped", "error", "failed"),
    ("stopped", "agent_crashed", "failed"), ("stopped", "budget_exceeded", "failed"), ("stopped", "max_iterations", "failed"),
    ("stopped", "loop_detected", "failed"), ("stopped", "hook_stopped", "failed"),
])
def test_session_states_map_to_run_states(state: str, reason: str, expected: str) -> None:
    # Spawn answers only with an active child, so the rest of the table is checked on the translation itself.
    run = run_from_session("agh", {"id": "sess-c", "agent_name": "w", "state": state, "stop_reason": reason, "stop_detail": "why"}, None, "sess-local")
    assert run.state == expected and run.platform_state == (f"{state}:{reason}" if reason else state)
    assert (run.error is not None) == (expected == "failed")


# ----- channels -----------------------------------------------------------------------------------

async def test_list_channels_lists_the_workspace_channels(tmp_path: Path, app: Any) -> None:
    async with serve(_config(tmp_path), app) as mcp:
        app.state.add_channel("builders", purpose="build talk")
        channels = await mcp.ok("list_channels")
        assert [(c["name"], c["description"], c["backend"]) for c in channels["channels"]] == [
            ("builders", "build talk", "agh"), ("general", "network_channel", "agh")]


async def test_send_without_a_task_uses_the_session_as_task_and_run(tmp_path: Path, app: Any) -> None:
    async with serve(_config(tmp_path), app) as mcp:
        app.state.add_session("sess-peer", "peer-agent")
        sent = await mcp.ok("send_channel_message", channel="general", body="hello", correlation_id="c-9")
        [envelope] = app.state.agh.inbox("sess-peer")
        assert envelope.body == "hello" and envelope.id == sent["id"]
        assert envelope.metadata == {"task_id": "session:sess-local", "run_id": "session:sess-local", "coordination_channel_id": "general",
                                     "correlation_id": "c-9", "message_kind": "status"}
        assert (sent["kind"], sent["sender"], sent["channel"], sent["correlation_id"]) == ("status", "local-agent.sess-local", "general", "c-9")


async def test_send_while_holding_a_task_names_its_task_and_run(tmp_path: Path, app: Any) -> None:
    async with serve(_config(tmp_path), app) as mcp:
        app.state.add_session("sess-peer", "peer-agent")
        await mcp.ok("claim_task")
        await mcp.ok("send_channel_message", channel="general", body="done soon", kind="request")
        [envelope] = app.state.agh.inbox("sess-peer")
        assert envelope.metadata["task_id"] == "task-seed-0001" and envelope.metadata["run_id"] == "run-seed-0001"
        assert envelope.metadata["correlation_id"] == "run-seed-0001" and envelope.metadata["message_kind"] == "request"


async def test_send_with_a_kind_agh_lacks_or_a_bad_channel_name_returns_invalid_argument(tmp_path: Path, app: Any) -> None:
    async with serve(_config(tmp_path), app) as mcp:
        assert (await mcp.error("send_channel_message", channel="general", body="x", kind="gossip"))["code"] == "invalid_argument"
        assert (await mcp.error("send_channel_message", channel="../me", body="x"))["code"] == "invalid_argument"
        assert (await mcp.error("receive_channel_messages", channel="General"))["code"] == "invalid_argument"
        assert not [r for r in app.faults.requests if "/channels/" in r["path"]]


async def test_send_to_a_channel_the_session_has_not_joined_returns_not_found(tmp_path: Path, app: Any) -> None:
    async with serve(_config(tmp_path), app) as mcp:
        refused = await mcp.error("send_channel_message", channel="elsewhere", body="x")
        assert refused["code"] == "not_found" and "local peer not found" in refused["message"]


async def test_send_with_an_idempotency_key_sends_one_message(tmp_path: Path, app: Any) -> None:
    async with serve(_config(tmp_path), app) as mcp:
        app.state.add_session("sess-peer", "peer-agent")
        first = await mcp.ok("send_channel_message", channel="general", body="once", idempotency_key="k-7")
        second = await mcp.ok("send_channel_message", channel="general", body="once", idempotency_key="k-7")
        assert first["id"] == second["id"] == "k-7" and len(app.state.agh.inbox("sess-peer")) == 1


async def test_reply_to_answers_the_sender_directly_as_a_reply(tmp_path: Path, app: Any) -> None:
    async with serve(_config(tmp_path), app) as mcp:
        app.state.add_session("sess-peer", "peer-agent")
        source = app.state.post_message("sess-peer", "can you review?", meta("request"))
        [got] = (await mcp.ok("receive_channel_messages", channel="general"))["messages"]
        assert (got["id"], got["sender"], got["kind"], got["body"]) == (source, "peer-agent.sess-peer", "request", "can you review?")
        reply = await mcp.ok("send_channel_message", channel="general", body="on it", reply_to=source)
        assert reply["reply_to"] == source and reply["kind"] == "reply" and reply["correlation_id"] == "corr-1"
        [direct] = app.state.agh.inbox("sess-peer")
        assert direct.body == "on it" and direct.to_peer == "peer-agent.sess-peer" and direct.metadata["message_kind"] == "reply"
        assert app.faults.count("POST", "/api/agent/channels/reply") == 1
        missing = await mcp.error("send_channel_message", channel="general", body="?", reply_to="msg-nope")
        assert missing["code"] == "not_found"


async def test_receive_returns_each_pending_message_once_and_history_does_not_consume(tmp_path: Path, app: Any) -> None:
    async with serve(_config(tmp_path), app) as mcp:
        app.state.add_session("sess-peer", "peer-agent")
        ids = []
        for n in range(3):
            ids.append(app.state.post_message("sess-peer", {"n": n}, meta()))
            app.state.clock.advance(1)
        history = await mcp.resource("agentdeck://channels/general")
        assert [m["id"] for m in history["messages"]] == ids
        first = await mcp.ok("receive_channel_messages", channel="general", limit=2)
        assert [m["id"] for m in first["messages"]] == ids[:2] and first["more"] is True
        assert json.loads(first["messages"][0]["body"]) == {"n": 0}
        second = await mcp.ok("receive_channel_messages", channel="general")
        assert [m["id"] for m in second["messages"]] == ids[2:] and second["more"] is False
        assert (await mcp.ok("receive_channel_messages", channel="general"))["messages"] == []
        assert len((await mcp.resource("agentdeck://channels/general"))["messages"]) == 3  # still pending on AGH
        later = app.state.post_message("sess-peer", "later", meta())
        assert [m["id"] for m in (await mcp.ok("receive_channel_messages", channel="general"))["messages"]] == [later]
        app.state.deliver_inbox("sess-local")  # the daemon hands the queue to the agent; nothing comes back
        assert (await mcp.ok("receive_channel_messages", channel="general"))["messages"] == []


async def test_receive_waits_until_a_message_arrives(tmp_path: Path, app: Any) -> None:
    async with serve(_config(tmp_path), app) as mcp:
        app.state.add_session("sess-peer", "peer-agent")
        got: dict[str, Any] = {}

        async def receive() -> None:
            got.update(await mcp.ok("receive_channel_messages", channel="general", wait_seconds=20))

        with anyio.fail_after(10):
            async with anyio.create_task_group() as tg:
                tg.start_soon(receive)
                while app.faults.count("GET", RECV) < 2:  # the first peek, then the waiting recv
                    await anyio.sleep(0.01)
                sent = app.state.post_message("sess-peer", "arrived", meta())
        assert [m["id"] for m in got["messages"]] == [sent]


async def test_receive_wait_behind_returned_messages_still_returns_only_new_ones(tmp_path: Path, app: Any) -> None:
    async with serve(_config(tmp_path), app) as mcp:
        app.state.add_session("sess-peer", "peer-agent")
        old = app.state.post_message("sess-peer", "old", meta())
        assert [m["id"] for m in (await mcp.ok("receive_channel_messages", channel="general"))["messages"]] == [old]
        got: dict[str, Any] = {}

        async def receive() -> None:
            got.update(await mcp.ok("receive_channel_messages", channel="general", wait_seconds=20))

        with anyio.fail_after(10):
            async with anyio.create_task_group() as tg:
                tg.start_soon(receive)
                while app.faults.count("GET", RECV) < 2:
                    await anyio.sleep(0.01)
                new = app.state.post_message("sess-peer", "new", meta())
        assert [m["id"] for m in got["messages"]] == [new]


async def test_receive_with_a_short_wait_and_nothing_pending_returns_no_messages(tmp_path: Path, app: Any) -> None:
    async with serve(_config(tmp_path), app) as mcp:
        with anyio.fail_after(10):
            batch = await mcp.ok("receive_channel_messages", channel="general", wait_seconds=0.1)
        assert batch["messages"] == [] and batch["more"] is False


async def test_returned_message_ids_persist_in_the_data_dir_for_the_same_session(tmp_path: Path, app: Any) -> None:
    config = _config(tmp_path)
    app.state.add_session("sess-peer", "peer-agent")
    first = app.state.post_message("sess-peer", "one", meta())

    def deck() -> Deck:
        backend = AghBackend("agh", config.backends["agh"], transport=httpx2.ASGITransport(app=app), data_dir=tmp_path)
        return Deck({"agh": backend}, "agh", process_caller(config))

    async with serve(config, deck=deck()) as mcp:
        assert [m["id"] for m in (await mcp.ok("receive_channel_messages", channel="general"))["messages"]] == [first]
    second = app.state.post_message("sess-peer", "two", meta())
    async with serve(config, deck=deck()) as mcp:  # a new process: it remembers what was returned
        assert [m["id"] for m in (await mcp.ok("receive_channel_messages", channel="general"))["messages"]] == [second]
    assert json.loads((tmp_path / "agh" / "agh.sess-local.json").read_text())["session_id"] == "sess-local"


# ----- tasks --------------------------------------------------------------------------------------

async def test_claim_heartbeat_and_complete_a_task(tmp_path: Path, app: Any) -> None:
    async with serve(_config(tmp_path), app) as mcp:
        claim = await mcp.ok("claim_task", lease_seconds=120)
        lease = claim["lease"]
        assert (claim["queue"], lease["run_id"], lease["holder"], lease["claim_token"]) == ("ws-local", "run-seed-0001", "sess-local", None)
        task = lease["task"]
        assert (task["id"], task["title"], task["state"], task["attempts"], task["max_attempts"], task["priority"]) == \
            ("task-seed-0001", "Seed task", "claimed", 1, 3, 20)
        assert task["payload"] == {"identifier": "SEED-1", "coordination_channel_id": "general"}
        app.state.clock.advance(100)
        beat = await mcp.ok("heartbeat_task", run_id="run-seed-0001")
        run = app.state.agh.runs["run-seed-0001"]
        assert round((run.lease_until - app.state.clock.now()).total_seconds()) == 120  # the claim's lease, not AGH's 300 s
        assert beat["lease_expires_at"] > lease["lease_expires_at"]
        done = await mcp.ok("complete_task", run_id="run-seed-0001", result={"ok": True})
        assert (done["state"], done["result"], done["title"]) == ("completed", {"ok": True}, "Seed task")
        assert run.status == "completed" and run.result == {"ok": True}


async def test_claim_with_nothing_queued_returns_no_lease(tmp_path: Path, app: Any) -> None:
    async with serve(_config(tmp_path), app) as mcp:
        await mcp.ok("claim_task")
        await mcp.ok("complete_task", run_id="run-seed-0001")
        empty = await mcp.ok("claim_task")
        assert empty["lease"] is None and empty["queue"] == "ws-local"


async def test_second_claim_while_holding_a_lease_returns_conflict(tmp_path: Path, app: Any) -> None:
    async with serve(_config(tmp_path), app) as mcp:
        app.state.add_task("another")
        await mcp.ok("claim_task")
        refused = await mcp.error("claim_task")
        assert refused["code"] == "conflict" and "active run lease exists" in refused["message"]


async def test_claim_in_another_workspace_returns_invalid_argument(tmp_path: Path, app: Any) -> None:
    async with serve(_config(tmp_path), app) as mcp:
        refused = await mcp.error("claim_task", queue="ws-other")
        assert refused["code"] == "invalid_argument" and "cannot claim" in refused["message"]


async def test_fail_keeps_the_error_and_release_requeues_the_run(tmp_path: Path, app: Any) -> None:
    async with serve(_config(tmp_path), app) as mcp:
        await mcp.ok("claim_task")
        failed = await mcp.ok("fail_task", run_id="run-seed-0001", error="disk full", retryable=False)
        assert (failed["state"], failed["error"]) == ("failed", "disk full")
        assert app.state.agh.runs["run-seed-0001"].error == "disk full"
        app.state.add_task("second", run_id="run-2")
        await mcp.ok("claim_task")
        released = await mcp.ok("release_task", run_id="run-2", reason="not mine")
        assert released["state"] == "queued" and released["title"] == "second"
        assert app.state.agh.runs["run-2"].status == "queued"


async def test_a_given_claim_token_is_ignored(tmp_path: Path, app: Any) -> None:
    async with serve(_config(tmp_path), app) as mcp:
        await mcp.ok("claim_task")
        assert (await mcp.ok("complete_task", run_id="run-seed-0001", claim_token="anything"))["state"] == "completed"


async def test_complete_after_the_lease_expired_returns_lease_lost(tmp_path: Path, app: Any) -> None:
    async with serve(_config(tmp_path), app) as mcp:
        await mcp.ok("claim_task", lease_seconds=30)
        app.state.clock.advance(31)
        lost = await mcp.error("complete_task", run_id="run-seed-0001", result="late")
        assert lost["code"] == "lease_lost" and "AUTONOMY_LEASE_EXPIRED" in lost["message"]
        app.state.sweep()  # the run goes back to the queue
        again = await mcp.error("heartbeat_task", run_id="run-seed-0001")
        assert again["code"] == "lease_lost" and "AUTONOMY_NO_ACTIVE_LEASE" in again["message"]


async def test_mutating_a_run_the_session_does_not_hold_returns_lease_lost(tmp_path: Path, app: Any) -> None:
    async with serve(_config(tmp_path), app) as mcp:
        await mcp.ok("claim_task")
        foreign = await mcp.error("release_task", run_id="run-other")
        assert foreign["code"] == "lease_lost" and "AUTONOMY_FOREIGN_RUN" in foreign["message"]


async def test_a_fresh_process_names_the_held_task_from_the_agh_context(tmp_path: Path, app: Any) -> None:
    config = _config(tmp_path)
    async with serve(config, app) as first:
        await first.ok("claim_task")
    async with serve(config, app) as second:
        lease = await second.ok("heartbeat_task", run_id="run-seed-0001")
    assert (lease["task"]["id"], lease["task"]["title"], lease["task"]["max_attempts"]) == ("task-seed-0001", "Seed task", 3)


# ----- identity and errors --------------------------------------------------------------------------

async def test_missing_identity_answers_unauthorized_without_a_request(tmp_path: Path, app: Any) -> None:
    async with serve(_config(tmp_path, env={}), app) as mcp:
        for tool, arguments in (("list_channels", {}), ("claim_task", {}), ("spawn_agent", {"agent": "w", "prompt": "x"}),
                                ("complete_task", {"run_id": "r"}), ("receive_channel_messages", {"channel": "general"})):
            refused = await mcp.error(tool, **arguments)
            assert refused["code"] == "unauthorized" and "AGH_SESSION_ID and AGH_AGENT are not set" in refused["message"]
        with pytest.raises(Exception, match="unauthorized"):
            await mcp.client.read_resource("agentdeck://me")
        context = await mcp.resource("agentdeck://context")
    assert context["platform"]["agh"]["error"]["code"] == "unauthorized"
    assert app.faults.requests == []


@pytest.mark.parametrize(("env", "code"), [
    ({"AGH_SESSION_ID": "sess-gone", "AGH_AGENT": "local-agent"}, "identity_stale"),
    ({"AGH_SESSION_ID": "sess-local", "AGH_AGENT": "someone-else"}, "identity_mismatch"),
    ({**IDENTITY, "AGH_WORKSPACE_ID": "ws-other"}, "identity_unauthorized"),
])
async def test_an_identity_agh_refuses_answers_unauthorized_with_its_diagnostic_code(tmp_path: Path, app: Any, env: dict[str, str], code: str) -> None:
    async with serve(_config(tmp_path, env=env), app) as mcp:
        for tool, arguments in (("list_channels", {}), ("claim_task", {}), ("heartbeat_task", {"run_id": "r"}),
                                ("spawn_agent", {"agent": "w", "prompt": "x"})):
            refused = await mcp.error(tool, **arguments)
            assert refused["code"] == "unauthorized" and f"[AGH {code}: Agent identity error]" in refused["message"], refused


async def test_a_429_with_retry_after_on_a_read_is_retried(tmp_path: Path, app: Any) -> None:
    async with serve(_config(tmp_path), app) as mcp:
        app.faults.add(Fault(status=429, retry_after=0, path="/api/agent/channels", method="GET"))
        assert [c["name"] for c in (await mcp.ok("list_channels"))["channels"]] == ["general"]
        assert app.faults.count("GET", "/api/agent/channels") == 2


async def test_a_500_on_spawn_is_not_retried(tmp_path: Path, app: Any) -> None:
    async with serve(_config(tmp_path), app) as mcp:
        app.faults.add(Fault(status=500, path="/api/agent/spawn"))
        refused = await mcp.error("spawn_agent", agent="worker", prompt="x")
        assert refused["code"] == "unavailable" and app.faults.count("POST", "/api/agent/spawn") == 1


async def test_a_400_maps_to_invalid_argument_keeping_the_agh_text(tmp_path: Path, app: Any) -> None:
    async with serve(_config(tmp_path), app) as mcp:
        refused = await mcp.error("send_channel_message", channel="general", body="token agh_claim_abc123")
        assert refused["code"] == "invalid_argument" and "must not contain raw lease credentials" in refused["message"]
        await mcp.ok("claim_task")
        blank = await mcp.error("fail_task", run_id="run-seed-0001", error=" ")
        assert blank["code"] == "invalid_argument" and "run_failure.error is required" in blank["message"]


# ----- context ------------------------------------------------------------------------------------

async def test_me_and_context_resources_carry_agh_me_context_coordinator_and_soul(tmp_path: Path) -> None:
    app = create_app(soul="---\nrole: reviewer\n---\nBe kind.")
    async with serve(_config(tmp_path), app) as mcp:
        me = await mcp.resource("agentdeck://me")
        context = await mcp.resource("agentdeck://context")
    platform = me["platform"]
    assert me["backend"] == "agh" and set(platform) == {"me", "context", "coordinator", "soul"}
    assert platform["me"]["self"]["session_id"] == "sess-local" and platform["context"]["provenance"]["source"] == "daemon.situation"
    assert platform["coordinator"]["source"] == "workspace" and platform["soul"]["frontmatter"] == {"role": "reviewer"}
    assert context["platform"]["agh"]["me"]["workspace"]["id"] == "ws-local"
    assert context["backends"] == [{"name": "agh", "kind": "agh", "default": True, "capabilities": ["agents", "channels", "context", "run_cancel", "run_events", "run_followup", "runs", "tasks"]}]


async def test_an_invalid_soul_and_a_failing_part_are_recorded_not_raised(tmp_path: Path) -> None:
    app = create_app(soul="---\nmood: odd\n---\n")
    app.faults.add(Fault(status=503, path="/api/agent/coordinator/config", times=10))
    async with serve(_config(tmp_path, "max_retries = 0\n"), app) as mcp:
        platform = (await mcp.resource("agentdeck://me"))["platform"]
    assert platform["soul"]["validation_status"] == "invalid" and platform["soul"]["error"]["code"] == "invalid_argument"
    assert platform["coordinator"]["error"]["code"] == "unavailable" and platform["me"]["self"]["agent_name"] == "local-agent"


# ----- doctor -------------------------------------------------------------------------------------

async def test_doctor_reports_missing_identity_and_a_missing_socket(tmp_path: Path) -> None:
    results = await _check(_config(tmp_path, env={}))
    failed = {what: detail for ok, what, detail in results if not ok}
    assert "AGH_SESSION_ID and AGH_AGENT not set" in failed["agh: AGH identity"]
    assert "no socket" in failed["agh: AGH daemon"] and str(tmp_path / "agh-home" / "daemon.sock") in failed["agh: AGH daemon"]


async def test_doctor_passes_with_a_live_session_and_names_the_diagnostic_when_refused(tmp_path: Path, app: Any) -> None:
    good = AghBackend("agh", _config(tmp_path).backends["agh"], transport=httpx2.ASGITransport(app=app))
    stale = AghBackend("agh", _config(tmp_path, env={"AGH_SESSION_ID": "sess-gone", "AGH_AGENT": "local-agent"}).backends["agh"],
                       transport=httpx2.ASGITransport(app=app))
    try:
        assert all(ok for ok, _, _ in await good.doctor())
        checks = {what: (ok, detail) for ok, what, detail in await stale.doctor()}
    finally:
        await good.aclose()
        await stale.aclose()
    assert checks["AGH identity"][0] and checks["AGH daemon"][0]
    assert not checks["AGH identity accepted"][0] and "identity_stale" in checks["AGH identity accepted"][1]


# ----- real transports ----------------------------------------------------------------------------

@pytest.mark.parametrize("transport", ["tcp", "uds"])
async def test_every_kind_of_call_works_over_a_real_transport(tmp_path: Path, short_dir: Path, transport: str) -> None:
    app = create_app()
    uds = str(short_dir / "agh.sock") if transport == "uds" else None
    with serve_in_thread(app, uds=uds) as base_url:
        config = _config(tmp_path, f'socket = "{uds}"\n' if uds else f'base_url = "{base_url}"\n')
        app.state.add_session("sess-peer", "peer-agent")
        async with serve(config) as mcp:
            assert [c["name"] for c in (await mcp.ok("list_channels"))["channels"]] == ["general"]
            claim = await mcp.ok("claim_task")
            await mcp.ok("send_channel_message", channel="general", body="working on it")
            source = app.state.post_message("sess-peer", "ping", meta("request"))
            assert [m["id"] for m in (await mcp.ok("receive_channel_messages", channel="general"))["messages"]] == [source]
            assert (await mcp.ok("complete_task", run_id=claim["lease"]["run_id"]))["state"] == "completed"
            child = await mcp.ok("spawn_agent", agent="worker", prompt="say x")  # the prompt streams back over this transport
            assert child["state"] == "waiting" and child["metadata"]["prompt_delivered"] is True
            events = await mcp.ok("get_run_events", run_id=child["id"])
            assert [e["text"] for e in events["events"] if e["kind"] == "agent_message"] == ['You said: "say x"']
            assert (await mcp.resource("agentdeck://me"))["platform"]["me"]["self"]["session_id"] == "sess-local"
        if uds:
            assert all(ok for ok, _, _ in await _check(config))
    assert app.state.agh.inbox("sess-peer")[0].body == "working on it"


# ----- several backends at once ---------------------------------------------------------------------

async def test_with_local_and_agh_every_tool_takes_a_backend_and_agh_answers_for_itself(tmp_path: Path, app: Any) -> None:
    config = _config(tmp_path, '\n[backends.local]\nkind = "local"\n', default="local")
    app.state.add_session("sess-peer", "peer-agent")
    async with serve(config, app) as mcp:
        tools = {t.name: t for t in (await mcp.client.list_tools()).tools}
        assert "create_task" in tools and "list_runs" in tools
        for tool in tools.values():
            assert tool.input_schema["properties"]["backend"]["anyOf"] == [{"enum": ["agh", "local"], "type": "string"}, {"type": "null"}], tool.name
        unsupported = await mcp.error("create_task", title="x", backend="agh")
        assert unsupported["code"] == "unsupported"
        sent = await mcp.ok("send_channel_message", channel="general", body="via agh", backend="agh")
        assert sent["backend"] == "agh" and app.state.agh.inbox("sess-peer")[0].body == "via agh"
        local = await mcp.ok("send_channel_message", channel="general", body="via local")
        assert local["backend"] == "local"
        claim = await mcp.ok("claim_task", backend="agh")
        assert claim["backend"] == "agh" and claim["lease"]["task"]["backend"] == "agh"
    assert len(app.state.agh.inbox("sess-peer")) == 1
