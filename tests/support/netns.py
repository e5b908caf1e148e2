"""Several "hosts" on one machine: network namespaces joined to a Redis namespace by veth
links, with addresses from 10.213.0.0/16 that exist only inside these namespaces. Every
namespace, link and process made here is removed or killed (by PID) on close."""

from __future__ import annotations

import os
import subprocess

SUBNET = "10.213"  # 10.213.N.1 (Redis side) <-> 10.213.N.2 (host N), a /30 per link


def ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=30)


class HostsLab:
    def __init__(self, hosts: int) -> None:
        tag = f"wf{os.getpid() % 100000}"
        self.redis_ns = f"{tag}-r"
        self.host_ns = [f"{tag}-h{n}" for n in range(1, hosts + 1)]
        self.made: list[str] = []

    def redis_addr(self, n: int) -> str:
        """Where host n (1-based) reaches Redis."""
        return f"{SUBNET}.{n}.1"

    def start(self) -> "HostsLab":
        try:
            for ns in (self.redis_ns, *self.host_ns):
                ip("netns", "add", ns)
                self.made.append(ns)
                ip("-n", ns, "link", "set", "lo", "up")
            for n, ns in enumerate(self.host_ns, start=1):
                r_if, h_if = f"{ns}r"[-15:], f"{ns}h"[-15:]
                ip("link", "add", r_if, "netns", self.redis_ns, "type", "veth", "peer", "name", h_if, "netns", ns)
                ip("-n", self.redis_ns, "addr", "add", f"{SUBNET}.{n}.1/30", "dev", r_if)
                ip("-n", ns, "addr", "add", f"{SUBNET}.{n}.2/30", "dev", h_if)
                ip("-n", self.redis_ns, "link", "set", r_if, "up")
                ip("-n", ns, "link", "set", h_if, "up")
        except BaseException:
            self.close()
            raise
        return self

    def command(self, ns: str, argv: list[str], hostname: str | None = None) -> list[str]:
        """argv run inside namespace `ns`, with its own hostname if given (a UTS namespace).
        nsenter, not `ip netns exec`: that one remounts /sys, hiding the cgroup tree runsc needs."""
        enter = ["nsenter", f"--net=/var/run/netns/{ns}"]
        if hostname is None:
            return [*enter, *argv]
        return [*enter, "unshare", "--uts", "sh", "-c", 'hostname "$0" && exec "$@"', hostname, *argv]

    def close(self) -> None:
        for ns in reversed(self.made):  # deleting a namespace deletes the veth ends inside it
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=30)
        self.made.clear()
