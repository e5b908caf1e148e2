"""A data-science pool: jobs import numpy, pandas and matplotlib from the job
environment (envs/data-science.txt, built by scripts/setup), preloaded in the runner,
inside gVisor; figures come back as PNG; nothing of the executor is importable; a
preloaded module changed by one job is pristine for the next."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from support.png import png_size

from dispatcher import Client

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DATA_SCIENCE = os.path.join(ROOT, "envs", "data-science.txt")
WARMFLEET = os.path.join(os.path.dirname(sys.executable), "warmfleet")


@pytest.fixture
def ds(data_science_fleet):
    with Client(data_science_fleet.client_url) as c:
        yield c


@pytest.mark.timeout(120)
def test_numpy_and_pandas_give_the_right_numbers(ds):
    r = ds.run(
        "import numpy as np\n"
        "a = np.arange(1, 101)\n"
        "print(a.sum(), round(float(np.linalg.det(np.array([[1.0, 2.0], [3.0, 4.0]]))), 6), a.reshape(10, 10).trace())\n"
        "print(open('/proc/version').read().split()[2])\n"
    )
    assert r.ok, r
    lines = r.stdout.splitlines()
    assert lines[0] == "5050 -2.0 505"
    assert lines[1] == "4.4.0", "ran under gVisor's Sentry"

    r = ds.run(
        "import numpy as np, pandas as pd\n"
        "df = pd.DataFrame({'k': np.arange(10000) % 3, 'v': np.arange(10000)})\n"
        "g = df.groupby('k')['v'].agg(['sum', 'count', 'max'])\n"
        "print(g.to_dict('index'))\n"
    )
    assert r.ok, r
    expected = {k: {"sum": sum(range(k, 10000, 3)), "count": len(range(k, 10000, 3)), "max": max(range(k, 10000, 3))} for k in range(3)}
    assert eval(r.stdout.replace("np.int64", "")) == expected, r.stdout


@pytest.mark.timeout(120)
def test_figures_shown_or_left_open_come_back_as_png(ds):
    r = ds.run(
        "import matplotlib.pyplot as plt\n"
        "plt.plot([1, 3, 2]); plt.title('shown')\n"
        "plt.show()\n"
        "fig = plt.figure(figsize=(3, 2), dpi=100); plt.bar([1, 2], [3, 4])\n"
        "print(plt.get_backend())\n"
    )
    assert r.ok, r
    assert r.stdout.strip().lower() == "agg"
    assert sorted(r.files) == ["figure-1.png", "figure-2.png"]
    assert png_size(r.file("figure-1.png")) == (640, 480)
    assert png_size(r.file("figure-2.png")) == (300, 200)
    assert "non-interactive" not in r.stderr  # show() is ours, not Agg's warning


@pytest.mark.timeout(120)
def test_modules_outside_the_env_are_not_importable(ds, data_science_fleet):
    for name in ("seaborn", "warmfleet", "executor", "redis", "pydantic", "pip"):
        r = ds.run(f"import {name}")
        assert r.status.value == "error", (name, r)
        assert f"ModuleNotFoundError: No module named '{name}'" in r.stderr, (name, r.stderr)
    r = ds.run("import sys; print([p for p in sys.path if 'site-packages' in p])")
    assert r.ok and r.stdout.count("site-packages") == 1 and data_science_fleet.job_env.site_packages in r.stdout, r


@pytest.mark.timeout(120)
def test_a_preloaded_module_changed_by_one_job_is_pristine_for_the_next(ds):
    dirty = ds.run(
        "import numpy, pandas as pd, matplotlib as mpl\n"
        "pd.options.display.max_rows = 3\n"
        "numpy.mean = lambda *a, **k: 42\n"
        "mpl.rcParams['lines.linewidth'] = 9\n"
        "pd.DataFrame.planted = 'x'\n"
        "print(pd.options.display.max_rows, numpy.mean([1, 2]), mpl.rcParams['lines.linewidth'], pd.DataFrame.planted)\n"
    )
    assert dirty.ok and dirty.stdout.split() == ["3", "42", "9.0", "x"], dirty
    clean = ds.run(
        "import numpy, pandas as pd, matplotlib as mpl\n"
        "print(pd.options.display.max_rows, numpy.mean([1, 2]), mpl.rcParams['lines.linewidth'], hasattr(pd.DataFrame, 'planted'))\n"
    )
    assert clean.ok and clean.stdout.split() == ["60", "1.5", "1.5", "False"], clean
    assert clean.executor == dirty.executor  # same slot: a fresh fork, not a different process


@pytest.mark.timeout(120)
def test_budgets_hold_on_a_preloaded_child(ds):
    r = ds.run("import numpy as np\nx = np.ones((64, 1 << 20), dtype=np.uint8)\nprint(x.sum())", memory_mb=32)
    assert r.status.value == "memory_limit", r
    r = ds.run("import numpy as np\nprint(np.ones(1 << 20).sum())", memory_mb=32)  # 8 MiB on top of the env: fits
    assert r.ok and r.stdout.strip() == "1048576.0", r
    r = ds.run("import os; print(os.getuid())")
    assert r.ok and int(r.stdout) >= 61000, r


@pytest.mark.timeout(120)
def test_run_out_writes_the_returned_figures(data_science_fleet, tmp_path):
    out = subprocess.run(
        [WARMFLEET, "run", "--redis-url", data_science_fleet.client_url, "--out", str(tmp_path / "figs"), "-c",
         "import matplotlib.pyplot as plt; plt.plot([0, 1]); plt.show()"],
        capture_output=True, text=True, timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert os.listdir(tmp_path / "figs") == ["figure-1.png"]
    assert png_size((tmp_path / "figs" / "figure-1.png").read_bytes()) == (640, 480)


@pytest.mark.timeout(120)
async def test_mcp_tool_returns_figures_as_images(data_science_fleet):
    from mcp import ClientSession
    from mcp.client.stdio import StdioServerParameters, stdio_client

    params = StdioServerParameters(command=sys.executable, args=["-m", "warmfleet.cli.main", "mcp", "--redis-url", data_science_fleet.client_url])
    async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
        await session.initialize()
        res = await session.call_tool("run_python", {"code": "import matplotlib.pyplot as plt\nplt.plot([1, 2]); plt.show(); print('drawn')"})
    assert res.structured_content["status"] == "ok" and res.structured_content["files"] == ["figure-1.png"]
    assert "drawn" in res.content[0].text
    images = [c for c in res.content if c.type == "image"]
    assert len(images) == 1 and images[0].mime_type == "image/png"
    import base64

    assert png_size(base64.b64decode(images[0].data)) == (640, 480)


@pytest.mark.timeout(240)
def test_without_preload_jobs_import_from_the_env_and_show_is_captured():
    from warmfleet.local.fleet import LocalFleet
    from warmfleet.settings import FleetSettings

    f = LocalFleet(FleetSettings(pods=1, slots=1, drain_timeout_s=20, requirements=DATA_SCIENCE))
    f.start(ready_timeout=120)
    try:
        with Client(f.client_url) as c:
            # Not preloaded: the job imports (~0.5 GiB of address space) within its own budget.
            r = c.run("import numpy, matplotlib.pyplot as plt\nplt.plot([1, 2]); plt.show(); plt.close('all')\n"
                      "print(numpy.__version__)", memory_mb=1024, timeout=60, cpu_time=30)
            assert r.ok, r
            assert r.stdout.strip() == "2.4.6"
            assert list(r.files) == ["figure-1.png"] and png_size(r.file("figure-1.png")) == (640, 480)
            r = c.run("import numpy", memory_mb=64, timeout=60)
            # 64 MiB of address space cannot hold numpy's libraries: the import fails, plainly.
            assert r.status.value in ("memory_limit", "error"), r
            assert "MemoryError" in r.stderr or "failed to map segment" in r.stderr, r.stderr
    finally:
        f.stop()


@pytest.mark.timeout(120)
def test_up_refuses_a_bad_requirements_file_or_preload(tmp_path):
    bad = tmp_path / "bad.txt"
    bad.write_text("pandas=>=>2 !!\n")
    env = {**os.environ, "WARMFLEET_STATE_DIR": str(tmp_path / "state"), "WARMFLEET_ENV_CACHE": str(tmp_path / "envs")}
    out = subprocess.run([WARMFLEET, "up", "--requirements", str(bad)], env=env, capture_output=True, text=True, timeout=100)
    assert out.returncode == 2, out
    assert "warmfleet up: pip install failed" in out.stderr and "Invalid requirement" in out.stderr, out.stderr
    assert sorted(os.listdir(tmp_path / "envs")) == [".lock"]

    env.pop("WARMFLEET_ENV_CACHE")  # the data-science env from scripts/setup's cache
    out = subprocess.run([WARMFLEET, "up", "--requirements", DATA_SCIENCE, "--preload", "numpy,seaborn"],
                         env=env, capture_output=True, text=True, timeout=100)
    assert out.returncode == 2, out
    assert "cannot preload numpy, seaborn" in out.stderr and "No module named 'seaborn'" in out.stderr, out.stderr


@pytest.mark.timeout(240)
def test_readme_flow_a_data_science_pool_from_pools_yaml_returns_a_chart(tmp_path):
    """As docs/guides/job-environments.md tells a new user: `up --pools k8s/pools.yaml
    --pool data-analysis`, then `run --out` a pandas + matplotlib job and get the chart back."""
    env = {**os.environ, "WARMFLEET_STATE_DIR": str(tmp_path / "state")}
    up = subprocess.Popen([WARMFLEET, "up", "--pools", os.path.join(ROOT, "k8s", "pools.yaml"), "--pool", "data-analysis",
                           "--slots", "1"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        for line in up.stdout:  # `up` prints the URL once every slot is ready
            if "WARMFLEET_REDIS_URL=" in line:
                break
        assert up.poll() is None, up.stderr.read()
        code = ("import pandas as pd, matplotlib.pyplot as plt\n"
                "df = pd.DataFrame({'month': range(1, 13), 'sales': [3, 4, 6, 5, 8, 9, 12, 11, 9, 7, 5, 4]})\n"
                "print(df['sales'].sum())\n"
                "df.plot(x='month', y='sales', kind='bar'); plt.show()\n")
        out = subprocess.run([WARMFLEET, "run", "--pool", "data-analysis", "--out", str(tmp_path / "out"), "-c", code],
                             env=env, capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        assert out.stdout.strip() == "83"
        assert png_size((tmp_path / "out" / "figure-1.png").read_bytes()) == (640, 480)
    finally:
        up.terminate()
        up.wait(60)
    assert up.returncode == 0


@pytest.mark.timeout(180)
def test_a_session_starts_with_the_preload_imported_and_keeps_its_dataframe(ds):
    """Forked from the pod's session zygote, which imported the pool's preload: the first
    call finds pandas in sys.modules before any import, under the default budgets (they
    count on top of what the preload maps)."""
    with ds.session(idle_timeout=60) as s:
        first = s.run("import sys\nprint(sorted(m for m in ('numpy', 'pandas', 'matplotlib.pyplot') if m in sys.modules))\n"
                      "import pandas as pd\ndf = pd.DataFrame({'k': [1, 2, 1], 'v': [10, 20, 30]})")
        assert first.ok and first.stdout == "['matplotlib.pyplot', 'numpy', 'pandas']\n", first
        again = s.run("print(df.groupby('k')['v'].sum().to_dict())")
        assert again.ok and again.stdout == "{1: 40, 2: 20}\n", again
        assert "ModuleNotFoundError" in s.run("import redis").stderr
        assert "ModuleNotFoundError" in s.run("import executor.lean.session_zygote").stderr


@pytest.mark.timeout(180)
def test_a_preloaded_sessions_memory_budget_holds(ds):
    with ds.session(idle_timeout=60) as s:
        assert s.run("import numpy as np\nkeep = np.arange(5)").ok
        big = s.run("x = np.ones((64, 1 << 20), dtype=np.uint8)\nprint(x.sum())", memory_mb=32)
        assert big.status.value == "memory_limit", big
        fits = s.run("y = np.ones(1 << 20)\nprint(y.sum())", memory_mb=32)  # 8 MiB on top of the env: fits
        assert fits.ok and fits.stdout == "1048576.0\n", fits
        # Weighed several times meanwhile (every 250 ms): what it shares with the zygote is not its memory.
        slow = s.run("import time\ntime.sleep(1.5)\nprint(len(y))", memory_mb=32)
        assert slow.ok and slow.stdout == "1048576\n", slow
        assert s.run("print(int(keep.sum()))").stdout == "10\n"  # the budget interrupted a call, not the session


@pytest.mark.timeout(180)
def test_a_session_returns_each_calls_figures_once(ds):
    with ds.session(idle_timeout=60) as s:
        big = {"memory_mb": 1024, "timeout": 60, "cpu_time": 30}
        r = s.run("import logging\nlogging.basicConfig(level=logging.INFO)\n"
                  "import matplotlib.pyplot as plt\nplt.plot([1, 2]); plt.show()\nplt.figure(); plt.bar([1], [2])", **big)
        assert r.ok and sorted(r.files) == ["figure-1.png", "figure-2.png"], r
        # As in a job: the environment's font list is read, not rebuilt on the first import.
        assert "generated new fontManager" not in r.stderr and "Fontconfig" not in r.stderr, r.stderr
        assert png_size(r.file("figure-1.png")) == (640, 480)
        assert s.run("print(len(plt.get_fignums()))", **big).files == {}  # shown and closed: not sent again
        r = s.run("plt.plot([3, 1]); plt.show()", **big)
        assert list(r.files) == ["figure-1.png"] and png_size(r.file("figure-1.png")) == (640, 480)
