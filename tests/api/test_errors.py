"""Bad input gets a clear 4xx with a JSON body; probes, metrics and the schema answer."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

import httpx
import pytest

from farm.api import create_app
from farm.config import Settings
from farm.errors import ConfigError
from tests.api.conftest import MAX_UPLOAD_MB
from tests.conftest import JFK

pytestmark = pytest.mark.slow


def error(response: httpx.Response, status: int) -> dict[str, str]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    body: dict[str, str] = response.json()["error"]
    assert body["message"]
    return body


def test_token_is_required_on_v1_and_metrics(api_url: str) -> None:
    with httpx.Client(base_url=api_url) as anonymous:
        missing = anonymous.get("/v1/jobs")
        assert error(missing, 401)["type"] == "authentication_error"
        assert missing.headers["www-authenticate"] == "Bearer"
        error(anonymous.get("/metrics", headers={"Authorization": "Bearer nope"}), 401)
        assert anonymous.get("/healthz").json() == {"status": "ok", "workers": [], "reason": None}


def test_production_refuses_to_start_without_a_token(api_settings: Settings) -> None:
    with pytest.raises(ConfigError, match="api_token"):
        create_app(replace(api_settings, env="production", api_token=""))


@pytest.mark.parametrize(
    ("form", "param"),
    [
        ({}, None),
        ({"uri": "/etc/passwd"}, None),
        ({"uri": "s3://bucket/key", "language": "xx"}, None),
        ({"uri": "s3://bucket/key", "temperature": "5"}, "temperature"),
        ({"uri": "s3://bucket/key", "formats": "pdf"}, "formats.0"),
        ({"uri": "s3://bucket/key", "callback_url": "ftp://example.com/hook"}, None),
        ({"uri": "s3://bucket/key", "output": "relative/dir"}, "output"),
        ({"uri": "s3://bucket/key", "output": "/etc"}, "output"),
    ],
)
def test_bad_job_input_is_a_400(http: httpx.Client, form: dict[str, str], param: str | None) -> None:
    body = error(http.post("/v1/jobs", data=form), 400)
    assert body["type"] == "invalid_request_error" and body["param"] == param


def test_file_and_uri_together_is_a_400(http: httpx.Client) -> None:
    both = http.post("/v1/jobs", data={"uri": "s3://b/k"}, files={"file": ("a.wav", b"RIFF")})
    assert "exactly one" in error(both, 400)["message"]


def test_unknown_and_malformed_job_ids(http: httpx.Client) -> None:
    assert error(http.get("/v1/jobs/0b5bb0a4-0000-4000-8000-000000000000"), 404)["code"] == "job_not_found"
    error(http.get("/v1/jobs/not$an$id"), 400)
    error(http.delete("/v1/jobs/0b5bb0a4-0000-4000-8000-000000000000"), 404)


def test_oversized_upload_is_a_413(http: httpx.Client) -> None:
    too_big = b"\0" * (MAX_UPLOAD_MB << 20)
    response = http.post("/v1/audio/transcriptions", data={"model": "whisper-1"}, files={"file": ("big.wav", too_big)})
    assert error(response, 413)["code"] == "upload_too_large"


def test_oversized_chunked_upload_is_cut_off(http: httpx.Client) -> None:
    def body() -> Iterator[bytes]:  # no Content-Length: only counting can stop it
        yield b'--x\r\nContent-Disposition: form-data; name="file"; filename="big.wav"\r\n\r\n'
        for _ in range(MAX_UPLOAD_MB * 4 + 1):
            yield b"\0" * (256 << 10)

    headers = {"Content-Type": "multipart/form-data; boundary=x"}
    response = http.post("/v1/jobs", content=body(), headers=headers)
    assert error(response, 413)["message"].endswith(f"{MAX_UPLOAD_MB} MiB upload limit")


def test_undecodable_upload_is_a_400_naming_the_file(http: httpx.Client) -> None:
    files = {"file": ("notes.wav", b"not audio at all" * 64)}
    body = error(http.post("/v1/audio/transcriptions", data={"model": "whisper-1"}, files=files), 400)
    assert body["code"] == "AudioDecodeError" and "notes.wav" in body["message"]


def test_missing_model_or_bad_format_is_a_400(http: httpx.Client) -> None:
    files = {"file": ("jfk.flac", JFK.read_bytes())}
    assert error(http.post("/v1/audio/transcriptions", files=files), 400)["param"] == "model"
    bad = http.post("/v1/audio/translations", data={"model": "m", "response_format": "pdf"}, files=files)
    assert error(bad, 400)["param"] == "response_format"


def test_readyz_openapi_and_metrics(http: httpx.Client) -> None:
    ready = http.get("/readyz").json()
    assert ready["status"] == "ready" and any(name.startswith("cpu@") for name in ready["workers"])
    paths = http.get("/openapi.json").json()["paths"]
    assert {"/v1/audio/transcriptions", "/v1/audio/translations", "/v1/jobs", "/v1/jobs/{job_id}"} <= set(paths)
    assert "/v1/jobs/{job_id}/result" in paths and "/healthz" in paths and "/readyz" in paths
    metrics = http.get("/metrics")
    assert metrics.status_code == 200 and "farm_queue_depth" in metrics.text


def test_openapi_documents_the_statuses_the_api_answers(http: httpx.Client) -> None:
    document = http.get("/openapi.json").json()
    operations = {(path, method): op for path, item in document["paths"].items() for method, op in item.items()}
    assert not [where for where, op in operations.items() if "422" in op["responses"]]  # validation answers 400
    assert "HTTPValidationError" not in document["components"]["schemas"]
    v1 = {where: op for where, op in operations.items() if where[0].startswith("/v1")}
    assert all({"400", "401"} <= set(op["responses"]) for op in v1.values())
    for path in ("/v1/audio/transcriptions", "/v1/audio/translations"):
        assert "504" in operations[(path, "post")]["responses"]
    assert "401" in operations[("/metrics", "get")]["responses"]
    assert "404" in operations[("/v1/jobs/{job_id}", "get")]["responses"]
