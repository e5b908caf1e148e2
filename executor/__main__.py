"""``python -m executor``: run one pod supervisor with settings from WARMFLEET_* variables."""

from __future__ import annotations

import asyncio
import logging
import os
import sys

from pydantic import ValidationError


def main() -> int:
    from warmfleet import logs

    logs.setup()
    log = logging.getLogger("warmfleet.executor")
    from executor.settings import ExecutorSettings
    from executor.supervisor import ExitCode, Supervisor

    try:
        settings = ExecutorSettings.load()
    except ValidationError as exc:
        log.error("invalid settings", extra={"error": str(exc)})
        return ExitCode.CONFIG
    if settings.drop_privileges and os.geteuid() != 0:
        log.warning(
            "NOT ROOT: jobs will run as the executor's own uid, without per-slot uids "
            "or leftover-process cleanup; run as root (inside gVisor) for isolation"
        )
        settings = settings.model_copy(update={"drop_privileges": False})
    return int(asyncio.run(Supervisor(settings).run()))


if __name__ == "__main__":
    sys.exit(main())
