"""The per-peer path manager: which address do we use to reach each peer? (sans-IO)

The idea is Tailscale's magicsock endpoint (``wgengine/magicsock/endpoint.go``) without the
sockets. Each peer has a few *candidate* addresses, each of a kind:

* ``LAN``    -- its address on our own network (from LAN discovery);
* ``DIRECT`` -- its public address as the directory sees it (through its NAT, if any);
* ``RELAY``  -- later: a relay that forwards to it.

When we learn of a peer (REFERENCE, REF_ADD, a LAN announcement) its candidates are probed in
parallel, each with retries and exponential backoff. The peer does the same toward us at the
same moment (it learns of us from the same directory push), so both NATs open a mapping toward
the other: coordinated hole punching. The first candidate that answers becomes the path at
once (the first message must not wait); a better one that answers later replaces it (any LAN
path beats any DIRECT one, which beats RELAY; within a kind a clearly lower RTT wins).

**The manager never builds a datagram.** It emits *intents* and the engine decides the bytes:

* ``Probe(peer, addr)``     -- "send something to ``addr`` that ``peer`` must answer". The engine
  sends the secure handshake (or, once a session exists, any datagram the peer acknowledges);
  when the authenticated answer arrives it calls ``heard(peer, addr, now)``.
* ``Keepalive(peer, addr)`` -- "send something small so the NAT mapping stays open"; an empty
  authenticated keepalive that needs no answer is enough.

So the manager does not know the secure layer, and the secure layer does not know about NATs.
Authentication is the engine's job: ``heard`` must only be called for a datagram the secure
layer accepted as coming from ``peer``.

**What the engine feeds** (every call takes ``now``, a monotonic time in seconds):

* ``add_candidate(peer, addr, kind, now)`` / ``remove_candidate(peer, addr, kind, now)`` /
  ``forget(peer)`` when the directory (DIRECT) or LAN discovery (LAN) says so; adding a
  candidate starts probing it when it could improve the peer's path. While we are talking
  with a peer over a worse path than some silent candidate, that candidate is tried again
  every ``upgrade_interval`` (a relayed or public path gives way to a direct or LAN one).
* ``heard(peer, addr, now, rtt=None, user=True)`` for every authenticated datagram from the
  peer (``user=False`` for its keepalives, which must not keep a conversation "active").
* ``sent(peer, now)`` whenever it sends the peer a datagram that the peer must answer (a chat
  message, an ack-bearing frame); if nothing is heard back within ``path_timeout`` the path is
  declared dead and the candidates are probed again.
* ``reprobe(peer, now)`` when it wants a path now (the user writes to a peer with none).
* ``set_behind_nat(flag)``: keepalives are sent only while we are behind a NAT.
* ``poll(now) -> Step`` after any of the above and whenever ``next_deadline()`` passes: the
  datagrams to send and the events to show.

Queries: ``path_of(peer)``, ``accepts(peer, addr)`` ("is ``addr`` a known candidate of ``peer``?"
-- peer datagrams from anywhere else are dropped), ``peers_at(addr)``.

**When a path has closed** (``PathLost``, or ``NoPath`` toward a peer the directory lists), the
peer's NAT has forgotten us, so our probes alone cannot get in: the engine asks the directory
to *nudge* the peer (extension, for the server): ``keyword len NUDGE nickname target pad``
(authenticated like PING; ``pad`` of ``-`` makes the request at least as long as the nudge it
causes). The server sends ``target_keyword len NUDGE nickname ip port`` (the requester's
registered address) to the **registered** target only, at most once per (requester, target)
per 2 s and 10 per requester per second; unknown targets get nothing. The target calls
``add_candidate``/``reprobe`` for the requester: both sides probe at once again.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass, field

Addr = tuple[str, int]


class PathKind(enum.IntEnum):
    """Lower is better."""

    LAN = 0
    DIRECT = 1
    RELAY = 2


@dataclass(frozen=True)
class PathConfig:
    first_retry: float = 0.25       # first probe retry; then doubling
    max_retry: float = 4.0          # cap of the probe backoff
    probe_attempts: int = 8         # probes per candidate; silent after ~15 s (0.25 .. 4 s gaps)
    path_timeout: float = 6.0       # an answer-expecting send unanswered this long: path dead
    keepalive_interval: float = 25.0  # below common router UDP timeouts (30 s)
    active_window: float = 120.0    # user traffic within this long: "we are talking"
    rtt_switch_ratio: float = 0.7   # same kind: switch only if the RTT is below 70% of ours
    upgrade_interval: float = 30.0  # while talking: retry silent candidates better than ours
    max_candidates: int = 8


@dataclass(frozen=True)
class Probe:
    peer: str
    addr: Addr
    kind: PathKind


@dataclass(frozen=True)
class Keepalive:
    peer: str
    addr: Addr


Send = Probe | Keepalive


@dataclass(frozen=True)
class PathChosen:
    """``peer`` is now reached at ``addr`` (first path, or a better one)."""

    peer: str
    kind: PathKind
    addr: Addr
    rtt: float | None


@dataclass(frozen=True)
class PathLost:
    """The path to ``peer`` stopped answering; its candidates are being probed again."""

    peer: str
    addr: Addr


@dataclass(frozen=True)
class NoPath:
    """No candidate of ``peer`` answered any probe (until candidates change or ``reprobe``)."""

    peer: str


Event = PathChosen | PathLost | NoPath


@dataclass(frozen=True)
class PathInfo:
    kind: PathKind
    addr: Addr
    rtt: float | None


@dataclass
class Step:
    """What ``poll`` hands the engine: datagrams to send now, events to report."""

    sends: list[Send] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)


@dataclass
class _Candidate:
    addr: Addr
    kinds: set[PathKind]          # every source that named it (directory, LAN, ...)
    probes_left: int = 0
    next_probe: float | None = None
    retry: float = 0.0
    last_probe: float | None = None
    answered: bool = False
    rtt: float | None = None

    @property
    def kind(self) -> PathKind:
        return min(self.kinds)

    def start(self, now: float, cfg: PathConfig) -> None:
        self.probes_left = cfg.probe_attempts
        self.next_probe = now
        self.retry = cfg.first_retry
        self.answered = False
        self.last_probe = None

    def sample(self, rtt: float) -> None:
        # Same smoothing as TCP's SRTT (RFC 6298): one odd sample moves it by an eighth.
        self.rtt = rtt if self.rtt is None else 0.875 * self.rtt + 0.125 * rtt


@dataclass
class _Peer:
    cands: dict[Addr, _Candidate] = field(default_factory=dict)
    chosen: Addr | None = None
    last_heard: float | None = None
    awaiting_since: float | None = None   # first unanswered answer-expecting send
    last_sent: float | None = None        # any datagram, keepalives included (NAT mapping)
    last_user: float | None = None        # user traffic either way
    next_upgrade: float | None = None     # when to retry better, silent candidates
    no_path_reported: bool = False


class PathManager:
    """Candidates, probes and the chosen path of every peer. See the module docstring."""

    def __init__(self, config: PathConfig | None = None, *, behind_nat: bool = False) -> None:
        self.cfg = config or PathConfig()
        self.behind_nat = behind_nat
        self._peers: dict[str, _Peer] = {}
        self._by_addr: dict[Addr, set[str]] = {}
        self._out = Step()

    # ------------------------------------------------------------------ inputs

    def set_behind_nat(self, flag: bool) -> None:
        self.behind_nat = flag

    def add_candidate(self, peer: str, addr: Addr, kind: PathKind, now: float) -> bool:
        """``addr`` is a candidate of ``peer`` by the word of a ``kind`` source (directory:
        DIRECT, LAN discovery: LAN). An address named by two sources counts as the better
        kind until that source withdraws it. False if the peer has ``max_candidates``."""
        p = self._peers.setdefault(peer, _Peer())
        c = p.cands.get(addr)
        if c is None:
            if len(p.cands) >= self.cfg.max_candidates:
                return False
            c = p.cands[addr] = _Candidate(addr, {kind})
            self._by_addr.setdefault(addr, set()).add(peer)
        elif kind in c.kinds:
            return True  # a repeated announcement: nothing new, no new probes
        else:
            c.kinds.add(kind)
        current = self._chosen(p)
        if current is None or (current is not c and c.kind < current.kind):
            c.start(now, self.cfg)  # could improve the path: punch now
            p.no_path_reported = False
        return True

    def remove_candidate(self, peer: str, addr: Addr, kind: PathKind, now: float) -> None:
        """The ``kind`` source no longer names ``addr``; gone when no source does."""
        p = self._peers.get(peer)
        c = p.cands.get(addr) if p else None
        if p is None or c is None:
            return
        c.kinds.discard(kind)
        if c.kinds:
            return
        del p.cands[addr]
        self._unindex(peer, addr)
        if p.chosen == addr:
            p.chosen = None
            self._out.events.append(PathLost(peer, addr))
            self._fallback(p, now)

    def forget(self, peer: str) -> None:
        p = self._peers.pop(peer, None)
        for addr in p.cands if p else ():
            self._unindex(peer, addr)

    def heard(self, peer: str, addr: Addr, now: float, *, rtt: float | None = None,
              user: bool = True) -> None:
        """An authenticated datagram from ``peer`` arrived from ``addr``."""
        p = self._peers.get(peer)
        c = p.cands.get(addr) if p else None
        if p is None or c is None:
            return  # not a candidate: the engine should not have accepted it
        p.last_heard = now
        if user:
            p.last_user = now
        if c.last_probe is not None and not c.answered and rtt is None:
            rtt = now - c.last_probe  # the latest probe's round trip (Karn: never an older one)
        if rtt is not None:
            c.sample(rtt)
        if p.chosen == addr:
            p.awaiting_since = None
        c.answered = True
        c.probes_left = 0
        c.next_probe = None
        self._consider(peer, p, c, now)

    def heard_on_path(self, peer: str, now: float, *, user: bool = True) -> None:
        """``heard`` for a datagram from the peer's chosen path (the hot path: no RTT sample,
        no path choice to make). The caller knows the address is the chosen one."""
        p = self._peers.get(peer)
        if p is None:
            return
        p.last_heard = now
        p.awaiting_since = None
        if user:
            p.last_user = now

    def sent(self, peer: str, now: float) -> None:
        """We sent ``peer`` a datagram it must answer (on its chosen path)."""
        p = self._peers.get(peer)
        if p is None:
            return
        p.last_sent = p.last_user = now
        if p.chosen is not None and p.awaiting_since is None:
            p.awaiting_since = now

    def reprobe(self, peer: str, now: float) -> None:
        """Probe every candidate of ``peer`` again (no path, or the engine doubts it)."""
        p = self._peers.get(peer)
        if p is None:
            return
        p.no_path_reported = False
        for c in p.cands.values():
            if c.addr != p.chosen:
                c.start(now, self.cfg)

    # ------------------------------------------------------------------ time

    def poll(self, now: float) -> Step:
        for peer, p in self._peers.items():
            self._check_dead(peer, p, now)
            self._due_probes(peer, p, now)
            # after the probes: one that just gave up makes a better candidate "silent" now,
            # and the probes an upgrade starts go out in this same poll
            if self._due_upgrade(p, now):
                self._due_probes(peer, p, now)
            self._due_keepalive(peer, p, now)
        out, self._out = self._out, Step()
        return out

    def next_deadline(self) -> float | None:
        """The earliest time ``poll`` has something to do (None: nothing scheduled)."""
        times: list[float] = []
        for p in self._peers.values():
            times += [c.next_probe for c in p.cands.values() if c.next_probe is not None]
            if p.chosen is not None and p.awaiting_since is not None:
                times.append(p.awaiting_since + self.cfg.path_timeout)
            times += [t for t in (self._keepalive_at(p), self._upgrade_at(p)) if t is not None]
        return min(times, default=None)

    # ------------------------------------------------------------------ queries

    def path_of(self, peer: str) -> PathInfo | None:
        p = self._peers.get(peer)
        c = self._chosen(p) if p else None
        return None if c is None else PathInfo(c.kind, c.addr, c.rtt)

    def accepts(self, peer: str, addr: Addr) -> bool:
        """Is ``addr`` a known candidate of ``peer``? (Datagrams from elsewhere are dropped.)"""
        p = self._peers.get(peer)
        return p is not None and addr in p.cands

    def peers_at(self, addr: Addr) -> frozenset[str]:
        return frozenset(self._by_addr.get(addr, ()))

    def candidates(self, peer: str) -> list[tuple[Addr, PathKind]]:
        p = self._peers.get(peer)
        return [(c.addr, c.kind) for c in p.cands.values()] if p else []

    def peers(self) -> Iterable[str]:
        return self._peers.keys()

    # ------------------------------------------------------------------ internals

    def _chosen(self, p: _Peer) -> _Candidate | None:
        return p.cands.get(p.chosen) if p.chosen is not None else None

    def _unindex(self, peer: str, addr: Addr) -> None:
        owners = self._by_addr.get(addr)
        if owners is not None:
            owners.discard(peer)
            if not owners:
                del self._by_addr[addr]

    def _better(self, new: _Candidate, old: _Candidate) -> bool:
        if new.kind != old.kind:
            return new.kind < old.kind
        if new.rtt is None or old.rtt is None:
            return False
        return new.rtt < old.rtt * self.cfg.rtt_switch_ratio

    def _consider(self, peer: str, p: _Peer, c: _Candidate, now: float) -> None:
        old = self._chosen(p)
        if old is c or (old is not None and not self._better(c, old)):
            return
        p.chosen = c.addr
        p.awaiting_since = None
        p.next_upgrade = now + self.cfg.upgrade_interval
        p.no_path_reported = False
        self._out.events.append(PathChosen(peer, c.kind, c.addr, c.rtt))

    def _fallback(self, p: _Peer, now: float) -> None:
        """The chosen path is gone: probe every candidate again."""
        for c in p.cands.values():
            c.start(now, self.cfg)  # the others may have died with it (same NAT mapping)

    def _check_dead(self, peer: str, p: _Peer, now: float) -> None:
        if p.chosen is None or p.awaiting_since is None:
            return
        if now - p.awaiting_since < self.cfg.path_timeout:
            return
        lost = p.chosen
        p.chosen = None
        p.awaiting_since = None
        self._out.events.append(PathLost(peer, lost))
        self._fallback(p, now)

    def _due_probes(self, peer: str, p: _Peer, now: float) -> None:
        for c in p.cands.values():
            if c.next_probe is None or c.next_probe > now:
                continue
            if c.probes_left <= 0:
                c.next_probe = None  # the last probe had its wait too: this one is silent
                continue
            self._out.sends.append(Probe(peer, c.addr, c.kind))
            p.last_sent = now
            c.last_probe = now
            c.probes_left -= 1
            c.next_probe = now + c.retry
            c.retry = min(c.retry * 2, self.cfg.max_retry)
        if (p.chosen is None and p.cands and not p.no_path_reported
                and all(c.next_probe is None and not c.answered for c in p.cands.values())):
            p.no_path_reported = True
            self._out.events.append(NoPath(peer))

    def _keepalive_at(self, p: _Peer) -> float | None:
        if not self.behind_nat or p.chosen is None or p.last_user is None:
            return None
        base = p.last_sent if p.last_sent is not None else p.last_user
        at = base + self.cfg.keepalive_interval
        if at - p.last_user > self.cfg.active_window:
            return None  # not talking any more: let the mapping expire
        return at

    def _due_keepalive(self, peer: str, p: _Peer, now: float) -> None:
        at = self._keepalive_at(p)
        if at is None or at > now or p.chosen is None:
            return
        self._out.sends.append(Keepalive(peer, p.chosen))
        p.last_sent = now

    def _silent_better(self, p: _Peer) -> list[_Candidate]:
        current = self._chosen(p)
        if current is None:
            return []
        return [c for c in p.cands.values()
                if c.kind < current.kind and c.next_probe is None and not c.answered]

    def _upgrade_at(self, p: _Peer) -> float | None:
        if p.next_upgrade is None or p.last_user is None or not self._silent_better(p):
            return None
        if p.next_upgrade - p.last_user > self.cfg.active_window:
            return None  # not talking any more: the path we have will do
        return p.next_upgrade

    def _due_upgrade(self, p: _Peer, now: float) -> bool:
        at = self._upgrade_at(p)
        if at is None or at > now:
            return False
        for c in self._silent_better(p):
            c.start(now, self.cfg)
        p.next_upgrade = now + self.cfg.upgrade_interval
        return True
