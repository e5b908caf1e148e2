"""`warmfleet up --pools k8s/pools.yaml --pool NAME`: one pool of the Kubernetes pool
definitions run locally, so a pool is defined once for both runtimes. Taken from it:
the pool's name, slots, job environment (its requirements file), preload list and egress
policy."""

from __future__ import annotations

import os

import yaml


class PoolsError(ValueError):
    """The pools file cannot be read, or has no such pool; the message says which."""


def local_settings(pools_file: str, pool: str) -> dict:
    """FleetSettings fields for `pool` from a pools.yaml."""
    try:
        with open(pools_file) as f:
            definition = yaml.safe_load(f) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise PoolsError(f"cannot read pools file {pools_file}: {exc}") from None
    pools = {p.get("name"): p for p in definition.get("pools") or []}
    if pool not in pools:
        raise PoolsError(f"pool {pool!r} is not in {pools_file} (it has: {', '.join(map(str, pools)) or 'none'})")
    p = pools[pool]
    out: dict = {"pool": pool, "slots": int(p.get("slots", 2)), "preload": list(p.get("preload") or [])}
    egress = p.get("egress") or "none"  # egress/policy.py: "none" or a list of entries
    out["egress_allow"] = egress if isinstance(egress, str) else ",".join(str(e) for e in egress)
    if p.get("jobEnv"):
        env_file = (definition.get("jobEnvs") or {}).get(p["jobEnv"])
        if env_file is None:
            raise PoolsError(f"pool {pool!r} names jobEnv {p['jobEnv']!r}, which jobEnvs in {pools_file} does not define")
        out["requirements"] = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(pools_file)), env_file))
    return out
