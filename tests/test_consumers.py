"""farm.queue.consumers against a real worker: who takes the jobs of which queue."""

from __future__ import annotations

import pytest

from farm.client import Client
from farm.config import Settings
from farm.constants import SHARED_QUEUE
from farm.queue.consumers import consumers, consumers_by_queue, no_consumer_note
from farm.serve.redis_server import start_redis

pytestmark = pytest.mark.slow


def test_a_running_worker_consumes_the_shared_and_cpu_queues(client: Client) -> None:
    by_queue = consumers_by_queue(client.app)
    assert by_queue[SHARED_QUEUE] and by_queue["farm.cpu"] == consumers(client.app, "farm.cpu")
    assert consumers(client.app, "farm.gpu7") == []


def test_nobody_consumes_a_queue_on_a_broker_without_workers(farm_settings: Settings) -> None:
    from dataclasses import replace

    lonely = start_redis()
    probe = Client(replace(farm_settings, broker_url=lonely.url, result_backend=lonely.url))
    try:
        assert consumers(probe.app, SHARED_QUEUE) == []
    finally:
        probe.close()
        lonely.stop()
    assert no_consumer_note("farm.cpu") == "no worker is consuming farm.cpu; waiting (Ctrl-C to stop)"
