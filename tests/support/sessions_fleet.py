"""A fleet for session tests: one pod, one job slot, room for 4 sessions, and a short
session lease (10 s, the default; a fork bomb in one session must not cost its neighbours theirs) so a dead pod's sessions are reported lost within seconds."""

from __future__ import annotations

import os

SESSION_ENV = {"WARMFLEET_SESSION_LEASE_S": "10", "WARMFLEET_SESSION_DRAIN_S": "3", "WARMFLEET_KILL_GRACE_S": "0.5"}


def start_fleet(env: dict[str, str] | None = None, **overrides):
    """`env`: more WARMFLEET_* settings for the pods (the fleet's executor_env, which a
    test may change before a replacement pod starts)."""
    from warmfleet.local.fleet import FleetSettings, LocalFleet

    env = {**SESSION_ENV, **(env or {})}
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        f = LocalFleet(FleetSettings(**{"pods": 1, "slots": 1, "sessions": 4, "drain_timeout_s": 20, **overrides}))
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    f.start(ready_timeout=60)
    return f
