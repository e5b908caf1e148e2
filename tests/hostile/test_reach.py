"""What a job can reach: secrets, Redis, the network, the executor's descriptors,
privileges. gVisor is the outer wall; these check the walls inside it."""

import json
import os
import socket
import threading

import pytest

from warmfleet.contract import keys
from warmfleet.contract.schema import Status

SCAN_FOR_SECRETS = """\
import glob, json, os
seen = {'env': dict(os.environ)}
paths = (['/proc/self/environ', f'/proc/{os.getppid()}/environ', f'/proc/{os.getppid()}/cmdline']
         + glob.glob('/proc/[0-9]*/environ') + glob.glob('/proc/[0-9]*/cmdline')
         + glob.glob('/proc/[0-9]*/task/[0-9]*/environ') + glob.glob('/run/*') + ['/run/redis.sock'])
for path in paths:
    try:
        with open(path, 'rb') as f:
            seen[path] = f.read(1 << 20).decode('latin-1')
    except OSError as e:
        seen[path] = type(e).__name__
print(json.dumps(seen))
"""


def test_the_redis_password_is_nowhere_a_job_can_read(run_hostile, secret_redis):
    r = run_hostile(SCAN_FOR_SECRETS)
    assert r.status is Status.OK, r
    seen = json.loads(r.stdout)
    assert secret_redis.password not in r.stdout and secret_redis.password not in r.stderr
    assert set(seen["env"]) <= {"PATH", "HOME", "TMPDIR", "LANG", "PYTHONDONTWRITEBYTECODE"}, seen["env"]
    cmdlines = [k for k in seen if k.endswith("/cmdline") and not seen[k].endswith("Error")]
    assert len(cmdlines) >= 3, seen.keys()  # it really read the supervisor's and runner's
    assert "executor" in seen["/proc/1/cmdline"]
    assert seen["/run/redis.sock"] in ("PermissionError",), seen["/run/redis.sock"]
    assert "redis://" not in r.stdout and "unix://" not in r.stdout


def test_the_redis_socket_cannot_be_opened(run_hostile):
    r = run_hostile(
        "import os, socket\n"
        "paths = {'/run/redis.sock'}\n"
        "try:\n"
        "    for line in open('/proc/net/unix').read().splitlines()[1:]:\n"
        "        if len(line.split()) > 7:\n"
        "            paths.add(line.split()[7].lstrip('@'))\n"
        "except OSError:\n    pass\n"
        "for p in sorted(paths):\n"
        "    s = socket.socket(socket.AF_UNIX)\n"
        "    try:\n"
        "        s.connect(p); s.sendall(b'PING\\r\\n'); print(p, 'CONNECTED', s.recv(64))\n"
        "    except OSError as e:\n"
        "        print(p, type(e).__name__)\n"
        "try:\n    os.listdir('/run'); print('listed /run')\nexcept OSError as e:\n    print('/run', type(e).__name__)"
    )
    assert r.status is Status.OK, r
    assert "CONNECTED" not in r.stdout and "listed" not in r.stdout, r.stdout
    assert "/run/redis.sock PermissionError" in r.stdout


@pytest.fixture
def host_loopback_listener():
    """A TCP listener on the host's 127.0.0.1: a job must not reach it."""
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.bind(("127.0.0.1", 0))
    srv.listen(8)
    accepted = []

    def accept():
        try:
            while True:
                accepted.append(srv.accept()[0])
        except OSError:
            return

    t = threading.Thread(target=accept, daemon=True)
    t.start()
    yield srv.getsockname()[1], accepted
    srv.close()
    for c in accepted:
        c.close()


