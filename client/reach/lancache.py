"""The LAN discovery cache: who announced what, forgotten when they stop (sans-IO).

Syncthing's local discovery in one class: every announcement refreshes an entry that expires
``ttl`` seconds after it was last heard. An entry is only ever "try this address" -- the secure
handshake decides who a peer really is. Hostile-input bounds:

* a token bucket per **source IP** runs before decoding (a flood costs us a dict lookup),
  the directory's own ``KeyedRateLimiter`` (at most ``max_sources`` remembered);
* at most ``max_peers`` client entries and ``max_servers`` server entries, and at most
  ``per_ip_entries`` of them announced from one IP -- one host cannot fill the table;
* a nickname announced under two keys is a **clash**: both entries are kept and reported,
  never merged. Our own key and instance are ignored (our own echo, or our key on another
  machine, which is not a peer).

Entries are keyed by (identity key, source IP): a key announced from two IPs is two entries
(a host with two interfaces, or a forger -- who then cannot displace the real addresses).
Addresses an entry offers: the announcement's source IP first (the address on *our* link),
then the addresses it lists, each with the announced port -- at most ``max_addrs``.

``feed(data, source, now)`` returns a ``Heard`` (events, and whether the sender asked us to
announce); it raises ``ProtocolError`` for a datagram that does not decode (the edge logs it).
``expire(now)`` returns the ``Gone`` events; ``next_deadline()`` says when to call it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from client.reach.discovery import Addr, Announcement, decode
from models import nickname as nicks
from models.directory import KeyedRateLimiter


@dataclass(frozen=True)
class LanPeer:
    key: bytes
    nickname: str
    port: int
    addrs: tuple[Addr, ...]   # source first
    instance: bytes
    seen: float

    @property
    def source(self) -> str:
        return self.addrs[0][0]


@dataclass(frozen=True)
class LanServer:
    addr: Addr                # (source IP, announced port)
    label: str
    seen: float


@dataclass(frozen=True)
class PeerSeen:
    peer: LanPeer
    new: bool                 # False: a known key whose nickname or addresses changed


@dataclass(frozen=True)
class PeerGone:
    key: bytes
    nickname: str
    source: str


@dataclass(frozen=True)
class ServerSeen:
    server: LanServer


@dataclass(frozen=True)
class ServerGone:
    addr: Addr


@dataclass(frozen=True)
class Clash:
    """Two or more keys announce the same nickname (canonical form): show it, never merge."""

    nickname: str
    keys: frozenset[bytes]


LanEvent = PeerSeen | PeerGone | ServerSeen | ServerGone | Clash


@dataclass
class Heard:
    events: list[LanEvent] = field(default_factory=list)
    query: bool = False       # the sender asked everyone to announce now


@dataclass(frozen=True)
class CacheLimits:
    ttl: float = 16.0               # > 3 announce intervals of 5 s: two lost beacons are fine
    rate: float = 20.0              # announcements per second per source IP ...
    burst: float = 40.0             # ... with this burst (a host may run several clients)
    max_sources: int = 1024
    max_peers: int = 512
    max_servers: int = 16
    per_ip_entries: int = 64
    max_addrs: int = 4


@dataclass
class Stats:
    rate_limited: int = 0
    table_full: int = 0


class DiscoveryCache:
    def __init__(self, own_key: bytes | None, own_instance: bytes,
                 limits: CacheLimits | None = None, own_nickname: str | None = None) -> None:
        self.limits = limits or CacheLimits()
        self.own_key = own_key
        self.own_instance = own_instance
        self.own_canon = nicks.canonical(own_nickname) if own_nickname else None
        # Keyed by (key, source IP): keys are public, so a forger elsewhere on the LAN can add
        # an entry for a key but never replace the real one's addresses.
        self._peers: dict[tuple[bytes, str], LanPeer] = {}
        self._servers: dict[Addr, LanServer] = {}
        lim = self.limits
        self._limiter = KeyedRateLimiter(lim.rate, lim.burst, lim.max_sources)
        self.stats = Stats()

    # ------------------------------------------------------------------ input

    def feed(self, data: bytes, source: Addr, now: float) -> Heard:
        if not self._limiter.allow(source[0], now):
            self.stats.rate_limited += 1
            return Heard()
        ann = decode(data)
        if ann.instance == self.own_instance or (ann.key is not None and ann.key == self.own_key):
            return Heard()
        heard = Heard(query=ann.query)
        if ann.server:
            self._server(ann, source[0], now, heard.events)
        else:
            self._peer(ann, source[0], now, heard.events)
        return heard

    def expire(self, now: float) -> list[LanEvent]:
        events: list[LanEvent] = []
        cutoff = now - self.limits.ttl
        for ident, p in list(self._peers.items()):
            if p.seen <= cutoff:
                del self._peers[ident]
                events.append(PeerGone(p.key, p.nickname, p.source))
        for addr, s in list(self._servers.items()):
            if s.seen <= cutoff:
                del self._servers[addr]
                events.append(ServerGone(addr))
        return events

    def next_deadline(self) -> float | None:
        seen = [p.seen for p in self._peers.values()] + [s.seen for s in self._servers.values()]
        return min(seen) + self.limits.ttl if seen else None

    # ------------------------------------------------------------------ queries

    def peers(self) -> list[LanPeer]:
        return list(self._peers.values())

    def servers(self) -> list[LanServer]:
        return list(self._servers.values())

    def clashes(self) -> dict[str, frozenset[bytes]]:
        """Canonical nickname -> the keys announcing it, for every nickname with two or more
        (our own key counts when another key announces our nickname)."""
        by_nick: dict[str, set[bytes]] = {}
        for p in self._peers.values():
            by_nick.setdefault(nicks.canonical(p.nickname), set()).add(p.key)
        if self.own_canon is not None and self.own_key is not None and self.own_canon in by_nick:
            by_nick[self.own_canon].add(self.own_key)
        return {n: frozenset(k) for n, k in by_nick.items() if len(k) > 1}

    # ------------------------------------------------------------------ internals

    def _room(self, ip: str, table_len: int, table_max: int) -> bool:
        from_ip = (sum(1 for _key, src in self._peers if src == ip)
                   + sum(1 for src, _port in self._servers if src == ip))
        if table_len >= table_max or from_ip >= self.limits.per_ip_entries:
            self.stats.table_full += 1
            return False
        return True

    def _peer(self, ann: Announcement, ip: str, now: float, events: list[LanEvent]) -> None:
        assert ann.key is not None
        addrs = [(ip, ann.port)] + [(a, ann.port) for a in ann.addrs if a != ip]
        addrs = addrs[:self.limits.max_addrs]
        old = self._peers.get((ann.key, ip))
        if old is None and not self._room(ip, len(self._peers), self.limits.max_peers):
            return
        peer = LanPeer(ann.key, ann.name, ann.port, tuple(addrs), ann.instance, now)
        self._peers[(ann.key, ip)] = peer
        if old is None or (old.nickname, old.addrs) != (peer.nickname, peer.addrs):
            events.append(PeerSeen(peer, new=old is None))
            canon = nicks.canonical(peer.nickname)
            keys = self.clashes().get(canon)
            if keys is not None:
                events.append(Clash(peer.nickname, keys))

    def _server(self, ann: Announcement, ip: str, now: float, events: list[LanEvent]) -> None:
        addr = (ip, ann.port)
        old = self._servers.get(addr)
        if old is None and not self._room(ip, len(self._servers), self.limits.max_servers):
            return
        self._servers[addr] = LanServer(addr, ann.name, now)
        if old is None or old.label != ann.name:
            events.append(ServerSeen(self._servers[addr]))
