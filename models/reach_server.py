"""The directory's side of the reachability extension (WHERE?, PROBE?, NUDGE), sans-IO.

The UDP edge hands every datagram that ``models.reach_wire.is_reach`` recognises to
``on_datagram(data, source, now)`` and sends what comes back: ``Out(addr, data, probe_port)``,
where ``probe_port`` means "from the second UDP socket" (PROBE). Rules, so the server is never a
reflector nor a way to reach a third party (docs/PROTOCOL.md "Reachability extension"):

* every request is authenticated like PING: a registered keyword, its nickname, and it must
  come from the address the registration's PINGs come from (``reg.addr``); with the MAC
  extension in use for that registration, a valid ``#counter.mac`` tail too;
* every answer goes to a *registered* address only: HERE and PROBE to the requester's own,
  a NUDGE to the target's; nothing is ever sent to an unregistered address;
* nothing sent is larger than the request that caused it (requests are padded to make room);
* a NUDGE goes only to a target that has itself sent an authenticated request (it speaks the
  extension): a client that speaks only the design's messages never receives one;
* PROBE: at most once per registration per ``probe_gap`` seconds; NUDGE: at most once per
  (asker, target) per ``nudge_pair_gap`` and ``nudge_rate`` per asker per second; a global cap
  on everything sent (``global_rate`` per second) bounds the cost of many registered askers.

After a WHERE? the server pushes HERE again whenever that client's PING source changes
(``after_ping``: the edge calls it for PINGs while ``watching`` is not empty).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field

from models import reach_wire as rw
from models.directory import KeyedRateLimiter, TokenBucket
from models.errors import ProtocolError
from models.nickname import canonical

log = logging.getLogger("openlchat.server")

Addr = tuple[str, int]


@dataclass(frozen=True)
class Out:
    addr: Addr
    data: bytes
    probe_port: bool = False


@dataclass
class ReachStats:
    requests: int = 0
    refused: int = 0          # unauthenticated, wrong source, unknown target
    limited: int = 0          # rate limits
    heres: int = 0
    probes: int = 0
    nudges: int = 0


@dataclass(frozen=True)
class Registered:
    """What the directory tells us of one registration (the edge adapts its own records)."""

    nickname: str
    keyword: str
    addr: Addr | None
    # MAC extension in use: ``check_raw(signed, counter, tag)`` of its ServerAuth
    mac_ok: Callable[[bytes, int, bytes], bool] | None = None


@dataclass
class ReachLimits:
    probe_gap: float = 30.0
    nudge_pair_gap: float = 2.0
    nudge_rate: float = 10.0
    global_rate: float = 2000.0
    max_tracked: int = 100_000


@dataclass
class ReachService:
    by_keyword: Callable[[str], Registered | None]
    by_nickname: Callable[[str], Registered | None]   # canonical nickname -> registration
    limits: ReachLimits = field(default_factory=ReachLimits)
    stats: ReachStats = field(default_factory=ReachStats)

    def __post_init__(self) -> None:
        lim = self.limits
        self._last_probe: dict[str, float] = {}
        self._last_pair: dict[tuple[str, str], float] = {}
        self._per_asker = KeyedRateLimiter(lim.nudge_rate, lim.nudge_rate, lim.max_tracked)
        self._global = TokenBucket(lim.global_rate, lim.global_rate, 0.0)
        self.watching: dict[bytes, Addr] = {}  # keyword bytes -> address last told in HERE
        # registrations that sent us an authenticated request: they speak the extension, so
        # a NUDGE may go to them (a design-only client is never sent one)
        self.capable: set[str] = set()

    def on_datagram(self, data: bytes, source: Addr, now: float) -> list[Out]:
        self.stats.requests += 1
        plain, auth = _split_auth(data)
        try:
            msg = rw.decode(plain)
        except ProtocolError:
            self.stats.refused += 1
            return []
        if not isinstance(msg, rw.REQUESTS):
            self.stats.refused += 1  # server -> client messages are not accepted here
            return []
        reg = self._authentic(msg.keyword, msg.nickname, source, auth)
        if reg is None:
            self.stats.refused += 1
            return []
        if len(self.capable) >= self.limits.max_tracked:
            self.capable = {kw for kw in self.capable if self.by_keyword(kw) is not None}
        if len(self.capable) < self.limits.max_tracked:
            self.capable.add(reg.keyword)
        if isinstance(msg, rw.Where):
            return self._where(reg, len(data), now)
        if isinstance(msg, rw.ProbeRequest):
            return self._probe(reg, len(data), now)
        return self._nudge(reg, msg.target, len(data), now)

    def after_ping(self, keyword: bytes, addr: Addr, now: float) -> list[Out]:
        """A PING from ``addr`` under ``keyword``: a watcher that moved hears HERE again."""
        told = self.watching.get(keyword)
        if told is None or told == addr:
            return []
        reg = self.by_keyword(keyword.decode("ascii", "replace"))
        if reg is None:
            del self.watching[keyword]  # gone: stop watching
            return []
        if reg.addr != addr:
            return []
        return self._where(reg, rw.MAX_REACH_DATAGRAM, now)

    def forget(self, keyword: str) -> None:
        self.watching.pop(keyword.encode("ascii", "replace"), None)
        self._last_probe.pop(keyword, None)
        self.capable.discard(keyword)

    # ------------------------------------------------------------------ internals
    def _authentic(self, keyword: str, nickname: str, source: Addr,
                   auth: tuple[bytes, int, bytes] | None) -> Registered | None:
        reg = self.by_keyword(keyword)
        if reg is None or reg.addr is None or reg.addr != source:
            return None
        try:
            if canonical(nickname) != canonical(reg.nickname):
                return None
        except ProtocolError:
            return None
        if reg.mac_ok is not None and (auth is None or not reg.mac_ok(*auth)):
            return None
        return reg

    def _budget(self, now: float) -> bool:
        if self._global.take(now):
            return True
        self.stats.limited += 1
        return False

    def _where(self, reg: Registered, size: int, now: float) -> list[Out]:
        assert reg.addr is not None
        data = rw.encode(rw.Here(reg.keyword, reg.addr))
        if len(data) > size or not self._budget(now):
            return []
        if len(self.watching) < self.limits.max_tracked:
            self.watching[reg.keyword.encode("ascii")] = reg.addr
        self.stats.heres += 1
        return [Out(reg.addr, data)]

    def _probe(self, reg: Registered, size: int, now: float) -> list[Out]:
        assert reg.addr is not None
        last = self._last_probe.get(reg.keyword)
        if last is not None and now - last < self.limits.probe_gap:
            self.stats.limited += 1
            return []
        data = rw.encode(rw.Probe(reg.keyword))
        if len(data) > size or not self._budget(now):
            return []
        if len(self._last_probe) >= self.limits.max_tracked:
            self._last_probe.clear()  # a flood of registrations: forget, the gap restarts
        self._last_probe[reg.keyword] = now
        self.stats.probes += 1
        return [Out(reg.addr, data, probe_port=True)]

    def _nudge(self, reg: Registered, target_nick: str, size: int, now: float) -> list[Out]:
        assert reg.addr is not None
        try:
            target = self.by_nickname(canonical(target_nick))
        except ProtocolError:
            target = None
        if target is None or target.addr is None or target.keyword == reg.keyword \
                or target.keyword not in self.capable:
            self.stats.refused += 1
            return []
        pair = (reg.keyword, target.keyword)
        last = self._last_pair.get(pair)
        if last is not None and now - last < self.limits.nudge_pair_gap:
            self.stats.limited += 1
            return []
        if not self._per_asker.allow(reg.keyword, now):
            self.stats.limited += 1
            return []
        data = rw.encode(rw.Nudge(target.keyword, reg.nickname, reg.addr))
        if len(data) > size or not self._budget(now):
            self.stats.limited += 1
            return []
        if len(self._last_pair) >= self.limits.max_tracked:
            self._last_pair = {k: t for k, t in self._last_pair.items()
                               if now - t < self.limits.nudge_pair_gap}
        self._last_pair[pair] = now
        self.stats.nudges += 1
        return [Out(target.addr, data)]


_AUTH_TAIL = re.compile(rb" #(0|[1-9][0-9]{0,18})\.([A-Za-z0-9_-]{22})\Z")


def _split_auth(data: bytes) -> tuple[bytes, tuple[bytes, int, bytes] | None]:
    """A request with the MAC extension's ``#counter.mac`` tail (docs/PROTOCOL.md, as on PING):
    (the request without it, re-framed; (signed bytes, counter, tag)). Without: (data, None).
    The signed bytes are ``keyword SP body`` up to the counter, as for PING."""
    parts = data.split(b" ", 2)
    if len(parts) != 3:
        return data, None
    kw, _len, body = parts
    m = _AUTH_TAIL.search(body)
    if m is None:
        return data, None
    head = body[:m.start()]
    dot = m.end(1)
    signed = kw + b" " + body[:dot]
    return b"%s %d %s" % (kw, len(head), head), (signed, int(m.group(1)), m.group(2))
