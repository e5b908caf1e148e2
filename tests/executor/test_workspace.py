import errno
import os

import pytest

from executor.lean.workspace import empty_dir


def test_empty_dir_removes_everything_and_never_follows_links(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "precious").write_text("keep me")
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "file").write_text("x")
    (ws / "deep" / "er").mkdir(parents=True)
    (ws / "deep" / "er" / "f").write_text("x")
    os.symlink(outside, ws / "link_to_dir")
    os.symlink(outside / "precious", ws / "link_to_file")
    os.symlink("/nonexistent", ws / "dangling")
    locked = ws / "locked"
    locked.mkdir()
    (locked / "inner").write_text("x")
    os.chmod(locked, 0)

    removed = empty_dir(str(ws))

    assert os.listdir(ws) == []
    assert removed == 9
    assert (outside / "precious").read_text() == "keep me"


def test_empty_dir_refuses_a_symlinked_workspace(tmp_path):
    target = tmp_path / "target"
    target.mkdir()
    (target / "f").write_text("x")
    os.symlink(target, tmp_path / "ws")
    with pytest.raises(OSError) as refused:
        empty_dir(str(tmp_path / "ws"))
    # O_NOFOLLOW | O_DIRECTORY on a link: the kernel refuses to open it as a directory
    assert refused.value.errno in (errno.ENOTDIR, errno.ELOOP), refused.value
    assert os.listdir(target) == ["f"]


def test_empty_dir_handles_nesting_deeper_than_recursion_and_fd_limits(tmp_path):
    """A job nests directories with mkdir+chdir far past the recursion limit; the reset
    must still empty the workspace or the slot would stay broken."""
    ws = tmp_path / "ws"
    ws.mkdir()
    fd = os.open(ws, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for level in range(3000):
            os.mkdir("d", dir_fd=fd)
            if level == 1500:
                os.mkdir("wide", dir_fd=fd)
                os.chmod("wide", 0, dir_fd=fd)
            sub = os.open("d", os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
            os.close(fd)
            fd = sub
        with open(os.open("f", os.O_WRONLY | os.O_CREAT, 0o600, dir_fd=fd), "w") as f:
            f.write("bottom")
    finally:
        os.close(fd)

    removed = empty_dir(str(ws))

    assert os.listdir(ws) == []
    assert removed == 3000 + 1 + 1
