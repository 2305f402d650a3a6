"""Reaching peers, on the engine thread: the path manager, our NAT status and LAN discovery wired
to the UDP edge, the transport and the directory (issue 10; docs/PROTOCOL.md "Reachability").

What it does for the engine:

* **Candidates.** Every roster entry's address is a DIRECT candidate of that nickname (the
  directory's word); every LAN announcement of a nickname is a LAN candidate, if its key is the
  one we know for that nickname (or we know none yet: trust on first use decides at the
  handshake). ``peer_at(addr)`` is the router's question: peer datagrams from anywhere else are
  dropped.
* **Coordinated punching.** When a peer appears (REFERENCE at our start, REF_ADD for the
  others, a LAN announcement) we start the secure handshake at once; the other side does the
  same at the same moment, so both NATs open, the transport resolves the simultaneous open,
  and the first message finds a session (and a changed key is flagged at join).
* **Sending.** ``send_many`` sends a peer's datagrams to its chosen path; with none yet, to
  every candidate (so handshake retransmissions are the probes). ``heard`` is called by the
  router for every datagram the transport authenticated; that is what chooses a path.
* **Probes with a session** are sealed one-byte frames: ``PATH_PING`` (0x10) to one address,
  answered by ``PATH_PONG`` (0x11) to the addresses the peer was just heard from; keepalives
  are empty sealed frames (no answer, never delivered). The Messenger never sees either.
* **NUDGE** (directory extension) when a path is lost or none answers, and proactively when we
  write to a peer not heard from for longer than a NAT keeps a mapping; a NUDGE received makes
  us probe the asker at once.
* **Our NAT status**: WHERE?/HERE and PROBE?/PROBE; keepalives only while behind NAT.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace

from client import events as ev
from client.contracts import Transport
from client.reach import paths as pm
from client.reach.lan import Identity, LanDiscovery, lan_interfaces
from client.reach.lancache import Clash, LanEvent, PeerGone, PeerSeen, ServerGone, ServerSeen
from client.reach.merged import MergedRoster
from client.reach.nat import NatWatch
from client.reach.report import netcheck_lines
from client.relaylink import RelayLink
from client.serverlink.link import ServerLink
from client.serverlink.roster import Changes
from client.udp import UdpEdge
from models import reach_wire as rw
from models.errors import ProtocolError

log = logging.getLogger(__name__)

Addr = tuple[str, int]

PATH_PING = b"\x10"
PATH_PONG = b"\x11"
PATH_FRAMES = frozenset((PATH_PING[0], PATH_PONG[0]))
USER_MIN_SIZE = 40     # a sealed keepalive/PING/PONG is 35..36 bytes; user traffic is larger
PONG_SOURCES_WINDOW = 2.0  # a PONG goes to the addresses the peer was heard from this recently
MAX_PONG_TARGETS = 4
NUDGE_GAP = 2.0        # at most one NUDGE per peer per this many seconds (the server's rule)
PROBE_AGAIN = 30.0     # PROBE? at most this often (the server's rate limit)
WHERE_RETRY = 5.0      # WHERE? again while no HERE came (lost) ...
WHERE_TRIES = 6        # ... this many times; then (a design-only server?) at the refresh pace
WHERE_REFRESH = 60.0   # WHERE? again after a HERE: the server keeps us among its extension users
PUNCH_AT_JOIN_MAX = 256  # a bigger batch of newcomers gets handshakes lazily (on first send)


@dataclass(frozen=True)
class ReachConfig:
    paths: pm.PathConfig = pm.PathConfig()
    lan: bool = False              # run LAN discovery (the faces turn it on)
    lan_port: int = 7701
    lan_interval: float = 5.0
    punch_at_join: bool = True


@dataclass(frozen=True)
class ServerView:
    """What we need of the directory link: where it is, how we are known, whether it's up."""

    addr: Addr
    keyword: str
    nickname: str
    online: bool
    frame: Callable[[bytes], bytes]  # a request body -> its datagram (MACed when in use)
    extended: bool = True  # speaks the extensions (INFO?); a design-only server gets none


