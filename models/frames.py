"""Frames of the reliable peer-messaging layer (``client/peer/messenger.py``), sans-IO.

A frame is what one peer envelope carries (``models.peer_wire``: PLAIN body, or the plaintext of a
SEALED one); it never exceeds ``peer_wire.MAX_FRAME`` bytes. Integers are big-endian. Each
direction between two peers is one *stream*: the sender numbers its frames 0, 1, 2, ... under a
random 64-bit ``epoch`` that changes when the sender restarts or resets the stream.

    DATA 0x01   sender -> recipient: one fragment of one message. Triggers: an ACK back.
        0       0x01
        1..8    epoch    u64  the sender's stream id
        9..16   seq      u64  frame number within the stream
        17..18  lag      u16  seq - base, where base is the oldest frame the sender still wants
                              delivered: everything below base was acknowledged or given up, so a
                              recipient that waits for a seq < base skips it
        19      kind     u8   0 room, 1 private, 2 control
        20..23  msg_id   u32  the sender's message number (one per send, all recipients)
        24      index    u8   fragment number, 0 .. count-1
        25      count    u8   fragments in this message, 1 .. MAX_FRAGMENTS
        26..    chunk         0 .. MAX_CHUNK bytes of the message payload

    ACK 0x02    recipient -> sender: what arrived of stream ``epoch``. Triggers: retirement of
                acknowledged frames, an RTT sample, the next queued frames.
        0       0x02
        1..8    epoch    u64  echoed from the DATA
        9..16   cum      u64  every seq < cum has arrived (or was skipped); cum itself has not
        17      n        u8   number of ranges, 0 .. MAX_RANGES
        18..    n x (offset u16, length u16): seqs cum+offset .. cum+offset+length-1 arrived too;
                offsets >= 1, lengths >= 1, ranges ascending with a gap of at least one seq

    SKIP 0x03   sender -> recipient: the sender gave up frames below ``base`` (a message hit its
                deadline); the recipient stops waiting for them. Triggers: an ACK back.
        0       0x03
        1..8    epoch    u64
        9..16   base     u64

``decode`` raises only ``ProtocolError`` for anything it cannot accept.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from models.errors import ProtocolError
from models.peer_wire import MAX_FRAME

DATA = 0x01
ACK = 0x02
SKIP = 0x03
# Not a Messenger frame: file data on the UDP path (client/files/udpwire.py), which the engine
# hands to the file layer instead; docs/PROTOCOL.md section 8.6.
FILE_STREAM = 0x20

KIND_ROOM = 0
KIND_PRIVATE = 1
KIND_CONTROL = 2
KINDS = frozenset({KIND_ROOM, KIND_PRIVATE, KIND_CONTROL})

U64_LIMIT = 1 << 64
MSG_ID_LIMIT = 1 << 32
MAX_LAG = 0xFFFF

# DATA is split in two so a room message's fragment ("tail") is packed once for all recipients
# and only the 19-byte per-stream "head" is packed per recipient.
DATA_HEAD = struct.Struct(">BQQH")  # type, epoch, seq, lag
DATA_TAIL = struct.Struct(">BIBB")  # kind, msg_id, index, count
DATA_HEADER_LEN = DATA_HEAD.size + DATA_TAIL.size
MAX_CHUNK = MAX_FRAME - DATA_HEADER_LEN
MAX_FRAGMENTS = 255

ACK_HEAD = struct.Struct(">BQQB")  # type, epoch, cum, n
ACK_RANGE = struct.Struct(">HH")  # offset from cum, length
MAX_RANGES = 32

SKIP_FRAME = struct.Struct(">BQQ")  # type, epoch, base


@dataclass(frozen=True, slots=True)
class Data:
    epoch: int
    seq: int
    lag: int
    kind: int
    msg_id: int
    index: int
    count: int
    chunk: bytes

    @property
    def base(self) -> int:
        return self.seq - self.lag


@dataclass(frozen=True, slots=True)
class Ack:
    epoch: int
    cum: int
    ranges: tuple[tuple[int, int], ...] = ()  # absolute (start, end) half-open seq ranges


@dataclass(frozen=True, slots=True)
class Skip:
    epoch: int
    base: int


Frame = Data | Ack | Skip


def data_tail(kind: int, msg_id: int, index: int, count: int, chunk: bytes) -> bytes:
    """The part of a DATA frame that is the same for every recipient of a message."""
    if kind not in KINDS:
        raise ValueError(f"unknown message kind {kind}")
    if not 1 <= count <= MAX_FRAGMENTS or not 0 <= index < count:
        raise ValueError(f"bad fragment {index}/{count}")
    if len(chunk) > MAX_CHUNK:
        raise ValueError(f"chunk of {len(chunk)} bytes exceeds {MAX_CHUNK}")
    return DATA_TAIL.pack(kind, msg_id, index, count) + chunk


def data_frame(epoch: int, seq: int, lag: int, tail: bytes) -> bytes:
    """A whole DATA frame from its per-stream head fields and a prebuilt ``data_tail``."""
    return DATA_HEAD.pack(DATA, epoch, seq, lag) + tail


def encode(frame: Frame) -> bytes:
    """The bytes of one frame; ValueError if the frame itself is out of range (our bug)."""
    if isinstance(frame, Data):
        if frame.lag > frame.seq:
            raise ValueError("lag larger than seq")
        tail = data_tail(frame.kind, frame.msg_id, frame.index, frame.count, frame.chunk)
        return data_frame(frame.epoch, frame.seq, frame.lag, tail)
    if isinstance(frame, Ack):
        return encode_ack(frame.epoch, frame.cum, frame.ranges)
    if isinstance(frame, Skip):
        return SKIP_FRAME.pack(SKIP, frame.epoch, frame.base)
    raise TypeError(f"not a frame: {frame!r}")


def encode_ack(epoch: int, cum: int, ranges: tuple[tuple[int, int], ...] | list = ()) -> bytes:
    if len(ranges) > MAX_RANGES:
        raise ValueError(f"{len(ranges)} ranges exceed {MAX_RANGES}")
    parts = [ACK_HEAD.pack(ACK, epoch, cum, len(ranges))]
    prev_end = cum
    for start, end in ranges:
        if start <= prev_end or end <= start:
            raise ValueError(f"ranges must ascend with gaps above cum: {ranges!r}")
        parts.append(ACK_RANGE.pack(start - cum, end - start))
        prev_end = end
    return b"".join(parts)


def decode(data: bytes) -> Frame:
    """Parse one frame; ProtocolError for anything malformed."""
    if not data:
        raise ProtocolError("SHORT", "empty frame")
    if len(data) > MAX_FRAME:
        raise ProtocolError("TOO_LONG", f"frame of {len(data)} bytes exceeds {MAX_FRAME}")
    ftype = data[0]
    if ftype == DATA:
        return _decode_data(data)
    if ftype == ACK:
        return _decode_ack(data)
    if ftype == SKIP:
        if len(data) != SKIP_FRAME.size:
            raise ProtocolError("BAD_LENGTH", f"SKIP frame of {len(data)} bytes")
        _, epoch, base = SKIP_FRAME.unpack(data)
        return Skip(epoch, base)
    raise ProtocolError("BAD_FRAME_TYPE", f"unknown frame type {ftype:#x}")


def _decode_data(data: bytes) -> Data:
    if len(data) < DATA_HEADER_LEN:
        raise ProtocolError("SHORT", "DATA frame shorter than its header")
    _, epoch, seq, lag = DATA_HEAD.unpack_from(data)
    kind, msg_id, index, count = DATA_TAIL.unpack_from(data, DATA_HEAD.size)
    if lag > seq:
        raise ProtocolError("BAD_LAG", f"lag {lag} larger than seq {seq}")
    if kind not in KINDS:
        raise ProtocolError("BAD_KIND", f"unknown message kind {kind}")
    if count == 0 or index >= count:
        raise ProtocolError("BAD_FRAGMENT", f"fragment {index} of {count}")
    return Data(epoch, seq, lag, kind, msg_id, index, count, bytes(data[DATA_HEADER_LEN:]))


def _decode_ack(data: bytes) -> Ack:
    if len(data) < ACK_HEAD.size:
        raise ProtocolError("SHORT", "ACK frame shorter than its header")
    _, epoch, cum, n = ACK_HEAD.unpack_from(data)
    if n > MAX_RANGES:
        raise ProtocolError("TOO_MANY_RANGES", f"{n} ranges exceed {MAX_RANGES}")
    if len(data) != ACK_HEAD.size + n * ACK_RANGE.size:
        raise ProtocolError("BAD_LENGTH", f"ACK with {n} ranges has {len(data)} bytes")
    ranges = []
    prev_end = cum
    for offset, length in ACK_RANGE.iter_unpack(data[ACK_HEAD.size:]):
        start = cum + offset
        end = start + length
        if offset == 0 or length == 0 or start <= prev_end or end > U64_LIMIT:
            raise ProtocolError("BAD_RANGE", f"ACK range +{offset}/{length} out of order")
        ranges.append((start, end))
        prev_end = end
    return Ack(epoch, cum, tuple(ranges))
