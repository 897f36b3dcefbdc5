"""Runs on the embedded platform, through an in-memory MCP client session."""

from __future__ import annotations

import os
from pathlib import Path

import anyio
import pytest

from agentdeck.backends.local.guard import run_processes
from agentdeck.backends.local.store import Store
from tests.helpers import call, config_for, fail, local_client

pytestmark = pytest.mark.usefixtures("store_url")


def _pids_with(marker: str, run_id: str) -> list[int]:
    """This run's processes whose command line holds `marker` (other test sessions share the machine)."""
    found = []
    for pid in run_processes(run_id):
        try:
            if marker.encode() in Path(f"/proc/{pid}/cmdline").read_bytes():
                found.append(pid)
        except OSError:
            pass
    return found


async def test_spawned_echo_run_succeeds_and_its_output_lines_become_ordered_events(tmp_path: Path) -> None:
    async with local_client(config_for(tmp_path)) as client:
        run = await call(client, "spawn_agent", {"agent": "echo", "prompt": "first\nsecond\nthird"})
        assert run["state"] in ("queued", "running") and run["agent"] == "echo" and run["backend"] == "local"
        done = await call(client, "wait_for_run", {"run_id": run["id"], "timeout_seconds": 30})
        assert done["state"] == "succeeded" and done["exit_code"] == 0
        page = await call(client, "get_run_events", {"run_id": run["id"]})
        stdout = [e["text"] for e in page["events"] if e["kind"] == "stdout"]
        assert stdout == ["first", "second", "third"]
        seqs = [e["seq"] for e in page["events"]]
        assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
        assert page["next_after_seq"] is None


async def test_events_page_by_after_seq_without_gaps_or_repeats(tmp_path: Path) -> None:
    async with local_client(config_for(tmp_path)) as client:
        run = await call(client, "spawn_agent", {"agent": "echo", "prompt": "\n".join(f"line {i}" for i in range(25))})
        await call(client, "wait_for_run", {"run_id": run["id"]})
        seen, after = [], None
        while True:
            args = {"run_id": run["id"], "limit": 10} | ({"after_seq": after} if after is not None else {})
            page = await call(client, "get_run_events", args)
            seen += [e["seq"] for e in page["events"]]
            after = page["next_after_seq"]
            if after is None:
                break
        assert seen == list(range(1, len(seen) + 1)) and len(seen) == 26


async def test_nonzero_exit_fails_the_run_with_exit_code_and_stderr_tail(tmp_path: Path) -> None:
    async with local_client(config_for(tmp_path)) as client:
        run = await call(client, "spawn_agent", {"agent": "fail", "prompt": "x"})
        done = await call(client, "wait_for_run", {"run_id": run["id"]})
        assert done["state"] == "failed" and done["exit_code"] == 3
        assert done["error"]["code"] == "exit_code" and "boom: disk full" in done["error"]["message"]


async def test_spawned_agent_gets_its_run_id_data_dir_and_identity_but_not_our_secrets(tmp_path: Path) -> None:
    config = config_for(tmp_path)
    os.environ["SECRET_TOKEN"] = "s3cr3t-value"
    try:
        async with local_client(config) as client:
            run = await call(client, "spawn_agent", {"agent": "env", "prompt": "x"})
            await call(client, "wait_for_run", {"run_id": run["id"]})
            page = await call(client, "get_run_events", {"run_id": run["id"]})
    finally:
        del os.environ["SECRET_TOKEN"]
    lines = dict(e["text"].split("=", 1) for e in page["events"] if e["kind"] == "stdout")
    assert lines["AGENTDECK_RUN_ID"] == run["id"] and lines["AGENTDECK_IDENTITY"] == run["id"]
    assert lines["AGENTDECK_DATA_DIR"] == str(tmp_path / "data")
    assert lines["SECRET_TOKEN"] == ""


