"""The Agent OS emulator speaks the wire contract in shared/platforms/agent-os.md.

Each test serves the emulator on a loopback port and talks to it with httpx2. Runs advance
only when a test moves the emulator's clock or script, so there are no sleeps; every wait is
bounded by the client's 5 s timeout.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import httpx2
import pytest

from tests.emulators.agent_os import create_app, parse_options, progress_script
from tests.emulators.faults import Fault
from tests.emulators.serving import serve_in_thread

KEY = "agent-os-test-key"
AUTH = {"Authorization": f"Bearer {KEY}"}
NoneType = type(None)
ANY = object()

# Shapes the adapter may rely on. Keys marked GUESS in agent-os.md are included as the
# emulator's best reading; the confirmed ones are noted per dict.
AGENT = {  # confirmed: last_run_*, metadata; name/live_bundle_id from request bodies; id: GUESS
    "id": str, "name": str, "live_bundle_id": (str, NoneType), "metadata": ANY,
    "created_at": str, "updated_at": str,
    "last_run_id": (str, NoneType), "last_run_status": (str, NoneType), "last_run_at": (str, NoneType),
}
PAGE = {"items": list, "total": int, "limit": int, "offset": int}  # GUESS beyond `items`
CREATE_RUN = {"run_id": str, "status": str, "thread_id": str}  # confirmed: run_id, status
RUN = {  # confirmed: input..completed_at; id/agent_id/thread_id/status: GUESS
    "id": str, "agent_id": str, "thread_id": str, "status": str,
    "input": ANY, "output": ANY, "error": ANY,
    "current_attempt_id": str, "current_attempt_no": int, "latest_seq": int,
    "created_at": str, "started_at": (str, NoneType), "completed_at": (str, NoneType),
}
EVENTS_PAGE = {"events": list, "latest_seq": int, "next_after_seq": (int, NoneType), "has_more": bool}  # confirmed
RUN_EVENT = {"id": str, "seq": int, "type": str, "timestamp": str, "attempt_id": str, "payload": dict}  # confirmed
ERROR = {"code": str, "message": str}  # GUESS
CREDENTIAL = {"id": str, "name": str, "type": str, "created_at": str, "publicConfig": dict, "data": dict}
TERMINAL = {"RUN_FINISHED", "RUN_FAILED", "RUN_CANCELLED"}


def assert_shape(obj: Any, shape: dict[str, Any]) -> None:
    assert isinstance(obj, dict), obj
    assert set(obj) == set(shape), f"keys differ: {sorted(set(obj) ^ set(shape))}"
    for key, expected in shape.items():
        if expected is ANY:
            continue
        allowed = expected if isinstance(expected, tuple) else (expected,)
        value = obj[key]
        assert isinstance(value, allowed) and not (isinstance(value, bool) and bool not in allowed), (key, value)


@pytest.fixture
def app() -> Any:
    return create_app()


@pytest.fixture
def client(app: Any) -> Iterator[httpx2.Client]:
    with serve_in_thread(app) as base_url, httpx2.Client(base_url=base_url, headers=AUTH, timeout=5.0) as c:
        yield c


def first_agent(client: httpx2.Client) -> str:
    return client.get("/v1/api/agents").json()["items"][0]["id"]


def start_run(client: httpx2.Client, app: Any, script: list[Any] | None = None, **body: Any) -> dict[str, Any]:
    """Create a run (with `script` if given) and return GET run, as the SDK's createAndStream does."""
    app.set_default_script(script)
    created = client.post("/v1/api/runs", json={"agent_id": first_agent(client), "input": {"q": "hi"}, **body})
    assert created.status_code == 201, created.text
    return client.get(f"/v1/api/runs/{created.json()['run_id']}").json()


def stream_url(run: dict[str, Any]) -> str:
    return f"/v1/api/runs/{run['id']}/events/stream"


def follow(client: httpx2.Client, run: dict[str, Any], *, params: dict[str, Any] | None = None,
           headers: dict[str, str] | None = None,
           on_event: Callable[[httpx2.ServerSentEvent], None] | None = None) -> list[httpx2.ServerSentEvent]:
    """Read one SSE connection to its end; `on_event` runs after each frame (to advance the run)."""
    received = []
    query = {"attemptId": run["current_attempt_id"], **(params or {})}
    with client.sse(stream_url(run), params=query, headers=headers) as source:
        assert source.response.status_code == 200
        for sse in source:
            received.append(sse)
            if on_event:
                on_event(sse)
    return received


