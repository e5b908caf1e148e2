"""A fleet for session tests: one pod, one job slot, room for 4 sessions, and a short
session lease (10 s, the default; a fork bomb in one session must not cost its neighbours theirs) so a dead pod's sessions are reported lost within seconds."""

from __future__ import annotations

from support.fleet_faults import env as environment

SESSION_ENV = {"WARMFLEET_SESSION_LEASE_S": "10", "WARMFLEET_SESSION_DRAIN_S": "3", "WARMFLEET_KILL_GRACE_S": "0.5"}


def start_fleet(env: dict[str, str] | None = None, **overrides):
    """`env`: more WARMFLEET_* settings for the pods (the fleet's executor_values, which a
    test may change before a replacement pod starts)."""
    from warmfleet.local.fleet import LocalFleet
    from warmfleet.settings import FleetSettings

    with environment(**{**SESSION_ENV, **(env or {})}):
        f = LocalFleet(FleetSettings(**{"pods": 1, "slots": 1, "sessions": 4, "drain_timeout_s": 20, **overrides}))
    f.start(ready_timeout=60)
    return f
