"""Redis Sentinel for the broker and the result backend: the master dies mid-run, nothing is lost.

A master and a replica (redis-server) and three Sentinels (redis-server --sentinel) on
loopback; a real `farm worker` and a real client on a ``sentinel://`` URL. 200 short jobs
are queued, the master is killed with SIGKILL while they run, Sentinel promotes the
replica, and every job must still succeed. The recovery times are printed for
docs/reliability.md.
"""

from __future__ import annotations

import io
import os
import signal
import subprocess
import time
import wave
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pytest
import redis

from farm.client import Client, Job
from farm.config import Settings, load_settings
from farm.errors import ConfigError
from farm.inference.audio import decode
from farm.queue.broker import worker_celery_config
from farm.queue.connections import RedisSettings, new_redis
from farm.queue.sentinel import parse_sentinel_url
from farm.serve.redis_server import free_port, redis_binary
from tests.conftest import EVAL, librispeech_clips, start_worker

MASTER = "farm"
JOBS = 200
CLIP_S = 2.0


@dataclass
class Server:
    port: int
    process: subprocess.Popen[bytes]

    def client(self) -> redis.Redis:
        return redis.Redis(port=self.port, socket_timeout=2)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)


@dataclass
class SentinelSet:
    master: Server
    replica: Server
    sentinels: list[Server] = field(default_factory=list)

    @property
    def url(self) -> str:
        hosts = ";".join(f"sentinel://127.0.0.1:{s.port}" for s in self.sentinels)
        return f"{hosts}/0?master_name={MASTER}"

    def master_port(self) -> int:
        for sentinel in self.sentinels:
            try:
                _, port = sentinel.client().execute_command("SENTINEL", "GET-MASTER-ADDR-BY-NAME", MASTER)
                return int(port)
            except redis.RedisError:
                continue
        raise AssertionError("no Sentinel answers")

    def replicas_known(self) -> list[int]:
        return [len(s.client().execute_command("SENTINEL", "REPLICAS", MASTER)) for s in self.sentinels]

    def stop(self) -> None:
        for server in (self.master, self.replica, *self.sentinels):
            server.stop()


def _redis(directory: Path, *args: str) -> Server:
    port = free_port()
    directory.mkdir(parents=True, exist_ok=True)
    argv = [redis_binary(), "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--dir", str(directory), *args]
    return Server(port, subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT))


def _sentinel(directory: Path, master_port: int) -> Server:
    port = free_port()
    directory.mkdir(parents=True, exist_ok=True)
    conf = directory / "sentinel.conf"  # Sentinel rewrites its own file: one each
    conf.write_text(
        f"port {port}\nbind 127.0.0.1\ndir {directory}\n"
        f"sentinel monitor {MASTER} 127.0.0.1 {master_port} 2\n"
        f"sentinel down-after-milliseconds {MASTER} 1000\n"
        f"sentinel failover-timeout {MASTER} 10000\n"
        f"sentinel parallel-syncs {MASTER} 1\n"
    )
    argv = [redis_binary(), str(conf), "--sentinel"]
    return Server(port, subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT))


