"""`warmfleet up`, `status --wait-ready`, `run` and a clean shutdown, as a user runs them."""

import json
import os
import signal
import subprocess
import sys

import pytest

from warmfleet.local import runsc

WARMFLEET = os.path.join(os.path.dirname(sys.executable), "warmfleet")


def _runsc_containers(runtime_dir: str) -> list[str]:
    out = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
    return [line for line in out.splitlines() if runtime_dir in line]


def _cmdlines_with(marker: str) -> list[list[str]]:
    """Whole argument lists (ps would cut long ones) of the processes naming marker."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                argv = f.read().decode(errors="replace").split("\0")
        except OSError:
            continue
        if any(marker in a for a in argv):
            found.append(argv)
    return found


@pytest.mark.timeout(180)
def test_up_run_status_and_clean_shutdown(tmp_path):
    env = {**os.environ, "WARMFLEET_STATE_DIR": str(tmp_path / "state")}
    up = subprocess.Popen(
        [WARMFLEET, "up", "--pods", "1", "--slots", "2", "--platform", "systrap"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        url = None
        for line in up.stdout:  # readiness signal: `up` prints the URL once every slot is ready
            if "WARMFLEET_REDIS_URL=" in line:
                url = line.strip().split("WARMFLEET_REDIS_URL=", 1)[1]
                break
        assert url and url.startswith("unix://"), up.stderr.read() if up.poll() is not None else url
        runtime_dir = os.path.dirname(os.path.dirname(url[len("unix://"):]))

        st = subprocess.run([WARMFLEET, "status", "--wait-ready", "2", "--timeout", "30", "--json"],
                            env=env, capture_output=True, text=True, timeout=60)
        assert st.returncode == 0, st.stderr
        status = json.loads(st.stdout)
        assert status["ready"] == 2
        # The pod says what it runs in, and the sandbox really got the platform asked for.
        pod = status["pods"][0]
        assert (pod["sandbox_runtime"], pod["sandbox_platform"]) == ("runsc", "systrap")
        assert pod["sandbox_version"] == runsc.inspect().version
        assert any("--platform=systrap" in argv for argv in _cmdlines_with(runtime_dir))

        # No --redis-url: `run` finds the fleet that `up` advertised.
        run = subprocess.run([WARMFLEET, "run", "-c", 'print(open("/proc/version").read())'],
                             env=env, capture_output=True, text=True, timeout=60)
        assert run.returncode == 0, run.stderr
        assert "Linux version 4.4.0" in run.stdout

        failing = subprocess.run([WARMFLEET, "run", "--json", "-"], input="import sys; sys.exit(7)",
                                 env=env, capture_output=True, text=True, timeout=60)
        assert failing.returncode == 7
        assert json.loads(failing.stdout)["status"] == "error"

        bad = subprocess.run([WARMFLEET, "run", "-c", "print(1)", "--timeout", "-1"],
                             env=env, capture_output=True, text=True, timeout=60)
        assert bad.returncode == 2 and "positive" in bad.stderr

        redis_pid = int(subprocess.run(["pgrep", "-f", f"unixsocket.*{runtime_dir}"], capture_output=True, text=True).stdout.split()[0])
        assert _runsc_containers(runtime_dir)

        up.send_signal(signal.SIGTERM)
        assert up.wait(timeout=60) == 0, up.stderr.read()
    finally:
        if up.poll() is None:
            up.kill()
            up.wait()
    # Nothing left behind: no sandbox, no redis, no socket, no temp dir, no advertisement.
    assert not os.path.exists(runtime_dir)
    assert not _runsc_containers(runtime_dir)
    assert not os.path.exists(f"/proc/{redis_pid}") or open(f"/proc/{redis_pid}/stat").read().split()[2] == "Z"
    assert not os.path.exists(tmp_path / "state" / "redis-url")


def test_up_refuses_without_runsc_and_says_how_to_install(tmp_path):
    env = {**os.environ, "PATH": str(tmp_path), "WARMFLEET_STATE_DIR": str(tmp_path / "state")}
    out = subprocess.run([WARMFLEET, "up"], env=env, capture_output=True, text=True, timeout=30)
    assert out.returncode == 2
    assert "apt-get install runsc" in out.stderr and "--no-sandbox" in out.stderr


def test_up_refuses_a_runsc_too_old_or_without_the_platform(tmp_path):
    """A runsc older than the oldest tested build, or one lacking the platform, is refused
    before anything starts, with what to do about it."""
    fake = tmp_path / "runsc"
    fake.write_text(
        "#!/bin/sh\n"
        'if [ "$1" = --version ]; then echo "runsc version $FAKE_VERSION"; echo "spec: 1.0.2"; exit 0; fi\n'
        'if [ "$1" = flags ]; then echo "  -platform string"; '
        'echo "    specifies which platform to use: ptrace (default), kvm. (default \\"ptrace\\")"; exit 0; fi\n'
        "exit 64\n"
    )
    fake.chmod(0o755)
    env = {**os.environ, "PATH": f"{tmp_path}:/usr/bin:/bin", "WARMFLEET_STATE_DIR": str(tmp_path / "state")}
    old = subprocess.run([WARMFLEET, "up"], env={**env, "FAKE_VERSION": "0.0~20211101.0"},
                         capture_output=True, text=True, timeout=30)
    assert old.returncode == 2
    assert "older than 20221219" in old.stderr and "scripts/setup" in old.stderr
    no_systrap = subprocess.run([WARMFLEET, "up", "--platform", "systrap"], env={**env, "FAKE_VERSION": "0.0~20221219.0"},
                                capture_output=True, text=True, timeout=30)
    assert no_systrap.returncode == 2
    assert "has no 'systrap' platform (it offers ptrace, kvm)" in no_systrap.stderr


def test_up_refuses_a_bad_egress_entry_before_starting_anything(tmp_path):
    env = {**os.environ, "WARMFLEET_STATE_DIR": str(tmp_path / "state")}
    out = subprocess.run([WARMFLEET, "up", "--egress-allow", "pkgs.example.com:443,10.0.0.0/33"],
                         env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and "egress entry '10.0.0.0/33'" in out.stderr, out


@pytest.mark.timeout(180)
def test_demo_as_the_readme_runs_it(tmp_path):
    """README's first command: `.venv/bin/warmfleet demo` starts a fleet, runs a job in
    gVisor, stops, and says so; it exits 0 and leaves no process and no runtime folder."""
    import re

    env = {**os.environ, "WARMFLEET_STATE_DIR": str(tmp_path / "state")}
    out = subprocess.run([WARMFLEET, "demo"], env=env, capture_output=True, text=True, timeout=170)
    assert out.returncode == 0, (out.stdout, out.stderr)
    lines = out.stdout.splitlines()
    assert len(lines) == 5, out.stdout
    up = re.fullmatch(r"fleet up in [0-9.]+ s at unix://(/tmp/warmfleet-[^/]+)/sock/redis\.sock", lines[0])
    assert up, lines[0]
    assert re.fullmatch(r"job [0-9a-f]{32}: status=ok exit_code=0 in [0-9.]+ ms", lines[1]), lines[1]
    assert lines[2].startswith("Linux version 4.4.0"), lines[2]  # the kernel gVisor presents, not the host's
    assert lines[2] != open("/proc/version").read().strip()
    assert re.fullmatch(r"uid 6[0-9]{4} cwd /tmp/ws/[0-9]+", lines[3]), lines[3]  # a slot's uid, in its workspace
    assert lines[4] == "fleet stopped; nothing left behind"
    # and it is true: the fleet's runtime folder is gone and nothing runs from it (its
    # sandboxes, their runsc, the embedded redis-server all name that folder)
    assert not os.path.exists(up.group(1))
    assert _cmdlines_with(up.group(1)) == []
