"""The README and docs/ point at files and modules that exist."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

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