@pytest.mark.skipif(not Path("/proc").exists(), reason="reads /proc to find processes")
async def test_cancel_stops_the_run_and_leaves_no_process_behind(tmp_path: Path) -> None:
    async with local_client(config_for(tmp_path)) as client:
        run = await call(client, "spawn_agent", {"agent": "sleeper", "prompt": "x"})
        with anyio.fail_after(15):
            while not _pids_with("agentdeck-test-grandchild", run["id"]):
                await anyio.sleep(0.05)
        cancelled = await call(client, "cancel_run", {"run_id": run["id"]})
        assert cancelled["state"] == "cancelled"
        with anyio.fail_after(10):
            while _pids_with("agentdeck-test-grandchild", run["id"]):
                await anyio.sleep(0.05)
        again = await fail(client, "cancel_run", {"run_id": run["id"]})
        assert again["code"] == "conflict"


async def test_ttl_stops_a_run_that_runs_too_long(tmp_path: Path) -> None:
    async with local_client(config_for(tmp_path)) as client:
        run = await call(client, "spawn_agent", {"agent": "sleeper", "prompt": "x", "ttl_seconds": 1})
        done = await call(client, "wait_for_run", {"run_id": run["id"], "timeout_seconds": 20})
        assert done["state"] == "failed" and done["error"]["code"] == "ttl_expired"


async def test_wait_for_run_returns_the_running_run_when_its_timeout_passes(tmp_path: Path) -> None:
    progress: list[float] = []

    async def on_progress(value: float, total: float | None, message: str | None) -> None:
        progress.append(value)

    async with local_client(config_for(tmp_path)) as client:
        run = await call(client, "spawn_agent", {"agent": "sleeper", "prompt": "x"})
        waited = await call(client, "wait_for_run", {"run_id": run["id"], "timeout_seconds": 1}, progress_callback=on_progress)
        assert waited["state"] in ("queued", "running")
        assert progress and progress == sorted(progress)
        await call(client, "cancel_run", {"run_id": run["id"]})


async def test_wait_for_run_refuses_timeouts_past_fifty_seconds(tmp_path: Path) -> None:
    async with local_client(config_for(tmp_path)) as client:
        error = await fail(client, "wait_for_run", {"run_id": "run_x", "timeout_seconds": 51})
        assert error["code"] == "invalid_argument" and "timeout_seconds" in error["message"]


async def test_followup_starts_a_new_turn_linked_to_the_run(tmp_path: Path) -> None:
    async with local_client(config_for(tmp_path)) as client:
        first = await call(client, "spawn_agent", {"agent": "echo", "prompt": "one"})
        await call(client, "wait_for_run", {"run_id": first["id"]})
        turn = await call(client, "send_followup", {"run_id": first["id"], "message": "two"})
        assert turn["followup_of"] == first["id"] and turn["thread_id"] == first["thread_id"] and turn["id"] != first["id"]
        done = await call(client, "wait_for_run", {"run_id": turn["id"]})
        assert done["state"] == "succeeded"


async def test_spawn_budget_limits_children_and_depth(tmp_path: Path) -> None:
    toml = Path(tmp_path / "agentdeck.toml")
    from tests.helpers import agents_toml

    toml.write_text(agents_toml().replace("cancel_grace_seconds = 1.0", "cancel_grace_seconds = 1.0\nmax_children = 2\nmax_depth = 1"))
    async with local_client(config_for(tmp_path, toml=toml.read_text())) as client:
        root = await call(client, "spawn_agent", {"agent": "echo", "prompt": "root"})
        child = await call(client, "spawn_agent", {"agent": "echo", "prompt": "c1", "parent_run_id": root["id"]})
        await call(client, "spawn_agent", {"agent": "echo", "prompt": "c2", "parent_run_id": root["id"]})
        over = await fail(client, "spawn_agent", {"agent": "echo", "prompt": "c3", "parent_run_id": root["id"]})
        assert over["code"] == "conflict" and "children" in over["message"]
        deep = await fail(client, "spawn_agent", {"agent": "echo", "prompt": "g", "parent_run_id": child["id"]})
        assert deep["code"] == "conflict" and "deep" in deep["message"]


