"""``python -m executor``: run one pod supervisor with its settings (warmfleet/settings/)."""

from __future__ import annotations

import logging
import os
import sys

# redis-py imports OpenTelemetry whenever it is installed (the MCP extra brings it) to
# offer client metrics this process never enables: ~50 ms of pod start inside gVisor.
# A None entry makes that import fail, and redis-py falls back as when it is absent.
sys.modules.setdefault("opentelemetry", None)


def main() -> int:
    from warmfleet.plumbing import logs

    logs.setup()
    log = logging.getLogger("warmfleet.executor")
    from executor import boot
    from executor.exitcodes import ExitCode
    from warmfleet.settings import ExecutorSettings, SettingsError, load

    try:
        settings = load(ExecutorSettings)
    except SettingsError as exc:  # an unknown name (with the closest known one), a bad value
        log.error("invalid settings", extra={"error": str(exc)})
        return ExitCode.CONFIG
    logs.setup(settings.log_level)
    if settings.drop_privileges and os.geteuid() != 0:
        log.warning(
            "NOT ROOT: jobs will run as the executor's own uid, without per-slot uids "
            "or leftover-process cleanup; run as root (inside gVisor) for isolation"
        )
        settings = settings.model_copy(update={"drop_privileges": False})
    # Runners first: they boot on the other core while redis, asyncio and prometheus load.
    try:
        spawned = boot.start(settings)
    except OSError as exc:  # no such interpreter, workspace not creatable: a setup error
        log.error("cannot start the slot runners", extra={"python": settings.python, "error": str(exc)})
        return ExitCode.CONFIG
    import asyncio

    from executor.supervisor import Supervisor
    from warmfleet.plumbing import tracing

    try:  # OTEL_TRACES_EXPORTER set: OpenTelemetry loads now, after the runners are spawned
        tracing.configure_from_env()
    except ImportError as exc:
        log.error("tracing asked for but unavailable", extra={"error": str(exc)})
        return ExitCode.CONFIG
    try:
        return int(asyncio.run(Supervisor(settings, spawned).run()))
    finally:
        tracing.shutdown()


if __name__ == "__main__":
    try:
        sys.exit(main())
    except ModuleNotFoundError as exc:  # a client-only install (pip install warmfleet): say which extra
        from executor.exitcodes import ExitCode
        from warmfleet.plumbing.extras import exit_naming_the_extra

        exit_naming_the_extra(exc, "python -m executor", ExitCode.CONFIG)
