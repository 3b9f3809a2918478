"""The ``farm`` command: transcribe files, manage jobs, run workers, plan capacity, show settings."""

from __future__ import annotations

import importlib

import click

# Each subcommand lives in farm.commands and is imported only when it runs, so `farm capacity`
# or `farm --help` answer without loading Celery, Redis or Dynaconf (a third of a second).
# The one-line summaries are here for the same reason (a test keeps them equal to the docstrings).
COMMANDS: dict[str, tuple[str, str]] = {
    "transcribe": (
        "jobs",
        "Transcribe FILES (audio files, directories of them, or s3:// URIs) and print or write the results.",
    ),
    "submit": ("jobs", "Queue FILES (audio files, directories of them, or s3:// URIs) and print one job id per line."),
    "status": ("jobs", "Show a job's state, progress and text so far (an id nobody submitted is an error)."),
    "result": ("jobs", "Wait for a job and print its result."),
    "worker": ("serving", "Start one worker process per device (GPUs, else the CPU) and supervise them."),
    "up": ("serving", "Run a local farm in the foreground: Redis (if none answers), workers and Flower."),
    "api": ("serving", "Serve the REST API (OpenAI-compatible transcriptions, jobs, /metrics) until stopped."),
    "metrics": ("serving", "Serve the farm's Prometheus metrics on metrics_port until stopped."),
    "config": ("settings", "Print the effective settings and where each value came from."),
    "model": ("model", "Manage model files."),
    "bench": ("bench", "Measure xRT (and WER with --references) for every combination given; write a JSON report."),
    "capacity": ("capacity", "Plan GPUs, worker pods and Redis for a daily audio load (M/M/c, Erlang C)."),
    "dead-letters": ("queue", "List the queue items workers could not read (kept in the farm.dead list)."),
    "probe": ("probe", "Check the farm worker running in this container; exit 0 when the check passes."),
}


class LazyGroup(click.Group):
    """A group whose subcommands are found by name in ``COMMANDS`` and imported on demand."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in COMMANDS:
            return None
        module = COMMANDS[cmd_name][0]
        command = getattr(importlib.import_module(f"farm.commands.{module}"), cmd_name.replace("-", "_"))
        assert isinstance(command, click.Command), f"farm.commands.{module}.{cmd_name}"
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        # click would import every subcommand for its summary line: take it from the table.
        with formatter.section("Commands"):
            formatter.write_dl([(name, COMMANDS[name][1]) for name in self.list_commands(ctx)])


@click.group(cls=LazyGroup)
def main() -> None:
    """whisperfarm: speech to text on a farm of Whisper workers."""


if __name__ == "__main__":
    main()
