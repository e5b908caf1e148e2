"""`warmfleet up --pools`: a pool of k8s/pools.yaml run locally takes its slots, job
environment and preload from the same definition the Kubernetes manifests come from."""

from __future__ import annotations

import os

import pytest

from warmfleet.local.pools import PoolsError, local_settings

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
POOLS = os.path.join(ROOT, "k8s", "pools.yaml")


def test_the_example_data_science_pool_names_the_example_env():
    s = local_settings(POOLS, "data-analysis")
    assert s["requirements"] == os.path.join(ROOT, "envs", "data-science.txt")
    assert s["preload"] == ["numpy", "pandas", "matplotlib.pyplot"]
    assert s["pool"] == "data-analysis" and s["slots"] >= 1
    assert s["egress_allow"] == "packages.example.com:443,api.example.com:443"  # the same policy as on Kubernetes


def test_a_pool_without_env_runs_on_the_stdlib():
    assert local_settings(POOLS, "default") == {"pool": "default", "slots": 4, "preload": [], "egress_allow": "none"}


def test_unknown_pool_or_env_is_a_clear_error(tmp_path):
    with pytest.raises(PoolsError, match="'nope' is not in .* default, data-analysis"):
        local_settings(POOLS, "nope")
    bad = tmp_path / "pools.yaml"
    bad.write_text("pools:\n  - {name: p, slots: 1, jobEnv: ghost}\n")
    with pytest.raises(PoolsError, match="jobEnv 'ghost'"):
        local_settings(str(bad), "p")
    with pytest.raises(PoolsError, match="cannot read pools file"):
        local_settings(str(tmp_path / "missing.yaml"), "p")
