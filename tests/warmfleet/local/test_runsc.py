"""The runsc check: version and platforms read from the real runsc, old builds and
missing platforms refused with what to do."""

from __future__ import annotations

import pytest

from warmfleet.local import runsc
from warmfleet.settings import DEFAULT_PLATFORM

FLAGS_2024 = """  -platform string
    \tspecifies which platform to use: systrap (default), ptrace, kvm. (default "systrap")
  -platform_device_path string"""


def test_reads_the_installed_runsc():
    info = runsc.inspect()
    assert info.build >= runsc.MIN_BUILD, info  # scripts/setup installs a supported build
    assert "ptrace" in info.platforms and info.default_platform in info.platforms
    assert runsc.check(info, DEFAULT_PLATFORM) == [] or info.build < runsc.RECOMMENDED_BUILD


def test_parses_debian_and_upstream_versions():
    assert runsc.parse_version("runsc version 0.0~20240729.0\nspec: 1.2.0\n") == ("0.0~20240729.0", 20240729)
    assert runsc.parse_version("runsc version release-20250106.0\nspec: 1.1.0") == ("release-20250106.0", 20250106)
    assert runsc.parse_version("runsc version custom-build\n") == ("custom-build", 0)


def test_parses_platforms_and_the_builds_default():
    assert runsc.parse_platforms(FLAGS_2024) == (("systrap", "ptrace", "kvm"), "systrap")
    old = '  -platform string\n    \tspecifies which platform to use: ptrace (default), kvm. (default "ptrace")'
    assert runsc.parse_platforms(old) == (("ptrace", "kvm"), "ptrace")


def _info(build: int, platforms=("systrap", "ptrace", "kvm")) -> runsc.RunscInfo:
    return runsc.RunscInfo("/usr/bin/runsc", f"0.0~{build}.0", build, platforms, platforms[0])


def test_refuses_builds_older_than_the_oldest_tested():
    with pytest.raises(runsc.RunscUnsuitable, match="older than 20221219.*scripts/setup"):
        runsc.check(_info(20211101), "ptrace")


def test_warns_on_an_old_but_supported_build_and_accepts_a_new_one():
    (warning,) = runsc.check(_info(20221219, ("ptrace", "kvm")), "ptrace")
    assert "older than 20240729" in warning and "systrap" in warning
    assert runsc.check(_info(20240729), "systrap") == []


def test_refuses_a_platform_the_build_lacks():
    with pytest.raises(runsc.RunscUnsuitable, match="no 'systrap' platform .it offers ptrace, kvm"):
        runsc.check(_info(20221219, ("ptrace", "kvm")), "systrap")
