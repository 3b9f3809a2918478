"""Where `farm transcribe` puts its results: files that never overwrite each other, or one
document on stdout that a program can still read."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from farm.job.formats import render

Named = tuple[str, dict[str, Any]]  # an input's name and its result


def base_names(names: list[str]) -> list[str]:
    """A distinct file name (without format) per input: its stem, the whole name where two stems
    are the same (jfk.mp3, jfk.wav), a number where whole names are too (a/x.mp3, b/x.mp3)."""
    stems = [Path(name).stem for name in names]
    wanted = [Path(name).name if stems.count(stem) > 1 else stem for name, stem in zip(names, stems, strict=True)]
    taken: set[str] = set()
    for index, base in enumerate(wanted):
        unique, number = base, 1
        while unique in taken:
            number += 1
            unique = f"{base}-{number}"
        taken.add(unique)
        wanted[index] = unique
    return wanted


def write_files(results: list[Named], formats: tuple[str, ...], out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for base, (_name, result) in zip(base_names([name for name, _ in results]), results, strict=True):
        for fmt in formats:
            target = out / f"{base}.{fmt}"
            replaced = " (replaced the file that was there)" if target.exists() else ""
            target.write_text(render(result, fmt), encoding="utf-8")
            click.echo(f"wrote {target}{replaced}", err=True)


def print_all(results: list[Named], formats: tuple[str, ...]) -> None:
    """One document as it is; several JSON ones as one JSON array; anything else under a
    ``==> name (format) <==`` line per part (as head(1) does)."""
    parts = [(name, result, fmt) for name, result in results for fmt in formats]
    if len(parts) == 1:
        click.echo(render(parts[0][1], parts[0][2]), nl=False)
    elif formats == ("json",):
        documents = [{"file": name, "result": json.loads(render(result, "json"))} for name, result, _ in parts]
        click.echo(json.dumps(documents, ensure_ascii=False, indent=2))
    else:
        for index, (name, result, fmt) in enumerate(parts):
            click.echo(f"{'' if index == 0 else chr(10)}==> {name} ({fmt}) <==")
            click.echo(render(result, fmt), nl=False)
