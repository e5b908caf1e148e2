"""What a slot may see and change of its pod: the pod's events, counters and shared
connections. The Supervisor is a PodState; a Slot gets only this narrow view, so the
slot never imports the supervisor (which starts the slots)."""

from __future__ import annotations

import asyncio

from redis.asyncio import Redis

from executor.runner_handle import RunnerHandle
from warmfleet.settings import ExecutorSettings
from executor.store import ResultStore
from warmfleet.contract.messages import Status
from warmfleet.contract.schema import Result

# A job that hit one of these limits pushed against the sandbox and may have left state
# behind: it "taints" the pod, which the GC sidecar may recycle (its gc.recycle_tainted setting).
TAINTING = frozenset({Status.TIMEOUT, Status.CPU_LIMIT, Status.MEMORY_LIMIT, Status.OUTPUT_LIMIT})


class PodState:
    def __init__(self, settings: ExecutorSettings, redis: Redis, store: ResultStore) -> None:
        self.settings = settings
        self.redis = redis
        self.store = store
        self.state_changed = asyncio.Event()  # publish now: start-up, breakage, drain, exits
        self.slots_flipped = False  # publish soon: a slot went ready <-> busy
        self.draining = asyncio.Event()  # stop reading new entries
        self.stopping = asyncio.Event()  # give up on in-flight work
        self.runner_pids: dict[int, RunnerHandle] = {}  # to hand a reaped runner its exit status
        self.jobs_done = 0
        self.tainted = 0
        self.dead_letters = 0
        self.duplicates = 0
        self.orphans_reaped = 0

    def note_result(self, result: Result) -> None:
        """Called by a slot for every job it answered."""
        self.jobs_done += 1
        if result.status in TAINTING:
            self.tainted += 1

    async def wait_draining(self, timeout: float) -> None:
        try:
            await asyncio.wait_for(self.draining.wait(), timeout)
        except TimeoutError:
            pass
