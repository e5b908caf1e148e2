"""A session process: one long-lived Python interpreter that runs an agent's calls in the
same globals, in its own workspace, as its own unprivileged uid.

Forked by the pod's session zygote (executor/lean/session_zygote.py), which holds this module
and the pool's preloaded job environment, with stdout/stderr on pipes the supervisor
reads and a socketpair for messages (warmfleet.contract.messages frames); its cfg comes over the
zygote's control socket, never on a command line. It imports only the stdlib, the
messages module and the executor's stdlib-only helpers: what it does not share with the
zygote is an idle session's host memory.

Locked down as a job child is (executor/lean/lockdown.py; the zygote's fork detached it):
close every other descriptor -> drop to the session uid -> kill whatever that uid left
running -> empty the workspace -> rlimits -> minimal environment -> "ready" -> calls.

A call's wall clock is a SIGALRM the supervisor sends at the deadline, whose handler
raises CallInterrupted, a BaseException the call loop catches: the interpreter and its
globals survive. The supervisor interrupts the same way for CPU and output budgets and SIGKILLs the whole
session if a call does not stop within the grace (then the session is lost).

``reset`` mode only does the cleanup part and exits: the supervisor runs it after
a session ends, so nothing of it outlives it.
"""

from __future__ import annotations

import binascii
import builtins
import os
import resource
import signal
import sys
import time

from executor.lean.cell import Cell, print_traceback
from executor.lean.child import run_bash
from executor.lean.jobenv import LIBRARY_ENV, Figures, seed_matplotlib_config
from executor.lean.jobfiles import collect_outputs, place_inputs
from executor.lean.lockdown import hide_executor, limit, limit_resources, lock_down, reset_environment_and_stdio
from executor.lean.verdict import CALL_WORDS, exit_status, verdict
from warmfleet.contract import messages
from warmfleet.contract.messages import Call, CallOutcome, SessionBroken, SessionConfig, SessionReady

OUT_DIR = "out"
MAX_CONTEXTS = 32


class CallInterrupted(BaseException):
    """The call's wall clock ran out, or the supervisor stopped it (CPU, output)."""


EXECUTOR_MODULES: list[str] | None = None  # listed by the zygote before it forks (lockdown.executor_modules)
IN_CALL = [False]  # a late interrupt (after the call ended) must not hit the loop itself


def _interrupt(*_: object) -> None:
    if IN_CALL[0]:
        raise CallInterrupted()


