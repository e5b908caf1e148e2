"""Richer jobs: input files, out/ files, bash, streaming output."""

import asyncio

import pytest

from dispatcher import AsyncClient, Chunk, InvalidJob
from warmfleet.contract.schema import Status


def test_input_files_are_placed_in_the_workspace(client):
    r = client.run(
        "import os\nprint(open('data/in.txt').read(), open('blob', 'rb').read().hex(), sorted(os.listdir('.')))",
        files={"data/in.txt": "hello", "blob": b"\x00\xff"},
    )
    assert r.stdout.strip() == "hello 00ff ['blob', 'data']", r


def test_out_files_come_back_regular_files_only(client):
    r = client.run(
        "import os\n"
        "os.makedirs('out/sub')\n"
        "open('out/a.txt', 'w').write('alpha')\n"
        "open('out/sub/b.bin', 'wb').write(bytes(range(256)))\n"
        "os.symlink('/etc/passwd', 'out/link')\n"
        "os.mkfifo('out/fifo')\n"
        "open('not-out.txt', 'w').write('stays')\n"
    )
    assert r.status is Status.OK, r
    assert sorted(r.files) == ["a.txt", "sub/b.bin"]
    assert r.file("a.txt") == b"alpha" and r.file("sub/b.bin") == bytes(range(256))
    assert r.files_truncated  # the link and the FIFO were left out


def test_out_files_are_bounded_in_count(client):
    r = client.run("import os\nos.mkdir('out')\nfor i in range(150): open(f'out/{i:03}', 'w').write('x')")
    assert len(r.files) == 100 and r.files_truncated


def test_bad_files_are_refused_before_enqueueing(client):
    for files in ({"../escape": b"x"}, {"/abs": b"x"}, {"a//b": b"x"}, {"ok": 3}, {f"f{i}": b"" for i in range(101)}):
        with pytest.raises(InvalidJob):
            client.submit("print(1)", files=files)


def test_bash_runs_under_the_same_rules(client):
    r = client.run("echo hi; echo err >&2; id -u; exit 3", language="bash")
    assert (r.status, r.exit_code) == (Status.ERROR, 3), r
    out = r.stdout.split()
    assert out[0] == "hi" and int(out[1]) >= 61000 and r.stderr == "err\n"
    assert client.run("sleep 30", language="bash", timeout=1).status is Status.TIMEOUT
    assert client.run("while :; do :; done", language="bash", cpu_time=1, timeout=20).status is Status.CPU_LIMIT
    assert client.run("mkdir out; echo bash > out/x", language="bash").file("x") == b"bash\n"


CODE = "import sys, time\nfor i in range(3):\n    print(i, flush=True)\n    time.sleep(0.3)\nprint('e', file=sys.stderr)"


def test_stream_yields_chunks_before_the_result(client, fleet):
    """The first line arrives while the job is still held: it goes on only when the test
    releases it, after that line came (a stream that sent chunks only with the result
    would hold until the job's wall clock, and end `timeout`)."""
    import redis

    from support import fleet_faults as ff

    code = "import sys\nprint(0, flush=True)\n" + ff.held_job("1") + "\nprint(2)\nprint('e', file=sys.stderr)"
    r = redis.Redis.from_url(fleet.client_url, decode_responses=True)
    ff.poll(lambda: ff.busy_slot(r) is None, 20, "no slot busy (the next busy one is this job's)")
    seen, released = [], False
    try:
        for item in client.stream(code, timeout=60):
            seen.append(item)
            if isinstance(item, Chunk) and not released:
                assert item == Chunk("stdout", "0\n"), item
                pod_id, slot = ff.poll(lambda: ff.busy_slot(r), 20, "the job's slot")
                ff.release(fleet, pod_id, slot.slot)
                released = True
    finally:
        r.close()
    result = seen[-1]
    chunks = seen[:-1]
    assert result.status is Status.OK, result
    assert "".join(c.data for c in chunks if c.stream == "stdout") == result.stdout == "0\n1\n2\n"
    assert "".join(c.data for c in chunks if c.stream == "stderr") == result.stderr == "e\n"


def test_async_stream_matches_run(fleet):
    async def go():
        async with AsyncClient(fleet.client_url) as ac:
            items = [item async for item in ac.stream(CODE)]
            ran = await ac.run(CODE)
            return items, ran

    items, ran = asyncio.run(go())
    streamed = items[-1]
    assert (streamed.status, streamed.stdout, streamed.stderr) == (ran.status, ran.stdout, ran.stderr)
    assert all(isinstance(i, Chunk) for i in items[:-1]) and len(items) > 2
