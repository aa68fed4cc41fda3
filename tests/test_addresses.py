"""The fetch's table of non-public addresses, checked against IANA's special-purpose registries (as data here).

Whatever Python's ``ipaddress`` says on the running version: these rows are the reference.
"""

from __future__ import annotations

import ipaddress

import pytest

from jobs.wordcount import addresses, fetch

# IANA IPv4 Special-Purpose Address Registry,
# https://www.iana.org/assignments/iana-ipv4-special-registry/ : (address block, name, globally reachable).
# None is the registry's "N/A" (deprecated blocks).
IPV4_SPECIAL = (
    ("0.0.0.0/8", "This network", False),
    ("0.0.0.0/32", "This host on this network", False),
    ("10.0.0.0/8", "Private-Use", False),
    ("100.64.0.0/10", "Shared Address Space", False),
    ("127.0.0.0/8", "Loopback", False),
    ("169.254.0.0/16", "Link Local", False),
    ("172.16.0.0/12", "Private-Use", False),
    ("192.0.0.0/24", "IETF Protocol Assignments", False),
    ("192.0.0.0/29", "IPv4 Service Continuity Prefix", False),
    ("192.0.0.8/32", "IPv4 dummy address", False),
    ("192.0.0.9/32", "Port Control Protocol Anycast", True),
    ("192.0.0.10/32", "Traversal Using Relays around NAT Anycast", True),
    ("192.0.0.170/32", "NAT64/DNS64 Discovery", False),
    ("192.0.0.171/32", "NAT64/DNS64 Discovery", False),
    ("192.0.2.0/24", "Documentation (TEST-NET-1)", False),
    ("192.31.196.0/24", "AS112-v4", True),
    ("192.52.193.0/24", "AMT", True),
    ("192.88.99.0/24", "Deprecated (6to4 Relay Anycast)", None),
    ("192.168.0.0/16", "Private-Use", False),
    ("192.175.48.0/24", "Direct Delegation AS112 Service", True),
    ("198.18.0.0/15", "Benchmarking", False),
    ("198.51.100.0/24", "Documentation (TEST-NET-2)", False),
    ("203.0.113.0/24", "Documentation (TEST-NET-3)", False),
    ("240.0.0.0/4", "Reserved", False),
    ("255.255.255.255/32", "Limited Broadcast", False),
)

# IANA IPv6 Special-Purpose Address Registry,
# https://www.iana.org/assignments/iana-ipv6-special-registry/ (rows as of its 2025-10-09 update).
IPV6_SPECIAL = (
    ("::1/128", "Loopback Address", False),
    ("::/128", "Unspecified Address", False),
    ("::ffff:0:0/96", "IPv4-mapped Address", False),
    ("64:ff9b::/96", "IPv4-IPv6 Translat.", True),
    ("64:ff9b:1::/48", "IPv4-IPv6 Translat.", False),
    ("100::/64", "Discard-Only Address Block", False),
    ("100:0:0:1::/64", "Dummy IPv6 Prefix", False),
    ("2001::/23", "IETF Protocol Assignments", False),
    ("2001::/32", "TEREDO", None),
    ("2001:1::1/128", "Port Control Protocol Anycast", True),
    ("2001:1::2/128", "Traversal Using Relays around NAT Anycast", True),
    ("2001:1::3/128", "DNS-SD Service Registration Protocol Anycast", True),
    ("2001:2::/48", "Benchmarking", False),
    ("2001:3::/32", "AMT", True),
    ("2001:4:112::/48", "AS112-v6", True),
    ("2001:10::/28", "Deprecated (previously ORCHID)", None),
    ("2001:20::/28", "ORCHIDv2", True),
    ("2001:30::/28", "Drone Remote ID Protocol Entity Tags (DETs) Prefix", True),
    ("2001:db8::/32", "Documentation", False),
    ("2002::/16", "6to4", None),
    ("2620:4f:8000::/48", "Direct Delegation AS112 Service", True),
    ("3fff::/20", "Documentation", False),
    ("5f00::/16", "Segment Routing (SRv6) SIDs", False),
    ("fc00::/7", "Unique-Local", False),
    ("fe80::/10", "Link-Local Unicast", False),
)

