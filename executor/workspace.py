"""Empty a workspace without ever following a link the job planted.

Runs inside the spare child, already switched to the job uid, so even a bug here
cannot touch anything the job itself could not. Every operation is relative to a
directory descriptor opened with O_NOFOLLOW (the Judge0 CVE-2024-28185 lesson).
"""

from __future__ import annotations

import os
import stat

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def empty_dir(path: str) -> int:
    """Remove everything inside ``path`` (but not ``path`` itself). Returns entries removed."""
    _make_searchable(path, None)
    fd = os.open(path, _DIR_FLAGS)
    try:
        return _empty_fd(fd)
    finally:
        os.close(fd)


def _empty_fd(dir_fd: int) -> int:
    removed = 0
    for name in os.listdir(dir_fd):
        try:
            st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        except FileNotFoundError:
            continue
        if stat.S_ISDIR(st.st_mode):
            if st.st_mode & stat.S_IRWXU != stat.S_IRWXU:
                _make_searchable(name, dir_fd)
            sub = os.open(name, _DIR_FLAGS, dir_fd=dir_fd)
            try:
                removed += _empty_fd(sub)
            finally:
                os.close(sub)
            os.rmdir(name, dir_fd=dir_fd)
        else:
            os.unlink(name, dir_fd=dir_fd)
        removed += 1
    return removed


def _make_searchable(name: str, dir_fd: int | None) -> None:
    """chmod 0700 a directory the job may have locked (chmod 000), never through a symlink.

    Linux has no lchmod; an O_PATH descriptor opened with O_NOFOLLOW pins the directory
    itself, and chmod through its /proc/self/fd entry changes exactly that inode.
    """
    fd = os.open(name, os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dir_fd)
    try:
        os.chmod(f"/proc/self/fd/{fd}", 0o700)
    finally:
        os.close(fd)
