"""One factory builds every adapter from its own settings: each kind the config accepts has its adapter."""

from __future__ import annotations

from pathlib import Path
from typing import get_args

from agentdeck.backends import Deck
from agentdeck.config import load_config
from agentdeck.settings_doc import backend_models

EVERY_KIND = """
default = "local"
[backends.local]
kind = "local"
[backends.agh]
kind = "agh"
base_url = "http://127.0.0.1:9"
[backends.oz]
kind = "oz"
[backends.astro]
kind = "archastro"
[backends.azure]
kind = "azure_foundry"
endpoint = "https://example.services.ai.azure.com/api/projects/p"
[backends.aos]
kind = "agent_os"
base_url = "http://127.0.0.1:9"
[backends.peer]
kind = "a2a"
agents = { helper = "http://127.0.0.1:9" }
"""


async def test_every_kind_the_config_accepts_is_built_as_its_own_adapter(tmp_path: Path) -> None:
    (tmp_path / "c.toml").write_text(EVERY_KIND)
    config = load_config(tmp_path / "c.toml", env={"AGENTDECK_DATA_DIR": str(tmp_path / "data"), "AZURE_FOUNDRY_TOKEN": "t"})
    kinds = {settings.kind for settings in config.backends.values()}
    assert kinds == {get_args(model.model_fields["kind"].annotation)[0] for model in backend_models()}, "a kind is missing above"
    deck = Deck.from_config(config)
    try:
        for name, backend in deck.backends.items():
            assert (backend.name, backend.kind) == (name, config.backends[name].kind)
            assert backend.capabilities, f"{name} declares no capability"
            assert backend.max_wait_seconds == config.max_wait_seconds
    finally:
        await deck.aclose()
