"""Prometheus metrics: recorded by real workers into Redis, scraped over HTTP."""

from __future__ import annotations

import subprocess
import sys
import threading
import urllib.request
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from farm.client import Client
from farm.config import Settings
from farm.errors import JobFailedError
from farm.io.metrics import JOBS, MODEL_LOAD, SPEED, Recorder, serve
from farm.queue.connections import RedisSettings
from farm.serve.redis_server import RedisServer, free_port, start_redis
from tests.api.servers import wait_for_http
from tests.conftest import JFK, ROOT, worker_env

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(url: str) -> Samples:
    with urllib.request.urlopen(url, timeout=10) as response:
        text = response.read().decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


@pytest.fixture()
def private_redis() -> Iterator[RedisServer]:
    server = start_redis()
    yield server
    server.stop()


def test_recorded_values_come_back_as_prometheus_families(farm_settings: Settings, private_redis: RedisServer) -> None:
    settings = replace(farm_settings, broker_url=private_redis.url, result_backend=private_redis.url)
    recorder = Recorder(RedisSettings(settings.broker_url))
    recorder.count(JOBS, state="succeeded")
    recorder.count(JOBS, state="succeeded")
    for speed in (3.0, 700.0):
        recorder.observe(SPEED, speed)
    recorder.observe(MODEL_LOAD, 1.5, engine="ctranslate2", model='odd "name"')
    producer = Client(settings)
    producer.submit(JFK, queue="farm.gpu0")  # no worker here: it waits in farm.gpu0
    producer.close()
    port = free_port()
    stop = threading.Event()
    thread = threading.Thread(target=serve, args=(replace(settings, metrics_port=port), stop), daemon=True)
    thread.start()
    try:
        wait_for_http(f"http://127.0.0.1:{port}/metrics")
        samples = scrape(f"http://127.0.0.1:{port}/metrics")
    finally:
        stop.set()
        thread.join()
    assert samples[("farm_jobs_total", (("state", "succeeded"),))] == 2
    assert samples[("farm_job_speed_xrt_bucket", (("le", "5.0"),))] == 1
    assert samples[("farm_job_speed_xrt_bucket", (("le", "+Inf"),))] == 2
    assert samples[("farm_job_speed_xrt_sum", ())] == 703.0
    load = (("engine", "ctranslate2"), ("model", 'odd "name"'))
    assert samples[("farm_model_load_seconds_count", load)] == 1
    assert samples[("farm_queue_depth", (("queue", "farm.gpu0"),))] == 1
    assert samples[("farm_queue_depth", (("queue", "farm"),))] == 0


@pytest.mark.slow
def test_farm_metrics_counts_real_jobs(client: Client, farm_settings: Settings, tmp_path: Path) -> None:
    port = free_port()
    env = worker_env(farm_settings, FARM_METRICS_PORT=str(port))
    process = subprocess.Popen([sys.executable, "-m", "farm.cli", "metrics"], env=env, cwd=ROOT)
    url = f"http://127.0.0.1:{port}/metrics"
    try:
        wait_for_http(url, process)
        before = scrape(url)
        bogus = tmp_path / "notes.wav"
        bogus.write_text("not a recording\n" * 50)
        good, bad = client.submit(JFK, beam_size=1), client.submit(bogus)
        good.result(timeout=120)
        with pytest.raises(JobFailedError):
            bad.result(timeout=120)
        after = scrape(url)
    finally:
        process.terminate()
        process.wait(timeout=30)

    def delta(name: str, **labels: str) -> float:
        key = (name, tuple(sorted(labels.items())))
        return after.get(key, 0.0) - before.get(key, 0.0)

    assert delta("farm_jobs_total", state="succeeded") == 1 and delta("farm_jobs_total", state="failed") == 1
    assert delta("farm_job_errors_total", type="AudioDecodeError") == 1
    assert delta("farm_audio_seconds_total") == pytest.approx(11.0, abs=0.1)
    assert delta("farm_job_speed_xrt_count") == 1 and delta("farm_job_speed_xrt_sum") > 1
    model = (("engine", "ctranslate2"), ("model", "tiny.en"))
    assert after[("farm_model_load_seconds_count", model)] >= 1
    assert after[("farm_queue_depth", (("queue", "farm.cpu"),))] == 0
