"""A cell's lines that are not Python (executor/lean/cell.py): indentation common to all
lines, `!cmd` (and `x = !cmd`), the `%cd`, `%pwd`, `%env`, `%pip`, `%matplotlib` magics and
a leading `%%bash`/`%%sh`, rewritten one line for one into calls of HELPER (a builtin), so
line numbers stay the cell's. Stdlib only; subprocess is imported when a line runs."""

from __future__ import annotations

import os
import sys

HELPER = "__warmfleet_cell__"  # the builtin that rewritten !/% lines call


class UsageError(Exception):
    """A magic this cell does not know, or used wrongly (IPython's name for it)."""


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


class Helper:
    """What rewritten !/% lines call. `$name`, `${name}` and `{expression}` in a command
    are the cell's values, as in IPython."""

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
