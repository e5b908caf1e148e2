"""The one loader: a role's branch from (highest first) the command line, the environment,
the dotenv file named by WARMFLEET_CONFIG_FILE, and the defaults; every WARMFLEET_* name
in the environment and the file checked against the tree, and where each value came from
kept for `warmfleet config`."""

from __future__ import annotations

import difflib
import enum
import os
import warnings
from collections.abc import Mapping
from typing import Any, TypeVar

from dotenv import dotenv_values
from pydantic import ValidationError

from warmfleet.settings.base import PREFIX, Role
from warmfleet.settings.tree import CONFIG_FILE, env_name, known_names, leaves

R = TypeVar("R", bound=Role)


class Origin(str, enum.Enum):
    DEFAULT = "default"
    ENVIRONMENT = "environment"
    FILE = "file"
    COMMAND_LINE = "command line"


class SettingsError(ValueError):
    """Settings a process must not start with; the message names the variables."""


class UnknownSetting(SettingsError):
    def __init__(self, unknown: list[tuple[str, str | None, str]]) -> None:
        self.unknown = unknown  # (name, closest known name or None, where it was set)
        super().__init__("; ".join(
            f"unknown setting {name} ({where})" + (f": did you mean {close}?" if close else "")
            for name, close, where in unknown
        ))


class UnknownSettingWarning(UserWarning):
    """A client (which must not crash over a stray variable) warns where a server refuses."""


def closest_known(name: str) -> str | None:
    found = difflib.get_close_matches(name.upper(), sorted(known_names()), n=1, cutoff=0.6)
    return found[0] if found else None


def unknown_names(names: Mapping[str, str], where: str) -> list[tuple[str, str | None, str]]:
    known = known_names()
    return [(n, closest_known(n), where) for n in names if n.upper().startswith(PREFIX) and n.upper() not in known]


def read_file(path: str | None) -> dict[str, str]:
    if not path:
        return {}
    if not os.path.isfile(path):
        raise SettingsError(f"{CONFIG_FILE} names {path}, which is not a readable file")
    return {k: v for k, v in dotenv_values(path).items() if v is not None}


def load(role: type[R], command_line: Mapping[str, Any] | None = None, *, strict: bool = True) -> R:
    """`role`'s settings. `command_line`: field values given as flags (they win). `strict`
    (servers, `warmfleet up`): an unknown WARMFLEET_* name raises UnknownSetting naming the
    closest known one; not strict (clients): it warns (UnknownSettingWarning) and goes on."""
    command_line = dict(command_line or {})
    environ = dict(os.environ)
    upper_env = {k.upper(): k for k in environ}
    config_file = command_line.get("config_file") or environ.get(upper_env.get(CONFIG_FILE, ""))
    try:
        from_file = read_file(config_file)
    except SettingsError as exc:
        if strict:
            raise
        warnings.warn(str(exc), UnknownSettingWarning, stacklevel=2)
        from_file, config_file = {}, None
    unknown = unknown_names(environ, "environment") + unknown_names(from_file, f"file {config_file}")
    if unknown:
        if strict:
            raise UnknownSetting(unknown)
        warnings.warn(str(UnknownSetting(unknown)), UnknownSettingWarning, stacklevel=2)
    try:
        settings = role(_env_file=config_file or None, **command_line)
    except ValidationError as exc:
        raise SettingsError(describe(exc)) from None
    upper_file = {k.upper() for k in from_file}
    settings._origins = {}
    for field, sub, _info in leaves(role):
        name = env_name(field, sub)
        whole = env_name(field)  # a nested model set whole, as JSON
        if field in command_line:
            origin = Origin.COMMAND_LINE
        elif name in upper_env or (sub and whole in upper_env):
            origin = Origin.ENVIRONMENT
        elif name in upper_file or (sub and whole in upper_file):
            origin = Origin.FILE
        else:
            origin = Origin.DEFAULT
        settings._origins[name] = origin
    return settings


def origins(settings: Role) -> dict[str, Origin]:
    """Variable name -> where its value came from, for settings made by load()."""
    return dict(settings._origins)


def describe(exc: ValidationError) -> str:
    """A validation error in the names users set (WARMFLEET_SLOTS, not `slots`)."""
    parts = []
    for err in exc.errors():
        loc = [str(p) for p in err["loc"]]
        where = env_name(loc[0], loc[1] if len(loc) > 1 else None) if loc else ""
        parts.append(f"{where}: {err['msg']}" if where else err["msg"].removeprefix("Value error, "))
    return "; ".join(parts)
