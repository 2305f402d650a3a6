"""LAN discovery, the pure part: the announcement codec, the announce schedule, and a cache
that forgets (Syncthing's ``lib/discover/local.go``). The sockets are in ``client/reach/lan.py``.

Why our own announcement and not mDNS/DNS-SD (``zeroconf``)
------------------------------------------------------------
We need one thing: "a chat client (or server) with this key and nickname listens on this UDP
port at this host", heard by everyone on the link within a second, with no server. python-
zeroconf does far more (names, probing, conflict renaming, caching of arbitrary records) and
would not fit where it is needed:

* The directory server must announce itself too, and it runs under gevent's monkey-patching;
  zeroconf runs an asyncio loop in a thread of its own, which does not mix with patched threads.
  A beacon is one ``sendto`` of bytes built here -- a greenlet can do that.
* Announcements are hostile input that we must bound and rate-limit **per source address**;
  zeroconf's listener callbacks never show the source, and its record cache is not ours to
  bound. Here every datagram is at most ``MAX_SIZE`` bytes, parsed strictly, rate-limited per
  source IP, and at worst adds an entry that then fails the secure handshake.
* mDNS registration probes its name for ~0.75 s before announcing, and a browser resolves in a
  second step; a beacon with a "please answer" flag makes a newcomer hear everyone in one round
  trip (the LAN-mode target is 50 peers in <= 2 s).
* Windows: both need the same firewall permission for ``python.exe`` (one prompt, shared with
  the chat port), but port 5353 there is also held by the system's own mDNS responder.
  Windows delivers multicast and broadcast to every socket sharing a port with SO_REUSEADDR.
* Tests: both work without avahi inside network namespaces; ours needs no extra dependency.

The "never hand-roll what a library does" rule is kept where it bites: interface and address
enumeration (the fiddly, OS-specific part) comes from ``ifaddr`` in ``lan.py``; what is left here
is one fixed-layout message of our own, like every other message of our protocol.

Transport: UDP to the multicast group ``MCAST_GROUP`` and to each interface's directed broadcast
address (some Wi-Fi access points and switches drop multicast; broadcast is the fallback), port
``DEFAULT_PORT`` (all processes of a host share it with SO_REUSEADDR). Link-local only.

The announcement, byte by byte (big-endian)::

    0   4  magic  b"OLCa"
    4   1  version 1
    5   1  flags: bit 0 = server (else client), bit 1 = query ("announce yourselves now");
           other bits must be 0
    6   2  port: the client's chat UDP port / the server's TCP+UDP port, 1..65535
    8   8  instance: random per process start (tells our own echo and restarts apart)
    16 32  key: the client's Ed25519 identity public key (clients only; absent for servers)
    .   1  name length n, then n bytes UTF-8: the client's nickname (valid, 1..96 bytes) or the
           server's label (0..64 bytes, printable)
    .   1  address count c (0..8), then c times: 1 byte family (4 or 6) and 4 or 16 bytes:
           the sender's LAN addresses (no unspecified, loopback or multicast addresses)

Nothing may follow. A client announcement is at most 16+32+1+96+1+8*17 = 282 bytes.
"""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass, field

from models import nickname as nicks
from models.errors import ProtocolError

MAGIC = b"OLCa"
VERSION = 1
DEFAULT_PORT = 7701
MCAST_GROUP = "239.255.77.1"  # organisation-local scope (RFC 2365): never routed off-site
FLAG_SERVER = 0x01
FLAG_QUERY = 0x02
KEY_LEN = 32
INSTANCE_LEN = 8
MAX_NICK_BYTES = 4 * nicks.MAX_NICK_LEN
MAX_LABEL_BYTES = 64
MAX_ADDRS = 8
MAX_SIZE = 16 + KEY_LEN + 1 + MAX_NICK_BYTES + 1 + MAX_ADDRS * 17
_HEAD = struct.Struct("!4sBBH8s")

Addr = tuple[str, int]


def _bad(text: str) -> ProtocolError:
    return ProtocolError("BAD_ANNOUNCE", text)


