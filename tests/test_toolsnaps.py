"""Each tool's tools/list entry is snapshotted, so a change of the public API shows as a diff.

Update after an intended change with:  AGENTDECK_UPDATE_TOOLSNAPS=1 pytest tests/test_toolsnaps.py
"""

from __future__ import annotations

import difflib
import json
import os
from pathlib import Path

import pytest

from agentdeck.inventory import tools_list
from agentdeck.tools import ALL_TOOLS
from tests.helpers import FILES_TOML, config_for

SNAPS = Path(__file__).parent / "toolsnaps"
UPDATE = os.environ.get("AGENTDECK_UPDATE_TOOLSNAPS") == "1"


@pytest.fixture(scope="module")
def listed(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, object]]:
    """Each tool as a single-backend deployment lists it: the local platform, else a files backend."""
    found: dict[str, dict[str, object]] = {}
    for toml in (None, FILES_TOML):
        config = config_for(tmp_path_factory.mktemp("snaps"), toml=toml, AZURE_FOUNDRY_TOKEN="unused")
        for tool in tools_list(config):
            found.setdefault(str(tool["name"]), tool)
    return found


@pytest.mark.parametrize("name", [spec.name for spec in ALL_TOOLS])
def test_tool_definition_matches_its_snapshot(name: str, listed: dict[str, dict[str, object]]) -> None:
    current = json.dumps(listed[name], indent=2, sort_keys=True) + "\n"
    path = SNAPS / f"{name}.json"
    if UPDATE:
        path.write_text(current)
        return
    assert path.exists(), f"no snapshot for {name}; create it with AGENTDECK_UPDATE_TOOLSNAPS=1 pytest tests/test_toolsnaps.py"
    expected = path.read_text()
    if current != expected:
        diff = "".join(difflib.unified_diff(expected.splitlines(True), current.splitlines(True), f"{name} (snapshot)", f"{name} (now)"))
        pytest.fail(f"the definition of {name} changed:\n{diff}\nIf intended: AGENTDECK_UPDATE_TOOLSNAPS=1 pytest tests/test_toolsnaps.py")


def test_no_snapshot_is_left_for_a_tool_that_no_longer_exists() -> None:
    names = {spec.name for spec in ALL_TOOLS}
    stale = sorted(p.stem for p in SNAPS.glob("*.json") if p.stem not in names)
    assert not stale, f"remove snapshots of tools that are gone (or add an alias): {stale}"
