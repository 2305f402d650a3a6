"""The machine's own addresses, for the server's start-up line ("friends connect to ...").

``friend_addresses`` is pure (tests feed it addresses); ``local_addresses`` asks the operating
system through ``ifaddr`` (Windows, Linux, macOS alike) and never raises.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Iterable

log = logging.getLogger(__name__)


def local_addresses() -> list[str]:
    """Every IP address of this machine's interfaces (IPv6 without the scope); [] on failure."""
    try:
        import ifaddr
        adapters = ifaddr.get_adapters()
    except Exception as exc:   # no ifaddr, or the OS refused: the line just says less
        log.debug("cannot list network interfaces: %r", exc)
        return []
    found: list[str] = []
    for adapter in adapters:
        for ip in adapter.ips:
            found.append(ip.ip if isinstance(ip.ip, str) else ip.ip[0])
    return found


def friend_addresses(addresses: Iterable[str], host: str = "0.0.0.0") -> list[str]:
    """The addresses worth telling friends: for a wildcard ``host``, the machine's IPv4
    addresses (private LAN ones first), without loopback and link-local; else ``host`` itself."""
    if host not in ("0.0.0.0", "::", ""):
        return [host]
    usable: list[ipaddress.IPv4Address] = []
    for text in addresses:
        try:
            ip = ipaddress.ip_address(text)
        except ValueError:
            continue
        if ip.version == 4 and not (ip.is_loopback or ip.is_link_local or ip.is_unspecified) \
                and ip not in usable:
            usable.append(ip)
    usable.sort(key=lambda ip: (not ip.is_private, ip))
    return [str(ip) for ip in usable]


def friends_line(port: int, host: str = "0.0.0.0",
                 addresses: Iterable[str] | None = None) -> str:
    """``friends connect to 192.168.1.10:7700 or 10.0.0.5:7700`` (or what to do if none)."""
    found = friend_addresses(local_addresses() if addresses is None else addresses, host)
    if not found:
        return f"friends connect to this machine's address, port {port}"
    return "friends connect to " + " or ".join(f"{a}:{port}" for a in found)
