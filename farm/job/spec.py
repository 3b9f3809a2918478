"""Job specs and results as they travel through the queue: plain JSON, validated here.

A message carries a reference to the audio (a path or ``s3://`` URI) and the decoding
options; only tiny clips may travel inline, base64-encoded, below a size limit.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from typing import Any
from urllib.parse import urlparse

from farm.constants import LANGUAGES, MAX_BEAM_SIZE, MIN_BEAM_SIZE, OUTPUT_FORMATS
from farm.errors import InvalidJobError, UnknownLanguageError
from farm.job.transcript import TranscribeOptions

# Where audio may come from: a local path (bare or file://) or an s3:// object. Anything
# else (http, ftp, gopher...) would have a worker fetch what a job names: refused early.
AUDIO_SCHEMES = ("", "file", "s3")
OPTION_KEYS = ("language", "task", "beam_size", "temperature", "initial_prompt", "word_timestamps", "vad_filter")


@dataclass(frozen=True)
class PartSpec:
    """One part of a long file fanned out across workers (seconds into the file)."""

    index: int
    count: int
    start: float
    end: float
    parent: str  # the job id the merged result will carry
    total: float = 0.0  # the whole file's duration, for progress across parts

    def label(self) -> str:
        return f"part {self.index + 1}/{self.count} ({self.start:.0f}-{self.end:.0f} s)"


@dataclass(frozen=True)
class JobSpec:
    """What a worker needs to run one job."""

    audio: str  # path or URI; empty when the audio is inline
    inline_audio: bytes | None
    options: TranscribeOptions
    name: str  # shown to people: the file name, not the full path
    part: PartSpec | None = None
    delivery: Delivery = field(default_factory=lambda: Delivery())


@dataclass(frozen=True)
class Delivery:
    """Where a finished job's result goes besides the result backend, and who is told."""

    output: str = ""  # s3://bucket/prefix or an absolute directory: <output>/<job id>.<format>
    formats: tuple[str, ...] = ()
    callback_url: str = ""  # gets a signed POST when the job succeeds or fails

    def fields(self) -> dict[str, Any]:
        """The message fields that carry this delivery (none when there is nothing to do)."""
        raw = {"output": self.output, "formats": list(self.formats), "callback_url": self.callback_url}
        return {key: value for key, value in raw.items() if value}


def job_message(
    audio: str,
    options: Mapping[str, Any],
    inline_audio: bytes | None = None,
    name: str = "",
    delivery: Delivery | None = None,
) -> dict[str, Any]:
    """Build the JSON message the client publishes (validated by ``parse_job`` too)."""
    message: dict[str, Any] = {"audio": audio, "options": dict(options), "name": name or audio.rsplit("/", 1)[-1]}
    if inline_audio is not None:
        message["audio_b64"] = base64.b64encode(inline_audio).decode("ascii")
    if delivery is not None:
        message.update(delivery.fields())
    return message


def parse_job(message: Any, defaults: TranscribeOptions, inline_limit: int) -> JobSpec:
    """Validate a message from the queue; anything wrong is a permanent InvalidJobError."""
    if not isinstance(message, Mapping):
        raise InvalidJobError(f"a job must be a JSON object, got {type(message).__name__}")
    inline = _inline_audio(message.get("audio_b64"), inline_limit)
    audio = message.get("audio", "")
    if not isinstance(audio, str) or (not audio and inline is None):
        raise InvalidJobError("a job needs 'audio': a file path or s3:// URI")
    _check_scheme(audio)
    options = parse_options(message.get("options", {}), defaults)
    name = str(message.get("name") or audio.rsplit("/", 1)[-1] or "inline audio")
    part = parse_part(message.get("part"))
    delivery = parse_delivery(message)
    return JobSpec(audio=audio, inline_audio=inline, options=options, name=name, part=part, delivery=delivery)


def _check_scheme(audio: str) -> None:
    scheme = urlparse(audio).scheme if "://" in audio else ""
    if scheme.lower() not in AUDIO_SCHEMES:
        raise InvalidJobError(f"unsupported audio reference scheme {scheme!r}: use a path or s3:// URI")


def parse_delivery(message: Mapping[str, Any]) -> Delivery:
    """The optional "output", "formats" and "callback_url" fields, validated."""
    output = _output(message.get("output") or "")
    formats = message.get("formats") or []
    if not isinstance(formats, list) or not all(isinstance(f, str) for f in formats):
        raise InvalidJobError("'formats' must be a list of format names")
    callback = _callback_url(message.get("callback_url") or "")
    return Delivery(output=output, formats=tuple(dict.fromkeys(check_formats(formats))), callback_url=callback)


def _output(value: Any) -> str:
    if not isinstance(value, str):
        raise InvalidJobError("'output' must be an s3://bucket/prefix URI or an absolute directory")
    parsed = urlparse(value)
    if value and parsed.scheme == "s3" and not parsed.netloc:
        raise InvalidJobError(f"output {value!r} names no bucket: use s3://bucket/prefix")
    if value and parsed.scheme not in ("s3", "file") and not value.startswith("/"):
        raise InvalidJobError(f"output {value!r} must be an s3://bucket/prefix URI or an absolute directory")
    return value


def _callback_url(value: Any) -> str:
    parsed = urlparse(value) if isinstance(value, str) else None
    if parsed is None or (value and (parsed.scheme not in ("http", "https") or not parsed.netloc)):
        raise InvalidJobError(f"callback_url must be an http(s):// URL, not {value!r}")
    return str(value)


