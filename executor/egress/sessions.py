"""A session's way out in a pool with egress: a relay the supervisor runs for it.

A job child relays its own connections (executor/lean/egress_relay.py) because it dies with
its job. A session outlives its calls, so it never holds a token: a later call's code
could read an earlier call's token in the process's memory and spend egress no Result
reports. Instead the supervisor listens on 127.0.0.1:3128 *inside the session's network
namespace* (a socket made by a throwaway thread that setns() into it: the namespace is
per thread, and that thread ends there) and carries each connection to the pool's egress
proxy prefixed with the identity of the call that is running ("<call_id> <token>",
warmfleet/contract/egress_identity.py). The token never enters the session, nothing of this runs
as the session uid (no thread against its RLIMIT_NPROC or RLIMIT_AS), and the session uid
needs no access to the proxy's socket.

Per call, as for a job: connections made during a call carry that call's id, so the
proxy's per-job connection and byte caps hold per call, and Result.egress is that call's
(collected from the proxy when the call made any connection). A call's connections end
with it. Between calls there is no identity: a background thread's connection gets a 403
(SOCKS: no acceptable method) and is closed, so no egress happens that no Result reports.
"""

from __future__ import annotations

import asyncio
import ctypes
import os
import socket
import threading

from executor.egress import usage as egress_usage
from executor.egress.forward import connect_upstream, pipe
from executor.lean.egress_relay import MAX_PAIRS, RELAY_PORT
from warmfleet.settings import ExecutorSettings
from warmfleet.contract.schema import EgressReport

CLONE_NEWNET = 0x40000000
# Each relayed connection holds two of the supervisor's descriptors (its RLIMIT_NOFILE is
# 4096 in a local pod): bounded per session, and across the pod's sessions together.
SESSION_WRITERS = 2 * MAX_PAIRS
POD_WRITERS = 1024
CONNECT_TIMEOUT_S = 10.0
REFUSE_READ_S = 2.0  # to read a refused request's head before answering (no reset under it)
BETWEEN_CALLS = "network access denied by sandbox policy: a session reaches the network only while a call runs"