@dataclass(frozen=True)
class Announcement:
    server: bool
    port: int
    instance: bytes
    name: str                       # client: nickname (display form); server: label
    key: bytes | None = None        # client: Ed25519 public key; server: None
    addrs: tuple[str, ...] = ()
    query: bool = False

    def encode(self) -> bytes:
        if self.server != (self.key is None):
            raise ValueError("a client announcement needs a key, a server's has none")
        if not 1 <= self.port <= 65535 or len(self.instance) != INSTANCE_LEN:
            raise ValueError("bad port or instance")
        if len(self.addrs) > MAX_ADDRS:
            raise ValueError("too many addresses")
        flags = (FLAG_SERVER if self.server else 0) | (FLAG_QUERY if self.query else 0)
        out = [_HEAD.pack(MAGIC, VERSION, flags, self.port, self.instance)]
        if self.key is not None:
            if len(self.key) != KEY_LEN:
                raise ValueError("key must be 32 bytes")
            out.append(self.key)
        name = self.name.encode("utf-8")
        out.append(bytes([len(name)]) + name)
        out.append(bytes([len(self.addrs)]))
        for text in self.addrs:
            ip = ipaddress.ip_address(text)
            out.append(bytes([ip.version]) + ip.packed)
        data = b"".join(out)
        decode(data)  # never send what we would refuse
        return data


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data, self.pos = data, 0

    def take(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            raise _bad("truncated announcement")
        chunk = self.data[self.pos:self.pos + n]
        self.pos += n
        return chunk


def _check_ip(family: int, raw: bytes) -> str:
    ip = ipaddress.IPv4Address(raw) if family == 4 else ipaddress.IPv6Address(raw)
    if ip.is_unspecified or ip.is_loopback or ip.is_multicast or str(ip) == "255.255.255.255":
        raise _bad(f"address {ip} cannot be a LAN address")
    return str(ip)


def _name(raw: bytes, server: bool) -> str:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise _bad("name is not UTF-8") from None
    if server:
        if len(raw) > MAX_LABEL_BYTES or not text.isprintable():
            raise _bad("bad server label")
        return text
    if len(raw) > MAX_NICK_BYTES:
        raise _bad("nickname too long")
    try:
        return nicks.display_form(text)
    except ProtocolError:
        raise _bad("bad nickname") from None


def decode(data: bytes) -> Announcement:
    """Parse one announcement datagram; ``ProtocolError("BAD_ANNOUNCE")`` for anything else."""
    if len(data) > MAX_SIZE:
        raise _bad("announcement too long")
    r = _Reader(data)
    magic, version, flags, port, instance = _HEAD.unpack(r.take(_HEAD.size))
    if magic != MAGIC:
        raise _bad("not an announcement")
    if version != VERSION:
        raise _bad(f"unknown version {version}")
    if flags & ~(FLAG_SERVER | FLAG_QUERY) or port == 0:
        raise _bad("bad flags or port")
    server = bool(flags & FLAG_SERVER)
    key = None if server else r.take(KEY_LEN)
    name = _name(r.take(r.take(1)[0]), server)
    count = r.take(1)[0]
    if count > MAX_ADDRS:
        raise _bad("too many addresses")
    addrs = []
    for _ in range(count):
        family = r.take(1)[0]
        if family not in (4, 6):
            raise _bad("bad address family")
        addrs.append(_check_ip(family, r.take(4 if family == 4 else 16)))
    if r.pos != len(data):
        raise _bad("trailing bytes")
    return Announcement(server, port, instance, name, key, tuple(addrs), bool(flags & FLAG_QUERY))


@dataclass
class Announcer:
    """When to send our announcement: at start (asking others to answer), once more shortly
    after (one may be lost), then every ``interval``; a heard query is answered, but at most
    once per ``answer_gap`` (a flood of queries costs one announcement per gap)."""

    start: float
    interval: float = 5.0
    answer_gap: float = 0.5
    _next: float = field(init=False)
    _queries_left: int = field(init=False, default=2)
    _last: float | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        self._next = self.start

    def query_heard(self, now: float) -> None:
        earliest = now if self._last is None else max(now, self._last + self.answer_gap)
        self._next = min(self._next, earliest)

    def poll(self, now: float) -> bool | None:
        """None: nothing to send now; else send, with the query flag set to the value."""
        if now < self._next:
            return None
        self._last = now
        query = self._queries_left > 0
        if query:
            self._queries_left -= 1
        self._next = now + (self.answer_gap if self._queries_left else self.interval)
        return query

    def next_deadline(self) -> float:
        return self._next
