"""Store behaviour that belongs to one implementation: migrations, locks, wake-ups, URLs.

The behaviour both stores share is tested once, on both, by the test_local_* suites (see the
`store_url` fixture in conftest.py); what is here is prefixed with the store it is about.
"""

from __future__ import annotations

import ast
import sqlite3
import sys
from pathlib import Path

import anyio
import pytest

import agentdeck.backends.local.store as store_package
from agentdeck.backends.local.store import new_id, open_store
from agentdeck.backends.local.store.sqlite_db import SqliteDb
from agentdeck.backends.local.store.sqlite_sql import MIGRATIONS as SQLITE_MIGRATIONS
from agentdeck.errors import ConfigError
from tests.helpers import agents_toml, call, config_for, fail, free_port, local_client


def _task(title: str) -> dict[str, object]:
    return {"id": new_id("task"), "queue": "q", "title": title, "payload": None, "priority": 0, "max_attempts": 3, "created_at": 1.0}


def test_sqlite_file_at_an_older_schema_version_is_migrated_on_open(tmp_path: Path) -> None:
    path = tmp_path / "agentdeck.db"
    with sqlite3.connect(path) as old:  # a file as the first release left it
        old.executescript(SQLITE_MIGRATIONS[0][1])
        old.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        old.execute("INSERT INTO meta VALUES ('schema_version', '1')")
    db = SqliteDb(path)
    assert db.schema_version() == SQLITE_MIGRATIONS[-1][0]
    assert db.get_run("nope") is None
    db.set_supervisor("nope", 1, "host")  # the column migration 2 added
    db.close()
    assert SqliteDb(path).schema_version() == SQLITE_MIGRATIONS[-1][0]


async def test_sqlite_write_waits_for_another_process_without_stalling_the_event_loop(tmp_path: Path) -> None:
    """Quick writes run on the event loop when the write lock is free; while another process
    holds it, they wait in the worker thread, and every other request keeps being served."""
    import subprocess
    import time

    store = open_store(None, tmp_path / "data")
    await store.open()
    try:
        await store.create_task(_task("first"), "s", None)  # on the loop: the lock is free
        holder = subprocess.Popen(
            [sys.executable, "-c", "import sqlite3, sys, time; db = sqlite3.connect(sys.argv[1], isolation_level=None);"
             " db.execute('BEGIN IMMEDIATE'); print('held', flush=True); time.sleep(1.5); db.execute('COMMIT')", str(tmp_path / "data" / "agentdeck.db")],
            stdout=subprocess.PIPE, text=True,
        )
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        stalls: list[float] = []

        async def ticker() -> None:
            while True:
                before = time.monotonic()
                await anyio.sleep(0.01)
                stalls.append(time.monotonic() - before)

        async with anyio.create_task_group() as tg:
            tg.start_soon(ticker)
            started = time.monotonic()
            with anyio.fail_after(20):
                task = await store.create_task(_task("second"), "s", None)
            waited = time.monotonic() - started
            tg.cancel_scope.cancel()
        holder.wait(10)
        assert task["title"] == "second" and waited >= 0.5, waited  # it did wait for the other process
        assert max(stalls) < 0.5, f"the event loop stalled for {max(stalls):.2f} s"
        assert (await store.get_task(task["id"]) or {}).get("state") == "queued"
    finally:
        await store.close()


async def test_sqlite_writes_made_on_the_event_loop_still_checkpoint_the_wal(tmp_path: Path) -> None:
    import time

    store = open_store(None, tmp_path / "data")
    try:
        for i in range(600):
            await store.create_task(_task(f"t{i}"), "s", None)
        for _ in range(600):
            claim = await store.claim_next("q", "w", 60, time.time())
            assert claim is not None
            await store.settle(claim["lease_run_id"], claim["claim_token"], "completed", time.time(), holder="w")
        # 1,800 write transactions leave over 40 MB of WAL when nothing checkpoints it.
        assert (tmp_path / "data" / "agentdeck.db-wal").stat().st_size < 12_000_000
    finally:
        await store.close()