def listen_in_namespace(pid: int, uid: int, port: int) -> socket.socket:
    """A listening socket on 127.0.0.1:port in the network namespace of process `pid`,
    which must run as `uid` (the session's: never another process that got its pid)."""
    out: dict[str, object] = {}

    def enter() -> None:  # runs in its own thread, which ends in the session's namespace
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            # The /proc/PID directory stands for that one process: opened first, the uid
            # check and the namespace both come from it even if the pid is reused meanwhile.
            proc = os.open(f"/proc/{pid}", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            try:
                real = _uid_of(proc)
                if real != uid:
                    raise OSError(f"process {pid} is not the session's (uid {real}, not {uid})")
                fd = os.open("ns/net", os.O_RDONLY | os.O_CLOEXEC, dir_fd=proc)
            finally:
                os.close(proc)
            try:
                if libc.setns(fd, CLONE_NEWNET) != 0:
                    err = ctypes.get_errno()
                    raise OSError(err, f"setns into the session's network namespace: {os.strerror(err)}")
            finally:
                os.close(fd)
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                sock.bind(("127.0.0.1", port))
                sock.listen(MAX_PAIRS)
                sock.setblocking(False)
            except BaseException:
                sock.close()
                raise
            out["sock"] = sock
        except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread
            out["error"] = exc

    thread = threading.Thread(target=enter, name="session-netns", daemon=True)
    thread.start()
    thread.join()
    if "error" in out:
        raise out["error"]  # type: ignore[misc]
    return out["sock"]  # type: ignore[return-value]


def _uid_of(proc_dir: int) -> int:
    """The real uid in /proc/PID/status (the directory's owner is root for a process
    Linux made non-dumpable when it changed uid)."""
    fd = os.open("status", os.O_RDONLY | os.O_CLOEXEC, dir_fd=proc_dir)
    try:
        status = os.read(fd, 1 << 16).decode("ascii", "replace")
    finally:
        os.close(fd)
    return int(next(line for line in status.splitlines() if line.startswith("Uid:")).split()[1])


class PodRelays:
    """What every session relay of the pod holds open together (two writers a connection)."""

    def __init__(self, limit: int = POD_WRITERS) -> None:
        self.limit = limit
        self.writers: set[asyncio.StreamWriter] = set()


class SessionEgress:
    def __init__(self, settings: ExecutorSettings, listener: socket.socket, pod: PodRelays | None = None) -> None:
        self.settings = settings
        self.listener = listener
        self.pod = pod or PodRelays()
        self.call_id: str | None = None
        self.preamble = b""
        self.used = False  # a connection was relayed during the running call
        self.open_pairs: set[asyncio.StreamWriter] = set()
        self.server: asyncio.base_events.Server | None = None

    @classmethod
    async def open(cls, settings: ExecutorSettings, pid: int, uid: int, pod: PodRelays) -> "SessionEgress":
        """Listen in the namespace of the session process `pid` (running as `uid`)."""
        listener = await asyncio.to_thread(listen_in_namespace, pid, uid, RELAY_PORT)
        egress = cls(settings, listener, pod)
        await egress.serve()
        return egress

    async def serve(self) -> None:
        self.server = await asyncio.start_server(self._relay, sock=self.listener)

    def begin(self, call_id: str) -> None:
        ident = egress_usage.job_pass(self.settings, call_id)
        assert ident is not None
        self.call_id, self.used = call_id, False
        self.preamble = f"{call_id} {ident['token']}\n".encode()

    async def finish(self) -> EgressReport | None:
        """End the running call's egress: close its connections, report its usage."""
        call_id, self.call_id, self.preamble = self.call_id, None, b""
        self._close_pairs()
        if call_id is None:
            return None
        if not self.used:  # nothing reached the proxy under this call's id: no round trip
            return EgressReport()
        return await egress_usage.collect(self.settings, call_id)

    def close(self) -> None:
        self.call_id, self.preamble = None, b""
        if self.server is not None:
            self.server.close()
        self.listener.close()
        self._close_pairs()

    def _close_pairs(self) -> None:
        for writer in list(self.open_pairs):
            writer.close()
            self.pod.writers.discard(writer)
        self.open_pairs.clear()

    def _hold(self, writer: asyncio.StreamWriter) -> None:
        self.open_pairs.add(writer)
        self.pod.writers.add(writer)

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        call_id, preamble = self.call_id, self.preamble
        if len(self.open_pairs) >= SESSION_WRITERS or len(self.pod.writers) >= self.pod.limit:
            writer.close()  # refused at once: the client sees the connection close
            return
        self._hold(writer)
        up_writer: asyncio.StreamWriter | None = None
        try:
            if call_id is None:
                await _refuse(reader, writer)
                return
            self.used = True
            try:
                up_reader, up_writer = await asyncio.wait_for(
                    connect_upstream(self.settings.egress_socket or "", self.settings.egress_gateway), CONNECT_TIMEOUT_S
                )
            except (OSError, TimeoutError):
                return  # the proxy is unreachable: refused at once rather than a hang
            if self.call_id != call_id or writer not in self.open_pairs:
                return  # the call ended while we connected
            self._hold(up_writer)
            up_writer.write(preamble)
            await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
        finally:
            for w in (writer, up_writer):
                if w is not None:
                    w.close()
                    self.open_pairs.discard(w)
                    self.pod.writers.discard(w)


async def _refuse(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Say no in the client's protocol, after reading what it sent (closing on unread
    bytes would reset the connection before the answer is read)."""
    try:
        head = await asyncio.wait_for(reader.read(8192), REFUSE_READ_S)
    except (OSError, TimeoutError):
        return
    if head[:1] == b"\x05":  # a SOCKS5 greeting
        writer.write(b"\x05\xff")
    else:
        body = (BETWEEN_CALLS + "\n").encode()
        writer.write(
            b"HTTP/1.1 403 Forbidden\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n"
            + f"Content-Length: {len(body)}\r\n\r\n".encode() + body
        )
    try:
        await writer.drain()
    except OSError:
        pass
