"""The local pod's root filesystem: a minimal tree assembled once per fleet, read-only.

A job sees only what is put here: the system directories an interpreter, bash and the
common command-line tools need (`/usr` and the top-level links or directories into it),
a generated `/etc`, the interpreter and the venv at their own paths (their parents are
empty 0755 directories of ours, so a host parent of mode 0700, such as `/root` above a
pyenv Python, does not stop a job uid), and the project's packages under a directory
only root can enter. Everything else on the host is absent, not merely unreadable.

The gofer creates missing mount points on the host, and runsc creates those under an
in-sandbox tmpfs with mode 0777: every mount point is therefore made here first, in our
own tree, and nothing is bind-mounted under a tmpfs.
"""

from __future__ import annotations

import importlib.util
from importlib import metadata
import os
import shutil
import stat
import sys
import sysconfig
from dataclasses import dataclass, field

# Top-level names that are links into /usr on a merged-/usr system, real directories on others.
SYSTEM_TOP_LEVEL = ("bin", "sbin", "lib", "lib32", "lib64", "libx32")
SYSTEM_DIRS = ("/usr",)
# Mount points of the pod's own filesystems (proc, sysfs, the /dev tmpfs, the socket dir).
EMPTY_DIRS = ("proc", "sys", "dev", "run", "tmp")
# Only root (the supervisor and the runners, before a child drops its uid) can enter it.
PROJECT_DIR_IN_SANDBOX = "/opt/warmfleet"
# The distribution's top_level.txt names them all; this list is the floor when it is absent.
PROJECT_PACKAGES = ("executor", "warmfleet", "dispatcher", "gc_sidecar", "egress")
# Copied from the host's /etc when present: no secrets, what libc, Python and tools read.
ETC_COPIED = ("ld.so.cache", "localtime", "timezone", "protocols", "services", "mime.types")
# Shown read-only: Debian's /usr/bin/awk -> /etc/alternatives/awk -> mawk (hundreds of
# links: one bind mount costs less than copying them for every fleet).
ETC_TREES_SHOWN = ("alternatives",)
NSSWITCH = "passwd: files\ngroup: files\nshadow: files\nhosts: files\nservices: files\nprotocols: files\n"
HOSTS = "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"


class LayoutError(RuntimeError):
    """This Python install cannot serve jobs in a pod; the message names the path and the fix."""


@dataclass
class RootFs:
    path: str
    # (host source, destination in the sandbox), all read-only, in mount order.
    binds: list[tuple[str, str]] = field(default_factory=list)

    def add_bind(self, source: str, destination: str) -> None:
        """Bind `source` read-only at `destination`, making the mount point and its parents."""
        _make_dirs(self.path, destination)
        self.binds.append((source, destination))


def interpreter_paths() -> list[str]:
    """Where this Python lives: the venv, the interpreter's prefix, the executable's dir."""
    paths = [sys.prefix, sys.base_prefix, os.path.dirname(os.path.realpath(sys.executable))]
    return [os.path.realpath(p) for p in paths]


def python_in_sandbox() -> str:
    """sys.executable with its directory resolved (the mount is at the real path); the
    last link is kept so the venv is still detected from it."""
    return os.path.join(os.path.realpath(os.path.dirname(sys.executable)), os.path.basename(sys.executable))


def build(
    path: str, *, slots: int, uid_base: int, workspace_root: str, socket_dir_in_sandbox: str,
    read_only_paths: list[str], sessions: int = 0, session_root: str = "/tmp/ss",
) -> RootFs:
    """Assemble the tree at `path` (created, 0755). `read_only_paths`: more host paths to
    show at their own paths (the interpreter, the venv, job environments)."""
    os.makedirs(path, mode=0o755)
    os.chmod(path, 0o755)
    root = RootFs(path)
    for name in EMPTY_DIRS:
        os.mkdir(os.path.join(path, name), 0o755)
    for source in SYSTEM_DIRS:
        root.add_bind(source, source)
    for name in SYSTEM_TOP_LEVEL:
        host = os.path.join("/", name)
        if os.path.islink(host):
            os.symlink(os.readlink(host), os.path.join(path, name))
        elif os.path.isdir(host):
            root.add_bind(host, host)
    _write_etc(root, slots=slots, uid_base=uid_base)
    _make_dirs(path, socket_dir_in_sandbox)
    for slot in range(slots):
        _make_dirs(path, os.path.join(workspace_root, str(slot)))
    for index in range(sessions):  # executor/sessions/host.py: one workspace tmpfs each
        _make_dirs(path, os.path.join(session_root, str(index)))
    covered = [*SYSTEM_DIRS, *(f"/{n}" for n in SYSTEM_TOP_LEVEL)]
    reserved = ["/proc", "/sys", "/dev", "/etc", socket_dir_in_sandbox, workspace_root, session_root,
                PROJECT_DIR_IN_SANDBOX]
    for host in _outermost(read_only_paths, covered=covered, reserved=reserved):
        root.add_bind(host, host)
    _make_dirs(path, PROJECT_DIR_IN_SANDBOX, mode=0o700)
    for name, source in project_packages().items():
        root.add_bind(source, f"{PROJECT_DIR_IN_SANDBOX}/{name}")
    return root


def project_packages() -> dict[str, str]:
    """This project's top-level packages, wherever they are installed (editable or not)."""
    try:
        listed = (metadata.distribution("warmfleet").read_text("top_level.txt") or "").split()
    except metadata.PackageNotFoundError:
        listed = []
    found = {}
    for name in sorted({*PROJECT_PACKAGES, *listed}):
        spec = importlib.util.find_spec(name)
        if spec is not None and spec.submodule_search_locations:
            found[name] = os.path.realpath(list(spec.submodule_search_locations)[0])
    return found


