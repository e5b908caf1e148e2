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
            # "single" mode echoes an expression's value, like the interactive prompt.
            code = f"exec(compile({source!r}, '<shell>', 'single'))"
            result = session.run(code, timeout=timeout)
        except InvalidJob as exc:
            print(f"warmfleet: {exc}", file=err)
            continue
        except SessionEnded as exc:
            print(f"warmfleet: {exc}", file=err)
            return 1
        out.write(result.stdout)
        err.write(result.stderr)
        if result.status.value not in ("ok", "error"):
            print(f"warmfleet: {result.status.value}: {result.error}", file=err)