def test_sqlite_store_url_names_the_file_and_other_schemes_are_refused(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path}/elsewhere.db", tmp_path / "data")
    assert store.kind == "sqlite" and store.path == tmp_path / "elsewhere.db"  # type: ignore[attr-defined]
    with pytest.raises(ConfigError, match="postgresql://"):
        open_store("mysql://db/agentdeck", tmp_path)


async def test_postgres_migrations_are_applied_once_when_many_processes_start_together(postgres_url: str) -> None:
    psycopg = pytest.importorskip("psycopg")
    stores = [open_store(postgres_url, Path("/nonexistent")) for _ in range(8)]
    try:
        with anyio.fail_after(30):
            async with anyio.create_task_group() as tg:
                for store in stores:
                    tg.start_soon(store.open)
        versions = {await store.schema_version() for store in stores}
    finally:
        for store in stores:
            await store.close()
    with psycopg.connect(postgres_url) as conn:
        applied = [row[0] for row in conn.execute("SELECT version FROM schema_version ORDER BY version")]
    assert versions == {applied[-1]} and applied == sorted(set(applied))


async def test_postgres_claim_skips_a_task_another_claimer_has_locked_instead_of_waiting(postgres_url: str) -> None:
    psycopg = pytest.importorskip("psycopg")
    store = open_store(postgres_url, Path("/nonexistent"))
    try:
        first = await store.create_task(_task("first"), "test", None)
        second = await store.create_task(_task("second"), "test", None)
        with psycopg.connect(postgres_url) as other:  # another claimer, mid-transaction on `first`
            other.execute("SELECT * FROM tasks WHERE id = %s FOR UPDATE", (first["id"],))
            with anyio.fail_after(5):
                claimed = await store.claim_next("q", "w", 60, 10.0)
            assert claimed is not None and claimed["id"] == second["id"]
            other.rollback()
        claimed = await store.claim_next("q", "w", 60, 10.0)
        assert claimed is not None and claimed["id"] == first["id"]
    finally:
        await store.close()


async def test_postgres_notify_wakes_a_waiter_of_another_connection_without_polling(postgres_url: str) -> None:
    from agentdeck.backends.local.postgres_wakeups import PostgresWakeups

    listener_store, sender = open_store(postgres_url, Path("/nonexistent")), open_store(postgres_url, Path("/nonexistent"))
    await listener_store.open()
    wakeups = PostgresWakeups(listener_store)  # type: ignore[arg-type]
    wakeups.open()
    try:
        await anyio.sleep(0.3)
        assert not wakeups.listening.is_set()  # nobody waits yet: no connection, no thread
        first = wakeups.register("channel:first")  # the first waiter starts the listener
        with anyio.fail_after(10):
            await anyio.to_thread.run_sync(wakeups.listening.wait, 10)
            event = wakeups.register("channel:wake")
            await sender.notify(("channel:wake",))
            await wakeups.wait(event, 30)
        assert event.is_set()  # woken by the NOTIFY, not by the (10 s) fallback poll
        wakeups.unregister("channel:first", first)
        wakeups.unregister("channel:wake", event)
    finally:
        wakeups.close()
        await listener_store.close()
        await sender.close()


