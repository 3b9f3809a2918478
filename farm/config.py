"""The one place settings are read: Dynaconf layers, validation, typed values.

Layers, lowest first: ``farm/defaults.toml`` (shipped in the package, so a producer
install needs no file), the overlay ``settings.toml`` (``FARM_SETTINGS_FILE``, else one in
the working directory), files named in ``FARM_SETTINGS_FILES`` (e.g. a mounted
``settings.local.toml``), ``.secrets.toml`` beside the overlay, then ``FARM_*`` variables;
in each file ``[default]`` and then the ``[development]`` or ``[production]`` table
(``FARM_ENV`` picks). Every process loads them once at start and hands ``Settings`` down
as plain values. Unknown keys, missing named files and bad values are ``ConfigError``s
that name the key and the layer it came from.
"""

from __future__ import annotations

import difflib
import os
import sys
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from dynaconf import Dynaconf
from dynaconf.utils.inspect import get_history

from farm.constants import ENGINES, MAX_BEAM_SIZE, MIN_BEAM_SIZE
from farm.errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover  (Python 3.10: the parser Dynaconf bundles)
    from dynaconf.vendor import tomllib

ENV_PREFIX = "FARM"
DEFAULTS_FILE = Path(__file__).with_name("defaults.toml")
DEFAULTS_LABEL = "farm/defaults.toml"  # how `farm config` names the shipped defaults
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
DEVICE_KINDS = ("auto", "cpu", "cuda")
COMPUTE_TYPES = (
    "default", "auto", "int8", "int8_float32", "int8_float16", "int8_bfloat16",
    "int16", "float16", "bfloat16", "float32",
)  # fmt: skip
TASKS = ("transcribe", "translate")
POOLS = ("threads", "prefork")
S3_ADDRESSING_STYLES = ("auto", "path", "virtual")
REDIS_TLS_CERT_REQS = ("required", "optional", "none")
# Never printed or logged: `public()` masks them and the dataclass repr leaves them out.
SECRET_KEYS = ("s3_access_key_id", "s3_secret_access_key", "api_token", "webhook_secret", "flower_basic_auth")


@dataclass(frozen=True)
class Settings:
    """Validated settings; see farm/defaults.toml for what each key means."""

    env: str
    broker_url: str
    result_backend: str
    engine: str
    model: str
    models_dir: str
    device: str
    compute_type: str
    devices: str
    concurrency: int
    device_concurrency: dict[str, int]
    cpu_threads: int
    cpu_workers: int
    pool: str
    batch_size: int
    batch_wait_ms: int
    pack: bool
    fanout_above_s: int
    fanout_part_s: int
    beam_size: int
    language: str
    task: str
    soft_time_limit: int
    time_limit: int
    visibility_timeout: int
    result_expires: int
    max_tasks_per_child: int
    task_max_retries: int
    inline_audio_limit: int
    embedded_broker: bool
    log_level: str
    task_events: bool
    # Object storage, the REST API, webhooks and metrics; defaults match farm/defaults.toml.
    s3_endpoint_url: str = ""
    s3_region: str = ""
    s3_access_key_id: str = field(default="", repr=False)
    s3_secret_access_key: str = field(default="", repr=False)
    s3_addressing_style: str = "auto"
    s3_timeout_s: int = 30
    staging_bucket: str = ""
    upload_to_staging: bool = False
    output_uri: str = ""
    presign_expires_s: int = 3600
    upload_dir: str = ""
    api_host: str = "127.0.0.1"
    api_port: int = 8000
    api_token: str = field(default="", repr=False)
    api_max_upload_mb: int = 100
    api_wait_s: int = 540
    webhook_secret: str = field(default="", repr=False)
    webhook_max_attempts: int = 5
    metrics_port: int = 9808
    flower_port: int = 5555
    flower_basic_auth: str = field(default="", repr=False)
    # Input limits, memory and Redis security (docs/reliability.md).
    input_roots: list[str] = field(default_factory=list)
    output_roots: list[str] = field(default_factory=list)
    max_input_mb: int = 2048
    max_memory_per_child: int = 0
    max_batch_audio_s: int = 0
    redis_tls_ca_certs: str = ""
    redis_tls_certfile: str = ""
    redis_tls_keyfile: str = ""
    redis_tls_cert_reqs: str = "required"
    sources: dict[str, str] = field(default_factory=dict, compare=False, repr=False)

    def public(self) -> dict[str, Any]:
        """The settings without their provenance, for printing and logging."""
        values = asdict(self)
        values.pop("sources")
        for key in SECRET_KEYS:
            values[key] = "***" if values[key] else ""
        return values

    def chosen(self, key: str) -> bool:
        """Whether ``key`` was set by a settings file or a variable rather than left at its default."""
        return not self.sources.get(key, "").startswith(DEFAULTS_LABEL)

    def concurrency_for(self, device_name: str) -> int:
        return self.device_concurrency.get(device_name, self.concurrency)


@dataclass(frozen=True)
class Rule:
    """What one key accepts: a type, and a range or a set of choices."""

    kind: type = str
    low: int | None = None
    high: int | None = None
    choices: tuple[str, ...] = ()
    required: bool = False  # a string that may not be empty


