"""The HTTP service's settings: its role in the settings tree (warmfleet/settings/http.py),
read from the environment like every role's (the Redis URL, the http_* group)."""

from __future__ import annotations

from warmfleet.settings.http import HttpSettings


def http_settings(redis_url: str | None = None, pools: list[str] | None = None, **values) -> HttpSettings:
    """Settings given in code (tests, `up --http`, the bench): the group's names without
    their `http_` prefix, nothing read from the environment."""
    given = {f"http_{k}": v for k, v in values.items()}
    if pools is not None:
        given["http_pools"] = list(pools)
    return HttpSettings.from_values(redis_url=redis_url, **given)


__all__ = ["HttpSettings", "http_settings"]
