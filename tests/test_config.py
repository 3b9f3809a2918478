from __future__ import annotations

from pathlib import Path

import pytest

from farm.config import DEFAULTS_FILE, RULES, load_settings
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


def test_defaults_come_from_the_package(layered: Path) -> None:
    settings = load_settings()
    assert settings.engine == "ctranslate2"
    assert settings.env == "development"
    assert settings.sources["engine"] == "farm/defaults.toml [default]"
    assert not settings.chosen("broker_url")


def test_no_settings_file_needed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A producer install in any directory: the packaged defaults plus FARM_BROKER_URL are enough."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("FARM_SETTINGS_FILE")
    monkeypatch.setenv("FARM_BROKER_URL", "redis://farm.internal:6379/0")
    settings = load_settings()
    assert (settings.broker_url, settings.model) == ("redis://farm.internal:6379/0", "tiny.en")
    assert settings.chosen("broker_url") and not settings.chosen("model")


def test_result_backend_follows_the_broker_and_says_so(layered: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FARM_BROKER_URL", "redis://farm.internal:6379/0")
    settings = load_settings()
    assert settings.result_backend == "redis://farm.internal:6379/0"
    assert settings.sources["result_backend"] == "broker_url (environment variable FARM_BROKER_URL)"


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


def test_every_key_is_in_the_defaults_and_commented() -> None:
    import tomllib

    assert set(tomllib.loads(DEFAULTS_FILE.read_text())["default"]) == set(RULES)
    lines = DEFAULTS_FILE.read_text().splitlines()
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


def _overlay(layered: Path, monkeypatch: pytest.MonkeyPatch, text: str) -> Path:
    extra = layered / "settings.local.toml"
    extra.write_text(text)
    monkeypatch.setenv("FARM_SETTINGS_FILES", str(extra))
    return extra


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[default]\nconcurrancy = 8\n", "unknown setting 'concurrancy' (did you mean 'concurrency'?)"),
        ("[production]\nbroker = 'redis://x'\n", "unknown setting 'broker' (did you mean 'broker_url'?)"),
        ("[default]\nflux_capacitor = 1\n", "unknown setting 'flux_capacitor' (from "),
        ("concurrency = 8\n", "concurrency is outside a table; put it under [default]"),
    ],
)
def test_unknown_keys_in_files_are_errors(
    layered: Path, monkeypatch: pytest.MonkeyPatch, text: str, message: str
) -> None:
    extra = _overlay(layered, monkeypatch, text)
    with pytest.raises(ConfigError) as raised:
        load_settings()
    assert message in str(raised.value) and str(extra) in str(raised.value)


def test_misspelt_variable_is_an_error(layered: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FARM_CONCURANCY", "8")
    with pytest.raises(ConfigError, match=r"unknown setting 'concurancy' \(did you mean 'concurrency'\?\)"):
        load_settings()


def test_other_farm_variables_are_not_settings(layered: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The image sets FARM_VARIANT and tests read FARM_REL_*: the prefix is shared.
    monkeypatch.setenv("FARM_VARIANT", "cpu")
    monkeypatch.setenv("FARM_REL_KILL_JOBS", "5")
    assert load_settings().engine == "ctranslate2"


def test_missing_listed_file_is_an_error(layered: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FARM_SETTINGS_FILES", f"{layered / 'settings.local.toml'}")
    with pytest.raises(ConfigError, match=r"FARM_SETTINGS_FILES: no such settings file: .*settings\.local\.toml"):
        load_settings()


def test_missing_named_overlay_is_an_error(layered: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FARM_SETTINGS_FILE", str(layered / "nope.toml"))
    with pytest.raises(ConfigError, match="FARM_SETTINGS_FILE: no such settings file"):
        load_settings()


def test_bad_device_concurrency_is_one_line(layered: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    extra = _overlay(layered, monkeypatch, '[default]\ndevice_concurrency = { gpu0 = "x" }\n')
    with pytest.raises(ConfigError) as raised:
        load_settings()
    assert str(raised.value) == f"device_concurrency.gpu0: expected an integer, got 'x' (from {extra} [default])"


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("FARM_CONCURRENCY", "abc", "concurrency: expected an integer, got 'abc' (from FARM_CONCURRENCY)"),
        ("FARM_PACK", "yes", "pack: expected true or false, got 'yes' (from FARM_PACK)"),
        ("FARM_BEAM_SIZE", "99", "beam_size: expected at most 20, got 99 (from FARM_BEAM_SIZE)"),
        ("FARM_POOL", "gevent", "pool: expected one of threads, prefork, got 'gevent' (from FARM_POOL)"),
    ],
)
def test_errors_say_what_was_expected_and_where_it_came_from(
    layered: Path, monkeypatch: pytest.MonkeyPatch, variable: str, value: str, message: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigError) as raised:
        load_settings()
    assert str(raised.value) == message