def _int(low: int = 0, high: int | None = None) -> Rule:
    return Rule(int, low, high)


def _one_of(choices: tuple[str, ...]) -> Rule:
    return Rule(choices=choices)


TEXT, REQUIRED_TEXT, FLAG = Rule(), Rule(required=True), Rule(bool)
PER_DEVICE = _int(0, 256)
BEAM_SIZE = _int(MIN_BEAM_SIZE, MAX_BEAM_SIZE)
# Every key there is; farm/defaults.toml gives each its default and its meaning.
RULES: dict[str, Rule] = {
    "broker_url": REQUIRED_TEXT, "result_backend": TEXT, "engine": _one_of(ENGINES), "model": REQUIRED_TEXT,
    "models_dir": TEXT, "device": _one_of(DEVICE_KINDS), "compute_type": _one_of(COMPUTE_TYPES), "devices": TEXT,
    "concurrency": PER_DEVICE, "device_concurrency": Rule(dict), "cpu_threads": _int(), "cpu_workers": _int(0, 256),
    "pool": _one_of(POOLS), "batch_size": _int(0, 1024), "batch_wait_ms": _int(0, 10_000), "pack": FLAG,
    "fanout_above_s": _int(), "fanout_part_s": _int(10), "beam_size": BEAM_SIZE, "language": TEXT,
    "task": _one_of(TASKS), "soft_time_limit": _int(1), "time_limit": _int(1), "visibility_timeout": _int(1),
    "result_expires": _int(1), "max_tasks_per_child": _int(), "task_max_retries": _int(),
    "inline_audio_limit": _int(), "embedded_broker": FLAG, "log_level": _one_of(LOG_LEVELS), "task_events": FLAG,
    "s3_endpoint_url": TEXT, "s3_region": TEXT, "s3_access_key_id": TEXT, "s3_secret_access_key": TEXT,
    "s3_addressing_style": _one_of(S3_ADDRESSING_STYLES), "s3_timeout_s": _int(1, 3600), "staging_bucket": TEXT,
    "upload_to_staging": FLAG, "output_uri": TEXT, "presign_expires_s": _int(1, 604_800), "upload_dir": TEXT,
    "api_host": REQUIRED_TEXT, "api_port": _int(1, 65_535), "api_token": TEXT, "api_max_upload_mb": _int(1, 102_400),
    "api_wait_s": _int(1), "webhook_secret": TEXT, "webhook_max_attempts": _int(1, 20), "metrics_port": _int(0, 65_535),
    "flower_port": _int(1, 65_535), "flower_basic_auth": TEXT,
    "input_roots": Rule(list), "output_roots": Rule(list), "max_input_mb": _int(), "max_memory_per_child": _int(),
    "max_batch_audio_s": _int(), "redis_tls_ca_certs": TEXT, "redis_tls_certfile": TEXT, "redis_tls_keyfile": TEXT,
    "redis_tls_cert_reqs": _one_of(REDIS_TLS_CERT_REQS),
}  # fmt: skip
_KIND_NAMES = {str: "a string", int: "an integer", bool: "true or false", list: "a list", dict: "a table"}
# FARM_* variables that are not settings: the layer switches, and names the image and tests use.
NOT_SETTINGS = ("env", "settings_file", "settings_files")


def settings_files() -> list[str]:
    """The layered files in load order; later files override earlier ones. Raises ConfigError
    for a file that was named but does not exist."""
    overlay = _overlay_file()
    listed = os.environ.get("FARM_SETTINGS_FILES", "").split(",")
    extra = [_named_file(name.strip(), "FARM_SETTINGS_FILES") for name in listed]
    secrets = [overlay.with_name(".secrets.toml")] if overlay else []
    files = [DEFAULTS_FILE, *([overlay] if overlay else []), *(p for p in extra if p), *secrets]
    return [str(path) for path in files]


def _named_file(name: str, variable: str) -> Path | None:
    if not name:
        return None
    path = Path(name).expanduser()
    if not path.is_file():
        raise ConfigError(f"{variable}: no such settings file: {name}")
    return path.resolve()


def _overlay_file() -> Path | None:
    explicit = os.environ.get("FARM_SETTINGS_FILE", "")
    if explicit:
        return _named_file(explicit, "FARM_SETTINGS_FILE")
    here = Path.cwd() / "settings.toml"
    return here.resolve() if here.is_file() else None


def _dynaconf(files: list[str]) -> Dynaconf:
    return Dynaconf(envvar_prefix=ENV_PREFIX, settings_files=files, environments=True, env_switcher="FARM_ENV")


def load_settings() -> Settings:
    """Read and check every layer now; raise ConfigError naming the bad key and where it came from."""
    files = settings_files()
    for path in files:
        _check_file(path)
    _check_variables(os.environ)
    try:
        raw = _dynaconf(files)
        raw.as_dict()  # loads every layer now
    except (ValueError, OSError) as exc:  # tomllib.TOMLDecodeError is a ValueError
        raise ConfigError(f"unreadable settings file ({', '.join(files)}): {exc}") from exc
    return _typed(raw)


