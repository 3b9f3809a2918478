"""`farm model`: manage model files."""

from __future__ import annotations

from pathlib import Path

import click

from farm.commands.errors import friendly_errors


@click.group()
def model() -> None:
    """Manage model files."""


@model.command("import-ct2")
@click.argument("src", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.argument("dst", type=click.Path(file_okay=False, path_type=Path))
@friendly_errors
def import_ct2_command(src: Path, dst: Path) -> None:
    """Convert a CTranslate2 Whisper model in SRC to a Hugging Face directory DST."""
    from farm.inference.weights.convert import import_ct2

    click.echo(f"wrote {import_ct2(src, dst)}")
