"""SecureTransport: sans-IO authenticated key exchange and AEAD for peer datagrams.

The Transport of docs/ARCHITECTURE.md. Frames from the Messenger go in with ``wrap``; SEALED
datagrams come out of ``take_outgoing``. The first frame for a peer starts a 3-message handshake
(SIGMA-I style, layouts in ``models.secure_wire``, byte-exact in docs/PROTOCOL.md section 7)::

    i -> r  HS_INIT    hs_id, e_i                       (padded: no amplification)
    r -> i  HS_RESP    hs_id, e_r, AEAD_k_resp(pk_r, Sig_r(th, pk_r))
    i -> r  HS_FINISH  hs_id, AEAD_k_fin(pk_i, Sig_i(th, pk_r, pk_i))
    r -> i  SEALED     empty frame = "session confirmed" (then both send frames freely)

    th      = BLAKE2b-256(transcript(hs_id, e_i, e_r, nick_i, nick_r))
    prk     = BLAKE2b-256(key=th, X25519(e, E))
    k_x     = BLAKE2b-256(key=prk, label [|| th2]),  th2 = BLAKE2b-256(th || pk_r || pk_i)

The initiator retransmits HS_INIT (then HS_FINISH) with backoff until the handshake deadline;
the responder answers a retransmission with its cached reply and never retransmits by itself.
Sessions (two directional ChaCha20-Poly1305 keys, an 8-byte session id, an export key) live in
memory only. Identity keys are checked against the PinStore (trust on first use).
"""

from __future__ import annotations

import logging
import math
import os
import struct
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import nacl.exceptions
import nacl.signing
from nacl.bindings import (
    crypto_aead_chacha20poly1305_ietf_decrypt,
    crypto_aead_chacha20poly1305_ietf_encrypt,
    crypto_generichash_blake2b_salt_personal,
    crypto_scalarmult,
    crypto_scalarmult_base,
    crypto_sign_open,
)

from client.events import KeyChanged, PeerUnreachable
from client.identity import fingerprint as key_fingerprint
from client.pins import PinStore
from models import secure_wire as sw
from models.errors import ProtocolError
from models.nickname import canonical
from models.peer_wire import (
    AEAD_TAG_LEN,
    HS_FINISH,
    HS_INIT,
    HS_RESP,
    MAGIC,
    MAX_DATAGRAM,
    MAX_FRAME,
    SEALED,
    SEALED_HEADER_LEN,
    VERSION,
)

log = logging.getLogger(__name__)

WARNING_KEY_CHANGED = "UNVERIFIED KEY CHANGE"

_CRYPTO_ERRORS = (nacl.exceptions.CryptoError, ValueError, TypeError)
_ZERO_NONCE = bytes(12)
_NONCE_PAD = bytes(4)  # SEALED nonce = 4 zero bytes || the header's 8-byte counter
_MAX_COUNTER = 2**64 - 1
_PACK_COUNTER = struct.Struct(">Q").pack
_SESSION_ID_SLICE = slice(3, 11)
_COUNTER_SLICE = slice(11, SEALED_HEADER_LEN)
_MIN_SEALED_LEN = sw.MIN_SEALED_LEN
_MAX_SEALED_LEN = sw.MAX_DATAGRAM


@dataclass(frozen=True)
class SessionStarted:
    """A secure session with ``peer`` is up. ``restarted``: it replaced a live one, so the
    engine must call ``Messenger.reset_peer(peer)`` (the peer probably restarted)."""

    peer: str
    restarted: bool = False


def _hash(data: bytes, person: bytes, key: bytes = b"") -> bytes:
    return crypto_generichash_blake2b_salt_personal(data, digest_size=32, key=key, person=person)


def _kdf(key: bytes, label: bytes, context: bytes = b"") -> bytes:
    return _hash(label + context, b"OLChat-kdf-v1", key)


def _nick_id(nick: str) -> str:
    """The nickname as bound into handshakes: its canonical form, so "Bob" and "bob" agree."""
    try:
        return canonical(nick)
    except ProtocolError:
        return nick