def seqs(frames: list[httpx2.ServerSentEvent]) -> list[int]:
    return [json.loads(f.data)["seq"] for f in frames]


def poll(client: httpx2.Client, run: dict[str, Any], **params: Any) -> httpx2.Response:
    return client.get(f"/v1/api/runs/{run['id']}/events", params={"attemptId": run["current_attempt_id"], **params})


# ---- agents ----


def test_agents_list_returns_items_with_documented_agent_fields(client: httpx2.Client) -> None:
    body = client.get("/v1/api/agents").json()
    assert_shape(body, PAGE)
    assert body["total"] == len(body["items"]) == 2
    for agent in body["items"]:
        assert_shape(agent, AGENT)


def test_create_agent_returns_agent_and_a_reused_idempotency_key_is_a_409(client: httpx2.Client) -> None:
    first = client.post("/v1/api/agents", json={"name": "Builder", "metadata": {"k": 1}}, headers={"Idempotency-Key": "a1"})
    assert first.status_code == 201
    assert_shape(first.json(), AGENT)
    assert first.json()["metadata"] == {"k": 1}
    again = client.post("/v1/api/agents", json={"name": "Builder"}, headers={"Idempotency-Key": "a1"})
    assert again.status_code == 409
    assert_shape(again.json(), ERROR)


def test_agent_records_its_last_run(client: httpx2.Client, app: Any) -> None:
    run = start_run(client, app)
    agent = client.get(f"/v1/api/agents/{run['agent_id']}").json()
    assert (agent["last_run_id"], agent["last_run_status"]) == (run["id"], "queued")


# ---- runs ----


def test_get_run_right_after_create_carries_current_attempt_id_and_latest_seq(client: httpx2.Client, app: Any) -> None:
    created = client.post("/v1/api/runs", json={"agent_id": first_agent(client), "input": {"q": 1}})
    assert created.status_code == 201
    assert_shape(created.json(), CREATE_RUN)
    run = client.get(f"/v1/api/runs/{created.json()['run_id']}").json()
    assert_shape(run, RUN)
    assert run["id"] == created.json()["run_id"]
    assert (run["status"], run["latest_seq"], run["current_attempt_no"]) == ("queued", 0, 1)
    assert run["input"] == {"q": 1}


def test_create_run_with_same_idempotency_key_returns_the_same_run(client: httpx2.Client) -> None:
    body = {"agent_id": first_agent(client), "input": {"q": 1}, "idempotency_key": "run-key-1"}
    first = client.post("/v1/api/runs", json=body)
    second = client.post("/v1/api/runs", json=body)
    assert first.status_code == 201 and second.status_code == 200
    assert second.json()["run_id"] == first.json()["run_id"]
    assert client.get("/v1/api/runs").json()["total"] == 1
    header_key = {"agent_id": body["agent_id"], "input": {"q": 1}}
    by_header = [client.post("/v1/api/runs", json=header_key, headers={"Idempotency-Key": "hk"}) for _ in range(2)]
    assert by_header[0].json()["run_id"] == by_header[1].json()["run_id"] != first.json()["run_id"]


def test_idempotency_key_reused_for_different_input_is_refused(client: httpx2.Client) -> None:
    agent = first_agent(client)
    client.post("/v1/api/runs", json={"agent_id": agent, "input": 1, "idempotency_key": "k"})
    clash = client.post("/v1/api/runs", json={"agent_id": agent, "input": 2, "idempotency_key": "k"})
    assert clash.status_code == 409
    assert_shape(clash.json(), ERROR)


def test_create_run_reuses_a_given_thread_or_starts_a_new_one(client: httpx2.Client) -> None:
    agent = first_agent(client)
    first = client.post("/v1/api/runs", json={"agent_id": agent, "thread": {"new_thread": True}}).json()
    same = client.post("/v1/api/runs", json={"agent_id": agent, "thread": {"thread_id": first["thread_id"]}}).json()
    fresh = client.post("/v1/api/runs", json={"agent_id": agent, "thread": {"new_thread": True}}).json()
    assert same["thread_id"] == first["thread_id"] != fresh["thread_id"]
    missing = client.post("/v1/api/runs", json={"agent_id": agent, "thread": {"thread_id": "nope"}})
    assert missing.status_code == 404


def test_create_run_for_unknown_agent_or_without_agent_id_fails(client: httpx2.Client) -> None:
    assert client.post("/v1/api/runs", json={"agent_id": "nope"}).status_code == 404
    assert client.post("/v1/api/runs", json={"input": 1}).status_code == 400


