"""docs/configuration.md is generated from the settings models and must not drift from them."""

from __future__ import annotations

import difflib
import re
import subprocess
import sys
from pathlib import Path

import pytest

from agentdeck import config
from agentdeck.settings_doc import UPDATE_COMMAND, documented_models, render

DOC = Path(__file__).resolve().parent.parent / "docs" / "configuration.md"


def test_configuration_reference_matches_the_settings_models() -> None:
    expected = render()
    current = DOC.read_text(encoding="utf-8") if DOC.exists() else ""
    if current != expected:
        diff = "".join(difflib.unified_diff(current.splitlines(True), expected.splitlines(True), "docs/configuration.md", "generated"))
        pytest.fail(f"docs/configuration.md is stale; regenerate it with\n    {UPDATE_COMMAND}\n\n{diff}")


def test_every_settings_key_is_documented_with_a_description() -> None:
    text = render()
    for model in documented_models():
        for name, field in model.model_fields.items():
            if field.exclude:
                continue
            rows = [line for line in text.splitlines() if line.startswith(f"| `{name}` |")]
            assert rows, f"{model.__name__}.{name} is missing from the reference"
            assert all(not row.rstrip().endswith("|  |") for row in rows), (
                f"{model.__name__}.{name} has no description: give it Field(description=...) in config.py"
            )


def test_secret_fields_are_never_listed() -> None:
    text = render()
    secret_fields = {name for model in documented_models() for name, field in model.model_fields.items() if field.exclude}
    assert {"api_key", "tokens"} <= secret_fields
    for name in secret_fields:
        assert f"| `{name}` |" not in text


def test_every_environment_variable_in_the_reference_is_read_by_config() -> None:
    source = Path(config.__file__).read_text(encoding="utf-8")
    listed = re.findall(r"^\| `([A-Z][A-Z0-9_]+)` \|", render(), flags=re.M)
    assert "AGENTDECK_CONFIG" in listed and "AGENTDECK_HTTP_TOKENS" in listed
    for var in listed:
        assert f'"{var}"' in source, f"{var} is documented but config.py never reads it"
    for var in config._ENV_KEYS:
        assert var in listed


def test_the_update_command_prints_the_reference() -> None:
    result = subprocess.run([sys.executable, "-m", "agentdeck.settings_doc"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout == render()
