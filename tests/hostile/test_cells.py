"""Hostile cells: reprs that are huge, raise, hang or lie, junk MIME bundles, display()
in a loop, a generator as the last line, a session that deletes what cells use, and code
that writes into the executor's framing. Each ends with a clear status or a dropped
output with a marker, and the slot (or session) serves the next call unharmed."""

from __future__ import annotations

import pytest
from dispatcher import SessionLost
from executor.lean.cell import MAX_OUTPUTS, OUTPUT_BYTES
from warmfleet.contract.schema import Status

pytestmark = pytest.mark.timeout(120)

# The job's status pipe: the one writable pipe besides stdout and stderr.
FIND_STATUS_PIPE = """\
import os, fcntl, stat
def status_fd():
    for name in os.listdir('/proc/self/fd'):
        fd = int(name)
        try:
            st = os.fstat(fd)
        except OSError:
            continue
        if fd > 2 and stat.S_ISFIFO(st.st_mode) and fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_ACCMODE == os.O_WRONLY:
            return fd
fd = status_fd()
"""


def test_a_huge_repr_is_dropped_with_a_marker(run_hostile):
    r = run_hostile("class Big:\n    def __repr__(self):\n        return 'x' * (20 << 20)\nBig()")
    assert r.status is Status.OK, r
    assert r.outputs_truncated
    [out] = r.outputs
    assert out["type"] == "result" and out["data"]["text/plain"].startswith("[warmfleet: output dropped: ")
    assert f"cap of {OUTPUT_BYTES} per output" in r.text


def test_reprs_that_raise_or_return_junk_fall_back_to_text(run_hostile):
    r = run_hostile(
        "class Raises:\n    def __repr__(self): raise RuntimeError('no repr')\n"
        "class NotStr:\n    def __repr__(self): return b'bytes'\n"
        "class BadHtml:\n    def _repr_html_(self): raise ValueError('no html')\n    def __repr__(self): return 'BadHtml()'\n"
        "class Junk:\n    def _repr_mimebundle_(self, include=None, exclude=None):\n"
        "        return {'image/png': bytes(range(256)), 'text/html': 5, 'application/x-obj': object(), '\\x00': 'x',\n"
        "                'no-slash': 'x', 'text/plain': 'junk'}\n"
        "display(Raises(), NotStr(), BadHtml(), Junk())\n"
    )
    assert r.status is Status.OK, r
    raises, not_str, bad_html, junk = (o["data"] for o in r.outputs)
    assert raises["text/plain"].startswith("<__main__.Raises object at 0x")
    assert not_str["text/plain"].startswith("<__main__.NotStr object at 0x")
    assert bad_html == {"text/plain": "BadHtml()"}
    assert junk == {"image/png": "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8gISIjJCUmJygpKissLS4vMDEyMzQ1Njc4OTo7PD0+P0BBQkNERUZHSElKS0xNTk9QUVJTVFVWV1hZWltcXV5fYGFiY2RlZmdoaWprbG1ub3BxcnN0dXZ3eHl6e3x9fn+AgYKDhIWGh4iJiouMjY6PkJGSk5SVlpeYmZqbnJ2en6ChoqOkpaanqKmqq6ytrq+wsbKztLW2t7i5uru8vb6/wMHCw8TFxsfIycrLzM3Oz9DR0tPU1dbX2Nna29zd3t/g4eLj5OXm5+jp6uvs7e7v8PHy8/T19vf4+fr7/P3+/w==",
                    "text/plain": "junk"}
    assert "RuntimeError: no repr" in r.stderr and "_repr_html_() raised ValueError" in r.stderr


def test_a_repr_that_never_returns_is_stopped_by_the_wall_clock(run_hostile):
    r = run_hostile("display('first')\nclass Hang:\n    def _repr_html_(self):\n        while True: pass\nHang()",
                    timeout=2, cpu_time=5)
    assert r.status is Status.TIMEOUT, r
    assert [o["data"]["text/plain"] for o in r.outputs] == ["'first'"]  # what it displayed before


def test_a_million_displays_keep_the_cap(run_hostile):
    r = run_hostile("for i in range(1_000_000):\n    display(i)", timeout=30)
    assert r.status is Status.OK, r
    assert r.outputs_truncated and len(r.outputs) == MAX_OUTPUTS
    assert r.outputs[-1]["data"]["text/plain"].startswith("[warmfleet: outputs dropped from here on")


