"""The directory's opt-in relay, sans-IO: which pairs of registered clients it forwards for,
and the forwarding decision for each datagram (codec: ``models.relay_wire``).

The UDP edge hands relay requests (``relay_wire.is_relay``) to ``on_request`` and relayed data
(``relay_wire.is_data``) to ``forward``, and sends what comes back. Rules, so the relay never
reads what it carries, is no reflector and reaches nobody who is not a registered client:

* a request is authenticated like PING (registered keyword, its nickname) and must come from
  the address that registration's PINGs come from; everything sent goes to a registered
  client's address only, and is never larger than the request that caused it;
* a pair exists only once **both** clients asked for each other (the first asker's request is
  remembered ``wish_ttl`` seconds and the other client is invited); it ends when either client
  is no longer that registration (quit, timeout, registered again) or after ``idle`` seconds
  without data;
* data is forwarded only from one client of a pair (its registered address), byte for byte,
  to the other (its registered address): never more bytes than received, never anywhere else;
* each client may relay ``rate`` bytes/s (``burst`` banked); at most ``max_pairs`` pairs in
  all and ``pairs_per_client`` per client; control answers share a global ``answer_rate``.
"""

from __future__ import annotations

import logging
import os
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from models import relay_wire as rw
from models.errors import ProtocolError
from models.nickname import canonical
from models.ratelimit import TokenBucket

log = logging.getLogger("openlchat.server")

Addr = tuple[str, int]


class Client(Protocol):
    """What the relay needs of a registration (``models.registration.Registration`` fits)."""

    nickname: str
    keyword: str
    addr: Addr | None


@dataclass(frozen=True)
class Out:
    addr: Addr
    data: bytes


@dataclass
class RelayLimits:
    enabled: bool = False
    rate: float = 1 << 20           # bytes/s each client may have relayed
    burst: float = 1 << 20
    max_pairs: int = 64
    pairs_per_client: int = 4
    wish_ttl: float = 30.0
    idle: float = 120.0
    invite_gap: float = 2.0         # one invitation per (asker, target) this often
    answer_rate: float = 1000.0     # control datagrams per second, whole server
    max_wishes: int = 10_000


class _Pair:
    __slots__ = ("pid", "a", "b", "last")

    def __init__(self, pid: bytes, a: Client, b: Client, now: float) -> None:
        self.pid, self.a, self.b, self.last = pid, a, b, now


