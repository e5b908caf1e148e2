"""Code runs as a notebook cell, in a job child and in a session process alike.

What a cell does that ``exec`` does not (IPython's behaviour, without IPython):
- indentation common to all lines is removed; ``!cmd`` lines run the shell and the
  ``%cd``, ``%env``, ``%pip``, ``%pwd``, ``%matplotlib`` magics and a leading ``%%bash``
  work (lines are rewritten one for one: line numbers stay the cell's);
- the value of the last statement, if it is an expression, is not None and the line
  does not end in ``;``, is the cell's *result*; ``display(obj)`` (a builtin, and
  ``IPython.display.display`` when IPython is installed) adds a *display* output;
- an output is a MIME bundle: text/plain (IPython's pretty repr), the object's
  ``_repr_*_`` and ``_repr_mimebundle_`` types, and for a pandas DataFrame its first
  rows as JSON (TABLE_MIME); a ``_repr_*_`` that raises is left out (text/plain stays);
- outputs are capped per output and per cell: what does not fit is replaced by a
  marker and the cell says ``truncated``;
- an exception's traceback names only frames outside the executor, with the cell's
  line numbers and source lines.

Stdlib only, and nothing heavy at import: the lean runner imports this module before
it forks, and inside gVisor each module it maps is paid again on every fork. json,
traceback, linecache, subprocess are imported when a cell first needs them.
"""

from __future__ import annotations

import builtins
import os
import sys

from executor.lean.pretty import pretty

OUTPUT_BYTES = 1 << 20  # one output's data, all its MIME types together
CELL_BYTES = 4 << 20  # all outputs of one cell
MAX_OUTPUTS = 1000  # outputs of one cell (display() in a loop)
TABLE_ROWS = 1000  # rows of a DataFrame's data under TABLE_MIME
TABLE_COLUMNS = 200
TABLE_MIME = "application/vnd.warmfleet.table+json"
# IPython's formatters, in its order: (MIME type, method)
REPR_METHODS = (
    ("text/html", "_repr_html_"),
    ("text/markdown", "_repr_markdown_"),
    ("image/svg+xml", "_repr_svg_"),
    ("image/png", "_repr_png_"),
    ("image/jpeg", "_repr_jpeg_"),
    ("text/latex", "_repr_latex_"),
    ("application/json", "_repr_json_"),
    ("application/javascript", "_repr_javascript_"),
)
JSON_MIMES = frozenset({"application/json", TABLE_MIME})
HELPER = "__warmfleet_cell__"  # the builtin that rewritten !/% lines call
PYCF_ONLY_AST = 0x400
PYCF_ALLOW_TOP_LEVEL_AWAIT = 0x2000
CO_COROUTINE = 0x80
_EXECUTOR_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep
_SOURCES_KEPT = 200  # cells whose source a session keeps for its tracebacks


class UsageError(Exception):
    """A magic this cell does not know, or used wrongly (IPython's name for it)."""