def test_a_generator_as_the_last_line_is_shown_not_run(run_hostile):
    r = run_hostile("def g():\n    while True:\n        yield 1\ng()")
    assert r.status is Status.OK and r.text.startswith("<generator object g at 0x"), r


def test_record_headers_on_stdout_are_only_text(run_hostile):
    forged = 'D' + '\\x00\\x00\\x00\\x2c' + '{"type": "result", "data": {"text/plain": "1"}}'
    r = run_hostile(f"import sys\nsys.stdout.write('{forged}')\nsys.stdout.flush()\nsys.stderr.write('{forged}');")
    assert r.status is Status.OK, r
    assert r.outputs == [] and r.text is None
    assert r.stdout.startswith("D\x00\x00\x00,{")


def test_junk_and_forged_records_on_the_status_pipe_are_checked_and_capped(run_hostile):
    r = run_hostile(FIND_STATUS_PIPE + (
        "import json\n"
        "def rec(kind, payload): os.write(fd, kind + len(payload).to_bytes(4, 'big') + payload)\n"
        "rec(b'D', b'not json')\n"
        "rec(b'D', json.dumps({'type': 'evil', 'data': {}}).encode())\n"
        "rec(b'D', json.dumps({'type': 'display', 'data': {'text/plain': 7}}).encode())\n"
        "rec(b'E', b'[1, 2]')\n"
        "for i in range(3000):\n"
        "    rec(b'D', json.dumps({'type': 'display', 'data': {'text/plain': str(i)}}).encode())\n"
        "rec(b'D', json.dumps({'type': 'display', 'data': {'text/plain': 'x' * (4 << 20)}}).encode())\n"
        "'done'"
    ), timeout=30)
    assert r.status is Status.OK, r
    assert r.outputs_truncated
    assert len(r.outputs) <= MAX_OUTPUTS
    assert all(o["type"] == "display" and o["data"]["text/plain"].isdigit() for o in r.outputs)
    assert r.error_name is None


def test_a_record_header_that_swallows_the_rest_loses_only_the_outputs(run_hostile):
    r = run_hostile(FIND_STATUS_PIPE + "os.write(fd, b'D' + (1 << 30).to_bytes(4, 'big'))\nprint('still here')\n1 / 0")
    assert (r.status, r.exit_code) == (Status.ERROR, 1), r
    assert r.stdout == "still here\n" and "ZeroDivisionError" in r.stderr
    assert r.outputs == []  # its own records were swallowed by the forged length


def test_a_session_that_deletes_what_cells_use_is_still_served(hclient):
    with hclient.session() as s:
        r = s.run("import builtins, sys\ndel builtins.display\nsys.displayhook = None\nbuiltins.print = None\n"
                  "sys.excepthook = None\n'gone'")
        assert r.ok and r.text == "'gone'", r
        r = s.run("display(1)\n2")
        assert [(o["type"], o["data"]["text/plain"]) for o in r.outputs] == [("display", "1"), ("result", "2")], r
        r = s.run("display = None\ndisplay(3)")  # a global of its own shadows it, as in IPython
        assert r.error_name == "TypeError", r
        r = s.run("del display\ndisplay(4)\nstr(print)")
        assert [o["data"]["text/plain"] for o in r.outputs] == ["4", "'None'"], r
        r = s.run("class Hang:\n    def __repr__(self):\n        while True: pass\ndisplay('shown')\nHang()", timeout=2)
        assert r.status is Status.TIMEOUT and [o["data"]["text/plain"] for o in r.outputs] == ["'shown'"], r
        assert s.run("21 * 2").text == "42"


def test_a_session_that_forges_its_reply_ends_with_a_clear_error(hclient):
    s = hclient.session()
    r = s.run(
        "import os, json, stat\n"
        "def is_socket(fd):\n"
        "    try: return stat.S_ISSOCK(os.fstat(fd).st_mode)\n"
        "    except OSError: return False\n"
        "chan = next(fd for fd in map(int, os.listdir('/proc/self/fd')) if fd > 2 and is_socket(fd))\n"
        "body = json.dumps({'t': 'result', 'seq': 1, 'status': 'ok', 'outputs': [{'type': 'evil', 'data': {}}]}).encode()\n"
        "os.write(chan, len(body).to_bytes(4, 'big') + body)\n"
        "import time; time.sleep(1)"
    )
    assert r.status is Status.ERROR and "malformed reply" in r.error, r
    with pytest.raises(SessionLost):
        s.run("1")
    with hclient.session() as fresh:
        assert fresh.run("1 + 1").text == "2"
    assert hclient.run("'job'").text == "'job'"
