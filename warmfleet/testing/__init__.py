"""warmfleet.testing: a stand-in fleet for unit tests of code built on the client.

    from warmfleet.testing import StandInFleet

    def test_grader_reports_failures():
        with StandInFleet() as fleet, fleet.client() as client:
            assert Grader(client).grade("assert 1 == 2") == "failed"

THE STAND-IN ISOLATES NOTHING. It runs jobs and session calls as plain child processes
of the test, as the test's user, with the test's files and network in reach: no gVisor,
no per-job uid, no namespaces. Starting one issues a NotIsolatedWarning. Use it for
code you trust (your tests' snippets), never to judge what a sandbox would stop: tests
of sandbox behaviour need a real fleet (`warmfleet up`).

What it does keep from a fleet: the real client protocol on an in-process fake Redis
(fakeredis, with Lua: `pip install 'warmfleet[testing]'`), the fleet's own lean runner
and session process, so the same Result shapes and statuses (ok, error, timeout,
rejected, output_limit; cpu_limit and memory_limit as far as rlimits in a plain process
enforce them; cell outputs; out/ files; streaming), and sessions that keep their globals, end with
SessionEnded (closed, idle timeout, lifetime: time them with a ManualClock) or
SessionLost (kill_session_process). Guide: docs/guides/testing.md.
"""

from warmfleet.testing.fleet import ManualClock, NotIsolatedWarning, StandInFleet

__all__ = ["ManualClock", "NotIsolatedWarning", "StandInFleet"]
