"""docs/reference/settings.md is generated from the tree (an entry of
warmfleet/cli/reference.py) and lists every variable; it fails here when it drifts
(regenerate: python -m warmfleet.cli.reference --write)."""

from __future__ import annotations

from pathlib import Path

from warmfleet.cli.reference import PAGES, settings_page
from warmfleet.settings import known_names
from warmfleet.settings.reference import PATH

ROOT = Path(__file__).resolve().parents[2]


def test_the_committed_reference_is_the_generated_one():
    assert ("reference/settings.md", settings_page) in PAGES
    committed = (ROOT / PATH).read_text()
    assert committed == settings_page(ROOT), f"{PATH} is stale: run python -m warmfleet.cli.reference --write"


def test_the_reference_lists_every_variable():
    page = settings_page(ROOT)
    assert [n for n in sorted(known_names()) if f"`{n}`" not in page] == []