class _Aead:
    """ChaCha20-Poly1305 IETF for SEALED datagrams: one libsodium call each, nothing else.

    Calls libsodium's C function through PyNaCl's own cffi handle with an output buffer reused
    per transport (the transport lives in one thread): about 1.4 us per call instead of 3.4 us
    through ``nacl.bindings``, whose argument checks and allocations cost more than the cipher
    for chat-sized frames. Falls back to ``nacl.bindings`` if that handle is not there.
    Keys are always 32 bytes and nonces 12 (made here, never taken from the wire).
    """

    def __init__(self) -> None:
        try:
            from nacl._sodium import ffi, lib

            self._enc = lib.crypto_aead_chacha20poly1305_ietf_encrypt
            self._dec = lib.crypto_aead_chacha20poly1305_ietf_decrypt
        except (ImportError, AttributeError):  # pragma: no cover - other PyNaCl builds
            self.seal = self._seal_bindings  # type: ignore[method-assign]
            self.open = self._open_bindings  # type: ignore[method-assign]
            return
        self._null = ffi.NULL
        self._buf = ffi.new("unsigned char[]", 2 * MAX_DATAGRAM)
        self._len = ffi.new("unsigned long long *")
        self._view = ffi.buffer(self._buf)

    def seal(self, plain: bytes, ad: bytes, nonce: bytes, key: bytes) -> bytes:
        if len(plain) > MAX_DATAGRAM:
            raise ValueError("plaintext too long")
        self._enc(self._buf, self._len, plain, len(plain), ad, len(ad), self._null, nonce, key)
        return self._view[:self._len[0]]

    def open(self, sealed: bytes, ad: bytes, nonce: bytes, key: bytes) -> bytes | None:
        """The plaintext, or None when authentication fails."""
        if not AEAD_TAG_LEN <= len(sealed) <= 2 * MAX_DATAGRAM:  # the output buffer's size
            return None
        if self._dec(self._buf, self._len, self._null, sealed, len(sealed), ad, len(ad), nonce,
                     key) != 0:
            return None
        return self._view[:self._len[0]]

    @staticmethod
    def _seal_bindings(plain: bytes, ad: bytes, nonce: bytes, key: bytes) -> bytes:
        return crypto_aead_chacha20poly1305_ietf_encrypt(plain, ad, nonce, key)

    @staticmethod
    def _open_bindings(sealed: bytes, ad: bytes, nonce: bytes, key: bytes) -> bytes | None:
        try:
            return crypto_aead_chacha20poly1305_ietf_decrypt(sealed, ad, nonce, key)
        except _CRYPTO_ERRORS:
            return None


@dataclass
class _Initiator:
    hs_id: bytes
    e_priv: bytes
    e_pub: bytes
    datagram: bytes
    deadline: float
    next_send: float
    rto: float


@dataclass
class _HalfOpen:
    """Responder side: HS_RESP sent, waiting for HS_FINISH."""

    hs_id: bytes
    th: bytes
    prk: bytes
    k_fin: bytes
    resp: bytes
    expires: float
    early: list[bytes] = field(default_factory=list)  # SEALED that overtook HS_FINISH


class _Session:
    __slots__ = ("sid", "send_key", "recv_key", "prefix", "send_ctr", "recv_max", "recv_bits",
                 "peer_key", "hs_id", "initiator", "confirmed", "finish", "next_send", "rto",
                 "deadline", "key_changed", "export")

    def __init__(self, prk: bytes, th: bytes, pk_i: bytes, pk_r: bytes, hs_id: bytes,
                 initiator: bool) -> None:
        th2 = _hash(th + pk_r + pk_i, b"OLChat-th2-v1")
        k_i2r, k_r2i = _kdf(prk, b"i2r", th2), _kdf(prk, b"r2i", th2)
        self.sid = _kdf(prk, b"sid", th2)[:sw.SESSION_ID_LEN]
        self.export = _kdf(prk, b"export", th2)
        self.send_key, self.recv_key = (k_i2r, k_r2i) if initiator else (k_r2i, k_i2r)
        self.prefix = sw.sealed_prefix(self.sid)
        self.send_ctr = 0
        self.recv_max = -1
        self.recv_bits = 0
        self.peer_key = pk_r if initiator else pk_i
        self.hs_id = hs_id
        self.initiator = initiator
        self.confirmed = not initiator  # the responder saw HS_FINISH; the initiator waits
        self.finish: bytes | None = None
        self.next_send = math.inf
        self.rto = 0.0
        self.deadline = math.inf
        self.key_changed = False