class Cell:
    """The cell machinery of one process: a job child runs one cell, a session one per
    call. `emit(output)` (a job child) is told each output as it is made, so what a cell
    displayed before it was killed for a budget still reaches the caller."""

    def __init__(self, emit=None, output_bytes: int = OUTPUT_BYTES, cell_bytes: int = CELL_BYTES,
                 max_outputs: int = MAX_OUTPUTS) -> None:
        self.emit = emit
        self.output_bytes, self.cell_bytes, self.max_outputs = output_bytes, cell_bytes, max_outputs
        self.execution_count = 0
        self.sources: list[str] = []
        self.begin()

    def begin(self) -> None:
        """A new cell's outputs (a session calls this before each call)."""
        self.outputs: list[dict] = []
        self.error: dict | None = None
        self.truncated = False
        self.used = 0
        self.full = False

    # -- running ----------------------------------------------------------------------
    def run(self, code: str, namespace: dict, filename: str) -> None:
        """Run `code` as a cell in `namespace`; the user's exception propagates (the caller
        decides the exit status) after its structured form is kept in `self.error`."""
        self.execution_count += 1
        self.install()
        try:
            self._remember(filename, code)  # the source as written: rewrites keep its lines
            module, last = self._compile(code, filename)
            if module is not None:
                self._exec(module, namespace)
            if last is not None:
                value = self._exec(last, namespace)
                if value is not None:
                    namespace["_"] = value
                    self.add("result", value)
        except BaseException as exc:
            self.error = error_of(exc)
            raise

    def install(self) -> None:
        """display() and the rewritten lines' helper as builtins, each cell: a session's
        code may have deleted or replaced them."""
        builtins.display = self.display
        setattr(builtins, HELPER, _Helper(self))
        ipython = sys.modules.get("IPython.core.display_functions")
        if ipython is not None:
            _route_ipython(ipython, self.display)
        elif not any(isinstance(f, _IPythonHook) for f in sys.meta_path):
            sys.meta_path.insert(0, _IPythonHook(self.display))

    def _compile(self, code: str, filename: str):
        """(module code or None, last expression's code or None)."""
        try:
            tree = compile(code, filename, "exec", PYCF_ONLY_AST | PYCF_ALLOW_TOP_LEVEL_AWAIT, dont_inherit=True)
        except SyntaxError:
            rewritten = rewrite(code)
            if rewritten == code:
                raise
            code = rewritten
            tree = compile(code, filename, "exec", PYCF_ONLY_AST | PYCF_ALLOW_TOP_LEVEL_AWAIT, dont_inherit=True)
        body = tree.body
        last = None
        if body and type(body[-1]).__name__ == "Expr" and not _suppressed(code, body[-1]):
            import _ast

            last = compile(_ast.Expression(body[-1].value), filename, "eval", PYCF_ALLOW_TOP_LEVEL_AWAIT, dont_inherit=True)
            del body[-1]
        module = compile(tree, filename, "exec", PYCF_ALLOW_TOP_LEVEL_AWAIT, dont_inherit=True) if body else None
        return module, last

    @staticmethod
    def _exec(code, namespace: dict):
        if code.co_flags & CO_COROUTINE:  # top-level await, as IPython allows
            import asyncio

            return asyncio.run(_awaited(eval(code, namespace)))
        return eval(code, namespace)

    def _remember(self, filename: str, source: str) -> None:
        """The source, for the source lines of a traceback (a session keeps the last
        _SOURCES_KEPT cells: functions defined in one are called in later ones)."""
        import linecache

        lines = source.splitlines(keepends=True)
        if lines and not lines[-1].endswith("\n"):
            lines[-1] += "\n"
        linecache.cache[filename] = (len(source), None, lines, filename)
        self.sources.append(filename)
        if len(self.sources) > _SOURCES_KEPT:
            linecache.cache.pop(self.sources.pop(0), None)

    # -- outputs ----------------------------------------------------------------------
    def display(self, *objs: object, raw: bool = False, **_ignored: object) -> None:
        """IPython's display(): each object becomes a display output (`raw`: objects
        are MIME bundles already)."""
        for obj in objs:
            if raw and isinstance(obj, dict):
                self._keep({"type": "display", "data": _clean_bundle(obj)})
            else:
                self.add("display", obj)

    def add(self, kind: str, obj: object) -> None:
        if self.full:
            self.truncated = True
            return  # over the cell's caps: not even formatted
        self._keep({"type": kind, "data": bundle(obj)})

    def add_png(self, png: bytes, text: str = "<Figure>") -> None:
        """A figure (executor.jobenv.Figures): an image/png display."""
        if self.full:
            self.truncated = True
            return
        import binascii

        self._keep({"type": "display", "data": {
            "text/plain": text, "image/png": binascii.b2a_base64(png, newline=False).decode("ascii")}})

    def _keep(self, output: dict) -> None:
        size = output_size(output)
        if size > self.output_bytes:
            output = marker(output["type"], f"output dropped: {size} bytes exceed the cap of {self.output_bytes} per output")
            size = output_size(output)
            self.truncated = True
        if len(self.outputs) + 1 >= self.max_outputs or self.used + size > self.cell_bytes:
            output = marker("display", f"outputs dropped from here on: the cell reached its cap of "
                                       f"{self.max_outputs} outputs or {self.cell_bytes} bytes")
            size = output_size(output)
            self.full = self.truncated = True
        self.used += size
        self.outputs.append(output)
        if self.emit is not None:
            self.emit(output)

    def summary(self) -> dict:
        """What a caller reports: outputs, the result's text, the error, truncated."""
        return {"outputs": self.outputs, "text": result_text(self.outputs), "outputs_truncated": self.truncated,
                **(error_fields(self.error))}


