"""Empty a workspace without ever following a link the job planted.

Runs inside the spare child, already switched to the job uid, so even a bug here
cannot touch anything the job itself could not. Every operation is relative to a
directory descriptor opened with O_NOFOLLOW (the Judge0 CVE-2024-28185 lesson).

The walk is iterative and holds at most two descriptors: a job can nest directories
far deeper than Python's recursion limit or the open-file limit (one line of code
makes 20,000 levels in a second), and a reset that fails leaves the slot broken for
good. It climbs back through "..", which is safe here: nothing of the job uid is
alive any more and nobody else can write the workspace (0700, owned by that uid),
so no directory can be moved under the walk.
"""

from __future__ import annotations

import os
import stat

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def empty_dir(path: str) -> int:
    """Remove everything inside ``path`` (but not ``path`` itself). Returns entries removed."""
    _make_searchable(path, None)
    fd = os.open(path, _DIR_FLAGS)
    removed = 0
    # One frame per level being emptied: (name in its parent, subdirectories still to visit).
    stack: list[tuple[str, list[str]]] = []
    try:
        n, pending = _unlink_files(fd)
        removed += n
        while True:
            if pending:
                name = pending.pop()
                st = os.stat(name, dir_fd=fd, follow_symlinks=False)
                if st.st_mode & stat.S_IRWXU != stat.S_IRWXU:
                    _make_searchable(name, fd)
                sub = os.open(name, _DIR_FLAGS, dir_fd=fd)
                os.close(fd)
                fd = sub
                stack.append((name, pending))
                n, pending = _unlink_files(fd)
                removed += n
                continue
            if not stack:
                return removed
            name, pending = stack.pop()
            parent = os.open("..", _DIR_FLAGS, dir_fd=fd)
            os.close(fd)
            fd = parent
            os.rmdir(name, dir_fd=fd)
            removed += 1
    finally:
        os.close(fd)


def _unlink_files(dir_fd: int) -> tuple[int, list[str]]:
    """Unlink every non-directory in the directory; return (how many, subdirectory names)."""
    removed, subdirs = 0, []
    with os.scandir(dir_fd) as entries:  # the entry's type comes with the listing: no stat per file
        for entry in entries:
            if entry.is_dir(follow_symlinks=False):
                subdirs.append(entry.name)
            else:
                os.unlink(entry.name, dir_fd=dir_fd)
                removed += 1
    return removed, subdirs


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
