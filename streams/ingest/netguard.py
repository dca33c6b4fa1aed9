"""Which addresses feeds may reach: public ones only, unless LIVECHARTS_ALLOW_PRIVATE_FEEDS is on.

A feed URL is typed into admin by staff, and the worker fetches it from inside the network: left
unchecked, a feed could read the cloud metadata service (169.254.169.254), an internal admin
page or the Redis next door and draw the answer on a chart (server-side request forgery).

The address is checked twice:

- **On save** (admin, provision): a host written as an address (`127.0.0.1`, `[::1]`, and the
  forms inet_aton accepts, like `2130706433` or `0x7f.1`) or a localhost name is refused by the
  kind's settings check; a host name is also looked up, and refused when any address it has is
  not public, so the admin sees what is wrong at once.
- **On every connect**: DNS answers change (a name can point at a public address on save and at
  127.0.0.1 a minute later), so a check on save alone proves nothing. Each feed resolves the
  host itself, checks every address, and connects to a checked address, never to the name
  (streams/ingest/feeds/guarded.py): a second lookup inside the client library would reopen the gap.
  TLS still sends SNI and verifies the certificate for the name. Checking the peer after
  connecting was the other choice; it was not taken because by then the SYN, and for TLS the
  ClientHello, have already reached the internal host.
"""

from __future__ import annotations

import asyncio
import errno
import ipaddress
import socket
from collections.abc import Iterable

from django.conf import settings

SETTING = "LIVECHARTS_ALLOW_PRIVATE_FEEDS"
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
# NAT64 (RFC 6052): the last 32 bits are the IPv4 address actually reached.
NAT64 = ipaddress.ip_network("64:ff9b::/96")


class ForbiddenAddress(ConnectionError):
    """A feed's host is, or resolves to, an address feeds may not reach. An OSError with an
    errno, so code that reports `error.strerror` for connect failures shows the reason."""

    def __init__(self, message: str) -> None:
        super().__init__(errno.EACCES, message)


def private_allowed() -> bool:
    """Read on every check, so a test (or a settings override) can turn it on and off."""
    return bool(getattr(settings, SETTING, False))


def why_not_public(address: IPAddress) -> str | None:
    """What kind of non-public address this is ("a loopback address", ...), or None when it is
    a public one. IPv6 forms that carry an IPv4 address are judged by that IPv4 address."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = address.ipv4_mapped or address.sixtofour
        if embedded is None and address.teredo is not None:
            embedded = address.teredo[1]
        if embedded is None and address in NAT64:
            embedded = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        if embedded is not None:
            return why_not_public(embedded)
    if address.is_unspecified:
        # 0.0.0.0 and :: reach this very machine on Linux.
        return "an unspecified address (this machine)"
    if address.is_loopback:
        return "a loopback address"
    if address.is_link_local:
        return "a link-local address"
    if address.is_multicast:
        return "a multicast address"
    if address.is_private:
        return "a private address"
    if address.is_reserved:
        return "a reserved address"
    if not address.is_global:
        # 100.64.0.0/10 (carrier-grade NAT) and the like: not private, not public either.
        return "not a public address"
    return None


def numeric_address(host: str) -> IPAddress | None:
    """The address when `host` is written as one, in any form the resolver would take as a
    number (decimal `2130706433`, octal `0177.0.0.1`, hex `0x7f.1`, short `127.1`); no lookup."""
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None, flags=socket.AI_NUMERICHOST)
    except (socket.gaierror, UnicodeError, ValueError):
        return None
    return ipaddress.ip_address(infos[0][4][0].split("%")[0])


def is_localhost_name(host: str) -> bool:
    """`localhost` and names under `.localhost` always mean this machine (RFC 6761)."""
    name = host.lower().rstrip(".")
    return name == "localhost" or name.endswith(".localhost")


def refusal(host: str) -> str | None:
    """Why `host` may not be reached, judged without a lookup (None: fine, or a name that only
    a lookup can judge)."""
    if private_allowed():
        return None
    if is_localhost_name(host):
        return _message(f"{host} is a loopback name")
    address = numeric_address(host)
    reason = why_not_public(address) if address is not None else None
    if reason is None:
        return None
    shown = host if str(address) == host else f"{host} (that is {address})"
    return _message(f"{shown} is {reason}")


def refusal_after_lookup(host: str) -> str | None:
    """`refusal`, then for a name its addresses as DNS gives them now. A name that does not
    resolve (yet) is let through: the check on connect judges whatever it resolves to then."""
    message = refusal(host)
    if message is not None or private_allowed() or numeric_address(host) is not None:
        return message
    try:
        infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        return None
    return _refused_addresses(host, _addresses(infos))


async def resolve(host: str, port: int) -> list[str]:
    """The addresses to connect to for `host`, every one checked; raises ForbiddenAddress when
    any is not allowed (a name with one private address among public ones is refused whole)."""
    message = refusal(host)
    if message is not None:
        raise ForbiddenAddress(message)
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return _checked(host, infos)


def resolve_blocking(host: str, port: int) -> list[str]:
    """`resolve` for code that runs in a thread (paho-mqtt connects in one)."""
    message = refusal(host)
    if message is not None:
        raise ForbiddenAddress(message)
    return _checked(host, socket.getaddrinfo(host, port, type=socket.SOCK_STREAM))


def _checked(host: str, infos: Iterable[tuple]) -> list[str]:
    addresses = _addresses(infos)
    if not private_allowed():
        message = _refused_addresses(host, addresses)
        if message is not None:
            raise ForbiddenAddress(message)
    return [str(address) for address in addresses]


def _addresses(infos: Iterable[tuple]) -> list[IPAddress]:
    found: list[IPAddress] = []
    for info in infos:
        # sockaddr[0] is the address text; IPv6 link-local ones may carry a %zone.
        address = ipaddress.ip_address(str(info[4][0]).split("%")[0])
        if address not in found:
            found.append(address)
    return found


def _refused_addresses(host: str, addresses: list[IPAddress]) -> str | None:
    for address in addresses:
        reason = why_not_public(address)
        if reason is not None:
            if str(address) == host:
                return _message(f"{host} is {reason}")
            return _message(f"{host} resolves to {address}, {reason}")
    return None


def _message(what: str) -> str:
    return (
        f"{what}; feeds may reach only public addresses unless the {SETTING} setting is on "
        f"(environment variable {SETTING}=true)"
    )
