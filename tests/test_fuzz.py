"""Property-based tests of the two parsers that take input from outside: the audio
decoder and the job-spec parser. Whatever the bytes or JSON, the answer is a valid
result or one of our permanent errors; never another exception, never NaN samples.
"""

from __future__ import annotations

import io
import json
import os
from functools import cache
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from farm.errors import AudioDecodeError, PermanentError
from farm.inference.audio import decode
from farm.job.spec import OPTION_KEYS, JobSpec, job_message, parse_job
from farm.job.transcript import TranscribeOptions
from tests.reliability.media import jfk_samples, wav_header

# FARM_FUZZ_EXAMPLES=5000 for a longer hunt (docs/reliability.md records one).
EXAMPLES = int(os.environ.get("FARM_FUZZ_EXAMPLES", 150))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
DEFAULTS = TranscribeOptions()
INLINE_LIMIT = 4096


@cache
def small_wav() -> bytes:
    pcm = (jfk_samples()[:4000] * 32767).astype("<i2").tobytes()
    return wav_header(len(pcm)) + pcm


@cache
def small_flac() -> bytes:
    import av

    out = io.BytesIO()
    with av.open(out, "w", format="flac") as container:
        stream = container.add_stream("flac", rate=16000, layout="mono")
        frame = av.AudioFrame.from_ndarray((jfk_samples()[None, :8000] * 32767).astype(np.int16), format="s16")
        frame.sample_rate = 16000
        for packet in [*stream.encode(frame), *stream.encode(None)]:
            container.mux(packet)
    return out.getvalue()


def _assert_decodes_or_refuses(data: bytes) -> None:
    try:
        samples = decode(data)
    except AudioDecodeError as exc:
        assert str(exc).startswith("the input is not decodable audio")
        return
    assert samples.dtype == np.float32 and samples.ndim == 1
    assert np.isfinite(samples).all() and (np.abs(samples) <= 1.0).all()


def _mutated(original: bytes, data: st.DataObject) -> bytes:
    buffer = bytearray(original)
    for _ in range(data.draw(st.integers(1, 8))):
        position = data.draw(st.integers(0, len(buffer) - 1))
        action = data.draw(st.sampled_from(["flip", "cut", "insert"]))
        if action == "flip":
            buffer[position] ^= data.draw(st.integers(1, 255))
        elif action == "cut":
            del buffer[position : position + data.draw(st.integers(1, 64))]
        else:
            buffer[position:position] = data.draw(st.binary(min_size=1, max_size=64))
        if not buffer:
            break
    return bytes(buffer)


@FUZZ
@given(st.binary(max_size=4096))
@example(b"")
@example(b"RIFF")
@example(b"fLaC" + b"\0" * 64)
def test_decoder_on_arbitrary_bytes(data: bytes) -> None:
    _assert_decodes_or_refuses(data)


@FUZZ
@given(st.sampled_from(["wav", "flac"]), st.data())
def test_decoder_on_damaged_real_files(kind: str, data: st.DataObject) -> None:
    _assert_decodes_or_refuses(_mutated(small_wav() if kind == "wav" else small_flac(), data))


@FUZZ
@given(
    channels=st.integers(0, 40),
    rate=st.sampled_from([0, 1, 8000, 16000, 44100, 96000, 384000, 2**31 - 1]),
    bits=st.sampled_from([0, 8, 16, 24, 32, 64, 7]),
    floats=st.booleans(),
    claimed=st.integers(0, 2**32 - 1),
    payload=st.binary(max_size=2048),
)
def test_decoder_on_lying_wav_headers(
    channels: int, rate: int, bits: int, floats: bool, claimed: int, payload: bytes
) -> None:
    header = bytearray(wav_header(0, floats=floats))
    header[22:24] = channels.to_bytes(2, "little")
    header[24:28] = rate.to_bytes(4, "little")
    header[28:32] = (rate * channels * bits // 8 % 2**32).to_bytes(4, "little")
    header[32:34] = (channels * bits // 8 % 2**16).to_bytes(2, "little")
    header[34:36] = bits.to_bytes(2, "little")
    header[40:44] = claimed.to_bytes(4, "little")
    _assert_decodes_or_refuses(bytes(header) + payload)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=12,
)
option_values = st.one_of(
    json_values,
    st.sampled_from(["en", "auto", "", "xx", "EN ", "transcribe", "translate", "haw"]),
    st.integers(-5, 30),
    st.lists(st.floats(-1, 2), max_size=4),
)
options = st.dictionaries(st.sampled_from([*OPTION_KEYS, "response_format", "model"]), option_values, max_size=5)
audio_refs = st.one_of(
    st.text(max_size=30),
    st.sampled_from(["/data/a.wav", "s3://bucket/key.flac", "file:///etc/passwd", "http://x/y", "../../etc/passwd"]),
    json_values,
)
messages = st.one_of(
    json_values,
    st.fixed_dictionaries(
        {},
        optional={
            "audio": audio_refs,
            "options": st.one_of(options, json_values),
            "name": json_values,
            "audio_b64": st.one_of(st.text(max_size=40), st.binary(max_size=30).map(lambda b: b.hex()), json_values),
            "formats": st.one_of(st.lists(st.sampled_from(["txt", "srt", "xml", ""]), max_size=3), json_values),
            "output": st.one_of(st.sampled_from(["s3://b/p", "/tmp/out", "relative", "s3://"]), json_values),
            "callback_url": st.one_of(st.sampled_from(["https://h/x", "ftp://h/x", "nope"]), json_values),
        },
    ),
)


@FUZZ
@given(messages)
def test_job_parser_accepts_or_refuses_permanently(message: Any) -> None:
    try:
        spec = parse_job(message, DEFAULTS, INLINE_LIMIT)
    except PermanentError as exc:
        assert str(exc)
        return
    assert isinstance(spec, JobSpec) and isinstance(spec.audio, str)
    assert spec.audio or spec.inline_audio is not None
    assert 1 <= spec.options.beam_size <= 20
    assert all(0.0 <= t <= 1.0 for t in spec.options.temperatures)


@FUZZ
@given(messages)
def test_job_parser_sees_the_same_thing_after_a_json_round_trip(message: Any) -> None:
    # What the worker parses is what JSON carried: parsing must not depend on Python types.
    try:
        wire = json.loads(json.dumps(message))
    except ValueError:
        return
    outcomes = []
    for candidate in (message, wire):
        try:
            outcomes.append(parse_job(candidate, DEFAULTS, INLINE_LIMIT))
        except PermanentError as exc:
            outcomes.append(type(exc))
    assert outcomes[0] == outcomes[1]


@FUZZ
@given(
    language=st.sampled_from([None, "en", "de", "auto"]),
    beam=st.integers(1, 20),
    temperature=st.floats(0, 1),
    words=st.booleans(),
)
def test_every_valid_client_message_parses(language: str | None, beam: int, temperature: float, words: bool) -> None:
    raw = {"language": language, "beam_size": beam, "temperature": temperature, "word_timestamps": words}
    spec = parse_job(job_message("/data/a.wav", raw), DEFAULTS, INLINE_LIMIT)
    assert (spec.options.beam_size, spec.options.word_timestamps) == (beam, words)
    assert spec.options.language == (None if language in (None, "auto") else language)


@pytest.mark.parametrize("encoded", ["é", "ÿÿÿÿ", "\x00\x00", "AAA=" * 2000])
def test_inline_audio_that_is_not_base64_or_too_big(encoded: str) -> None:
    with pytest.raises(PermanentError, match="inline audio"):
        parse_job({"audio": "", "audio_b64": encoded}, DEFAULTS, INLINE_LIMIT)