@dataclass
class RelayService:
    by_keyword: Callable[[str], Client | None]
    by_nickname: Callable[[str], Client | None]    # canonical nickname -> registration
    limits: RelayLimits = field(default_factory=RelayLimits)
    rng: Callable[[int], bytes] = os.urandom
    stats: Counter[str] = field(default_factory=Counter)

    def __post_init__(self) -> None:
        self._pairs: dict[bytes, _Pair] = {}
        self._by_clients: dict[tuple[str, str], bytes] = {}   # (kw, kw) both orders -> id
        self._buckets: dict[str, TokenBucket] = {}
        self._wishes: dict[tuple[str, str], float] = {}       # (asker kw, target kw) -> when
        self._invited: dict[tuple[str, str], float] = {}
        self._answers = TokenBucket(self.limits.answer_rate, self.limits.answer_rate)
        self.forwarded = 0      # datagrams, and bytes (in = out: the very same bytes)
        self.bytes = 0

    @property
    def pairs(self) -> int:
        return len(self._pairs)

    # ---- control -------------------------------------------------------------------------

    def on_request(self, data: bytes, source: Addr, now: float) -> list[Out]:
        self.stats["requests"] += 1
        try:
            msg = rw.decode(data)
        except ProtocolError:
            self.stats["refused"] += 1
            return []
        if not isinstance(msg, rw.RelayRequest):
            self.stats["refused"] += 1     # server -> client messages are not accepted here
            return []
        reg = self._authentic(msg, source)
        if reg is None:
            self.stats["refused"] += 1
            return []
        if not self._answers.take(now):
            self.stats["limited"] += 1
            return []
        size = len(data)
        if not self.limits.enabled:
            return self._refuse(reg, msg.target, "off", size)
        try:
            target = self.by_nickname(canonical(msg.target))
        except ProtocolError:
            target = None
        if target is None or target.addr is None or target.keyword == reg.keyword:
            return self._refuse(reg, msg.target, "unknown", size)
        pid = self._by_clients.get((reg.keyword, target.keyword))
        if pid is not None:          # asked again (its answer was lost): the same pair
            return self._ready(self._pairs[pid], size)
        self._remember((reg.keyword, target.keyword), now)
        theirs = self._wishes.get((target.keyword, reg.keyword))
        if theirs is None or now - theirs > self.limits.wish_ttl:
            return self._invite(reg, target, size, now) + \
                self._refuse(reg, target.nickname, "wait", size)
        if not self._room_for(reg, target):
            return self._refuse(reg, target.nickname, "full", size)
        return self._ready(self._pair(reg, target, now), size)

    def _authentic(self, msg: rw.RelayRequest, source: Addr) -> Client | None:
        reg = self.by_keyword(msg.keyword)
        if reg is None or reg.addr is None or reg.addr != (source[0], source[1]):
            return None
        try:
            same = canonical(msg.nickname) == canonical(reg.nickname)
        except ProtocolError:
            same = False
        return reg if same else None

    def _refuse(self, reg: Client, target: str, reason: str, size: int) -> list[Out]:
        self.stats[f"refused_{reason}"] += 1
        try:
            data = rw.encode(rw.RelayRefused(reg.keyword, target, reason))
        except ValueError:
            return []
        assert reg.addr is not None
        return [Out(reg.addr, data)] if len(data) <= size else []

    def _invite(self, reg: Client, target: Client, size: int, now: float) -> list[Out]:
        key = (reg.keyword, target.keyword)
        last = self._invited.get(key)
        if last is not None and now - last < self.limits.invite_gap:
            return []
        if len(self._invited) >= self.limits.max_wishes:
            self._invited.clear()
        self._invited[key] = now
        data = rw.encode(rw.RelayInvite(target.keyword, reg.nickname))
        assert target.addr is not None
        self.stats["invites"] += 1
        return [Out(target.addr, data)] if len(data) <= size else []

    def _remember(self, key: tuple[str, str], now: float) -> None:
        if len(self._wishes) >= self.limits.max_wishes:
            ttl = self.limits.wish_ttl
            self._wishes = {k: t for k, t in self._wishes.items() if now - t <= ttl}
            if len(self._wishes) >= self.limits.max_wishes:
                self._wishes.clear()
        self._wishes[key] = now

    def _room_for(self, a: Client, b: Client) -> bool:
        lim = self.limits
        if len(self._pairs) >= lim.max_pairs:
            return False
        count = Counter(kw for k in self._by_clients for kw in k[:1])
        return count[a.keyword] < lim.pairs_per_client and count[b.keyword] < lim.pairs_per_client

    def _pair(self, a: Client, b: Client, now: float) -> _Pair:
        pid = self.rng(rw.PAIR_LEN)
        while pid in self._pairs:
            pid = self.rng(rw.PAIR_LEN)
        pair = self._pairs[pid] = _Pair(pid, a, b, now)
        self._by_clients[(a.keyword, b.keyword)] = self._by_clients[(b.keyword, a.keyword)] = pid
        for c in (a, b):
            if c.keyword not in self._buckets:
                self._buckets[c.keyword] = TokenBucket(self.limits.rate, self.limits.burst, now)
        self._wishes.pop((a.keyword, b.keyword), None)
        self._wishes.pop((b.keyword, a.keyword), None)
        self.stats["pairs_made"] += 1
        log.info("relay pair %s <-> %s (%d pairs)", a.nickname, b.nickname, len(self._pairs))
        return pair

    def _ready(self, pair: _Pair, size: int) -> list[Out]:
        out = []
        for me, other in ((pair.a, pair.b), (pair.b, pair.a)):
            data = rw.encode(rw.RelayReady(me.keyword, other.nickname, pair.pid))
            if me.addr is not None and len(data) <= size:
                out.append(Out(me.addr, data))
        return out

    # ---- data: the hot path ----------------------------------------------------------------

    def forward(self, data: bytes, source: Addr, now: float) -> Out | None:
        """Where the very same bytes go, or None (dropped, counted)."""
        pair = self._pairs.get(data[1:rw.DATA_HEADER])
        n = len(data)
        if pair is None or n > rw.MAX_DATA:
            self.stats["dropped_unknown"] += 1
            return None
        a, b = pair.a, pair.b
        by_keyword = self.by_keyword
        if by_keyword(a.keyword) is not a or by_keyword(b.keyword) is not b:
            self._end(pair, "a client left")
            self.stats["dropped_gone"] += 1
            return None
        src = source if len(source) == 2 else (source[0], source[1])
        if src == a.addr:
            sender, dest = a, b.addr
        elif src == b.addr:
            sender, dest = b, a.addr
        else:
            self.stats["dropped_source"] += 1
            return None
        if dest is None or not self._buckets[sender.keyword].take(now, n):
            self.stats["dropped_cap"] += 1
            return None
        pair.last = now
        self.forwarded += 1
        self.bytes += n
        return Out(dest, data)

    # ---- time --------------------------------------------------------------------------------

    def expire(self, now: float) -> None:
        """End pairs whose clients left or that fell silent."""
        for pair in list(self._pairs.values()):
            if self.by_keyword(pair.a.keyword) is not pair.a \
                    or self.by_keyword(pair.b.keyword) is not pair.b:
                self._end(pair, "a client left")
            elif now - pair.last > self.limits.idle:
                self._end(pair, "idle")

    def _end(self, pair: _Pair, why: str) -> None:
        if self._pairs.pop(pair.pid, None) is None:
            return
        a, b = pair.a.keyword, pair.b.keyword
        self._by_clients.pop((a, b), None)
        self._by_clients.pop((b, a), None)
        for kw in (a, b):
            if not any(kw in k for k in self._by_clients):
                self._buckets.pop(kw, None)
        log.info("relay pair %s <-> %s ended: %s", pair.a.nickname, pair.b.nickname, why)
