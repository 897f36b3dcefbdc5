"""The ArchAstro emulator speaks the wire protocol the official `archastro-sdk` expects.

Each test serves the emulator on a loopback port and drives it with the real SDK client (its
pydantic models check every response) or with raw httpx2 requests for status codes, headers
and error bodies. Time moves only through `app.advance(seconds)`: nothing sleeps.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx2
import pytest
from archastro.platform.client import PlatformClient
from archastro.platform.runtime.http_client import ApiError

from tests.emulators.archastro import create_app, parse_options
from tests.emulators.faults import Fault
from tests.emulators.serving import serve_in_thread

KEY = "sk_test_emulator"
JSON = {"x-archastro-api-key": KEY, "Content-Type": "application/json"}


@pytest.fixture
def app():
    return create_app()


@pytest.fixture
def base_url(app) -> Iterator[str]:
    with serve_in_thread(app) as url:
        yield url


@pytest.fixture
def sdk(base_url) -> Iterator[PlatformClient]:
    client = PlatformClient.with_secret_key(KEY, base_url=base_url)
    yield client
    client.close()


@pytest.fixture
def raw(base_url) -> Iterator[httpx2.Client]:
    with httpx2.Client(base_url=base_url, headers=JSON) as client:
        yield client


def _session(sdk: PlatformClient, app, **body):
    return sdk.agent_sessions.create({"agent": app.seeded["agent"], "instructions": "Summarise the inbox", **body})


# --- agent sessions --------------------------------------------------------------------------

def test_session_goes_pending_running_completed_as_the_clock_advances(sdk, app):
    session = _session(sdk, app)
    assert session.id.startswith("ase_") and session.status == "pending"
    assert session.started_at is None and session.trajectory is None and session.result is None

    app.advance(1)
    running = sdk.agent_sessions.get(session.id)
    assert running.status == "running" and running.started_at is not None
    assert running.trajectory.startswith("trj_")

    app.advance(5)
    done = sdk.agent_sessions.get(session.id)
    assert done.status == "completed" and done.result and done.completed_at > done.started_at
    assert done.error is None


def test_create_session_keeps_name_limits_and_metadata_and_fills_defaults(sdk, app):
    named = _session(sdk, app, name="nightly", max_turns=3, max_tokens=500, max_runs_per_turn=2,
                     metadata={"ticket": "T-1"}, thread="thr_abc", team="tea_x", user="usr_y")
    assert (named.name, named.max_turns, named.max_tokens, named.max_runs_per_turn) == ("nightly", 3, 500, 2)
    assert named.metadata == {"ticket": "T-1"} and named.instructions == "Summarise the inbox"
    plain = _session(sdk, app)
    assert (plain.name, plain.max_turns, plain.max_tokens, plain.max_runs_per_turn) == (None, 100, 20000, 25)
    assert plain.is_system_session is False and plain.inbox == []


def test_create_session_answers_201_and_refuses_unknown_agent_or_missing_instructions(raw, app):
    created = raw.post("/api/v1/agent_sessions", json={"agent": app.seeded["agent"], "instructions": "x"})
    assert created.status_code == 201 and created.json()["status"] == "pending"
    missing = raw.post("/api/v1/agent_sessions", json={"agent": "agi_nobody", "instructions": "x"})
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"
    invalid = raw.post("/api/v1/agent_sessions", json={"agent": app.seeded["agent"]})
    assert invalid.status_code == 422 and "instructions" in invalid.json()["error"]["message"]


def test_idle_session_waits_until_a_message_drives_a_turn(sdk, app):
    session = _session(sdk, app, start_idle=True)
    assert session.status == "waiting" and session.started_at is None
    app.advance(60)
    assert sdk.agent_sessions.get(session.id).status == "waiting"

    after = sdk.agent_sessions.message(session.id, {"content": "go", "metadata": {"n": 1}})
    assert after.status == "running"
    [item] = after.inbox
    assert item["content"] == "go" and item["role"] == "user" and item["metadata"] == {"n": 1}
    assert item["id"].startswith("msg_") and item["sent_at"] and item["sender_type"]

    app.advance(5)
    assert sdk.agent_sessions.get(session.id).status == "completed"


def test_scripted_turn_waits_then_resumes_on_message_then_fails(sdk, app):
    app.script_next_session("waiting", "failed")
    session = _session(sdk, app)
    app.advance(6)
    assert sdk.agent_sessions.get(session.id).status == "waiting"
    sdk.agent_sessions.message(session.id, {"content": "more detail", "role": "tool"})
    app.advance(5)
    failed = sdk.agent_sessions.get(session.id)
    assert failed.status == "failed" and failed.error and failed.result is None
    late = sdk.agent_sessions.message(session.id, {"content": "too late"})  # GUESS: kept, starts nothing
    assert late.status == "failed" and late.inbox[-1]["content"] == "too late"


def test_list_sessions_filters_by_agent_and_status_newest_first_with_limit(sdk, app, raw):
    other = app.add_agent("Second agent")
    first, second = _session(sdk, app), _session(sdk, app)
    app.advance(6)  # both complete
    third = _session(sdk, app)
    theirs = sdk.agent_sessions.create({"agent": other, "instructions": "x"})

    everything = sdk.agent_sessions.list()
    assert [s.id for s in everything.data] == [theirs.id, third.id, second.id, first.id]
    ours = sdk.agent_sessions.list(agent=[app.seeded["agent"]])
    assert [s.id for s in ours.data] == [third.id, second.id, first.id]
    done = sdk.agent_sessions.list(agent=[app.seeded["agent"]], status=["completed"])
    assert [s.id for s in done.data] == [second.id, first.id]
    assert [s.id for s in sdk.agent_sessions.list(limit=2).data] == [theirs.id, third.id]
    either = sdk.agent_sessions.list(status=["pending", "completed"], agent=[other, app.seeded["agent"]])
    assert len(either.data) == 4

    # The older JS SDK sends bare single values; a comma-separated list also works.
    assert [s["id"] for s in raw.get("/api/v1/agent_sessions", params={"agent": other}).json()["data"]] == [theirs.id]
    pending = raw.get("/api/v1/agent_sessions", params={"status": "pending,running"}).json()["data"]
    assert {s["id"] for s in pending} == {theirs.id, third.id}
    assert raw.get("/api/v1/agent_sessions", params={"status[]": "sleeping"}).status_code == 422


def test_cancel_is_idempotent_and_leaves_terminal_sessions_unchanged(sdk, app, raw):
    session = _session(sdk, app)
    cancelled = sdk.agent_sessions.cancel(session.id)
    assert cancelled.status == "cancelled" and cancelled.completed_at is not None
    again = raw.post(f"/api/v1/agent_sessions/{session.id}/cancel")
    assert again.status_code == 200 and again.json()["status"] == "cancelled"
    assert again.json()["completed_at"] == cancelled.completed_at.strftime("%Y-%m-%dT%H:%M:%S.%fZ")

    finished = _session(sdk, app)
    app.advance(6)
    assert sdk.agent_sessions.cancel(finished.id).status == "completed"
    assert raw.post("/api/v1/agent_sessions/ase_missing/cancel").status_code == 404


def test_only_delete_answers_204_without_a_body(sdk, app, raw):
    session = _session(sdk, app)
    live = raw.delete(f"/api/v1/agent_sessions/{session.id}")
    assert live.status_code == 422 and live.json()["error"]["code"] == "session_not_terminal"

    for response in (
        raw.get(f"/api/v1/agent_sessions/{session.id}"),
        raw.patch(f"/api/v1/agent_sessions/{session.id}", json={"metadata": {"a": 1}}),
        raw.post(f"/api/v1/agent_sessions/{session.id}/message", json={"content": "hi"}),
        raw.post(f"/api/v1/agent_sessions/{session.id}/cancel"),
        raw.post(f"/api/v1/agent_routines/{app.seeded['routine']}/invoke", json={"message": "m"}),
    ):
        assert response.status_code == 200 and response.json()["id"]
        assert response.headers["content-type"].startswith("application/json")

    gone = raw.delete(f"/api/v1/agent_sessions/{session.id}")
    assert gone.status_code == 204 and gone.content == b""
    assert raw.get(f"/api/v1/agent_sessions/{session.id}").status_code == 404
    sdk.agent_sessions.delete(_cancelled(sdk, app))  # the SDK reads 204 as "no body"


def _cancelled(sdk, app) -> str:
    return sdk.agent_sessions.cancel(_session(sdk, app).id).id


def test_update_session_replaces_metadata(sdk, app):
    session = _session(sdk, app, metadata={"a": 1, "b": 2})
    assert sdk.agent_sessions.update(session.id, {"metadata": {"c": 3}}).metadata == {"c": 3}
    assert sdk.agent_sessions.update(session.id, {}).metadata == {"c": 3}


# --- auth and transport ----------------------------------------------------------------------

def test_requests_without_an_api_key_are_refused_with_401(base_url):
    with httpx2.Client(base_url=base_url) as bare:
        missing = bare.get("/api/v1/agent_sessions")
        assert missing.status_code == 401 and missing.json()["error"]["code"] == "unauthorized"
        assert bare.get("/api/v1/agent_sessions", headers={"x-archastro-api-key": ""}).status_code == 401
        assert bare.get("/api/v1/agent_sessions", headers={"Authorization": "Bearer jwt"}).status_code == 401
        with_token = bare.get("/api/v1/agent_sessions",
                              headers={"x-archastro-api-key": "pk_live_app", "Authorization": "Bearer jwt"})
        assert with_token.status_code == 200


def test_sdk_surfaces_401_as_api_error(base_url):
    with PlatformClient(base_url=base_url) as anonymous:
        with pytest.raises(ApiError) as refused:
            anonymous.agent_sessions.list()
    assert refused.value.status == 401 and refused.value.error_code == "unauthorized"


def test_json_content_type_on_gets_and_empty_posts_is_accepted_and_bodies_must_be_json(raw, app):
    assert raw.get("/api/v1/agent_routines", headers={"Content-Type": "application/json"}).status_code == 200
    session = raw.post("/api/v1/agent_sessions", json={"agent": app.seeded["agent"], "instructions": "x"}).json()
    assert raw.post(f"/api/v1/agent_sessions/{session['id']}/cancel", content=b"").status_code == 200
    form = raw.post("/api/v1/agent_sessions", content=b"agent=x", headers={"Content-Type": "text/plain"})
    assert form.status_code == 415
    broken = raw.post("/api/v1/agent_sessions", content=b"{not json")
    assert broken.status_code == 400 and broken.json()["error"]["code"] == "invalid_json"


def test_injected_429_carries_retry_after_and_the_archastro_error_shape(app, raw, sdk):
    app.faults.add(Fault(status=429, retry_after=7, path="/api/v1/agent_sessions", times=2))
    limited = raw.get("/api/v1/agent_sessions")
    assert limited.status_code == 429 and limited.headers["retry-after"] == "7"
    assert limited.json() == {"error": {"code": "rate_limited", "message": "injected fault"}}
    with pytest.raises(ApiError) as refused:
        sdk.agent_sessions.list()
    assert refused.value.status == 429 and refused.value.error_code == "rate_limited"
    assert sdk.agent_sessions.list().data == []


def test_unknown_routes_answer_404_in_the_error_shape(raw):
    missing = raw.get("/api/v1/nothing_here")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"


# --- routines --------------------------------------------------------------------------------

def test_list_routines_filters_by_agent_and_event_type(sdk, app):
    seeded = app.seeded
    every = {r.id: r for r in sdk.agent_routines.list().data}
    assert set(every) == {seeded["routine"], seeded["draft_routine"], seeded["event_routine"]}
    assert every[seeded["routine"]].status == "active" and every[seeded["routine"]].lookup_key == "triage"
    assert every[seeded["draft_routine"]].status == "draft"
    invocable = sdk.agent_routines.list(agent=[seeded["agent"]], event_type="agentroutine.invoked").data
    assert {r.id for r in invocable} == {seeded["routine"], seeded["draft_routine"]}
    other = app.add_agent("Other")
    assert sdk.agent_routines.list(agent=[other]).data == []
    with pytest.raises(ApiError) as unknown:
        sdk.agent_routines.list(agent=["agi_unknown"])
    assert unknown.value.status == 404


def test_presets_and_run_paths_are_matched_before_a_routine_id(sdk, app, raw):
    presets = sdk.agent_routines.presets()
    assert presets and all(p.name and isinstance(p.applicable_events, list) for p in presets)
    run = sdk.agent_routines.invoke(app.seeded["routine"], {"message": "hello"})
    assert sdk.agent_routines.agent_routine_runs.get(run.id).id == run.id
    assert raw.get("/api/v1/agent_routines/runs/arr_missing").json()["error"]["message"] == "routine run not found"
    assert sdk.agent_routines.get("triage").id == app.seeded["routine"]


def test_invoke_by_id_or_lookup_key_returns_a_run_that_completes(sdk, app):
    run = sdk.agent_routines.invoke(app.seeded["routine"], {
        "message": "triage ticket 42", "idempotency_key": "t-42", "session_key": "k1", "thread_id": "thr_1",
        "user": "usr_1", "metadata": {"source": "test"}, "participants": {"helper": app.seeded["agent"]}})
    assert run.id.startswith("arr_") and run.status == "pending" and run.routine == app.seeded["routine"]
    assert run.payload["message"] == "triage ticket 42" and run.metadata == {"source": "test"}
    assert run.participants == {"helper": app.seeded["agent"]} and run.event_id is None
    assert run.delivery.type == "none" and run.delivery.status == "not_requested"
    assert run.result is None and run.duration_ms is None

    by_key = sdk.agent_routines.invoke("triage", {"message": "second"})
    assert by_key.routine == app.seeded["routine"] and by_key.id != run.id

    app.advance(1)
    assert sdk.agent_routines.agent_routine_runs.get(run.id).status == "running"
    app.advance(3)
    done = sdk.agent_routines.agent_routine_runs.get(run.id)
    assert done.status == "completed" and done.result and done.duration_ms == 3000


def test_scripted_runs_fail_or_skip_and_thread_delivery_is_reported(sdk, app):
    app.script_next_runs("failed", "skipped")
    failed = sdk.agent_routines.invoke("triage", {"message": "a", "delivery": {"type": "thread", "thread": "thr_9"}})
    skipped = sdk.agent_routines.invoke("triage", {"message": "b"})
    delivered = sdk.agent_routines.invoke("triage", {"message": "c", "delivery": {"type": "thread", "thread": "thr_9"}})
    assert delivered.delivery.status == "pending" and delivered.delivery.thread == "thr_9"
    app.advance(4)
    get = sdk.agent_routines.agent_routine_runs.get
    assert get(failed.id).status == "failed" and get(failed.id).delivery.status == "failed"
    assert get(skipped.id).status == "skipped"
    assert get(delivered.id).delivery.status == "delivered" and get(delivered.id).delivery.delivered_message


def test_routine_runs_page_older_with_before_cursor_and_newer_with_after_cursor(sdk, app):
    ids = [sdk.agent_routines.invoke("triage", {"message": f"m{i}"}).id for i in range(7)]
    newest_first = ids[::-1]
    runs = sdk.agent_routines.runs

    first = runs(app.seeded["routine"], limit=3)
    assert [r.id for r in first.data] == newest_first[:3]
    assert first.after_cursor is None and first.before_cursor
    second = runs(app.seeded["routine"], limit=3, before_cursor=first.before_cursor)
    assert [r.id for r in second.data] == newest_first[3:6]
    assert second.after_cursor and second.before_cursor
    third = runs(app.seeded["routine"], limit=3, before_cursor=second.before_cursor)
    assert [r.id for r in third.data] == newest_first[6:] and third.before_cursor is None

    back = runs(app.seeded["routine"], limit=3, after_cursor=third.after_cursor)
    assert [r.id for r in back.data] == newest_first[3:6]
    top = runs(app.seeded["routine"], limit=3, after_cursor=back.after_cursor)
    assert [r.id for r in top.data] == newest_first[:3] and top.after_cursor is None

    assert len(runs(app.seeded["routine"]).data) == 7  # default limit 50
    everywhere = sdk.agent_routine_runs.list(agent=[app.seeded["agent"]], limit=5)
    assert [r.id for r in everywhere.data] == newest_first[:5]
    by_lookup_key = sdk.agent_routine_runs.list(agent=["support-triage"], before_cursor=everywhere.before_cursor)
    assert [r.id for r in by_lookup_key.data] == newest_first[5:]


def test_routine_runs_filter_by_status_and_refuse_a_bad_cursor(sdk, app, raw):
    early = sdk.agent_routines.invoke("triage", {"message": "early"})
    app.advance(4)
    late = sdk.agent_routines.invoke("triage", {"message": "late"})
    assert [r.id for r in sdk.agent_routines.runs("triage", status="completed").data] == [early.id]
    assert [r.id for r in sdk.agent_routines.runs("triage", status="pending").data] == [late.id]
    bad = raw.get(f"/api/v1/agent_routines/{app.seeded['routine']}/runs", params={"before_cursor": "garbage!"})
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "invalid_cursor"
    assert raw.get("/api/v1/agent_routines/arn_missing/runs").status_code == 404


def test_invoke_answers_402_when_the_plan_lacks_the_llm_feature(app, raw, sdk):
    app.set_plan(llm=False)
    refused = raw.post(f"/api/v1/agent_routines/{app.seeded['routine']}/invoke", json={"message": "m"})
    assert refused.status_code == 402
    assert refused.json()["error"]["code"] == "payment_required" and refused.json()["error"]["message"]
    with pytest.raises(ApiError) as error:
        sdk.agent_routines.invoke("triage", {"message": "m"})
    assert error.value.status == 402
    app.set_plan(llm=True)
    assert raw.post("/api/v1/agent_routines/triage/invoke", json={"message": "m"}).status_code == 200


def test_idempotency_key_returns_the_run_in_flight_and_409_once_completed(app, raw):
    path = f"/api/v1/agent_routines/{app.seeded['routine']}/invoke"
    first = raw.post(path, json={"message": "m", "idempotency_key": "once"})
    repeat = raw.post(path, json={"message": "m", "idempotency_key": "once"})
    assert first.status_code == repeat.status_code == 200 and first.json()["id"] == repeat.json()["id"]
    app.advance(4)
    conflict = raw.post(path, json={"message": "m", "idempotency_key": "once"})
    assert conflict.status_code == 409 and conflict.json()["error"]["code"] == "idempotency_conflict"
    assert raw.post(path, json={"message": "m", "idempotency_key": "other"}).status_code == 200


def test_invoke_answers_422_for_a_routine_not_active_or_not_invocable(app, raw):
    draft = raw.post(f"/api/v1/agent_routines/{app.seeded['draft_routine']}/invoke", json={"message": "m"})
    assert draft.status_code == 422 and draft.json()["error"]["code"] == "routine_not_active"
    event = raw.post("/api/v1/agent_routines/on-thread-message/invoke", json={"message": "m"})
    assert event.status_code == 422 and event.json()["error"]["code"] == "routine_not_invocable"
    paused = raw.post(f"/api/v1/agent_routines/{app.seeded['routine']}/pause")
    assert paused.status_code == 200 and paused.json()["status"] == "paused"
    assert raw.post("/api/v1/agent_routines/triage/invoke", json={"message": "m"}).status_code == 422
    raw.post("/api/v1/agent_routines/triage/activate")
    assert raw.post("/api/v1/agent_routines/triage/invoke", json={"message": "m"}).status_code == 200
    no_message = raw.post("/api/v1/agent_routines/triage/invoke", json={})
    assert no_message.status_code == 422
    assert raw.post("/api/v1/agent_routines/nope/invoke", json={"message": "m"}).status_code == 404


def test_session_mode_routine_runs_share_a_keyed_session_linked_to_its_runs(sdk, app):
    app.add_routine(name="Keyed", lookup_key="keyed",
                    preset_config={"session_mode": "session", "session_scope": "per_key"})
    with pytest.raises(ApiError) as missing_key:
        sdk.agent_routines.invoke("keyed", {"message": "no key"})
    assert missing_key.value.status == 422
    one = sdk.agent_routines.invoke("keyed", {"message": "first", "session_key": "case-1"})
    two = sdk.agent_routines.invoke("keyed", {"message": "second", "session_key": "case-1"})
    [session] = sdk.agent_sessions.list(routine_run=[one.id]).data
    assert [m["content"] for m in session.inbox] == ["first", "second"]
    assert [s.id for s in sdk.agent_sessions.list(routine_run=[two.id]).data] == [session.id]


def test_helpers_finish_sessions_and_runs_and_standalone_controls_move_the_clock(app, raw):
    session = app.create_session(instructions="helper made", system=True)
    assert app.finish_session(session["id"], "failed", error="boom")["error"] == "boom"
    run = app.invoke(message="helper")
    assert app.finish_run(run["id"], "completed", result={"answer": 42})["result"] == {"answer": 42}
    listed = raw.get("/api/v1/agent_sessions", params={"exclude_system": "true"}).json()["data"]
    assert listed == []

    pending = app.invoke(message="later")
    moved = raw.post("/_archastro/advance", json={"seconds": 10})
    assert moved.status_code == 200
    assert raw.get(f"/api/v1/agent_routines/runs/{pending['id']}").json()["status"] == "completed"
    assert parse_options(["--no-seed", "--plan-without-llm", "--run-duration", "2"]) == {
        "seed": False, "plan_llm": False, "run_duration": 2.0}
    empty = create_app(**parse_options(["--no-seed"]))
    assert empty.store.routines == {} and empty.store.agents == {}


def test_create_routine_then_activate_and_invoke_it(sdk, app, raw):
    body = {"name": "Ad hoc", "handler_type": "preset", "preset_name": "do_task",
            "event_type": "agentroutine.invoked", "lookup_key": "ad-hoc"}
    created = raw.post(f"/api/v1/agents/{app.seeded['agent']}/agent_routines", json=body)
    assert created.status_code == 200 and created.json()["status"] == "draft"
    assert raw.post("/api/v1/agent_routines/ad-hoc/invoke", json={"message": "m"}).status_code == 422
    assert sdk.agent_routines.activate("ad-hoc").status == "active"
    assert sdk.agent_routines.invoke("ad-hoc", {"message": "m"}).routine == created.json()["id"]
    bare = raw.post(f"/api/v1/agents/{app.seeded['agent']}/agent_routines",
                    json={"name": "Empty", "handler_type": "script"}).json()
    refused = raw.post(f"/api/v1/agent_routines/{bare['id']}/activate")
    assert refused.status_code == 422
    assert raw.delete(f"/api/v1/agent_routines/{bare['id']}").status_code == 204


def test_step_option_moves_the_clock_on_each_request_so_polling_reaches_completion():
    app = create_app(step=1)
    with serve_in_thread(app) as url, PlatformClient.with_secret_key(KEY, base_url=url) as sdk:
        session = _session(sdk, app)
        statuses = [sdk.agent_sessions.get(session.id).status for _ in range(7)]
    assert statuses[0] == "running" and statuses[-1] == "completed"
    assert statuses.index("completed") == 5


def test_agents_list_pages_newest_first_and_searches(sdk, app):
    second = app.add_agent("Release notes writer", lookup_key="release-notes")
    listed = sdk.agents.list()
    assert [a.id for a in listed.data] == [second, app.seeded["agent"]]
    assert listed.has_next is False and listed.total_entries == 2
    first_page = sdk.agents.list(page=1, page_size=1)
    assert [a.id for a in first_page.data] == [second] and first_page.has_next is True
    assert [a.lookup_key for a in sdk.agents.list(search="triage").data] == ["support-triage"]


def test_the_sdks_session_stream_replays_the_session_then_sends_its_events_and_closes_when_it_ends():
    app = create_app(step=1)
    with serve_in_thread(app) as url, PlatformClient.with_secret_key(KEY, base_url=url) as sdk:
        session = sdk.agent_sessions.create({"agent": app.seeded["agent"], "instructions": "Say hi"})
        frames = [(e["event"], e["data"]) for e in sdk.agent_sessions.stream(session.id)]  # ends by itself
        later = sdk.agent_sessions.events(session.id)
    updates = [data["status"] for kind, data in frames if kind == "session_update"]
    assert frames[0][0] == "session_update" and updates[-1] == "completed"
    assert [data["event"] for kind, data in frames if kind == "session_event"] == [e.event for e in later]
    assert [e.payload["text"] for e in later if e.event == "message"] == ['You said: "Say hi"']
