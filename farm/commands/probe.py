"""`farm probe live|ready`: the container probes of a worker pod (Kubernetes, Compose, Docker)."""

from __future__ import annotations

import sys

import click

from farm.commands.errors import friendly_errors

READY_TIMEOUT_S = 10.0
API_TIMEOUT_S = 5.0


@click.group()
def probe() -> None:
    """Check the farm worker running in this container; exit 0 when the check passes."""


@probe.command()
@friendly_errors
def live() -> None:
    """Liveness, without Redis: the worker supervisor and each worker process beat within 30 s
    (or, in a container that runs `farm api` instead, its /healthz answers)."""
    from farm.serve.liveness import check, read_plan

    verdict = check()
    if read_plan() is None and _api_answers():
        click.echo("the API answers")
        sys.exit(0)
    click.echo(verdict.reason, err=not verdict.alive)
    sys.exit(0 if verdict.alive else 1)


def _api_answers() -> bool:
    import urllib.request

    from farm.config import get_settings

    url = f"http://127.0.0.1:{get_settings().api_port}/healthz"
    try:
        with urllib.request.urlopen(url, timeout=API_TIMEOUT_S) as response:
            return bool(response.status == 200)
    except OSError:
        return False


@probe.command()
@friendly_errors
def ready() -> None:
    """Readiness: every worker process in this container answers a ping through the broker."""
    from farm.client import Client
    from farm.config import get_settings
    from farm.serve.liveness import read_plan

    plan = read_plan()
    if plan is None:
        click.echo("farm worker is not running here", err=True)
        sys.exit(1)
    client = Client(get_settings())
    try:
        replies = client.app.control.ping(list(plan.nodes), timeout=READY_TIMEOUT_S, limit=len(plan.nodes)) or []
        answered = {name for reply in replies for name in reply}
    except Exception as exc:
        click.echo(f"the broker does not answer: {type(exc).__name__}", err=True)
        sys.exit(1)
    finally:
        client.close()
    missing = sorted(set(plan.nodes) - answered)
    click.echo(f"not answering through the broker: {', '.join(missing)}" if missing else "ready", err=bool(missing))
    sys.exit(1 if missing else 0)