def test_list_runs_returns_runs_newest_first_and_filters_by_agent(client: httpx2.Client, app: Any) -> None:
    one, two = start_run(client, app), start_run(client, app)
    body = client.get("/v1/api/runs").json()
    assert_shape(body, PAGE)
    assert [r["id"] for r in body["items"]] == [two["id"], one["id"]]
    for run in body["items"]:
        assert_shape(run, RUN)
    other = client.get("/v1/api/agents").json()["items"][1]["id"]
    assert client.get("/v1/api/runs", params={"agent_id": other}).json()["items"] == []


def test_unknown_run_is_a_404_with_an_error_body(client: httpx2.Client) -> None:
    response = client.get("/v1/api/runs/does-not-exist")
    assert response.status_code == 404
    assert_shape(response.json(), ERROR)
    assert response.json()["code"] == "RUN_NOT_FOUND"


# ---- progress ----


def test_clock_advance_emits_script_steps_as_they_fall_due(client: httpx2.Client, app: Any) -> None:
    run = start_run(client, app, progress_script(2))
    assert app.clock.advance(0.5) == []
    produced = app.clock.advance(0.5)
    assert [e["type"] for e in produced] == ["RUN_STARTED"]
    assert produced[0]["timestamp"] == "2026-01-01T00:00:01.000Z"
    assert client.get(f"/v1/api/runs/{run['id']}").json()["status"] == "running"
    app.clock.advance(10)
    done = client.get(f"/v1/api/runs/{run['id']}").json()
    assert (done["status"], done["latest_seq"], done["output"]) == ("completed", 4, {"ok": True})
    assert done["completed_at"] is not None


def test_run_passes_through_waiting_for_human_and_resumed_before_finishing(client: httpx2.Client, app: Any) -> None:
    run = start_run(client, app, progress_script(2, human=True))
    app.clock.advance(60)  # the human pause holds the script however far time moves
    url = f"/v1/api/runs/{run['id']}"
    assert client.get(url).json()["status"] == "waiting_for_human"
    resumed = client.post(f"{url}/resume", json={"payload": {"approved": True}})
    assert resumed.status_code == 202
    assert resumed.json()["status"] == "resumed"
    app.clock.advance(60)
    assert client.get(url).json()["status"] == "completed"
    types = [e["type"] for e in poll(client, run).json()["events"]]
    assert types == ["RUN_STARTED", "NODE_FINISHED", "NODE_FINISHED", "RUN_WAITING_FOR_HUMAN", "RUN_RESUMED", "RUN_FINISHED"]
    assert poll(client, run, afterSeq=4).json()["events"][0]["payload"] == {"node": "review", "approved": True}


def test_resume_of_a_run_that_is_not_waiting_is_a_409(client: httpx2.Client, app: Any) -> None:
    run = start_run(client, app)
    assert client.post(f"/v1/api/runs/{run['id']}/resume", json={}).status_code == 409


def test_cancel_emits_run_cancelled_and_ends_the_stream(client: httpx2.Client, app: Any) -> None:
    run = start_run(client, app, progress_script(3))
    app.advance(run["id"], 2)
    cancelled = client.post(f"/v1/api/runs/{run['id']}/cancel", json={"reason": "user"})
    assert cancelled.status_code == 202 and cancelled.json()["status"] == "cancelled"
    frames = follow(client, run)
    assert [json.loads(f.data)["type"] for f in frames][-1] == "RUN_CANCELLED"
    assert client.post(f"/v1/api/runs/{run['id']}/cancel", json={}).status_code == 409


def test_new_attempt_restarts_seq_and_keeps_the_old_ledger_readable(client: httpx2.Client, app: Any) -> None:
    run = start_run(client, app, progress_script(1, outcome="RUN_FAILED"))
    app.advance(run["id"], None)
    assert client.get(f"/v1/api/runs/{run['id']}").json()["status"] == "failed"
    app.new_attempt(run["id"], progress_script(1))
    retried = client.get(f"/v1/api/runs/{run['id']}").json()
    assert retried["current_attempt_no"] == 2 and retried["current_attempt_id"] != run["current_attempt_id"]
    app.advance(run["id"], None)
    new_events = poll(client, retried).json()["events"]
    assert [e["seq"] for e in new_events] == [1, 2, 3]
    assert {e["attempt_id"] for e in new_events} == {retried["current_attempt_id"]}
    assert poll(client, run).json()["events"][-1]["type"] == "RUN_FAILED"


