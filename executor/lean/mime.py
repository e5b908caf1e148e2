"""A cell's MIME bundles (executor/lean/cell.py): what IPython's DisplayFormatter makes of
an object, without IPython. text/plain always (IPython's pretty printer), the object's
`_repr_*_` and `_repr_mimebundle_` types, a matplotlib Figure as image/png, a pandas
DataFrame's data as JSON (TABLE_MIME). Stdlib only; pandas and matplotlib are used only
when the code has imported them."""

from __future__ import annotations

import os
import sys

from executor.lean.pretty import pretty

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


def bundle(obj: object) -> dict:
    """{MIME type: str} for `obj`, as IPython's DisplayFormatter would build it."""
    data: dict = {}
    method = _method(obj, "_repr_mimebundle_")
    if method is not None:
        got = _call(obj, "_repr_mimebundle_", method, include=None, exclude=None)
        if isinstance(got, tuple) and got:
            got = got[0]
        if isinstance(got, dict):
            data.update(clean_bundle(got))
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
        warn(f"{type(obj).__name__}.{name}() raised {type(exc).__name__}: {short(exc)}; that format is left out")
        return None


def _text(obj: object) -> str:
    try:
        return pretty(obj)
    except Exception as exc:  # noqa: BLE001 - a __repr__ that raises or returns a non-str
        warn(f"repr() of a {type(obj).__name__} raised {type(exc).__name__}: {short(exc)}")
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


def clean_bundle(raw: dict) -> dict:
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
        warn(f"could not draw the figure: {type(exc).__name__}: {short(exc)}")
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
        warn(f"could not encode the DataFrame as JSON: {type(exc).__name__}: {short(exc)}")
        return None


def warn(text: str) -> None:
    """A line on stderr, written to fd 2: the cell may have replaced sys.stderr or print."""
    try:
        sys.stderr.flush()
    except BaseException:  # noqa: BLE001
        pass
    try:
        os.write(2, f"warmfleet: {text}\n".encode("utf-8", "replace"))
    except OSError:
        pass


def short(exc: BaseException) -> str:
    try:
        return str(exc)[:200]
    except Exception:  # noqa: BLE001
        return "?"
