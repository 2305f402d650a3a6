"""Are we behind a NAT, and does unsolicited UDP reach us? Pure logic for keepalives and
``/netcheck`` (sans-IO: observations in, a ``NetCheck`` report out).

Where the public address comes from (directory extensions, designed here, for the server):

* ``keyword len WHERE? nickname pad`` (client -> server, UDP, authenticated like PING: known
  keyword, matching nickname). ``pad`` is one token of ``-`` characters making the request at
  least 64 bytes, so the reply is never larger than the request.
  The server answers ``keyword len HERE ip port``: the source address it sees, i.e. the address
  it lists for us in ``REFERENCE``/``REF_ADD``. After one ``WHERE?`` the server also pushes
  ``HERE`` whenever our PING source changes (NAT rebinding). A design-only client never asks,
  so it never receives it. ``parse_here`` / ``format_here`` below are the payload codec.
* ``keyword len PROBE? nickname pad`` -> the server sends ``keyword len PROBE`` to our
  *registered* address (never to the request's source if that differs, never to anyone else)
  from a **second UDP socket** (another port), at most once per client per 30 s. If it arrives
  within ``probe_timeout``, UDP from a source we never wrote to reaches us ("unsolicited UDP:
  yes"); otherwise "no". It cannot be turned on a third party: the target is always the
  requester's own registered address, the reply is smaller than the request, and it is rate
  limited per registration.

Behind NAT = the address the directory sees is not one of ours (IP differs, or same IP with a
rewritten port). With no directory (LAN mode) it is unknown; ``looks_private`` gives the hint
that a private or shared (CGNAT) address almost always means a NAT toward the internet.
"""

from __future__ import annotations

import enum
import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass

from models.reach_wire import format_here, parse_here

__all__ = ["NatWatch", "NetCheck", "Reach", "behind_nat", "format_here", "looks_private",
           "pad_for_reply", "parse_here"]

Addr = tuple[str, int]
PAD_TO = 64


class Reach(enum.Enum):
    UNKNOWN = "unknown"
    YES = "yes"
    NO = "no"


@dataclass(frozen=True)
class NetCheck:
    """What ``/netcheck`` shows."""

    public: Addr | None              # as the directory sees us; None: no directory answer yet
    behind_nat: bool | None          # None: unknown (no directory)
    lan_addrs: tuple[str, ...]
    lan_peers: tuple[str, ...]       # nicknames heard on the LAN
    servers: tuple[Addr, ...]        # directory servers heard on the LAN
    unsolicited: Reach


def pad_for_reply(request: str) -> str:
    """``request`` with a ``-`` padding token so it is at least ``PAD_TO`` bytes."""
    short = PAD_TO - len(request.encode("utf-8")) - 1
    return f"{request} {'-' * max(1, short)}"


def behind_nat(public: Addr | None, local_addrs: Iterable[str], local_port: int) -> bool | None:
    if public is None:
        return None
    if public[1] != local_port:
        return True
    # loopback is never translated (and interface lists leave it out)
    return not (public[0] in set(local_addrs) or _is_loopback(public[0]))


def _is_loopback(addr: str) -> bool:
    try:
        return ipaddress.ip_address(addr).is_loopback
    except ValueError:
        return False


def looks_private(addr: str) -> bool:
    """A private, link-local or CGNAT (100.64/10) address: the internet sees someone else."""
    ip = ipaddress.ip_address(addr)
    return ip.is_private or ip in ipaddress.ip_network("100.64.0.0/10")


class NatWatch:
    """Collects what we learn about our own reachability."""

    def __init__(self, local_port: int, probe_timeout: float = 2.0) -> None:
        self.local_port = local_port
        self.probe_timeout = probe_timeout
        self.local_addrs: tuple[str, ...] = ()
        self.public: Addr | None = None
        self.unsolicited = Reach.UNKNOWN
        self._probe_deadline: float | None = None

    @property
    def behind_nat(self) -> bool | None:
        return behind_nat(self.public, self.local_addrs, self.local_port)

    def set_local(self, addrs: Iterable[str]) -> None:
        self.local_addrs = tuple(dict.fromkeys(addrs))

    def public_seen(self, addr: Addr) -> bool:
        """The directory told us our address (``HERE``); True if ``behind_nat`` changed."""
        before = self.behind_nat
        self.public = addr
        return self.behind_nat != before

    def server_lost(self) -> None:
        """Nothing the directory said still holds (we may come back with another mapping)."""
        self.public = None
        self.unsolicited = Reach.UNKNOWN
        self._probe_deadline = None

    def probe_requested(self, now: float) -> None:
        self._probe_deadline = now + self.probe_timeout

    def probe_arrived(self, now: float) -> None:
        self._probe_deadline = None
        self.unsolicited = Reach.YES

    def poll(self, now: float) -> None:
        if self._probe_deadline is not None and now >= self._probe_deadline:
            self._probe_deadline = None
            self.unsolicited = Reach.NO

    def next_deadline(self) -> float | None:
        return self._probe_deadline

    def report(self, lan_peers: Iterable[str] = (), servers: Iterable[Addr] = ()) -> NetCheck:
        return NetCheck(self.public, self.behind_nat, self.local_addrs,
                        tuple(sorted(lan_peers)), tuple(sorted(servers)), self.unsolicited)
