"""docs/reference/settings.md is generated from the tree and lists every variable; it
fails here when it drifts (regenerate: python -m warmfleet.settings.reference > docs/reference/settings.md)."""

from __future__ import annotations

import os

from warmfleet.settings import known_names
from warmfleet.settings.reference import PATH, render

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_the_committed_reference_is_the_generated_one():
    with open(os.path.join(ROOT, PATH)) as f:
        committed = f.read()
    assert committed == render(), f"{PATH} is stale: run python -m warmfleet.settings.reference > {PATH}"


def test_the_reference_lists_every_variable():
    page = render()
    nested_whole = {"WARMFLEET_LIMITS", "WARMFLEET_GC"}
    assert [n for n in sorted(known_names()) if f"`{n}`" not in page] == []
    assert nested_whole <= known_names()
