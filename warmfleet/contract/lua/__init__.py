"""The Lua scripts warmfleet runs in Redis, one `.lua` file each beside this module.

Each file's header says what it does and names its KEYS and ARGV; the module that runs it
registers it by name (`script("job_result_store")`). Kept as files, not Python strings, so
that a script is read, diffed and reviewed as the Lua it is, and shipped as package data."""

from __future__ import annotations

from functools import cache
from importlib import resources


@cache
def script(name: str) -> str:
    """The source of warmfleet/contract/lua/NAME.lua."""
    return resources.files(__name__).joinpath(f"{name}.lua").read_text(encoding="utf-8")
