"""The pool's backlog as Redis reports it: read by `warmfleet status` and the executor's
stream gauges alike, so both show the same numbers."""

from __future__ import annotations

from warmfleet.contract import keys


def group_backlog(groups: list[dict]) -> tuple[int | None, int]:
    """(lag, pending) of the fleet's consumer group in an XINFO GROUPS reply; lag is None
    when Redis cannot tell (entries deleted past the group's last-delivered id)."""
    for g in groups:
        if g.get("name") == keys.CONSUMER_GROUP:
            return g.get("lag"), g.get("pending") or 0
    return 0, 0


def entry_age_s(entry_id: str, now: float) -> float:
    """Seconds since a stream entry was added (its id starts with the ms timestamp)."""
    return round(max(0.0, now - int(entry_id.split("-")[0]) / 1000), 3)