async def test_a_postgres_claim_wakes_the_queue_watchers_of_another_connection_with_its_commit(postgres_url: str) -> None:
    """The claim's NOTIFY travels inside its transaction (no round trip of its own), and an empty
    queue's claim, which changed nothing, wakes nobody."""
    import time

    from agentdeck.backends.local.postgres_wakeups import PostgresWakeups
    from agentdeck.backends.local.store import new_id, queue_topic

    watcher_store, claimer = open_store(postgres_url, Path("/nonexistent")), open_store(postgres_url, Path("/nonexistent"))
    await watcher_store.open()
    await claimer.open()
    assert claimer.announces_claims
    wakeups = PostgresWakeups(watcher_store)  # type: ignore[arg-type]
    wakeups.open()
    try:
        first = wakeups.register("queue:other")  # the first waiter starts the listener
        with anyio.fail_after(10):
            await anyio.to_thread.run_sync(wakeups.listening.wait, 10)
        empty = wakeups.register(queue_topic("empty"))
        assert await claimer.claim_next("empty", "w", 60, time.time()) is None
        await wakeups.wait(empty, 1.0)
        assert not empty.is_set()
        task = {"id": new_id("task"), "queue": "q", "title": "t", "payload": None, "priority": 0, "max_attempts": 3, "created_at": time.time()}
        await claimer.create_task(task, "test", None)
        event = wakeups.register(queue_topic("q"))
        claimed = await claimer.claim_next("q", "w", 60, time.time())
        assert claimed is not None and claimed["id"] == task["id"]
        with anyio.fail_after(10):
            await wakeups.wait(event, 30)
        assert event.is_set()  # woken by the claim's own NOTIFY, not by the (10 s) fallback poll
        for topic, waiter in (("queue:other", first), (queue_topic("empty"), empty)):
            wakeups.unregister(topic, waiter)
    finally:
        wakeups.close()
        await watcher_store.close()
        await claimer.close()


