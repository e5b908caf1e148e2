"""What every settings role is made of: a field with its description, and the base class
that reads WARMFLEET_* variables (pydantic-settings).

A role (executor, client, sidecar, egress proxy, local fleet) is a class composed of the
groups in this package (common.py, executor.py, ...): each field is written once, in one
group, so one name has one default and one meaning wherever it is read.
"""

from __future__ import annotations

import contextvars
from typing import Any

from pydantic import Field, PrivateAttr
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

PREFIX = "WARMFLEET_"
NESTED = "__"  # WARMFLEET_LIMITS__MAX_TIMEOUT: a field of a nested model

# Set by Role.from_values: the values given are the whole story (a launcher writing
# another process's settings must not pick up its own environment).
_values_only: contextvars.ContextVar[bool] = contextvars.ContextVar("warmfleet_settings_values_only", default=False)


def setting(default: Any = ..., description: str = "", *, secret: bool = False, default_text: str | None = None,
            **constraints: Any) -> Any:
    """A field of the tree. `secret`: masked by `warmfleet config`; `default_text`: how the
    reference page shows a default computed at start (a host name, an interpreter path)."""
    extra: dict[str, Any] = {}
    if secret:
        extra["secret"] = True
    if default_text is not None:
        extra["default_text"] = default_text
    if callable(default) and not isinstance(default, type):
        return Field(default_factory=default, description=description, json_schema_extra=extra or None, **constraints)
    return Field(default, description=description, json_schema_extra=extra or None, **constraints)


class Role(BaseSettings):
    """One process's branch of the tree. Read it with warmfleet.settings.load(Role), which
    also refuses unknown WARMFLEET_* names and records where each value came from;
    constructing it directly reads the environment only (tests, libraries)."""

    # extra="ignore": the environment holds other roles' names too; load() checks every
    # WARMFLEET_* name against the whole tree instead.
    model_config = SettingsConfigDict(env_prefix=PREFIX, env_nested_delimiter=NESTED, extra="ignore")
    # Variable name -> where its value came from (loader.Origin); filled by load().
    _origins: dict[str, Any] = PrivateAttr(default_factory=dict)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        if _values_only.get():
            return (init_settings,)
        return (init_settings, env_settings, dotenv_settings)

    @classmethod
    def from_values(cls, **values: Any):
        """These values, validated, and nothing from this process's environment or files:
        what a launcher writes for another process (to_env) starts here."""
        token = _values_only.set(True)
        try:
            return cls(**values)
        finally:
            _values_only.reset(token)


def is_secret(info: Any) -> bool:
    extra = info.json_schema_extra
    return isinstance(extra, dict) and bool(extra.get("secret"))


def default_text(info: Any) -> str | None:
    extra = info.json_schema_extra
    return extra.get("default_text") if isinstance(extra, dict) else None
