"""The documentation site builds without a warning (a broken link or anchor, a page left
out of the nav), the pages generated from the code match it, and the README stays a
short doorway whose commands and links are real."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from warmfleet.cli import reference

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"


@pytest.mark.timeout(180)
def test_site_builds_strict_without_a_warning(tmp_path):
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}  # mkdocs-material's end-of-life banner
    out = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--config-file", str(ROOT / "mkdocs.yml"),
         "--site-dir", str(tmp_path / "site")],
        capture_output=True, text=True, timeout=170, cwd=ROOT, env=env,
    )
    log = out.stdout + out.stderr
    assert out.returncode == 0, log
    assert not re.search(r"^(WARNING|ERROR)\b", log, re.MULTILINE), log
    assert (tmp_path / "site" / "reference" / "redis-keys" / "index.html").is_file()


@pytest.mark.timeout(60)
@pytest.mark.parametrize("page", [page for page, _ in reference.PAGES])
def test_generated_page_matches_the_code(page, monkeypatch):
    monkeypatch.delenv("WARMFLEET_POOL", raising=False)  # a parser default reads it
    make = dict(reference.PAGES)[page]
    committed = (ROOT / "docs" / page).read_text()
    assert committed == make(ROOT), f"docs/{page} is stale: run python -m warmfleet.cli.reference --write"


def test_every_generated_page_is_in_the_nav():
    nav = (ROOT / "mkdocs.yml").read_text()
    for page, _ in reference.PAGES:
        assert f" {page}" in nav, f"{page} is generated but not in mkdocs.yml's nav"


def test_the_generator_reports_drift_and_rewrites(tmp_path, monkeypatch):
    """--check (the default) names a stale page and exits 1; --write fixes it."""
    monkeypatch.delenv("WARMFLEET_POOL", raising=False)
    (tmp_path / "mkdocs.yml").write_text("site_name: t\n")
    (tmp_path / "benchmarks" / "results").mkdir(parents=True)
    (tmp_path / "benchmarks" / "results" / "latest.json").write_text(
        (ROOT / "benchmarks" / "results" / "latest.json").read_text())
    for page, _ in reference.PAGES:
        (tmp_path / "docs" / page).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "docs" / page).write_text((ROOT / "docs" / page).read_text())
    assert reference.main(["--root", str(tmp_path)]) == 0
    (tmp_path / "docs" / "reference" / "statuses.md").write_text("# edited by hand\n")
    assert reference.drifted(tmp_path) == ["reference/statuses.md"]
    assert reference.main(["--root", str(tmp_path)]) == 1
    assert reference.main(["--root", str(tmp_path), "--write"]) == 0
    assert reference.drifted(tmp_path) == []


def test_the_generated_pages_cover_the_code():
    """Every key function, status and subcommand appears: the generator skips nothing."""
    from warmfleet.cli.main import build_parser
    from warmfleet.contract.messages import Status

    keys_page = (ROOT / "docs" / "reference" / "redis-keys.md").read_text()
    for name in ("stream", "result", "session_calls", "session_wake", "recycle_lease"):
        assert f"`keys.{name}`" in keys_page
    statuses = (ROOT / "docs" / "reference" / "statuses.md").read_text()
    assert all(f"`{s.value}`" in statuses for s in Status)
    cli = (ROOT / "docs" / "reference" / "cli.md").read_text()
    assert all(f"## warmfleet {name}\n" in cli for name in reference._subcommands(build_parser()))
    metrics_page = (ROOT / "docs" / "reference" / "metrics.md").read_text()
    for name in ("warmfleet_jobs_completed_total", "warmfleet_slots_ready", "warmfleet_executor_memory_bytes",
                 "warmfleet_gc_recycles_total", "warmfleet_egress_requests_total"):
        assert f"`{name}`" in metrics_page


def test_readme_is_a_short_doorway_with_real_commands_and_links():
    text = README.read_text()
    assert len(text.splitlines()) <= 150
    assert "scripts/setup && .venv/bin/warmfleet demo" in text and "scripts/test" in text
    assert os.access(ROOT / "scripts" / "setup", os.X_OK) and os.access(ROOT / "scripts" / "test", os.X_OK)
    links = re.findall(r"\]\((docs/[^)#\s]+)(?:#[^)]*)?\)", text)
    assert len(links) >= 10, "the README links into docs/"
    for link in links:
        assert (ROOT / link).is_file(), f"README links to {link}, which does not exist"


def test_no_code_comment_cites_notes_outside_the_repository():
    """Comments cite pages under docs/ (or code), not notes a reader cannot open."""
    offenders = []
    for folder in ("warmfleet", "executor", "dispatcher", "gc_sidecar", "egress"):
        for path in (ROOT / folder).rglob("*.py"):
            for n, line in enumerate(path.read_text().splitlines(), 1):
                if re.search(r"FIELD-NOTES|design notes?\b|notes/", line):
                    offenders.append(f"{path.relative_to(ROOT)}:{n}: {line.strip()}")
    assert not offenders, "\n".join(offenders)
    sources = [p for folder in ("warmfleet", "executor", "dispatcher", "gc_sidecar", "egress", "tests")
               for p in (ROOT / folder).rglob("*.py")]
    for cited in sorted({m for path in sources for m in re.findall(r"docs/[\w/-]+\.md", path.read_text())}):
        assert (ROOT / cited).is_file(), f"code cites {cited}, which does not exist"


def test_every_source_file_the_docs_name_exists():
    """Modules move (the layers did); a page naming one that is gone misleads. The history
    pages keep the paths of their day."""
    named = set()
    for page in (ROOT / "docs").rglob("*.md"):
        if page.name in ("history.md", "changelog.md"):
            continue
        named |= {(page.relative_to(ROOT), m) for m in re.findall(
            r"`((?:executor|warmfleet|dispatcher|gc_sidecar|egress|tests|scripts|k8s|envs)/[\w./-]+)`", page.read_text())}
    assert len(named) > 30
    missing = [f"{page}: {path}" for page, path in sorted(named)
               if not re.search(r"[A-Z]{3,}", path)  # a placeholder: envs/NAME.txt
               and not (ROOT / path.rstrip("/")).exists()]
    assert not missing, "\n".join(missing)