# Beyond the special-purpose registries: IANA's IPv4 Multicast Address Space registry
# (https://www.iana.org/assignments/multicast-addresses/) and IPv6 Address Space registry
# (https://www.iana.org/assignments/ipv6-address-space/: only 2000::/3 is Global Unicast; fec0::/10 is the
# deprecated site-local block, RFC 3879; ff00::/8 is multicast).
OTHER_NOT_GLOBAL = ("224.0.0.0/4", "fec0::/10", "ff00::/8", "4000::/2", "8000::/1", "1000::/4")

# Registry rows the fetch judges otherwise, on purpose.
JUDGED_BY_EMBEDDED_IPV4 = {"::ffff:0:0/96", "64:ff9b::/96", "2002::/16"}  # connecting to them reaches that IPv4

ROWS = IPV4_SPECIAL + IPV6_SPECIAL
NOT_REACHABLE = [ipaddress.ip_network(block) for block, _, reachable in ROWS if reachable is False]


def allowed(address: str) -> bool:
    return fetch.address_allowed(ipaddress.ip_address(address))


def samples(block: str) -> list[str]:
    """The first, middle and last address of a block."""
    net = ipaddress.ip_network(block)
    return [str(net[0]), str(net[net.num_addresses // 2]), str(net[-1])]


@pytest.mark.parametrize(("block", "name"), [(b, n) for b, n, r in ROWS if r is False and b not in
                                             JUDGED_BY_EMBEDDED_IPV4])
def test_every_block_the_registries_call_not_globally_reachable_is_refused(block, name):
    assert [allowed(address) for address in samples(block)] == [False] * 3, name


@pytest.mark.parametrize(("block", "name"), [(b, n) for b, n, r in ROWS if r is True and b not in
                                             JUDGED_BY_EMBEDDED_IPV4])
def test_a_reachable_row_is_fetched_unless_a_wider_row_is_not_reachable(block, name):
    """A more specific reachable row inside a non-reachable block (PCP and TURN anycast, ORCHIDv2) stays
    refused: they are protocol services and overlay identifiers, never web pages."""
    inside_refused = any(ipaddress.ip_network(block).subnet_of(net) for net in NOT_REACHABLE
                         if net.version == ipaddress.ip_network(block).version)
    assert [allowed(address) for address in samples(block)] == [not inside_refused] * 3, name


@pytest.mark.parametrize("block", ["192.88.99.0/24", "2001::/32", "2001:10::/28", *OTHER_NOT_GLOBAL])
def test_deprecated_multicast_and_non_unicast_blocks_are_refused(block):
    assert [allowed(address) for address in samples(block)] == [False] * 3


@pytest.mark.parametrize(("address", "expected"), [
    ("::ffff:8.8.8.8", True), ("::ffff:192.0.0.8", False),
    ("64:ff9b::808:808", True), ("64:ff9b::c000:8", False), ("64:ff9b::", False),
    ("2002:808:808::1", True), ("2002:c000:8::1", False),
])
def test_rows_that_embed_an_ipv4_address_are_judged_by_it(address, expected):
    assert allowed(address) is expected


@pytest.mark.parametrize("address", ["192.0.0.8", "192.0.0.100", "192.0.0.255", "fec0::1", "fef0::1"])
def test_the_ranges_python_3_11_calls_global_are_refused(address):
    assert not allowed(address)


@pytest.mark.parametrize("address", ["93.184.216.34", "8.8.8.8", "1.1.1.1", "2606:4700:4700::1111",
                                     "2a00:1450:4001:82a::200e", "223.255.255.255", "192.0.1.1"])
def test_public_addresses_are_fetched(address):
    assert allowed(address)


def test_each_block_of_the_table_is_a_row_of_a_registry():
    rows = {block for block, _, reachable in ROWS if reachable is not True} | set(OTHER_NOT_GLOBAL)
    assert {block for block, _ in addresses.NOT_GLOBAL} <= rows
