"""Byte layouts of the secure peer transport: handshake messages and the SEALED header.

Pure codec, no cryptography here (``client/peer/secure.py`` does that with libsodium). Every
datagram starts with the 3-byte peer envelope of ``models.peer_wire`` (0xC1, 0x01, kind).
Messages, who sends them and what they trigger (i = initiator, r = responder)::

    HS_INIT    i -> r  hs_id(8) e_i(32) zero padding(112)          155 bytes in all
               r answers with HS_RESP (a retransmitted HS_INIT gets the same HS_RESP again)
    HS_RESP    r -> i  hs_id(8) e_r(32) AEAD(k_resp, proof_r)(112)  155 bytes in all
               i checks r's signature, answers HS_FINISH; i's session is up (unconfirmed)
    HS_FINISH  i -> r  hs_id(8) AEAD(k_fin, proof_i)(112)           123 bytes in all
               r checks i's signature; r's session is up; r answers a SEALED confirmation
    SEALED     both    session_id(8) counter(8, big-endian) AEAD(k_dir, frame)(len(frame)+16)
               an empty frame is the transport's own confirmation, never handed to a Messenger

    proof = identity public key (Ed25519, 32) || Ed25519 signature (64)

HS_INIT is padded to the size of HS_RESP so answering a (possibly spoofed) HS_INIT never sends
more bytes than it received. The AEAD in the handshake has a 16-byte tag and its additional
data is every byte of the datagram before the ciphertext.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from models.errors import ProtocolError
from models.peer_wire import (
    AEAD_TAG_LEN,
    HEADER_LEN,
    HS_FINISH,
    HS_INIT,
    HS_RESP,
    MAGIC,
    MAX_DATAGRAM,
    SEALED,
    SEALED_HEADER_LEN,
    VERSION,
    make_envelope,
    parse_envelope,
)

HS_ID_LEN = 8
KEY_LEN = 32  # X25519 and Ed25519 public keys
SIG_LEN = 64
SESSION_ID_LEN = 8
PROOF_LEN = KEY_LEN + SIG_LEN
SEALED_PROOF_LEN = PROOF_LEN + AEAD_TAG_LEN

HS_RESP_LEN = HEADER_LEN + HS_ID_LEN + KEY_LEN + SEALED_PROOF_LEN  # 155
HS_INIT_PAD = HS_RESP_LEN - (HEADER_LEN + HS_ID_LEN + KEY_LEN)  # 112
HS_INIT_LEN = HS_RESP_LEN
HS_FINISH_LEN = HEADER_LEN + HS_ID_LEN + SEALED_PROOF_LEN  # 123
MIN_SEALED_LEN = SEALED_HEADER_LEN + AEAD_TAG_LEN  # 35: an empty frame (the confirmation)

# Domain-separation strings, so a signature or a hash made for one purpose is useless in another.
TRANSCRIPT_CONTEXT = b"OpenLChat handshake v1"
RESP_SIG_CONTEXT = b"OpenLChat responder signature v1"
INIT_SIG_CONTEXT = b"OpenLChat initiator signature v1"
MAX_NICK_BYTES = 255

_SEALED_PREFIX = bytes((MAGIC, VERSION, SEALED))
_COUNTER = struct.Struct(">Q")


@dataclass(frozen=True)
class HsInit:
    hs_id: bytes
    ephemeral: bytes

    def encode(self) -> bytes:
        _check_len("hs_id", self.hs_id, HS_ID_LEN)
        _check_len("ephemeral", self.ephemeral, KEY_LEN)
        return make_envelope(HS_INIT, self.hs_id + self.ephemeral + bytes(HS_INIT_PAD))


@dataclass(frozen=True)
class HsResp:
    hs_id: bytes
    ephemeral: bytes
    sealed_proof: bytes  # AEAD ciphertext + tag of proof_r

    def encode(self) -> bytes:
        return self.header() + self.sealed_proof

    def header(self) -> bytes:
        """The bytes before the ciphertext: the AEAD's additional data."""
        _check_len("hs_id", self.hs_id, HS_ID_LEN)
        _check_len("ephemeral", self.ephemeral, KEY_LEN)
        _check_len("sealed_proof", self.sealed_proof, SEALED_PROOF_LEN)
        return make_envelope(HS_RESP, self.hs_id + self.ephemeral)


@dataclass(frozen=True)
class HsFinish:
    hs_id: bytes
    sealed_proof: bytes

    def encode(self) -> bytes:
        return self.header() + self.sealed_proof

    def header(self) -> bytes:
        _check_len("hs_id", self.hs_id, HS_ID_LEN)
        _check_len("sealed_proof", self.sealed_proof, SEALED_PROOF_LEN)
        return make_envelope(HS_FINISH, self.hs_id)


