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

The bundles are mime.py's, the lines that are not Python magics.py's. Stdlib only, and
nothing heavy at import: the lean runner imports these modules before it forks, and inside gVisor each module it maps is paid again on every fork. json,
traceback, linecache, subprocess are imported when a cell first needs them.
"""

from __future__ import annotations

import builtins
import os
import sys

from executor.lean.magics import HELPER, Helper, UsageError, rewrite
from executor.lean.mime import bundle, clean_bundle

OUTPUT_BYTES = 1 << 20  # one output's data, all its MIME types together
CELL_BYTES = 4 << 20  # all outputs of one cell
MAX_OUTPUTS = 1000  # outputs of one cell (display() in a loop)
PYCF_ONLY_AST = 0x400
PYCF_ALLOW_TOP_LEVEL_AWAIT = 0x2000
CO_COROUTINE = 0x80
_EXECUTOR_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep
_SOURCES_KEPT = 200  # cells whose source a session keeps for its tracebacks

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
        setattr(builtins, HELPER, Helper())
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
                self._keep({"type": "display", "data": clean_bundle(obj)})
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
