"""A cell (executor/lean/cell.py) in-process: what it returns for the lines an agent
writes, against what IPython shows for them (IPython is a test dependency: its own
pretty printer and display() are used as the reference)."""

from __future__ import annotations

import builtins
import collections
import os
import subprocess
import sys

import pytest

from executor.lean import cell as cell_mod
from executor.lean.cell import Cell, bundle, rewrite

pytestmark = pytest.mark.timeout(60)


def run(code: str, ns: dict | None = None, c: Cell | None = None) -> tuple[dict, dict]:
    c = c or Cell()
    ns = {"__name__": "__main__", "__builtins__": builtins} if ns is None else ns
    c.begin()
    try:
        c.run(code, ns, "<cell>")
    except Exception:  # noqa: BLE001 - the summary carries it
        pass
    return c.summary(), ns


def texts(summary: dict) -> list[tuple[str, str]]:
    return [(o["type"], o["data"]["text/plain"]) for o in summary["outputs"]]


@pytest.mark.parametrize(("code", "shown"), [
    ("1 + 1", [("result", "2")]),
    ("'a'", [("result", "'a'")]),
    ("x = 1", []),
    ("x = 1\nx", [("result", "1")]),
    ("1 + 1;", []),
    ("1 + 1;  # quiet", []),
    ("1 + 1  # loud", [("result", "2")]),
    ("None", []),
    ("print('p')", []),
    ("1; 2", [("result", "2")]),
    ("    a = 3\n    a * 2", [("result", "6")]),  # common indentation removed
    ("if True:\n    7", []),  # the last statement is not an expression
    ("display(1, 'two')\n3", [("display", "1"), ("display", "'two'"), ("result", "3")]),
    ("{'b': 2, 'a': 1}", [("result", "{'b': 2, 'a': 1}")]),  # insertion order, as IPython
    ("import asyncio\nawait asyncio.sleep(0, 'awaited')", [("result", "'awaited'")]),
])
def test_the_last_expression_is_the_result_as_in_ipython(code, shown):
    summary, _ = run(code)
    assert summary["error_name"] is None, summary
    assert texts(summary) == shown
    assert summary["text"] == next((t for kind, t in shown if kind == "result"), None)


class Plain:
    pass


def test_text_plain_is_ipythons_pretty_repr():
    from IPython.lib.pretty import pretty as ipython_pretty

    plain = Plain()
    values = [plain, [plain, Plain], int, collections.OrderedDict, ValueError("x"), range(3), b"ab", list(range(40)), {f"k{i}": {"x": i, "y": [i] * 6} for i in range(6)}, {3, 1, 2}, frozenset("ab"),
              (1,), [(i, str(i) * 12) for i in range(9)], collections.OrderedDict(a=1), "x\ny", list(range(1500)),
              {"a": "x" * 100}, [[1, 2, 3] * 10] * 3, set(), 1.5]
    for value in values:
        assert bundle(value)["text/plain"] == ipython_pretty(value), value


def test_a_generator_is_shown_not_consumed():
    summary, ns = run("def g():\n    yield 1\n    raise SystemExit('consumed')\nit = g()\nit")
    assert summary["text"].startswith("<generator object g at 0x")
    assert next(ns["it"]) == 1


def test_mime_types_from_repr_methods_and_mimebundle():
    class Rich:
        def _repr_html_(self):
            return "<b>rich</b>"

        def _repr_png_(self):
            return b"\x89PNG\r\n\x1a\nfake"

        def _repr_json_(self):
            return {"n": 1}

        def _repr_latex_(self):
            return ("$x$", {"meta": 1})  # (data, metadata), as IPython allows

        def __repr__(self):
            return "Rich()"

    data = bundle(Rich())
    assert data["text/plain"] == "Rich()"
    assert data["text/html"] == "<b>rich</b>"
    assert data["image/png"] == "iVBORw0KGgpmYWtl"  # base64
    assert data["application/json"] == '{"n": 1}'
    assert data["text/latex"] == "$x$"

    class Bundled:
        def _repr_mimebundle_(self, include=None, exclude=None):
            return {"text/markdown": "**md**", "image/jpeg": b"\xff\xd8", "not a mime": "x", "text/x-ok": 5,
                    "application/vnd.custom+json": {"a": [1]}, 7: "x"}

    data = bundle(Bundled())
    assert data["text/markdown"] == "**md**"
    assert data["image/jpeg"] == "/9g="
    assert "not a mime" not in data and "text/x-ok" not in data and 7 not in data
    assert data["text/plain"].startswith("<")  # its repr: always there


