"""A client-only install (pip install warmfleet) lacks the fleet extra's modules: the
server roles name the extra, and `run --batch` runs without its progress bar."""

from __future__ import annotations

import sys

import pytest

from warmfleet.cli import batch, main
from warmfleet.plumbing.extras import FLEET_INSTALL, fleet_extra_missing


def test_a_missing_fleet_module_names_the_extra_and_another_does_not():
    message = fleet_extra_missing(ModuleNotFoundError("no psutil", name="psutil"), "warmfleet up")
    assert message == f"warmfleet up: needs the fleet extra (psutil is not installed): {FLEET_INSTALL}"
    assert fleet_extra_missing(ModuleNotFoundError("no kubernetes.client", name="kubernetes.client"), "x")
    assert fleet_extra_missing(ModuleNotFoundError("a typo", name="warmfleet.nope"), "x") is None


def test_the_cli_says_which_extra_a_server_command_needs(monkeypatch, capsys):
    def gc_without_prometheus(args):
        raise ModuleNotFoundError("No module named 'prometheus_client'", name="prometheus_client")

    monkeypatch.setattr(main, "cmd_gc", gc_without_prometheus)
    assert main.main(["gc"]) == main.EXIT_USAGE
    assert FLEET_INSTALL in capsys.readouterr().err


def test_batch_runs_without_rich(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "rich.console", None)  # an import of it now fails
    with batch.make_progress(True) as progress:
        progress.update(progress.add_task("jobs", total=3), advance=1)
    assert "no progress bar" in capsys.readouterr().err
    with pytest.raises(ImportError):
        import rich.console  # noqa: F401
