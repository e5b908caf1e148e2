"""What one job can see of the last, of the executor, of Redis and of the network."""

import json

from warmfleet.contract.schema import Status


def test_workspace_is_empty_after_a_job_wrote_files(client):
    r = client.run(
        "import os\n"
        "open('a.txt', 'w').write('secret')\n"
        "os.makedirs('d/e/f'); open('d/e/f/g', 'w').write('x')\n"
        "os.symlink('/etc/passwd', 'link')\n"
        "os.mkdir('locked'); open('locked/x', 'w').write('x'); os.chmod('locked', 0)\n"
        "print(sorted(os.listdir('.')))"
    )
    assert r.stdout.strip() == "['a.txt', 'd', 'link', 'locked']", r
    # Whichever slot runs them, every later job starts in an empty workspace.
    for res in client.map(["import os; print(os.listdir('.'), os.listdir(os.environ['HOME']))"] * 6):
        assert res.stdout.strip() == "[] []", res


def test_scratch_outside_the_workspace_is_not_writable(client):
    r = client.run(
        "import os\n"
        "for p in ('/tmp/x', '/dev/shm/x', '/x', '/run/x'):\n"
        "    try:\n"
        "        open(p, 'w'); print(p, 'WROTE')\n"
        "    except OSError as e:\n"
        "        print(p, type(e).__name__)\n"
        "print('end')"
    )
    assert r.status is Status.OK, r  # ran to the end: every path was tried
    lines = r.stdout.splitlines()
    assert lines[-1] == "end" and len(lines) == 5, r.stdout
    for line, path in zip(lines, ("/tmp/x", "/dev/shm/x", "/x", "/run/x")):
        # refused by the kernel (not writable, or no such place in the sandbox)
        assert line in (f"{path} PermissionError", f"{path} FileNotFoundError", f"{path} OSError"), r.stdout


def test_background_processes_are_gone_before_the_next_job(client):
    r = client.run(
        "import os, signal, time\n"
        "pids = []\n"
        "for setsid in (False, True):\n"
        "    r, w = os.pipe()\n"
        "    if os.fork() == 0:\n"
        "        if setsid:\n"
        "            os.setsid()\n"
        "            if os.fork(): os._exit(0)\n"  # double fork: the daemon is reparented
        "        signal.signal(signal.SIGHUP, signal.SIG_IGN)\n"
        "        os.write(w, str(os.getpid()).encode()); os.close(w)\n"
        "        time.sleep(120); os._exit(0)\n"
        "    os.close(w); pids.append(int(os.read(r, 32)))\n"
        "print(*pids)"
    )
    pids = [int(p) for p in r.stdout.split()]
    assert len(pids) == 2, r
    # Alive means present and not a zombie (a zombie runs nothing; pid 1 reaps it).
    probe = (
        "def alive(pid):\n"
        "    try:\n"
        "        return open(f'/proc/{pid}/stat').read().rsplit(')', 1)[1].split()[0] != 'Z'\n"
        "    except OSError:\n"
        "        return False\n"
        f"print(alive({pids[0]}), alive({pids[1]}))"
    )
    for res in client.map([probe] * 4):
        assert res.stdout.strip() == "False False", res


def test_job_cannot_open_the_redis_socket(client):
    r = client.run(
        "import os, socket\n"
        "for attempt in (lambda: os.listdir('/run'), lambda: socket.socket(socket.AF_UNIX).connect('/run/redis.sock')):\n"
        "    try:\n"
        "        attempt(); print('ALLOWED')\n"
        "    except OSError as e:\n"
        "        print(type(e).__name__)"
    )
    assert r.stdout.split() == ["PermissionError", "PermissionError"], r


def test_job_has_no_tcp_not_even_loopback(client):
    r = client.run(
        "import socket\n"
        "for host, port in (('127.0.0.1', 6379), ('127.0.0.1', 80), ('::1', 6379)):\n"
        "    try:\n"
        "        socket.create_connection((host, port), timeout=2); print('CONNECTED')\n"
        "    except OSError as e:\n"
        "        print(type(e).__name__)"
    )
    assert "CONNECTED" not in r.stdout and len(r.stdout.split()) == 3, r


def test_environment_is_minimal_and_secret_free(client, fleet):
    r = client.run(
        "import json, os\n"
        "env = dict(os.environ)\n"
        "leaks = {}\n"
        "for path in ('/proc/self/environ', '/proc/1/environ', '/proc/1/cmdline', f'/proc/{os.getppid()}/environ'):\n"
        "    try:\n"
        "        leaks[path] = open(path, 'rb').read().decode('latin-1')\n"
        "    except OSError as e:\n"
        "        leaks[path] = type(e).__name__\n"
        "print(json.dumps({'env': env, 'leaks': leaks}))"
    )
    data = json.loads(r.stdout)
    assert set(data["env"]) <= {"PATH", "HOME", "TMPDIR", "LANG", "PYTHONDONTWRITEBYTECODE"}
    everything = r.stdout
    assert "redis" not in everything.lower(), everything
    # gVisor lets another uid read /proc/1/environ (Linux would not): so it must hold nothing.
    assert "WARMFLEET_CONFIG_FILE" in data["leaks"]["/proc/1/environ"] or data["leaks"]["/proc/1/environ"] == "PermissionError"


def test_a_job_cannot_read_or_list_the_other_slots_workspace_while_its_job_runs(client, fleet):
    """Slot A's job holds a file in its workspace and waits; the job on slot B tries to
    list that workspace, stat, read and overwrite the file, and plant one of its own."""
    import redis

    from support import fleet_faults as ff
    from warmfleet.local.sandbox import WORKSPACE_ROOT_IN_SANDBOX

    r = redis.Redis.from_url(fleet.client_url, decode_responses=True)
    try:
        # no slot busy first: a finished job's slot flips to ready in the published state
        # within 0.5 s, and the next busy slot must be the held job's, not that stale one
        ff.poll(lambda: ff.busy_slot(r) is None, 20, "every slot to be ready")
        held = client.submit("open('secret', 'w').write('slot A only')\n" + ff.held_job("A done"), timeout=60)
        pod_id, slot = ff.poll(lambda: ff.busy_slot(r), 20, "slot A's job to start")
        other = f"{WORKSPACE_ROOT_IN_SANDBOX}/{slot.slot}"
        probe = client.run(
            "import os\n"
            f"d = {other!r}\n"
            "print('own', os.path.realpath('.') != d)\n"
            "for what, call in (('list', lambda: os.listdir(d)), ('stat', lambda: os.stat(d + '/secret')),\n"
            "                   ('read', lambda: open(d + '/secret').read()),\n"
            "                   ('overwrite', lambda: open(d + '/secret', 'w').write('B was here')),\n"
            "                   ('plant', lambda: open(d + '/planted', 'w').write('B was here'))):\n"
            "    try:\n"
            "        print(what, 'DONE', call())\n"
            "    except OSError as e:\n"
            "        print(what, type(e).__name__)",
            timeout=30,
        )
        # the probe ran on the other slot while slot A's job was still holding
        assert ff.busy_slot(r)[1].slot == slot.slot
        ff.release(fleet, pod_id, slot.slot)
        res = client.wait(held, timeout=60)
    finally:
        r.close()
    assert probe.ok and probe.executor != res.executor, (probe, res)
    assert probe.stdout.splitlines() == ["own True"] + [
        f"{what} PermissionError" for what in ("list", "stat", "read", "overwrite", "plant")
    ], probe.stdout
    assert (res.status.value, res.stdout) == ("ok", "A done\n"), res
