"""`warmfleet config`: the effective settings of a role, where each came from, secrets masked."""

from __future__ import annotations

import json
import urllib.parse
from typing import Any

from warmfleet.settings.base import Role, is_secret
from warmfleet.settings.env import env_value
from warmfleet.settings.loader import Origin, origins
from warmfleet.settings.tree import env_name, leaves

MASK = "****"
UNSET = "(unset)"


def mask(value: Any) -> str:
    """A secret: a URL keeps its scheme and host, only its password is hidden."""
    text = env_value(value)
    parsed = urllib.parse.urlsplit(text)
    if parsed.scheme and "://" in text:
        if parsed.password is None:
            return text
        host = parsed.netloc.rsplit("@", 1)[1]
        user = parsed.username or ""
        return urllib.parse.urlunsplit(parsed._replace(netloc=f"{user}:{MASK}@{host}"))
    return MASK


def rows(settings: Role) -> list[tuple[str, str, str]]:
    """(variable, effective value, origin) for every variable the role reads."""
    where = origins(settings)
    out = []
    for field, sub, info in leaves(type(settings)):
        value = getattr(settings, field)
        if sub is not None:
            value = getattr(value, sub)
        secret = is_secret(type(settings).model_fields[field]) or is_secret(info)
        shown = UNSET if value is None else (mask(value) if secret else env_value(value))
        name = env_name(field, sub)
        out.append((name, shown, where.get(name, Origin.DEFAULT).value))
    return out


def render(settings: Role, as_json: bool = False) -> str:
    table = rows(settings)
    if as_json:
        return json.dumps([{"name": n, "value": None if v == UNSET else v, "origin": o} for n, v, o in table], indent=2)
    table = [("VARIABLE", "VALUE", "FROM"), *table]
    width = max(len(n) for n, _, _ in table)
    vwidth = min(48, max(len(v) for _, v, _ in table))
    return "\n".join(f"{n:<{width}}  {v:<{vwidth}}  {o}" for n, v, o in table)
