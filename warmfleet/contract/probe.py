"""Liveness and readiness of one executor pod, from a health file its supervisor writes.

The supervisor's heartbeat loop rewrites the file (atomically) on every turn, whether or
not Redis answered, so:

- live  = the file was rewritten recently: the supervisor's event loop makes progress.
  No Redis round trip: a Redis outage must not get a healthy pod restarted.
- ready = live, the last Redis round trip succeeded recently, at least one slot has a
  spare child forked ahead, and the pod is not draining.

Jobs cannot forge it: the file lives in a directory only the supervisor's uid may write
(jobs run as per-slot uids). This module imports only the standard library so that
`warmfleet probe` and `python -m warmfleet.contract.probe` start fast (an exec probe in gVisor
pays for every import).
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time

DEFAULT_HEALTH_FILE = "/run/warmfleet/health.json"
# A heartbeat turn happens at least every heartbeat_s (1 s by default): 30 s of silence
# means a stuck loop, not a slow one.
DEFAULT_STALE_S = 30.0


def write(path: str, state: dict) -> None:
    """Atomically replace the health file with `state` plus a timestamp."""
    directory = os.path.dirname(path) or "."
    _harden(directory)
    fd, tmp = tempfile.mkstemp(prefix=".health-", dir=directory)
    try:
        os.fchmod(fd, 0o644)  # the sidecar (another uid) reads it; nobody else may write it
        with os.fdopen(fd, "w") as f:
            json.dump({**state, "ts": time.time()}, f)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


_hardened: set[str] = set()


def _harden(directory: str) -> None:
    """A Kubernetes emptyDir is mode 0777: jobs (other uids) could replace the file in it.
    Its owner (the supervisor) takes write access away from everyone else, once."""
    if directory in _hardened:
        return
    try:
        st = os.stat(directory)
        if st.st_uid == os.geteuid() and st.st_mode & 0o022:
            os.chmod(directory, (st.st_mode & 0o7755) | 0o1000)  # no group/other write; sticky
    except OSError:
        pass
    _hardened.add(directory)


def read(path: str) -> dict | None:
    try:
        with open(path) as f:
            data = json.load(f)
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def check_live(state: dict | None, stale_s: float = DEFAULT_STALE_S, now: float | None = None) -> tuple[bool, str]:
    if state is None:
        return False, "no health file: the supervisor has not started or cannot write it"
    now = time.time() if now is None else now
    age = now - float(state.get("ts", 0))
    if age > stale_s:
        return False, f"supervisor heartbeat is {age:.1f} s old (limit {stale_s} s)"
    if state.get("stopped"):
        return False, "supervisor has stopped"
    return True, f"supervisor heartbeat {age:.1f} s old"


def check_ready(state: dict | None, stale_s: float = DEFAULT_STALE_S, now: float | None = None) -> tuple[bool, str]:
    live, why = check_live(state, stale_s, now)
    if not live:
        return False, why
    assert state is not None
    now = time.time() if now is None else now
    redis_ok_at = state.get("redis_ok_at")
    if redis_ok_at is None or now - float(redis_ok_at) > stale_s:
        return False, "not connected to redis"
    if state.get("draining"):
        return False, "draining"
    if int(state.get("ready", 0)) < 1:
        return False, "no slot has a spare child ready"
    return True, f"{state.get('ready')} of {state.get('slots')} slots ready"


CHECKS = {"live": check_live, "ready": check_ready}


def main(argv: list[str] | None = None) -> int:
    """`python -m warmfleet.contract.probe live|ready [--file PATH] [--stale-s S]`: exit 0 or 1."""
    import argparse

    p = argparse.ArgumentParser(prog="warmfleet probe", description="Executor health from its heartbeat file.")
    add_arguments(p)
    return run(p.parse_args(argv))


def add_arguments(p) -> None:
    p.add_argument("check", choices=sorted(CHECKS))
    # No settings import here (an exec probe pays for every import): the manifest passes --file.
    p.add_argument("--file", default=DEFAULT_HEALTH_FILE, help="the executor's health_file setting")
    p.add_argument("--stale-s", type=float, default=DEFAULT_STALE_S)
    p.add_argument("--quiet", action="store_true")


def run(args) -> int:
    ok, why = CHECKS[args.check](read(args.file), args.stale_s)
    if not args.quiet:
        print(f"{args.check}: {'ok' if ok else 'FAIL'}: {why}", file=sys.stdout if ok else sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
