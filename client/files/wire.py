"""File-transfer wire formats, sans-IO: control messages and the fixed parts of the TCP stream.

Control messages travel inside the peers' encrypted, reliable, ordered channel
(``send_control(peer, payload)`` / ``on_control``); every one starts with ``b"F"``. The 16-byte
``token`` is the sender's random name for one offered file; every message about that file
carries it. All integers are big-endian. Full reference: ``docs/PROTOCOL.md section 8``.

====== ==== ============ ==================================================================
byte 1 name direction    rest of the payload, after ``"F" type token(16)``
====== ==== ============ ==================================================================
0x01   OFFR sender->rcv  size u64, mtime_ns u64, port u16 (sender's TCP listener), name_len
                         u16, name UTF-8 (1..1024 bytes; sanitized by the receiver)
0x02   ACPT rcv->sender  (nothing) -- accepted; the receiver now connects to the sender's port
0x03   DECL rcv->sender  reason_len u8, reason UTF-8 -- declined, or stopped after accepting
0x04   CANC sender->rcv  reason_len u8, reason UTF-8 -- withdrawn / expired / stopped
0x05   REVR rcv->sender  port u16 -- the receiver could not connect; it listens, sender connects
0x06   UDPP sender->rcv  (nothing) -- the sender could not connect to that port either: the
                         receiver opens the stream on the peers' UDP path (``udpwire``)
====== ==== ============ ==================================================================

The TCP stream (either side may have connected; the roles are fixed by the transfer)::

    connector -> listener   PREAMBLE  "OLCF" ver(1)=1 role(1) token(16)        22 bytes
                            (role b"R": the receiver connected, b"S": the sender connected)
    receiver  -> sender     ss_header_r2s(24) + push_r2s(HELLO)               24+56+17 bytes
                            HELLO = challenge(16) offset u64 prefix_blake2b(32)
    sender    -> receiver   ss_header_s2r(24), then frames: len u32 + ciphertext
                            first frame: START = challenge(16) start_offset u64 (TAG_MESSAGE)
                            data frames: file bytes, <= CHUNK each (TAG_MESSAGE)
                            last frame:  END = end_offset u64 (TAG_FINAL)
    receiver  -> sender     push_r2s(b"DONE", TAG_FINAL) once the file is in place   21 bytes
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from models.errors import ProtocolError

PREFIX = b"F"
OFFER = 0x01
ACCEPT = 0x02
DECLINE = 0x03
CANCEL = 0x04
REVERSE = 0x05
VIA_UDP = 0x06

TOKEN_LEN = 16
MAX_NAME_BYTES = 1024
MAX_REASON_BYTES = 200
MAX_CONTROL = 4096
MAX_SIZE = (1 << 63) - 1

# --- control messages -----------------------------------------------------------------------


@dataclass(frozen=True)
class Offer:
    token: bytes
    name: str
    size: int
    mtime_ns: int
    port: int


@dataclass(frozen=True)
class Accept:
    token: bytes


@dataclass(frozen=True)
class Decline:
    token: bytes
    reason: str = ""


@dataclass(frozen=True)
class Cancel:
    token: bytes
    reason: str = ""


@dataclass(frozen=True)
class Reverse:
    token: bytes
    port: int


@dataclass(frozen=True)
class ViaUdp:
    token: bytes


Control = Offer | Accept | Decline | Cancel | Reverse | ViaUdp

_OFFER_FIXED = struct.Struct(">QQHH")


def _check_token(token: bytes) -> None:
    if len(token) != TOKEN_LEN:
        raise ValueError("token must be 16 bytes")


def _reason_bytes(reason: str) -> bytes:
    raw = reason.encode("utf-8")[:MAX_REASON_BYTES]
    return raw.decode("utf-8", "ignore").encode("utf-8")   # never cut a character in half


def encode_control(msg: Control) -> bytes:
    """The payload for ``send_control``; ValueError for a message we must never send."""
    _check_token(msg.token)
    head = PREFIX + bytes((_TYPE_OF[type(msg)],)) + msg.token
    if isinstance(msg, Offer):
        name = msg.name.encode("utf-8")
        if not 1 <= len(name) <= MAX_NAME_BYTES:
            raise ValueError("offer name must be 1..1024 UTF-8 bytes")
        if not 0 <= msg.size <= MAX_SIZE or not 0 <= msg.mtime_ns <= MAX_SIZE:
            raise ValueError("size/mtime out of range")
        if not 0 <= msg.port <= 0xFFFF:
            raise ValueError("port out of range")
        return head + _OFFER_FIXED.pack(msg.size, msg.mtime_ns, msg.port, len(name)) + name
    if isinstance(msg, Accept | ViaUdp):
        return head
    if isinstance(msg, Decline | Cancel):
        reason = _reason_bytes(msg.reason)
        return head + bytes((len(reason),)) + reason
    if isinstance(msg, Reverse):
        if not 0 < msg.port <= 0xFFFF:
            raise ValueError("port out of range")
        return head + struct.pack(">H", msg.port)
    raise TypeError(f"not a control message: {msg!r}")


_TYPE_OF = {Offer: OFFER, Accept: ACCEPT, Decline: DECLINE, Cancel: CANCEL, Reverse: REVERSE,
            ViaUdp: VIA_UDP}


def _utf8(raw: bytes, what: str) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ProtocolError("BAD_UTF8", f"{what} is not UTF-8") from exc


def decode_control(payload: bytes) -> Control:
    """Parse one control payload; ProtocolError for anything malformed."""
    if len(payload) > MAX_CONTROL:
        raise ProtocolError("TOO_LONG", "file control message over 4 KiB")
    if len(payload) < 2 + TOKEN_LEN or payload[:1] != PREFIX:
        raise ProtocolError("SHORT", "not a file control message")
    kind = payload[1]
    token = bytes(payload[2:2 + TOKEN_LEN])
    rest = payload[2 + TOKEN_LEN:]
    if kind == OFFER:
        if len(rest) < _OFFER_FIXED.size:
            raise ProtocolError("SHORT", "truncated offer")
        size, mtime_ns, port, name_len = _OFFER_FIXED.unpack_from(rest)
        name_raw = rest[_OFFER_FIXED.size:]
        if len(name_raw) != name_len or not 1 <= name_len <= MAX_NAME_BYTES:
            raise ProtocolError("BAD_NAME", "offer name length mismatch")
        if size > MAX_SIZE or mtime_ns > MAX_SIZE:
            raise ProtocolError("BAD_SIZE", "offer size out of range")
        return Offer(token, _utf8(bytes(name_raw), "name"), size, mtime_ns, port)
    if kind in (ACCEPT, VIA_UDP):
        if rest:
            raise ProtocolError("TRAILING", "bytes after accept")
        return Accept(token) if kind == ACCEPT else ViaUdp(token)
    if kind in (DECLINE, CANCEL):
        if len(rest) < 1 or len(rest) != 1 + rest[0] or rest[0] > MAX_REASON_BYTES:
            raise ProtocolError("BAD_REASON", "reason length mismatch")
        reason = _utf8(bytes(rest[1:]), "reason")
        return Decline(token, reason) if kind == DECLINE else Cancel(token, reason)
    if kind == REVERSE:
        if len(rest) != 2:
            raise ProtocolError("BAD_PORT", "reverse needs a 2-byte port")
        (port,) = struct.unpack(">H", rest)
        if port == 0:
            raise ProtocolError("BAD_PORT", "port 0")
        return Reverse(token, port)
    raise ProtocolError("BAD_TYPE", f"unknown file control type {kind:#x}")


# --- fixed parts of the TCP stream ----------------------------------------------------------

MAGIC = b"OLCF"
STREAM_VERSION = 1
ROLE_RECEIVER = b"R"
ROLE_SENDER = b"S"
PREAMBLE_LEN = 4 + 1 + 1 + TOKEN_LEN
CHALLENGE_LEN = 16
HASH_LEN = 32
HELLO_LEN = CHALLENGE_LEN + 8 + HASH_LEN
START_LEN = CHALLENGE_LEN + 8
END_LEN = 8
DONE = b"DONE"
FRAME_HEADER = struct.Struct(">I")


def encode_preamble(role: bytes, token: bytes) -> bytes:
    _check_token(token)
    if role not in (ROLE_RECEIVER, ROLE_SENDER):
        raise ValueError("role must be b'R' or b'S'")
    return MAGIC + bytes((STREAM_VERSION,)) + role + token


def decode_preamble(data: bytes) -> tuple[bytes, bytes]:
    """(role, token) from the 22-byte preamble; ProtocolError otherwise."""
    if len(data) != PREAMBLE_LEN:
        raise ProtocolError("SHORT", "preamble must be 22 bytes")
    if data[:4] != MAGIC:
        raise ProtocolError("BAD_MAGIC", "not an OpenLChat file stream")
    if data[4] != STREAM_VERSION:
        raise ProtocolError("BAD_VERSION", f"unsupported file stream version {data[4]}")
    role = bytes(data[5:6])
    if role not in (ROLE_RECEIVER, ROLE_SENDER):
        raise ProtocolError("BAD_ROLE", "unknown role")
    return role, bytes(data[6:])


@dataclass(frozen=True)
class Hello:
    """What the receiver asks for: resume at ``offset`` if its first ``offset`` bytes hash to
    ``prefix_hash`` at the sender too (all zeros when offset is 0)."""
    challenge: bytes
    offset: int
    prefix_hash: bytes


def encode_hello(h: Hello) -> bytes:
    if len(h.challenge) != CHALLENGE_LEN or len(h.prefix_hash) != HASH_LEN:
        raise ValueError("bad challenge/hash length")
    return h.challenge + struct.pack(">Q", h.offset) + h.prefix_hash


def decode_hello(data: bytes) -> Hello:
    if len(data) != HELLO_LEN:
        raise ProtocolError("BAD_HELLO", "hello must be 56 bytes")
    (offset,) = struct.unpack_from(">Q", data, CHALLENGE_LEN)
    if offset > MAX_SIZE:
        raise ProtocolError("BAD_HELLO", "offset out of range")
    return Hello(bytes(data[:CHALLENGE_LEN]), offset, bytes(data[CHALLENGE_LEN + 8:]))


def encode_start(challenge: bytes, start_offset: int) -> bytes:
    if len(challenge) != CHALLENGE_LEN:
        raise ValueError("bad challenge length")
    return challenge + struct.pack(">Q", start_offset)


def decode_start(data: bytes) -> tuple[bytes, int]:
    if len(data) != START_LEN:
        raise ProtocolError("BAD_START", "start must be 24 bytes")
    (offset,) = struct.unpack_from(">Q", data, CHALLENGE_LEN)
    return bytes(data[:CHALLENGE_LEN]), offset


def encode_end(end_offset: int) -> bytes:
    return struct.pack(">Q", end_offset)


def decode_end(data: bytes) -> int:
    if len(data) != END_LEN:
        raise ProtocolError("BAD_END", "end must be 8 bytes")
    return struct.unpack(">Q", data)[0]
