"""The pod supervisor's exit codes, named (kept apart so the boot stage can use them
before the supervisor's heavy imports)."""

import enum


class ExitCode(enum.IntEnum):
    OK = 0
    DRAIN_TIMEOUT = 3  # jobs were still running at the drain deadline and were killed
    HARD_STOP = 4  # a second signal arrived while draining
    REDIS_UNAVAILABLE = 5  # could not reach Redis at start-up
    CONFIG = 78  # EX_CONFIG
