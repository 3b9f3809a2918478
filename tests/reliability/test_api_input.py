"""Bad input over the REST API and through S3: a 4xx with a readable JSON error, no stack
trace, and a worker that goes on serving. The file cases are those of test_bad_input.py.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import httpx
import pytest

from farm.api import create_app
from farm.config import Settings
from tests.api.servers import MotoServer, serve_app, start_moto
from tests.reliability.conftest import Farm, own_farm
from tests.reliability.media import bad_inputs, clip

pytestmark = pytest.mark.slow

TOKEN = "tok-" + secrets.token_hex(8)
NOT_AUDIO = "AudioDecodeError"


@dataclass
class Api:
    http: httpx.Client
    url: str
    inputs: dict[str, Path]
    farm: Farm
    moto: MotoServer


def s3_env(moto: MotoServer) -> dict[str, str]:
    return {
        "FARM_S3_ENDPOINT_URL": moto.url,
        "FARM_S3_REGION": "us-east-1",
        "FARM_S3_ACCESS_KEY_ID": "testing",
        "FARM_S3_SECRET_ACCESS_KEY": "testing",
        "FARM_S3_ADDRESSING_STYLE": "path",
    }


@pytest.fixture(scope="module")
def api(farm_settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    base = tmp_path_factory.mktemp("api-input")
    inputs, uploads = base / "inputs", base / "uploads"
    inputs.mkdir()
    uploads.mkdir()
    files = bad_inputs(inputs)
    files["good.wav"] = clip(inputs, 3.0, "good.wav")
    moto = start_moto()
    moto.s3().create_bucket(Bucket="audio")
    # Uploads land in upload_dir, which input_roots always admits.
    extra = {"FARM_INPUT_ROOTS": f'["{inputs}"]', "FARM_UPLOAD_DIR": str(uploads), **s3_env(moto)}
    try:
        with own_farm(farm_settings, base, FARM_CONCURRENCY="2", **extra) as farm:
            settings = replace(farm.settings, api_token=TOKEN, upload_dir=str(uploads), api_max_upload_mb=1)
            settings = replace(settings, s3_endpoint_url=moto.url, s3_access_key_id="testing")
            settings = replace(settings, s3_secret_access_key="testing", s3_addressing_style="path")
            with serve_app(create_app(settings)) as url:
                headers = {"Authorization": f"Bearer {TOKEN}"}
                with httpx.Client(base_url=url, headers=headers, timeout=120) as http:
                    yield Api(http, url, files, farm, moto)
    finally:
        moto.stop()


def _error(response: httpx.Response, status: int) -> dict[str, str]:
    assert response.status_code == status, response.text
    assert "Traceback" not in response.text and 'File "' not in response.text  # no stack traces
    body: dict[str, str] = response.json()["error"]
    assert body["message"]
    return body


def _transcribe(api: Api, name: str, **form: str) -> httpx.Response:
    files = {"file": (name, api.inputs[name].read_bytes())}
    return api.http.post("/v1/audio/transcriptions", data={"model": "whisper-1", "beam_size": "1", **form}, files=files)


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("empty.wav", r"'empty\.wav' is not decodable audio"),
        ("truncated_head.flac", r"'truncated_head\.flac' is not decodable audio"),
        ("truncated_half.flac", r"'truncated_half\.flac' is not decodable audio"),
        ("random.wav", r"'random\.wav' is not decodable audio"),
        ("notes.wav", r"'notes\.wav' is not decodable audio"),
        ("photo.png", r"'photo\.png' is not decodable audio: it has no audio track"),
        ("photo_named.wav", r"it has no audio track"),
        ("video_no_audio.mp4", r"'video_no_audio\.mp4' is not decodable audio: it has no audio track"),
    ],
)
def test_undecodable_upload_is_a_400(api: Api, name: str, message: str) -> None:
    body = _error(_transcribe(api, name), 400)
    assert body["code"] == NOT_AUDIO and re.search(message, body["message"]), body


@pytest.mark.parametrize("name", ["short_0.1s.wav", "six_channels.wav", "8khz.wav", "96khz.wav", "float_nan_inf.wav"])
def test_odd_but_valid_upload_is_transcribed(api: Api, name: str) -> None:
    response = _transcribe(api, name, response_format="verbose_json")
    assert response.status_code == 200, response.text
    assert response.json()["duration"] == pytest.approx(0.1 if name.startswith("short") else 3.0, abs=0.01)


def test_upload_over_the_limit_is_a_413(api: Api) -> None:
    assert _error(_transcribe(api, "over_size_limit.wav"), 413)["code"] == "upload_too_large"


@pytest.mark.parametrize(
    ("form", "param"),
    [
        ({"response_format": "xml"}, "response_format"),
        ({"temperature": "-0.5"}, "temperature"),
        ({"beam_size": "0"}, "beam_size"),
        ({"language": "xx"}, None),
    ],
    ids=["response_format", "negative_temperature", "beam_size_0", "unknown_language"],
)
def test_bad_option_is_a_400(api: Api, form: dict[str, str], param: str | None) -> None:
    body = _error(_transcribe(api, "good.wav", **form), 400)
    assert body["param"] == param, body


@pytest.mark.parametrize(
    "uri", ["../../etc/passwd", "/etc/passwd", "file:///etc/passwd", "http://169.254.169.254/latest/meta-data"]
)
def test_job_uri_must_be_s3(api: Api, uri: str) -> None:
    assert "s3://" in _error(api.http.post("/v1/jobs", data={"uri": uri}), 400)["message"]


@pytest.mark.parametrize(
    ("uri", "message"),
    [("s3://no-such-bucket/a.wav", r"no such object: s3://no-such-bucket/a\.wav"), ("s3://audio/missing.wav", r"")],
    ids=["missing_bucket", "missing_key"],
)
def test_missing_s3_object_fails_the_job_clearly(api: Api, uri: str, message: str) -> None:
    created = api.http.post("/v1/jobs", data={"uri": uri, "beam_size": "1"})
    assert created.status_code == 202, created.text
    job = api.farm.client.job(created.json()["id"])
    status = api.farm.client.wait_all([job], timeout=60)[0]
    assert status.state == "failed" and "no such object" in (status.error or "") and re.search(message, status.error)
    described = api.http.get(f"/v1/jobs/{job.id}").json()
    assert described["error_type"] == "StorageNotFoundError" and "testing" not in str(described)


def test_s3_missing_object_through_the_client(api: Api) -> None:
    job = api.farm.client.submit("s3://audio/nothing-here.flac", beam_size=1)
    status = api.farm.client.wait_all([job], timeout=60)[0]
    assert (status.state, status.error_type) == ("failed", "StorageNotFoundError"), status


@pytest.mark.parametrize("header", [None, "Bearer wrong-token", f"Basic {TOKEN}", f"Bearer {TOKEN[:-1]}"])
def test_token_is_required(api: Api, header: str | None) -> None:
    headers = {"Authorization": header} if header else {}
    with httpx.Client(base_url=api.url, headers=headers, timeout=30) as anonymous:
        files = {"file": ("good.wav", api.inputs["good.wav"].read_bytes())}
        response = anonymous.post("/v1/audio/transcriptions", data={"model": "whisper-1"}, files=files)
    assert _error(response, 401)["type"] == "authentication_error"


def test_worker_served_every_request(api: Api) -> None:
    response = _transcribe(api, "good.wav")
    assert response.status_code == 200 and "fellow" in response.json()["text"].lower()
    assert api.farm.logs().count("loaded ctranslate2 model") == 1