def parse_part(raw: Any) -> PartSpec | None:
    if raw is None:
        return None
    try:
        part = PartSpec(
            int(raw["index"]),
            int(raw["count"]),
            float(raw["start"]),
            float(raw["end"]),
            str(raw["parent"]),
            float(raw.get("total", 0.0)),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise InvalidJobError(f"malformed 'part' in job message: {exc}") from exc
    if not (0 <= part.index < part.count and 0 <= part.start < part.end):
        raise InvalidJobError(f"'part' out of range: {raw}")
    return part


def failed_job(task_id: str, message: Any) -> tuple[str, Delivery]:
    """The job a failed task's message belongs to, and who to tell; whatever is malformed is left out.

    A job may fail precisely because its message is bad, so this never raises: a part names
    its parent job, a malformed delivery tells nobody.
    """
    if not isinstance(message, Mapping):
        return task_id, Delivery()
    return _parent_or(task_id, message.get("part")), _delivery_or_none(message)


def _parent_or(task_id: str, raw_part: Any) -> str:
    try:
        part = parse_part(raw_part)
    except InvalidJobError:
        return task_id
    return part.parent if part is not None and part.parent else task_id


def _delivery_or_none(message: Mapping[str, Any]) -> Delivery:
    try:
        return parse_delivery(message)
    except InvalidJobError:
        return Delivery()


def part_message(message: Mapping[str, Any], part: PartSpec) -> dict[str, Any]:
    return {**message, "part": asdict(part)}


def parse_options(raw: Any, defaults: TranscribeOptions) -> TranscribeOptions:
    if not isinstance(raw, Mapping):
        raise InvalidJobError("'options' must be a JSON object")
    unknown = sorted(set(raw) - set(OPTION_KEYS))
    if unknown:
        raise InvalidJobError(f"unknown option(s) {', '.join(unknown)}; known: {', '.join(OPTION_KEYS)}")
    options = defaults
    for key, value in raw.items():
        if value is not None:
            options = _OPTION_PARSERS[key](options, value)
    return options


def _language(options: TranscribeOptions, value: Any) -> TranscribeOptions:
    code = str(value).strip().lower()
    if code in ("", "auto"):
        return replace(options, language=None)
    if code not in LANGUAGES:
        raise UnknownLanguageError(f"unknown language code {value!r}; use an ISO 639-1 code such as 'en' or 'auto'")
    return replace(options, language=code)


def _task(options: TranscribeOptions, value: Any) -> TranscribeOptions:
    if value not in ("transcribe", "translate"):
        raise InvalidJobError(f"task must be 'transcribe' or 'translate', not {value!r}")
    return replace(options, task=value)


def _beam_size(options: TranscribeOptions, value: Any) -> TranscribeOptions:
    if isinstance(value, bool) or not isinstance(value, int) or not MIN_BEAM_SIZE <= value <= MAX_BEAM_SIZE:
        raise InvalidJobError(f"beam_size must be an integer from {MIN_BEAM_SIZE} to {MAX_BEAM_SIZE}, not {value!r}")
    return replace(options, beam_size=value)


def _temperature(options: TranscribeOptions, value: Any) -> TranscribeOptions:
    values = value if isinstance(value, list) else [value]
    if not values or not all(_is_number(t) and 0.0 <= t <= 1.0 for t in values):
        raise InvalidJobError(f"temperature must be a number (or list of numbers) from 0 to 1, not {value!r}")
    return replace(options, temperatures=tuple(float(t) for t in values))


def _initial_prompt(options: TranscribeOptions, value: Any) -> TranscribeOptions:
    if not isinstance(value, str):
        raise InvalidJobError("initial_prompt must be a string")
    return replace(options, initial_prompt=value or None)


def _word_timestamps(options: TranscribeOptions, value: Any) -> TranscribeOptions:
    return replace(options, word_timestamps=_boolean("word_timestamps", value))


def _vad_filter(options: TranscribeOptions, value: Any) -> TranscribeOptions:
    return replace(options, vad_filter=_boolean("vad_filter", value))


def _boolean(key: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise InvalidJobError(f"{key} must be true or false, not {value!r}")
    return value


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


_OPTION_PARSERS = {
    "language": _language,
    "task": _task,
    "beam_size": _beam_size,
    "temperature": _temperature,
    "initial_prompt": _initial_prompt,
    "word_timestamps": _word_timestamps,
    "vad_filter": _vad_filter,
}


def _inline_audio(encoded: Any, limit: int) -> bytes | None:
    if encoded is None:
        return None
    if not isinstance(encoded, str) or len(encoded) * 3 // 4 > limit:
        raise InvalidJobError(f"inline audio must be base64 of at most {limit} bytes; send a path or URI instead")
    try:
        return base64.b64decode(encoded, validate=True)
    except ValueError as exc:  # binascii.Error, or non-ASCII text
        raise InvalidJobError("inline audio is not valid base64") from exc


def check_formats(formats: list[str]) -> list[str]:
    unknown = [f for f in formats if f not in OUTPUT_FORMATS]
    if unknown:
        raise InvalidJobError(f"unknown output format(s) {', '.join(unknown)}; choose from {', '.join(OUTPUT_FORMATS)}")
    return formats