def _until(check: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if check():  # type: ignore[operator]
                return
        except (redis.RedisError, OSError):
            pass
        assert time.monotonic() < deadline, what
        time.sleep(0.2)


@pytest.fixture()
def sentinels(tmp_path: Path) -> Iterator[SentinelSet]:
    master = _redis(tmp_path / "master")
    replica = _redis(tmp_path / "replica")  # made a replica below, once both answer
    group = SentinelSet(master, replica)
    try:
        _until(lambda: master.client().ping() and replica.client().ping(), 30, "redis did not start")
        replica.client().execute_command("REPLICAOF", "127.0.0.1", str(master.port))
        _until(lambda: replica.client().info("replication")["master_link_status"] == "up", 30, "no replication")
        group.sentinels = [_sentinel(tmp_path / f"sentinel{i}", master.port) for i in range(3)]
        _until(lambda: group.replicas_known() == [1, 1, 1], 60, "the Sentinels never found the replica")
        yield group
    finally:
        group.stop()


def short_clips(count: int) -> list[bytes]:
    """The first CLIP_S seconds of LibriSpeech utterances as small WAVs (sent inline)."""
    clips = []
    for row in librispeech_clips(count):
        samples = decode(EVAL / str(row["path"]))[: int(CLIP_S * 16_000)]
        buffer = io.BytesIO()
        with wave.open(buffer, "wb") as out:
            out.setnchannels(1)
            out.setsampwidth(2)
            out.setframerate(16_000)
            out.writeframes((np.clip(samples, -1, 1) * 32767).astype("<i2").tobytes())
        clips.append(buffer.getvalue())
    return clips


def done_count(jobs: list[Job]) -> int:
    return sum(job.status().done for job in jobs)


@pytest.mark.slow
def test_master_killed_during_200_jobs_loses_none(sentinels: SentinelSet, tmp_path: Path) -> None:
    # A job cut off with its ack lost in replication comes back after visibility_timeout:
    # keep that short here (production keeps it above the longest job).
    limits = {"FARM_SOFT_TIME_LIMIT": "100", "FARM_TIME_LIMIT": "110", "FARM_VISIBILITY_TIMEOUT": "120"}
    settings: Settings = replace(load_settings(), broker_url=sentinels.url, result_backend=sentinels.url)
    worker = start_worker(settings, tmp_path / "worker.log", FARM_CONCURRENCY="8", **limits)
    client = Client(settings)
    try:
        clips = short_clips(50)
        started = time.monotonic()
        jobs = [client.submit(clips[i % len(clips)], language="en", beam_size=1) for i in range(JOBS)]
        _until(lambda: done_count(jobs) >= 40, 600, f"the first jobs did not finish:\n{worker.output()}")
        per_job_s = (time.monotonic() - started) / 40
        before = done_count(jobs)

        old_port = sentinels.master.port
        os.kill(sentinels.master.process.pid, signal.SIGKILL)
        killed = time.monotonic()
        _until(lambda: sentinels.master_port() != old_port, 60, "Sentinel did not promote the replica")
        promoted = time.monotonic() - killed
        _until(lambda: done_count(jobs) > before, 300, f"no job finished after the failover:\n{worker.output()}")
        resumed = time.monotonic() - killed

        statuses = client.wait_all(jobs, timeout=max(600.0, 20 * per_job_s * JOBS))
    finally:
        client.close()
        worker.stop()
    states = [s.state for s in statuses]
    print(
        f"\nsentinel failover: {JOBS} jobs, master killed after {before} done; replica promoted in "
        f"{promoted:.1f} s, next job finished {resumed:.1f} s after the kill; "
        f"{states.count('succeeded')} succeeded, {JOBS - states.count('succeeded')} lost"
    )
    assert states.count("succeeded") == JOBS, {s: states.count(s) for s in set(states)}


def test_celery_and_the_farm_clients_get_the_master_name() -> None:
    url = "sentinel://:s%40cret@s1:26379;sentinel://s2:26380/3?master_name=farm"
    settings = replace(load_settings(), broker_url=url, result_backend=url)
    config = worker_celery_config(settings)
    assert config["broker_url"] == "sentinel://:s%40cret@s1:26379/3;sentinel://:s%40cret@s2:26380/3"
    assert config["broker_transport_options"]["master_name"] == "farm"
    assert config["result_backend_transport_options"]["master_name"] == "farm"
    assert config["broker_transport"] == "farm.queue.transport:SentinelTransport"
    client = new_redis(RedisSettings.from_settings(settings))
    try:
        pool = client.connection_pool
        assert (pool.service_name, pool.connection_kwargs["db"], pool.connection_kwargs["password"]) == (
            "farm",
            3,
            "s@cret",
        )
    finally:
        client.close()
    with pytest.raises(ConfigError, match="master_name"):
        parse_sentinel_url("sentinel://s1:26379")