class SessionLoop:
    def __init__(self, cfg: SessionConfig, chan: int) -> None:
        self.cfg = cfg
        self.chan = chan
        self.globals: dict = fresh_globals()
        # Other contexts of the session (E2B's code contexts): each its own globals, all in
        # the one workspace, process and budget. "" is the session's own.
        self.contexts: dict[str, dict] = {"": self.globals}
        self.calls = 0
        self.cell = Cell()  # its execution_count is the session's
        self.figures: Figures | None = None  # with a job environment: matplotlib figures come back

    def start(self) -> None:
        cfg = self.cfg
        # Preloaded (pandas...): the budgets count on top of what the zygote's modules map,
        # as a preloaded job child's do, or a 256 MiB call would be spent before it starts.
        self.as_base = limit_resources(cfg, preloaded=cfg.preloaded)
        self.max_as = self.as_base + (cfg.max_memory_mb << 20)
        self.pid = os.getpid()
        # HTTP(S)_PROXY/ALL_PROXY in an egress pool: the relay in our namespace
        reset_environment_and_stdio(cfg.workspace, cfg.egress_env or {})
        compile("print(1)", "<warm>", "exec")  # the first call should not pay for the compiler's warm-up
        hide_executor(EXECUTOR_MODULES)  # the session's code imports the stdlib, never the executor
        if cfg.job_path:  # and its pool's job environment (executor/lean/jobenv.py)
            sys.path.extend(p for p in cfg.job_path if p not in sys.path)
            os.environ.update(LIBRARY_ENV)
            # As a job's: matplotlib's config dir holds the environment's font list, or the
            # first import rebuilds it (in the call's budget, fc-list on stderr).
            # In the workspace: the only place the session uid may write.
            mpl = os.path.join(cfg.workspace, ".config", "matplotlib")
            try:
                if "matplotlib.font_manager" not in sys.modules:  # preloaded: it has its list
                    seed_matplotlib_config(cfg.job_path, mpl)
            except OSError:
                pass  # then matplotlib rebuilds the list: slower, not broken
            os.environ["MPLCONFIGDIR"] = mpl
            self.figures = Figures(None)
            self.figures.on_png = self.cell.add_png
            self.figures.install()

    def serve(self) -> int:
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
        keep_from_children(self.chan)
        messages.send(self.chan, SessionReady(pid=os.getpid()))
        while True:
            try:
                msg = messages.receive(self.chan, "session")
            except (EOFError, OSError, ValueError):
                return 0
            if not isinstance(msg, Call):
                return 0
            messages.send(self.chan, self.call(msg))

    def call(self, msg: Call) -> CallOutcome:
        # The previous call may have changed these: each call starts with ours. SIGHUP:
        # the supervisor stops the group to kill a runaway call's children, and Linux
        # hangs up an orphaned group that had stopped members. Each is a syscall (~25 us
        # under gVisor), so only what the signal module says was changed is set again; a
        # call that changes them behind its back (ctypes) only loses its own session.
        if signal.getsignal(signal.SIGALRM) is not _interrupt:
            signal.signal(signal.SIGALRM, _interrupt)
        if signal.getsignal(signal.SIGHUP) is not signal.SIG_IGN:
            signal.signal(signal.SIGHUP, signal.SIG_IGN)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, [signal.SIGALRM])
        memory = min(self.as_base + (int(msg.memory_mb) << 20), self.max_as)
        try:  # every call: a call may have raised its own soft limit up to the hard one
            limit(resource.RLIMIT_AS, memory, self.max_as)
        except (ValueError, OSError):
            pass  # the session lowered its hard limit itself: it keeps the lower one
        started = time.monotonic()
        ru0 = resource.getrusage(resource.RUSAGE_SELF)
        # How the call ended, by its own account; verdict() says what that makes it.
        exit_code, interrupted, memory_error, raised = 0, False, False, None
        me = self.pid
        try:
            try:
                self.cell.begin()
                IN_CALL[0] = True
                place_inputs(msg.files or {}, replace=True)
                with CallEnvironment(msg.env or {}):
                    if msg.language == "bash":
                        _run_bash(msg.code)
                    else:
                        self.cell.run(msg.code, self.context(msg.context), f"<call {self.cell.execution_count + 1}>")  # its number
                    self._take_figures()  # in the call's time: drawing is the call's work
            finally:
                IN_CALL[0] = False
                if os.getpid() != me:
                    os._exit(0)  # a process the call forked never returns to the loop (or its channel)
        except CallInterrupted:
            exit_code, interrupted = None, True
            _print_tb()
            if self.cell.error is not None:
                self.cell.error["name"], self.cell.error["value"] = "Interrupted", "the call was interrupted"
        except SystemExit as exc:
            exit_code = exit_status(exc)
            if exit_code == 0:
                self.cell.error = None
        except MemoryError:
            exit_code, memory_error = 1, True
            _print_tb()
        except BaseException as exc:  # noqa: BLE001 - the call's own failure, reported as Python would
            exit_code, raised = 1, type(exc).__name__
            _print_tb()
        self.calls += 1
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except BaseException:  # noqa: BLE001 - a broken stream must not end the session
                pass
        ru1 = resource.getrusage(resource.RUSAGE_SELF)
        files, truncated = {}, False
        out_dir = os.path.join(self.cfg.workspace, OUT_DIR)
        try:
            if os.path.isdir(out_dir) and not os.path.islink(out_dir):
                files, truncated = collect_outputs(out_dir, self.cfg.max_files, self.cfg.max_output_files_bytes)
        except (OSError, MemoryError, ValueError):
            truncated = True
        truncated = self._add_figures(files) or truncated
        status, exit_code, error = verdict(msg, None, exit_code, interrupted=interrupted, memory_error=memory_error,
                                           raised=raised, words=CALL_WORDS)
        return CallOutcome(
            seq=msg.seq,  # which call this answers (the supervisor checks)
            status=status.value,
            exit_code=exit_code,
            error=error,
            duration_s=round(time.monotonic() - started, 6),
            cpu_s=round(ru1.ru_utime + ru1.ru_stime - ru0.ru_utime - ru0.ru_stime, 6),
            cpu_total_s=ru1.ru_utime + ru1.ru_stime,
            max_rss_bytes=ru1.ru_maxrss * 1024,
            files=files,
            files_truncated=truncated,
            execution_count=self.cell.execution_count,
            **self.cell.summary(),
        )


    def context(self, name: str) -> dict:
        """The globals of a context, made at its first call (at most MAX_CONTEXTS)."""
        found = self.contexts.get(name)
        if found is None:
            if len(self.contexts) >= MAX_CONTEXTS:
                raise RuntimeError(f"this session has {MAX_CONTEXTS} contexts already")
            found = self.contexts[name] = fresh_globals()
        return found

    def _take_figures(self) -> None:
        """This call's figures (shown, or left open: then closed, as a notebook does)."""
        if self.figures is None:
            return
        try:
            self.figures.save_open()
            plt = sys.modules.get("matplotlib.pyplot")
            if plt is not None:
                plt.close("all")
        except Exception as exc:  # noqa: BLE001 - the call's own objects failed to render
            print(f"warmfleet: could not save a figure: {type(exc).__name__}: {exc}", file=sys.stderr)

    def _add_figures(self, files: dict) -> bool:
        """The call's figures as figure-N.png beside its out/ files, within the same
        bounds; True if some did not fit."""
        if self.figures is None or not self.figures.captured:
            return False
        pngs, self.figures.captured = self.figures.captured, []
        room = self.cfg.max_output_files_bytes - sum(len(v) * 3 // 4 for v in files.values())
        truncated, n = False, 0
        for png in pngs:
            n += 1
            while f"figure-{n}.png" in files:
                n += 1
            if len(files) >= self.cfg.max_files or len(png) > room:
                truncated = True
                continue
            files[f"figure-{n}.png"] = binascii.b2a_base64(png, newline=False).decode("ascii")
            room -= len(png)
        return truncated


def fresh_globals() -> dict:
    return {"__name__": "__main__", "__builtins__": builtins, "__doc__": None}


def _run_bash(code: str) -> None:
    """A bash cell: `bash -c CODE` on our stdout/stderr (so its output streams as it is
    written), in the workspace, with the session's environment. A non-zero exit ends the
    call as `exit N` would; an interrupt kills it (and the supervisor kills whatever it left
    of the uid)."""
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    code_ = os.waitstatus_to_exitcode(run_bash(code))
    if code_ != 0:
        raise SystemExit(128 - code_ if code_ < 0 else code_)


def keep_from_children(chan: int) -> None:
    """The channel to the supervisor is this process's alone: not inherited across exec
    (O_CLOEXEC), and closed in a child a call forks, so a daemon a call leaves cannot talk
    to the supervisor after it. (The call's own code can still write to it; the supervisor
    ends a session that breaks the protocol.)"""
    os.set_inheritable(chan, False)
    st = os.fstat(chan)
    ours = (st.st_dev, st.st_ino)

    def close_in_child() -> None:
        try:
            st = os.fstat(chan)
            if (st.st_dev, st.st_ino) == ours:  # the number may have been reused by the call
                os.close(chan)
        except OSError:
            pass

    os.register_at_fork(after_in_child=close_in_child)


def _print_tb() -> None:
    """The call's traceback without the executor's frames, like `python file.py` would."""
    try:
        exc = sys.exc_info()[1]
        if exc is not None:
            print_traceback(exc)
    except BaseException:  # noqa: BLE001 - under memory pressure even printing may fail
        pass


class CallEnvironment:
    """Variables set for one call only: the session's own values are back after it
    (a call that changes one of them itself keeps that change only if the call did not
    set it)."""

    def __init__(self, env: dict) -> None:
        self.env = env

    def __enter__(self) -> None:
        self.saved = {name: os.environ.get(name) for name in self.env}
        os.environ.update(self.env)

    def __exit__(self, *exc: object) -> None:
        for name, value in self.saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def run(mode: str, chan: int, cfg: SessionConfig) -> int:
    """In a process the zygote just forked: lock down, then serve calls on `chan` (or, in
    "reset" mode, only clean up). Its exit status."""
    try:
        # Like a job child: a network namespace of its own (only lo), so the pod's loopback
        # services (metrics) are out of reach. In a pool with egress the supervisor
        # listens in it for us (executor/egress/sessions.py).
        lock_down(cfg, {chan}, thorough=True, egress=bool(cfg.egress_env))
        if mode == "reset":
            return 0
        loop = SessionLoop(cfg, chan)
        loop.start()
    except BaseException as exc:  # noqa: BLE001 - report any setup failure, then die
        try:
            messages.send(chan, SessionBroken(error=repr(exc)[:1000]))
        finally:
            os._exit(70)
    return loop.serve()
