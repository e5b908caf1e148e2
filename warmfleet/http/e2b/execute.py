"""A warmfleet Result as the code-interpreter server's NDJSON lines (e2b_code_interpreter
models.parse_output reads them): `stdout`/`stderr` as printed, `result` per value or
display (MIME bundle -> E2B's fields), `error` (name, value, traceback),
`number_of_executions`, then `end_of_execution`. The cells work gives Result `outputs`,
`error_name`, `error_value`, `traceback`; before it, figures come as figure-N.png files
and an error is read from stderr's last line."""

from __future__ import annotations

import json
from datetime import datetime, timezone

from warmfleet.contract.schema import Result

# MIME type -> the field of E2B's Result that carries it
MIME_FIELDS = {
    "text/plain": "text", "text/html": "html", "text/markdown": "markdown", "image/svg+xml": "svg",
    "image/png": "png", "image/jpeg": "jpeg", "application/pdf": "pdf", "text/latex": "latex",
    "application/json": "json", "application/javascript": "javascript",
}
JSON_FIELDS = {"json"}


def line(obj: dict) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode() + b"\n"


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat()


def output_line(stream: str, text: str) -> bytes:
    return line({"type": stream, "text": text, "timestamp": now_iso()})


KEEPALIVE = line({"type": "keepalive"})
END = line({"type": "end_of_execution"})


def _field(output, name: str):
    return output.get(name) if isinstance(output, dict) else getattr(output, name, None)


def bundle_line(data: dict, main: bool) -> bytes:
    out: dict = {"type": "result", "is_main_result": main}
    extra: dict = {}
    for mime, value in (data or {}).items():
        name = MIME_FIELDS.get(mime)
        if name in JSON_FIELDS and isinstance(value, str):
            try:
                value = json.loads(value)
            except ValueError:
                pass
        if name is not None:
            out[name] = value
        elif "dataresource" in mime or mime.startswith("application/vnd.warmfleet"):
            try:
                out["data"] = json.loads(value) if isinstance(value, str) else value
            except ValueError:
                extra[mime] = value
        else:
            extra[mime] = value
    if extra:
        out["extra"] = extra
    return line(out)


def result_lines(result: Result) -> list[bytes]:
    lines: list[bytes] = []
    outputs = getattr(result, "outputs", None)
    if outputs is not None:
        for output in outputs:
            lines.append(bundle_line(_field(output, "data") or {}, _field(output, "type") == "result"))
    else:  # before the cells work: figures are files
        for name in sorted(n for n in result.files if n.startswith("figure-") and n.endswith(".png")):
            lines.append(line({"type": "result", "png": result.files[name], "is_main_result": False}))
    return lines


def error_line(result: Result, language: str) -> bytes | None:
    if result.ok:
        return None
    name = getattr(result, "error_name", None)
    if name:
        return line({"type": "error", "name": name, "value": getattr(result, "error_value", None) or "",
                     "traceback": getattr(result, "traceback", None) or ""})
    if result.status.value == "error" and language == "bash":
        return line({"type": "error", "name": "BashError", "value": f"exit code {result.exit_code}",
                     "traceback": result.stderr})
    if result.status.value == "error" and result.stderr.strip():
        last = result.stderr.strip().splitlines()[-1]
        exc, sep, value = last.partition(": ")
        if exc.replace(".", "").replace("_", "").isalnum():
            return line({"type": "error", "name": exc, "value": value if sep else "", "traceback": result.stderr})
    names = {"timeout": "TimeoutError", "cpu_limit": "CPULimitExceeded", "memory_limit": "MemoryError",
             "output_limit": "OutputLimitExceeded", "rejected": "InvalidRequest", "failed": "ExecutionFailed"}
    return line({"type": "error", "name": names.get(result.status.value, "ExecutionError"),
                 "value": result.error or result.status.value, "traceback": result.stderr})


def count_line(n: int) -> bytes:
    return line({"type": "number_of_executions", "execution_count": n})