# ---- polling ----


def test_events_poll_pages_by_after_seq_using_next_after_seq(client: httpx2.Client, app: Any) -> None:
    run = start_run(client, app, progress_script(5))
    app.advance(run["id"], None)  # 7 events: start, 5 nodes, finish
    collected, after, pages = [], 0, 0
    while True:
        body = poll(client, run, afterSeq=after, limit=3).json()
        assert_shape(body, EVENTS_PAGE)
        assert body["latest_seq"] == 7
        for event in body["events"]:
            assert_shape(event, RUN_EVENT)
            assert event["attempt_id"] == run["current_attempt_id"]
        collected += body["events"]
        pages += 1
        if not body["has_more"]:
            break
        after = body["next_after_seq"]
    assert [e["seq"] for e in collected] == list(range(1, 8))
    assert pages == 3
    assert body["next_after_seq"] == 7
    caught_up = poll(client, run, afterSeq=7).json()
    assert (caught_up["events"], caught_up["next_after_seq"], caught_up["has_more"]) == ([], None, False)


def test_events_poll_defaults_to_after_seq_zero(client: httpx2.Client, app: Any) -> None:
    run = start_run(client, app)
    app.advance(run["id"], 2)
    assert [e["seq"] for e in poll(client, run).json()["events"]] == [1, 2]


def test_events_poll_needs_a_known_attempt_id(client: httpx2.Client, app: Any) -> None:
    run = start_run(client, app)
    missing = client.get(f"/v1/api/runs/{run['id']}/events")
    assert missing.status_code == 400
    assert_shape(missing.json(), ERROR)
    unknown = client.get(f"/v1/api/runs/{run['id']}/events", params={"attemptId": "other"})
    assert unknown.status_code == 404


def test_null_when_done_cursor_mode_gives_null_next_after_seq_on_the_last_page() -> None:
    app = create_app(cursor_mode="null_when_done")
    with serve_in_thread(app) as base_url, httpx2.Client(base_url=base_url, headers=AUTH, timeout=5.0) as c:
        run = start_run(c, app, progress_script(2))
        app.advance(run["id"], None)
        assert poll(c, run, limit=2).json()["next_after_seq"] == 2
        assert poll(c, run, afterSeq=2, limit=2).json()["next_after_seq"] is None


# ---- SSE follow ----


def test_stream_delivers_every_event_live_in_order_and_ends_on_run_finished(client: httpx2.Client, app: Any) -> None:
    run = start_run(client, app, progress_script(4))
    app.advance(run["id"])  # one event exists before connecting; the rest are produced live

    def produce_next(sse: httpx2.ServerSentEvent) -> None:
        if json.loads(sse.data)["type"] not in TERMINAL:
            assert app.advance(run["id"]), "script ran out before a terminal event"

    frames = follow(client, run, on_event=produce_next)  # returns only when the server ends the stream
    assert seqs(frames) == list(range(1, 7))
    for sse in frames:
        event = json.loads(sse.data)
        assert (sse.event, sse.id) == ("run_event", str(event["seq"]))
        assert_shape(event, RUN_EVENT)
    assert json.loads(frames[-1].data)["type"] == "RUN_FINISHED"
    assert len(app.emulator.stream_log) == 1


@pytest.mark.parametrize(
    ("how", "resume"),
    [
        ("sdk_style_both", lambda last: ({"afterSeq": last + 1}, {"Last-Event-ID": str(last)})),
        ("last_event_id_only", lambda last: ({}, {"Last-Event-ID": str(last)})),
        ("after_seq_only", lambda last: ({"afterSeq": last}, {})),
    ],
)
def test_dropped_stream_resumes_with_nothing_lost_or_repeated(client: httpx2.Client, app: Any, how: str,
                                                              resume: Callable[[int], Any]) -> None:
    run = start_run(client, app, progress_script(6))
    app.advance(run["id"])
    app.drop_stream(after=3)

    def produce_next(sse: httpx2.ServerSentEvent) -> None:
        if json.loads(sse.data)["type"] not in TERMINAL:
            app.advance(run["id"])

    first: list[httpx2.ServerSentEvent] = []

    def record_then_produce(sse: httpx2.ServerSentEvent) -> None:
        first.append(sse)
        produce_next(sse)

    with pytest.raises(httpx2.RemoteProtocolError):  # the connection breaks mid-body
        follow(client, run, on_event=record_then_produce)
    assert seqs(first) == [1, 2, 3]
    app.advance(run["id"])  # produced while the client is away
    params, headers = resume(int(first[-1].id))
    rest = follow(client, run, params=params, headers=headers, on_event=produce_next)
    assert seqs(first) + seqs(rest) == list(range(1, 9))
    assert json.loads(rest[-1].data)["type"] == "RUN_FINISHED"


