"""A pool's egress policy and the one decision the proxy makes per connection.

Entries: `host[:port]`, `*.domain[:port]` (any name below domain, not domain itself),
`cidr[:port]` (an address is a /32 or /128; IPv6 with a port is written `[addr]:port`).
No port: any port. The word `none` (or nothing) allows nothing.

A connection is allowed to one resolved address when an entry matches the requested
name or that address (and the port), and the address is public, unless an address entry
inside a non-public range names it explicitly (`127.0.0.1:8080`, `10.0.0.0/8`; never a
catch-all such as `0.0.0.0/0`): loopback, private, link-local, shared, metadata
(169.254.169.254, fd00:ec2::254) and every other non-global range are refused to name
entries, so a name an attacker points at an internal address gets nothing (DNS rebinding:
the proxy connects to exactly the address it decided on).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

METADATA_ADDRESSES = frozenset(ipaddress.ip_address(a) for a in ("169.254.169.254", "fd00:ec2::254"))
# An address entry opens a non-public address only if it lies inside one of these: a
# catch-all like 0.0.0.0/0 (written to mean "the internet") must not open metadata.
NON_PUBLIC_NETWORKS = tuple(
    ipaddress.ip_network(n)
    for n in (
        "0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16", "172.16.0.0/12",
        "192.0.0.0/24", "192.168.0.0/16", "198.18.0.0/15", "::/128", "::1/128", "fc00::/7", "fe80::/10",
        # documentation ranges (examples, tests)
        "192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24", "2001:db8::/32",
    )
)
DENIED_TEXT = "network access denied by sandbox policy"


class PolicyError(ValueError):
    """An allow-list entry that cannot be understood; the message names it."""


@dataclass(frozen=True)
class Entry:
    text: str
    port: int | None = None
    host: str | None = None  # exact name, lower case
    suffix: str | None = None  # "*.example.com" -> ".example.com"
    network: IPNetwork | None = None

    def port_matches(self, port: int) -> bool:
        return self.port is None or self.port == port

    def name_matches(self, name: str) -> bool:
        if self.host is not None:
            return name == self.host
        return self.suffix is not None and name.endswith(self.suffix) and len(name) > len(self.suffix)

    def address_matches(self, address: IPAddress) -> bool:
        return self.network is not None and address.version == self.network.version and address in self.network

    def names_non_public(self) -> bool:
        net = self.network
        return net is not None and any(net.version == n.version and net.subnet_of(n) for n in NON_PUBLIC_NETWORKS)


@dataclass(frozen=True)
class Decision:
    allowed: bool
    address: str | None  # the one address to connect to, when allowed
    reason: str


def parse_entry(text: str) -> Entry:
    raw = text.strip()
    if not raw:
        raise PolicyError("empty egress entry")
    host, port = _split_port(raw)
    if host.startswith("*."):
        suffix = host[1:].lower()
        if not _valid_name(suffix[1:]):
            raise PolicyError(f"egress entry {text!r}: {suffix[1:]!r} is not a domain name")
        return Entry(raw, port, suffix=suffix)
    try:
        return Entry(raw, port, network=ipaddress.ip_network(host, strict=True))
    except ValueError as exc:
        if any(c in host for c in "/:") or host.replace(".", "").isdigit():
            raise PolicyError(f"egress entry {text!r}: {exc}") from None
    if not _valid_name(host):
        raise PolicyError(f"egress entry {text!r}: not a host name, *.domain or CIDR")
    return Entry(raw, port, host=host.lower().rstrip("."))


def _split_port(raw: str) -> tuple[str, int | None]:
    if raw.startswith("["):
        addr, _, rest = raw[1:].partition("]")
        if rest and not rest.startswith(":"):
            raise PolicyError(f"egress entry {raw!r}: expected [address]:port")
        return addr, _port(raw, rest[1:]) if rest else None
    if raw.count(":") == 1:
        host, _, port = raw.partition(":")
        return host, _port(raw, port)
    return raw, None  # a bare IPv6 address or network, or no port


def _port(raw: str, text: str) -> int:
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise PolicyError(f"egress entry {raw!r}: port must be 1-65535")
    return int(text)


def _valid_name(name: str) -> bool:
    labels = name.rstrip(".").split(".")
    return 0 < len(name) <= 253 and all(
        0 < len(label) <= 63 and label.replace("-", "").replace("_", "").isalnum() and label.isascii()
        for label in labels
    )


def parse_policy(spec: str | list[str] | None) -> list[Entry]:
    """`none`, a comma-separated string or a list of entries."""
    if spec is None:
        return []
    items = spec.split(",") if isinstance(spec, str) else list(spec)
    items = [i.strip() for i in items if i.strip()]
    if items == ["none"]:
        return []
    return [parse_entry(i) for i in items]


def is_public(address: IPAddress) -> bool:
    return address.is_global and address not in METADATA_ADDRESSES


class Policy:
    def __init__(self, entries: list[Entry]) -> None:
        self.entries = entries

    @classmethod
    def parse(cls, spec: str | list[str] | None) -> "Policy":
        return cls(parse_policy(spec))

    @property
    def allows_anything(self) -> bool:
        return bool(self.entries)

    def decide(self, name: str, port: int, addresses: list[str]) -> Decision:
        """Pick the first resolved address this policy allows for (name, port)."""
        name = name.lower().rstrip(".")
        if not self.entries:
            return Decision(False, None, "this pool allows no network access")
        by_port = [e for e in self.entries if e.port_matches(port)]
        name_allowed = any(e.name_matches(name) for e in by_port)
        if not addresses:
            return Decision(False, None, f"{name} does not resolve")
        refused = ""
        for text in addresses:
            address = ipaddress.ip_address(text)
            mapped = getattr(address, "ipv4_mapped", None) or address
            if is_public(mapped):
                ok = name_allowed or any(e.address_matches(mapped) for e in by_port)
            else:
                ok = any(e.address_matches(mapped) and e.names_non_public() for e in by_port)
            if ok:
                return Decision(True, str(mapped), "allowed")
            if name_allowed or any(e.address_matches(mapped) for e in by_port):
                refused = f"{name} resolves to the non-public address {address}"
        return Decision(False, None, refused or f"no entry allows {name}:{port}")


def denial_text(host: str, port: int) -> str:
    shown = f"[{host}]" if ":" in host else host
    return f"{DENIED_TEXT}: {shown}:{port}"
