"""The one serializer: settings -> the WARMFLEET_* variables that reproduce them, for a
launcher writing another process's environment or settings file (local pods, the local
egress proxy, the Kubernetes manifests). load() reads back exactly what this writes."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from typing import Any

from pydantic import BaseModel

from warmfleet.settings.base import Role
from warmfleet.settings.tree import FIELD_ORDER, env_name


def env_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, dict, tuple)):
        return json.dumps(value)
    return str(value)


def to_env(settings: Role, fields: Iterable[str] | None = None) -> dict[str, str]:
    """The variables for the fields that were set (given, or read from the environment or a
    file), limited to `fields` if given; unset fields are left to the reader's defaults
    (a host name, an interpreter path: the reading process's own). None is never written:
    every optional setting defaults to None."""
    wanted = settings.model_fields_set if fields is None else settings.model_fields_set & set(fields)
    out: dict[str, str] = {}
    for field in FIELD_ORDER:  # the tree's order: stable files and manifests
        if field not in wanted:
            continue
        value = getattr(settings, field)
        if value is None:
            continue
        if isinstance(value, BaseModel):
            for sub in type(value).model_fields:
                if sub in value.model_fields_set:
                    out[env_name(field, sub)] = env_value(getattr(value, sub))
        else:
            out[env_name(field)] = env_value(value)
    return out


def set_values(settings: Role, fields: Iterable[str]) -> dict[str, Any]:
    """The values of `fields` that were set in `settings`: what a launcher passes on to a
    process of another role (Role.from_values), unset ones left to that process's defaults."""
    return {f: getattr(settings, f) for f in settings.model_fields_set & set(fields)}


def write_env_file(path: str, env: Mapping[str, str]) -> None:
    """A dotenv file of `env`, mode 0600, never through a symlink (it holds secrets)."""
    with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600), "w") as f:
        for key, value in env.items():
            f.write(f"{key}={json.dumps(value)}\n")  # double-quoted: dotenv reads JSON's escapes back