def test_eof_drop_ends_the_stream_cleanly_before_the_terminal_event(client: httpx2.Client, app: Any) -> None:
    run = start_run(client, app, progress_script(3))
    app.advance(run["id"], None)
    app.drop_stream(after=2, mode="eof")
    assert seqs(follow(client, run)) == [1, 2]
    assert seqs(follow(client, run, headers={"Last-Event-ID": "2"})) == [3, 4, 5]


def test_after_seq_wins_option_reproduces_the_sdk_off_by_one_skip() -> None:
    app = create_app(after_seq_wins=True)
    with serve_in_thread(app) as base_url, httpx2.Client(base_url=base_url, headers=AUTH, timeout=5.0) as c:
        run = start_run(c, app, progress_script(3))
        app.advance(run["id"], None)
        resumed = follow(c, run, params={"afterSeq": 3}, headers={"Last-Event-ID": "2"})
        assert seqs(resumed) == [4, 5]  # seq 3 is skipped, the hazard an adapter must avoid


def test_stream_resumed_after_the_terminal_event_ends_at_once(client: httpx2.Client, app: Any) -> None:
    run = start_run(client, app)
    app.advance(run["id"], None)
    assert follow(client, run, headers={"Last-Event-ID": "4"}) == []


def test_stream_shows_waiting_for_human_and_continues_after_resume(client: httpx2.Client, app: Any) -> None:
    run = start_run(client, app, progress_script(1, human=True))
    app.clock.advance(60)

    def answer(sse: httpx2.ServerSentEvent) -> None:
        if json.loads(sse.data)["type"] == "RUN_WAITING_FOR_HUMAN":
            app.resume(run["id"], {"approved": True})
        elif json.loads(sse.data)["type"] == "RUN_RESUMED":
            app.clock.advance(60)

    types = [json.loads(f.data)["type"] for f in follow(client, run, on_event=answer)]
    assert types == ["RUN_STARTED", "NODE_FINISHED", "RUN_WAITING_FOR_HUMAN", "RUN_RESUMED", "RUN_FINISHED"]


def test_stream_sends_comment_keepalives_while_idle() -> None:
    app = create_app(keepalive=0.05)
    with serve_in_thread(app) as base_url, httpx2.Client(base_url=base_url, headers=AUTH, timeout=5.0) as c:
        run = start_run(c, app)
        query = {"attemptId": run["current_attempt_id"]}
        lines = []
        with c.stream("GET", stream_url(run), params=query) as response:
            assert response.headers["content-type"].startswith("text/event-stream")
            for line in response.iter_lines():
                lines.append(line)
                if line == ": keepalive" and len(lines) == 1:
                    app.advance(run["id"], None)
        assert lines[0] == ": keepalive"
        assert sum(line.startswith("id: ") for line in lines) == 4


def test_stream_idle_timeout_ends_the_stream_without_a_terminal_event() -> None:
    app = create_app(stream_idle_timeout=0.05)
    with serve_in_thread(app) as base_url, httpx2.Client(base_url=base_url, headers=AUTH, timeout=5.0) as c:
        run = start_run(c, app)
        app.advance(run["id"])
        assert seqs(follow(c, run)) == [1]


def test_stream_path_answers_old_json_clients_with_a_poll_page(client: httpx2.Client, app: Any) -> None:
    run = start_run(client, app)
    app.advance(run["id"], 2)
    response = client.get(stream_url(run), params={"attemptId": run["current_attempt_id"]},
                          headers={"Accept": "application/json"})
    assert_shape(response.json(), EVENTS_PAGE)


def test_realtime_mode_lets_wall_clock_time_finish_the_run() -> None:
    app = create_app(realtime=True, step_seconds=0.01)
    with serve_in_thread(app) as base_url, httpx2.Client(base_url=base_url, headers=AUTH, timeout=5.0) as c:
        run = start_run(c, app)
        assert [json.loads(f.data)["type"] for f in follow(c, run)][-1] == "RUN_FINISHED"


