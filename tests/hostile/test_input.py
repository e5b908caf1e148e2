"""Snippets that are not what they claim: invalid Python, bytes that are not UTF-8,
NUL bytes, and entries that reach the stream without the client's checks."""

import json
import uuid

from warmfleet.contract import keys
from warmfleet.contract.schema import Job, Status


def test_invalid_python_is_an_error(run_hostile):
    r = run_hostile("def (:\n  print(")
    assert (r.status, r.exit_code) == (Status.ERROR, 1), r
    assert "SyntaxError" in r.stderr


def test_non_utf8_and_nul_bytes_in_output(run_hostile):
    r = run_hostile(
        "import sys\nsys.stdout.buffer.write(b'ok\\xff\\xfe\\x00end\\n')\nsys.stdout.flush()\n"
        "sys.stderr.buffer.write(b'\\xc3\\x28\\x00'); sys.stderr.flush()\nprint('\\udcff')"
    )
    assert r.status is Status.OK, r
    assert r.stdout == "ok\ufffd\ufffd\x00end\n\\udcff\n", repr(r.stdout)
    assert r.stderr == "\ufffd(\x00", repr(r.stderr)


def test_nul_byte_in_code_sent_past_the_client_is_rejected(hclient):
    # A hostile producer writes straight to the stream; the executor checks again.
    job = Job(job_id=uuid.uuid4().hex, code="print(1)", reply_to=hclient.channel).model_dump()
    job["code"] = "print(1)\x00import os"
    hclient._subscribe()
    hclient.redis.xadd(keys.stream(hclient.pool), {"job": json.dumps(job)})
    r = hclient.wait(job["job_id"], timeout=20)
    assert r.status is Status.REJECTED and "NUL" in (r.error or ""), r


def test_budget_over_the_fleet_maximum_sent_past_the_client_is_rejected(hclient):
    job = Job(job_id=uuid.uuid4().hex, code="print(1)", reply_to=hclient.channel).model_dump()
    job["timeout"] = 1e9
    hclient._subscribe()
    hclient.redis.xadd(keys.stream(hclient.pool), {"job": json.dumps(job)})
    r = hclient.wait(job["job_id"], timeout=20)
    assert r.status is Status.REJECTED and "timeout" in (r.error or ""), r
