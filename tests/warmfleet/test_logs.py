"""Log lines carry the pid of the process that wrote them, also after a fork."""

import json
import logging
import os

from warmfleet.plumbing.logs import JsonFormatter


def _line() -> dict:
    record = logging.LogRecord("t", logging.INFO, __file__, 1, "hello", (), None)
    return json.loads(JsonFormatter().format(record))


def test_pid_is_ours_and_follows_a_fork():
    assert _line()["pid"] == os.getpid()
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.write(w, str(_line()["pid"] == os.getpid()).encode())
        finally:
            os._exit(0)
    os.close(w)
    answer = os.read(r, 10)
    os.waitpid(pid, 0)
    os.close(r)
    assert answer == b"True"
