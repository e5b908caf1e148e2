"""Whatever a `warmfleet up` starts ends when it ends, however it ends (kill -9 included).

Each fleet keeps a record in the state directory: its owner (pid and start time), its
runtime directory, its private runsc root, and the pid and start time of every host
process it started (the embedded redis-server; the supervisors of --no-sandbox pods).
Two things act on it, both by those recorded ids, never by a process name:

- a watchdog process per fleet, in its own session, blocked reading a pipe whose only
  write end the owner holds: at end of file (the owner is gone, the kernel closed it)
  it kills and deletes every sandbox in the fleet's runsc root, kills the recorded
  processes, and removes the runtime directory and the record;
- a sweep when a fleet starts, for records whose owner is dead (the watchdog itself
  was killed, or the machine rebooted mid-cleanup).

Runs as `python -I -S watchdog.py RECORD FD`: stdlib only, nothing of the project
imported, so it costs a few MB and starts in milliseconds.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time

RECORDS_DIR = "fleets"
QUIET_S = 1.0  # a `runsc run` in flight when the owner died shows up within this
GIVE_UP_S = 30.0


def start_time(pid: int) -> int | None:
    """Clock ticks after boot at which `pid` started (/proc/PID/stat field 22); None if
    it is gone or a zombie."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
        return None if fields[0] in (b"Z", b"X") else int(fields[19])
    except (OSError, IndexError, ValueError):
        return None


def identity(pid: int) -> list[int]:
    return [pid, start_time(pid) or 0]


def same_process(ident: list[int] | None) -> bool:
    """The recorded process still runs (and its pid was not reused)."""
    return bool(ident) and ident[1] != 0 and start_time(ident[0]) == ident[1]


def write_record(path: str, record: dict) -> None:
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600), "w") as f:
        json.dump(record, f)
    os.replace(tmp, path)


def read_record(path: str) -> dict | None:
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


class Guard:
    """The owner's side: its fleet's record and the only write end of its watchdog's pipe."""

    def __init__(self, records_dir: str, runtime_dir: str, **fields: object) -> None:
        os.makedirs(records_dir, mode=0o700, exist_ok=True)
        self.path = os.path.join(records_dir, os.path.basename(runtime_dir) + ".json")
        self.record: dict = {
            "owner": identity(os.getpid()), "runtime_dir": runtime_dir, "processes": [], "url": None, **fields
        }
        self._lock = threading.Lock()
        self._proc: subprocess.Popen | None = None
        self._fd: int | None = None

    def start(self) -> None:
        write_record(self.path, self.record)
        r, self._fd = os.pipe()  # both ends close-on-exec: no other child of ours inherits them
        try:
            self._proc = subprocess.Popen(
                [sys.executable, "-I", "-S", os.path.abspath(__file__), self.path, str(r)],
                pass_fds=(r,), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                start_new_session=True,  # a terminal's Ctrl-C or a group kill does not take it along
            )
        finally:
            os.close(r)
        self.update(watchdog=identity(self._proc.pid))

    def add_process(self, pid: int) -> None:
        """A host process we started: killed (if still the same process) when we die."""
        with self._lock:
            alive = [p for p in self.record["processes"] if same_process(p)]
            self.record["processes"] = [*alive, identity(pid)]
            write_record(self.path, self.record)

    def update(self, **fields: object) -> None:
        with self._lock:
            self.record.update(fields)
            write_record(self.path, self.record)

    def release(self) -> None:
        """We removed everything ourselves: drop the record, then let the watchdog go."""
        with self._lock:
            try:
                os.unlink(self.path)
            except FileNotFoundError:
                pass
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        if self._proc is not None:
            try:
                self._proc.wait(10)  # it finds no record and exits at once
            except subprocess.TimeoutExpired:
                pass


def clean_up(record_path: str) -> bool:
    """Kill and remove everything the record names, then the record. False: no record."""
    record = read_record(record_path)
    if record is None:
        return False
    deadline = time.monotonic() + GIVE_UP_S
    quiet_since: float | None = None
    while time.monotonic() < deadline:
        found = _kill_sandboxes(record) + _kill_processes(record)
        now = time.monotonic()
        if found:
            quiet_since = None
        elif quiet_since is None:
            quiet_since = now
        elif now - quiet_since >= QUIET_S:
            break
        time.sleep(0.1)
        record = read_record(record_path) or record  # pods started meanwhile
    url_file = record.get("url_file")
    if url_file and record.get("url"):
        try:
            with open(url_file) as f:
                ours = f.read().strip() == record["url"]
            if ours:
                os.unlink(url_file)
        except OSError:
            pass
    runtime_dir = record.get("runtime_dir")
    if runtime_dir and os.path.basename(runtime_dir).startswith("warmfleet-"):
        shutil.rmtree(runtime_dir, ignore_errors=True)
    try:
        os.unlink(record_path)
    except FileNotFoundError:
        pass
    return True


def _kill_sandboxes(record: dict) -> int:
    runsc, root = record.get("runsc"), record.get("runsc_root")
    if not runsc or not root or not os.path.isdir(root):
        return 0
    try:
        out = subprocess.run([runsc, "--root", root, "list", "-quiet"], capture_output=True, text=True, timeout=30)
        ids = [line.strip() for line in out.stdout.splitlines() if line.strip()]
        for cid in ids:
            subprocess.run([runsc, "--root", root, "kill", cid, "KILL"], capture_output=True, timeout=30)
            subprocess.run([runsc, "--root", root, "delete", "--force", cid], capture_output=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return 0  # runsc gone or hung: the processes and the directory are still ours to remove
    return len(ids)


def _kill_processes(record: dict) -> int:
    found = 0
    for ident in record.get("processes", []):
        if same_process(ident):
            found += 1
            for kill in (os.killpg, os.kill):  # --no-sandbox supervisors lead their own group
                try:
                    kill(ident[0], signal.SIGKILL)
                except OSError:
                    pass
    return found


def sweep(records_dir: str) -> list[str]:
    """Clean up every recorded fleet whose owner is dead; return their runtime dirs."""
    swept = []
    try:
        names = os.listdir(records_dir)
    except FileNotFoundError:
        return swept
    for name in names:
        if not name.endswith(".json"):
            continue
        path = os.path.join(records_dir, name)
        record = read_record(path)
        if record is None or same_process(record.get("owner")):
            continue
        if clean_up(path):
            swept.append(record.get("runtime_dir", ""))
    return swept


def main(argv: list[str]) -> int:
    record_path, fd = argv[1], int(argv[2])
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    while True:
        try:
            if not os.read(fd, 4096):
                break  # end of file: the owner is gone, however it went
        except InterruptedError:
            continue
    clean_up(record_path)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