def test_a_repr_that_raises_or_lies_falls_back_to_text(capfd):
    class BadHtml:
        def _repr_html_(self):
            raise ValueError("no html")

        def __repr__(self):
            return "BadHtml()"

    class NotStr:
        def __repr__(self):
            return 42

    class Raises:
        def __repr__(self):
            raise RuntimeError("boom")

    class AnyAttr:
        def __getattr__(self, name):
            return lambda *a, **k: "<i>made up</i>"

    assert bundle(BadHtml()) == {"text/plain": "BadHtml()"}
    assert bundle(NotStr())["text/plain"].startswith("<")
    assert "object at 0x" in bundle(Raises())["text/plain"]
    assert list(bundle(AnyAttr())) == ["text/plain"]  # IPython's canary: no made-up formats
    err = capfd.readouterr().err
    assert "_repr_html_() raised ValueError: no html" in err and "RuntimeError: boom" in err


def test_caps_drop_outputs_with_a_marker():
    c = Cell(output_bytes=1000, cell_bytes=5000, max_outputs=50)
    summary, _ = run("display('x' * 2000)\n'small'", c=c)
    assert summary["outputs_truncated"]
    kinds = texts(summary)
    assert kinds[0][0] == "display" and kinds[0][1].startswith("[warmfleet: output dropped: ")
    assert kinds[1] == ("result", "'small'")

    summary, _ = run("for i in range(1_000_000):\n    display(i)", c=c)
    assert summary["outputs_truncated"] and len(summary["outputs"]) <= 50
    assert summary["outputs"][-1]["data"]["text/plain"].startswith("[warmfleet: outputs dropped from here on")


def test_a_million_displays_end_quickly_at_the_default_caps():
    summary, _ = run("for i in range(1_000_000):\n    display(i)")
    assert len(summary["outputs"]) == cell_mod.MAX_OUTPUTS
    assert summary["outputs_truncated"]


def test_errors_name_only_the_cells_lines():
    summary, _ = run("def f(x):\n    return 1 / x\n\nf(0)")
    assert summary["error_name"] == "ZeroDivisionError"
    assert summary["error_value"] == "division by zero"
    tb = summary["traceback"]
    assert tb.startswith("Traceback (most recent call last):\n")
    assert 'File "<cell>", line 4, in <module>' in tb and 'File "<cell>", line 2, in f' in tb
    assert "    return 1 / x" in tb  # the cell's source lines, as a file's
    assert "executor" not in tb and "cell.py" not in tb
    assert tb.endswith("ZeroDivisionError: division by zero\n")


def test_a_syntax_error_points_into_the_cell():
    summary, _ = run("x = (1,\ny = 2")
    assert summary["error_name"] == "SyntaxError"
    assert 'File "<cell>", line 1' in summary["traceback"] and "executor" not in summary["traceback"]


