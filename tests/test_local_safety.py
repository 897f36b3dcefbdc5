"""The embedded platform keeps agents inside their bounds: workspaces, output size, environment."""

from __future__ import annotations

import os
from pathlib import Path

from tests.helpers import agents_toml, call, config_for, fail, local_client


async def test_workspaces_cannot_escape_the_root_by_dots_absolute_paths_or_symlinks(tmp_path: Path) -> None:
    root = tmp_path / "root"
    outside = tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    os.symlink(outside, root / "sneaky")
    toml = agents_toml().replace('kind = "local"', f'kind = "local"\nworkspace_root = "{root}"', 1)
    async with local_client(config_for(tmp_path, toml=toml)) as client:
        for workspace in ("../outside", "sneaky", str(outside), "a/../../outside"):
            error = await fail(client, "spawn_agent", {"agent": "echo", "prompt": "x", "workspace": workspace})
            assert error["code"] == "invalid_argument" and "workspace" in error["message"], workspace
        inside = await call(client, "spawn_agent", {"agent": "echo", "prompt": "x", "workspace": "projects/a"})
        assert (await call(client, "wait_for_run", {"run_id": inside["id"]}))["state"] == "succeeded"
    assert (root / "projects" / "a").is_dir() and not any(outside.iterdir())


async def test_output_kept_per_run_is_capped_with_a_note(tmp_path: Path) -> None:
    toml = agents_toml().replace('kind = "local"', 'kind = "local"\nmax_output_bytes = 2000', 1)
    async with local_client(config_for(tmp_path, toml=toml)) as client:
        run = await call(client, "spawn_agent", {"agent": "echo", "prompt": "\n".join(f"line {i:04d} " + "x" * 80 for i in range(200))})
        assert (await call(client, "wait_for_run", {"run_id": run["id"]}))["state"] == "succeeded"
        events = (await call(client, "get_run_events", {"run_id": run["id"], "limit": 500}))["events"]
    kept = sum(len(e["text"]) for e in events if e["kind"] == "stdout")
    assert kept <= 2000 and len(events) < 40
    assert sum("output capped at 2000 bytes" in e["text"] for e in events) == 1
    assert events[-1]["text"] == "run succeeded"
