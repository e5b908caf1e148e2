"""A job's files: inputs placed in its workspace before it runs, outputs collected
from out/ after it exits. Runs inside the job child, as the job's uid.

Outputs are read through directory descriptors opened with O_NOFOLLOW, regular files
only (a FIFO would block, a device or a symlink could reach elsewhere), bounded in
count and bytes. Stdlib only: imported by the lean runner.
"""

from __future__ import annotations

import binascii
import os
import stat

_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_FILE = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC


def place_inputs(files: dict[str, str], replace: bool = False) -> None:
    """Write base64 `files` (already validated names) into the current directory.

    For a job the workspace was emptied a moment ago and no job has run in it since, so
    no planted link can be in the way; O_EXCL|O_NOFOLLOW make sure of it anyway. A session's
    workspace persists, so `replace` unlinks an earlier file (or a link) of the same name
    first; it runs as the session uid, so a planted link leads only where it may write.
    """
    for name, b64 in files.items():
        parent = os.path.dirname(name)
        if parent:
            os.makedirs(parent, mode=0o700, exist_ok=True)
        if replace:
            try:
                os.unlink(name)
            except FileNotFoundError:
                pass
        fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        try:
            data = memoryview(binascii.a2b_base64(b64))
            while data:
                data = data[os.write(fd, data) :]
        finally:
            os.close(fd)


def collect_outputs(out_dir: str, max_files: int, max_bytes: int) -> tuple[dict[str, str], bool]:
    """Regular files under `out_dir` as {relative path: base64}, and whether any were left out."""
    try:
        fd = os.open(out_dir, _DIR)
    except OSError:
        return {}, False  # no out/ (or it is a link): nothing to return
    found: dict[str, str] = {}
    budget = [max_files, max_bytes]
    try:
        truncated = _walk(fd, "", found, budget, depth=0)
    finally:
        os.close(fd)
    return found, truncated


def _walk(dir_fd: int, prefix: str, found: dict[str, str], budget: list[int], depth: int) -> bool:
    truncated = False
    for name in sorted(os.listdir(dir_fd)):
        rel = prefix + name
        try:
            st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        except OSError:
            continue
        if stat.S_ISDIR(st.st_mode):
            if depth >= 16:
                truncated = True
                continue
            try:
                sub = os.open(name, _DIR, dir_fd=dir_fd)
            except OSError:
                truncated = True
                continue
            try:
                truncated |= _walk(sub, rel + "/", found, budget, depth + 1)
            finally:
                os.close(sub)
        elif stat.S_ISREG(st.st_mode):
            if budget[0] <= 0 or st.st_size > budget[1]:
                truncated = True
                continue
            data = _read_regular(dir_fd, name, budget[1])
            if data is None:
                truncated = True
                continue
            found[rel] = binascii.b2a_base64(data, newline=False).decode("ascii")
            budget[0] -= 1
            budget[1] -= len(data)
        else:
            truncated = True  # symlinks, FIFOs, sockets, devices are never returned
    return truncated


def _read_regular(dir_fd: int, name: str, limit: int) -> bytes | None:
    try:
        fd = os.open(name, _FILE, dir_fd=dir_fd)
    except OSError:
        return None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):  # swapped between stat and open
            return None
        chunks, size = [], 0
        while chunk := os.read(fd, 1 << 20):
            size += len(chunk)
            if size > limit:
                return None
            chunks.append(chunk)
        return b"".join(chunks)
    except OSError:
        return None
    finally:
        os.close(fd)
