"""Job environments built from a requirements file: cached by content, built atomically,
world-readable; a bad file refuses with pip's own error and leaves nothing behind."""

from __future__ import annotations

import os
import stat

import pytest

from warmfleet.local.jobenv import MARKER, EnvBuildError, base_python, check_preload, ensure_env, env_key


def test_key_follows_the_content():
    python = base_python()
    assert env_key(b"numpy==2.4.6\n", python) == env_key(b"numpy==2.4.6\n", python)
    assert env_key(b"numpy==2.4.6\n", python) != env_key(b"numpy==2.4.5\n", python)


@pytest.mark.timeout(120)
def test_build_is_cached_by_content_and_world_readable(tmp_path):
    # No package to fetch: the env holds only what the venv brings, so this runs offline.
    req = tmp_path / "req.txt"
    req.write_text("# nothing yet\n")
    cache = tmp_path / "cache"
    env = ensure_env(str(req), cache_root=str(cache))
    assert os.path.isfile(os.path.join(env.root, MARKER))
    assert os.path.isdir(env.site_packages)
    assert not os.path.exists(os.path.join(env.site_packages, "pip")), "jobs must not get pip"
    for dirpath, dirnames, filenames in os.walk(env.root):
        for name in dirnames + filenames:
            mode = os.lstat(os.path.join(dirpath, name)).st_mode
            if not stat.S_ISLNK(mode):
                assert mode & 0o004 and not mode & 0o022, (dirpath, name, oct(mode))
    assert ensure_env(str(req), cache_root=str(cache)) == env  # cached: same directory
    req.write_text("# something else\n")
    assert ensure_env(str(req), cache_root=str(cache)).root != env.root


@pytest.mark.timeout(180)
def test_an_executor_without_pip_builds_with_the_envs_own_and_removes_it(tmp_path, monkeypatch):
    from warmfleet.local import jobenv

    monkeypatch.setattr(jobenv, "_executor_has_pip", lambda: False)
    req = tmp_path / "req.txt"
    req.write_text("# nothing\n")
    env = ensure_env(str(req), cache_root=str(tmp_path / "cache"))
    assert os.path.isfile(os.path.join(env.root, MARKER))
    assert not os.path.exists(os.path.join(env.site_packages, "pip")), "pip removed after the build"


@pytest.mark.timeout(120)
def test_bad_requirements_refuse_with_pips_error_and_leave_nothing(tmp_path):
    req = tmp_path / "bad.txt"
    req.write_text("numpy=>=>1 !!\n")
    cache = tmp_path / "cache"
    with pytest.raises(EnvBuildError) as err:
        ensure_env(str(req), cache_root=str(cache))
    assert "pip install failed" in str(err.value)
    assert "Invalid requirement" in str(err.value)
    assert sorted(os.listdir(cache)) == [".lock"]  # no half-built env, no temporary left


def test_missing_requirements_file_is_a_clear_error(tmp_path):
    with pytest.raises(EnvBuildError, match="cannot read requirements file"):
        ensure_env(str(tmp_path / "nope.txt"), cache_root=str(tmp_path))


@pytest.mark.timeout(60)
def test_preload_is_checked_before_start():
    check_preload(None, ["json", "decimal"])  # the stdlib needs no environment
    with pytest.raises(EnvBuildError, match="No module named 'numpy_no_such'"):
        check_preload(None, ["json", "numpy_no_such"])
    with pytest.raises(EnvBuildError, match="not a module name"):
        check_preload(None, ["os; import sys"])
