"""Configuration: one TOML file plus AGENTDECK_* variables, validated with messages naming the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from agentdeck.config import LocalConfig, OzConfig, load_config
from agentdeck.errors import ConfigError


def _load(tmp_path: Path, toml: str, **env: str):  # type: ignore[no-untyped-def]
    path = tmp_path / "c.toml"
    path.write_text(toml)
    return load_config(path, env={"AGENTDECK_DATA_DIR": str(tmp_path / "d"), **env})


def test_with_no_file_the_local_backend_has_the_builtin_echo_agent_and_greet_routine(tmp_path: Path) -> None:
    config = load_config(env={"XDG_CONFIG_HOME": str(tmp_path / "nothing-here"), "AGENTDECK_DATA_DIR": str(tmp_path)})
    local = config.backends["local"]
    assert config.default == "local" and isinstance(local, LocalConfig)
    assert set(local.agents) == {"echo"} and set(local.routines) == {"greet"}
    assert config.resolved_data_dir == tmp_path


def test_a_missing_field_is_reported_with_the_full_key(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"backends\.local\.agents\.reviewer\.command"):
        _load(tmp_path, '[backends.local]\nkind = "local"\n[backends.local.agents.reviewer]\ndescription = "x"\n')


def test_an_unknown_key_is_reported_not_ignored(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"backends\.local\.agentz"):
        _load(tmp_path, '[backends.local]\nkind = "local"\n[backends.local.agentz.x]\ncommand = ["a"]\n')


def test_a_routine_must_name_a_configured_agent(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"routines\.triage\.agent"):
        _load(tmp_path, '[backends.local]\nkind = "local"\n[backends.local.routines.triage]\nagent = "ghost"\n')


def test_the_default_backend_must_exist(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="default: backend 'cloud'"):
        _load(tmp_path, 'default = "cloud"\n')


def test_environment_variables_override_the_file(tmp_path: Path) -> None:
    config = _load(tmp_path, 'read_only = false\nidentity = "from-file"\n', AGENTDECK_READ_ONLY="true", AGENTDECK_IDENTITY="from-env", AGENTDECK_TOOLSETS="runs, channels")
    assert config.read_only is True and config.identity == "from-env" and config.toolsets == ["runs", "channels"]


def test_identity_falls_back_to_a_spawned_agents_run_id_then_a_stable_default(tmp_path: Path) -> None:
    assert _load(tmp_path, "", AGENTDECK_RUN_ID="run_abc").resolved_identity == "run_abc"
    assert _load(tmp_path, "").resolved_identity == _load(tmp_path, "").resolved_identity


def test_api_keys_come_from_the_named_variable_and_never_show_in_reprs(tmp_path: Path) -> None:
    config = _load(tmp_path, 'default = "oz"\n[backends.oz]\nkind = "oz"\napi_key_env = "MY_OZ_KEY"\n', MY_OZ_KEY="sk-very-secret-1234")
    oz = config.backends["oz"]
    assert isinstance(oz, OzConfig) and oz.api_key is not None
    assert oz.api_key.get_secret_value() == "sk-very-secret-1234"
    assert "sk-very-secret-1234" not in repr(config) and "sk-very-secret-1234" not in config.model_dump_json()


def test_an_explicit_config_path_that_does_not_exist_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(env={"AGENTDECK_CONFIG": str(tmp_path / "missing.toml")})
