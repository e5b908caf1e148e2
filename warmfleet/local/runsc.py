"""Which runsc (gVisor) this machine has, and whether it can run a fleet on a platform.

Checked once when a local fleet starts (`warmfleet up`, `warmfleet bench`):

- Builds older than MIN_BUILD are refused: 20221219 (Debian 12's package) is the oldest
  build this project's suite has passed on; nothing older has been tried.
- Builds older than RECOMMENDED_BUILD run, with a warning: Debian 13's 20240729 gives
  ~1.3x the jobs/s of 20221219 under ptrace on the same machine, and has systrap.
- A platform the build does not list (`runsc flags`) is refused, before any sandbox starts.

The platform (how the Sentry intercepts the sandbox's syscalls) is chosen per fleet.
The platform setting's default (DEFAULT_PLATFORM, warmfleet/settings/local.py) is the one
measured fastest for warmfleet on these machines (the platforms table in docs/benchmarks/):
inside gVisor each job is a fork, and a fork costs 2-3x more under
systrap than under ptrace, which outweighs systrap's cheaper syscalls; KVM hangs in
these VMs (nested virtualisation).
"""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass

from warmfleet.local.sandbox import RunscMissing, find_runsc

PLATFORMS = ("ptrace", "systrap", "kvm")
MIN_BUILD = 20221219
RECOMMENDED_BUILD = 20240729


class RunscUnsuitable(RunscMissing):
    """runsc is there but cannot run this fleet (too old, or without the platform asked for)."""


@dataclass(frozen=True)
class RunscInfo:
    path: str
    version: str  # as runsc prints it, e.g. "0.0~20240729.0"
    build: int  # the release date in that version, 0 if none could be read
    platforms: tuple[str, ...]  # what `runsc flags` lists, its own default first
    default_platform: str


def parse_version(text: str) -> tuple[str, int]:
    """`runsc --version` -> ("0.0~20240729.0", 20240729). Upstream builds print "release-20240729.0"."""
    first = text.strip().splitlines()[0] if text.strip() else ""
    version = first.removeprefix("runsc version ").strip()
    date = re.search(r"(20\d{6})", version)
    return version, int(date.group(1)) if date else 0


def parse_platforms(flags_text: str) -> tuple[tuple[str, ...], str]:
    """The platforms named in `runsc flags`' help for -platform, and the build's default."""
    m = re.search(r"specifies which platform to use: ([^.\n]*)", flags_text)
    if not m:
        return ("ptrace",), "ptrace"  # every build has ptrace
    names, default = [], ""
    for item in m.group(1).split(","):
        name = item.strip().split(" ")[0]
        if name:
            names.append(name)
            if "(default)" in item:
                default = name
    return tuple(names), default or names[0]


def inspect(path: str | None = None) -> RunscInfo:
    path = path or find_runsc()
    version_out = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=30).stdout
    flags_out = subprocess.run([path, "flags"], capture_output=True, text=True, timeout=30)
    version, build = parse_version(version_out)
    platforms, default = parse_platforms(flags_out.stdout + flags_out.stderr)
    return RunscInfo(path, version, build, platforms, default)


def check(info: RunscInfo, platform: str) -> list[str]:
    """Raise RunscUnsuitable if this runsc cannot serve a fleet on `platform`; return warnings."""
    if info.build and info.build < MIN_BUILD:
        raise RunscUnsuitable(
            f"runsc {info.version} at {info.path} is older than {MIN_BUILD}, the oldest build warmfleet "
            f"is tested on. Run scripts/setup (it installs the newest runsc the distribution offers)."
        )
    if platform not in info.platforms:
        raise RunscUnsuitable(
            f"runsc {info.version} has no {platform!r} platform (it offers {', '.join(info.platforms)}). "
            f"Pick one of those with --platform, or run scripts/setup for a newer runsc."
        )
    warnings = []
    if not info.build:
        warnings.append(f"could not read a build date from runsc's version {info.version!r}; not checked")
    elif info.build < RECOMMENDED_BUILD:
        warnings.append(
            f"runsc {info.version} is older than {RECOMMENDED_BUILD}: it works but is slower (~1.3x fewer jobs/s "
            f"measured) and has no systrap; scripts/setup installs a newer one"
        )
    return warnings
