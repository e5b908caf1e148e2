"""The job's way out: a relay on 127.0.0.1 inside the job's own network namespace that
carries each connection to the pool's egress proxy over a Unix socket, prefixed with the
job's id and token (warmfleet/contract/egress_identity.py). HTTP_PROXY/HTTPS_PROXY/ALL_PROXY
point here, so pip, requests, urllib, httpx and curl use it without knowing.

One daemon thread in the job child, started before the job's code runs, with a selector
loop (no thread per connection: threads count against the job's RLIMIT_NPROC and its
stacks against RLIMIT_AS). Stdlib only: the child imports it.

The job may break its own relay (close its socket, exec another program); it then loses
its own egress, quickly: connections are refused, nothing hangs.
"""

from __future__ import annotations

import selectors
import socket
import threading

RELAY_PORT = 3128  # on 127.0.0.1 in each job's own network namespace
MAX_PAIRS = 64
MAX_BUFFERED = 256 << 10  # per direction: stop reading while the other side lags


class _Pair:
    def __init__(self, client: socket.socket, upstream: socket.socket, preamble: bytes) -> None:
        self.client, self.upstream = client, upstream
        self.pending = {client: bytearray(), upstream: bytearray(preamble)}  # to write to that socket
        self.eof = {client: False, upstream: False}  # that socket's peer will send no more

    def other(self, sock: socket.socket) -> socket.socket:
        return self.upstream if sock is self.client else self.client


class Relay:
    def __init__(self, proxy_socket: str, port: int) -> None:
        """Listen now (the spare, before any job); relay once start() names the job."""
        self.proxy_socket = proxy_socket
        self.preamble = b""
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", port))
        self.listener.listen(MAX_PAIRS)
        self.port = self.listener.getsockname()[1]
        self.listener.setblocking(False)
        self.sel = selectors.DefaultSelector()
        self.sel.register(self.listener, selectors.EVENT_READ)
        self.pairs: dict[socket.socket, _Pair] = {}

    def environment(self) -> dict[str, str]:
        return proxy_environment(self.port)

    def start(self, job_id: str, token: str) -> threading.Thread:
        self.preamble = f"{job_id} {token}\n".encode()
        thread = threading.Thread(target=self._loop, name="egress-relay", daemon=True)
        thread.start()
        return thread

    def _loop(self) -> None:
        while True:
            for key, events in self.sel.select():
                sock = key.fileobj
                if sock is self.listener:
                    self._accept()
                elif sock in self.pairs:
                    self._service(sock, events)  # type: ignore[arg-type]

    def _accept(self) -> None:
        try:
            client, _ = self.listener.accept()
        except OSError:
            return
        if len(self.pairs) >= 2 * MAX_PAIRS:
            client.close()
            return
        upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            upstream.settimeout(5)
            upstream.connect(self.proxy_socket)
        except OSError:
            client.close()  # the proxy is gone: refuse at once rather than hang
            upstream.close()
            return
        pair = _Pair(client, upstream, self.preamble)
        for s in (client, upstream):
            s.setblocking(False)
            self.pairs[s] = pair
        self._watch(pair)

    def _service(self, sock: socket.socket, events: int) -> None:
        pair = self.pairs[sock]
        other = pair.other(sock)
        try:
            if events & selectors.EVENT_WRITE and pair.pending[sock]:
                sent = sock.send(pair.pending[sock])
                del pair.pending[sock][:sent]
                if not pair.pending[sock] and pair.eof[sock]:
                    sock.shutdown(socket.SHUT_WR)
            if events & selectors.EVENT_READ:
                data = sock.recv(65536)
                if data:
                    pair.pending[other] += data
                else:
                    pair.eof[other] = True
                    if not pair.pending[other]:
                        other.shutdown(socket.SHUT_WR)
        except OSError:
            self._close(pair)
            return
        if all(pair.eof.values()) and not any(pair.pending.values()):
            self._close(pair)
        else:
            self._watch(pair)

    def _watch(self, pair: _Pair) -> None:
        for sock in (pair.client, pair.upstream):
            other = pair.other(sock)
            events = 0
            if not pair.eof[other] and len(pair.pending[other]) < MAX_BUFFERED:
                events |= selectors.EVENT_READ
            if pair.pending[sock]:
                events |= selectors.EVENT_WRITE
            try:
                if events and sock in self.sel.get_map():
                    self.sel.modify(sock, events)
                elif events:
                    self.sel.register(sock, events)
                elif sock in self.sel.get_map():
                    self.sel.unregister(sock)
            except (KeyError, ValueError, OSError):
                self._close(pair)
                return

    def _close(self, pair: _Pair) -> None:
        for sock in (pair.client, pair.upstream):
            self.pairs.pop(sock, None)
            try:
                self.sel.unregister(sock)
            except (KeyError, ValueError):
                pass
            sock.close()


def proxy_environment(port: int) -> dict[str, str]:
    """What a job's tools read to find the relay (curl reads only the lower-case http_proxy).
    ALL_PROXY names the HTTP proxy too: httpx refuses a socks5 one unless socksio is
    installed. SOCKS5 answers on the same port for tools told so (socks5h://127.0.0.1:PORT)."""
    http = f"http://127.0.0.1:{port}"
    env = {"HTTP_PROXY": http, "HTTPS_PROXY": http, "ALL_PROXY": http, "NO_PROXY": "localhost,127.0.0.1,::1"}
    env.update({k.lower(): v for k, v in env.items()})
    return env
