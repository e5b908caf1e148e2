"""Read what a job asks the proxy for: an HTTP proxy request (CONNECT, or a plain HTTP
request with an absolute URL) or a SOCKS5 CONNECT. Every read is bounded in size; the
caller bounds it in time. HTTP heads are parsed by h11."""

from __future__ import annotations

import asyncio
import ipaddress
import struct
import urllib.parse
from dataclasses import dataclass

import h11

MAX_HEAD = 16 << 10
HOP_BY_HOP = {b"connection", b"keep-alive", b"proxy-connection", b"proxy-authorization", b"proxy-authenticate", b"te", b"upgrade"}
SOCKS_VERSION = 5
SOCKS_OK, SOCKS_NOT_ALLOWED, SOCKS_UNREACHABLE, SOCKS_REFUSED, SOCKS_BAD_COMMAND, SOCKS_BAD_ADDRESS = 0, 2, 4, 5, 7, 8


class BadRequest(Exception):
    """The job's request cannot be understood; the message says why."""


@dataclass
class Request:
    kind: str  # "connect" (HTTP CONNECT), "http" (forward one request), "socks"
    host: str
    port: int
    head: bytes = b""  # "http": the request head to send upstream (origin form)
    rest: bytes = b""  # bytes the job sent after the head (a body's start)


async def read_http(reader: asyncio.StreamReader, first: bytes) -> Request:
    buf = bytearray(first)
    while b"\r\n\r\n" not in buf:
        if len(buf) > MAX_HEAD:
            raise BadRequest("request head too large")
        chunk = await reader.read(4096)
        if not chunk:
            raise BadRequest("connection closed before the request head ended")
        buf += chunk
    end = buf.index(b"\r\n\r\n") + 4
    head, rest = bytes(buf[:end]), bytes(buf[end:])
    conn = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEAD)
    conn.receive_data(head)
    try:
        event = conn.next_event()
    except h11.RemoteProtocolError as exc:
        raise BadRequest(f"malformed request: {exc}") from None
    if not isinstance(event, h11.Request):
        raise BadRequest("malformed request")
    target = event.target.decode("ascii", "replace")
    if event.method == b"CONNECT":
        host, port = split_host_port(target, None)
        return Request("connect", host, port, rest=rest)
    url = urllib.parse.urlsplit(target)
    if url.scheme != "http" or not url.hostname:
        raise BadRequest("a proxy request needs an absolute http:// URL (use CONNECT for https)")
    host, port = split_host_port(url.netloc.rpartition("@")[2], 80)
    path = (url.path or "/") + (f"?{url.query}" if url.query else "")
    lines = [f"{event.method.decode()} {path} HTTP/1.1".encode()]
    lines += [name + b": " + value for name, value in event.headers if name.lower() not in HOP_BY_HOP]
    lines.append(b"Connection: close")
    return Request("http", host, port, head=b"\r\n".join(lines) + b"\r\n\r\n", rest=rest)


def split_host_port(text: str, default: int | None) -> tuple[str, int]:
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port_text = rest[1:] if rest.startswith(":") else ""
    elif text.count(":") == 1:
        host, _, port_text = text.partition(":")
    else:
        host, port_text = text, ""
    if not port_text:
        if default is None:
            raise BadRequest(f"{text!r}: a port is required")
        return host.lower(), default
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise BadRequest(f"{text!r}: bad port")
    if not host:
        raise BadRequest(f"{text!r}: no host")
    return host.lower(), int(port_text)


async def read_socks(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> Request:
    """Greeting (no authentication: the job is known from its preamble), then CONNECT."""
    nmethods = (await reader.readexactly(1))[0]
    await reader.readexactly(nmethods)
    writer.write(bytes([SOCKS_VERSION, 0]))
    version, command, _, atyp = await reader.readexactly(4)
    if version != SOCKS_VERSION:
        raise BadRequest("not a SOCKS5 request")
    if atyp == 1:
        host = str(ipaddress.IPv4Address(await reader.readexactly(4)))
    elif atyp == 4:
        host = str(ipaddress.IPv6Address(await reader.readexactly(16)))
    elif atyp == 3:
        size = (await reader.readexactly(1))[0]
        host = (await reader.readexactly(size)).decode("ascii", "replace").lower()
    else:
        writer.write(socks_reply(SOCKS_BAD_ADDRESS))
        raise BadRequest("unknown SOCKS address type")
    (port,) = struct.unpack("!H", await reader.readexactly(2))
    if command != 1:
        writer.write(socks_reply(SOCKS_BAD_COMMAND))
        raise BadRequest("only SOCKS CONNECT is supported")
    return Request("socks", host, port)


def socks_reply(code: int) -> bytes:
    return bytes([SOCKS_VERSION, code, 0, 1, 0, 0, 0, 0, 0, 0])


def http_response(status: int, reason: str, body: str, extra: dict[str, str] | None = None) -> bytes:
    data = body.encode()
    headers = {"Content-Type": "text/plain; charset=utf-8", "Content-Length": str(len(data)), "Connection": "close"}
    headers.update(extra or {})
    head = f"HTTP/1.1 {status} {reason}\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    return head.encode() + b"\r\n" + data