def received(outputs: list[bytes], error: bytes | None) -> dict:
    """On the receiving side of a job child's records (the runner): the outputs and the
    error, each checked, the caps applied again (the job's code can write the same
    records itself). A record that is not a valid output is dropped and counted as
    truncation; the fields of a RunOutcome."""
    import json

    from warmfleet.contract.messages import valid_output

    kept: list[dict] = []
    used, truncated = 0, False
    for payload in outputs:
        try:
            output = json.loads(payload)
        except ValueError:
            output = None
        if not valid_output(output):
            truncated = True
            continue
        size = output_size(output)
        if len(kept) >= MAX_OUTPUTS or size > OUTPUT_BYTES + 1024 or used + size > CELL_BYTES + OUTPUT_BYTES:
            truncated = True
            continue
        used += size
        kept.append(output)
        if output["data"].get("text/plain", "").startswith("[warmfleet: output"):
            truncated = True  # the child's own marker: it dropped something
    fields = {"outputs": kept, "text": result_text(kept), "outputs_truncated": truncated}
    if error is not None:
        try:
            got = json.loads(error)
        except ValueError:
            got = None
        if isinstance(got, dict) and all(isinstance(got.get(k), str) for k in ("name", "value", "traceback")):
            fields.update(error_fields({k: got[k][:100_000] for k in ("name", "value", "traceback")}))
    return fields


# The most a job's output records can take on the status pipe (JSON may escape text).
RECORDS_BYTES = 2 * (CELL_BYTES + OUTPUT_BYTES) + MAX_OUTPUTS * 64 + 200_000


async def _awaited(awaitable):
    return await awaitable


def result_text(outputs: list) -> str | None:
    for output in outputs:
        if output.get("type") == "result":
            return output.get("data", {}).get("text/plain")
    return None


def error_fields(error: dict | None) -> dict:
    error = error or {}
    return {"error_name": error.get("name"), "error_value": error.get("value"), "traceback": error.get("traceback")}


def output_size(output: dict) -> int:
    size = 32
    for mime, value in output["data"].items():
        size += len(mime) + (len(value) if value.isascii() else len(value.encode("utf-8", "replace")))
    return size


def marker(kind: str, why: str) -> dict:
    return {"type": kind, "data": {"text/plain": f"[warmfleet: {why}]"}}


# -- MIME bundles ---------------------------------------------------------------------
def bundle(obj: object) -> dict:
    """{MIME type: str} for `obj`, as IPython's DisplayFormatter would build it."""
    data: dict = {}
    method = _method(obj, "_repr_mimebundle_")
    if method is not None:
        got = _call(obj, "_repr_mimebundle_", method, include=None, exclude=None)
        if isinstance(got, tuple) and got:
            got = got[0]
        if isinstance(got, dict):
            data.update(_clean_bundle(got))
    for mime, name in REPR_METHODS:
        if mime in data:
            continue
        method = _method(obj, name)
        if method is None:
            continue
        got = _call(obj, name, method)
        if isinstance(got, tuple) and got:
            got = got[0]
        value = _mime_value(mime, got)
        if value is not None:
            data[mime] = value
    if "text/plain" not in data:
        data = {"text/plain": _text(obj), **data}
    figure = _figure_png(obj)
    if figure is not None and "image/png" not in data:
        data["image/png"] = figure
    if TABLE_MIME not in data:
        table = _table(obj)
        if table is not None:
            data[TABLE_MIME] = table
    return data


