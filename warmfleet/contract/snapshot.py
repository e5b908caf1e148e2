"""A pod's published state: what its supervisor writes under keys.pod (JSON, with a TTL)
and every reader uses: `warmfleet status`, the readiness wait, the GC sidecar's policy
and lease, the local recycler, the metrics exporter, the tests.

The recycle lease's Lua (gc_sidecar/lease.py) reads three fields of it inside Redis:
`draining`, `ready` and `busy`, and counts exactly `serving_slots`; renaming one of them
here means changing the Lua too (tests/gc_sidecar/test_lease.py checks they agree).
"""

from __future__ import annotations

import enum
import json
from dataclasses import asdict, dataclass, field, fields, replace


class SlotState(str, enum.Enum):
    STARTING = "starting"
    READY = "ready"  # a child is forked ahead, waiting for a job
    BUSY = "busy"  # running a job
    BROKEN = "broken"  # its runner failed to start; being restarted
    STOPPED = "stopped"


@dataclass(frozen=True)
class SlotSnapshot:
    slot: int
    state: str  # a SlotState value
    runner_pid: int | None = None
    jobs_done: int = 0


@dataclass(frozen=True)
class PodSnapshot:
    pod_id: str
    slots: int = 0
    ready: int = 0
    busy: int = 0
    broken: int = 0
    draining: bool = False
    jobs_done: int = 0
    tainted: int = 0  # jobs that hit a limit (gc policy: recycle_tainted)
    dead_letters: int = 0
    duplicates: int = 0
    reclaimed: int = 0
    slot_states: tuple[SlotSnapshot, ...] = ()
    started_at: float | None = None
    # Sessions (executor/sessions/host.py): how many it may hold, hold, hold idle; ended by reason.
    sessions_capacity: int = 0
    sessions_open: int = 0
    sessions_idle: int = 0
    sessions_ended: dict[str, int] = field(default_factory=dict)
    sandbox: bool = False  # the supervisor saw gVisor's kernel
    # What runs the pod, as its start-up settings say (it cannot see them from inside gVisor).
    sandbox_runtime: str = ""
    sandbox_version: str = ""
    sandbox_platform: str = ""
    heartbeat: float | None = None  # when it was published (executor/store.py sets it)

    @property
    def serving_slots(self) -> int:
        """Warm capacity: slots ready for or running a job; none while draining."""
        return 0 if self.draining else self.ready + self.busy

    @property
    def fully_serving(self) -> bool:
        """Every slot serves: a replacement pod has taken over its share."""
        return not self.draining and self.ready + self.busy >= self.slots

    def replace(self, **changes: object) -> "PodSnapshot":
        return replace(self, **changes)

    def as_dict(self) -> dict:
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.as_dict())

    @classmethod
    def from_dict(cls, data: dict) -> "PodSnapshot":
        """Fields this version does not know are ignored (a newer pod during a rollout)."""
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        values["slot_states"] = tuple(
            SlotSnapshot(**{k: v for k, v in s.items() if k in _SLOT_FIELDS}) for s in data.get("slot_states") or ()
        )
        return cls(**values)

    @classmethod
    def from_json(cls, raw: str | bytes) -> "PodSnapshot":
        return cls.from_dict(json.loads(raw))


_SLOT_FIELDS = {f.name for f in fields(SlotSnapshot)}


def parse_all(raws: list[str | bytes | None]) -> list[PodSnapshot]:
    """The snapshots of an MGET over pod keys; a missing one (its TTL lapsed) is skipped."""
    return [PodSnapshot.from_json(raw) for raw in raws if raw is not None]


__all__ = ["PodSnapshot", "SlotSnapshot", "SlotState", "parse_all"]
