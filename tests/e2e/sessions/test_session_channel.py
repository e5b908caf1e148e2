"""A session's channel to the supervisor (a socketpair): the session's own code can write
to it, so anything that breaks the protocol ends that session with a clear reason while
the pod serves its other sessions and jobs; processes a call forks or execs do not hold it."""

from __future__ import annotations

import pytest

from dispatcher import SessionLost

FIND_CHANNEL = (  # the session process's only socket (the listing's own descriptor is gone when read)
    "import os, struct, json\n"
    "def link(fd):\n"
    "    try:\n"
    "        return os.readlink(f'/proc/self/fd/{fd}')\n"
    "    except OSError:\n"
    "        return ''\n"
    "chan = [int(f) for f in os.listdir('/proc/self/fd') if link(f).startswith('socket:')]\n"
    "assert len(chan) == 1, chan\n"
    "chan = chan[0]\n"
)
GARBAGE = {
    "oversized": "os.write(chan, b'\\xff\\xff\\xff\\xff')",
    "not JSON": "os.write(chan, struct.pack('>I', 5) + b'nojso')",
    "unexpected": "body = json.dumps({'t': 'ready'}).encode(); os.write(chan, struct.pack('>I', len(body)) + body)",
    "forged reply": "body = json.dumps({'t': 'result', 'seq': 2, 'status': 'ok', 'exit_code': 'zero'}).encode()\n"
                    "os.write(chan, struct.pack('>I', len(body)) + body)",
}
SAID = {"oversized": "frame of 4294967295 bytes", "not JSON": "malformed frame", "unexpected": "unexpected frame",
        "forged reply": "malformed reply"}


@pytest.mark.timeout(90)
@pytest.mark.parametrize("kind", list(GARBAGE))
def test_garbage_on_the_channel_ends_only_that_session(sclient, kind):
    with sclient.session() as other, sclient.session() as s:
        other.run("kept = 1")
        assert s.run("x = 1").ok  # call 1; the garbage is written during call 2
        r = s.run(FIND_CHANNEL + GARBAGE[kind] + "\nprint('wrote')")
        assert r.status.value == "error" and SAID[kind] in r.error and "the session ended" in r.error, r
        with pytest.raises(SessionLost) as info:
            s.run("print(x)")
        assert SAID[kind] in info.value.reason
        assert other.run("print(kept)").stdout == "1\n"  # the pod's other session goes on
    assert sclient.run("print('served')", timeout=10).stdout == "served\n"  # and so do its jobs


@pytest.mark.timeout(90)
def test_processes_a_call_starts_do_not_hold_the_channel(sclient):
    with sclient.session() as s:
        r = s.run(FIND_CHANNEL + (
            "import subprocess\n"
            "me = os.readlink(f'/proc/self/fd/{chan}')\n"
            "r, w = os.pipe()\n"
            "pid = os.fork()\n"
            "if pid == 0:\n"
            "    try:\n"
            "        held = os.readlink(f'/proc/self/fd/{chan}') == me\n"
            "    except OSError:\n"
            "        held = False\n"
            "    os.write(w, b'held' if held else b'free')\n"
            "    os._exit(0)\n"
            "os.waitpid(pid, 0)\n"
            "print('forked:', os.read(r, 4).decode())\n"
            "shown = subprocess.run(['/bin/sh', '-c', f'readlink /proc/self/fd/{chan}'], close_fds=False,\n"
            "                       capture_output=True, text=True).stdout.strip()\n"
            "print('exec:', 'held' if shown == me else 'free')\n"
        ))
        assert r.stdout == "forked: free\nexec: free\n", r
        assert s.run("print('still served')").stdout == "still served\n"
