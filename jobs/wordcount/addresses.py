"""Which IP addresses are on the public internet, for the fetch: one table, read from IANA's registries.

Python's ``ipaddress.is_global`` changes between versions (on 3.11 it calls ``192.0.0.8`` and the deprecated
site-local ``fec0::/10`` global), so the fetch does not use it. The rules, in order:

* IPv6 outside ``2000::/3`` is not global unicast (IANA's IPv6 Address Space registry: everything else is
  reserved, unique-local, link-local, the deprecated site-local, or multicast), except the well-known NAT64
  prefix, whose embedded IPv4 address the fetch judges on its own.
* An address inside any block of NOT_GLOBAL is refused. It holds every row of the IANA IPv4 and IPv6
  Special-Purpose Address registries whose "Globally Reachable" is False, the whole block even where a more
  specific row says True (those are anycast services such as PCP and TURN, and overlay identifiers, never web
  pages), the deprecated 6to4 relay anycast block, and IPv4 multicast.

tests/test_addresses.py checks the table against the registries' rows, kept there as data with their source.
"""

from __future__ import annotations

import ipaddress

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

NAT64 = ipaddress.ip_network("64:ff9b::/96")  # the well-known prefix: globally reachable, judged by its IPv4
IPV6_GLOBAL_UNICAST = ipaddress.ip_network("2000::/3")

# (block, what it is); every address inside is refused unless FETCH_ALLOW_NETWORKS names it.
NOT_GLOBAL: tuple[tuple[str, str], ...] = (
    ("0.0.0.0/8", "this network (RFC 791)"),
    ("10.0.0.0/8", "private use (RFC 1918)"),
    ("100.64.0.0/10", "shared address space, carrier-grade NAT (RFC 6598)"),
    ("127.0.0.0/8", "loopback (RFC 1122)"),
    ("169.254.0.0/16", "link local (RFC 3927)"),
    ("172.16.0.0/12", "private use (RFC 1918)"),
    ("192.0.0.0/24", "IETF protocol assignments (RFC 6890)"),
    ("192.0.2.0/24", "documentation, TEST-NET-1 (RFC 5737)"),
    ("192.88.99.0/24", "deprecated 6to4 relay anycast (RFC 7526)"),
    ("192.168.0.0/16", "private use (RFC 1918)"),
    ("198.18.0.0/15", "benchmarking (RFC 2544)"),
    ("198.51.100.0/24", "documentation, TEST-NET-2 (RFC 5737)"),
    ("203.0.113.0/24", "documentation, TEST-NET-3 (RFC 5737)"),
    ("224.0.0.0/4", "multicast (RFC 5771)"),
    ("240.0.0.0/4", "reserved (RFC 1112), the limited broadcast 255.255.255.255 included"),
    ("2001::/23", "IETF protocol assignments (RFC 2928), Teredo and benchmarking included"),
    ("2001:db8::/32", "documentation (RFC 3849)"),
    ("3fff::/20", "documentation (RFC 9637)"),
)
NETWORKS = tuple(ipaddress.ip_network(block) for block, _ in NOT_GLOBAL)


def globally_reachable(address: IPAddress) -> bool:
    """True if ``address`` is on the public internet by the table above (its embedded IPv4 aside)."""
    if address.version == 6 and address not in IPV6_GLOBAL_UNICAST and address not in NAT64:
        return False
    return not any(address.version == net.version and address in net for net in NETWORKS)