def _write_etc(root: RootFs, *, slots: int, uid_base: int) -> None:
    etc = os.path.join(root.path, "etc")
    os.mkdir(etc, 0o755)
    users = [("root", 0, "/root", "/bin/bash"), ("nobody", 65534, "/nonexistent", "/usr/sbin/nologin")]
    users += [(f"slot{i}", uid_base + i, "/nonexistent", "/usr/sbin/nologin") for i in range(slots)]
    _write(etc, "passwd", "".join(f"{n}:x:{u}:{u}:{n}:{h}:{s}\n" for n, u, h, s in users))
    _write(etc, "group", "".join(f"{'nogroup' if u == 65534 else n}:x:{u}:\n" for n, u, _, _ in users))
    _write(etc, "nsswitch.conf", NSSWITCH)
    _write(etc, "hosts", HOSTS)
    for name in ETC_COPIED:
        host = os.path.join("/etc", name)
        if os.path.islink(host):
            os.symlink(os.readlink(host), os.path.join(etc, name))
        elif os.path.isfile(host):
            shutil.copyfile(host, os.path.join(etc, name))
            os.chmod(os.path.join(etc, name), 0o644)
    for name in ETC_TREES_SHOWN:
        if os.path.isdir(os.path.join("/etc", name)):
            root.add_bind(os.path.realpath(os.path.join("/etc", name)), f"/etc/{name}")
    for name in os.listdir("/etc"):  # Debian's python3.X/sitecustomize.py, linked from the stdlib
        if name.startswith("python3") and os.path.isdir(os.path.join("/etc", name)):
            shutil.copytree(os.path.join("/etc", name), os.path.join(etc, name), symlinks=True)
    os.mkdir(os.path.join(etc, "ssl"), 0o755)
    if os.path.isfile("/etc/ssl/openssl.cnf"):
        shutil.copyfile("/etc/ssl/openssl.cnf", os.path.join(etc, "ssl", "openssl.cnf"))
    if os.path.isdir("/etc/ssl/certs"):  # CA certificates; a link into /etc/pki on some systems
        root.add_bind(os.path.realpath("/etc/ssl/certs"), "/etc/ssl/certs")


def _write(directory: str, name: str, text: str) -> None:
    with open(os.path.join(directory, name), "w") as f:
        f.write(text)
    os.chmod(os.path.join(directory, name), 0o644)


def _make_dirs(root: str, path_in_sandbox: str, mode: int = 0o755) -> None:
    """Create path_in_sandbox under root with 0755 parents; the leaf gets `mode`."""
    current = root
    parts = [p for p in path_in_sandbox.split("/") if p]
    for i, part in enumerate(parts):
        current = os.path.join(current, part)
        if os.path.islink(current):
            raise LayoutError(f"{path_in_sandbox} lies under /{part}, a link in the pod's root")
        if not os.path.isdir(current):
            os.mkdir(current, mode if i == len(parts) - 1 else 0o755)
            os.chmod(current, mode if i == len(parts) - 1 else 0o755)


def _outermost(paths: list[str], covered: list[str], reserved: list[str]) -> list[str]:
    """Deduplicated real paths, dropping any that lies under another or under `covered`;
    one under a directory the pod uses for itself cannot be shown."""
    def under(p: str, q: str) -> bool:
        return p == q or p.startswith(q.rstrip("/") + "/")

    real = sorted({os.path.realpath(p) for p in paths})
    out: list[str] = []
    for p in real:
        if p == "/":
            raise LayoutError("a read-only path of the pod is / itself: install Python or the venv elsewhere")
        if not os.path.exists(p):
            raise LayoutError(f"{p} was to be shown read-only in the pod but does not exist")
        clash = next((r for r in reserved if under(p, r) or under(r, p)), None)
        if clash is not None:
            raise LayoutError(f"{p} cannot be shown in the pod: it overlaps {clash}, which the pod uses; move it")
        if any(under(p, c) for c in covered) or any(under(p, o) for o in out):
            continue
        out.append(p)
    return out


def check_jobs_can_read_stdlib() -> None:
    """Jobs run as an unprivileged uid: every stdlib file and the interpreter must be
    world-readable (directories traversable). Refuse to start otherwise, naming the fix."""
    prefix = os.path.realpath(sys.base_prefix)
    fix = (
        f"make the interpreter readable by every user (chmod -R o+rX {prefix}), or install warmfleet "
        "into a venv of another Python (e.g. /usr/bin/python3 -m venv VENV)"
    )
    exe = os.path.realpath(sys.executable)
    if os.stat(exe).st_mode & 0o005 != 0o005:
        raise LayoutError(f"jobs could not run the interpreter {exe} (mode {_mode(exe)}): {fix}")
    seen = set()
    for key in ("stdlib", "platstdlib"):
        top = os.path.realpath(sysconfig.get_path(key))
        if top in seen or not os.path.isdir(top):
            continue
        seen.add(top)
        for dirpath, dirnames, filenames in os.walk(top):
            dirnames[:] = [d for d in dirnames if d not in ("site-packages", "dist-packages", "test", "__pycache__")]
            if os.stat(dirpath).st_mode & 0o005 != 0o005:
                raise LayoutError(f"jobs could not enter {dirpath} (mode {_mode(dirpath)}): {fix}")
            for name in filenames:
                full = os.path.join(dirpath, name)
                try:
                    st = os.stat(full)
                except OSError:
                    continue  # a dangling link (Debian's sitecustomize.py without /etc/python3.X)
                if stat.S_ISREG(st.st_mode) and not st.st_mode & 0o004:
                    raise LayoutError(f"jobs could not read {full} (mode {_mode(full)}): {fix}")


def _mode(path: str) -> str:
    return oct(os.stat(path).st_mode & 0o7777)