# ---- auth, faults, errors ----


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer wrong"}, {"Authorization": KEY}, {"Authorization": f"Basic {KEY}"}],
    ids=["missing", "wrong-key", "no-scheme", "wrong-scheme"],
)
@pytest.mark.parametrize("path", ["/v1/api/agents", "/v1/api/runs", "/v1/api/runs/x/events/stream"])
def test_requests_without_valid_auth_header_are_refused_with_401(app: Any, headers: dict[str, str], path: str) -> None:
    with serve_in_thread(app) as base_url, httpx2.Client(base_url=base_url, timeout=5.0) as anonymous:
        response = anonymous.get(path, headers=headers)
    assert response.status_code == 401
    assert_shape(response.json(), ERROR)
    assert response.headers["www-authenticate"] == "Bearer"


def test_auth_header_scheme_and_tenant_header_are_configurable() -> None:
    app = create_app(auth_header="X-Api-Key", auth_scheme=None, api_key="k2", required_headers={"X-Workspace-Id": "ws-1"})
    with serve_in_thread(app) as base_url, httpx2.Client(base_url=base_url, timeout=5.0) as c:
        assert c.get("/v1/api/agents", headers={"X-Api-Key": "k2", "X-Workspace-Id": "ws-1"}).status_code == 200
        assert c.get("/v1/api/agents", headers={"X-Api-Key": "k2"}).status_code == 400
        assert c.get("/v1/api/agents", headers={"X-Api-Key": "k2", "X-Workspace-Id": "other"}).status_code == 403
        assert c.get("/v1/api/agents", headers={"Authorization": "Bearer k2"}).status_code == 401


def test_injected_429_comes_back_with_retry_after_then_the_api_recovers(client: httpx2.Client, app: Any) -> None:
    app.faults.add(Fault(status=429, retry_after=2, path="/v1/api/runs", method="POST", times=1))
    body = {"agent_id": first_agent(client)}
    limited = client.post("/v1/api/runs", json=body)
    assert limited.status_code == 429
    assert limited.headers["retry-after"] == "2"
    assert_shape(limited.json(), ERROR)
    assert limited.json()["code"] == "RATE_LIMITED"
    assert client.post("/v1/api/runs", json=body).status_code == 201


def test_problem_error_style_returns_rfc7807_bodies() -> None:
    app = create_app(error_style="problem")
    with serve_in_thread(app) as base_url, httpx2.Client(base_url=base_url, headers=AUTH, timeout=5.0) as c:
        body = c.get("/v1/api/runs/nope").json()
    assert_shape(body, {"type": str, "title": str, "status": int, "detail": str})
    assert (body["status"], body["title"]) == (404, "RUN_NOT_FOUND")


# ---- credentials and triggers ----


def test_credential_get_without_include_values_returns_no_secrets(client: httpx2.Client, app: Any) -> None:
    trigger = client.get("/v1/api/triggers", params={"agent_id": first_agent(client)}).json()["items"][0]
    cred_id = trigger["config"]["credential_id"]
    for params in ({}, {"includeValues": "false"}):
        body = client.get(f"/v1/api/credentials/{cred_id}", params=params).json()
        assert_shape(body, CREDENTIAL)
        assert "secret" not in json.dumps(body)
    assert app.emulator.secret_reads == []
    assert [r["include_values"] for r in app.emulator.credential_reads] == [False, False]


def test_credential_get_with_include_values_returns_values_and_logs_the_read(client: httpx2.Client, app: Any) -> None:
    cred_id = next(iter(app.emulator.credentials))
    body = client.get(f"/v1/api/credentials/{cred_id}", params={"includeValues": "true"}).json()
    assert_shape(body, {**CREDENTIAL, "values": dict})
    assert body["values"]["api_access_token"]
    assert app.emulator.secret_reads == [cred_id]
    listed = client.get("/v1/api/credentials").json()["items"]
    assert all("values" not in c for c in listed)


def test_triggers_filter_by_agent_id(client: httpx2.Client) -> None:
    agents = [a["id"] for a in client.get("/v1/api/agents").json()["items"]]
    chatwoot = client.get("/v1/api/triggers", params={"agent_id": agents[0]}).json()["items"]
    assert [(t["type"], t["config"]["chat_platform"]) for t in chatwoot] == [("chatwoot", "chatwoot")]
    assert client.get("/v1/api/triggers", params={"agent_id": agents[1]}).json()["items"] == []


def test_parse_options_serves_standalone_with_a_realtime_clock() -> None:
    options = parse_options(["--auth-scheme", "", "--step-seconds", "0.5"])
    assert options["realtime"] is True and options["auth_scheme"] is None and options["step_seconds"] == 0.5
    assert create_app(**options).emulator.realtime
