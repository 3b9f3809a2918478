"""The ``farm`` command: transcribe files, manage jobs, run workers, plan capacity, show settings."""

from __future__ import annotations

import importlib

import click

# Each subcommand lives in farm.commands and is imported only when it runs, so `farm capacity`
# or `farm --help` answer without loading Celery, Redis or Dynaconf (a third of a second).
COMMANDS = {
    "transcribe": "jobs",
    "submit": "jobs",
    "status": "jobs",
    "result": "jobs",
    "worker": "serving",
    "up": "serving",
    "api": "serving",
    "metrics": "serving",
    "config": "settings",
    "model": "model",
    "bench": "bench",
    "capacity": "capacity",
    "dead-letters": "queue",
}


class LazyGroup(click.Group):
    """A group whose subcommands are found by name in ``COMMANDS`` and imported on demand."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in COMMANDS:
            return None
        command = getattr(importlib.import_module(f"farm.commands.{COMMANDS[cmd_name]}"), cmd_name.replace("-", "_"))
        assert isinstance(command, click.Command), f"farm.commands.{COMMANDS[cmd_name]}.{cmd_name}"
        return command


@click.group(cls=LazyGroup)
def main() -> None:
    """whisperfarm: speech to text on a farm of Whisper workers."""


if __name__ == "__main__":
    main()
