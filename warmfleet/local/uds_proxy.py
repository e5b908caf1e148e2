"""Relay a private Unix socket to the operator's Redis: sandboxes have no network and
see only our socket directory, so when Redis lives elsewhere (TCP or another socket), pods talk to this socket and `warmfleet up`
(on the host) relays the bytes."""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Callable


class UnixSocketProxy:
    """Listen on `socket_path`; relay each connection to `target` (a Unix path or (host, port)),
    or to what `target()` returns at that moment (a Sentinel-named primary)."""

    def __init__(self, socket_path: str, target: "str | tuple[str, int] | Callable[[], tuple[str, int]]") -> None:
        self.socket_path = socket_path
        self.target = target
        self._server: socket.socket | None = None
        self._conns: set[socket.socket] = set()
        self._lock = threading.Lock()

    def start(self) -> None:
        srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old = os.umask(0o077)  # 0700: job uids inside the sandbox get EACCES
        try:
            srv.bind(self.socket_path)
        finally:
            os.umask(old)
        srv.listen(128)
        self._server = srv
        threading.Thread(target=self._accept, name="uds-proxy", daemon=True).start()

    def _accept(self) -> None:
        assert self._server is not None
        while True:
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            try:
                upstream = self._connect()
            except Exception:  # OSError, or no primary known to the Sentinels right now
                client.close()
                continue
            with self._lock:
                self._conns.update((client, upstream))
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _connect(self) -> socket.socket:
        target = self.target() if callable(self.target) else self.target
        if isinstance(target, str):
            upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            upstream.connect(target)
            return upstream
        upstream = socket.create_connection(target, timeout=10)
        upstream.settimeout(None)
        return upstream

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        with self._lock:
            for s in self._conns:
                s.close()
            self._conns.clear()
        try:
            os.unlink(self.socket_path)
        except FileNotFoundError:
            pass
