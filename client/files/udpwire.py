"""The file-stream frame: what one SEALED datagram carries of a file on the UDP path (sans-IO).

A frame travels as the plaintext of a SEALED datagram (``models.peer_wire``), beside the
Messenger's frames (DATA 0x01, ACK 0x02, SKIP 0x03) and told apart by its first byte. Both ends
of a stream send the same layout: acknowledgement of what they received, and optionally one
segment of their own bytes. Integers are big-endian; docs/PROTOCOL.md section 8.6 has it byte by
byte::

    0       0x20     STREAM
    1..8    sid      u64  stream id: the first 8 bytes of the transfer's token
    9       flags    u8   0x01 DATA (seq + payload follow), 0x02 FIN (the segment ends the
                          sender's bytes; it carries no payload), 0x04 RESET (abort; nothing
                          else in the frame counts), 0x08 PROBE (answer with an ACK now)
    10..13  ts       u32  the sender's clock, microseconds modulo 2**32
    14..17  echo     u32  ``ts`` of the latest DATA received from the other side (0: none)
    18..25  ack      u64  every segment below ``ack`` arrived
    26..29  window   u32  segments the sender of this frame accepts from ``ack`` on
    30      n        u8   SACK ranges, 0 .. MAX_SACKS
    31..    n x (offset u32, length u16): segments ack+offset .. ack+offset+length-1 arrived
            too; offset >= 1, length >= 1
    then, with DATA or FIN: seq u64, payload (0 .. MAX_PAYLOAD bytes; none with FIN)

``decode`` raises only ``ProtocolError``.
"""

from __future__ import annotations

import struct
from typing import NamedTuple

from models.errors import ProtocolError
from models.frames import FILE_STREAM
from models.peer_wire import MAX_FRAME

STREAM = FILE_STREAM
FLAG_DATA = 0x01
FLAG_FIN = 0x02
FLAG_RESET = 0x04
FLAG_PROBE = 0x08
FLAGS = FLAG_DATA | FLAG_FIN | FLAG_RESET | FLAG_PROBE

HEADER = struct.Struct(">BQBIIQIB")
SACK = struct.Struct(">IH")
SEQ = struct.Struct(">Q")
HEADER_LEN = HEADER.size  # 31
MAX_SACKS = 16
DATA_SACKS = 2  # ranges a data segment carries at most: room kept in every segment
MAX_PAYLOAD = MAX_FRAME - HEADER_LEN - SEQ.size - DATA_SACKS * SACK.size  # 1114
U32 = 1 << 32
U64 = 1 << 64


class Segment(NamedTuple):    # a tuple: made once per datagram, on the hot path
    sid: int
    flags: int = 0
    ts: int = 0
    echo: int = 0
    ack: int = 0
    window: int = 0
    sacks: tuple[tuple[int, int], ...] = ()  # (first seq, seq after the last), absolute
    seq: int = 0
    payload: bytes = b""

    @property
    def has_seq(self) -> bool:
        return bool(self.flags & (FLAG_DATA | FLAG_FIN))


def data_prefix(sid: int, ts: int, echo: int, ack: int, window: int) -> bytes:
    """The header of a DATA segment without SACK ranges: the sender's hot path appends
    ``SEQ.pack(seq) + payload`` (the same bytes as ``encode``)."""
    return HEADER.pack(STREAM, sid, FLAG_DATA, ts, echo, ack, window, 0)


def encode(seg: Segment) -> bytes:
    if seg.flags & ~FLAGS:
        raise ValueError("unknown flags")
    sacks = seg.sacks
    limit = DATA_SACKS if seg.has_seq else MAX_SACKS
    if len(sacks) > limit:
        raise ValueError(f"{len(sacks)} SACK ranges; at most {limit}")
    if len(seg.payload) > MAX_PAYLOAD or seg.flags & FLAG_FIN and seg.payload:
        raise ValueError("bad payload")
    parts = [HEADER.pack(STREAM, seg.sid, seg.flags, seg.ts, seg.echo, seg.ack, seg.window,
                         len(sacks))]
    for first, end in sacks:
        parts.append(SACK.pack(first - seg.ack, end - first))
    if seg.has_seq:
        parts.append(SEQ.pack(seg.seq))
        parts.append(seg.payload)
    return b"".join(parts)


def decode(frame: bytes) -> Segment:
    n = len(frame)
    if n < HEADER_LEN or n > MAX_FRAME:
        raise ProtocolError("BAD_STREAM", f"stream frame of {n} bytes")
    kind, sid, flags, ts, echo, ack, window, count = HEADER.unpack_from(frame)
    if kind != STREAM:
        raise ProtocolError("BAD_STREAM", "not a stream frame")
    if flags & ~FLAGS:
        raise ProtocolError("BAD_STREAM", "unknown flags")
    if flags & FLAG_RESET:
        return Segment(sid, FLAG_RESET)
    has_seq = bool(flags & (FLAG_DATA | FLAG_FIN))
    if count > (DATA_SACKS if has_seq else MAX_SACKS):
        raise ProtocolError("BAD_STREAM", "too many SACK ranges")
    pos = HEADER_LEN
    if n < pos + count * SACK.size + (SEQ.size if has_seq else 0):
        raise ProtocolError("BAD_STREAM", "truncated")
    sacks = []
    for _ in range(count):
        off, length = SACK.unpack_from(frame, pos)
        pos += SACK.size
        if off < 1 or length < 1 or ack + off + length > U64:
            raise ProtocolError("BAD_STREAM", "bad SACK range")
        sacks.append((ack + off, ack + off + length))
    seq, payload = 0, b""
    if has_seq:
        (seq,) = SEQ.unpack_from(frame, pos)
        payload = bytes(frame[pos + SEQ.size:])
        if flags & FLAG_FIN and payload:
            raise ProtocolError("BAD_STREAM", "FIN with a payload")
    elif n != pos:
        raise ProtocolError("BAD_STREAM", "bytes after an acknowledgement")
    return Segment(sid, flags, ts, echo, ack, window, tuple(sacks), seq, payload)


def is_stream_frame(frame: bytes) -> bool:
    return len(frame) > 0 and frame[0] == STREAM


def stream_id(token: bytes) -> int:
    """The stream id of a transfer: the first 8 bytes of its (secret, random) token."""
    return int.from_bytes(token[:8], "big")
