"""`farm transcribe`, `submit`, `status` and `result`: jobs from the command line."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from farm.client import Client, Job, _safe_url
from farm.commands.errors import friendly_errors
from farm.commands.progress import follow
from farm.config import Settings, get_settings
from farm.constants import OUTPUT_FORMATS
from farm.errors import BrokerUnavailableError, FarmError
from farm.job.formats import render
from farm.queue.connections import RedisSettings, reachable
from farm.queue.consumers import consumers


@dataclass(frozen=True)
class Decoding:
    """What the decoding flags shared by `transcribe` and `submit` ask of every job."""

    options: dict[str, Any]
    queue: str | None


def decoding_options(command: Callable[..., None]) -> Callable[..., None]:
    """Add the decoding flags to ``command``, which receives them as one ``decoding``."""

    @functools.wraps(command)
    def with_decoding(
        *args: Any, language: str | None, task: str | None, beam_size: int | None, words: bool, queue: str | None,
        **kwargs: Any,
    ) -> None:  # fmt: skip
        options = {"language": language, "task": task, "beam_size": beam_size, "word_timestamps": words or None}
        chosen = {key: value for key, value in options.items() if value is not None}
        command(*args, decoding=Decoding(chosen, queue), **kwargs)

    flags = [
        click.option("--language", help="ISO 639-1 code, or 'auto' to detect (default from settings)"),
        click.option("--task", type=click.Choice(["transcribe", "translate"])),
        click.option("--beam-size", type=int),
        click.option("--word-timestamps", "words", is_flag=True, help="add word-level timestamps"),
        click.option("--queue", help="send to this queue (e.g. farm.gpu0) instead of the shared one"),
    ]
    for flag in reversed(flags):
        with_decoding = flag(with_decoding)
    return with_decoding


@click.command()
@click.argument("files", nargs=-1, required=True)
@click.option(
    "--format", "formats", multiple=True, type=click.Choice(OUTPUT_FORMATS), default=["txt"], show_default=True
)
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), help="write <name>.<format> files here")
@click.option("--timeout", type=float, default=None, help="give up after this many seconds")
@click.option("--output", help="s3://bucket/prefix (or a directory workers share): workers write <job id>.<format>")
@decoding_options
@friendly_errors
def transcribe(
    files: tuple[str, ...],
    formats: tuple[str, ...],
    out: Path | None,
    timeout: float | None,
    output: str | None,
    decoding: Decoding,
) -> None:
    """Transcribe FILES (paths or s3:// URIs) and print or write the results."""
    options = decoding.options | _delivery(output, formats)
    with ExitStack() as stack:
        client = Client(_reachable_farm(get_settings(), stack))
        jobs = [client.submit(f, queue=decoding.queue, **options) for f in files]
        follow(jobs, timeout)
        failures = _emit_outputs(jobs) if output and out is None else _emit(jobs, formats, out)
    if failures:
        sys.exit(1)


def _reachable_farm(settings: Settings, stack: ExitStack) -> Settings:
    reason = _why_not_served(settings)
    if reason is None:
        return settings
    if not settings.embedded_broker:
        raise BrokerUnavailableError(f"{reason} and embedded_broker is off; start `farm worker` or `farm up`")
    from farm.serve.embedded import local_farm, require_worker_side

    require_worker_side(settings.engine)
    click.echo(f"{reason}; starting a private Redis and worker", err=True)
    return stack.enter_context(local_farm(settings)).settings


def _answering_broker() -> Settings:
    # Celery would retry a dead (or password-refusing) Redis for ~20 s, then raise a bare
    # RuntimeError: ask first, and fail at once with one line.
    settings = get_settings()
    if not reachable(RedisSettings.from_settings(settings)):
        raise BrokerUnavailableError(f"cannot reach the broker at {_safe_url(settings.broker_url)}")
    return settings


def _why_not_served(settings: Settings) -> str | None:
    if settings.embedded_broker and not settings.chosen("broker_url"):
        # Whatever answers at the default URL may be another farm: never hand it a job (or leave
        # keys there) unless the user pointed us at it.
        return "no broker_url is set"
    if not reachable(RedisSettings.from_settings(settings)):
        return "no broker answered"
    probe = Client(settings)
    try:
        return None if probe.workers(timeout=1.0) else "no worker answered"
    finally:
        probe.close()


def _emit(jobs: list[Job], formats: tuple[str, ...], out: Path | None) -> int:
    failures = 0
    for job in jobs:
        try:
            result = job.result(timeout=1)
        except FarmError as exc:
            click.echo(f"error: {job.name}: {exc}", err=True)
            failures += 1
            continue
        _write(job.name, result, formats, out)
    return failures


def _write(name: str, result: dict[str, Any], formats: tuple[str, ...], out: Path | None) -> None:
    for fmt in formats:
        text = render(result, fmt)
        if out is None:
            click.echo(text, nl=False)
            continue
        out.mkdir(parents=True, exist_ok=True)
        target = out / f"{Path(name).stem}.{fmt}"
        target.write_text(text, encoding="utf-8")
        click.echo(f"wrote {target}", err=True)


@click.command()
@click.argument("files", nargs=-1, required=True)
@click.option("--output", help="s3://bucket/prefix (or a directory workers share): workers write <job id>.<format>")
@click.option("--format", "formats", multiple=True, type=click.Choice(OUTPUT_FORMATS), help="with --output")
@decoding_options
@friendly_errors
def submit(files: tuple[str, ...], output: str | None, formats: tuple[str, ...], decoding: Decoding) -> None:
    """Queue FILES and print one job id per line."""
    client = Client(_answering_broker())
    options = decoding.options | _delivery(output, formats)
    for job in client.submit_many(files, queue=decoding.queue, **options):
        click.echo(job.id)


def _delivery(output: str | None, formats: tuple[str, ...]) -> dict[str, Any]:
    return {"output": output, "formats": formats} if output else {}


def _emit_outputs(jobs: list[Job]) -> int:
    """Print where the workers wrote each job's files, one URI per line."""
    failures = 0
    for job in jobs:
        try:
            outputs = job.result(timeout=1).get("outputs", {})
        except FarmError as exc:
            click.echo(f"error: {job.name}: {exc}", err=True)
            failures += 1
            continue
        for uri in outputs.values():
            click.echo(uri)
    return failures


@click.command()
@click.argument("job_id")
@friendly_errors
def status(job_id: str) -> None:
    """Show a job's state and progress ("unknown" for an id nobody submitted)."""
    client = Client(_answering_broker())
    job = client.job(job_id)
    current = job.status()
    line = f"{current.id} {current.state} {current.percent:.0f}%"
    click.echo(line + (f" {current.error}" if current.error else "") + _idle_queue(client, job, current.state))


def _idle_queue(client: Client, job: Job, state: str) -> str:
    """A note when the queue of a queued job has no consumer: it would wait forever."""
    queue = job.queue() if state == "queued" else ""
    if not queue or consumers(client.app, queue):
        return ""
    return f" (no worker is consuming {queue})"


@click.command()
@click.argument("job_id")
@click.option("--format", "fmt", type=click.Choice(OUTPUT_FORMATS), default="txt", show_default=True)
@click.option("--timeout", type=float, default=None)
@friendly_errors
def result(job_id: str, fmt: str, timeout: float | None) -> None:
    """Wait for a job and print its result."""
    click.echo(render(Client(_answering_broker()).job(job_id).result(timeout), fmt), nl=False)
