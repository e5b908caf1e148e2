"""Job environments: the packages jobs import, built from a requirements file into a
cached, world-readable virtualenv keyed by the file's content.

The environment is separate from the executor's install: jobs see its site-packages
and the stdlib, never warmfleet or its dependencies. A build goes into a temporary
directory beside the cache entry and is renamed into place only when pip succeeded,
so a failed or interrupted build is never used. A lock file serialises builds of
concurrent `warmfleet up`s.
"""

from __future__ import annotations

import fcntl
import hashlib
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass

MARKER = "warmfleet-env.json"
# matplotlib's font list, built once with the environment: a runner that preloads pyplot
# copies it instead of scanning fonts at every pod start.
MPL_CACHE = os.path.join("share", "warmfleet", "matplotlib")
PIP_TIMEOUT_S = 1800


class EnvBuildError(RuntimeError):
    """The requirements could not be installed; the message carries pip's error."""


@dataclass(frozen=True)
class JobEnv:
    root: str

    @property
    def site_packages(self) -> str:
        return os.path.join(self.root, "lib", f"python{sys.version_info.major}.{sys.version_info.minor}", "site-packages")

    @property
    def python(self) -> str:
        return os.path.join(self.root, "bin", "python")

    @property
    def mpl_cache(self) -> str | None:
        path = os.path.join(self.root, MPL_CACHE)
        return path if os.path.isdir(path) else None


def default_cache_root() -> str:
    """Unless the env_cache setting says otherwise: /var/cache/warmfleet/envs for root
    (world-traversable, as job uids need), else the user's cache directory (--no-sandbox
    as a user)."""
    if os.geteuid() == 0:
        return "/var/cache/warmfleet/envs"
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "warmfleet", "envs")


def base_python() -> str:
    """The interpreter the executor runs on, without its venv: the job env's base, so
    its compiled packages match the runner that imports them."""
    return os.path.realpath(getattr(sys, "_base_executable", sys.executable))


def env_key(requirements: bytes, python: str) -> str:
    tag = f"{python}\0{sys.implementation.cache_tag}\0{sys.version}\0".encode()
    return hashlib.sha256(tag + requirements).hexdigest()[:20]


def ensure_env(requirements_file: str, cache_root: str | None = None, log=None) -> JobEnv:
    """The environment for this requirements file: from the cache, or built now."""
    try:
        with open(requirements_file, "rb") as f:
            requirements = f.read()
    except OSError as exc:
        raise EnvBuildError(f"cannot read requirements file {requirements_file}: {exc.strerror}") from None
    cache_root = os.path.abspath(cache_root or default_cache_root())
    python = base_python()
    final = os.path.join(cache_root, env_key(requirements, python))
    if os.path.isfile(os.path.join(final, MARKER)):
        return JobEnv(final)
    _makedirs_traversable(cache_root)
    with open(os.path.join(cache_root, ".lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another `up` may be building the same env
        if os.path.isfile(os.path.join(final, MARKER)):
            return JobEnv(final)
        if log:
            log(f"building the job environment from {requirements_file} into {final} (once; cached by content)")
        tmp = tempfile.mkdtemp(prefix=".build-", dir=cache_root)
        try:
            _build(tmp, requirements_file, requirements, python)
            shutil.rmtree(final, ignore_errors=True)  # a marker-less leftover of an old layout
            os.rename(tmp, final)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    return JobEnv(final)


def check_preload(env: JobEnv | None, modules: list[str]) -> None:
    """Import the preload list once with the environment, as the runner will, so a typo
    or a module missing from the requirements refuses at start with Python's error."""
    for name in modules:
        if not name or not all(part.isidentifier() for part in name.split(".")):
            raise EnvBuildError(f"--preload: {name!r} is not a module name")
    python = env.python if env else base_python()
    code = "import importlib, sys\nfor m in sys.argv[1:]: importlib.import_module(m)"
    with tempfile.TemporaryDirectory() as mpl:
        out = subprocess.run([python, "-I", "-c", code, *modules], capture_output=True, text=True, timeout=300,
                             env={"PATH": "/usr/bin:/bin", "MPLBACKEND": "Agg", "MPLCONFIGDIR": mpl})
    if out.returncode != 0:
        where = f"the job environment {env.root}" if env else "the standard library (no --requirements)"
        tail = out.stderr.strip().splitlines()[-1:] or ["(no error output)"]
        raise EnvBuildError(f"cannot preload {', '.join(modules)} from {where}: {tail[0]}")


def _build(tmp: str, requirements_file: str, requirements: bytes, python: str) -> None:
    env = dict(os.environ, PIP_DISABLE_PIP_VERSION_CHECK="1", PIP_NO_INPUT="1")
    install = ["install", "--no-warn-script-location", "-r", os.path.abspath(requirements_file)]
    if _executor_has_pip():
        # The executor's pip installs into the new env: no pip is left among the job's modules.
        _run([python, "-m", "venv", "--without-pip", tmp], "creating the virtualenv")
        _run([sys.executable, "-m", "pip", "--python", os.path.join(tmp, "bin", "python"), *install], "pip install", env=env)
    else:  # an executor installed without pip (uv, pipx): the env's own, removed afterwards
        _run([python, "-m", "venv", tmp], "creating the virtualenv")
        _run([os.path.join(tmp, "bin", "python"), "-m", "pip", *install], "pip install", env=env)
        _run([os.path.join(tmp, "bin", "python"), "-m", "pip", "uninstall", "-y", "pip"], "removing pip", env=env)
    job = JobEnv(tmp)
    probe = subprocess.run([job.python, "-c", "import importlib.util as u; print(bool(u.find_spec('matplotlib')))"],
                           capture_output=True, text=True, timeout=120)
    if probe.stdout.strip() == "True":
        cache = os.path.join(tmp, MPL_CACHE)
        os.makedirs(cache)
        _run([job.python, "-c", "import matplotlib.font_manager"], "building matplotlib's font cache",
             env=dict(os.environ, MPLCONFIGDIR=cache, MPLBACKEND="Agg"))
    with open(os.path.join(tmp, MARKER), "w") as f:
        json.dump({"python": python, "requirements": requirements.decode("utf-8", "replace")}, f)
    _world_readable(tmp)


def _executor_has_pip() -> bool:
    return importlib.util.find_spec("pip") is not None


def _run(argv: list[str], what: str, env: dict | None = None) -> None:
    try:
        out = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=PIP_TIMEOUT_S)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise EnvBuildError(f"{what} failed: {exc}") from None
    if out.returncode != 0:
        lines = [ln for ln in (out.stderr + out.stdout).splitlines() if ln.strip() and "is ignored: it is neither" not in ln]
        raise EnvBuildError(f"{what} failed (exit {out.returncode}):\n" + "\n".join(lines[-25:]))


def _makedirs_traversable(path: str) -> None:
    os.makedirs(path, mode=0o755, exist_ok=True)
    os.chmod(path, 0o755)


def _world_readable(root: str) -> None:
    """Job uids read the env: every directory 0755, every file readable (executables kept)."""
    os.chmod(root, 0o755)
    for dirpath, dirnames, filenames in os.walk(root):
        for d in dirnames:
            p = os.path.join(dirpath, d)
            if not os.path.islink(p):
                os.chmod(p, 0o755)
        for name in filenames:
            p = os.path.join(dirpath, name)
            if not os.path.islink(p):
                mode = os.stat(p).st_mode & 0o777
                os.chmod(p, (mode | 0o444) & ~0o022)
