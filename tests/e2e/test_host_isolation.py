"""What a job sees of the host through the local pod's root (warmfleet/local/rootfs.py):
the system directories, a generated /etc, the interpreter; nothing else."""

import json
import os
import secrets
import sys

import pytest

from warmfleet.contract.schema import Status

CHECKOUT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CANARY_DIRS = ("/srv", "/opt", "/var/tmp", "/home")


@pytest.fixture
def canaries():
    """World-readable files in world-readable host directories, removed afterwards."""
    name = f"warmfleet-canary-{secrets.token_hex(4)}"
    paths = []
    for d in CANARY_DIRS:
        os.makedirs(d, exist_ok=True)
        path = os.path.join(d, name)
        with open(path, "w") as f:
            f.write("host secret\n")
        os.chmod(path, 0o644)
        paths.append(path)
    yield paths
    for path in paths:
        os.unlink(path)


def test_host_files_are_neither_readable_nor_visible(client, canaries):
    code = (
        "import json, os, sys\n"
        f"paths = {canaries!r}\n"
        "seen = {}\n"
        "for p in paths:\n"
        "    try:\n"
        "        seen[p] = open(p).read()\n"
        "    except OSError as e:\n"
        "        seen[p] = type(e).__name__\n"
        "    try:\n"
        "        seen[p + ' listed'] = os.path.basename(p) in os.listdir(os.path.dirname(p))\n"
        "    except OSError as e:\n"
        "        seen[p + ' listed'] = type(e).__name__\n"
        "print(json.dumps({'seen': seen, 'root': sorted(os.listdir('/'))}))"
    )
    r = client.run(code)
    assert r.status is Status.OK, r
    out = json.loads(r.stdout)
    assert "host secret" not in r.stdout
    for p in canaries:
        assert out["seen"][p] == "FileNotFoundError", out
        assert out["seen"][p + " listed"] in (False, "FileNotFoundError"), out
    # The exact top level: our mount points, the links into /usr, and the first component
    # of where this interpreter and venv live (shown at their own paths).
    allowed = {"dev", "etc", "opt", "proc", "run", "sys", "tmp", "usr"}
    allowed |= {n for n in ("bin", "sbin", "lib", "lib32", "lib64", "libx32") if os.path.lexists(f"/{n}")}
    allowed |= {os.path.realpath(p).split("/")[1] for p in (sys.prefix, sys.base_prefix)}
    assert set(out["root"]) == allowed, out["root"]


def test_the_checkout_and_the_executor_are_out_of_reach(client):
    code = (
        "import importlib, json, os, sys\n"
        f"checkout = {CHECKOUT!r}\n"
        "out = {'path': sys.path, 'exists': {}, 'imports': {}}\n"
        "for rel in ('README.md', 'pyproject.toml', 'tests', '.git', 'executor/lean/child.py'):\n"
        "    out['exists'][rel] = os.path.lexists(os.path.join(checkout, rel))\n"
        "for m in ('executor', 'executor.lean.child', 'warmfleet', 'dispatcher', 'redis', 'pydantic'):\n"
        "    try:\n"
        "        importlib.import_module(m); out['imports'][m] = 'IMPORTED'\n"
        "    except ImportError as e:\n"
        "        out['imports'][m] = type(e).__name__\n"
        "try:\n"
        "    out['opt'] = os.listdir('/opt/warmfleet')\n"
        "except OSError as e:\n"
        "    out['opt'] = type(e).__name__\n"
        "print(json.dumps(out))"
    )
    r = client.run(code)
    assert r.status is Status.OK, r
    out = json.loads(r.stdout)
    assert not any(out["exists"].values()), out["exists"]
    assert set(out["imports"].values()) == {"ModuleNotFoundError"}, out["imports"]
    # The stdlib only (under -S -I: no site-packages), never the executor's install.
    base = os.path.realpath(sys.base_prefix)
    assert out["path"] and all(p.startswith(base + "/") for p in out["path"]), out["path"]
    assert out["opt"] == "PermissionError"  # the executor's packages: root only


TOOLS = ("ls", "cat", "grep", "sed", "awk", "sort")


def test_bash_and_subprocess_find_the_common_tools(client):
    r = client.run(
        "for t in " + " ".join(TOOLS) + "; do command -v $t >/dev/null || echo missing $t; done\n"
        "printf 'b 2\\na 1\\n' > f; cat f | grep -v x | sed 's/ /=/' | awk -F= '{print $2 $1}' | sort; ls",
        language="bash",
    )
    assert (r.status, r.stdout, r.stderr) == (Status.OK, "1a\n2b\nf\n", ""), r
    r = client.run(
        "import subprocess\n"
        "p = subprocess.run('printf \"b\\\\na\\\\n\" | sort | sed s/a/A/ | awk \"{print}\" | grep -c .; "
        "ls -d /usr; cat /etc/hosts | grep -c localhost', shell=True, capture_output=True, text=True)\n"
        "print(p.returncode, p.stdout.split(), p.stderr)\n"
        "import pwd, os; print(pwd.getpwuid(os.getuid()).pw_name)"
    )
    assert r.status is Status.OK, r
    assert r.stdout.splitlines()[0] == "0 ['2', '/usr', '2'] ", r
    assert r.stdout.splitlines()[1].startswith("slot"), r


def test_a_job_cannot_write_anywhere_but_its_workspace(client):
    r = client.run(
        "import os\n"
        "for d in ('/tmp', '/tmp/ws', '/etc', '/opt', '/usr', os.path.dirname(os.getcwd())):\n"
        "    try:\n"
        "        open(os.path.join(d, 'x'), 'w'); print(d, 'WROTE')\n"
        "    except OSError as e:\n"
        "        print(d, type(e).__name__)"
    )
    assert r.status is Status.OK and "WROTE" not in r.stdout, r
