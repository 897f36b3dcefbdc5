"""The dashboard over HTTP against a live `agentdeck ui` process: pages, live events, actions as
human:<name> with an audit trail, CSRF and host checks, read-only mode, auth off loopback, and
escaping of everything agents write."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import httpx2

from tests.helpers import call, config_for, free_port, http_server, local_client, server_env
from tests.ui_helpers import csrf_of, next_update, ui_server

HOSTILE = '<script>window.pwned = 1</script><img src=x onerror="window.pwned = 2">'


async def _wait_done(client, run_id: str) -> dict:  # type: ignore[no-untyped-def]
    return await call(client, "wait_for_run", {"run_id": run_id, "timeout_seconds": 30})


async def test_pages_show_what_agents_did_escaped(tmp_path: Path) -> None:
    config = config_for(tmp_path)
    async with local_client(config) as client:
        await call(client, "send_channel_message", {"channel": "general", "body": HOSTILE})
        run = await call(client, "spawn_agent", {"agent": "echo", "prompt": HOSTILE})
        await _wait_done(client, run["id"])
    with ui_server(server_env(tmp_path), "--as", "alice") as url:
        runs = httpx2.get(url, timeout=10).text
        assert run["id"] in runs and "acting as <b>human:alice</b>" in runs
        for page in (f"{url}channels/local/general", f"{url}runs/local/{run['id']}"):
            html = httpx2.get(page, timeout=10).text
            assert "<script>window.pwned" not in html and "<img src=x" not in html
            assert "&lt;script&gt;window.pwned = 1&lt;/script&gt;&lt;img src=x onerror=" in html
        with httpx2.stream("GET", f"{url}live/channels/local/general", timeout=10) as response:
            update = next_update(response, response.iter_lines())
        assert update["target"] == "channel" and "<script>" not in update["html"] and "&lt;script&gt;" in update["html"]
        with httpx2.stream("GET", f"{url}live/runs/local/{run['id']}", timeout=10) as response:
            lines = response.iter_lines()
            updates = [next_update(response, lines), next_update(response, lines)]
        (output,) = [u for u in updates if u["target"] == "output"]
        assert "<script>" not in output["html"] and "&lt;script&gt;" in output["html"]


def test_actions_need_the_csrf_token_and_the_same_origin(tmp_path: Path) -> None:
    config_for(tmp_path)
    with ui_server(server_env(tmp_path), "--as", "alice") as url:
        page = httpx2.get(f"{url}channels/local/general", timeout=10)
        token = csrf_of(page.text)
        form = {"backend": "local", "channel": "general", "body": "hello agents"}
        post = f"{url}act/post"
        assert httpx2.post(post, data=form, timeout=10).status_code == 403  # no token
        assert httpx2.post(post, data=form | {"csrf": "guess"}, timeout=10).status_code == 403
        assert httpx2.post(post, data=form | {"csrf": token}, headers={"Origin": "http://evil.example"}, timeout=10).status_code == 403
        assert httpx2.post(post, data=form | {"csrf": token}, headers={"Sec-Fetch-Site": "cross-site"}, timeout=10).status_code == 403
        assert httpx2.get(url, headers={"Host": "evil.example"}, timeout=10).status_code == 421  # DNS rebinding
        origin = url.split("/ui/")[0]
        done = httpx2.post(post, data=form | {"csrf": token}, headers={"Origin": origin}, timeout=10)
        assert done.status_code == 303
        audit = httpx2.get(f"{url}audit", timeout=10).text
        assert audit.count("<td>human:alice</td><td>post</td>") == 1  # the refused ones did nothing


async def test_a_person_posts_replies_cancels_releases_and_invokes_as_human_and_it_is_audited(store_url: str | None, tmp_path: Path) -> None:
    config = config_for(tmp_path, identity="agent-a")
    async with local_client(config) as agent:
        question = await call(agent, "send_channel_message", {"channel": "general", "body": "which branch?"})
        await call(agent, "create_task", {"title": "build", "queue": "ci"})
        lease = (await call(agent, "claim_task", {"queue": "ci"}))["lease"]
        sleeper = await call(agent, "spawn_agent", {"agent": "sleeper", "prompt": "x"})
        with ui_server(server_env(tmp_path), "--as", "alice") as url:
            token = csrf_of(httpx2.get(f"{url}channels/local/general", timeout=10).text)

            def act(action: str, **fields: str) -> httpx2.Response:
                return httpx2.post(f"{url}act/{action}", data={"csrf": token, "backend": "local", **fields}, timeout=30)

            assert act("post", channel="general", body="main, please", reply_to=question["id"]).status_code == 303
            got = await call(agent, "receive_channel_messages", {"channel": "general"})
            (reply,) = got["messages"]
            assert reply["sender"] == "human:alice" and reply["reply_to"] == question["id"] and reply["body"] == "main, please"
            tasks = httpx2.get(f"{url}tasks?queue=ci", timeout=10).text
            row = tasks[tasks.index(f'data-task="{lease["task"]["id"]}"') :].split("</tr>")[0]
            assert "<td>agent-a</td>" in row and "data-until" in row and "<td>1/3</td>" in row and 'class="release"' in row
            child = await call(agent, "spawn_agent", {"agent": "echo", "prompt": "child", "parent_run_id": sleeper["id"]})
            parent_page = httpx2.get(f"{url}runs/local/{sleeper['id']}", timeout=10).text
            assert f"/ui/runs/local/{child['id']}" in parent_page  # the children of a run
            child_page = httpx2.get(f"{url}runs/local/{child['id']}", timeout=10).text
            assert f"/ui/runs/local/{sleeper['id']}" in child_page  # and its parent
            assert act("release", task_id=lease["task"]["id"], reason="stuck").status_code == 303
            assert act("cancel", run_id=sleeper["id"]).status_code == 303
            assert (await call(agent, "get_run", {"run_id": sleeper["id"]}))["state"] == "cancelled"
            invoked = act("invoke", routine="greet", message="team")
            assert invoked.status_code == 303
            run_id = invoked.headers["location"].rsplit("/", 1)[1]
            done = await _wait_done(agent, run_id)
            assert done["created_by"] == "human:alice" and done["routine"] == "greet"
            refused = act("cancel", run_id=sleeper["id"])  # already ended: an error, audited too
            assert refused.status_code == 409 and "conflict" in refused.text

            audit = httpx2.get(f"{url}audit", timeout=10).text
            for action in ("post", "release", "cancel", "invoke"):
                assert f"<td>human:alice</td><td>{action}</td>" in audit
            assert "<td>conflict</td>" in audit
        reclaimed = await call(agent, "claim_task", {"queue": "ci"})
        assert reclaimed["lease"]["task"]["id"] == lease["task"]["id"] and reclaimed["lease"]["task"]["attempts"] == 1


def test_read_only_shows_no_action_and_refuses_one(tmp_path: Path) -> None:
    config_for(tmp_path)
    with ui_server(server_env(tmp_path), "--read-only") as url:
        page = httpx2.get(f"{url}channels/local/general", timeout=10).text
        assert "read-only" in page and "/act/" not in page and 'name="csrf"' not in page
        routines = httpx2.get(f"{url}routines", timeout=10).text
        assert "greet" in routines and "/act/" not in routines
        refused = httpx2.post(f"{url}act/post", data={"csrf": "x" * 43, "backend": "local", "channel": "general", "body": "hi"}, timeout=10)
        assert refused.status_code == 403 and "read-only" in refused.text


def test_off_loopback_the_dashboard_needs_a_token_and_then_keeps_a_session(tmp_path: Path) -> None:
    config_for(tmp_path)
    refused = subprocess.run(
        [sys.executable, "-m", "agentdeck", "ui", "--host", "0.0.0.0", "--port", str(free_port())],
        env=server_env(tmp_path), capture_output=True, text=True, timeout=60,
    )
    assert refused.returncode == 2 and "without authentication" in refused.stderr and "Traceback" not in refused.stderr

    with ui_server(server_env(tmp_path, AGENTDECK_HTTP_TOKENS="s3cret-token-0123456789"), "--host", "0.0.0.0") as url:
        url = url.replace("0.0.0.0", "127.0.0.1")
        assert httpx2.get(url, timeout=10).status_code == 401
        assert httpx2.get(f"{url}?token=wrong", timeout=10).status_code == 403
        assert httpx2.get(f"{url}live/", timeout=10).status_code == 401
        with httpx2.Client(timeout=10) as browser:
            login = browser.get(f"{url}?token=s3cret-token-0123456789")
            assert login.status_code == 303 and "s3cret-token-0123456789" not in login.headers["set-cookie"]
            assert "httponly" in login.headers["set-cookie"].lower() and "samesite=strict" in login.headers["set-cookie"].lower()
            assert browser.get(url).status_code == 200
        assert httpx2.get(url, headers={"Authorization": "Bearer s3cret-token-0123456789"}, timeout=10).status_code == 200


def test_serve_http_serves_the_dashboard_under_ui_beside_mcp(tmp_path: Path) -> None:
    config_for(tmp_path)
    env = server_env(tmp_path, AGENTDECK_HTTP_TOKENS="tok-1-dashboard-0123456789")
    with http_server(env) as mcp_url:
        base = mcp_url.removesuffix("/mcp")
        assert httpx2.get(f"{base}/ui/", timeout=10).status_code == 401  # the same tokens guard it
        page = httpx2.get(f"{base}/ui/", headers={"Authorization": "Bearer tok-1-dashboard-0123456789"}, timeout=10)
        assert page.status_code == 200 and "Runs" in page.text
        assert httpx2.post(mcp_url, json={}, timeout=10).status_code == 401  # /mcp still wants its token


async def test_a_message_from_another_process_arrives_on_the_live_stream(store_url: str | None, tmp_path: Path) -> None:
    config_for(tmp_path)
    env = server_env(tmp_path, AGENTDECK_IDENTITY="agent-b")
    subprocess.run([sys.executable, "-m", "agentdeck", "call", "send_channel_message", "channel=general", "body=first"], env=env, check=True, capture_output=True, timeout=60)
    with ui_server(server_env(tmp_path)) as url:
        with httpx2.stream("GET", f"{url}live/channels/local/general", timeout=30) as response:
            lines = response.iter_lines()
            assert "first" in next_update(response, lines)["html"]
            started = time.monotonic()
            subprocess.run([sys.executable, "-m", "agentdeck", "call", "send_channel_message", "channel=general", "body=second <b>bold</b>"], env=env, check=True, capture_output=True, timeout=60)
            update = next_update(response, lines)
            assert "second &lt;b&gt;bold&lt;/b&gt;" in update["html"] and "agent-b" in update["html"]
            assert time.monotonic() - started < 20


def test_ctrl_c_stops_the_dashboard_quickly_and_quietly_with_a_live_page_open(tmp_path: Path) -> None:
    import signal

    config_for(tmp_path)
    proc = subprocess.Popen([sys.executable, "-m", "agentdeck", "ui"], env=server_env(tmp_path, AGENTDECK_LOG_LEVEL="info"), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().split(" at ", 1)[1].split()[0]
        with httpx2.stream("GET", f"{url}live/", timeout=30) as response:
            next_update(response, response.iter_lines())
            proc.send_signal(signal.SIGINT)
            assert proc.wait(20) in (0, 130)
        stderr = proc.stderr.read() if proc.stderr else ""
        assert "Traceback" not in stderr and " ERROR " not in stderr and " WARNING " not in stderr, stderr
    finally:
        if proc.poll() is None:
            proc.kill()


OZ_KEY = "wk-dashboard-secret-5d1a"


async def test_a_remote_backend_appears_with_what_it_can_do(tmp_path: Path) -> None:
    from tests.emulators.oz import create_app
    from tests.emulators.serving import serve_in_thread
    from tests.helpers import agents_toml

    with serve_in_thread(create_app()) as base:
        toml = agents_toml() + f'\n[backends.oz]\nkind = "oz"\nbase_url = "{base}/api/v1"\n'
        config = config_for(tmp_path, toml=toml, WARP_API_KEY=OZ_KEY)
        async with local_client(config) as client:
            run = await call(client, "spawn_agent", {"agent": "fixer", "prompt": "Fix the <login> bug", "backend": "oz"})
        with ui_server(server_env(tmp_path, WARP_API_KEY=OZ_KEY)) as url:
            runs = httpx2.get(f"{url}?backend=oz", timeout=30).text
            assert run["id"] in runs and "on oz (oz)" in runs
            detail = httpx2.get(f"{url}runs/oz/{run['id']}", timeout=30).text
            # Oz keeps a run's conversation (its events), and can cancel
            assert "does not keep run output" not in detail and 'id="output"' in detail and 'id="cancel-run"' in detail
            for page, missing in (("channels", "channels"), ("tasks", "tasks"), ("routines", "routines")):
                html = httpx2.get(f"{url}{page}?backend=oz", timeout=30).text
                assert f"Backend &#39;oz&#39; (oz) has no {missing}." in html
            with httpx2.stream("GET", f"{url}live/?backend=oz", timeout=30) as response:
                assert run["id"] in next_update(response, response.iter_lines())["html"]
            for page in (runs, detail):
                assert OZ_KEY not in page
