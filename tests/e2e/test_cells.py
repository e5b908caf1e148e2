"""Cells through a real fleet (data-science job environment, preloaded, in gVisor):
jobs and session calls return the last expression's value, display outputs, figures as
images and structured errors, as a notebook shows them; the CLI and a session's per-call
environment. One fleet for the module."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys

import pytest
from support.png import png_size

from dispatcher import Client

TABLE = "application/vnd.warmfleet.table+json"


@pytest.fixture
def cc(data_science_fleet):
    with Client(data_science_fleet.client_url) as c:
        yield c


DF = "import pandas as pd\ndf = pd.DataFrame({'n': range(1000), 'sq': [i * i for i in range(1000)], 's': ['a', 'b'] * 500})\n"


@pytest.mark.timeout(120)
def test_a_job_ending_in_a_dataframe_returns_text_html_and_its_data(cc):
    r = cc.run(DF + "df")
    assert r.ok, r
    [out] = r.outputs
    assert out["type"] == "result"
    assert r.text == out["data"]["text/plain"]
    assert r.text.splitlines()[0] == "       n      sq  s"  # pandas' own repr, as IPython shows it
    assert "[1000 rows x 3 columns]" in r.text
    assert out["data"]["text/html"].startswith("<div>") and "<table" in out["data"]["text/html"]
    table = json.loads(out["data"][TABLE])
    assert table["columns"] == ["n", "sq", "s"] and table["rows"] == 1000 and not table["truncated"]
    assert table["data"]["sq"][999] == 998001 and table["index"][:3] == [0, 1, 2]
    assert r.stdout == "" and r.error_name is None

    r = cc.run("import pandas as pd, numpy as np\n"
               "pd.DataFrame({'t': pd.to_datetime(['2026-01-02', None]), 'v': [1.5, np.nan]}, index=['a', 'b'])")
    table = json.loads(r.outputs[0]["data"][TABLE])
    assert table == {"columns": ["t", "v"], "index": ["a", "b"], "rows": 2, "truncated": False,
                     "data": {"t": ["2026-01-02T00:00:00.000", None], "v": [1.5, None]}}, table


@pytest.mark.timeout(120)
def test_a_chart_is_an_image_output_and_still_a_figure_file(cc):
    r = cc.run("import matplotlib.pyplot as plt\nplt.plot([1, 3, 2])\nplt.show()\nplt.figure(figsize=(3, 2)); plt.bar([1], [2]);")
    assert r.ok, r
    assert [o["type"] for o in r.outputs] == ["display", "display"]
    assert r.outputs[0]["data"]["text/plain"] == "<Figure size 640x480 with 1 Axes>"
    first = base64.b64decode(r.outputs[0]["data"]["image/png"])
    assert png_size(first) == (640, 480) and first == r.file("figure-1.png")
    assert png_size(base64.b64decode(r.outputs[1]["data"]["image/png"])) == (300, 200)
    assert sorted(r.files) == ["figure-1.png", "figure-2.png"]


@pytest.mark.timeout(120)
def test_an_error_is_named_with_a_traceback_of_the_cells_lines(cc):
    r = cc.run("x = 1\ndef f():\n    return x / 0\nf()")
    assert (r.status.value, r.exit_code) == ("error", 1)
    assert (r.error_name, r.error_value) == ("ZeroDivisionError", "division by zero")
    assert r.traceback.splitlines() == [
        "Traceback (most recent call last):",
        '  File "<job>", line 4, in <module>',
        "    f()",
        '  File "<job>", line 3, in f',
        "    return x / 0",
        "           ~~^~~",
        "ZeroDivisionError: division by zero",
    ]
    assert r.stderr == r.traceback  # stderr carries the same traceback


@pytest.mark.timeout(180)
def test_a_session_shows_values_tables_charts_and_errors_with_a_counter_and_call_env(cc):
    with cc.session() as s:
        r = s.run(DF)
        assert r.ok and r.outputs == [] and r.execution_count == 1, r
        r = s.run("df.head(2)")
        assert r.text == "   n  sq  s\n0  0   0  a\n1  1   1  b" and "<table" in r.outputs[0]["data"]["text/html"]
        assert r.execution_count == 2
        r = s.run("import matplotlib.pyplot as plt\nplt.plot(df.n, df.sq)\nplt.show()")
        assert [o["type"] for o in r.outputs] == ["display"] and png_size(base64.b64decode(r.outputs[0]["data"]["image/png"]))
        r = s.run("1 / 0")
        assert (r.error_name, r.error_value) == ("ZeroDivisionError", "division by zero")
        assert r.traceback == ("Traceback (most recent call last):\n  File \"<call 4>\", line 1, in <module>\n"
                               "    1 / 0\n    ~~^~~\nZeroDivisionError: division by zero\n")
        assert r.execution_count == 4
        r = s.run("import os\nos.environ.get('GREETING'), os.environ.get('HOME') == os.getcwd()",
                  env={"GREETING": "hi", "HOME": "/nowhere"})
        assert r.text == "('hi', False)", r
        r = s.run("import os\nos.environ.get('GREETING'), os.environ.get('HOME') == os.getcwd()")
        assert r.text == "(None, True)", r  # set for that call only


@pytest.mark.timeout(120)
def test_the_readme_and_docs_session_example(cc):
    with cc.session() as s:
        s.run("import pandas as pd, matplotlib.pyplot as plt\ndf = pd.DataFrame({'x': [1, 2, 3], 'y': [2, 4, 8]})")
        r = s.run("df")
        assert r.text == "   x  y\n0  1  2\n1  2  4\n2  3  8"
        assert r.outputs[0]["type"] == "result" and r.execution_count == 2
        assert r.outputs[0]["data"]["text/html"].startswith("<div>")
        assert '<table border="1" class="dataframe">' in r.outputs[0]["data"]["text/html"]
        r = s.run("df.plot(x='x', y='y')\nplt.show()")
        assert r.outputs[0]["type"] == "display" and png_size(base64.b64decode(r.outputs[0]["data"]["image/png"]))
        assert "figure-1.png" in r.files
        r = s.run("ratio = 1 / 0")
        assert (r.status.value, r.error_name, r.error_value) == ("error", "ZeroDivisionError", "division by zero")
        assert r.traceback.splitlines()[1:3] == ['  File "<call 4>", line 1, in <module>', "    ratio = 1 / 0"]
        assert r.traceback.count('File "') == 1


@pytest.mark.timeout(120)
def test_shell_lines_and_magics_in_the_sandbox(cc):
    r = cc.run("%cd /tmp\nname = 'world'\n!echo hello $name from $(pwd)\nroot = !ls /\n'bin' in root, _exit_code")
    assert r.ok, r
    assert r.stdout == "/tmp\nhello world from /tmp\n"
    assert r.text == "(True, 0)"
    r = cc.run("%timeit 1")
    assert (r.error_name, r.error_value) == ("UsageError", "Line magic function `%timeit` not found.")


@pytest.mark.timeout(120)
def test_a_job_takes_env_too(cc):
    from dispatcher import InvalidJob

    assert cc.run("import os\nos.environ['GREETING']", env={"GREETING": "hello"}).text == "'hello'"
    with pytest.raises(InvalidJob, match="invalid environment variable name"):
        cc.run("1", env={"NOT-A-NAME": "x"})


@pytest.mark.timeout(120)
def test_a_session_that_replaces_plt_show_still_gets_its_figure(cc):
    with cc.session() as s:
        r = s.run("import matplotlib.pyplot as plt\nplt.show = None\nplt.plot([1, 2])")
        assert r.ok, r
        assert r.text.startswith("[<matplotlib.lines.Line2D at 0x")  # IPython's text for it
        assert [o["type"] for o in r.outputs] == ["result", "display"] and "image/png" in r.outputs[1]["data"]
        r = s.run("plt.show()")  # its own plt.show stays its own, as in IPython
        assert r.error_name == "TypeError", r
        assert s.run("plt.figure(); 5").text == "5"


@pytest.mark.timeout(120)
def test_an_interrupted_session_call_returns_what_it_displayed(cc):
    with cc.session() as s:
        r = s.run("display('before')\nimport time\nwhile True:\n    time.sleep(0.01)", timeout=2)
        assert r.status.value == "timeout", r
        assert [o["data"]["text/plain"] for o in r.outputs] == ["'before'"]
        assert r.error_name == "Interrupted" and "wall-clock" in r.error_value
        assert s.run("'after'").text == "'after'"


@pytest.mark.timeout(120)
def test_warmfleet_run_prints_the_result_and_writes_images(data_science_fleet, tmp_path):
    code = ("import io, matplotlib.pyplot as plt\n"
            "small = plt.figure(figsize=(2, 1)); buf = io.BytesIO(); small.savefig(buf, format='png'); plt.close(small)\n"
            "class Picture:\n    def _repr_png_(self):\n        return buf.getvalue()\n"
            "plt.plot([1, 2]); plt.show()\nprint('out')\ndisplay(Picture())\n{'a': 1}")
    done = subprocess.run(
        [sys.executable, "-m", "warmfleet.cli.main", "run", "--redis-url", data_science_fleet.client_url, "-c", code,
         "--out", str(tmp_path)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "out\n{'a': 1}\n"  # the images went to --out
    assert sorted(os.listdir(tmp_path)) == ["figure-1.png", "output-2.png"]  # the figure once, as before
    assert png_size((tmp_path / "figure-1.png").read_bytes()) == (640, 480)
    assert png_size((tmp_path / "output-2.png").read_bytes()) == (200, 100)


@pytest.mark.timeout(120)
async def test_the_mcp_tool_returns_text_html_and_images(data_science_fleet):
    from mcp import ClientSession
    from mcp.client.stdio import StdioServerParameters, stdio_client

    params = StdioServerParameters(command=sys.executable,
                                   args=["-m", "warmfleet.cli.main", "mcp", "--redis-url", data_science_fleet.client_url])
    code = ("import pandas as pd, matplotlib.pyplot as plt\ndf = pd.DataFrame({'a': [1, 2]})\ndisplay(df)\n"
            "plt.plot(df.a); plt.show()\ndf.a.sum()")
    async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
        await session.initialize()
        res = await session.call_tool("run_python", {"code": code})
    assert res.structured_content["status"] == "ok" and res.structured_content["text"] == "np.int64(3)"
    assert [c.type for c in res.content] == ["text", "text", "image", "text"]
    assert "<table" in res.content[1].text  # the DataFrame's HTML, as text
    assert res.content[2].mime_type == "image/png" and png_size(base64.b64decode(res.content[2].data)) == (640, 480)
    assert res.content[3].text == "np.int64(3)"
