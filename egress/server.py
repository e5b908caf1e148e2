"""The egress proxy's two endpoints.

Jobs (through the relay in their network namespace) connect to `listen`, send
"<job_id> <token>\\n", then speak HTTP proxy or SOCKS5 (told apart by the first byte).
Each request is decided once (policy.py) on the name and on the address it resolves
to, and the proxy connects to exactly that address. Denials get a 403 (or the SOCKS
refusal) saying `network access denied by sandbox policy: HOST:PORT`, a JSON log line
with the job id, and a count in warmfleet_egress_requests_total{pool,decision}.

Supervisors connect to `control` (a socket jobs cannot reach) and send
"USAGE <job_id> <control token>\\n" once the job ended: the answer is the job's egress
as one JSON line, and its tunnels are closed.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os

from prometheus_client import CollectorRegistry, Counter

from egress import protocols
from egress.policy import Policy, denial_text
from egress.resolver import Resolver
from warmfleet.settings import EgressSettings
from egress.usage import JobUsage, UsageBook
from warmfleet.contract import egress_identity as identity

log = logging.getLogger("warmfleet.egress")
PIPE_CHUNK = 64 << 10


class EgressProxy:
    def __init__(self, settings: EgressSettings, registry: CollectorRegistry | None = None) -> None:
        self.settings = settings
        self.policy = Policy.parse(settings.egress_allow)
        self.resolver = Resolver(settings.egress_hosts_file)
        self.usage = UsageBook(settings.egress_job_ttl_s, settings.egress_max_jobs_tracked)
        self.registry = registry or CollectorRegistry()
        self.requests = Counter(
            "warmfleet_egress_requests", "Egress requests by decision", ["pool", "decision"], registry=self.registry
        )
        self.servers: list[asyncio.base_events.Server] = []

    async def start(self) -> None:
        self.servers.append(await _listen(self.settings.egress_listen, self._serve_job, self.settings.egress_socket_mode))
        self.servers.append(await _listen(self.settings.egress_control, self._serve_control, 0o600))

    async def stop(self) -> None:
        for server in self.servers:
            server.close()
        for usage in list(self.usage.jobs.values()):
            usage.close_tunnels()

    # -- control -------------------------------------------------------------------------
    async def _serve_control(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            line = await asyncio.wait_for(reader.readline(), self.settings.egress_request_timeout_s)
            parts = line[: identity.MAX_PREAMBLE].decode("ascii", "replace").split()
            if len(parts) == 3 and parts[0] == "USAGE" and identity.same(
                parts[2], identity.control_token(self.settings.egress_secret, self.settings.egress_pool, parts[1])
            ):
                writer.write(json.dumps(self.usage.collect(parts[1])).encode() + b"\n")
            else:
                writer.write(b'{"error": "bad control request"}\n')
            await writer.drain()
        except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    # -- jobs ----------------------------------------------------------------------------
    async def _serve_job(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await self._handle(reader, writer)
        except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError, ValueError):
            pass
        finally:
            writer.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        timeout = self.settings.egress_request_timeout_s
        line = await asyncio.wait_for(reader.readline(), timeout)
        parts = line[: identity.MAX_PREAMBLE].decode("ascii", "replace").split()
        expected = identity.job_token(self.settings.egress_secret, self.settings.egress_pool, parts[0]) if len(parts) == 2 else ""
        if not (len(parts) == 2 and identity.same(parts[1], expected)):
            log.warning("egress request without a valid job token")
            return
        usage = self.usage.get(parts[0])
        first = await asyncio.wait_for(reader.readexactly(1), timeout)
        try:
            if first[0] == protocols.SOCKS_VERSION:
                request = await asyncio.wait_for(protocols.read_socks(reader, writer), timeout)
            else:
                request = await asyncio.wait_for(protocols.read_http(reader, first), timeout)
        except protocols.BadRequest as exc:
            if first[0] != protocols.SOCKS_VERSION:
                writer.write(protocols.http_response(400, "Bad Request", f"{exc}\n"))
                await writer.drain()
            return
        await self._forward(request, usage, reader, writer)

    async def _forward(
        self, request: protocols.Request, usage: JobUsage, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        dest = f"[{request.host}]:{request.port}" if ":" in request.host else f"{request.host}:{request.port}"
        decision = self.policy.decide(request.host, request.port, await self.resolver.resolve(request.host))
        reason = decision.reason
        if decision.allowed and usage.connections >= self.settings.egress_max_connections_per_job:
            reason = usage.limit_hit = f"connection limit of {self.settings.egress_max_connections_per_job} per job reached"
        elif decision.allowed and usage.bytes >= self.settings.egress_max_bytes_per_job:
            reason = usage.limit_hit = f"byte limit of {self.settings.egress_max_bytes_per_job} per job reached"
        allowed = decision.allowed and reason == "allowed"
        record = usage.destination(dest, allowed, None if allowed else reason)
        record.connections += 1
        self.requests.labels(self.settings.egress_pool, "allowed" if allowed else "denied").inc()
        if not allowed:
            log.warning("egress denied", extra={"job_id": usage.job_id, "destination": dest, "reason": reason})
            await self._deny(request, writer, reason)
            return
        usage.connections += 1
        assert decision.address is not None
        try:
            up_reader, up_writer = await asyncio.wait_for(
                asyncio.open_connection(decision.address, request.port), self.settings.egress_connect_timeout_s
            )
        except (OSError, asyncio.TimeoutError) as exc:
            record.reason = f"connect failed: {exc.__class__.__name__}"
            await self._fail(request, writer, dest)
            return
        if request.kind == "connect":
            writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
        elif request.kind == "socks":
            writer.write(protocols.socks_reply(protocols.SOCKS_OK))
        sent = request.head + request.rest  # a plain request's head, and what followed any head
        if sent:
            up_writer.write(sent)
            usage.bytes += len(sent)
            record.bytes_out += len(sent)
        usage.tunnels.update((writer, up_writer))
        try:
            await asyncio.gather(
                self._pipe(reader, up_writer, usage, record, "bytes_out"),
                self._pipe(up_reader, writer, usage, record, "bytes_in"),
            )
        finally:
            usage.tunnels.discard(writer)
            usage.tunnels.discard(up_writer)
            up_writer.close()

    async def _pipe(self, src: asyncio.StreamReader, dst: asyncio.StreamWriter, usage: JobUsage, record, field: str) -> None:
        try:
            while True:
                data = await asyncio.wait_for(src.read(PIPE_CHUNK), self.settings.egress_idle_timeout_s)
                if not data:
                    break
                room = self.settings.egress_max_bytes_per_job - usage.bytes
                if len(data) > room:
                    usage.limit_hit = f"byte limit of {self.settings.egress_max_bytes_per_job} per job reached"
                    data = data[: max(room, 0)]
                usage.bytes += len(data)
                setattr(record, field, getattr(record, field) + len(data))
                dst.write(data)
                await dst.drain()
                if usage.bytes >= self.settings.egress_max_bytes_per_job:
                    usage.limit_hit = f"byte limit of {self.settings.egress_max_bytes_per_job} per job reached"
                    usage.close_tunnels()
                    return
            if dst.can_write_eof():
                dst.write_eof()
        except (OSError, asyncio.TimeoutError, RuntimeError):
            dst.close()

    async def _deny(self, request: protocols.Request, writer: asyncio.StreamWriter, reason: str) -> None:
        if request.kind == "socks":
            writer.write(protocols.socks_reply(protocols.SOCKS_NOT_ALLOWED))
        else:
            text = denial_text(request.host, request.port)
            writer.write(protocols.http_response(403, "Forbidden", text + "\n", {"X-Warmfleet-Egress-Reason": reason}))
        await writer.drain()

    async def _fail(self, request: protocols.Request, writer: asyncio.StreamWriter, dest: str) -> None:
        if request.kind == "socks":
            writer.write(protocols.socks_reply(protocols.SOCKS_REFUSED))
        else:
            writer.write(protocols.http_response(502, "Bad Gateway", f"could not connect to {dest}\n"))
        await writer.drain()


async def _listen(address: str, handler, mode: int) -> asyncio.base_events.Server:
    kind, _, rest = address.partition(":")
    if kind == "unix":
        try:
            os.unlink(rest)
        except FileNotFoundError:
            pass
        old = os.umask(0o077)
        try:
            server = await asyncio.start_unix_server(handler, rest, limit=protocols.MAX_HEAD)
        finally:
            os.umask(old)
        os.chmod(rest, mode)
        return server
    if kind == "tcp":
        host, _, port = rest.rpartition(":")
        return await asyncio.start_server(handler, host.strip("[]"), int(port), limit=protocols.MAX_HEAD)
    raise ValueError(f"egress endpoint {address!r}: expected unix:/path or tcp:HOST:PORT")
