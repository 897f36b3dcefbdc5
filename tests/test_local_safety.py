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