@dataclass(frozen=True)
class Proof:
    """What each side proves inside the encrypted part of the handshake."""

    identity: bytes  # Ed25519 public key
    signature: bytes

    def encode(self) -> bytes:
        _check_len("identity", self.identity, KEY_LEN)
        _check_len("signature", self.signature, SIG_LEN)
        return self.identity + self.signature

    @classmethod
    def decode(cls, data: bytes) -> Proof:
        if len(data) != PROOF_LEN:
            raise ProtocolError("BAD_PROOF", f"proof of {len(data)} bytes, expected {PROOF_LEN}")
        return cls(bytes(data[:KEY_LEN]), bytes(data[KEY_LEN:]))


HandshakeMessage = HsInit | HsResp | HsFinish


def decode_handshake(datagram: bytes) -> HandshakeMessage:
    """One of the three handshake messages; ProtocolError for anything else."""
    kind, body = parse_envelope(datagram)
    if kind == HS_INIT:
        _expect(datagram, HS_INIT_LEN, "HS_INIT")
        if any(body[HS_ID_LEN + KEY_LEN:]):
            raise ProtocolError("BAD_PADDING", "HS_INIT padding is not zero")
        return HsInit(bytes(body[:HS_ID_LEN]), bytes(body[HS_ID_LEN:HS_ID_LEN + KEY_LEN]))
    if kind == HS_RESP:
        _expect(datagram, HS_RESP_LEN, "HS_RESP")
        return HsResp(bytes(body[:HS_ID_LEN]), bytes(body[HS_ID_LEN:HS_ID_LEN + KEY_LEN]),
                      bytes(body[HS_ID_LEN + KEY_LEN:]))
    if kind == HS_FINISH:
        _expect(datagram, HS_FINISH_LEN, "HS_FINISH")
        return HsFinish(bytes(body[:HS_ID_LEN]), bytes(body[HS_ID_LEN:]))
    raise ProtocolError("NOT_HANDSHAKE", f"envelope kind {kind:#x} is not a handshake message")


def sealed_header(session_id: bytes, counter: int) -> bytes:
    """The 19-byte SEALED header; it is also the AEAD additional data."""
    _check_len("session_id", session_id, SESSION_ID_LEN)
    return _SEALED_PREFIX + session_id + _COUNTER.pack(counter)


def sealed_prefix(session_id: bytes) -> bytes:
    """Header bytes 0..10, fixed for a session: prebuilt once, the counter appended per datagram."""
    _check_len("session_id", session_id, SESSION_ID_LEN)
    return _SEALED_PREFIX + session_id


def parse_sealed(datagram: bytes) -> tuple[bytes, int, bytes, bytes]:
    """(session_id, counter, header, ciphertext) of a SEALED datagram; ProtocolError otherwise."""
    if len(datagram) < MIN_SEALED_LEN:
        raise ProtocolError("SHORT", f"SEALED datagram of {len(datagram)} bytes is too short")
    if len(datagram) > MAX_DATAGRAM:
        raise ProtocolError("TOO_LONG", f"datagram of {len(datagram)} bytes exceeds {MAX_DATAGRAM}")
    if datagram[:HEADER_LEN] != _SEALED_PREFIX:
        raise ProtocolError("NOT_SEALED", "not a SEALED peer datagram")
    header = bytes(datagram[:SEALED_HEADER_LEN])
    session_id = header[HEADER_LEN:HEADER_LEN + SESSION_ID_LEN]
    (counter,) = _COUNTER.unpack_from(header, HEADER_LEN + SESSION_ID_LEN)
    return session_id, counter, header, bytes(datagram[SEALED_HEADER_LEN:])


def transcript(hs_id: bytes, e_i: bytes, e_r: bytes, nick_i: str, nick_r: str) -> bytes:
    """The handshake transcript that both signatures and all keys are bound to.

    Nicknames are the ones each side believes in (its own, and the roster's name for the
    other's address), so a handshake made for "alice -> bob" fails anywhere else.
    """
    _check_len("hs_id", hs_id, HS_ID_LEN)
    _check_len("e_i", e_i, KEY_LEN)
    _check_len("e_r", e_r, KEY_LEN)
    return (TRANSCRIPT_CONTEXT + hs_id + e_i + e_r + _nick_field(nick_i) + _nick_field(nick_r))


def resp_signed(transcript_hash: bytes, responder_key: bytes) -> bytes:
    """What the responder signs: its role, the transcript hash and its own identity key."""
    return RESP_SIG_CONTEXT + transcript_hash + responder_key


def init_signed(transcript_hash: bytes, responder_key: bytes, initiator_key: bytes) -> bytes:
    """What the initiator signs: its role, the transcript hash and both identity keys."""
    return INIT_SIG_CONTEXT + transcript_hash + responder_key + initiator_key


def _nick_field(nick: str) -> bytes:
    raw = nick.encode("utf-8")
    if len(raw) > MAX_NICK_BYTES:
        raise ValueError(f"nickname of {len(raw)} bytes is too long")
    return bytes((len(raw),)) + raw


def _expect(datagram: bytes, length: int, name: str) -> None:
    if len(datagram) != length:
        raise ProtocolError("BAD_LENGTH", f"{name} of {len(datagram)} bytes, expected {length}")


def _check_len(name: str, value: bytes, length: int) -> None:
    if len(value) != length:
        raise ValueError(f"{name} must be {length} bytes, got {len(value)}")
