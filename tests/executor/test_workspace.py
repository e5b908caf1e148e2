import os

from executor.workspace import empty_dir


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
    try:
        empty_dir(str(tmp_path / "ws"))
    except OSError:
        pass
    assert os.listdir(target) == ["f"]
