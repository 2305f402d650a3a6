"""The sealed channel of a secure session: its keys, counters, AEAD and replay window.

A SEALED datagram is ``MAGIC VERSION SEALED || session id (8) || counter (8) || AEAD(frame)``
with the header as associated data and the nonce ``4 zero bytes || counter``
(docs/PROTOCOL.md section 7). Each direction has its own key; counters never repeat; the
receiver accepts each counter once within a sliding window.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Callable

import nacl.exceptions
from nacl.bindings import (
    crypto_aead_chacha20poly1305_ietf_decrypt,
    crypto_aead_chacha20poly1305_ietf_encrypt,
)

from models import secure_wire as sw
from models.peer_wire import AEAD_TAG_LEN, MAX_DATAGRAM, SEALED_HEADER_LEN

CRYPTO_ERRORS = (nacl.exceptions.CryptoError, ValueError, TypeError)
NONCE_PAD = bytes(4)  # SEALED nonce = 4 zero bytes || the header's 8-byte counter
MAX_COUNTER = 2**64 - 1
PACK_COUNTER = struct.Struct(">Q").pack
SESSION_ID_SLICE = slice(3, 11)
_COUNTER_SLICE = slice(11, SEALED_HEADER_LEN)
MIN_SEALED_LEN = sw.MIN_SEALED_LEN
MAX_SEALED_LEN = sw.MAX_DATAGRAM


class Aead:
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
        except CRYPTO_ERRORS:
            return None


class Session:
    """One live session with a peer: directional keys, counters, replay window, and (for the
    initiator) the HS_FINISH it repeats until the responder's first SEALED confirms it."""

    __slots__ = ("sid", "send_key", "recv_key", "prefix", "send_ctr", "recv_max", "recv_bits",
                 "peer_key", "hs_id", "initiator", "confirmed", "finish", "next_send", "rto",
                 "deadline", "key_changed", "export")

    def __init__(self, sid: bytes, send_key: bytes, recv_key: bytes, export: bytes,
                 peer_key: bytes, hs_id: bytes, initiator: bool) -> None:
        self.sid = sid
        self.export = export
        self.send_key, self.recv_key = send_key, recv_key
        self.prefix = sw.sealed_prefix(sid)
        self.send_ctr = 0
        self.recv_max = -1
        self.recv_bits = 0
        self.peer_key = peer_key
        self.hs_id = hs_id
        self.initiator = initiator
        self.confirmed = not initiator  # the responder saw HS_FINISH; the initiator waits
        self.finish: bytes | None = None
        self.next_send = math.inf
        self.rto = 0.0
        self.deadline = math.inf
        self.key_changed = False

    def finish_due(self, now: float, rto_max: float) -> bytes | None:
        """The initiator's HS_FINISH to send again now (then backed off), if it is due."""
        if now >= self.next_send and self.finish is not None:
            self.rto = min(self.rto * 2, rto_max)
            self.next_send = now + self.rto
            return self.finish
        return None

    def confirm(self) -> None:
        """The peer sent in this session: the handshake is done on both sides."""
        self.confirmed = True
        self.finish = None
        self.next_send = self.deadline = math.inf


class SealedChannel:
    """Seals and opens SEALED datagrams for every session of one transport (one thread).

    ``drop(reason, peer)`` counts a rejected datagram; reasons: "too old", "replayed",
    "authentication failed".
    """

    def __init__(self, replay_window: int, drop: Callable[[str, str], None]) -> None:
        self._window = replay_window
        self._window_mask = (1 << replay_window) - 1
        self._drop = drop
        self.aead = Aead()
        self.seal_raw = self.aead.seal  # bound once: called per datagram
        self._open_raw = self.aead.open

    def seal(self, s: Session, frame: bytes) -> bytes:
        counter = PACK_COUNTER(s.send_ctr)
        s.send_ctr += 1
        header = s.prefix + counter
        return header + self.seal_raw(frame, header, NONCE_PAD + counter, s.send_key)

    def open(self, peer: str, s: Session, datagram: bytes) -> bytes | None:
        """The frame in ``datagram`` (its length and session id already checked), or None."""
        counter_bytes = datagram[_COUNTER_SLICE]
        counter = int.from_bytes(counter_bytes, "big")
        offset = s.recv_max - counter
        if offset >= 0:
            if offset >= self._window:
                self._drop("too old", peer)
                return None
            if (s.recv_bits >> offset) & 1:
                self._drop("replayed", peer)
                return None
        frame = self._open_raw(datagram[SEALED_HEADER_LEN:], datagram[:SEALED_HEADER_LEN],
                               NONCE_PAD + counter_bytes, s.recv_key)
        if frame is None:
            self._drop("authentication failed", peer)
            return None
        if offset >= 0:
            s.recv_bits |= 1 << offset
        else:  # a new highest counter: slide the window
            shift = -offset
            s.recv_bits = 1 if shift >= self._window else (
                ((s.recv_bits << shift) | 1) & self._window_mask)
            s.recv_max = counter
        return frame
