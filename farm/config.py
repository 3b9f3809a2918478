"""The one place settings are read: Dynaconf layers, validation, typed values.

Layers, lowest first: ``settings.toml`` ``[default]``, its ``[development]`` or
``[production]`` table (``FARM_ENV`` picks), files named in ``FARM_SETTINGS_FILES``
(e.g. a mounted ``settings.local.toml``), ``.secrets.toml``, then ``FARM_*`` variables.
Every process loads them once at start and hands ``Settings`` down as plain values.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from dynaconf import Dynaconf, ValidationError, Validator
from dynaconf.utils.inspect import get_history

from farm.errors import ConfigError

ENV_PREFIX = "FARM"
ENGINES = ("ctranslate2", "transformers")
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
SECRET_KEYS = ("s3_access_key_id", "s3_secret_access_key", "api_token", "webhook_secret")


@dataclass(frozen=True)
class Settings:
    """Validated settings; see settings.toml for what each key means."""

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
    # Object storage, the REST API, webhooks and metrics; defaults match settings.toml.
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
    webhook_secret: str = field(default="", repr=False)
    webhook_max_attempts: int = 5
    metrics_port: int = 9808
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

    def concurrency_for(self, device_name: str) -> int:
        return self.device_concurrency.get(device_name, self.concurrency)


def _validators() -> list[Validator]:
    positive = {"is_type_of": int, "gte": 1}
    return [
        Validator("broker_url", must_exist=True, is_type_of=str, len_min=1),
        Validator("result_backend", is_type_of=str, default=""),
        Validator("engine", must_exist=True, is_in=ENGINES),
        Validator("model", must_exist=True, is_type_of=str, len_min=1),
        Validator("models_dir", must_exist=True, is_type_of=str),
        Validator("device", must_exist=True, is_in=DEVICE_KINDS),
        Validator("compute_type", must_exist=True, is_in=COMPUTE_TYPES),
        Validator("devices", must_exist=True, is_type_of=str),
        Validator("concurrency", must_exist=True, is_type_of=int, gte=0, lte=256),
        Validator("device_concurrency", is_type_of=dict, default={}),
        Validator("cpu_threads", must_exist=True, is_type_of=int, gte=0),
        Validator("cpu_workers", must_exist=True, is_type_of=int, gte=0, lte=256),
        Validator("pool", must_exist=True, is_in=POOLS),
        Validator("batch_size", must_exist=True, **positive),
        Validator("batch_wait_ms", must_exist=True, is_type_of=int, gte=0, lte=10_000),
        Validator("pack", must_exist=True, is_type_of=bool),
        Validator("task_events", must_exist=True, is_type_of=bool),
        Validator("fanout_above_s", must_exist=True, is_type_of=int, gte=0),
        Validator("fanout_part_s", must_exist=True, is_type_of=int, gte=10),
        Validator("beam_size", must_exist=True, is_type_of=int, gte=1, lte=20),
        Validator("language", must_exist=True, is_type_of=str),
        Validator("task", must_exist=True, is_in=TASKS),
        Validator("soft_time_limit", must_exist=True, **positive),
        Validator("time_limit", must_exist=True, **positive),
        Validator("visibility_timeout", must_exist=True, **positive),
        Validator("result_expires", must_exist=True, **positive),
        Validator("max_tasks_per_child", must_exist=True, is_type_of=int, gte=0),
        Validator("task_max_retries", must_exist=True, is_type_of=int, gte=0),
        Validator("inline_audio_limit", must_exist=True, is_type_of=int, gte=0),
        Validator("embedded_broker", must_exist=True, is_type_of=bool),
        Validator("log_level", must_exist=True, is_in=("DEBUG", "INFO", "WARNING", "ERROR")),
        *_service_validators(),
        *_reliability_validators(),
    ]


def _service_validators() -> list[Validator]:
    """Object storage, API, webhook and metrics keys: optional, so older files still load."""
    text = {"is_type_of": str, "default": ""}
    return [
        *(Validator(key, **text) for key in ("s3_endpoint_url", "s3_region", "staging_bucket", "output_uri")),
        *(Validator(key, **text) for key in ("upload_dir", *SECRET_KEYS)),
        Validator("s3_addressing_style", is_in=S3_ADDRESSING_STYLES, default="auto"),
        Validator("s3_timeout_s", is_type_of=int, gte=1, lte=3600, default=30),
        Validator("upload_to_staging", is_type_of=bool, default=False),
        Validator("presign_expires_s", is_type_of=int, gte=1, lte=604_800, default=3600),
        Validator("api_host", is_type_of=str, len_min=1, default="127.0.0.1"),
        Validator("api_port", is_type_of=int, gte=1, lte=65_535, default=8000),
        Validator("api_max_upload_mb", is_type_of=int, gte=1, lte=102_400, default=100),
        Validator("webhook_max_attempts", is_type_of=int, gte=1, lte=20, default=5),
        Validator("metrics_port", is_type_of=int, gte=0, lte=65_535, default=9808),
    ]


def _reliability_validators() -> list[Validator]:
    """Input limits, memory and Redis TLS keys: optional, so older files still load."""
    tls_files = ("redis_tls_ca_certs", "redis_tls_certfile", "redis_tls_keyfile")
    return [
        Validator("input_roots", is_type_of=list, default=[]),
        Validator("output_roots", is_type_of=list, default=[]),
        Validator("max_input_mb", is_type_of=int, gte=0, default=2048),
        Validator("max_memory_per_child", is_type_of=int, gte=0, default=0),
        Validator("max_batch_audio_s", is_type_of=int, gte=0, default=0),
        *(Validator(key, is_type_of=str, default="") for key in tls_files),
        Validator("redis_tls_cert_reqs", is_in=REDIS_TLS_CERT_REQS, default="required"),
    ]


def settings_files() -> list[str]:
    """The layered files in load order; later files override earlier ones."""
    base = _base_settings_file()
    extra = [p for p in os.environ.get("FARM_SETTINGS_FILES", "").split(",") if p.strip()]
    secrets = base.with_name(".secrets.toml")
    return [str(base), *(p.strip() for p in extra), str(secrets)]


def _base_settings_file() -> Path:
    explicit = os.environ.get("FARM_SETTINGS_FILE")
    if explicit:
        return Path(explicit)
    for candidate in (Path.cwd() / "settings.toml", Path(__file__).resolve().parents[1] / "settings.toml"):
        if candidate.is_file():
            return candidate
    raise ConfigError("settings.toml not found: set FARM_SETTINGS_FILE or run from the project root")


def _dynaconf() -> Dynaconf:
    return Dynaconf(
        envvar_prefix=ENV_PREFIX,
        settings_files=settings_files(),
        environments=True,
        env_switcher="FARM_ENV",
        validators=_validators(),
    )


def load_settings() -> Settings:
    """Read and validate every layer now; raise ConfigError naming the bad key."""
    raw = _dynaconf()
    try:
        raw.validators.validate_all()
    except ValidationError as exc:
        raise ConfigError(f"invalid settings: {exc}") from exc
    except (ValueError, OSError) as exc:  # tomllib.TOMLDecodeError is a ValueError
        raise ConfigError(f"unreadable settings file ({', '.join(settings_files())}): {exc}") from exc
    return _typed(raw)


@cache
def get_settings() -> Settings:
    """The settings of this process, loaded and validated on first use."""
    return load_settings()


def _typed(raw: Dynaconf) -> Settings:
    names = [f for f in Settings.__dataclass_fields__ if f not in ("env", "sources")]
    values = {name: raw.get(name) for name in names}
    values["device_concurrency"] = {str(k): int(v) for k, v in dict(values["device_concurrency"]).items()}
    values["result_backend"] = values["result_backend"] or values["broker_url"]
    values["input_roots"] = [str(root) for root in values["input_roots"]]
    values["output_roots"] = [str(root) for root in values["output_roots"]]
    settings = Settings(env=str(raw.current_env).lower(), **values, sources=_sources(raw, names))
    _check_consistency(settings)
    return settings


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
    return f"{last['identifier']} [{last['env']}]"
