"""The Oz emulator, checked through the official `oz-agent-sdk` (strict validation) and raw httpx2."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx2
import oz_agent_sdk
import pytest
from oz_agent_sdk import OzAPI

from tests.emulators.faults import Fault
from tests.emulators.oz import SKILL_ID, create_app, script
from tests.emulators.oz_state import Step
from tests.emulators.serving import serve_in_thread

API_KEY = "wk-test-key"


@pytest.fixture
def app() -> Any:
    return create_app(seed=False)


@pytest.fixture
def base_url(app: Any) -> Iterator[str]:
    with serve_in_thread(app) as root:
        yield f"{root}/api/v1"


@pytest.fixture
def client(base_url: str) -> Iterator[OzAPI]:
    with OzAPI(api_key=API_KEY, base_url=base_url, max_retries=0, _strict_response_validation=True) as sdk:
        yield sdk


@pytest.fixture
def raw(base_url: str) -> Iterator[httpx2.Client]:
    with httpx2.Client(base_url=base_url, headers={"Authorization": f"Bearer {API_KEY}"}) as http:
        yield http


def _problem_code(body: Any) -> str:
    return body["type"].rstrip("/").rsplit("/", 1)[-1]


# ---- create, retrieve, lifecycle ----------------------------------------------------------------
def test_create_run_returns_queued_run_that_retrieve_echoes(client: OzAPI) -> None:
    created = client.agent.run(prompt="Fix the login bug", title="Login fix", metadata={"ticket_id": "ENG-1"},
                               config={"name": "fixer", "model_id": "claude-4-5-sonnet", "harness": {"type": "oz"}})
    assert created.state == "QUEUED" and created.task_id == created.run_id and created.at_capacity is False
    run = client.agent.runs.retrieve(created.run_id)
    assert (run.prompt, run.title, run.source, run.execution_location) == (
        "Fix the login bug", "Login fix", "API", "REMOTE")
    assert run.agent_config is not None and run.agent_config.api_model_id == "claude-4-5-sonnet"
    assert run.metadata == {"ticket_id": "ENG-1"} and run.started_at is None and run.scope is not None


def test_run_walks_the_lifecycle_to_succeeded_as_the_clock_advances(app: Any, client: OzAPI) -> None:
    run_id = client.agent.run(prompt="Refactor the db layer").run_id
    seen = []
    for _ in range(5):
        seen.append(client.agent.runs.retrieve(run_id).state)
        app.clock.advance(10)
    assert seen == ["QUEUED", "PENDING", "CLAIMED", "INPROGRESS", "SUCCEEDED"]
    done = client.agent.runs.retrieve(run_id)
    assert done.started_at is not None and done.session_link and done.conversation_id
    assert done.run_time == "PT10S" and done.request_usage is not None and done.request_usage.inference_cost


def test_queued_failed_script_ends_with_error_code_and_status_message(app: Any, client: OzAPI) -> None:
    app.queue_script(script("FAILED", step_seconds=1, message="No credits left", error_code="insufficient_credits"))
    run_id = client.agent.run(prompt="anything").run_id
    app.clock.advance(10)
    run = client.agent.runs.retrieve(run_id)
    assert run.state == "FAILED" and run.status_message is not None
    assert (run.status_message.message, run.status_message.error_code, run.status_message.retryable) == (
        "No credits left", "insufficient_credits", False)


def test_error_script_is_retryable_and_pending_script_stays_pending(app: Any, client: OzAPI) -> None:
    erroring = app.add_run("boom", steps=script("ERROR", step_seconds=1))
    stuck = app.add_run("wait", steps=script("PENDING", step_seconds=1))
    app.clock.advance(3600)
    errored = client.agent.runs.retrieve(erroring)
    assert errored.state == "ERROR" and errored.status_message and errored.status_message.retryable is True
    assert client.agent.runs.retrieve(stuck).state == "PENDING"


def test_reads_advance_a_run_when_polls_per_step_is_set() -> None:
    app = create_app(seed=False, polls_per_step=2)
    run_id = app.add_run("poll me")
    with serve_in_thread(app) as root, httpx2.Client(base_url=f"{root}/api/v1",
                                                      headers={"Authorization": "Bearer k"}) as http:
        states = [http.get(f"/agent/runs/{run_id}").json()["state"] for _ in range(8)]
    assert states == ["QUEUED", "PENDING", "PENDING", "CLAIMED", "CLAIMED", "INPROGRESS", "INPROGRESS", "SUCCEEDED"]


def test_legacy_create_alias_and_skill_only_request_create_runs(client: OzAPI, raw: httpx2.Client) -> None:
    response = raw.post("/agent/run", json={"skill": SKILL_ID})
    assert response.status_code == 200 and response.json()["state"] == "QUEUED"
    run = client.agent.runs.retrieve(response.json()["run_id"])
    assert run.agent_config and run.agent_config.skill_spec == SKILL_ID and run.agent_skill


def test_create_rejects_missing_prompt_bad_mode_and_unknown_parent(client: OzAPI) -> None:
    for kwargs in ({"title": "no prompt"}, {"prompt": "x", "mode": "PLAN"}, {"prompt": "x", "parent_run_id": "nope"},
                   {"prompt": "x", "metadata": {"bad key!": "v"}}):
        with pytest.raises(oz_agent_sdk.BadRequestError) as caught:
            client.agent.run(**kwargs)
        assert _problem_code(caught.value.body) == "invalid_request"


def test_child_run_records_parent_and_is_found_by_ancestor_filter(client: OzAPI) -> None:
    parent = client.agent.run(prompt="orchestrate").run_id
    child = client.agent.run(prompt="sub task", parent_run_id=parent, mode="orchestrate").run_id
    client.agent.run(prompt="unrelated")
    assert client.agent.runs.retrieve(child).parent_run_id == parent
    assert [r.run_id for r in client.agent.runs.list(ancestor_run_id=parent)] == [child]


# ---- list --------------------------------------------------------------------------------------
def test_list_pages_through_every_run_with_cursor_and_limit(app: Any, client: OzAPI) -> None:
    ids = [app.add_run(f"task {i}", created_ago=100 - i) for i in range(7)]
    first = client.agent.runs.list(limit=3, sort_by="created_at")
    assert [r.run_id for r in first.runs] == ids[::-1][:3]
    assert first.page_info and first.page_info.has_next_page and first.page_info.next_cursor
    assert [r.run_id for r in client.agent.runs.list(limit=3, sort_by="created_at")] == ids[::-1]
    last = client.agent.runs.list(limit=3, sort_by="created_at", sort_order="asc", cursor=None)
    assert [r.run_id for r in last.runs] == ids[:3]


def test_list_last_page_has_no_next_cursor(app: Any, raw: httpx2.Client) -> None:
    for i in range(3):
        app.add_run(f"task {i}")
    first = raw.get("/agent/runs", params={"limit": 2}).json()
    last = raw.get("/agent/runs", params={"limit": 2, "cursor": first["page_info"]["next_cursor"]}).json()
    assert len(last["runs"]) == 1 and last["page_info"] == {"has_next_page": False}


def test_list_filters_by_repeated_upper_case_state_keys(app: Any, client: OzAPI) -> None:
    queued, failed = app.add_run("a", hold=True), app.add_run("b", "FAILED")
    app.add_run("c", "SUCCEEDED")
    found = {r.run_id for r in client.agent.runs.list(state=["QUEUED", "FAILED"])}
    assert found == {queued, failed}


def test_list_rejects_lower_case_state_and_out_of_range_limit(raw: httpx2.Client) -> None:
    for params in ({"state": "queued"}, {"limit": 0}, {"limit": 501}, {"sort_by": "age"}, {"cursor": "garbage"}):
        response = raw.get("/agent/runs", params=params)
        assert response.status_code == 400 and _problem_code(response.json()) == "invalid_request"


def test_list_filters_by_time_metadata_query_and_artifact(app: Any, client: OzAPI) -> None:
    old = app.add_run("old work", "SUCCEEDED", created_ago=7200, metadata={"team": "core"})
    new = app.add_run("new login work", created_ago=60, metadata={"team": "core"})
    app.add_artifact(old, "PULL_REQUEST")
    assert [r.run_id for r in client.agent.runs.list(created_after="2026-05-01T11:00:00Z")] == [new]
    assert [r.run_id for r in client.agent.runs.list(created_before="2026-05-01T11:00:00Z")] == [old]
    assert [r.run_id for r in client.agent.runs.list(q="LOGIN")] == [new]
    assert [r.run_id for r in client.agent.runs.list(artifact_type="PULL_REQUEST")] == [old]
    assert {r.run_id for r in client.agent.runs.list(metadata={"team": "core"})} == {old, new}
    app.clock.advance(30)
    assert [r.run_id for r in client.agent.runs.list(updated_after="2026-05-01T12:00:15Z")] == [new]


# ---- follow-ups ----------------------------------------------------------------------------------
def test_followup_is_accepted_as_json_object_and_recorded_with_mode(app: Any, client: OzAPI) -> None:
    run_id = app.add_run("work", "INPROGRESS", hold=True)
    assert client.agent.runs.submit_followup(run_id, message="also update docs", mode="plan") == {}
    client.agent.runs.submit_followup(run_id, message="thanks")
    assert [(f["message"], f["mode"]) for f in app.followups(run_id)] == [("also update docs", "plan"),
                                                                          ("thanks", "normal")]


def test_followup_unblocks_a_blocked_run_and_requeues_a_finished_one(app: Any, client: OzAPI) -> None:
    blocked, finished = app.add_run("needs approval", "BLOCKED"), app.add_run("done", "SUCCEEDED")
    client.agent.runs.submit_followup(blocked, message="approved")
    client.agent.runs.submit_followup(finished, message="one more thing")
    assert client.agent.runs.retrieve(blocked).state == "INPROGRESS"
    assert client.agent.runs.retrieve(finished).state == "QUEUED"
    app.clock.advance(60)
    assert client.agent.runs.retrieve(blocked).state == client.agent.runs.retrieve(finished).state == "SUCCEEDED"


def test_followup_without_message_or_with_bad_mode_is_rejected(app: Any, raw: httpx2.Client) -> None:
    run_id = app.add_run("x")
    for body in ({}, {"message": ""}, {"message": "hi", "mode": "PLAN"}):
        assert raw.post(f"/agent/runs/{run_id}/followups", json=body).status_code == 400


# ---- cancel ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("state", ["QUEUED", "CLAIMED", "INPROGRESS"])
def test_cancel_active_run_returns_its_id_and_cancels_it(app: Any, client: OzAPI, state: str) -> None:
    run_id = app.add_run("cancel me", state)
    assert client.agent.runs.cancel(run_id).strip('"') == run_id
    assert client.agent.runs.retrieve(run_id).state == "CANCELLED"
    app.clock.advance(3600)
    assert client.agent.runs.retrieve(run_id).state == "CANCELLED"


@pytest.mark.parametrize("state", ["SUCCEEDED", "FAILED", "ERROR", "BLOCKED", "CANCELLED"])
def test_cancel_refuses_terminal_run_with_400_invalid_request(app: Any, client: OzAPI, state: str) -> None:
    run_id = app.add_run("finished", state)
    with pytest.raises(oz_agent_sdk.BadRequestError) as caught:
        client.agent.runs.cancel(run_id)
    assert _problem_code(caught.value.body) == "invalid_request" and caught.value.body["retryable"] is False


def test_cancel_refuses_pending_run_with_retryable_409_conflict(app: Any, client: OzAPI) -> None:
    run_id = app.add_run("preparing", "PENDING", hold=True)
    with pytest.raises(oz_agent_sdk.ConflictError) as caught:
        client.agent.runs.cancel(run_id)
    assert _problem_code(caught.value.body) == "conflict" and caught.value.body["retryable"] is True


@pytest.mark.parametrize("fields", [{"source": "GITHUB_ACTION"}, {"source": "LOCAL"},
                                    {"config": {"worker_host": "my-runner"}}])
def test_cancel_refuses_local_github_action_and_self_hosted_runs_with_422(
        app: Any, client: OzAPI, fields: dict[str, Any]) -> None:
    run_id = app.add_run("elsewhere", "INPROGRESS", hold=True, **fields)
    with pytest.raises(oz_agent_sdk.UnprocessableEntityError) as caught:
        client.agent.runs.cancel(run_id)
    assert _problem_code(caught.value.body) == "operation_not_supported"


def test_cancel_and_retrieve_of_unknown_run_return_404(client: OzAPI) -> None:
    for call in (client.agent.runs.cancel, client.agent.runs.retrieve):
        with pytest.raises(oz_agent_sdk.NotFoundError) as caught:
            call("00000000-0000-4000-8000-000000000000")
        assert _problem_code(caught.value.body) == "resource_not_found"


# ---- seeded catalog, artifacts, handoff ---------------------------------------------------------
def test_seeded_agents_runs_artifacts_and_environments_parse_strictly() -> None:
    app = create_app()
    with serve_in_thread(app) as root, OzAPI(api_key=API_KEY, base_url=f"{root}/api/v1", max_retries=0,
                                            _strict_response_validation=True) as client:
        agents = client.agent.list().agents
        assert [a.name for a in agents] == ["code-review"] and agents[0].variants[0].id == SKILL_ID
        assert agents[0].variants[0].last_run_timestamp is not None
        runs = list(client.agent.runs.list(limit=2))
        assert {r.state for r in runs} >= {"SUCCEEDED", "INPROGRESS", "FAILED", "QUEUED", "CANCELLED"}
        done = next(r for r in runs if r.state == "SUCCEEDED")
        kinds = [a.artifact_type for a in done.artifacts or []]
        assert kinds == ["PLAN", "PULL_REQUEST", "SCREENSHOT", "FILE", "EXTERNAL_REFERENCE"]
        for artifact in done.artifacts or []:
            uid = getattr(artifact.data, "artifact_uid", None)
            if uid:
                fetched = client.agent.get_artifact(uid)
                assert fetched.artifact_type == artifact.artifact_type and fetched.artifact_uid == uid
                if artifact.artifact_type != "PLAN":
                    assert httpx2.get(fetched.data.download_url).status_code == 200
        assert client.agent.list_environments().environments[0].config.name == "acme-backend"
        attachments = client.agent.runs.list_handoff_attachments(done.run_id).attachments
        assert [a.filename for a in attachments] == ["snapshot.tar.gz"]
        assert httpx2.get(attachments[0].download_url).content == b"emulated snapshot"
        running = next(r for r in runs if r.state == "INPROGRESS" and r.source == "API")
        assert client.agent.runs.list_handoff_attachments(running.run_id).attachments == []


def test_list_agents_hides_malformed_skills_unless_asked(app: Any, client: OzAPI) -> None:
    app.add_agent("broken", "acme/web:.agents/skills/broken/SKILL.md", error="missing front matter")
    assert client.agent.list().agents == []
    shown = client.agent.list(include_malformed_skills=True).agents
    assert shown[0].variants[0].error == "missing front matter"


# ---- auth, errors and wire quirks (raw httpx2) -----------------------------------------------------
@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer"}, {"Authorization": "Basic abc"}])
def test_missing_or_empty_bearer_token_gets_401_problem(base_url: str, headers: dict[str, str]) -> None:
    response = httpx2.get(f"{base_url}/agent/runs", headers=headers)
    assert response.status_code == 401 and _problem_code(response.json()) == "authentication_required"


def test_sdk_raises_authentication_error_for_a_key_outside_the_accepted_set() -> None:
    with serve_in_thread(create_app(seed=False, api_keys=["wk-right"])) as root:
        with OzAPI(api_key="wk-right", base_url=f"{root}/api/v1", max_retries=0) as sdk:
            assert sdk.agent.runs.list().runs == []
        with OzAPI(api_key="wk-wrong", base_url=f"{root}/api/v1", max_retries=0) as sdk:
            with pytest.raises(oz_agent_sdk.AuthenticationError) as caught:
                sdk.agent.runs.list()
    assert _problem_code(caught.value.body) == "authentication_required"


def test_cancel_answers_with_a_json_string_even_for_an_empty_json_post(app: Any, raw: httpx2.Client) -> None:
    run_id = app.add_run("x")
    response = raw.post(f"/agent/runs/{run_id}/cancel", headers={"Content-Type": "application/json"})
    assert response.status_code == 200 and response.headers["content-type"] == "application/json"
    assert response.text == f'"{run_id}"' and response.json() == run_id


def test_errors_are_rfc7807_problem_json_with_oz_extension_members(raw: httpx2.Client) -> None:
    response = raw.get("/agent/runs/unknown-run")
    body = response.json()
    assert response.headers["content-type"] == "application/problem+json"
    assert body["type"].endswith("/errors/resource_not_found") and body["status"] == 404
    assert body["instance"] == "/api/v1/agent/runs/unknown-run" and body["retryable"] is False
    assert body["error"] == f"{body['title']} ({body['detail']})" and body["trace_id"]


def test_injected_429_carries_retry_after_and_a_retryable_problem(app: Any, raw: httpx2.Client) -> None:
    app.faults.add(Fault(status=429, retry_after=3, method="GET", path="/api/v1/agent/runs"))
    response = raw.get("/agent/runs")
    assert response.status_code == 429 and response.headers["retry-after"] == "3"
    assert _problem_code(response.json()) == "resource_unavailable" and response.json()["retryable"] is True
    assert raw.get("/agent/runs").status_code == 200


def test_sdk_retries_an_injected_503_after_its_retry_after(app: Any, base_url: str) -> None:
    app.faults.add(Fault(status=503, retry_after=0.01, path="/api/v1/agent/runs"))
    with OzAPI(api_key=API_KEY, base_url=base_url, max_retries=1, _strict_response_validation=True) as sdk:
        assert sdk.agent.runs.list().runs == []
    assert app.faults.count("GET", "/api/v1/agent/runs") == 2


def test_queued_error_returns_a_specific_problem_code(app: Any, client: OzAPI) -> None:
    app.queue_error("insufficient_credits", method="POST", path="/agent/runs")
    with pytest.raises(oz_agent_sdk.PermissionDeniedError) as caught:
        client.agent.run(prompt="x")
    assert _problem_code(caught.value.body) == "insufficient_credits"
    assert client.agent.run(prompt="x").state == "QUEUED"


def test_set_script_and_step_drive_a_run_directly(app: Any, client: OzAPI) -> None:
    run_id = app.add_run("scripted", "INPROGRESS", hold=True)
    app.set_script(run_id, [Step("INPROGRESS", 5), Step("BLOCKED", message="Needs approval")])
    app.clock.advance(5)
    blocked = client.agent.runs.retrieve(run_id)
    assert blocked.state == "BLOCKED" and blocked.status_message and blocked.status_message.message == "Needs approval"
    other = app.add_run("manual", hold=True, steps=[Step("QUEUED"), Step("INPROGRESS"), Step("SUCCEEDED")])
    assert [app.step(other), app.step(other), app.step(other)] == ["INPROGRESS", "SUCCEEDED", "SUCCEEDED"]


def test_control_routes_let_another_process_drive_clock_scripts_runs_and_errors(raw: httpx2.Client) -> None:
    root = str(raw.base_url).removesuffix("/api/v1/")
    assert httpx2.post(f"{root}/_oz/scripts", json={"final": "ERROR", "step_seconds": 1}).status_code == 201
    created = raw.post("/agent/runs", json={"prompt": "x"}).json()["run_id"]
    held = httpx2.post(f"{root}/_oz/runs", json={"prompt": "y", "state": "BLOCKED"}).json()["run_id"]
    assert httpx2.post(f"{root}/_oz/clock", json={"advance": 10}).json()["now"] == "2026-05-01T12:00:10Z"
    assert raw.get(f"/agent/runs/{created}").json()["state"] == "ERROR"
    raw.post(f"/agent/runs/{held}/followups", json={"message": "go on"})
    assert httpx2.get(f"{root}/_oz/runs/{held}/followups").json()[0]["message"] == "go on"
    httpx2.post(f"{root}/_oz/errors", json={"code": "resource_unavailable", "path": "/agent/runs", "method": "GET"})
    assert raw.get("/agent/runs").status_code == 429


def test_session_redirect_points_at_the_conversation_once_the_sandbox_is_gone(app: Any, client: OzAPI) -> None:
    run_id = app.add_run("x", "INPROGRESS", steps=[Step("INPROGRESS", 5), Step("SUCCEEDED")])
    session = client.agent.runs.retrieve(run_id).session_id
    assert session and client.agent.sessions.check_redirect(session).conversation_id is None
    app.clock.advance(5 + 10 * 60)
    run = client.agent.runs.retrieve(run_id)
    assert run.is_sandbox_running is False
    assert client.agent.sessions.check_redirect(session).conversation_id == run.conversation_id
