"""Snippets that flood their output, fill their disk and descriptors, leave things
behind for the next job, or plant links for the reset to follow."""

from warmfleet.contract.schema import FleetLimits, Status

CAP = FleetLimits().output_bytes


def test_stdout_flood_hits_the_output_limit(run_hostile):
    r = run_hostile("while True: print('x' * 4096)")
    assert r.status is Status.OUTPUT_LIMIT, r
    assert r.stdout_truncated and not r.stderr_truncated
    assert len(r.stdout.encode()) == CAP


def test_stderr_flood_hits_the_output_limit(run_hostile):
    r = run_hostile("import sys\nwhile True: sys.stderr.write('e' * 4096)")
    assert r.status is Status.OUTPUT_LIMIT, r
    assert r.stderr_truncated and len(r.stderr.encode()) == CAP


def test_one_huge_write_hits_the_output_limit(run_hostile):
    r = run_hostile("import os\nos.write(1, b'y' * (64 << 20))", memory_mb=256)
    assert r.status is Status.OUTPUT_LIMIT, r
    assert len(r.stdout.encode()) == CAP


def test_huge_file_write_is_stopped_by_the_file_size_limit(run_hostile):
    r = run_hostile("with open('big', 'wb') as f:\n    f.write(b'x' * (64 << 20))")
    assert (r.status, r.exit_code) == (Status.ERROR, 1), r
    assert "File too large" in r.stderr


def test_filling_the_workspace_is_stopped_by_its_size(run_hostile):
    r = run_hostile(
        "i = 0\nwhile True:\n    with open(f'f{i}', 'wb') as f:\n        f.write(b'x' * (15 << 20))\n    i += 1"
    )
    assert (r.status, r.exit_code) == (Status.ERROR, 1), r
    assert "No space left on device" in r.stderr


def test_thousands_of_files_are_removed_before_the_next_job(run_hostile):
    r = run_hostile("for i in range(20000):\n    open(f'f{i}', 'w').close()\nprint(len(__import__('os').listdir('.')))")
    assert (r.status, r.stdout) == (Status.OK, "20000\n"), r


def test_directories_nested_past_the_recursion_limit_are_removed(run_hostile):
    # Regression: the reset used to recurse, failed with RecursionError in every later
    # spare, and the slot stayed broken for good.
    r = run_hostile("import os\nfor _ in range(5000):\n    os.mkdir('d')\n    os.chdir('d')\nprint('deep')")
    assert (r.status, r.stdout) == (Status.OK, "deep\n"), r


def test_descriptor_exhaustion_is_bounded(run_hostile):
    r = run_hostile(
        "import os, socket\nheld = []\ntry:\n    while True:\n"
        "        held.append(os.open('/dev/null', os.O_RDONLY))\n        held.extend(os.pipe())\n"
        "        held.extend(s.detach() for s in socket.socketpair())\n"
        "except OSError as e:\n    print(e.errno == 24, len(held) <= 256)"
    )
    assert (r.status, r.stdout) == (Status.OK, "True True\n"), r


LEAVE_BEHIND = """\
import os
for d in ('/tmp', '/dev/shm', '/var/tmp', '/', '/run', os.getcwd(), os.environ['HOME'], os.environ['TMPDIR']):
    try:
        with open(os.path.join(d, 'left-by-job-1'), 'w') as f:
            f.write('secret')
        print(d, 'WROTE')
    except OSError as e:
        print(d, type(e).__name__)
"""

LOOK_FOR_IT = """\
import os
hits = []
for d in ('/tmp', '/dev/shm', '/var/tmp', '/', '/run', os.getcwd(), os.environ['HOME'], os.environ['TMPDIR']):
    try:
        if 'left-by-job-1' in os.listdir(d):
            hits.append(d)
    except OSError:
        pass
print(hits, os.listdir('.'))
"""


def test_files_left_anywhere_are_gone_for_the_next_job(run_hostile, hclient):
    first = run_hostile(LEAVE_BEHIND)
    assert first.status is Status.OK, first
    wrote = [line.split()[0] for line in first.stdout.splitlines() if line.endswith("WROTE")]
    # Only the workspace (which is also HOME and TMPDIR) is writable at all.
    assert len(set(wrote)) == 1 and all(d.startswith("/tmp/ws/") for d in wrote), first.stdout
    second = hclient.run(LOOK_FOR_IT)
    assert (second.status, second.stdout) == (Status.OK, "[] []\n"), second
    assert second.executor == first.executor


PLANT_LINKS = """\
import os
targets = ['/', '/etc', '/etc/passwd', '/run', '/run/redis.sock', '/proc/1/root', '/proc/1/cwd',
           '/usr/lib/python3.11', '/tmp/ws', '/nonexistent']
os.mkdir('d')
for i, t in enumerate(targets):
    os.symlink(t, f'link{i}')
    os.symlink(t, f'd/link{i}')
os.symlink('.', 'self'); os.symlink('loop', 'loop')
os.mkfifo('fifo'); os.mkfifo('d/fifo')
import socket; socket.socket(socket.AF_UNIX).bind('sock')
os.link('d/fifo', 'hardlink-to-fifo')
os.mkdir('locked'); os.symlink('/etc', 'locked/etc'); os.chmod('locked', 0)
os.chmod('d', 0o500)
os.chmod('.', 0)  # the workspace itself, locked
print('planted')
"""

CHECK_TARGETS = """\
import os
print(sorted(os.listdir('.')), os.path.getsize('/etc/passwd') > 0, os.path.isdir('/usr/lib/python3.11/json'),
      oct(os.stat('.').st_mode & 0o777))
"""


def test_planted_symlinks_are_never_followed_by_the_reset(run_hostile, hclient):
    r = run_hostile(PLANT_LINKS)
    assert (r.status, r.stdout) == (Status.OK, "planted\n"), r
    after = hclient.run(CHECK_TARGETS)
    assert (after.status, after.stdout) == (Status.OK, "[] True True 0o700\n"), after


PLANT_IN_OUT = """\
import os
os.makedirs('out/sub')
open('out/real.txt', 'w').write('mine')
for i, t in enumerate(['/etc/passwd', '/', '/proc/1/environ', '/run/redis.sock', '/proc/self/fd/1']):
    os.symlink(t, f'out/link{i}')
os.symlink('/etc', 'out/sub/etc')
os.mkfifo('out/fifo')  # a collector that opens it without O_NONBLOCK would hang
os.symlink('/usr/lib/python3.11', 'out/pydir')
print('planted')
"""


def test_output_file_collection_never_follows_links_or_blocks(run_hostile):
    r = run_hostile(PLANT_IN_OUT, timeout=10)
    assert (r.status, r.stdout) == (Status.OK, "planted\n"), r
    assert r.files.keys() == {"real.txt"} and r.file("real.txt") == b"mine", r.files.keys()
    assert r.files_truncated  # the links and the FIFO were left out, and it says so


def test_an_out_dir_that_is_itself_a_link_returns_nothing(run_hostile):
    r = run_hostile("import os\nos.symlink('/etc', 'out')\nprint('planted')")
    assert (r.status, r.stdout, r.files) == (Status.OK, "planted\n", {}), r
