"""The pods' root as assembled on the host (no sandbox: tests/e2e/test_host_isolation.py
checks what a job sees of it)."""

import os
import stat
import sys

import pytest

from warmfleet.local import rootfs


def build(tmp_path, read_only_paths=()):
    return rootfs.build(
        str(tmp_path / "root"), slots=2, uid_base=61000, workspace_root="/tmp/ws",
        socket_dir_in_sandbox="/run", read_only_paths=list(read_only_paths),
    )


def test_root_holds_only_mount_points_links_and_a_generated_etc(tmp_path):
    host = tmp_path / "host"
    (host / "py" / "venv").mkdir(parents=True)
    (host / "env").mkdir()
    os.chmod(tmp_path, 0o700)  # like /root above a pyenv Python
    py, venv, env = str(host / "py"), str(host / "py" / "venv"), str(host / "env")
    root = build(tmp_path, [venv, py, "/usr/lib", env])
    expected = {"dev", "etc", "opt", "proc", "run", "sys", "tmp", "usr"}
    expected |= {n for n in rootfs.SYSTEM_TOP_LEVEL if os.path.lexists(f"/{n}")}
    assert set(os.listdir(root.path)) == expected
    # Mount points exist in our tree (the gofer would create them on the host otherwise),
    # empty, with 0755 parents: the host's 0700 parent does not matter.
    inside = root.path + str(host)
    assert sorted(os.listdir(inside)) == ["env", "py"] and os.listdir(inside + "/py") == []
    for d in (root.path + str(tmp_path), inside + "/py", root.path + "/tmp/ws/0", root.path + "/tmp/ws/1"):
        assert stat.S_IMODE(os.stat(d).st_mode) == 0o755, d
    dests = [d for _, d in root.binds]
    # Nested and /usr-covered paths collapse into one mount each.
    assert py in dests and venv not in dests and "/usr/lib" not in dests and env in dests
    assert dests.count("/usr") == 1
    assert stat.S_IMODE(os.stat(os.path.join(root.path, "opt/warmfleet")).st_mode) == 0o700
    shown = {d for d in dests if d.startswith("/opt/warmfleet/")}
    assert shown == {f"/opt/warmfleet/{n}" for n in rootfs.project_packages()}
    assert shown >= {f"/opt/warmfleet/{n}" for n in rootfs.PROJECT_PACKAGES}  # every package the executor imports


def test_etc_names_the_slot_users_and_nothing_of_the_hosts_secrets(tmp_path):
    root = build(tmp_path)
    etc = os.path.join(root.path, "etc")
    passwd = open(os.path.join(etc, "passwd")).read()
    assert [line.split(":")[2] for line in passwd.splitlines()] == ["0", "65534", "61000", "61001"]
    assert not os.path.exists(os.path.join(etc, "shadow"))
    assert "ssl" in os.listdir(etc) and ("/etc/ssl/certs" in [d for _, d in root.binds]) == os.path.isdir("/etc/ssl/certs")
    assert os.path.exists(os.path.join(etc, "ld.so.cache")) == os.path.exists("/etc/ld.so.cache")


@pytest.mark.parametrize("bad", ["/", "/run", "/proc/self", "/tmp", "/nonexistent/venv"])
def test_paths_the_pod_uses_for_itself_are_refused(tmp_path, bad):
    with pytest.raises(rootfs.LayoutError, match="cannot be shown|is / itself|does not exist"):
        build(tmp_path, [bad])


def test_an_unreadable_stdlib_is_refused_naming_the_path_and_the_fix(tmp_path, monkeypatch):
    lib = tmp_path / "lib" / "python3.x"
    lib.mkdir(parents=True)
    (lib / "os.py").write_text("")
    (lib / "socket.py").write_text("")
    os.chmod(lib / "socket.py", 0o600)
    monkeypatch.setattr(rootfs.sysconfig, "get_path", lambda key: str(lib))
    with pytest.raises(rootfs.LayoutError) as err:
        rootfs.check_jobs_can_read_stdlib()
    assert f"{lib}/socket.py" in str(err.value) and "chmod -R o+rX" in str(err.value)
    os.chmod(lib / "socket.py", 0o644)
    rootfs.check_jobs_can_read_stdlib()


def test_this_interpreter_is_shown_at_its_own_path(tmp_path):
    root = build(tmp_path, rootfs.interpreter_paths())
    dests = [d for _, d in root.binds]
    exe_dir = os.path.realpath(os.path.dirname(sys.executable))
    assert any(exe_dir == d or exe_dir.startswith(d + "/") for d in dests)
    assert rootfs.python_in_sandbox().startswith(exe_dir)
