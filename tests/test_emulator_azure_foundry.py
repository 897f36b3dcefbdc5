"""The Azure AI Foundry emulator, checked with the official SDK and with raw HTTP.

The SDK (`azure-ai-projects` 2.10) talks to the emulator over a loopback port. Two settings make
that possible, and neither would be used against the real service:

- Plain http: azure-core's BearerTokenCredentialPolicy refuses to send a token to a non-https URL.
  The client gets `authentication_policy=_PlainHttpBearerPolicy(...)`, a subclass that sets
  `enforce_https=False` in the request options before the normal policy runs. (Passing
  `enforce_https=False` to every operation call works too.)
- A credential: `_StaticCredential.get_token` returns an AccessToken; the emulator accepts any
  non-empty bearer token.

No preview flag is needed: session and session-file operations live on `client.agents` and the
SDK sends no `Foundry-Features` header for them.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import httpx2
import pytest
from azure.ai.projects import AIProjectClient
from azure.ai.projects.models import (
    AgentSessionResource,
    SessionDirectoryEntry,
    SessionFileWriteResult,
    VersionRefIndicator,
)
from azure.core.credentials import AccessToken
from azure.core.exceptions import HttpResponseError, ResourceExistsError, ResourceNotFoundError
from azure.core.pipeline import PipelineRequest
from azure.core.pipeline.policies import BearerTokenCredentialPolicy

from tests.emulators import azure_foundry
from tests.emulators.azure_foundry_state import SESSION_TTL_SECONDS
from tests.emulators.faults import Fault
from tests.emulators.serving import serve_in_thread

AGENT = azure_foundry.DEFAULTS["agent"]
VERSION = azure_foundry.DEFAULTS["agent_version"]
SEED_SESSION = azure_foundry.DEFAULTS["session"]
UPLOAD_LIMIT = 1024
SESSIONS = f"/agents/{AGENT}/endpoint/sessions"


class _StaticCredential:
    """A TokenCredential that always hands out the same token."""

    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        return AccessToken("emulator-token", int(time.time()) + 3600)


class _PlainHttpBearerPolicy(BearerTokenCredentialPolicy):
    """Bearer auth that is allowed over http, for the loopback emulator only."""

    def on_request(self, request: PipelineRequest[Any]) -> None:
        request.context.options["enforce_https"] = False
        super().on_request(request)


@pytest.fixture
def emulator() -> Iterator[tuple[Any, str]]:
    app = azure_foundry.create_app(max_upload_bytes=UPLOAD_LIMIT)
    with serve_in_thread(app) as base_url:
        yield app, base_url


@pytest.fixture
def app(emulator: tuple[Any, str]) -> Any:
    return emulator[0]


@pytest.fixture
def http(emulator: tuple[Any, str]) -> Iterator[httpx2.Client]:
    app, base_url = emulator
    with httpx2.Client(
        base_url=app.endpoint(base_url),
        headers={"Authorization": "Bearer test-token"},
        params={"api-version": "v1"},
    ) as client:
        yield client


def _sdk(emulator: tuple[Any, str], *, retries: int = 0) -> AIProjectClient:
    app, base_url = emulator
    credential = _StaticCredential()
    return AIProjectClient(
        endpoint=app.endpoint(base_url),
        credential=credential,  # type: ignore[arg-type]
        authentication_policy=_PlainHttpBearerPolicy(credential, "https://ai.azure.com/.default"),
        retry_total=retries,
    )


VERSION_REF = {"type": "version_ref", "agent_version": VERSION}


def _create(http: httpx2.Client, **body: Any) -> dict[str, Any]:
    response = http.post(SESSIONS, json={"version_indicator": VERSION_REF, **body})
    assert response.status_code == 201, response.text
    return response.json()


def _files(session_id: str) -> str:
    return f"{SESSIONS}/{session_id}/files"


def _assert_envelope(response: httpx2.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message", "param", "type"}
    assert body["error"]["code"] == code
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    return body["error"]


# -- the official SDK -------------------------------------------------------------------------


def test_sdk_drives_a_session_and_its_files_from_create_to_delete(emulator: tuple[Any, str]) -> None:
    app = emulator[0]
    data = bytes(range(256)) * 3
    with _sdk(emulator) as client:
        agents = client.agents
        created = agents.create_session(AGENT, version_indicator=VersionRefIndicator(agent_version=VERSION))
        assert isinstance(created, AgentSessionResource)
        session_id = created.agent_session_id
        assert created.status == "creating"
        assert created.version_indicator.agent_version == VERSION
        assert created.created_at == datetime.fromtimestamp(app.clock.now(), tz=UTC)
        assert created.expires_at.timestamp() - created.last_accessed_at.timestamp() == SESSION_TTL_SECONDS

        app.clock.advance(10)
        fetched = agents.get_session(AGENT, session_id)
        assert fetched.agent_session_id == session_id
        assert fetched.status == "active"
        assert fetched.stopped_at is None

        listed = list(agents.list_sessions(AGENT))
        assert all(isinstance(item, AgentSessionResource) for item in listed)
        assert {item.agent_session_id for item in listed} == {session_id, SEED_SESSION}

        written = agents.upload_session_file(AGENT, session_id, data, path="notes/data.bin")
        assert isinstance(written, SessionFileWriteResult)
        assert (written.path, written.bytes_written) == ("notes/data.bin", len(data))

        home = list(agents.list_session_files(AGENT, session_id))
        assert [(e.name, e.is_directory, e.size) for e in home] == [("notes", True, 0)]
        entries = list(agents.list_session_files(AGENT, session_id, path="notes"))
        assert all(isinstance(e, SessionDirectoryEntry) for e in entries)
        assert [(e.name, e.is_directory, e.size) for e in entries] == [("data.bin", False, len(data))]
        assert isinstance(entries[0].modified_time, datetime)

        assert b"".join(agents.download_session_file(AGENT, session_id, path="notes/data.bin")) == data

        assert agents.delete_session_file(AGENT, session_id, path="notes/data.bin") is None
        assert list(agents.list_session_files(AGENT, session_id, path="notes")) == []

        assert agents.stop_session(AGENT, session_id) is None
        stopped = agents.get_session(AGENT, session_id)
        assert stopped.status == "idle"
        assert isinstance(stopped.stopped_at, datetime)

        assert agents.delete_session(AGENT, session_id) is None
        with pytest.raises(ResourceNotFoundError):
            agents.get_session(AGENT, session_id)
        assert agents.delete_session(AGENT, session_id) is None  # a missing session deletes with 204 too


def test_sdk_follows_last_id_and_stops_on_the_empty_page(emulator: tuple[Any, str]) -> None:
    app = emulator[0]
    for _ in range(4):
        app.add_session()
    with _sdk(emulator) as client:
        ids = [s.agent_session_id for s in client.agents.list_sessions(AGENT, limit=2, order="asc")]
    assert len(ids) == 5 and ids[0] == SEED_SESSION
    session_gets = [r for r in app.request_log if r["method"] == "GET" and r["path"].endswith("/sessions")]
    assert [r["query"].get("after") for r in session_gets] == [None, ids[1], ids[3], ids[4]]


def test_sdk_sends_neither_preview_nor_isolation_headers(emulator: tuple[Any, str]) -> None:
    app = emulator[0]
    with _sdk(emulator) as client:
        client.agents.get_session(AGENT, SEED_SESSION)
    headers = app.request_log[-1]["headers"]
    assert headers["authorization"] == "Bearer emulator-token"
    assert "x-ms-client-request-id" in headers
    assert not {"foundry-features", "x-ms-user-isolation-key", "x-session-isolation-key"} & set(headers)


def test_sdk_maps_a_non_empty_directory_delete_to_resource_exists_error(emulator: tuple[Any, str]) -> None:
    app = emulator[0]
    app.write_file(AGENT, SEED_SESSION, "out/report.txt", b"done")
    with _sdk(emulator) as client:
        with pytest.raises(ResourceExistsError) as raised:
            client.agents.delete_session_file(AGENT, SEED_SESSION, path="out")
        assert raised.value.error is not None and raised.value.error.code == "directory_not_empty"
        client.agents.delete_session_file(AGENT, SEED_SESSION, path="out", recursive=True)
    assert app.file_paths(AGENT, SEED_SESSION) == []


def test_sdk_parses_the_error_envelope_of_an_oversize_upload(emulator: tuple[Any, str]) -> None:
    with _sdk(emulator) as client:
        with pytest.raises(HttpResponseError) as raised:
            client.agents.upload_session_file(AGENT, SEED_SESSION, b"x" * (UPLOAD_LIMIT + 1), path="big.bin")
    assert raised.value.status_code == 413
    assert raised.value.model.error.code == "payload_too_large"


def test_sdk_retries_an_injected_429_that_carries_retry_after(emulator: tuple[Any, str]) -> None:
    app = emulator[0]
    path = f"{app.project_path}{SESSIONS}/{SEED_SESSION}"
    app.faults.add(Fault(status=429, retry_after=0, path=path, method="GET", times=1))
    with _sdk(emulator, retries=2) as client:
        assert client.agents.get_session(AGENT, SEED_SESSION).agent_session_id == SEED_SESSION
    assert [r["status"] for r in app.faults.requests if r["path"] == path] == [429, 200]


# -- raw HTTP ---------------------------------------------------------------------------------


def test_session_and_file_timestamps_are_integer_unix_seconds(app: Any, http: httpx2.Client) -> None:
    session = _create(http)
    for name in ("created_at", "last_accessed_at", "expires_at"):
        assert type(session[name]) is int
    assert session["created_at"] == app.clock.now()
    assert session["expires_at"] == session["last_accessed_at"] + 30 * 24 * 3600
    put = http.put(f"{_files(session['agent_session_id'])}/content", params={"path": "a.txt"}, content=b"abc")
    assert put.status_code == 201 and put.json() == {"path": "a.txt", "bytes_written": 3}
    (entry,) = http.get(_files(session["agent_session_id"])).json()["entries"]
    assert type(entry["modified_time"]) is int and type(entry["size"]) is int


def test_list_sessions_pages_by_last_id_until_an_empty_page_with_null_last_id(app: Any, http: httpx2.Client) -> None:
    created = [_create(http)["agent_session_id"] for _ in range(4)]
    for order, expected in (("asc", [SEED_SESSION, *created]), ("desc", [*reversed(created), SEED_SESSION])):
        seen: list[str] = []
        pages = []
        params: dict[str, Any] = {"limit": 2, "order": order}
        while True:
            page = http.get(SESSIONS, params=params).json()
            assert set(page) == {"data", "first_id", "last_id", "has_more"}
            pages.append(page)
            if page["last_id"] is None:
                break
            seen += [s["agent_session_id"] for s in page["data"]]
            assert page["first_id"] == page["data"][0]["agent_session_id"]
            assert page["last_id"] == page["data"][-1]["agent_session_id"]
            params = {**params, "after": page["last_id"]}
        assert seen == expected
        assert [p["has_more"] for p in pages] == [True, True, False, False]
        assert pages[-1] == {"data": [], "first_id": None, "last_id": None, "has_more": False}


def test_list_sessions_before_returns_the_page_just_ahead_of_the_cursor(http: httpx2.Client) -> None:
    created = [_create(http)["agent_session_id"] for _ in range(4)]
    page = http.get(SESSIONS, params={"limit": 2, "order": "asc", "before": created[3]}).json()
    assert [s["agent_session_id"] for s in page["data"]] == created[1:3]
    assert page["has_more"] is True


def test_list_sessions_rejects_a_limit_outside_one_to_one_hundred(http: httpx2.Client) -> None:
    error = _assert_envelope(http.get(SESSIONS, params={"limit": 101}), 400, "invalid_value")
    assert error["param"] == "limit"


def test_upload_over_the_size_limit_returns_413_and_stores_nothing(app: Any, http: httpx2.Client) -> None:
    url = f"{_files(SEED_SESSION)}/content"
    error = _assert_envelope(
        http.put(url, params={"path": "big.bin"}, content=b"x" * (UPLOAD_LIMIT + 1)), 413, "payload_too_large"
    )
    assert error["type"] == "invalid_request_error"
    assert app.file_paths(AGENT, SEED_SESSION) == []
    exact = http.put(url, params={"path": "exact.bin"}, content=b"y" * UPLOAD_LIMIT)
    assert exact.status_code == 201 and exact.json()["bytes_written"] == UPLOAD_LIMIT


def test_download_returns_the_exact_bytes_as_octet_stream(app: Any, http: httpx2.Client) -> None:
    data = bytes(range(256))[::-1] * 2
    app.write_file(AGENT, SEED_SESSION, "bin/blob", data)
    response = http.get(f"{_files(SEED_SESSION)}/content", params={"path": "/bin/blob"})
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/octet-stream"
    assert response.content == data
    _assert_envelope(http.get(f"{_files(SEED_SESSION)}/content", params={"path": "nope"}), 404, "not_found")


def test_deleting_a_non_empty_directory_needs_recursive(app: Any, http: httpx2.Client) -> None:
    app.write_file(AGENT, SEED_SESSION, "work/a/one.txt", b"1")
    app.write_file(AGENT, SEED_SESSION, "empty/gone.txt", b"2")
    files = _files(SEED_SESSION)
    error = _assert_envelope(http.delete(files, params={"path": "work"}), 409, "directory_not_empty")
    assert error["param"] == "recursive"
    assert http.delete(files, params={"path": "work", "recursive": "false"}).status_code == 409
    assert http.delete(files, params={"path": "work", "recursive": "true"}).status_code == 204
    assert http.delete(files, params={"path": "empty/gone.txt"}).status_code == 204
    assert http.delete(files, params={"path": "empty"}).status_code == 204  # now empty: no flag needed
    assert app.file_paths(AGENT, SEED_SESSION) == []
    _assert_envelope(http.delete(files, params={"path": "work"}), 404, "not_found")


def test_file_listing_shows_immediate_children_and_pages_by_name(app: Any, http: httpx2.Client) -> None:
    for name in ("c.txt", "a.txt", "b/deep.txt", "d.txt"):
        app.write_file(AGENT, SEED_SESSION, name, b"..")
    first = http.get(_files(SEED_SESSION), params={"limit": 3}).json()
    assert first["path"] == "."
    assert [e["name"] for e in first["entries"]] == ["a.txt", "b", "c.txt"]
    assert (first["last_id"], first["has_more"]) == ("c.txt", True)
    second = http.get(_files(SEED_SESSION), params={"limit": 3, "after": "c.txt"}).json()
    assert [e["name"] for e in second["entries"]] == ["d.txt"]
    last = http.get(_files(SEED_SESSION), params={"limit": 3, "after": "d.txt"}).json()
    assert (last["entries"], last["last_id"]) == ([], None)


def test_errors_use_the_openai_style_envelope(emulator: tuple[Any, str], http: httpx2.Client) -> None:
    app, base_url = emulator
    _assert_envelope(http.get(f"{SESSIONS}/no-such-session"), 404, "not_found")
    _assert_envelope(http.get("/agents/no-such-agent/endpoint/sessions"), 404, "not_found")
    with httpx2.Client(base_url=app.endpoint(base_url), headers={"Authorization": "Bearer t"}) as unversioned:
        missing_version = unversioned.get(SESSIONS)
    assert _assert_envelope(missing_version, 400, "missing_required_parameter")["param"] == "api-version"
    assert _assert_envelope(http.get(SESSIONS, params={"api-version": "2025-05-01"}), 400, "invalid_value")
    bad_body = http.post(SESSIONS, json={"version_indicator": {"type": "latest"}})
    assert _assert_envelope(bad_body, 400, "invalid_value")["param"] == "version_indicator.type"
    with httpx2.Client(base_url=app.endpoint(base_url), params={"api-version": "v1"}) as anonymous:
        unauthorized = anonymous.get(SESSIONS)
    _assert_envelope(unauthorized, 401, "unauthorized")
    assert unauthorized.headers["www-authenticate"] == "Bearer"
    echoed = http.get(f"{SESSIONS}/{SEED_SESSION}", headers={"x-ms-client-request-id": "req-1"})
    assert echoed.headers["x-ms-client-request-id"] == "req-1"


def test_injected_429_carries_retry_after_and_the_error_envelope(app: Any, http: httpx2.Client) -> None:
    app.faults.add(Fault(status=429, retry_after=2, path=f"{app.project_path}{SESSIONS}", times=1))
    throttled = http.get(SESSIONS)
    error = _assert_envelope(throttled, 429, "rate_limit_exceeded")
    assert error["type"] == "rate_limit_error"
    assert throttled.headers["retry-after"] == "2"
    assert http.get(SESSIONS).status_code == 200


def test_session_status_advances_with_the_emulator_clock(app: Any, http: httpx2.Client) -> None:
    session_id = _create(http)["agent_session_id"]  # creating for 2 s; each request ticks 1 s

    def status() -> dict[str, Any]:
        return http.get(f"{SESSIONS}/{session_id}").json()

    assert status()["status"] == "creating"
    assert status()["status"] == "active"
    app.clock.advance(azure_foundry.DEFAULTS["idle_seconds"])
    idle = status()
    assert idle["status"] == "idle" and type(idle["stopped_at"]) is int
    http.put(f"{_files(session_id)}/content", params={"path": "wake.txt"}, content=b"!")
    awake = status()
    assert awake["status"] == "active" and awake["stopped_at"] == idle["stopped_at"]
    assert awake["last_accessed_at"] > idle["last_accessed_at"]
    app.clock.advance(SESSION_TTL_SECONDS)
    assert status()["status"] == "expired"
    _assert_envelope(http.get(_files(session_id)), 409, "session_not_active")
    app.set_session_status(AGENT, session_id, "failed")
    assert status()["status"] == "failed"


def test_stop_returns_204_and_leaves_the_session_idle(http: httpx2.Client) -> None:
    response = http.post(f"{SESSIONS}/{SEED_SESSION}:stop")
    assert response.status_code == 204 and response.content == b""
    body = http.get(f"{SESSIONS}/{SEED_SESSION}").json()
    assert body["status"] == "idle" and type(body["stopped_at"]) is int
    _assert_envelope(http.post(f"{SESSIONS}/missing:stop"), 404, "not_found")


def test_create_honours_a_caller_session_id_and_refuses_a_duplicate(http: httpx2.Client) -> None:
    assert _create(http, agent_session_id="mine-0001")["agent_session_id"] == "mine-0001"
    duplicate = http.post(SESSIONS, json={"agent_session_id": "mine-0001", "version_indicator": VERSION_REF})
    _assert_envelope(duplicate, 409, "session_already_exists")
    unknown = http.post(SESSIONS, json={"version_indicator": {"type": "version_ref", "agent_version": "99"}})
    assert _assert_envelope(unknown, 404, "not_found")["param"] == "version_indicator.agent_version"


@pytest.mark.parametrize("session_id", ["short", "has.a.dot", "x" * 129, "with space"])
def test_create_refuses_a_session_id_outside_the_documented_rule(http: httpx2.Client, session_id: str) -> None:
    refused = http.post(SESSIONS, json={"agent_session_id": session_id, "version_indicator": VERSION_REF})
    assert _assert_envelope(refused, 400, "invalid_value")["param"] == "agent_session_id"


def test_delete_session_answers_204_whether_or_not_it_exists(app: Any, http: httpx2.Client) -> None:
    assert http.delete(f"{SESSIONS}/{SEED_SESSION}").status_code == 204
    assert app.session(AGENT, SEED_SESSION) is None
    assert http.delete(f"{SESSIONS}/{SEED_SESSION}").status_code == 204


def test_isolation_key_is_optional_and_hides_other_keys_sessions(app: Any, http: httpx2.Client) -> None:
    headers = {"x-ms-user-isolation-key": "alice", "Foundry-Features": "AgentEndpoints=V1Preview"}
    alice = http.post(SESSIONS, headers=headers, json={"version_indicator": VERSION_REF}).json()["agent_session_id"]
    bob = {"x-session-isolation-key": "bob"}
    _assert_envelope(http.get(f"{SESSIONS}/{alice}", headers=bob), 404, "not_found")
    assert alice not in {s["agent_session_id"] for s in http.get(SESSIONS, headers=bob).json()["data"]}
    assert http.delete(f"{SESSIONS}/{alice}", headers=bob).status_code == 204
    assert app.session(AGENT, alice) is not None  # bob's delete did not reach alice's session
    assert http.get(f"{SESSIONS}/{alice}").status_code == 200  # no key: the caller's identity sees it


def test_parse_options_maps_command_line_flags() -> None:
    options = azure_foundry.parse_options(
        ["--project", "demo", "--max-upload-bytes", "10", "--start-time", "now", "--no-seed"]
    )
    assert options == {"project": "demo", "max_upload_bytes": 10, "start_time": None, "seed": False}
    app = azure_foundry.create_app(**options)
    assert app.project_path == "/api/projects/demo" and app.seed is None