async def test_postgres_listener_stops_when_nobody_has_waited_for_a_while(postgres_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from agentdeck.backends.local import wakeups as module
    from agentdeck.backends.local.postgres_wakeups import PostgresWakeups

    monkeypatch.setattr(module, "LINGER_SECONDS", 0.2)
    store = open_store(postgres_url, Path("/nonexistent"))
    await store.open()
    wakeups = PostgresWakeups(store)  # type: ignore[arg-type]
    wakeups.open()
    try:
        event = wakeups.register("channel:x")
        with anyio.fail_after(10):
            await anyio.to_thread.run_sync(wakeups.listening.wait, 10)
        wakeups.unregister("channel:x", event)
        with anyio.fail_after(10):
            while wakeups.listening.is_set():  # idle: the listener closes its connection
                await anyio.sleep(0.05)
        again = wakeups.register("channel:x")  # and the next waiter starts it again
        with anyio.fail_after(10):
            await anyio.to_thread.run_sync(wakeups.listening.wait, 10)
        wakeups.unregister("channel:x", again)
    finally:
        wakeups.close()
        await store.close()


async def test_postgres_store_that_is_down_answers_unavailable_without_leaking_the_password(tmp_path: Path) -> None:
    pytest.importorskip("psycopg")
    from agentdeck.backends import Deck

    url = f"postgresql://agentdeck:hunter2@127.0.0.1:{free_port()}/agentdeck"
    config = config_for(tmp_path, AGENTDECK_STORE=url)
    async with local_client(config) as client:
        error = await fail(client, "list_channels")
    assert error["code"] == "unavailable" and error["retryable"] is True
    assert "127.0.0.1" in error["message"] and "hunter2" not in error["message"]
    deck = Deck.from_config(config)
    try:
        [(ok, what, detail)] = await deck.backends["local"].doctor()  # type: ignore[attr-defined]
    finally:
        await deck.aclose()
    assert (ok, what) == (False, "store") and "127.0.0.1" in detail and "hunter2" not in detail


async def test_postgres_backend_serves_through_a_real_store(postgres_url: str, tmp_path: Path) -> None:
    async with local_client(config_for(tmp_path, AGENTDECK_STORE=postgres_url)) as client:
        await call(client, "send_channel_message", {"channel": "general", "body": "hello"})
        channels = await call(client, "list_channels")
    assert [c["name"] for c in channels["channels"]] == ["general"]


async def test_postgres_a_value_it_cannot_hold_is_invalid_argument_not_internal(postgres_url: str, tmp_path: Path) -> None:
    async with local_client(config_for(tmp_path, AGENTDECK_STORE=postgres_url)) as client:
        for tool, arguments in [("create_task", {"title": "a\0b"}), ("send_channel_message", {"channel": "general", "body": "x", "kind": "a\0"})]:
            error = await fail(client, tool, arguments)
            assert error["code"] == "invalid_argument" and "NUL" in error["message"]
        await call(client, "create_task", {"title": "ab"})  # the pool is fine afterwards


async def test_postgres_run_survives_its_supervisor_losing_the_database_connection(postgres_url: str, tmp_path: Path) -> None:
    psycopg = pytest.importorskip("psycopg")
    ticker = '["{python}", "-c", "import time\\nfor i in range(8):\\n    print(i, flush=True)\\n    time.sleep(0.15)"]'
    toml = agents_toml() + f"\n[backends.local.agents.ticker]\ncommand = {ticker}\n".replace("{python}", sys.executable.replace("\\", "\\\\"))
    async with local_client(config_for(tmp_path, toml=toml, AGENTDECK_STORE=postgres_url)) as client:
        run = await call(client, "spawn_agent", {"agent": "ticker", "prompt": "x"})
        with psycopg.connect(postgres_url, autocommit=True) as admin:
            with anyio.fail_after(15):  # cut the supervisor off while the agent is still printing
                while not admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'agentdeck-supervisor'").fetchall():
                    await anyio.sleep(0.05)
        done = await call(client, "wait_for_run", {"run_id": run["id"], "timeout_seconds": 30})
        events = await call(client, "get_run_events", {"run_id": run["id"]})
    assert done["state"] == "succeeded"
    assert [e["text"] for e in events["events"] if e["kind"] == "stdout"] == [str(i) for i in range(8)]


async def test_postgres_spawned_agents_are_told_the_store_so_their_agentdeck_shares_it(postgres_url: str, tmp_path: Path) -> None:
    show = '["{python}", "-c", "import os; print(os.environ.get(\'AGENTDECK_STORE\', \'\'))"]'
    toml = agents_toml() + f"\n[backends.local.agents.show]\ncommand = {show}\n".replace("{python}", sys.executable.replace("\\", "\\\\"))
    async with local_client(config_for(tmp_path, toml=toml, AGENTDECK_STORE=postgres_url)) as client:
        run = await call(client, "spawn_agent", {"agent": "show", "prompt": "x"})
        await call(client, "wait_for_run", {"run_id": run["id"], "timeout_seconds": 30})
        events = await call(client, "get_run_events", {"run_id": run["id"]})
    assert [e["text"] for e in events["events"] if e["kind"] == "stdout"] == [postgres_url]


def test_store_package_modules_import_one_another_without_a_cycle_and_only_postgres_ones_import_psycopg() -> None:
    root = Path(store_package.__file__).parent
    prefix = store_package.__name__ + "."
    graph: dict[str, set[str]] = {}
    for path in root.glob("*.py"):
        name = path.stem
        imported: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):  # imports inside functions count too
            modules = [node.module] if isinstance(node, ast.ImportFrom) and node.module else [a.name for a in node.names] if isinstance(node, ast.Import) else []
            imported |= set(modules)
        if not name.startswith("postgres"):
            assert not {m for m in imported if m.split(".")[0] in ("psycopg", "psycopg_pool")}, f"{name}.py imports psycopg"
        assert name == "__init__" or store_package.__name__ not in imported, f"{name}.py imports the package itself, which imports it"
        graph[name] = {m.removeprefix(prefix) for m in imported if m.startswith(prefix)}
    done: set[str] = set()

    def visit(name: str, path: tuple[str, ...]) -> None:
        assert name not in path, f"import cycle: {' -> '.join((*path, name))}"
        if name not in done:
            for dep in graph.get(name, ()):
                visit(dep, (*path, name))
            done.add(name)

    for name in graph:
        visit(name, ())