def _method(obj: object, name: str):
    """A bound _repr_*_ method, IPython's way: never on a class, never from an object
    that answers every attribute (its __getattr__ makes up methods)."""
    if isinstance(obj, type):
        return None
    try:
        if getattr(obj, "_ipython_canary_method_should_not_exist_", None) is not None:
            return None
        method = getattr(obj, name, None)
    except Exception:  # noqa: BLE001 - a property that raises: no such format
        return None
    return method if callable(method) else None


def _call(obj: object, name: str, method, **kwargs):
    """The method's answer, or None if it raised (IPython shows the traceback on stderr
    and keeps the other formats). Interrupts (budgets) are BaseExceptions: they pass."""
    try:
        return method(**kwargs)
    except Exception as exc:  # noqa: BLE001
        _warn(f"{type(obj).__name__}.{name}() raised {type(exc).__name__}: {_short(exc)}; that format is left out")
        return None


def _text(obj: object) -> str:
    try:
        return pretty(obj)
    except Exception as exc:  # noqa: BLE001 - a __repr__ that raises or returns a non-str
        _warn(f"repr() of a {type(obj).__name__} raised {type(exc).__name__}: {_short(exc)}")
        try:
            return object.__repr__(obj)
        except Exception:  # noqa: BLE001
            return f"<{type(obj).__name__} object>"


def _mime_value(mime: str, value: object) -> str | None:
    """A format's value as the str an output carries: binary types base64, JSON types
    JSON; None for a value of the wrong kind."""
    if value is None:
        return None
    if mime in JSON_MIMES:
        if isinstance(value, str):
            return value
        import json

        try:
            return json.dumps(value, default=str, allow_nan=False)
        except (TypeError, ValueError, RecursionError):
            return None
    if isinstance(value, (bytes, bytearray, memoryview)):
        if mime.startswith("text/") or mime == "image/svg+xml":
            return bytes(value).decode("utf-8", "replace")
        import binascii

        return binascii.b2a_base64(bytes(value), newline=False).decode("ascii")
    if isinstance(value, str):
        return value
    return None


def _clean_bundle(raw: dict) -> dict:
    """A bundle from user code (_repr_mimebundle_, display(raw=True)): MIME-type keys
    only (type/subtype, short), values as _mime_value makes them; the rest dropped."""
    data = {}
    for mime, value in list(raw.items())[:64]:
        if not (isinstance(mime, str) and 3 <= len(mime) <= 127 and mime.count("/") == 1 and mime.isprintable()):
            continue
        value = _mime_value(mime, value)
        if value is not None:
            data[mime] = value
    return data


def _figure_png(obj: object) -> str | None:
    """A matplotlib Figure as the last expression shows as an image, as inline does."""
    figure_mod = sys.modules.get("matplotlib.figure")
    if figure_mod is None or not isinstance(obj, figure_mod.Figure):
        return None
    import binascii
    import io

    buf = io.BytesIO()
    try:
        obj.savefig(buf, format="png")
    except Exception as exc:  # noqa: BLE001
        _warn(f"could not draw the figure: {type(exc).__name__}: {_short(exc)}")
        return None
    return binascii.b2a_base64(buf.getvalue(), newline=False).decode("ascii")