def test_no_tcp_or_udp_anywhere_not_even_loopback(run_hostile, host_loopback_listener):
    port, accepted = host_loopback_listener
    r = run_hostile(
        "import socket\n"
        f"for host, port in (('127.0.0.1', {port}), ('127.0.0.1', 6379), ('127.0.0.1', 80), ('::1', 6379),\n"
        "                   ('10.0.0.1', 6379), ('169.254.169.254', 80)):\n"
        "    try:\n"
        "        socket.create_connection((host, port), timeout=1); print(host, port, 'CONNECTED')\n"
        "    except OSError as e:\n"
        "        print(host, port, type(e).__name__)\n"
        "try:\n"
        "    socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b'x', ('8.8.8.8', 53)); print('udp SENT')\n"
        "except OSError as e:\n    print('udp', type(e).__name__)\n"
        "try:\n"
        "    socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP); print('raw OPENED')\n"
        "except OSError as e:\n    print('raw', type(e).__name__)\n"
        "try:\n    socket.getaddrinfo('example.com', 443); print('dns RESOLVED')\nexcept OSError as e:\n"
        "    print('dns', type(e).__name__, e)\n",
        timeout=20,
    )
    assert r.status is Status.OK, r
    assert "CONNECTED" not in r.stdout and "SENT" not in r.stdout and "OPENED" not in r.stdout, r.stdout
    assert "RESOLVED" not in r.stdout and len(r.stdout.splitlines()) == 9, r.stdout
    # a failed lookup names the policy
    assert r.stdout.splitlines()[-1].endswith(
        "(network access denied by sandbox policy: example.com; this pool allows no network access)"
    ), r.stdout
    assert accepted == []


CONNECT_TO_POD_LOOPBACK = (
    "import socket\n"
    "try:\n"
    "    socket.create_connection(('127.0.0.1', 9464), timeout=5); print('CONNECTED')\n"
    "except OSError as e:\n    print(type(e).__name__)\n"
)


def test_the_pods_loopback_services_are_out_of_reach(run_hostile, hostile_fleet):
    # The supervisor's metrics port listens in the pod's network namespace (the sandbox's
    # own loopback): the job's namespace is another one, holding only its own `lo`.
    from_pod = hostile_fleet.pods[0].sandbox.exec("/usr/bin/python3", "-c", CONNECT_TO_POD_LOOPBACK)
    assert from_pod.stdout == "CONNECTED\n", from_pod  # the service really is there
    r = run_hostile(
        CONNECT_TO_POD_LOOPBACK
        + "print(sorted(l.split(':')[0].strip() for l in open('/proc/net/dev').read().splitlines()[2:]))\n"
    )
    assert r.status is Status.OK, r
    assert r.stdout == "ConnectionRefusedError\n['lo']\n", r.stdout


def test_the_executors_descriptors_give_nothing(run_hostile):
    # gVisor lists another uid's /proc/<pid>/fd (Linux would refuse): whatever opens
    # must give no bytes, and only /dev/null may take a write.
    r = run_hostile(
        "import json, os, stat\nme = os.getpid()\nfound = []\n"
        "for pid in (p for p in os.listdir('/proc') if p.isdigit() and int(p) != me):\n"
        "    try:\n        fds = os.listdir(f'/proc/{pid}/fd')\n    except OSError:\n        continue\n"
        "    for fd in fds:\n"
        "        path = f'/proc/{pid}/fd/{fd}'\n"
        "        try:\n            target = os.readlink(path)\n        except OSError:\n            target = '?'\n"
        "        for mode in (os.O_RDONLY, os.O_WRONLY):\n"
        "            try:\n                x = os.open(path, mode | os.O_NONBLOCK)\n            except OSError:\n                continue\n"
        "            st = os.fstat(x)\n"
        "            null = stat.S_ISCHR(st.st_mode) and (os.major(st.st_rdev), os.minor(st.st_rdev)) == (1, 3)\n"
        "            try:\n"
        "                got = len(os.read(x, 4096)) if mode == os.O_RDONLY else os.write(x, b'forged\\n')\n"
        "            except OSError:\n                got = 0\n"
        "            finally:\n                os.close(x)\n"
        "            found.append([pid, fd, target, mode, got, null])\n"
        "print(json.dumps(found))"
    )
    assert r.status is Status.OK, r
    found = json.loads(r.stdout)
    assert any(pid == "1" for pid, *_ in found), found  # it really got at the supervisor's
    for pid, fd, target, mode, got, null in found:
        if mode == os.O_RDONLY:
            assert got == 0, (pid, fd, target)
        else:
            # Only stdin takes a write: the executor's stdin is the host's /dev/null (the
            # sandbox is started with stdin=DEVNULL), so the bytes go nowhere. gVisor shows
            # it as host:[N], not as a 1:3 device, hence the check by number.
            assert got == 0 or null or fd == "0", (pid, fd, target, got)


