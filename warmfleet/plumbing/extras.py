"""Which extra a missing module comes with. `pip install warmfleet` is the client alone;
the server roles (executor, GC sidecar, egress proxy, `warmfleet up`) import the modules
of `warmfleet[fleet]`, and say so when they are missing instead of a bare traceback."""

from __future__ import annotations

import sys
from typing import NoReturn

# The top-level modules warmfleet[fleet] (pyproject.toml) installs.
FLEET_MODULES = frozenset({"psutil", "prometheus_client", "h11", "kubernetes", "rich", "yaml"})
FLEET_INSTALL = "pip install 'warmfleet[fleet]'"


def fleet_extra_missing(exc: ModuleNotFoundError, what: str) -> str | None:
    """The message for `what` failing on a module of the fleet extra, or None when the
    missing module is another (a real bug, to raise)."""
    name = exc.name or ""
    if name.split(".")[0] not in FLEET_MODULES:
        return None
    return f"{what}: needs the fleet extra ({name} is not installed): {FLEET_INSTALL}"


def exit_naming_the_extra(exc: ModuleNotFoundError, what: str, code: int = 2) -> NoReturn:
    """A server role's `python -m` entry point failed on an import: exit with the one line
    that names the extra, or re-raise when the missing module is not the fleet extra's."""
    if (message := fleet_extra_missing(exc, what)) is None:
        raise exc
    print(message, file=sys.stderr)
    sys.exit(code)
