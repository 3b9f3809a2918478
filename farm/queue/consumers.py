"""Who consumes which queue: so a producer can say "no worker is consuming farm.cpu" instead
of waiting in silence.

Asks the workers themselves (Celery's ``active_queues`` broadcast over the broker), so the
answer is about processes alive now, not about what a deployment meant to run. Takes the
caller's Celery app, so this module imports no Celery of its own.

    from farm.queue.consumers import consumers, no_consumer_note
    if not consumers(client.app, "farm.cpu"):
        print(no_consumer_note("farm.cpu"))
"""

from __future__ import annotations

from typing import Any

PROBE_TIMEOUT_S = 1.0  # how long workers get to answer; a busy worker answers from its own thread


def consumers_by_queue(app: Any, timeout: float = PROBE_TIMEOUT_S) -> dict[str, list[str]]:
    """Queue name -> node names of the workers consuming it, from the workers that answered."""
    replies = app.control.inspect(timeout=timeout).active_queues() or {}
    found: dict[str, list[str]] = {}
    for worker, queues in replies.items():
        for queue in queues or ():
            found.setdefault(str(queue.get("name", "")), []).append(str(worker))
    return {queue: sorted(workers) for queue, workers in found.items()}


def consumers(app: Any, queue: str, timeout: float = PROBE_TIMEOUT_S) -> list[str]:
    """Node names of the workers consuming ``queue`` now (empty: nobody will take its jobs)."""
    return consumers_by_queue(app, timeout).get(queue, [])


def no_consumer_note(queue: str) -> str:
    """The one line a waiting producer prints when ``consumers`` came back empty."""
    return f"no worker is consuming {queue}; waiting (Ctrl-C to stop)"