class ReachLink:
    def __init__(self, udp: UdpEdge, transport: Transport, roster: MergedRoster, *,
                 cfg: ReachConfig, server: Callable[[], ServerView | None],
                 post: Callable[[Callable[[float], None]], None], lan_key: bytes | None,
                 now: float, emit: Callable[[ev.Event], None],
                 on_changes: Callable[[Changes, float], None]) -> None:
        self.udp = udp
        self.transport = transport
        self.roster = roster
        self.cfg = cfg
        self.paths = pm.PathManager(cfg.paths)
        self.nat = NatWatch(udp.address[1])
        self._server = server
        self._post = post
        self._emit = emit
        self._on_changes = on_changes  # LAN peers joining/leaving the merged roster
        self._lan_pending: list[LanEvent] = []  # from the discovery thread, not handled yet
        self._lan_lock = threading.Lock()
        self._path: dict[str, Addr] = {}          # chosen path per peer (hot path of sending)
        self._direct: dict[Addr, str] = {}        # directory candidates: addr -> nickname
        self._direct_of: dict[str, Addr] = {}
        self._lan_owner: dict[Addr, str] = {}     # LAN candidates: first claim holds
        self._lan_of: dict[str, set[Addr]] = {}
        self._lan_key: dict[str, bytes] = {}      # the key a LAN nickname belongs to
        self._sources: dict[str, dict[Addr, float]] = {}
        self._last_heard: dict[str, float] = {}
        self._last_nudge: dict[str, float] = {}
        self._next_where: float | None = now
        self._where_tries = 0
        self._probe_due = True  # one PROBE? after each (re)registration
        self._next_probe_ok = now
        self.stats = {"nudges_sent": 0, "nudges_heard": 0, "keepalives": 0, "probes": 0}
        # PathManager.next_deadline walks every peer: cached, recomputed after what can make it
        # earlier (a poll, a send, new candidates); a stale earlier value only wakes us early
        self._paths_due: float | None = None
        self._due_stale = True
        self.lan: LanDiscovery | None = None
        self.relay = RelayLink(udp, transport, server=self._server, paths=self.paths,  # relay
                               nat=self.nat, heard=self.heard, emit=emit)
        self.clashes: dict[str, frozenset[bytes]] = {}
        try:
            self.nat.set_local([udp.address[0], *(i.ip for i in lan_interfaces())])
        except Exception:  # ifaddr on an odd system: we only lose the NAT hint
            log.exception("cannot list network interfaces")
        if cfg.lan and lan_key is not None:
            self._start_lan(lan_key)

    def _start_lan(self, key: bytes) -> None:
        view = self._server()
        nick = view.nickname if view is not None else self.roster.me
        try:
            self.lan = LanDiscovery(Identity(self.udp.address[1], nick, key), self._lan_events,
                                    port=self.cfg.lan_port, interval=self.cfg.lan_interval)
        except OSError as exc:
            log.warning("LAN discovery unavailable: %s", exc)
            return
        self.lan.start()

    def close(self) -> None:
        if self.lan is not None:
            self.lan.close()

    # ------------------------------------------------------------------ the router's side
    def peer_at(self, addr: Addr) -> str | None:
        peer = self._direct.get(addr)
        return peer if peer is not None else self._lan_owner.get(addr)

    def heard(self, peer: str, addr: Addr, now: float, size: int) -> None:
        """An authenticated datagram of ``size`` bytes from ``peer`` arrived from ``addr``."""
        self._last_heard[peer] = now
        if self._path.get(peer) == addr:  # the hot path: ACKs and messages on the path
            self.paths.heard_on_path(peer, now, user=size > USER_MIN_SIZE)
            return
        self._sources.setdefault(peer, {})[addr] = now
        self.paths.heard(peer, addr, now, user=size > USER_MIN_SIZE)
        self._flush(now)  # a path may have been chosen (or bettered): use it at once

    def on_server_datagram(self, data: bytes, now: float) -> bool:
        """A datagram from the server's address: True if ours (HERE, NUDGE, the relay's)."""
        if self.relay.on_server_datagram(data, now):
            return True
        if not rw.is_reach(data):
            return False
        msg = self._decode_for_us(data)
        if isinstance(msg, rw.Here):
            if self.nat.public_seen(msg.addr):
                log.info("behind NAT: %s (the directory sees %s:%d)", self.nat.behind_nat,
                         *msg.addr)
            self._next_where = now + WHERE_REFRESH
            self._where_tries = 0
            self.paths.set_behind_nat(bool(self.nat.behind_nat))
        elif isinstance(msg, rw.Nudge):
            self.stats["nudges_heard"] += 1
            self._nudged(msg.nickname, msg.addr, now)
        return True

    def on_foreign(self, data: bytes, addr: Addr, now: float) -> bool:
        """A non-peer datagram not from the server's address: the PROBE from its probe port?"""
        view = self._server()
        if view is None or addr[0] != view.addr[0] or not rw.is_reach(data):
            return False
        if isinstance(self._decode_for_us(data), rw.Probe):
            self.nat.probe_arrived(now)
            return True
        return False

    def _decode_for_us(self, data: bytes) -> rw.Message | None:
        view = self._server()
        try:
            msg = rw.decode(data)
        except ProtocolError as exc:
            log.debug("bad reachability datagram: %s", exc)
            return None
        if view is None or msg.keyword != view.keyword:
            return None
        return msg

    # ------------------------------------------------------------------ the engine's side
    def send_many(self, out: Iterable[tuple[str, bytes]]) -> None:
        """Datagrams from the transport: to the chosen path, else to every candidate."""
        path = self._path
        direct = []
        for peer, datagram in out:
            if peer in path:
                direct.append((peer, datagram))
            else:
                for addr, _kind in self.paths.candidates(peer):
                    self.relay.send_to(datagram, addr)
        if direct:
            self.udp.send_many(self.relay.take_relayed(direct, path), path.get)

    def address_of(self, peer: str) -> Addr | None:
        """Where ``peer`` is reached: its path, else its directory address (file transfers)."""
        return self._path.get(peer) or self.roster.address_of(peer)

    def sent(self, peers: Iterable[str], now: float) -> None:
        """The user sent ``peers`` a message: the path must answer; stale ones get a NUDGE."""
        stale_after = self.cfg.paths.keepalive_interval
        # the only deadline a send can bring forward: its path's answer timeout
        timeout_at = now + self.cfg.paths.path_timeout
        if self._paths_due is None or timeout_at < self._paths_due:
            self._paths_due = timeout_at
        for peer in peers:
            self.paths.sent(peer, now)
            last = self._last_heard.get(peer)
            if last is None or now - last > stale_after:
                self.transport.ensure_session(peer, now)
                if self.nat.behind_nat is not False:
                    self._nudge(peer, now)

    def on_roster(self, changes: Changes, now: float, *, punch: bool = True) -> None:
        for nick in changes.left:
            self._forget(nick)
        for nick in (*changes.joined, *changes.moved):
            addr = self.roster.directory_address(nick)
            old = self._direct_of.get(nick)
            if old is not None and old != addr:
                del self._direct_of[nick]
                if self._direct.get(old) == nick:
                    del self._direct[old]
                self.paths.remove_candidate(nick, old, pm.PathKind.DIRECT, now)
            if addr is not None:
                self._direct[addr] = nick
                self._direct_of[nick] = addr
                self.paths.add_candidate(nick, addr, pm.PathKind.DIRECT, now)
            for lan_addr in self._lan_of.get(nick, ()):
                self.paths.add_candidate(nick, lan_addr, pm.PathKind.LAN, now)
        if punch and self.cfg.punch_at_join and len(changes.joined) <= PUNCH_AT_JOIN_MAX:
            for nick in changes.joined:
                self.transport.ensure_session(nick, now)  # the other side does it too
        self._flush(now)

    def server_changed(self, online: bool, now: float) -> None:
        """Server lost, back, or registered again: what it told us about us is stale."""
        if not online:
            self.nat.server_lost()
        self._next_where = now
        self._where_tries = 0
        self._probe_due = True

    def on_path_frame(self, peer: str, frame: bytes, now: float) -> None:
        """A PATH_PING or PATH_PONG the transport authenticated (the pong needs no work: the
        router's ``heard`` already counted it)."""
        if frame[:1] != PATH_PING:
            return
        cutoff = now - PONG_SOURCES_WINDOW
        recent = [a for a, t in self._sources.get(peer, {}).items() if t >= cutoff]
        path = self._path.get(peer)
        if path is not None and path not in recent:
            recent.append(path)  # heard there too (not noted: the hot path)
        datagram = self.transport.seal(peer, PATH_PONG)
        if datagram is not None:
            for addr in recent[-MAX_PONG_TARGETS:]:
                self.relay.send_to(datagram, addr)

    def next_deadline(self) -> float | None:
        if self._due_stale:
            self._paths_due = self.paths.next_deadline()
            self._due_stale = False
        times = [t for t in (self._paths_due, self.nat.next_deadline(), self._next_where)
                 if t is not None]
        return min(times, default=None)

    def on_timer(self, now: float) -> None:
        if self._lan_pending:
            self._on_lan(now)
        self.nat.poll(now)
        view = self._server()
        if self._next_where is not None and now >= self._next_where and view is not None \
                and view.online:
            self._to_server(rw.Where(view.keyword, view.nickname))
            self._where_tries += 1
            self._next_where = now + (WHERE_RETRY if self._where_tries < WHERE_TRIES
                                      else WHERE_REFRESH)
            if self._probe_due:
                self._probe_due = False
                self.request_probe(now)
        self._flush(now)

    def request_probe(self, now: float) -> None:
        view = self._server()
        if view is None or not view.online or now < self._next_probe_ok:
            return
        self._next_probe_ok = now + PROBE_AGAIN
        self.nat.probe_requested(now)
        self._to_server(rw.ProbeRequest(view.keyword, view.nickname))

    # ------------------------------------------------------------------ queries
    def path_text(self, peer: str) -> str:
        info = self.paths.path_of(peer)
        if info is None:
            return "none yet"
        kind = {pm.PathKind.LAN: "LAN", pm.PathKind.DIRECT: "direct",
                pm.PathKind.RELAY: "via relay"}[info.kind]
        if info.kind == pm.PathKind.DIRECT and self.nat.behind_nat:
            kind = "direct through NAT"
        rtt = "" if info.rtt is None else f", rtt {info.rtt * 1000:.0f} ms"
        host, port = self.relay.display(info.addr)
        return f"{kind} {host}:{port}{rtt}"

    def whois(self, info: ev.Whois | None) -> ev.Whois | None:
        """``info`` with the path in use (LAN / direct through NAT / none yet) and its RTT."""
        return None if info is None else replace(info, path=self.path_text(info.nickname))

    def netcheck(self, now: float) -> list[str]:
        """``/netcheck``: our public address, NAT, LAN addresses, LAN peers and servers heard,
        whether unsolicited UDP reaches us (asks the directory to probe us again, at most
        every PROBE_AGAIN seconds: the answer shows in the next report)."""
        self.request_probe(now)
        peers, servers = self.lan.snapshot() if self.lan is not None else ([], [])
        report = self.nat.report({p.nickname for p in peers}, [s.addr for s in servers])
        view = self._server()
        kinds = [info.kind for p in self.paths.peers()
                 if (info := self.paths.path_of(p)) is not None]
        return netcheck_lines(report, None if view is None else (view.addr, view.online),
                              port=self.udp.address[1], lan_on=self.lan is not None,
                              clashes={n: len(k) for n, k in self.clashes.items()},
                              checking=self.nat.next_deadline() is not None,
                              paths=kinds) + self.relay.report()

    # ------------------------------------------------------------------ internals
    def _forget(self, nick: str) -> None:
        self.paths.forget(nick)
        self.relay.forget(nick)
        self._path.pop(nick, None)
        self._sources.pop(nick, None)
        self._last_heard.pop(nick, None)
        self._last_nudge.pop(nick, None)
        addr = self._direct_of.pop(nick, None)
        if addr is not None and self._direct.get(addr) == nick:
            del self._direct[addr]

    def _flush(self, now: float) -> None:
        self._due_stale = True
        step = self.paths.poll(now)
        for send in step.sends:
            if isinstance(send, pm.Probe):
                self._probe(send, now)
            else:
                datagram = self.transport.seal(send.peer, b"")
                if datagram is not None:
                    self.stats["keepalives"] += 1
                    self.relay.send_to(datagram, send.addr)
        for event in step.events:
            if isinstance(event, pm.PathChosen):
                info = self.paths.path_of(event.peer)
                if info is None or info.addr != event.addr:
                    continue  # stale: the peer left (or moved on) since
                self._path[event.peer] = event.addr
                self.relay.path_found(event.peer)
                log.info("path to %s: %s", event.peer, self.path_text(event.peer))
            elif isinstance(event, pm.PathLost):
                self._path.pop(event.peer, None)
                log.info("path to %s at %s:%d lost", event.peer, *event.addr)
                self._nudge(event.peer, now)
                self.relay.no_path(event.peer, now)
            elif isinstance(event, pm.NoPath):
                log.info("no path to %s answers", event.peer)
                self._nudge(event.peer, now)
                self.relay.no_path(event.peer, now)

    def _probe(self, probe: pm.Probe, now: float) -> None:
        self.stats["probes"] += 1
        datagram = self.transport.seal(probe.peer, PATH_PING)
        if datagram is not None:
            self.relay.send_to(datagram, probe.addr)
        elif self.cfg.punch_at_join:
            # the handshake's datagrams go to every candidate: they are the probes
            self.transport.ensure_session(probe.peer, now)

    def _nudge(self, peer: str, now: float) -> None:
        view = self._server()
        if view is None or not view.online or peer not in self.roster:
            return
        if now - self._last_nudge.get(peer, -NUDGE_GAP) < NUDGE_GAP:
            return
        self._last_nudge[peer] = now
        self.stats["nudges_sent"] += 1
        self._to_server(rw.NudgeRequest(view.keyword, view.nickname, peer))

    def _nudged(self, asker: str, addr: Addr, now: float) -> None:
        if asker not in self.roster:
            return  # we do not list it (yet): its REF_ADD brings the candidate
        self.paths.add_candidate(asker, addr, pm.PathKind.DIRECT, now)
        self.paths.reprobe(asker, now)
        chosen = self._path.get(asker)
        datagram = self.transport.seal(asker, PATH_PING)
        if datagram is None:
            self.transport.ensure_session(asker, now)
        elif chosen is not None:
            self.relay.send_to(datagram, chosen)
        self._flush(now)

    def _to_server(self, msg: rw.Where | rw.ProbeRequest | rw.NudgeRequest) -> None:
        view = self._server()
        if view is not None and view.extended:
            self.udp.send(view.frame(rw.request_body(msg)), view.addr)

    # ------------------------------------------------------------------ LAN
    def lan_servers(self) -> list[Addr]:
        """Directory servers heard on the LAN (any thread)."""
        return [] if self.lan is None else [s.addr for s in self.lan.snapshot()[1]]

    def _lan_events(self, events: list[LanEvent]) -> None:
        """On the discovery thread: queue, and hand over to the engine thread (which also
        takes the queue on its timer: events from before it ran are not lost)."""
        with self._lan_lock:
            self._lan_pending += events
        self._post(self._on_lan)

    def _on_lan(self, now: float) -> None:
        with self._lan_lock:
            events, self._lan_pending = self._lan_pending, []
        for event in events:
            if isinstance(event, PeerSeen):
                self._lan_seen(event, now)
            elif isinstance(event, PeerGone):
                self._lan_gone(event, now)
            elif isinstance(event, Clash):
                self.clashes[event.nickname] = event.keys
                self._emit(ev.Notice(f"nickname clash on this network: {event.nickname} is "
                                     f"announced by {len(event.keys)} different keys (the "
                                     "first one heard keeps the name; the key decides)"))
            elif isinstance(event, ServerSeen | ServerGone):
                pass  # snapshot() has them for /netcheck and the connect screen
        self._flush(now)

    def _lan_seen(self, event: PeerSeen, now: float) -> None:
        from client.peer.identity import fingerprint

        peer = event.peer
        nick = self.roster.resolve(peer.nickname) or peer.nickname
        known = self.transport.fingerprint(nick)
        if known is not None and known != fingerprint(peer.key):
            log.info("LAN announcement of %s with another key than we know: ignored", nick)
            return
        key = self._lan_key.setdefault(nick, peer.key)
        if key != peer.key:
            return  # a second key for a listed nickname: a clash (reported), never merged
        addrs = self._lan_of.setdefault(nick, set())
        for addr in peer.addrs:
            if self._lan_owner.setdefault(addr, nick) != nick:
                continue  # someone else claimed it first (a forger, or a stale entry)
            addrs.add(addr)
            self.paths.add_candidate(nick, addr, pm.PathKind.LAN, now)
        if addrs:
            self._on_changes(self.roster.lan_add(nick, peer.addrs[0]), now)

    def _lan_gone(self, event: PeerGone, now: float) -> None:
        nick = self.roster.resolve(event.nickname) or event.nickname
        if self._lan_key.get(nick) != event.key:
            return  # the clashing second key went: the first one stays
        del self._lan_key[nick]
        for addr in self._lan_of.pop(nick, ()):
            if self._lan_owner.get(addr) == nick:
                del self._lan_owner[addr]
            self.paths.remove_candidate(nick, addr, pm.PathKind.LAN, now)
        self._on_changes(self.roster.lan_remove([nick]), now)


def no_server_text(named: Addr | None) -> str:
    where = f"the server at {named[0]}:{named[1]} does not answer" if named else \
        "no server found on this network"
    return (f"{where}: chatting with the people on this network only (room, private "
            "messages and files work as usual); still looking for a server")


def server_view(link: ServerLink | None) -> ServerView | None:
    if link is None:
        return None
    c = link.channel
    return ServerView(link.server, c.keyword, c.nickname, c.online, c.extension_datagram,
                      c.extended)


def lan_key(keys: object) -> bytes | None:
    """Our identity public key for LAN announcements (the engine's loaded keys), or a random
    stand-in for the plain transport (announcements need some key; nothing checks it)."""
    if isinstance(keys, tuple) and keys:
        return bytes(keys[0].verify_key)
    return os.urandom(32)
