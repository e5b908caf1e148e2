"""Looking inside a session pod from the host (runsc exec, as root in the sandbox)."""

from __future__ import annotations

import json
import subprocess
import time

SESSION_UID_BASE = 62000
SESSION_ROOT = "/tmp/ss"

_PROBE = """
import json, os, sys
uid, ws = int(sys.argv[1]), sys.argv[2]
pids = []
for p in os.listdir('/proc'):
    if p.isdigit():
        try:
            st = os.stat('/proc/' + p)
            state = open('/proc/%s/stat' % p).read().rsplit(')', 1)[1].split()[0]
        except OSError:
            continue
        if st.st_uid == uid and state not in ('Z', 'X'):
            if int(p) != os.getpid():
                pids.append(int(p))
print(json.dumps({'pids': pids, 'entries': sorted(os.listdir(ws))}))
"""


def index_of(result) -> int:
    """The session's index on its pod, from the Result's executor name (pod/sessions/i)."""
    return int(result.executor.rsplit("/", 1)[1])


def leftovers(fleet, index: int) -> dict:
    """Live processes of session `index`'s uid and what its workspace holds."""
    uid = SESSION_UID_BASE + index
    box = fleet.pods[0].sandbox
    # As the session's uid: its workspace is 0700 to it, and exec has no DAC override.
    out = subprocess.run(
        box._cmd("exec", "--user", f"{uid}:{uid}", box.id, "/usr/bin/python3", "-c", _PROBE, str(uid),
                 f"{SESSION_ROOT}/{index}"),
        capture_output=True, text=True, timeout=30,
    )
    if out.returncode == 137:  # the session's cleanup (kill every process of its uid) took the probe too
        return {"pids": ["probe killed by the cleanup"], "entries": []}
    assert out.returncode == 0, (out.returncode, out.stdout, out.stderr)
    return json.loads(out.stdout)


def wait_clean(fleet, index: int, timeout: float = 20.0) -> dict:
    """Poll until nothing of the session is left (or the deadline): returns the last look."""
    deadline = time.monotonic() + timeout
    while True:
        seen = leftovers(fleet, index)
        if (not seen["pids"] and not seen["entries"]) or time.monotonic() > deadline:
            return seen
        time.sleep(0.2)  # poll with a deadline


_PS = """
import json, os
out = []
for p in os.listdir('/proc'):
    if p.isdigit() and int(p) != os.getpid():
        try:
            cmd = open('/proc/%s/cmdline' % p, 'rb').read().split(b'\\0')
            out.append([int(p), os.stat('/proc/' + p).st_uid, [c.decode(errors='replace') for c in cmd if c]])
        except OSError:
            continue
print(json.dumps(out))
"""


def processes(fleet) -> list[tuple[int, int, list[str]]]:
    """(pid, uid, argv) of every process in the pod's sandbox."""
    out = fleet.pods[0].sandbox.exec("/usr/bin/python3", "-c", _PS)
    assert out.returncode == 0, (out.returncode, out.stdout, out.stderr)
    return [tuple(p) for p in json.loads(out.stdout)]


def zygotes(fleet) -> list[int]:
    """The session zygote's pid (root; the sessions it forked carry its argv as another uid)."""
    return [pid for pid, uid, argv in processes(fleet) if uid == 0 and any("session_zygote" in a for a in argv)]