async def test_spawn_with_the_same_idempotency_key_returns_the_first_run(tmp_path: Path) -> None:
    async with local_client(config_for(tmp_path)) as client:
        a = await call(client, "spawn_agent", {"agent": "echo", "prompt": "x", "idempotency_key": "k1"})
        b = await call(client, "spawn_agent", {"agent": "echo", "prompt": "x", "idempotency_key": "k1"})
        assert a["id"] == b["id"]
        page = await call(client, "list_runs", {})
        assert [r["id"] for r in page["runs"]] == [a["id"]]


async def test_list_runs_filters_by_state_agent_parent_and_time(tmp_path: Path) -> None:
    async with local_client(config_for(tmp_path)) as client:
        ok = await call(client, "spawn_agent", {"agent": "echo", "prompt": "x"})
        bad = await call(client, "spawn_agent", {"agent": "fail", "prompt": "x"})
        child = await call(client, "spawn_agent", {"agent": "echo", "prompt": "x", "parent_run_id": ok["id"]})
        for run in (ok, bad, child):
            await call(client, "wait_for_run", {"run_id": run["id"]})
        failed = await call(client, "list_runs", {"state": "failed"})
        assert [r["id"] for r in failed["runs"]] == [bad["id"]]
        echo = await call(client, "list_runs", {"agent": "echo"})
        assert {r["id"] for r in echo["runs"]} == {ok["id"], child["id"]}
        children = await call(client, "list_runs", {"parent_run_id": ok["id"]})
        assert [r["id"] for r in children["runs"]] == [child["id"]]
        later = await call(client, "list_runs", {"created_after": child["created_at"]})
        assert later["runs"] == []
        earlier = await call(client, "list_runs", {"created_after": "2000-01-01T00:00:00Z"})
        assert len(earlier["runs"]) == 3


async def test_list_runs_pages_lose_and_repeat_nothing_while_runs_are_added(tmp_path: Path) -> None:
    async with local_client(config_for(tmp_path)) as client:
        first = [await call(client, "spawn_agent", {"agent": "echo", "prompt": str(i)}) for i in range(7)]
        page = await call(client, "list_runs", {"limit": 3})
        seen = [r["id"] for r in page["runs"]]
        added = [await call(client, "spawn_agent", {"agent": "echo", "prompt": "new"}) for _ in range(2)]
        while page["next_cursor"]:
            page = await call(client, "list_runs", {"limit": 3, "cursor": page["next_cursor"]})
            seen += [r["id"] for r in page["runs"]]
        assert seen == [r["id"] for r in reversed(first)]
        newest = await call(client, "list_runs", {"limit": 2})
        assert {r["id"] for r in newest["runs"]} == {r["id"] for r in added}


async def test_a_run_whose_supervisor_was_killed_is_reported_failed_not_running_forever(tmp_path: Path, store: Store) -> None:
    import signal

    async with local_client(config_for(tmp_path)) as client:
        run = await call(client, "spawn_agent", {"agent": "sleeper", "prompt": "x"})
        with anyio.fail_after(15):
            while (await call(client, "get_run", {"run_id": run["id"]}))["state"] != "running":
                await anyio.sleep(0.05)
        row = await store.get_run(run["id"])
        assert row is not None
        os.kill(row["supervisor_pid"], signal.SIGKILL)
        os.killpg(row["child_pid"], signal.SIGKILL)
        with anyio.fail_after(10):
            while (current := await call(client, "get_run", {"run_id": run["id"]}))["state"] == "running":
                await anyio.sleep(0.05)
        assert current["state"] == "failed" and current["error"]["code"] == "supervisor_lost"
