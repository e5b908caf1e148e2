"""`warmfleet shell`: an interactive Python prompt whose every statement runs in one
fleet session (dispatcher/session.py), in gVisor: variables, imports and files persist
from line to line, as in a local REPL. Ctrl-D (or `exit`) closes the session."""

from __future__ import annotations

import argparse
import codeop
import sys

BANNER = "warmfleet shell: each statement runs in a sandboxed session on the fleet; Ctrl-D ends it."


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("shell", help="an interactive Python session whose every line runs in the sandbox")
    p.add_argument("--redis-url")
    p.add_argument("--pool")
    p.add_argument("--timeout", type=float, default=None, help="wall-clock seconds per statement")
    p.add_argument("--idle-timeout", type=float, default=1800.0, help="end the session after this long unused")
    p.set_defaults(func=cmd_shell)


def cmd_shell(args: argparse.Namespace) -> int:
    from dispatcher import Client, NoFleetConfigured

    try:
        client = Client(args.redis_url, pool=args.pool)
    except NoFleetConfigured as exc:
        print(f"warmfleet shell: {exc}", file=sys.stderr)
        return 2
    with client, client.session(idle_timeout=args.idle_timeout) as session:
        print(f"{BANNER} (session {session.id})", file=sys.stderr)
        return repl(session, args.timeout, input, sys.stdout, sys.stderr)


def repl(session, timeout: float | None, read=input, out=sys.stdout, err=sys.stderr) -> int:
    """Read statements (continuation lines as Python's REPL asks for them), run each
    complete one in the session, print what it printed. Returns at end of input."""
    from dispatcher import InvalidJob, SessionEnded

    compiler = codeop.CommandCompiler()
    buffer: list[str] = []
    while True:
        try:
            line = read("... " if buffer else ">>> ")
        except EOFError:
            print(file=out)
            return 0
        except KeyboardInterrupt:
            print("\nKeyboardInterrupt", file=err)
            buffer.clear()
            continue
        buffer.append(line)
        source = "\n".join(buffer)
        try:
            complete = compiler(source, "<shell>", "single") is not None
        except (SyntaxError, ValueError, OverflowError):
            complete = True  # let the sandbox report it, as Python would
        if not complete:
            continue
        buffer.clear()
        if not source.strip():
            continue
        if source.strip() in ("exit", "exit()", "quit", "quit()"):
            return 0
        try:
            result = session.run(source, timeout=timeout)  # a cell: its last expression's value comes back
        except InvalidJob as exc:
            print(f"warmfleet: {exc}", file=err)
            continue
        except SessionEnded as exc:
            print(f"warmfleet: {exc}", file=err)
            return 1
        out.write(result.stdout)
        show_outputs(result, out)
        err.write(result.stderr)
        if result.status.value not in ("ok", "error"):
            print(f"warmfleet: {result.status.value}: {result.error}", file=err)


BINARY_TYPES = {"image/png": "png", "image/jpeg": "jpg", "image/svg+xml": "svg"}


def show_outputs(result, out, images: bool = True) -> None:
    """The cell's outputs as IPython's terminal shows them: each one's text/plain, on its
    own line (`images` False: not those of images, which `run --out` writes to files)."""
    for output in result.outputs:
        if not images and any(m in output["data"] for m in BINARY_TYPES):
            continue
        text = output["data"].get("text/plain")
        if text is not None:
            out.write(text + "\n")
    if result.outputs_truncated:
        out.write("[warmfleet: some outputs were dropped: over the caps]\n")


def write_outputs(result, out_dir: str, err) -> None:
    """`run --out DIR`: each image output as output-N.png/.jpg/.svg (N: its place among
    the outputs, from 1), but a figure already returned as figure-N.png."""
    import base64
    import os

    returned = {data for name, data in result.files.items() if name.startswith("figure-")}
    for n, output in enumerate(result.outputs, 1):
        for mime, ext in BINARY_TYPES.items():
            if mime not in output["data"]:
                continue
            data = output["data"][mime]
            if data in returned:
                continue
            try:
                raw = data.encode() if mime == "image/svg+xml" else base64.b64decode(data, validate=True)
            except ValueError:
                continue
            os.makedirs(out_dir, exist_ok=True)
            path = os.path.join(out_dir, f"output-{n}.{ext}")
            with open(path, "wb") as f:
                f.write(raw)
            print(f"warmfleet: wrote {path}", file=err)