def test_the_job_has_no_privileges(run_hostile):
    r = run_hostile(
        "import ctypes, os, subprocess\n"
        "status = dict(l.split(':\\t', 1) for l in open('/proc/self/status').read().splitlines() if ':\\t' in l)\n"
        "libc = ctypes.CDLL(None, use_errno=True)\n"
        "print(os.getuid(), os.geteuid(), os.getgroups(), status['CapEff'].strip(), status['CapPrm'].strip(),\n"
        "      libc.prctl(39, 0, 0, 0, 0))\n"
        "def unshare(flags):\n"
        "    if libc.unshare(flags) != 0:\n        raise OSError(ctypes.get_errno(), 'unshare')\n"
        "def setns(path):\n"
        "    if libc.setns(os.open(path, os.O_RDONLY), 0) != 0:\n        raise OSError(ctypes.get_errno(), 'setns')\n"
        "# network and mount namespaces; joining the pod's and the runner's network namespace\n"
        "for call in (lambda: os.setuid(0), lambda: os.setgid(0), lambda: os.chroot('.'),\n"
        "             lambda: unshare(0x40000000), lambda: unshare(0x00020000),\n"
        "             lambda: setns('/proc/1/ns/net'), lambda: setns(f'/proc/{os.getppid()}/ns/net'),\n"
        "             lambda: os.chown('.', 0, 0)):\n"
        "    try:\n        call(); print('ALLOWED')\n    except (OSError, AttributeError) as e:\n        print(type(e).__name__)\n"
        "# gVisor lets anyone make a user namespace (as Linux does); its capabilities cover only\n"
        "# namespaces it owns, so the pod's network namespace stays closed even then.\n"
        "try:\n    unshare(0x10000000)\nexcept OSError:\n    pass\n"
        "try:\n    setns('/proc/1/ns/net'); print('ALLOWED')\nexcept OSError as e:\n    print(type(e).__name__)\n"
        "mount = subprocess.run(['/usr/bin/mount', '-t', 'tmpfs', 'x', '.'], capture_output=True, text=True)\n"
        "print('mount', mount.returncode != 0)\n"
    )
    assert r.status is Status.OK, r
    first, *rest = r.stdout.splitlines()
    uid, euid, groups, cap_eff, cap_prm, no_new_privs = first.split(" ", 2)[0:2] + first.split(" ", 2)[2].rsplit(" ", 3)
    assert int(uid) >= 61000 and uid == euid and groups == "[]", first
    assert (cap_eff, cap_prm, no_new_privs) == ("0000000000000000", "0000000000000000", "1"), first
    assert "ALLOWED" not in r.stdout and rest[-1] == "mount True" and len(rest) == 10, r.stdout
    assert rest[3:6] == ["PermissionError"] * 3, r.stdout  # no new netns; the pod's one stays closed


def test_a_job_cannot_touch_the_stream_even_knowing_the_key(run_hostile, hclient):
    # Not through Redis (no socket, no password). Entries are deleted once answered, so
    # the stream is usually empty: count what was ever added to it instead.
    stream = keys.stream(hclient.pool)
    hclient.run("pass")  # the stream exists
    added_before = hclient.redis.xinfo_stream(stream)["entries-added"]
    r = run_hostile(
        "import socket\ns = socket.socket(socket.AF_UNIX)\n"
        "try:\n    s.connect('/run/redis.sock')\n"
        f"    s.sendall(b'XADD {keys.stream(hclient.pool)} * job x\\r\\n'); print('SENT')\n"
        "except OSError as e:\n    print(type(e).__name__)"
    )
    assert (r.status, r.stdout) == (Status.OK, "PermissionError\n"), r
    # the job's own entry and the next-job probe's (run_hostile), nothing else
    assert hclient.redis.xinfo_stream(stream)["entries-added"] == added_before + 2
    assert all("job" in f and f["job"] != "x" for _, f in hclient.redis.xrange(stream))
