"""Kubernetes: the pool's egress gateway is another Deployment, reached over TCP, and a
job's network namespace has no route to it. The supervisor (in the pod's namespace)
listens on the Unix socket the jobs' relays connect to and carries each connection to
the gateway unchanged; the gateway checks the job's token and decides.

Locally the proxy's socket is bind-mounted into the pod instead and this is not used.
The sessions' relays (executor/egress/sessions.py) reach the proxy through
connect_upstream either way."""

from __future__ import annotations

import asyncio
import logging
import os

log = logging.getLogger("warmfleet.egress")
CHUNK = 64 << 10


async def start(socket_path: str, gateway: str) -> asyncio.base_events.Server:
    host, _, port = gateway.rpartition(":")
    os.makedirs(os.path.dirname(socket_path), mode=0o755, exist_ok=True)
    try:
        os.unlink(socket_path)
    except FileNotFoundError:
        pass

    async def forward(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.wait_for(asyncio.open_connection(host.strip("[]"), int(port)), 10)
        except (OSError, TimeoutError) as exc:
            log.warning("egress gateway unreachable", extra={"gateway": gateway, "error": str(exc)})
            writer.close()
            return
        try:
            await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
        finally:
            writer.close()
            up_writer.close()

    server = await asyncio.start_unix_server(forward, socket_path)
    os.chmod(socket_path, 0o666)  # the job uids connect; the gateway wants a job token
    return server


async def connect_upstream(socket_path: str, gateway: str | None) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A connection to the pool's egress proxy: its gateway directly when there is one
    (Kubernetes: no second hop through our own forwarder), else its Unix socket."""
    if gateway:
        host, _, port = gateway.rpartition(":")
        return await asyncio.open_connection(host.strip("[]"), int(port))
    return await asyncio.open_unix_connection(socket_path)


async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
    try:
        while data := await src.read(CHUNK):
            dst.write(data)
            await dst.drain()
        if dst.can_write_eof():
            dst.write_eof()
    except (OSError, RuntimeError):
        dst.close()  # one side broke: end the other too