def _table(obj: object) -> str | None:
    """A DataFrame's first TABLE_ROWS rows as JSON, so a chart or table can be rebuilt:
    {"columns": [names], "index": [labels], "data": {name: [values]}, "rows": total,
    "truncated": bool}. pandas encodes each column (NaN -> null, dates ISO 8601)."""
    pd = sys.modules.get("pandas")
    if pd is None or not isinstance(obj, pd.DataFrame):
        return None
    import json

    try:
        rows, cols = obj.shape
        head = obj if rows <= TABLE_ROWS and cols <= TABLE_COLUMNS else obj.iloc[:TABLE_ROWS, :TABLE_COLUMNS]
        names = [str(c) for c in head.columns]
        if len(set(names)) != len(names):
            return None  # duplicate column names: no columns -> lists mapping
        columns = ",".join(
            json.dumps(name) + ":" + head.iloc[:, i].to_json(orient="values", date_format="iso", default_handler=str)
            for i, name in enumerate(names)
        )
        index = pd.Series(head.index, dtype=object).to_json(orient="values", date_format="iso", default_handler=str)
        truncated = "true" if rows > TABLE_ROWS or cols > TABLE_COLUMNS else "false"
        return (f'{{"columns":{json.dumps(names)},"index":{index},"data":{{{columns}}},'
                f'"rows":{rows},"truncated":{truncated}}}')
    except Exception as exc:  # noqa: BLE001 - exotic dtypes: the table is left out
        _warn(f"could not encode the DataFrame as JSON: {type(exc).__name__}: {_short(exc)}")
        return None


def _warn(text: str) -> None:
    """A line on stderr, written to fd 2: the cell may have replaced sys.stderr or print."""
    try:
        sys.stderr.flush()
    except BaseException:  # noqa: BLE001
        pass
    try:
        os.write(2, f"warmfleet: {text}\n".encode("utf-8", "replace"))
    except OSError:
        pass


def _short(exc: BaseException) -> str:
    try:
        return str(exc)[:200]
    except Exception:  # noqa: BLE001
        return "?"


# -- IPython's display routed to ours ---------------------------------------------------
def _route_ipython(module, display) -> None:
    if getattr(module, "display", None) is not display:
        module.display = display
        for name in ("IPython.display", "IPython.core.display"):
            other = sys.modules.get(name)
            if other is not None and hasattr(other, "display"):
                other.display = display


class _IPythonHook:
    """Patches IPython's display() when the cell imports IPython: without a running
    IPython shell it would only print()."""

    def __init__(self, display) -> None:
        self.display = display

    def find_spec(self, name: str, path=None, target=None):
        if name != "IPython.core.display_functions":
            return None
        from importlib.machinery import PathFinder

        spec = PathFinder.find_spec(name, path)
        if spec is None or spec.loader is None:
            return spec
        exec_module = spec.loader.exec_module
        display = self.display

        def exec_and_route(module) -> None:
            exec_module(module)
            _route_ipython(module, builtins.display if callable(getattr(builtins, "display", None)) else display)

        spec.loader.exec_module = exec_and_route
        return spec


# -- errors -----------------------------------------------------------------------------
def error_of(exc: BaseException) -> dict:
    value = _short_value(exc)
    if isinstance(exc, UsageError):  # IPython shows no traceback for these
        return {"name": "UsageError", "value": value, "traceback": f"UsageError: {value}\n"}
    return {"name": type(exc).__name__, "value": value, "traceback": user_traceback(exc)}


def _short_value(exc: BaseException) -> str:
    try:
        return str(exc)[:10000]
    except Exception:  # noqa: BLE001
        return ""


def user_traceback(exc: BaseException) -> str:
    """The traceback as Python prints it, without the executor's frames (in the
    exception and in those it was raised from)."""
    import traceback

    try:
        te = traceback.TracebackException(type(exc), exc, exc.__traceback__)
        todo, seen = [te], set()
        while todo:
            t = todo.pop()
            if id(t) in seen:
                continue
            seen.add(id(t))
            t.stack = traceback.StackSummary.from_list([f for f in t.stack if not f.filename.startswith(_EXECUTOR_DIR)])
            todo += [c for c in (t.__cause__, t.__context__) if c is not None]
        return "".join(te.format())[-100_000:]
    except Exception:  # noqa: BLE001 - under memory pressure even formatting may fail
        return f"{type(exc).__name__}: {_short_value(exc)}\n"


