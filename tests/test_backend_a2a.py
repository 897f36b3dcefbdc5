"""The A2A backend against the protocol's own reference server (a2a-sdk), on both bindings.

Every call goes MCP client -> agentdeck -> A2ABackend -> httpx2 -> loopback -> the a2a-sdk's
request handler running the small agents of tests/a2a_agents.py. Nobody on this project wrote
the server side of the protocol.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from mcp import Client
from starlette.types import ASGIApp, Receive, Scope, Send

from agentdeck.app import build_server
from agentdeck.config import load_config
from agentdeck.doctor import _check
from tests.a2a_agents import create_app
from tests.helpers import call, fail, free_port

pytest.importorskip("a2a")

BINDINGS = ["JSONRPC", "HTTP+JSON"]


class _Gate:
    """ASGI middleware around an agent: counts requests, can require a bearer token, answer 503 or cut streams."""

    def __init__(self, app: ASGIApp, token: str | None = None) -> None:
        self.app, self.token = app, token
        self.requests: list[str] = []
        self.fail_next: dict[str, int] = {}  # request marker -> how many to answer 503
        self.cut_streams = 0  # subscriptions to cut after their first two events

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        body = b""
        more = True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        marker = scope["path"] + " " + _method(body)
        self.requests.append(marker)

        replayed = False

        async def replay() -> Any:
            # The body once, then the real channel (which reports the client's disconnect).
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        if self.token and not scope["path"].endswith("agent-card.json"):
            auth = dict(scope["headers"]).get(b"authorization", b"").decode()
            if auth != f"Bearer {self.token}":
                await _plain(send, 401, b'{"error": {"code": 401, "status": "UNAUTHENTICATED", "message": "bad token"}}')
                return
        for key, left in list(self.fail_next.items()):
            if key in marker and left > 0:
                self.fail_next[key] = left - 1
                await _plain(send, 503, b'{"error": {"code": 503, "status": "UNAVAILABLE", "message": "busy"}}')
                return
        if self.cut_streams and ("subscribe" in marker or "SubscribeToTask" in marker):
            self.cut_streams -= 1
            events = 0

            async def cutting(message: dict[str, Any]) -> None:
                nonlocal events
                if message["type"] == "http.response.body" and message.get("body"):
                    events += 1
                    if events > 2:
                        raise ConnectionResetError("cut by the test")
                await send(message)

            await self.app(scope, replay, cutting)
            return
        await self.app(scope, replay, send)


def _method(body: bytes) -> str:
    try:
        return str(json.loads(body).get("method", ""))
    except (ValueError, AttributeError):
        return ""


async def _plain(send: Send, status: int, body: bytes) -> None:
    await send({"type": "http.response.start", "status": status, "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": body})


@contextlib.contextmanager
def agents(*names: str, token: str | None = None, **card: Any) -> Iterator[dict[str, tuple[str, _Gate]]]:
    """Serve each named test agent on its own loopback port; yields name -> (base URL, its gate)."""
    with contextlib.ExitStack() as stack:
        served: dict[str, tuple[str, _Gate]] = {}
        for name in names:
            port = free_port()
            base = f"http://127.0.0.1:{port}"
            gate = _Gate(create_app(name, base, bearer=token is not None, **card), token)
            server = uvicorn.Server(uvicorn.Config(gate, host="127.0.0.1", port=port, log_level="critical", lifespan="off"))
            thread = threading.Thread(target=server.run, daemon=True)
            thread.start()
            deadline = time.monotonic() + 10
            while not server.started:
                assert time.monotonic() < deadline, "agent did not start"
                time.sleep(0.01)
            stack.callback(thread.join, 5)
            stack.callback(setattr, server, "should_exit", True)
            served[name] = (base, gate)
        yield served


def config(tmp_path: Path, served: dict[str, tuple[str, Any]], binding: str = "auto", env: dict[str, str] | None = None) -> Any:
    lines = [f'{name} = "{url}"' for name, (url, _) in served.items()]
    (tmp_path / "c.toml").write_text(
        f'default = "peers"\n[backends.peers]\nkind = "a2a"\nbinding = "{binding}"\nmax_retries = 2\n[backends.peers.agents]\n' + "\n".join(lines) + "\n"
    )
    return load_config(path=tmp_path / "c.toml", env={"AGENTDECK_DATA_DIR": str(tmp_path / "data"), **(env or {})})


@contextlib.asynccontextmanager
async def session(cfg: Any) -> AsyncIterator[Client]:
    server = build_server(cfg)
    try:
        async with Client(server) as client:
            yield client
    finally:
        await server.deck.aclose()


@pytest.mark.parametrize("binding", BINDINGS)
async def test_spawn_delivers_the_prompt_and_the_answer_quotes_it(tmp_path: Path, binding: str) -> None:
    with agents("quoter") as served:
        async with session(config(tmp_path, served, binding)) as client:
            listed = await call(client, "list_agents")
            (agent,) = listed["agents"]
            assert agent["name"] == "quoter" and "quoter skill" in agent["description"]
            run = await call(client, "spawn_agent", {"agent": "quoter", "prompt": "token-7f3a"})
            assert run["id"].startswith("quoter:") and run["state"] in ("queued", "running", "succeeded")
            assert run["thread_id"]  # the task's context id, for follow-ups in the same conversation
            done = await call(client, "wait_for_run", {"run_id": run["id"], "timeout_seconds": 20})
            assert done["state"] == "succeeded" and done["platform_state"] == "TASK_STATE_COMPLETED"
            assert 'You said: "token-7f3a"' in done["metadata"]["status_message"]
            events = await call(client, "get_run_events", {"run_id": run["id"]})
            texts = [e["text"] for e in events["events"]]
            assert texts[0] == "token-7f3a" and any('You said: "token-7f3a"' in t for t in texts[1:])
            assert events["next_after_seq"] is None


@pytest.mark.parametrize("binding", BINDINGS)
async def test_wait_follows_the_stream_and_artifacts_are_session_files(tmp_path: Path, binding: str) -> None:
    seen: list[str] = []

    async def on_progress(value: float, total: float | None, message: str | None) -> None:
        seen.append(message or "")

    with agents("streamer") as served:
        async with session(config(tmp_path, served, binding)) as client:
            run = await call(client, "spawn_agent", {"agent": "streamer", "prompt": "go"})
            done = await call(client, "wait_for_run", {"run_id": run["id"], "timeout_seconds": 30}, progress_callback=on_progress)
            assert done["state"] == "succeeded"
            steps = [m for m in seen if "step" in m]
            assert steps == [f"agent: step {n} of 4" for n in range(1, 5)]
            assert len(seen) == len(set(seen)), seen  # nothing reported twice
            kinds = [e["kind"] for e in (await call(client, "get_run_events", {"run_id": run["id"]}))["events"]]
            assert kinds == ["message.user"] + ["message.agent"] * 5 + ["artifact"] * 3 + ["status"]
            files = await call(client, "list_session_files", {"run_id": run["id"]})
            assert sorted(f["path"] for f in files["files"]) == ["blob.bin", "report.txt", "result.json"]
            report = await client.call_tool("download_session_file", {"run_id": run["id"], "path": "report.txt"})
            assert report.content[-1].resource.text == "report body"  # type: ignore[union-attr]
            data = await client.call_tool("download_session_file", {"run_id": run["id"], "path": "result.json"})
            assert json.loads(data.content[-1].resource.text) == {"ok": True, "score": 7.0}  # type: ignore[union-attr]
            blob = await client.call_tool("download_session_file", {"run_id": run["id"], "path": "blob.bin"})
            assert blob.content[-1].resource.blob == "AAFiaW5hcnk="  # type: ignore[union-attr]


@pytest.mark.parametrize("binding", BINDINGS)
async def test_a_dropped_stream_is_resumed_without_losing_or_repeating_an_update(tmp_path: Path, binding: str) -> None:
    seen: list[str] = []

    async def on_progress(value: float, total: float | None, message: str | None) -> None:
        seen.append(message or "")

    with agents("streamer") as served:
        gate = served["streamer"][1]
        gate.cut_streams = 2
        async with session(config(tmp_path, served, binding)) as client:
            run = await call(client, "spawn_agent", {"agent": "streamer", "prompt": "go"})
            done = await call(client, "wait_for_run", {"run_id": run["id"], "timeout_seconds": 30}, progress_callback=on_progress)
        assert done["state"] == "succeeded"
        assert gate.cut_streams == 0 and sum("ubscribe" in r for r in gate.requests) >= 3  # cut twice, then followed to the end
        assert [m for m in seen if "step" in m] == [f"agent: step {n} of 4" for n in range(1, 5)]
        assert len(seen) == len(set(seen)), seen


async def test_a_task_waiting_for_input_goes_on_with_a_followup(tmp_path: Path) -> None:
    with agents("asker") as served:
        async with session(config(tmp_path, served)) as client:
            run = await call(client, "spawn_agent", {"agent": "asker", "prompt": "fix the bug"})
            waiting = await call(client, "wait_for_run", {"run_id": run["id"], "timeout_seconds": 20})
            assert waiting["state"] == "waiting" and waiting["platform_state"] == "TASK_STATE_INPUT_REQUIRED"
            assert waiting["metadata"]["waiting_for"].startswith("input")
            assert waiting["metadata"]["status_message"] == "Which branch?"
            after = await call(client, "send_followup", {"run_id": run["id"], "message": "main"})
            assert after["id"] == run["id"]  # the same task goes on
            done = await call(client, "wait_for_run", {"run_id": run["id"], "timeout_seconds": 20})
            assert done["state"] == "succeeded" and done["metadata"]["status_message"] == "Working on main"


async def test_cancel_stops_a_running_task_and_a_second_cancel_is_a_conflict(tmp_path: Path) -> None:
    with agents("forever") as served:
        async with session(config(tmp_path, served)) as client:
            run = await call(client, "spawn_agent", {"agent": "forever", "prompt": "spin"})
            short = await call(client, "wait_for_run", {"run_id": run["id"], "timeout_seconds": 1})
            assert short["state"] == "running"
            cancelled = await call(client, "cancel_run", {"run_id": run["id"]})
            assert cancelled["state"] == "cancelled" and cancelled["platform_state"] == "TASK_STATE_CANCELED"
            again = await fail(client, "cancel_run", {"run_id": run["id"]})
            assert again["code"] == "conflict"


async def test_a_failed_task_is_a_failed_run_with_the_agents_reason(tmp_path: Path) -> None:
    with agents("failer") as served:
        async with session(config(tmp_path, served)) as client:
            run = await call(client, "spawn_agent", {"agent": "failer", "prompt": "x"})
            done = await call(client, "wait_for_run", {"run_id": run["id"], "timeout_seconds": 20})
            assert done["state"] == "failed" and done["error"]["message"] == "the disk is full"


async def test_without_streaming_the_wait_polls(tmp_path: Path) -> None:
    with agents("streamer", streaming=False) as served:
        async with session(config(tmp_path, served, "HTTP+JSON")) as client:
            run = await call(client, "spawn_agent", {"agent": "streamer", "prompt": "go"})
            done = await call(client, "wait_for_run", {"run_id": run["id"], "timeout_seconds": 30})
            assert done["state"] == "succeeded"
        assert not any("subscribe" in r for r in served["streamer"][1].requests)


@pytest.mark.parametrize("binding", BINDINGS)
async def test_protocol_errors_become_our_codes_with_a_next_step(tmp_path: Path, binding: str) -> None:
    with agents("quoter") as served:
        async with session(config(tmp_path, served, binding)) as client:
            missing = await fail(client, "get_run", {"run_id": "quoter:no-such-task"})
            assert missing["code"] == "not_found" and "list_runs" in missing["message"]
            assert (await fail(client, "get_run", {"run_id": "not-a-run-id"}))["code"] == "invalid_argument"
            assert (await fail(client, "get_run", {"run_id": "nobody:x"}))["code"] == "not_found"
            assert (await fail(client, "spawn_agent", {"agent": "quoter", "prompt": "x", "workspace": "w"}))["code"] == "unsupported"


async def test_a_send_is_never_repeated_but_reads_are_retried(tmp_path: Path) -> None:
    with agents("quoter") as served:
        gate = served["quoter"][1]
        async with session(config(tmp_path, served, "HTTP+JSON")) as client:
            await call(client, "list_agents")
            gate.fail_next = {"message:send": 1}
            refused = await fail(client, "spawn_agent", {"agent": "quoter", "prompt": "once"})
            assert refused["code"] == "unavailable"
            assert sum("message:send" in r for r in gate.requests) == 1  # not sent a second time
            run = await call(client, "spawn_agent", {"agent": "quoter", "prompt": "once"})
            gate.fail_next = {"/tasks/": 1}
            read = await call(client, "get_run", {"run_id": run["id"]})
            assert read["id"] == run["id"]


async def test_credentials_go_as_the_card_asks_and_doctor_reports_them(tmp_path: Path) -> None:
    with agents("quoter", token="tok-right-0123456789") as served:
        async with session(config(tmp_path, served, env={"A2A_API_KEY": "tok-right-0123456789"})) as client:
            run = await call(client, "spawn_agent", {"agent": "quoter", "prompt": "authed"})
            assert (await call(client, "wait_for_run", {"run_id": run["id"], "timeout_seconds": 20}))["state"] == "succeeded"
        async with session(config(tmp_path, served, env={"A2A_API_KEY": "tok-wrong-0123456789"})) as client:
            refused = await fail(client, "spawn_agent", {"agent": "quoter", "prompt": "x"})
            assert refused["code"] == "unauthorized" and "tok-wrong" not in refused["message"]
        async with session(config(tmp_path, served)) as client:
            assert (await fail(client, "spawn_agent", {"agent": "quoter", "prompt": "x"}))["code"] == "unauthorized"
        good = await _check(config(tmp_path, served, env={"A2A_API_KEY": "tok-right-0123456789"}))
        bad = await _check(config(tmp_path, served, env={"A2A_API_KEY": "tok-wrong-0123456789"}))
    card_line = next(detail for ok, what, detail in good if what.endswith("quoter card"))
    assert "quoter 1.2.3" in card_line and "JSONRPC" in card_line and "HTTP+JSON" in card_line
    assert any(ok and what.endswith("credentials") for ok, what, _ in good)
    assert any(not ok and what.endswith("credentials") for ok, what, _ in bad)


def test_agent_names_are_checked_at_load(tmp_path: Path) -> None:
    from agentdeck.errors import ConfigError

    (tmp_path / "c.toml").write_text('default = "p"\n[backends.p]\nkind = "a2a"\n[backends.p.agents]\n"a:b" = "http://x"\n')
    with pytest.raises(ConfigError, match="agents"):
        load_config(path=tmp_path / "c.toml", env={})
