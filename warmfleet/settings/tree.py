"""The whole tree: every WARMFLEET_* variable, the roles that read its branches, and the
names an environment may hold (anything else with the prefix is refused by load())."""

from __future__ import annotations

import functools
from typing import Any, Iterator

from pydantic import BaseModel

from warmfleet.settings.base import NESTED, PREFIX, Role
from warmfleet.settings.client import Celery, CelerySettings, ClientSettings, ClientTuning
from warmfleet.settings.common import Capacity, Connection, Draining, Files, Logging, PodIdentity
from warmfleet.settings.egress import EgressPolicy, EgressProxy, EgressSettings, EgressShared
from warmfleet.settings.executor import (
    Delivery, EgressRelay, ExecutorSettings, Metrics, SandboxReport, Sessions, Slots,
)
from warmfleet.settings.local import FleetSettings, Install, LocalRuntime
from warmfleet.settings.sidecar import Sidecar, SidecarSettings


class Settings(FleetSettings, Sidecar, ClientTuning, Celery, Install):
    """Every setting of every role: the reference page and the known names come from here."""


# The groups, in the order the reference page shows them.
GROUPS: tuple[type[BaseModel], ...] = (
    Connection, Logging, Files, Capacity, Draining, PodIdentity, Slots, Delivery, Sessions, SandboxReport, Metrics,
    EgressRelay, EgressShared, EgressPolicy, EgressProxy, LocalRuntime, Install, Sidecar, ClientTuning, Celery,
)

# Every field, in that order (files and manifests written by to_env follow it).
FIELD_ORDER: tuple[str, ...] = tuple(f for g in GROUPS for f in g.__annotations__)


# Role name (as `warmfleet config --role` spells it) -> its branch of the tree.
ROLES: dict[str, type[Role]] = {
    "up": FleetSettings,
    "executor": ExecutorSettings,
    "gc": SidecarSettings,
    "egress": EgressSettings,
    "client": ClientSettings,
    "celery": CelerySettings,
}


def env_name(field: str, sub: str | None = None) -> str:
    """WARMFLEET_SLOTS; with `sub`, a nested model's field: WARMFLEET_LIMITS__MAX_TIMEOUT."""
    return PREFIX + field.upper() + (NESTED + sub.upper() if sub else "")


def nested_model(annotation: Any) -> type[BaseModel] | None:
    return annotation if isinstance(annotation, type) and issubclass(annotation, BaseModel) else None


def leaves(cls: type[BaseModel]) -> Iterator[tuple[str, str | None, Any]]:
    """(field, sub-field or None, FieldInfo) for every variable a class reads, in the tree's order."""
    for name in (f for f in FIELD_ORDER if f in cls.model_fields):
        info = cls.model_fields[name]
        sub_model = nested_model(info.annotation)
        if sub_model is None:
            yield name, None, info
        else:
            for sub, sub_info in sub_model.model_fields.items():
                yield name, sub, sub_info


@functools.cache
def known_names() -> frozenset[str]:
    """Every variable name the tree reads, upper case (pydantic-settings matches case-insensitively);
    a nested model may also be set whole, as JSON (WARMFLEET_LIMITS)."""
    names = {env_name(f, s) for f, s, _ in leaves(Settings)}
    names |= {env_name(f) for f, info in Settings.model_fields.items() if nested_model(info.annotation)}
    return frozenset(names)


CONFIG_FILE = env_name("config_file")  # the one variable a launcher sets beside the file it names