def print_traceback(exc: BaseException) -> None:
    """On stderr, as `python file.py` prints an uncaught exception, without our frames."""
    text = user_traceback(exc)
    try:
        sys.stderr.write(text)
        sys.stderr.flush()
    except BaseException:  # noqa: BLE001 - a replaced or broken stderr: the raw descriptor
        try:
            os.write(2, text.encode("utf-8", "replace"))
        except OSError:
            pass


# -- the cell's source: dedent, ;, !cmd and %magics ---------------------------------------
def _suppressed(code: str, node) -> bool:
    """A trailing ';' after the last expression suppresses its result (IPython)."""
    lines = code.splitlines()
    end_line, end_col = node.end_lineno, node.end_col_offset
    if end_line is None or end_line > len(lines):
        return False
    rest = lines[end_line - 1].encode("utf-8", "surrogatepass")[end_col:].decode("utf-8", "replace")
    rest = "\n".join([rest, *lines[end_line:]])
    for line in rest.splitlines():
        text = line.strip()
        if text.startswith(";"):
            return True
        if text and not text.startswith("#"):
            return False
    return False


def rewrite(code: str) -> str:
    """The cell's source as Python: common indentation removed, a leading %%bash cell and
    !/% lines rewritten into calls of the helper, one line for one."""
    lines = _dedent(code.splitlines())
    if lines and lines[0].startswith("%%"):
        name, _, args = lines[0][2:].partition(" ")
        body = "\n".join(lines[1:]) + "\n"
        return f"{HELPER}.cell_magic({name!r}, {args!r}, {body!r})" + "\n" * (len(lines) - 1)
    out = []
    for line in lines:
        stripped = line.lstrip()
        indent = line[: len(line) - len(stripped)]
        target, call = "", stripped
        left, eq, right = stripped.partition("=")
        if eq and left.strip().isidentifier() and right.lstrip()[:1] in ("!", "%"):
            target, call = left.strip() + " = ", right.lstrip()
        if call.startswith("!"):
            out.append(f"{indent}{target}{HELPER}.system({call[1:].strip()!r}, {bool(target)})")
        elif call.startswith("%") and not call.startswith("%%") and call[1:2].isalpha():
            name, _, args = call[1:].partition(" ")
            out.append(f"{indent}{target}{HELPER}.magic({name!r}, {args.strip()!r})")
        else:
            out.append(line)
    return "\n".join(out) + ("\n" if code.endswith("\n") else "")


def _dedent(lines: list[str]) -> list[str]:
    margins = [len(line) - len(line.lstrip(" \t")) for line in lines if line.strip()]
    if not margins or min(margins) == 0:
        return lines
    cut = min(margins)
    prefix = next(line[:cut] for line in lines if line.strip())
    if not all(line.startswith(prefix) or not line.strip() for line in lines):
        return lines  # mixed tabs and spaces: left to Python's error
    return [line[cut:] for line in lines]


