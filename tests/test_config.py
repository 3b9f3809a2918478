from __future__ import annotations

from pathlib import Path

import pytest

from farm.config import load_settings
from farm.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture()
def layered(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    base = tmp_path / "settings.toml"
    base.write_text((ROOT / "settings.toml").read_text() + "\n")
    monkeypatch.setenv("FARM_SETTINGS_FILE", str(base))
    for name in ("FARM_ENV", "FARM_SETTINGS_FILES", "FARM_CONCURRENCY", "FARM_MODELS_DIR"):
        monkeypatch.delenv(name, raising=False)
    return tmp_path


def test_defaults_come_from_settings_toml(layered: Path) -> None:
    settings = load_settings()
    assert settings.engine == "ctranslate2"
    assert settings.env == "development"
    assert settings.sources["engine"].endswith("settings.toml [default]")


def test_layers_override_in_order(layered: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # file [default] -> [production] -> extra file -> environment variable
    monkeypatch.setenv("FARM_ENV", "production")
    assert load_settings().log_level == "WARNING"  # [production] beats [default]
    extra = layered / "settings.local.toml"
    extra.write_text('[default]\nlog_level = "ERROR"\nconcurrency = 3\n')
    monkeypatch.setenv("FARM_SETTINGS_FILES", str(extra))
    settings = load_settings()
    assert (settings.log_level, settings.concurrency) == ("ERROR", 3)  # extra file beats the env table
    assert settings.sources["concurrency"] == f"{extra} [default]"
    monkeypatch.setenv("FARM_CONCURRENCY", "5")
    settings = load_settings()
    assert settings.concurrency == 5  # the variable beats every file
    assert settings.sources["concurrency"] == "environment variable FARM_CONCURRENCY"


def test_secrets_file_is_layered(layered: Path) -> None:
    (layered / ".secrets.toml").write_text('[default]\nbroker_url = "redis://:s3cret@127.0.0.1:1/0"\n')
    assert load_settings().broker_url == "redis://:s3cret@127.0.0.1:1/0"


@pytest.mark.parametrize(
    ("variable", "value", "key"),
    [
        ("FARM_CONCURRENCY", "-1", "concurrency"),
        ("FARM_ENGINE", "whisper.cpp", "engine"),
        ("FARM_BEAM_SIZE", "@str five", "beam_size"),
        ("FARM_COMPUTE_TYPE", "int3", "compute_type"),
    ],
)
def test_invalid_value_names_the_key(
    layered: Path, monkeypatch: pytest.MonkeyPatch, variable: str, value: str, key: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigError, match=key):
        load_settings()


def test_visibility_timeout_must_exceed_hard_limit(layered: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FARM_VISIBILITY_TIMEOUT", "100")
    monkeypatch.setenv("FARM_TIME_LIMIT", "200")
    monkeypatch.setenv("FARM_SOFT_TIME_LIMIT", "150")
    with pytest.raises(ConfigError, match="visibility_timeout"):
        load_settings()


def test_every_key_in_settings_toml_is_commented() -> None:
    lines = (ROOT / "settings.toml").read_text().splitlines()
    start = lines.index("[default]")
    end = lines.index("[development]")
    for index in range(start + 1, end):
        line = lines[index]
        if line and not line.startswith("#") and "=" in line:
            assert lines[index - 1].startswith("#"), f"uncommented key: {line}"


def test_broken_toml_is_a_config_error(layered: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    extra = layered / "settings.local.toml"
    extra.write_text("[default]\nconcurrency = = 3\n")
    monkeypatch.setenv("FARM_SETTINGS_FILES", str(extra))
    with pytest.raises(ConfigError, match="unreadable settings file"):
        load_settings()
