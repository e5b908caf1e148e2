"""The decision function, pure: no packet is ever sent to the addresses named here."""

import pytest

from egress.policy import Policy, PolicyError, denial_text, parse_policy

METADATA_AND_PRIVATE = [
    "169.254.169.254", "fd00:ec2::254", "127.0.0.1", "::1", "10.1.2.3", "172.16.0.1", "192.168.1.1",
    "169.254.1.1", "fe80::1", "100.64.0.1", "0.0.0.0", "::", "fc00::1", "::ffff:127.0.0.1", "::ffff:169.254.169.254",
]


@pytest.mark.parametrize("spec", [None, "", "none", [], ["none"]])
def test_none_allows_nothing(spec):
    d = Policy.parse(spec).decide("example.com", 443, ["93.184.216.34"])
    assert not d.allowed and d.address is None and "no network" in d.reason


def test_host_port_wildcard_and_cidr_entries():
    p = Policy.parse("pypi.example.com:443, *.api.example.net, 203.0.113.0/24:8443, [2001:db8::1]:443")
    assert p.decide("pypi.example.com", 443, ["8.8.8.8"]).allowed
    assert not p.decide("pypi.example.com", 80, ["8.8.8.8"]).allowed
    assert not p.decide("evil.pypi.example.com", 443, ["8.8.8.8"]).allowed
    assert p.decide("eu.api.example.net", 1234, ["8.8.4.4"]).allowed
    assert not p.decide("api.example.net", 443, ["8.8.4.4"]).allowed  # *.d is below d only
    assert not p.decide("xapi.example.net", 443, ["8.8.4.4"]).allowed
    # an address entry allows that address whatever name was asked for it
    assert p.decide("anything.test", 8443, ["203.0.113.7"]).address == "203.0.113.7"
    assert not p.decide("anything.test", 443, ["203.0.113.7"]).allowed
    assert p.decide("2001:db8::1", 443, ["2001:db8::1"]).allowed


@pytest.mark.parametrize("address", METADATA_AND_PRIVATE)
def test_a_name_entry_never_reaches_metadata_loopback_or_private(address):
    p = Policy.parse("*.example.com, api.example.com")
    d = p.decide("api.example.com", 80, [address])
    assert not d.allowed and "non-public" in d.reason, (address, d)


@pytest.mark.parametrize("address", ["169.254.169.254", "fd00:ec2::254", "10.1.2.3", "127.0.0.1", "::1"])
def test_a_non_public_address_is_reachable_only_when_named_explicitly(address):
    # A catch-all written to mean "the internet" opens no internal address.
    assert not Policy.parse("0.0.0.0/0, ::/0").decide(address, 80, [address]).allowed
    assert not Policy.parse("*.example.com").decide("x.example.com", 80, [address]).allowed
    single = address if ":" not in address else f"[{address}]"
    assert Policy.parse(f"{single}:80").decide(address, 80, [address]).allowed
    assert not Policy.parse(f"{single}:80").decide(address, 81, [address]).allowed
    # ...and then under any name that resolves to it
    assert Policy.parse(f"{single}:80").decide("pinned.test", 80, [address]).address == address


def test_a_catch_all_still_allows_public_addresses():
    assert Policy.parse("0.0.0.0/0:443").decide("example.com", 443, ["93.184.216.34"]).allowed


def test_the_proxy_connects_to_the_address_it_decided_on():
    p = Policy.parse("mixed.example.com")
    d = p.decide("mixed.example.com", 443, ["127.0.0.1", "10.0.0.1", "93.184.216.34"])
    assert d.allowed and d.address == "93.184.216.34"
    assert not p.decide("mixed.example.com", 443, []).allowed


@pytest.mark.parametrize("bad", ["exa mple.com", "*.", "host:0", "host:99999", "10.0.0.0/33", "10.0.0.1/8", "[::1]x", "*"])
def test_bad_entries_are_refused_with_the_entry_named(bad):
    with pytest.raises(PolicyError, match="egress entry"):
        parse_policy([bad])


def test_denial_text():
    assert denial_text("example.com", 443) == "network access denied by sandbox policy: example.com:443"
    assert denial_text("::1", 80) == "network access denied by sandbox policy: [::1]:80"
