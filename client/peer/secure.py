"""SecureTransport: sans-IO authenticated key exchange and AEAD for peer datagrams.

The ``client.contracts.Transport`` of the secure client. Frames from the Messenger go in with
``wrap``; SEALED datagrams (``client.peer.sealed``) come out of ``take_outgoing``. The first
frame for a peer starts a 3-message handshake (``client.peer.handshake``); this module is its
state machine per peer.

The initiator retransmits HS_INIT (then HS_FINISH) with backoff until the handshake deadline;
the responder answers a retransmission with its cached reply and never retransmits by itself.
Sessions (two directional ChaCha20-Poly1305 keys, an 8-byte session id, an export key) live in
memory only. Identity keys are checked against the PinStore (trust on first use,
``client.peer.trust``).
"""

from __future__ import annotations

import logging
import math
import os
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

import nacl.signing

from client.events import PeerUnreachable
from client.peer.handshake import HalfOpen, Handshaker, Initiator, session_export
from client.peer.pins import PinStore
from client.peer.sealed import (
    MAX_COUNTER,
    MAX_SEALED_LEN,
    MIN_SEALED_LEN,
    NONCE_PAD,
    PACK_COUNTER,
    SESSION_ID_SLICE,
    SealedChannel,
    Session,
)
from client.peer.trust import Trust, TrustQueries
from models import secure_wire as sw
from models.errors import ProtocolError
from models.peer_wire import HS_FINISH, HS_INIT, HS_RESP, MAGIC, MAX_FRAME, SEALED, VERSION

log = logging.getLogger(__name__)



@dataclass(frozen=True)
class SessionStarted:
    """A secure session with ``peer`` is up. ``restarted``: it replaced a live one, so the
    engine must call ``Messenger.reset_peer(peer)`` (the peer probably restarted)."""

    peer: str
    restarted: bool = False


class _Peer:
    __slots__ = ("session", "initiator", "half_open", "queue", "last_trigger", "tokens",
                 "token_time", "holdoff_until", "wanted")

    def __init__(self, now: float, burst: float) -> None:
        self.session: Session | None = None
        self.initiator: Initiator | None = None
        self.half_open: HalfOpen | None = None
        # frames waiting for the session, in order; a dict so a frame the Messenger
        # retransmits while the handshake is still running is queued only once
        self.queue: dict[bytes, None] = {}
        self.last_trigger = -math.inf
        self.tokens = burst
        self.token_time = now
        self.holdoff_until = -math.inf
        # we asked for this session (a frame of ours, a whois): its failure is shown. A
        # handshake we start only because the peer talked in a session we lack is not: any
        # roster member could make us show "cannot talk to" by sending garbage.
        self.wanted = False

    def end_session(self, peer: str) -> None:
        self.session = None
        log.info("secure session with %s ended", peer)

    def may_retrigger(self, now: float, interval: float) -> bool:
        """Whether to start a handshake ourselves because the peer seems to have lost us
        (at most once per ``interval``); if so, any holdoff is lifted."""
        if (self.session is None and self.initiator is None
                and now - self.last_trigger >= interval):
            self.last_trigger = now
            self.holdoff_until = -math.inf
            return True
        return False

    def refuse_init(self, msg: sw.HsInit) -> str | None:
        """Why a new HS_INIT from this peer gets no answer, whatever our caps say; or None."""
        if self.session is not None and self.session.hs_id == msg.hs_id:
            return "stale HS_INIT"
        ini = self.initiator
        if ini is not None and ini.e_pub == msg.ephemeral:
            return "our own HS_INIT reflected"
        if ini is not None and ini.e_pub < msg.ephemeral:
            # Simultaneous open: the lower ephemeral key stays initiator, on both sides.
            return "simultaneous open (we initiate)"
        return None

    def fail(self, peer: str, reason: str, now: float,
             holdoff: float) -> tuple[int, PeerUnreachable | None]:
        """A handshake failed: drop the frames waiting for it and hold off. Returns how many
        were dropped and the notice for the user (None if we never asked for this session)."""
        dropped = len(self.queue)
        self.initiator = None
        self.queue.clear()
        self.holdoff_until = now + holdoff
        if not (self.wanted or dropped):
            log.info("secure handshake with %s failed: %s (started only because it sent "
                     "datagrams of no session we know: not shown)", peer, reason)
            return 0, None
        self.wanted = False
        log.warning("secure handshake with %s failed: %s (%d queued frame(s) dropped)",
                    peer, reason, dropped)
        return dropped, PeerUnreachable(peer, reason)

    def take_token(self, now: float, burst: float, rate: float) -> bool:
        """One HS_INIT's worth of crypto from this peer's token bucket, if there is one."""
        self.tokens = min(burst, self.tokens + (now - self.token_time) * rate)
        self.token_time = now
        if self.tokens < 1.0:
            return False
        self.tokens -= 1.0
        return True

    def resend_due(self, now: float, rto_max: float) -> bytes | None:
        """The HS_INIT, or the unconfirmed HS_FINISH, to send again now (then backed off)."""
        ini = self.initiator
        if ini is not None and ini.deadline > now >= ini.next_send:
            ini.rto = min(ini.rto * 2, rto_max)
            ini.next_send = now + ini.rto
            return ini.datagram
        return None

    def deadline(self) -> float:
        best = math.inf
        if self.initiator is not None:
            best = min(self.initiator.next_send, self.initiator.deadline)
        if self.half_open is not None:
            best = min(best, self.half_open.expires)
        s = self.session
        if s is not None and not s.confirmed:
            best = min(best, s.next_send, s.deadline)
        return best


