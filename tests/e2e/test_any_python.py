"""A fleet installed into a venv whose interpreter lives under a 0700 directory (a pyenv
Python under /root, the common case): jobs, running as another uid, import the stdlib.
The pod shows the interpreter at its own path under parents of its own (rootfs.py)."""

import glob
import os
import re
import shutil
import subprocess
import sys
import sysconfig
from importlib import metadata

import pytest

from dispatcher import Client
from warmfleet.contract.schema import Status

CHECKOUT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
VERSION = f"{sys.version_info.major}.{sys.version_info.minor}"  # compiled deps are copied: same minor
MODULES = "socket, typing, asyncio, sqlite3, decimal, ssl, ctypes, json, csv, zoneinfo"


def under_a_0700_dir(path: str) -> bool:
    parent = os.path.dirname(os.path.realpath(path))
    while parent != "/":
        if os.stat(parent).st_mode & 0o077 == 0:
            return True
        parent = os.path.dirname(parent)
    return False


def link_or_copy(src: str, dst: str) -> None:
    os.makedirs(os.path.dirname(dst), exist_ok=True)
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def interpreter_in_a_0700_dir(tmp_path) -> str:
    """pyenv's interpreter of our minor version if it is under a 0700 directory;
    otherwise this interpreter's prefix relocated into one."""
    for exe in sorted(glob.glob(f"/root/.pyenv/versions/{VERSION}.*/bin/python{VERSION}")):
        if under_a_0700_dir(exe):
            return exe
    home = tmp_path / "home"
    home.mkdir(mode=0o700)
    prefix = home / "python"
    exe = prefix / "bin" / f"python{VERSION}"
    link_or_copy(os.path.realpath(sys._base_executable), str(exe))
    stdlib = sysconfig.get_path("stdlib")
    shutil.copytree(stdlib, prefix / "lib" / f"python{VERSION}", symlinks=True, copy_function=link_or_copy,
                    ignore=shutil.ignore_patterns("site-packages", "dist-packages", "test", "__pycache__"))
    return str(exe)


def dependency_closure(name: str, extras: tuple[str, ...] = ()) -> list[metadata.Distribution]:
    """The installed distributions `name` with these extras needs (other extras left out)."""
    seen: dict[str, metadata.Distribution] = {}
    todo = [name]
    while todo:
        n = re.sub(r"[-_.]+", "-", todo.pop()).lower()
        if n in seen:
            continue
        try:
            dist = metadata.distribution(n)
        except metadata.PackageNotFoundError:
            continue  # a marker excluded it
        wanted = extras if n == name else ()
        seen[n] = dist
        todo += [re.split(r"[\s;<>=!~\[(]", r, maxsplit=1)[0] for r in dist.requires or []
                 if "extra ==" not in r or any(f'extra == "{e}"' in r for e in wanted)]
    return [d for n, d in seen.items() if n != name]


@pytest.fixture(scope="module")
def venv_of_a_hidden_python(tmp_path_factory):
    """A venv of that interpreter with warmfleet[fleet]'s dependencies (linked from ours, no
    network) and this checkout on its path."""
    tmp = tmp_path_factory.mktemp("anypython")
    exe = interpreter_in_a_0700_dir(tmp)
    venv = tmp / "venv"
    subprocess.run([exe, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    site = subprocess.run([str(venv / "bin" / "python"), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                          capture_output=True, text=True, check=True).stdout.strip()
    for dist in dependency_closure("warmfleet", ("fleet",)):  # `up` is a server role
        for f in dist.files or []:
            if ".." not in f.parts:
                link_or_copy(str(dist.locate_file(f)), os.path.join(site, str(f)))
    with open(os.path.join(site, "warmfleet-checkout.pth"), "w") as f:
        f.write(CHECKOUT + "\n")
    return exe, venv


@pytest.mark.timeout(240)
def test_jobs_import_the_stdlib_from_a_python_under_a_0700_dir(venv_of_a_hidden_python, tmp_path):
    exe, venv = venv_of_a_hidden_python
    assert under_a_0700_dir(exe)
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    up = subprocess.Popen(
        [str(venv / "bin" / "python"), "-m", "warmfleet.cli.main", "up", "--pods", "1", "--slots", "1"],
        env={**os.environ, "WARMFLEET_STATE_DIR": str(state)},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        url = None
        for line in up.stdout:  # `up` prints the URL once every slot is ready
            if "WARMFLEET_REDIS_URL=" in line:
                url = line.strip().split("WARMFLEET_REDIS_URL=", 1)[1]
                break
        assert url, up.stderr.read()
        with Client(url) as c:
            r = c.run(f"import os, sys\nimport {MODULES}\nprint(os.getuid(), sys.version.split()[0], sys.path[1])")
        assert r.status is Status.OK, r
        uid, version, stdlib = r.stdout.split()
        assert int(uid) != 0
        real = subprocess.run([exe, "-c", "import sys; print(sys.version.split()[0])"], capture_output=True,
                              text=True).stdout.strip()
        assert version == real
        assert stdlib.startswith(os.path.dirname(os.path.dirname(os.path.realpath(exe))))
    finally:
        up.terminate()
        up.wait(120)
    assert up.returncode == 0