class _Helper:
    """What rewritten !/% lines call. `$name`, `${name}` and `{expression}` in a command
    are the cell's values, as in IPython."""

    def __init__(self, cell: Cell) -> None:
        self.cell = cell

    def system(self, command: str, capture: bool = False):
        frame = sys._getframe(1)
        command = _expand(command, frame.f_globals, frame.f_locals)
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except BaseException:  # noqa: BLE001
                pass
        import subprocess

        if capture:  # x = !cmd: its stdout, a list of lines
            done = subprocess.run(["/bin/bash", "-c", command], stdout=subprocess.PIPE, text=True, errors="replace")
            frame.f_globals["_exit_code"] = done.returncode
            return done.stdout.splitlines()
        frame.f_globals["_exit_code"] = subprocess.run(["/bin/bash", "-c", command]).returncode
        return None

    def magic(self, name: str, args: str):
        frame = sys._getframe(1)
        args = _expand(args, frame.f_globals, frame.f_locals)
        if name == "cd":
            path = os.path.expanduser(args.strip().strip("'\"") or "~")
            os.chdir(path)
            print(os.getcwd())
            return None
        if name == "pwd":
            return os.getcwd()
        if name == "env":
            return _env(args)
        if name == "pip":
            return _pip(args)
        if name == "matplotlib":
            return None  # figures are always shown inline
        raise UsageError(f"Line magic function `%{name}` not found.")

    def cell_magic(self, name: str, args: str, body: str):
        frame = sys._getframe(1)
        if name in ("bash", "sh"):
            return _run_script(_expand(body, frame.f_globals, frame.f_locals))
        raise UsageError(f"Cell magic `%%{name}` not found.")


def _run_script(body: str) -> None:
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except BaseException:  # noqa: BLE001
            pass
    import subprocess

    code = subprocess.run(["/bin/bash", "-c", body]).returncode
    if code:
        raise UsageError(f"%%bash: the script exited with code {code}")


def _env(args: str):
    """IPython's %env: all variables, one's value, or NAME=value / NAME value sets it."""
    args = args.strip()
    if not args:
        return dict(os.environ)
    if "=" in args or " " in args:
        name, _, value = args.partition("=") if "=" in args else args.partition(" ")
        name, value = name.strip(), value.strip()
        os.environ[name] = value
        print(f"env: {name}={value}")
        return None
    if args not in os.environ:
        raise UsageError(f"Environment does not have key: {args}")
    return os.environ[args]


def _pip(args: str) -> None:
    """IPython's %pip: pip of this interpreter. Installs go to the workspace (the only
    place the code may write), which joins sys.path."""
    import shlex
    import subprocess

    argv = shlex.split(args)
    if argv[:1] == ["install"] and not any(a.startswith(("--target", "-t", "--user", "--prefix")) for a in argv):
        target = os.path.join(os.environ.get("HOME") or os.getcwd(), ".packages")
        argv = [argv[0], "--target", target, *argv[1:]]
        if target not in sys.path:
            sys.path.append(target)
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except BaseException:  # noqa: BLE001
            pass
    subprocess.run([sys.executable, "-m", "pip", *argv])
    import importlib

    importlib.invalidate_caches()
    print("Note: you may need to restart the kernel to use updated packages.")


def _expand(text: str, globals_: dict, locals_: dict) -> str:
    """IPython's var_expand: {expression} and $name / ${name}; what does not evaluate
    stays as written; $$ is a $."""
    if "$" not in text and "{" not in text:
        return text
    out, i, n = [], 0, len(text)
    while i < n:
        ch = text[i]
        if ch == "$" and text[i + 1 : i + 2] == "$":
            out.append("$")
            i += 2
            continue
        if ch == "$":
            j = i + 1
            braced = text[j : j + 1] == "{"
            if braced:
                end = text.find("}", j)
                name = text[j + 1 : end] if end > 0 else ""
                j = end + 1 if end > 0 else j
            else:
                while j < n and (text[j].isalnum() or text[j] == "_"):
                    j += 1
                name = text[i + 1 : j]
            if name and name in locals_ or name in globals_:
                out.append(str(locals_.get(name, globals_.get(name))))
                i = j
                continue
        elif ch == "{":
            end = text.find("}", i)
            if end > i + 1:
                try:
                    out.append(str(eval(text[i + 1 : end], globals_, locals_)))
                    i = end + 1
                    continue
                except Exception:  # noqa: BLE001 - not an expression: literal text
                    pass
        out.append(ch)
        i += 1
    return "".join(out)