def test_shell_lines_and_magics(tmp_path, monkeypatch):
    monkeypatch.chdir(os.getcwd())  # %cd moves this process: back after the test
    ns = {"__name__": "__main__", "__builtins__": builtins, "n": 41}
    summary, ns = run(f"%cd {tmp_path}\nr = !echo $n {{n + 1}}\nfiles = !ls\nr", ns)
    assert summary["error_name"] is None, summary
    assert summary["text"] == "['41 42']"
    assert os.getcwd() == str(tmp_path)
    summary, _ = run("%env WF_CELL_TEST=yes\n%env WF_CELL_TEST", ns)
    assert summary["text"] == "'yes'" and os.environ.pop("WF_CELL_TEST") == "yes"
    summary, _ = run("%matplotlib inline\n%nosuchmagic", ns)
    assert (summary["error_name"], summary["error_value"]) == ("UsageError", "Line magic function `%nosuchmagic` not found.")
    summary, _ = run("s = '''\n!not a command\n'''\ns.strip()", ns)
    assert summary["text"] == "'!not a command'"  # a line inside a string stays as written


def test_rewrites_keep_line_numbers():
    code = "  x = 1\n  !true\n  y = %pwd\n  1/0\n"
    assert rewrite(code).count("\n") == code.count("\n")
    summary, _ = run(code)
    assert 'File "<cell>", line 4' in summary["traceback"]


def test_ipython_display_is_routed_to_the_cell():
    """In a fresh interpreter, as a job child is: importing IPython.display after the cell
    started (and IPython's own rich objects) gives display outputs, not prints."""
    code = (
        "import builtins\n"
        "from executor.lean.cell import Cell\n"
        "c = Cell(); c.begin()\n"
        "c.run('from IPython.display import display, HTML, Markdown\\n"
        "display(HTML(\"<p>h</p>\"), Markdown(\"*m*\"))\\n"
        "import IPython.display\\nIPython.display.display(1)', {'__builtins__': builtins}, '<cell>')\n"
        "print([sorted(o['data']) for o in c.outputs])\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                         cwd=os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[['text/html', 'text/plain'], ['text/markdown', 'text/plain'], ['text/plain']]"


def test_importing_the_cell_adds_nothing_heavy_to_a_lean_process():
    """The lean runner imports cell.py before it forks: every module it adds is mapped in
    every job child (fork cost inside gVisor grows with the mappings)."""
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    code = ("import sys; sys.path.insert(0, sys.argv[1]); import os; before = set(sys.modules)\n"
            "import executor.lean.cell\nprint(' '.join(sorted(set(sys.modules) - before)))")
    added = set(subprocess.run([sys.executable, "-S", "-I", "-c", code, root], capture_output=True, text=True,
                               check=True, timeout=60).stdout.split())
    assert added - {"executor", "executor.lean", "executor.lean.cell", "executor.lean.magics", "executor.lean.mime",
                    "executor.lean.pretty", "__future__"} == set()


def test_a_session_can_delete_or_replace_what_the_cell_uses():
    c = Cell()
    ns = {"__name__": "__main__", "__builtins__": builtins}
    saved = builtins.print, sys.displayhook
    try:
        summary, _ = run("import builtins, sys\ndel builtins.display\nsys.displayhook = None\nbuiltins.print = None\n5", ns, c)
        assert summary["text"] == "5"
        summary, _ = run("display(6)\n7", ns, c)  # display() is back, the result still shown
        assert texts(summary) == [("display", "6"), ("result", "7")]
    finally:
        builtins.print, sys.displayhook = saved


def test_pip_installs_into_the_workspace_with_this_interpreter(tmp_path, monkeypatch, capsys):
    """%pip runs this interpreter's pip; an install goes where the code may write (the
    workspace, which joins sys.path), as no site-packages is writable there."""
    import subprocess as sp

    from executor.lean import magics

    ran = []
    monkeypatch.setattr(sp, "run", lambda argv, **kw: ran.append(argv))
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setattr(sys, "path", list(sys.path))
    summary, _ = run("%pip install 'six==1.16.0'")
    assert summary["error_name"] is None, summary
    target = str(tmp_path / ".packages")
    assert ran == [[sys.executable, "-m", "pip", "install", "--target", target, "six==1.16.0"]]
    assert target in sys.path
    assert "Note: you may need to restart the kernel to use updated packages." in capsys.readouterr().out
    magics._pip("list")
    assert ran[-1] == [sys.executable, "-m", "pip", "list"]
