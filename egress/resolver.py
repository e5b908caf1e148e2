"""Name resolution for the proxy: a hosts file first (names a test or an operator pins),
then the system resolver. The proxy connects to one of the addresses returned here,
never resolving twice, so a name cannot change its answer between check and connect."""

from __future__ import annotations

import asyncio
import ipaddress
import socket


def read_hosts(path: str | None) -> dict[str, list[str]]:
    names: dict[str, list[str]] = {}
    if not path:
        return names
    with open(path) as f:
        for line in f:
            fields = line.split("#", 1)[0].split()
            if len(fields) < 2:
                continue
            address = str(ipaddress.ip_address(fields[0]))
            for name in fields[1:]:
                names.setdefault(name.lower().rstrip("."), []).append(address)
    return names


class Resolver:
    def __init__(self, hosts_file: str | None = None) -> None:
        self.hosts = read_hosts(hosts_file)

    async def resolve(self, name: str) -> list[str]:
        """Addresses for a name or an address literal; [] if it does not resolve."""
        try:
            return [str(ipaddress.ip_address(name))]
        except ValueError:
            pass
        key = name.lower().rstrip(".")
        if key in self.hosts:
            return list(self.hosts[key])
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(key, None, type=socket.SOCK_STREAM)
        except (socket.gaierror, UnicodeError):
            return []
        seen: list[str] = []
        for info in infos:
            address = str(info[4][0])
            if address not in seen:
                seen.append(address)
        return seen