class _Peer:
    __slots__ = ("session", "initiator", "half_open", "queue", "last_trigger", "tokens",
                 "token_time", "holdoff_until")

    def __init__(self, now: float, burst: float) -> None:
        self.session: _Session | None = None
        self.initiator: _Initiator | None = None
        self.half_open: _HalfOpen | None = None
        # frames waiting for the session, in order; a dict so a frame the Messenger
        # retransmits while the handshake is still running is queued only once
        self.queue: dict[bytes, None] = {}
        self.last_trigger = -math.inf
        self.tokens = burst
        self.token_time = now
        self.holdoff_until = -math.inf


class SecureTransport:
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
        self._identity = identity
        self._my_key = bytes(identity.verify_key)
        self.my_nick = my_nick
        self.pins = pins
        self.handshake_timeout = handshake_timeout
        self._rng = rng
        self.max_half_open = max_half_open
        self.max_queue = max_queue
        self.max_queued_total = max_queued_total
        self.max_peers = max_peers
        self._window = replay_window
        self._window_mask = (1 << replay_window) - 1
        self._peers: dict[str, _Peer] = {}
        self._timed: set[str] = set()  # peers with a handshake timer running
        self._half_open: set[str] = set()
        self._queued_total = 0
        self._out: list[tuple[str, bytes]] = []
        self._frames: list[tuple[str, bytes]] = []
        self._events: list[object] = []
        self.stats: Counter[str] = Counter()
        self._pins_due: float | None = None  # when to save new pins (coalesced, see _install)
        self._aead = _Aead()
        self._seal_raw = self._aead.seal  # bound once: called per datagram
        self._open_raw = self._aead.open

    # ---- Transport interface -------------------------------------------------------------

    def wrap(self, peer: str, frame: bytes, now: float) -> None:
        """Seal ``frame`` for ``peer``, or queue it (bounded) until the handshake is done."""
        if not 0 < len(frame) <= MAX_FRAME:
            raise ValueError(f"frame of {len(frame)} bytes; must be 1..{MAX_FRAME}")
        st = self._peers.get(peer)
        s = st.session if st is not None else None
        if s is not None and s.send_ctr <= _MAX_COUNTER:
            # the fan-out hot path: ``_seal`` inlined (one call per recipient of a room message)
            counter = _PACK_COUNTER(s.send_ctr)
            s.send_ctr += 1
            header = s.prefix + counter
            self._out.append((peer, header + self._seal_raw(frame, header, _NONCE_PAD + counter,
                                                            s.send_key)))
            return
        st = self._peer(peer, now)
        if st is None:
            self._drop("too many peers", peer)
            return
        s = st.session
        if s is not None and s.send_ctr <= _MAX_COUNTER:
            self._out.append((peer, self._seal(s, frame)))
            return
        if s is not None:  # 2**64 datagrams: never in practice, but nonces must not repeat
            self._end_session(peer, st)
        if now < st.holdoff_until:
            self._drop("peer unreachable", peer)
            return
        frame = bytes(frame)
        if frame in st.queue:
            self.stats["queued twice"] += 1
        elif len(st.queue) >= self.max_queue or self._queued_total >= self.max_queued_total:
            self._drop("queue full", peer)
        else:
            st.queue[frame] = None
            self._queued_total += 1
        if st.initiator is None and st.half_open is None:
            self._start_handshake(peer, st, now)

    def unwrap(self, peer: str, datagram: bytes, now: float) -> None:
        """A datagram from ``peer``'s roster address. Never raises; bad input is counted."""
        try:
            if len(datagram) < 3 or datagram[0] != MAGIC or datagram[1] != VERSION:
                self._drop("bad envelope", peer)
                return
            kind = datagram[2]
            if kind == SEALED:  # first: all traffic after the handshake
                self._on_sealed(peer, datagram, now)
            elif kind == HS_INIT:
                self._on_init(peer, datagram, now)
            elif kind == HS_RESP:
                self._on_resp(peer, datagram, now)
            elif kind == HS_FINISH:
                self._on_finish(peer, datagram, now)
            else:
                self._drop("unexpected kind", peer)
        except ProtocolError as exc:
            self._drop(f"malformed ({exc.code})", peer)
        except Exception:  # our bug: loud in the log, but one datagram must not stop the engine
            self.stats["internal error"] += 1
            n = self.stats["internal error"]
            if n & (n - 1) == 0:
                log.exception("internal error handling a datagram from %s (%d so far)", peer, n)

    def on_timer(self, now: float) -> None:
        if self._pins_due is not None and now >= self._pins_due:
            self._pins_due = None
            self.pins.save()
        for peer in list(self._timed):
            st = self._peers.get(peer)
            if st is None:
                self._timed.discard(peer)
                continue
            self._peer_timers(peer, st, now)
            if self._deadline_of(st) == math.inf:
                self._timed.discard(peer)

    def next_deadline(self) -> float | None:
        best = math.inf if self._pins_due is None else self._pins_due

        for peer in self._timed:
            st = self._peers.get(peer)
            if st is not None:
                best = min(best, self._deadline_of(st))
        return None if best == math.inf else best

    def take_outgoing(self) -> list[tuple[str, bytes]]:
        out, self._out = self._out, []
        return out

    def take_frames(self) -> list[tuple[str, bytes]]:
        frames, self._frames = self._frames, []
        return frames

    def take_events(self) -> list[object]:
        events, self._events = self._events, []
        return events

    def close(self) -> None:
        """Save pins not written yet; the engine calls this when it stops."""
        if self._pins_due is not None:
            self._pins_due = None
            self.pins.save()

    def forget_peer(self, peer: str) -> None:
        """The peer left the roster: drop its session, handshakes and queued frames."""
        st = self._peers.pop(peer, None)
        if st is not None:
            self._queued_total -= len(st.queue)
        self._timed.discard(peer)
        self._half_open.discard(peer)

    # ---- what the engine and the UIs ask ---------------------------------------------------

    def is_established(self, peer: str) -> bool:
        st = self._peers.get(peer)
        return st is not None and st.session is not None

    def own_fingerprint(self) -> str:
        return key_fingerprint(self._my_key)

    def fingerprint(self, peer: str) -> str | None:
        """Fingerprint of the key ``peer`` proved in the live session, else of its pinned key."""
        key = self._peer_key(peer)
        return None if key is None else key_fingerprint(key)

    def warning_for(self, peer: str) -> str | None:
        """A warning to show on every message from ``peer``, or None."""
        st = self._peers.get(peer)
        if st is not None and st.session is not None and st.session.key_changed:
            return WARNING_KEY_CHANGED
        return None

    def key_changed(self, peer: str) -> bool:
        return self.warning_for(peer) is not None

    def is_verified(self, peer: str) -> bool:
        """True when the user verified the key ``peer`` uses now (or its pin, if no session)."""
        pin = self.pins.get(peer)
        key = self._peer_key(peer)
        return pin is not None and pin.verified and pin.key == key

    def mark_verified(self, peer: str) -> bool:
        """The user compared fingerprints: pin the peer's current key as verified.

        After a key change this accepts the new key and clears the warning. False when there
        is no key known for ``peer``.
        """
        st = self._peers.get(peer)
        if st is not None and st.session is not None:
            self.pins.mark_verified(peer, st.session.peer_key)
            st.session.key_changed = False
            log.info("key of %s marked verified", peer)
            return True
        return self.pins.mark_verified(peer)

    def ensure_session(self, peer: str, now: float) -> bool:
        """True if a session with ``peer`` is up; else start a handshake without a frame
        (unless one is under way or the peer just failed one) so its key becomes known, e.g.
        for ``/whois`` before any message was exchanged."""
        st = self._peers.get(peer)
        if st is not None and st.session is not None:
            return True
        st = self._peer(peer, now)
        if st is None or now < st.holdoff_until:
            return False
        if st.initiator is None and st.half_open is None:
            self._start_handshake(peer, st, now)
        return False

    def session_key_for(self, peer: str, label: bytes) -> bytes | None:
        """32 bytes both ends derive from the live session for ``label`` (e.g. file transfer)."""
        st = self._peers.get(peer)
        if st is None or st.session is None:
            return None
        return _kdf(st.session.export, b"export:", bytes(label))

    # ---- handshake --------------------------------------------------------------------------

    def _start_handshake(self, peer: str, st: _Peer, now: float) -> None:
        hs_id = self._rng(sw.HS_ID_LEN)
        e_priv = self._rng(32)
        e_pub = crypto_scalarmult_base(e_priv)
        datagram = sw.HsInit(hs_id, e_pub).encode()
        st.initiator = _Initiator(hs_id, e_priv, e_pub, datagram,
                                  deadline=now + self.handshake_timeout,
                                  next_send=now + self.RTO_INITIAL, rto=self.RTO_INITIAL)
        self._timed.add(peer)
        self._out.append((peer, datagram))
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
        if st.session is not None and st.session.hs_id == msg.hs_id:
            self._drop("stale HS_INIT", peer)
            return
        ini = st.initiator
        if ini is not None and ini.e_pub == msg.ephemeral:
            self._drop("our own HS_INIT reflected", peer)
            return
        if ini is not None and ini.e_pub < msg.ephemeral:
            # Simultaneous open: the lower ephemeral key stays initiator, on both sides.
            self._drop("simultaneous open (we initiate)", peer)
            return
        if ho is None and len(self._half_open) >= self.max_half_open:
            self._drop("too many half-open handshakes", peer)
            return
        if not self._take_token(st, now):
            self._drop("HS_INIT rate", peer)
            return
        e_priv = self._rng(32)
        e_pub = crypto_scalarmult_base(e_priv)
        try:
            dh = crypto_scalarmult(e_priv, msg.ephemeral)
        except _CRYPTO_ERRORS:
            self._drop("bad ephemeral key", peer)
            return
        th = _hash(sw.transcript(msg.hs_id, msg.ephemeral, e_pub, _nick_id(peer),
                                 _nick_id(self.my_nick)),
                   b"OLChat-th-v1")
        prk = _hash(dh, b"OLChat-prk-v1", th)
        signature = self._identity.sign(sw.resp_signed(th, self._my_key)).signature
        proof = sw.Proof(self._my_key, signature).encode()
        header = sw.HsResp(msg.hs_id, e_pub, bytes(sw.SEALED_PROOF_LEN)).header()
        sealed = crypto_aead_chacha20poly1305_ietf_encrypt(proof, header, _ZERO_NONCE,
                                                           _kdf(prk, b"hs resp"))
        resp = header + sealed
        if ini is not None:
            log.debug("simultaneous open with %s: answering theirs", peer)
            st.initiator = None
        st.half_open = _HalfOpen(msg.hs_id, th, prk, _kdf(prk, b"hs finish"), resp,
                                 expires=now + self.handshake_timeout)
        self._half_open.add(peer)
        self._timed.add(peer)
        self._out.append((peer, resp))

    def _on_resp(self, peer: str, datagram: bytes, now: float) -> None:
        msg = sw.decode_handshake(datagram)
        assert isinstance(msg, sw.HsResp)
        st = self._peers.get(peer)
        ini = st.initiator if st is not None else None
        if st is None or ini is None or ini.hs_id != msg.hs_id:
            self._drop("unexpected HS_RESP", peer)
            return
        try:
            dh = crypto_scalarmult(ini.e_priv, msg.ephemeral)
        except _CRYPTO_ERRORS:
            self._drop("bad ephemeral key", peer)
            return
        th = _hash(sw.transcript(msg.hs_id, ini.e_pub, msg.ephemeral, _nick_id(self.my_nick),
                                 _nick_id(peer)),
                   b"OLChat-th-v1")
        prk = _hash(dh, b"OLChat-prk-v1", th)
        proof = self._open_proof(msg.sealed_proof, msg.header(), _kdf(prk, b"hs resp"), peer)
        if proof is None or not self._verify(proof, sw.resp_signed(th, proof.identity), peer):
            return
        signature = self._identity.sign(sw.init_signed(th, proof.identity, self._my_key)).signature
        header = sw.HsFinish(msg.hs_id, bytes(sw.SEALED_PROOF_LEN)).header()
        sealed = crypto_aead_chacha20poly1305_ietf_encrypt(
            sw.Proof(self._my_key, signature).encode(), header, _ZERO_NONCE,
            _kdf(prk, b"hs finish"))
        session = _Session(prk, th, self._my_key, proof.identity, msg.hs_id, initiator=True)
        session.finish = header + sealed
        session.rto = self.RTO_INITIAL
        session.next_send = now + session.rto
        session.deadline = now + self.handshake_timeout
        st.initiator = None
        self._out.append((peer, session.finish))
        self._install(peer, st, session, now)

    def _on_finish(self, peer: str, datagram: bytes, now: float) -> None:
        msg = sw.decode_handshake(datagram)
        assert isinstance(msg, sw.HsFinish)
        st = self._peers.get(peer)
        if st is None:
            self._drop("unexpected HS_FINISH", peer)
            self._peer_lost_us(peer, st, now)
            return
        s = st.session
        if s is not None and not s.initiator and s.hs_id == msg.hs_id:
            self._out.append((peer, self._seal(s, b"")))  # our confirmation was lost: again
            return
        ho = st.half_open
        if ho is None or ho.hs_id != msg.hs_id:
            self._drop("unexpected HS_FINISH", peer)
            self._peer_lost_us(peer, st, now)
            return
        proof = self._open_proof(msg.sealed_proof, msg.header(), ho.k_fin, peer)
        if proof is None or not self._verify(
                proof, sw.init_signed(ho.th, self._my_key, proof.identity), peer):
            return
        session = _Session(ho.prk, ho.th, proof.identity, self._my_key, msg.hs_id,
                           initiator=False)
        st.half_open = None
        self._half_open.discard(peer)
        self._install(peer, st, session, now)
        self._out.append((peer, self._seal(session, b"")))
        for early in ho.early:
            self._on_sealed(peer, early, now)

    def _open_proof(self, sealed: bytes, ad: bytes, key: bytes, peer: str) -> sw.Proof | None:
        try:
            return sw.Proof.decode(
                crypto_aead_chacha20poly1305_ietf_decrypt(sealed, ad, _ZERO_NONCE, key))
        except _CRYPTO_ERRORS:
            self._drop("handshake decryption failed", peer)
            return None

    def _verify(self, proof: sw.Proof, signed: bytes, peer: str) -> bool:
        try:
            crypto_sign_open(proof.signature + signed, proof.identity)
        except _CRYPTO_ERRORS:
            self._drop("bad handshake signature", peer)
            return False
        return True

    def _install(self, peer: str, st: _Peer, session: _Session, now: float) -> None:
        """A handshake completed: check the pin, replace any old session, flush the queue."""
        old = st.session
        status = self.pins.check(peer, session.peer_key)
        if status == "new":
            # Saving (an fsync: milliseconds, more on a busy disk) waits PIN_SAVE_DELAY in
            # on_timer, so it never delays a handshake and a burst of new peers costs one write.
            self.pins.pin(peer, session.peer_key, save=False)
            if self._pins_due is None:
                self._pins_due = now + self.PIN_SAVE_DELAY
        elif status == "changed":
            session.key_changed = True
            pinned = self.pins.get(peer)
            old_fp = key_fingerprint(pinned.key) if pinned else "?"
            new_fp = key_fingerprint(session.peer_key)
            # once per new key, not once per session with it
            if old is None or old.peer_key != session.peer_key:
                self._events.append(KeyChanged(peer, old_fp, new_fp))
            log.warning("KEY CHANGED for %s: pinned %s, now %s", peer, old_fp, new_fp)
        st.session = session
        st.holdoff_until = -math.inf
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

    def _end_session(self, peer: str, st: _Peer) -> None:
        st.session = None
        log.info("secure session with %s ended", peer)

    # ---- sealed datagrams -------------------------------------------------------------------

    def _seal(self, s: _Session, frame: bytes) -> bytes:
        counter = _PACK_COUNTER(s.send_ctr)
        s.send_ctr += 1
        header = s.prefix + counter
        return header + self._seal_raw(frame, header, _NONCE_PAD + counter, s.send_key)

    def _on_sealed(self, peer: str, datagram: bytes, now: float) -> None:
        if not _MIN_SEALED_LEN <= len(datagram) <= _MAX_SEALED_LEN:
            self._drop("bad SEALED length", peer)
            return
        st = self._peers.get(peer)
        s = st.session if st is not None else None
        if s is None or datagram[_SESSION_ID_SLICE] != s.sid:
            self._unknown_session(peer, st, datagram, now)
            return
        counter_bytes = datagram[_COUNTER_SLICE]
        counter = int.from_bytes(counter_bytes, "big")
        offset = s.recv_max - counter
        if offset >= 0:
            if offset >= self._window:
                self._drop("too old", peer)
                return
            if (s.recv_bits >> offset) & 1:
                self._drop("replayed", peer)
                return
        frame = self._open_raw(datagram[SEALED_HEADER_LEN:], datagram[:SEALED_HEADER_LEN],
                                _NONCE_PAD + counter_bytes, s.recv_key)
        if frame is None:
            self._drop("authentication failed", peer)
            return
        if offset >= 0:
            s.recv_bits |= 1 << offset
        else:  # a new highest counter: slide the window
            shift = -offset
            s.recv_bits = 1 if shift >= self._window else (
                ((s.recv_bits << shift) | 1) & self._window_mask)
            s.recv_max = counter
        if not s.confirmed:
            s.confirmed = True
            s.finish = None
            s.next_send = s.deadline = math.inf
        if frame:
            self._frames.append((peer, frame))

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
        if (st.session is None and st.initiator is None
                and now - st.last_trigger >= self.TRIGGER_INTERVAL):
            st.last_trigger = now
            st.holdoff_until = -math.inf
            self._start_handshake(peer, st, now)

    # ---- timers and bookkeeping -------------------------------------------------------------

    def _peer_timers(self, peer: str, st: _Peer, now: float) -> None:
        ini = st.initiator
        if ini is not None:
            if now >= ini.deadline:
                self._fail(peer, st, now, "no answer to the secure handshake")
            elif now >= ini.next_send:
                self._out.append((peer, ini.datagram))
                ini.rto = min(ini.rto * 2, self.RTO_MAX)
                ini.next_send = now + ini.rto
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
                self._end_session(peer, st)
                self._fail(peer, st, now, "secure handshake never confirmed")
            elif now >= s.next_send and s.finish is not None:
                self._out.append((peer, s.finish))
                s.rto = min(s.rto * 2, self.RTO_MAX)
                s.next_send = now + s.rto

    @staticmethod
    def _deadline_of(st: _Peer) -> float:
        best = math.inf
        if st.initiator is not None:
            best = min(st.initiator.next_send, st.initiator.deadline)
        if st.half_open is not None:
            best = min(best, st.half_open.expires)
        s = st.session
        if s is not None and not s.confirmed:
            best = min(best, s.next_send, s.deadline)
        return best

    def _fail(self, peer: str, st: _Peer, now: float, reason: str) -> None:
        st.initiator = None
        dropped = len(st.queue)
        self._queued_total -= dropped
        st.queue.clear()
        st.holdoff_until = now + self.HOLDOFF
        self._events.append(PeerUnreachable(peer, reason))
        log.warning("secure handshake with %s failed: %s (%d queued frame(s) dropped)",
                    peer, reason, dropped)

    def _peer(self, peer: str, now: float) -> _Peer | None:
        st = self._peers.get(peer)
        if st is None:
            if len(self._peers) >= self.max_peers:
                return None
            st = self._peers[peer] = _Peer(now, self.INIT_BURST)
        return st

    def _peer_key(self, peer: str) -> bytes | None:
        st = self._peers.get(peer)
        if st is not None and st.session is not None:
            return st.session.peer_key
        pin = self.pins.get(peer)
        return None if pin is None else pin.key

    def _take_token(self, st: _Peer, now: float) -> bool:
        st.tokens = min(self.INIT_BURST, st.tokens + (now - st.token_time) * self.INIT_RATE)
        st.token_time = now
        if st.tokens < 1.0:
            return False
        st.tokens -= 1.0
        return True

    def _drop(self, reason: str, peer: str) -> None:
        self.stats[reason] += 1
        n = self.stats[reason]
        if n & (n - 1) == 0:  # 1st, 2nd, 4th, 8th...: bounded logging under a flood
            log.debug("dropped datagram from %s: %s (%d so far)", peer, reason, n)
