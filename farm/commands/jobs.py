"""`farm transcribe`, `submit`, `status` and `result`: jobs from the command line."""

from __future__ import annotations

import functools
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from farm.client import Client, Job, JobStatus
from farm.commands.errors import friendly_errors
from farm.commands.farms import answering_broker, private_or_configured_farm
from farm.commands.outputs import Named, print_all, write_files
from farm.commands.progress import follow, wait
from farm.commands.signals import stop_on_signals
from farm.commands.waiting import QueueWatch
from farm.config import get_settings
from farm.constants import AUDIO_SUFFIXES, OUTPUT_FORMATS, SHARED_QUEUE
from farm.errors import FarmError, InvalidJobError, JobNotFoundError, JobTimeoutError
from farm.job.formats import render
from farm.queue.consumers import consumers

STATUS_TEXT_CHARS = 200  # the end of a running job's text that `farm status` shows


@dataclass(frozen=True)
class Decoding:
    """What the decoding flags shared by `transcribe` and `submit` ask of every job."""

    options: dict[str, Any]
    queue: str | None


def decoding_options(command: Callable[..., Any]) -> Callable[..., None]:
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
) -> int:
    """Transcribe FILES (audio files, directories of them, or s3:// URIs) and print or write the results."""
    sources = expand_inputs(files)
    options = decoding.options | _delivery(output, formats)
    with stop_on_signals(), ExitStack() as stack:
        client = Client(private_or_configured_farm(get_settings(), stack, options))
        stack.callback(client.close)
        jobs = [client.submit(source, queue=decoding.queue, **options) for source in sources]
        statuses = follow(jobs, timeout, QueueWatch(client.app, decoding.queue or SHARED_QUEUE).check)
        late = _unfinished(jobs, statuses, timeout)
        finished = [job for job in jobs if job not in late]
        failures = _emit_outputs(finished) if output and out is None else _emit(finished, formats, out)
    return 1 if failures or late else 0


def expand_inputs(files: tuple[str, ...]) -> list[str]:
    """The inputs with each local directory replaced by the audio files directly in it."""
    expanded: list[str] = []
    for name in files:
        path = Path(name).expanduser()
        if "://" in name or not path.is_dir():
            expanded.append(name)
            continue
        audio = sorted(str(f) for f in path.iterdir() if f.is_file() and f.suffix.lower() in AUDIO_SUFFIXES)
        if not audio:
            raise InvalidJobError(f"{name} is a directory with no audio files in it")
        expanded += audio
    return expanded


def _unfinished(jobs: list[Job], statuses: list[JobStatus], timeout: float | None) -> list[Job]:
    late = [job for job, status in zip(jobs, statuses, strict=True) if not status.done]
    for job in late:
        click.echo(f"error: {job.name}: job {job.id} did not finish within {timeout:g} s", err=True)
    return late


def _emit(jobs: list[Job], formats: tuple[str, ...], out: Path | None) -> int:
    results, failures = _results(jobs)
    if out is None:
        print_all(results, formats)
    else:
        write_files(results, formats, out)
    return failures


def _results(jobs: list[Job]) -> tuple[list[Named], int]:
    results: list[Named] = []
    for job in jobs:
        try:
            results.append((job.name, job.result(timeout=None)))
        except FarmError as exc:
            click.echo(f"error: {job.name}: {exc}", err=True)
    return results, len(jobs) - len(results)


def _emit_outputs(jobs: list[Job]) -> int:
    """Print where the workers wrote each job's files, one URI per line."""
    results, failures = _results(jobs)
    for _name, done in results:
        for uri in done.get("outputs", {}).values():
            click.echo(uri)
    return failures


def _delivery(output: str | None, formats: tuple[str, ...]) -> dict[str, Any]:
    return {"output": output, "formats": formats} if output else {}


@click.command()
@click.argument("files", nargs=-1, required=True)
@click.option("--output", help="s3://bucket/prefix (or a directory workers share): workers write <job id>.<format>")
@click.option("--format", "formats", multiple=True, type=click.Choice(OUTPUT_FORMATS), help="with --output")
@decoding_options
@friendly_errors
def submit(files: tuple[str, ...], output: str | None, formats: tuple[str, ...], decoding: Decoding) -> None:
    """Queue FILES (audio files, directories of them, or s3:// URIs) and print one job id per line."""
    client = Client(answering_broker(get_settings()))
    options = decoding.options | _delivery(output, formats)
    for job in client.submit_many(expand_inputs(files), queue=decoding.queue, **options):
        click.echo(job.id)
    _tell_if_unconsumed(client, decoding.queue or SHARED_QUEUE)
    client.close()


def _tell_if_unconsumed(client: Client, queue: str) -> None:
    if not consumers(client.app, queue):
        click.echo(f"no worker is consuming {queue}: its jobs wait there until one does", err=True)


@click.command()
@click.argument("job_id")
@friendly_errors
def status(job_id: str) -> None:
    """Show a job's state, progress and text so far (an id nobody submitted is an error)."""
    client = Client(answering_broker(get_settings()))
    try:
        job = client.job(job_id)
        current = job.status()
        if current.state == "unknown":
            raise JobNotFoundError(f"no job {job_id} (never submitted, or its records expired)")
        line = f"{current.id} {current.state} {current.percent:.0f}%"
        click.echo(line + (f" {current.error}" if current.error else "") + _idle_queue(client, job, current.state))
        if current.text:
            click.echo(_text_so_far(current.text, current.text_offset))
    finally:
        client.close()


def _text_so_far(text: str, offset: int) -> str:
    shown = text[-STATUS_TEXT_CHARS:]
    return ("..." if offset or len(shown) < len(text) else "") + shown


def _idle_queue(client: Client, job: Job, state: str) -> str:
    """A note when the queue of a queued job has no consumer: it would wait forever."""
    queue = job.queue() if state == "queued" else ""
    if not queue or consumers(client.app, queue):
        return ""
    return f" (no worker is consuming {queue})"


@click.command()
@click.argument("job_id")
@click.option("--format", "fmt", type=click.Choice(OUTPUT_FORMATS), default="txt", show_default=True)
@click.option("--timeout", type=float, default=None, help="give up after this many seconds")
@friendly_errors
def result(job_id: str, fmt: str, timeout: float | None) -> None:
    """Wait for a job and print its result."""
    client = Client(answering_broker(get_settings()))
    job = client.job(job_id)
    watch = QueueWatch(client.app, job.queue() or SHARED_QUEUE)
    if job.status().state != "unknown" and not wait([job], timeout, watch.check)[0].done:
        raise JobTimeoutError(f"job {job_id} did not finish within {timeout:g} s")
    click.echo(render(job.result(timeout=None), fmt), nl=False)  # an unknown id: JobNotFoundError
    client.close()