@cache
def get_settings() -> Settings:
    """The settings of this process, loaded and validated on first use."""
    return load_settings()


def _check_file(path: str) -> None:
    """Every key of every table in ``path`` must be a setting (Dynaconf would ignore the rest)."""
    try:
        with open(path, "rb") as stream:
            tables = tomllib.load(stream)
    except FileNotFoundError:
        return  # only .secrets.toml is optional; named files were checked by settings_files()
    except (ValueError, OSError) as exc:
        raise ConfigError(f"unreadable settings file {path}: {exc}") from exc
    for table, keys in tables.items():
        if not isinstance(keys, dict):
            raise ConfigError(f"{path}: {table} is outside a table; put it under [default]")
        for key in keys:
            _check_known(key.lower(), f"{path} [{table}]")


def _check_variables(environ: Mapping[str, str]) -> None:
    # The FARM_ prefix is shared with the image and tools (FARM_VARIANT, FARM_UID): a variable is
    # an error only when it looks like a misspelt setting.
    for variable in environ:
        name = variable.removeprefix(f"{ENV_PREFIX}_").lower()
        ours = variable.startswith(f"{ENV_PREFIX}_") and name not in NOT_SETTINGS
        if ours and name not in RULES and _suggestion(name):
            _check_known(name, variable)


def _check_known(key: str, where: str) -> None:
    if key in RULES:
        return
    guess = _suggestion(key)
    hint = f" (did you mean '{guess}'?)" if guess else ""
    raise ConfigError(f"unknown setting '{key}'{hint} (from {where})")


def _suggestion(key: str) -> str | None:
    close = difflib.get_close_matches(key, RULES, n=1, cutoff=0.75)
    return close[0] if close else None


def _typed(raw: Dynaconf) -> Settings:
    names = list(RULES)
    sources = _sources(raw, names)
    values = {name: raw.get(name) for name in names}
    for name in names:
        _check_value(name, values[name], RULES[name], sources[name])
    values["device_concurrency"] = _per_device(values["device_concurrency"], sources["device_concurrency"])
    if not values["result_backend"]:
        values["result_backend"] = values["broker_url"]
        sources["result_backend"] = f"broker_url ({sources['broker_url']})"
    values["input_roots"] = [str(root) for root in values["input_roots"]]
    values["output_roots"] = [str(root) for root in values["output_roots"]]
    settings = Settings(env=str(raw.current_env).lower(), **values, sources=sources)
    _check_consistency(settings)
    return settings


def _per_device(table: dict[str, Any], source: str) -> dict[str, int]:
    for device, value in table.items():
        _check_value(f"device_concurrency.{device}", value, PER_DEVICE, source)
    return {str(device): int(value) for device, value in table.items()}


def _check_value(key: str, value: Any, rule: Rule, source: str) -> None:
    problem = _problem(value, rule)
    if problem:
        where = source.removeprefix("environment variable ")
        raise ConfigError(f"{key}: {problem}, got {value!r} (from {where})")


def _problem(value: Any, rule: Rule) -> str | None:
    if rule.choices:
        return None if value in rule.choices else f"expected one of {', '.join(rule.choices)}"
    if not isinstance(value, rule.kind) or (rule.kind is int and isinstance(value, bool)):
        return f"expected {_KIND_NAMES[rule.kind]}"
    if rule.required and not value:
        return "expected a non-empty string"
    return _range_problem(value, rule) if isinstance(value, int) else None


def _range_problem(value: int, rule: Rule) -> str | None:
    if rule.low is not None and value < rule.low:
        return f"expected at least {rule.low}"
    if rule.high is not None and value > rule.high:
        return f"expected at most {rule.high}"
    return None


def _check_consistency(settings: Settings) -> None:
    if settings.soft_time_limit >= settings.time_limit:
        raise ConfigError("soft_time_limit: must be below time_limit so the task can fail cleanly")
    if settings.visibility_timeout <= settings.time_limit:
        # Redis re-delivers unacked messages after the visibility timeout: a job still
        # running then would run twice.
        raise ConfigError("visibility_timeout: must be above time_limit or long jobs run twice")
    if settings.upload_to_staging and not settings.staging_bucket:
        raise ConfigError("staging_bucket: required when upload_to_staging is true")
    if bool(settings.s3_access_key_id) != bool(settings.s3_secret_access_key):
        raise ConfigError("s3_secret_access_key: set both S3 credentials or neither")


def _sources(raw: Dynaconf, names: list[str]) -> dict[str, str]:
    return {name: _describe_source(name, get_history(raw, key=name)) for name in names}


def _describe_source(name: str, history: list[dict[str, Any]]) -> str:
    loaded = [entry for entry in history if entry["identifier"] != "validator"]
    if not loaded:
        return "built-in default"
    last = loaded[-1]
    if last["loader"].startswith("env"):
        return f"environment variable {ENV_PREFIX}_{name.upper()}"
    where = DEFAULTS_LABEL if last["identifier"] == str(DEFAULTS_FILE) else last["identifier"]
    return f"{where} [{last['env']}]"