class SecureTransport(TrustQueries):
    """Handshakes and sealing for every peer; one instance per client, driven by the engine.

    Contract for the engine: handle ``take_events()`` before ``take_frames()`` after each
    ``unwrap`` (a ``SessionStarted(restarted=True)`` resets the Messenger's state for that peer,
    and the frames that follow belong to the new session).
    """

    RTO_INITIAL = 0.25
    RTO_MAX = 1.0
    HOLDOFF = 2.0  # after a failed handshake, frames for that peer are dropped this long
    TRIGGER_INTERVAL = 1.0  # at most one handshake per second started by an unknown session
    INIT_BURST = 4.0  # token bucket for HS_INITs that cost us crypto, per peer
    INIT_RATE = 1.0
    MAX_EARLY = 8
    PIN_SAVE_DELAY = 0.2

    def __init__(self, identity: nacl.signing.SigningKey, my_nick: str, pins: PinStore,
                 now: float = 0.0, *, handshake_timeout: float = 10.0,
                 rng: Callable[[int], bytes] = os.urandom, max_half_open: int = 256,
                 max_queue: int = 256, max_queued_total: int = 8192, max_peers: int = 10000,
                 replay_window: int = 1024) -> None:
        self.my_nick = my_nick
        self.pins = pins
        self.handshake_timeout = handshake_timeout
        self.max_half_open = max_half_open
        self.max_queue = max_queue
        self.max_queued_total = max_queued_total
        self.max_peers = max_peers
        self._peers: dict[str, _Peer] = {}
        self._timed: set[str] = set()  # peers with a handshake timer running
        self._half_open: set[str] = set()
        self._queued_total = 0
        self._out: list[tuple[str, bytes]] = []
        self._frames: list[tuple[str, bytes]] = []
        self._events: list[object] = []
        self.stats: Counter[str] = Counter()
        self._hs = Handshaker(identity, my_nick, rng, self._drop)
        self._trust = Trust(pins, self._events, self.PIN_SAVE_DELAY)
        self._channel = SealedChannel(replay_window, self._drop)
        self._seal_raw = self._channel.seal_raw  # bound once: called per datagram
        self._seal = self._channel.seal
        self._open = self._channel.open

    # ---- Transport interface -------------------------------------------------------------

    def wrap(self, peer: str, frame: bytes, now: float) -> None:
        """Seal ``frame`` for ``peer``, or queue it (bounded) until the handshake is done."""
        if not 0 < len(frame) <= MAX_FRAME:
            raise ValueError(f"frame of {len(frame)} bytes; must be 1..{MAX_FRAME}")
        st = self._peers.get(peer)
        s = st.session if st is not None else None
        if s is not None and s.send_ctr <= MAX_COUNTER:
            # the fan-out hot path: ``SealedChannel.seal`` inlined (once per room recipient)
            counter = PACK_COUNTER(s.send_ctr)
            s.send_ctr += 1
            header = s.prefix + counter
            self._out.append((peer, header + self._seal_raw(frame, header, NONCE_PAD + counter,
                                                            s.send_key)))
            return
        st = self._peer(peer, now)
        if st is None:
            self._drop("too many peers", peer)
            return
        s = st.session
        if s is not None and s.send_ctr <= MAX_COUNTER:
            self._out.append((peer, self._seal(s, frame)))
            return
        if s is not None:  # 2**64 datagrams: never in practice, but nonces must not repeat
            st.end_session(peer)
        if now < st.holdoff_until:
            self._drop("peer unreachable", peer)
            return
        frame = bytes(frame)
        st.wanted = True
        if frame in st.queue:
            self.stats["queued twice"] += 1
        elif len(st.queue) >= self.max_queue or self._queued_total >= self.max_queued_total:
            self._drop("queue full", peer)
        else:
            st.queue[frame] = None
            self._queued_total += 1
        if st.initiator is None and st.half_open is None:
            self._start_handshake(peer, st, now)

    def unwrap(self, peer: str, datagram: bytes, now: float) -> bool:
        """A datagram from one of ``peer``'s candidate addresses. Never raises; bad input is
        counted. True when it authenticated (a SEALED datagram that opened, or the handshake
        step that proved the peer's key): the path manager may then trust its source."""
        try:
            if len(datagram) < 3 or datagram[0] != MAGIC or datagram[1] != VERSION:
                self._drop("bad envelope", peer)
                return False
            kind = datagram[2]
            if kind == SEALED:  # first: all traffic after the handshake
                return self._on_sealed(peer, datagram, now)
            if kind == HS_INIT:
                self._on_init(peer, datagram, now)
            elif kind == HS_RESP:
                return self._on_resp(peer, datagram, now)
            elif kind == HS_FINISH:
                return self._on_finish(peer, datagram, now)
            else:
                self._drop("unexpected kind", peer)
        except ProtocolError as exc:
            self._drop(f"malformed ({exc.code})", peer)
        except Exception:  # our bug: loud in the log, but one datagram must not stop the engine
            self.stats["internal error"] += 1
            n = self.stats["internal error"]
            if n & (n - 1) == 0:
                log.exception("internal error handling a datagram from %s (%d so far)", peer, n)
        return False

    def seal(self, peer: str, frame: bytes) -> bytes | None:
        """One datagram carrying ``frame`` on the live session with ``peer`` (not queued, for
        the path manager's probes to one address), or None without a session."""
        s = self._session(peer)
        if s is None or s.send_ctr > MAX_COUNTER:
            return None
        return self._seal(s, frame)

    def on_timer(self, now: float) -> None:
        self._trust.on_timer(now)
        for peer in list(self._timed):
            st = self._peers.get(peer)
            if st is None:
                self._timed.discard(peer)
                continue
            self._peer_timers(peer, st, now)
            if st.deadline() == math.inf:
                self._timed.discard(peer)

    def next_deadline(self) -> float | None:
        due = self._trust.save_due
        best = math.inf if due is None else due
        for peer in self._timed:
            st = self._peers.get(peer)
            if st is not None:
                best = min(best, st.deadline())
        return None if best == math.inf else best

    def take_outgoing(self) -> list[tuple[str, bytes]]:
        out, self._out = self._out, []
        return out

    def take_frames(self) -> list[tuple[str, bytes]]:
        frames, self._frames = self._frames, []
        return frames

    def take_events(self) -> list[object]:
        events = self._events[:]
        self._events.clear()  # the list is shared with the Trust
        return events

    def close(self) -> None:
        """Save pins not written yet; the engine calls this when it stops."""
        self._trust.save()

    def forget_peer(self, peer: str) -> None:
        """The peer left the roster: drop its session, handshakes and queued frames."""
        st = self._peers.pop(peer, None)
        if st is not None:
            self._queued_total -= len(st.queue)
        self._timed.discard(peer)
        self._half_open.discard(peer)

    # ---- what the engine and the UIs ask ---------------------------------------------------

    def is_established(self, peer: str) -> bool:
        return self._session(peer) is not None

    def rename(self, nickname: str) -> None:
        self.my_nick = self._hs.my_nick = nickname

    def ensure_session(self, peer: str, now: float) -> bool:
        """True if a session with ``peer`` is up; else start a handshake without a frame
        (unless one is under way or the peer just failed one) so its key becomes known, e.g.
        for ``/whois`` before any message was exchanged."""
        if self._session(peer) is not None:
            return True
        st = self._peer(peer, now)
        if st is None or now < st.holdoff_until:
            return False
        st.wanted = True
        if st.initiator is None and st.half_open is None:
            self._start_handshake(peer, st, now)
        return False

    def session_key_for(self, peer: str, label: bytes) -> bytes | None:
        """32 bytes both ends derive from the live session for ``label`` (e.g. file transfer)."""
        s = self._session(peer)
        return None if s is None else session_export(s, label)

    # ---- handshake --------------------------------------------------------------------------

    def _start_handshake(self, peer: str, st: _Peer, now: float) -> None:
        st.initiator = ini = self._hs.initiate(now, self.handshake_timeout, self.RTO_INITIAL)
        self._timed.add(peer)
        self._out.append((peer, ini.datagram))
        log.debug("handshake with %s started", peer)

    def _on_init(self, peer: str, datagram: bytes, now: float) -> None:
        msg = sw.decode_handshake(datagram)
        assert isinstance(msg, sw.HsInit)
        st = self._peer(peer, now)
        if st is None:
            self._drop("too many peers", peer)
            return
        ho = st.half_open
        if ho is not None and ho.hs_id == msg.hs_id:
            self._out.append((peer, ho.resp))  # retransmitted HS_INIT: same answer, no crypto
            return
        refusal = st.refuse_init(msg)
        if refusal is not None:
            self._drop(refusal, peer)
            if st.initiator is not None and refusal.startswith("simultaneous"):
                # they have not seen ours (a router dropped it before theirs opened the way
                # back: coordinated punching): ours again now, not at our next timeout
                self._out.append((peer, st.initiator.datagram))
            return
        ini = st.initiator
        if ho is None and len(self._half_open) >= self.max_half_open:
            self._drop("too many half-open handshakes", peer)
            return
        if not st.take_token(now, self.INIT_BURST, self.INIT_RATE):
            self._drop("HS_INIT rate", peer)
            return
        half_open = self._hs.respond(peer, msg, now + self.handshake_timeout)
        if half_open is None:
            return
        if ini is not None:
            log.debug("simultaneous open with %s: answering theirs", peer)
            st.initiator = None
        st.half_open = half_open
        self._half_open.add(peer)
        self._timed.add(peer)
        self._out.append((peer, half_open.resp))

    def _on_resp(self, peer: str, datagram: bytes, now: float) -> bool:
        msg = sw.decode_handshake(datagram)
        assert isinstance(msg, sw.HsResp)
        st = self._peers.get(peer)
        ini = st.initiator if st is not None else None
        if st is None or ini is None or ini.hs_id != msg.hs_id:
            self._drop("unexpected HS_RESP", peer)
            return False
        session = self._hs.complete(peer, ini, msg)
        if session is None or session.finish is None:
            return False
        session.rto = self.RTO_INITIAL
        session.next_send = now + session.rto
        session.deadline = now + self.handshake_timeout
        st.initiator = None
        self._out.append((peer, session.finish))
        self._install(peer, st, session, now)
        return True

    def _on_finish(self, peer: str, datagram: bytes, now: float) -> bool:
        msg = sw.decode_handshake(datagram)
        assert isinstance(msg, sw.HsFinish)
        st = self._peers.get(peer)
        if st is None:
            self._drop("unexpected HS_FINISH", peer)
            self._peer_lost_us(peer, st, now)
            return False
        s = st.session
        if s is not None and not s.initiator and s.hs_id == msg.hs_id:
            self._out.append((peer, self._seal(s, b"")))  # our confirmation was lost: again
            return False
        ho = st.half_open
        if ho is None or ho.hs_id != msg.hs_id:
            self._drop("unexpected HS_FINISH", peer)
            self._peer_lost_us(peer, st, now)
            return False
        session = self._hs.accept(peer, ho, msg)
        if session is None:
            return False
        st.half_open = None
        self._half_open.discard(peer)
        self._install(peer, st, session, now)
        self._out.append((peer, self._seal(session, b"")))
        for early in ho.early:
            self._on_sealed(peer, early, now)
        return True

    def _install(self, peer: str, st: _Peer, session: Session, now: float) -> None:
        """A handshake completed: check the pin, replace any old session, flush the queue."""
        old = st.session
        self._trust.check(peer, session, old, now)
        st.session = session
        st.holdoff_until = -math.inf
        st.wanted = st.wanted and not session.confirmed
        if session.initiator:
            self._timed.add(peer)
        self._events.append(SessionStarted(peer, restarted=old is not None))
        log.info("secure session with %s up (%s%s)", peer,
                 "initiator" if session.initiator else "responder",
                 ", replaces the old one" if old is not None else "")
        for frame in st.queue:
            self._out.append((peer, self._seal(session, frame)))
        self._queued_total -= len(st.queue)
        st.queue.clear()

    # ---- sealed datagrams -------------------------------------------------------------------

    def _on_sealed(self, peer: str, datagram: bytes, now: float) -> bool:
        if not MIN_SEALED_LEN <= len(datagram) <= MAX_SEALED_LEN:
            self._drop("bad SEALED length", peer)
            return False
        st = self._peers.get(peer)
        s = st.session if st is not None else None
        if s is None or datagram[SESSION_ID_SLICE] != s.sid:
            self._unknown_session(peer, st, datagram, now)
            return False
        frame = self._open(peer, s, datagram)
        if frame is not None:
            if not s.confirmed:
                s.confirm()
                st.wanted = False
            if frame:
                self._frames.append((peer, frame))
            return True
        return False

    def _unknown_session(self, peer: str, st: _Peer | None, datagram: bytes, now: float) -> None:
        if st is not None and st.half_open is not None:
            if len(st.half_open.early) < self.MAX_EARLY:
                st.half_open.early.append(bytes(datagram))  # may be for the session to come
            else:
                self._drop("unknown session", peer)
            return
        self._drop("unknown session", peer)
        self._peer_lost_us(peer, st, now)

    def _peer_lost_us(self, peer: str, st: _Peer | None, now: float) -> None:
        """The peer talks to us in a session or handshake we do not have.

        It has probably kept state we lost (we restarted, our handshake timed out, our half-open
        record was replaced): start a fresh handshake ourselves, at most once per interval.
        """
        if st is None:
            st = self._peer(peer, now)
            if st is None:
                return
        if st.may_retrigger(now, self.TRIGGER_INTERVAL):
            self._start_handshake(peer, st, now)

    # ---- timers and bookkeeping -------------------------------------------------------------

    def _peer_timers(self, peer: str, st: _Peer, now: float) -> None:
        ini = st.initiator
        if ini is not None and now >= ini.deadline:
            self._fail(peer, st, now, "no answer to the secure handshake")
        elif (again := st.resend_due(now, self.RTO_MAX)) is not None:
            self._out.append((peer, again))
        ho = st.half_open
        if ho is not None and now >= ho.expires:
            st.half_open = None
            self._half_open.discard(peer)
            self._drop("half-open handshake expired", peer)
            if st.queue and st.session is None and st.initiator is None:
                self._start_handshake(peer, st, now)
        s = st.session
        if s is not None and not s.confirmed:
            if now >= s.deadline:
                st.end_session(peer)
                self._fail(peer, st, now, "secure handshake never confirmed")
            elif (finish := s.finish_due(now, self.RTO_MAX)) is not None:
                self._out.append((peer, finish))

    def _fail(self, peer: str, st: _Peer, now: float, reason: str) -> None:
        dropped, notice = st.fail(peer, reason, now, self.HOLDOFF)
        self._queued_total -= dropped
        if notice is not None:
            self._events.append(notice)

    def _peer(self, peer: str, now: float) -> _Peer | None:
        st = self._peers.get(peer)
        if st is None:
            if len(self._peers) >= self.max_peers:
                return None
            st = self._peers[peer] = _Peer(now, self.INIT_BURST)
        return st

    def _session(self, peer: str) -> Session | None:
        st = self._peers.get(peer)
        return None if st is None else st.session

    def _drop(self, reason: str, peer: str) -> None:
        self.stats[reason] += 1
        n = self.stats[reason]
        if n & (n - 1) == 0:  # 1st, 2nd, 4th, 8th...: bounded logging under a flood
            log.debug("dropped datagram from %s: %s (%d so far)", peer, reason, n)
