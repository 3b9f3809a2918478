"""The README and docs/ point at files and modules that exist."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import tomllib

from tests.conftest import ROOT

PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")
SOURCE_PATH = re.compile(r"`((?:farm|tasks|bench|tests|helm)/[\w./-]+\.(?:py|yaml|json|sh|toml))")


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_relative_links_resolve(page: Path) -> None:
    links = [link for link in LINK.findall(page.read_text()) if "://" not in link and not link.startswith("mailto:")]
    missing = [link for link in links if not (page.parent / link).exists()]
    assert not missing, f"{page.name} links to missing files: {missing}"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_named_source_files_exist(page: Path) -> None:
    missing = [path for path in SOURCE_PATH.findall(page.read_text()) if not (ROOT / path).exists()]
    assert not missing, f"{page.name} names files that do not exist: {missing}"


def test_every_setting_is_in_the_readme_table() -> None:
    defaults = tomllib.loads((ROOT / "farm" / "defaults.toml").read_text())["default"]
    rows = [line for line in (ROOT / "README.md").read_text().splitlines() if line.startswith("| `")]
    named = {key for row in rows for key in re.findall(r"`([a-z0-9_]+)`", row.split("|")[1])}
    assert not set(defaults) - named, f"settings missing from the README's table: {sorted(set(defaults) - named)}"
