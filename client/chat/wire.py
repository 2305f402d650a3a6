"""Chat control messages between peers, sans-IO (issue 11). Reference: ``docs/PROTOCOL.md`` s. 9.

They travel as Messenger ``KIND_CONTROL`` payloads inside the encrypted session, so the session
already tells us *which peer* sent them; every payload starts with ``b"C"`` (0x43; files use
``b"F"``), then a type byte. Integers are big-endian; ``str8`` = length u8 + UTF-8,
``text16`` = length u16 + UTF-8, ``line16`` = length u16 + an encoded ``SignedLine``.

==== ============ =========== =====================================================================
type name         direction   after ``"C" type``
==== ============ =========== =====================================================================
0x01 JOIN         member->all channel str8 -- the sender joined (its own session: no signature)
0x02 PART         member->all channel str8, reason str8
0x03 STATE        peer->peer  away u8, away_text str8, n u8 x channel str8, m u8 x topic line16
                              -- sent to each peer we meet: OUR channels, their topics, our away
0x04 TOPIC        member->all line16 (kind TOPIC; ``clock`` orders topics, last writer wins)
0x05 AWAY         peer->all   away u8, text str8 (away 0: back)
0x06 RENAME       peer->all   new_nick str8 -- sent from the old nickname's own session
0x07 LINE         author->tgt line16 (kind MESSAGE or ACTION; target a channel or our nickname)
0x08 RECEIPT      rcpt->author n u8 (1..64) x msg_id(16) -- private lines stored by the recipient
0x09 BACKFILL_REQ newcomer->m channel str8, since_ms u64, limit u16 (1..200)
0x0A BACKFILL     member->new channel str8, last u8, n u16 x line16 (signed lines, verbatim)
0x0B AUTO_REPLY   rcpt->author msg_id(16), text str8 -- "I am away: text", once per away
==== ============ =========== =====================================================================

A ``SignedLine`` is signed by its author's Ed25519 identity key over ``"OLChat-line-v1\\0"`` +
every field before the signature, so a member can replay history but not forge or alter it:

    author str8 (nickname), author_key(32), target str8, msg_id(16), ts_ms u64, clock u64,
    kind u8 (1 MESSAGE, 2 ACTION, 3 TOPIC), text text16, signature(64)

``decode`` raises only ``ProtocolError``; ``encode`` raises ``ValueError`` for what we must never
send.
"""

from __future__ import annotations

import enum
import os
import struct
import unicodedata
from dataclasses import dataclass

import nacl.exceptions
import nacl.signing

from client.chat import names
from models import nickname
from models.errors import ProtocolError

PREFIX = b"C"
MAX_PAYLOAD = 32 * 1024  # one control payload (the Messenger allows 64 KiB)
MAX_TEXT = 4000  # UTF-8 bytes of one chat line
MAX_TOPIC = 300  # UTF-8 bytes of a topic
MAX_SHORT = 200  # away text, part reason
MAX_STATE_CHANNELS = 32  # = channels one peer may be in
MAX_RECEIPTS = 64
MAX_BACKFILL = 200
ID_LEN = 16
KEY_LEN = 32
SIG_LEN = 64
_SIGN_CONTEXT = b"OLChat-line-v1\x00"

JOIN, PART, STATE, TOPIC, AWAY, RENAME, LINE, RECEIPT, BACKFILL_REQ, BACKFILL, AUTO_REPLY = (
    range(1, 12))


class Kind(enum.IntEnum):
    MESSAGE = 1
    ACTION = 2
    TOPIC = 3


class Verdict(enum.Enum):
    OK = "ok"
    BAD_SIGNATURE = "bad signature"
    WRONG_KEY = "not the author's key"
    UNKNOWN_KEY = "author's key unknown"


@dataclass(frozen=True)
class SignedLine:
    author: str
    author_key: bytes
    target: str  # "#channel" or the recipient's nickname
    msg_id: bytes
    ts_ms: int
    clock: int
    kind: Kind
    text: str
    signature: bytes

    def signed_part(self) -> bytes:
        return _line_body(self.author, self.author_key, self.target, self.msg_id, self.ts_ms,
                          self.clock, self.kind, self.text)

    @property
    def is_channel(self) -> bool:
        return self.target.startswith(names.PREFIX)


@dataclass(frozen=True)
class Join:
    channel: str


@dataclass(frozen=True)
class Part:
    channel: str
    reason: str = ""


@dataclass(frozen=True)
class State:
    away: bool
    away_text: str
    channels: tuple[str, ...]
    topics: tuple[SignedLine, ...] = ()


@dataclass(frozen=True)
class Topic:
    line: SignedLine


@dataclass(frozen=True)
class Away:
    away: bool
    text: str = ""


@dataclass(frozen=True)
class Rename:
    new_nick: str


@dataclass(frozen=True)
class Line:
    line: SignedLine


@dataclass(frozen=True)
class Receipt:
    msg_ids: tuple[bytes, ...]


@dataclass(frozen=True)
class BackfillRequest:
    channel: str
    since_ms: int
    limit: int


@dataclass(frozen=True)
class Backfill:
    channel: str
    last: bool
    lines: tuple[SignedLine, ...]


@dataclass(frozen=True)
class AutoReply:
    msg_id: bytes
    text: str


Message = (Join | Part | State | Topic | Away | Rename | Line | Receipt | BackfillRequest
           | Backfill | AutoReply)

# --- signing ---------------------------------------------------------------------------------


def new_msg_id() -> bytes:
    return os.urandom(ID_LEN)


def sign_line(key: nacl.signing.SigningKey, *, author: str, target: str, kind: Kind, text: str,
              ts_ms: int, clock: int = 0, msg_id: bytes | None = None) -> SignedLine:
    """A line signed by ``key`` (our identity key). ``ValueError`` if a field is out of bounds."""
    msg_id = new_msg_id() if msg_id is None else msg_id
    pub = bytes(key.verify_key)
    body = _line_body(author, pub, target, msg_id, ts_ms, clock, kind, text)
    line = SignedLine(author, pub, target, msg_id, ts_ms, clock, Kind(kind), text,
                      key.sign(_SIGN_CONTEXT + body).signature)
    _check_line(line, ValueError)
    return line


def verify_line(line: SignedLine, known_key: bytes | None) -> Verdict:
    """Is ``line`` really by its author? ``known_key``: the author's pinned identity key.

    A valid signature under a key we cannot tie to the author is ``UNKNOWN_KEY``: callers drop
    it (anyone can sign with a key of their own and write any author name).
    """
    try:
        nacl.signing.VerifyKey(line.author_key).verify(_SIGN_CONTEXT + line.signed_part(),
                                                       line.signature)
    except (nacl.exceptions.CryptoError, ValueError, TypeError):
        return Verdict.BAD_SIGNATURE
    if known_key is None:
        return Verdict.UNKNOWN_KEY
    return Verdict.OK if bytes(known_key) == line.author_key else Verdict.WRONG_KEY


# --- encoding --------------------------------------------------------------------------------


def _str8(value: str, limit: int = 255) -> bytes:
    raw = value.encode("utf-8")
    if len(raw) > min(limit, 255):
        raise ValueError(f"text over {limit} bytes")
    return bytes((len(raw),)) + raw


def _text16(value: str, limit: int) -> bytes:
    raw = value.encode("utf-8")
    if len(raw) > limit:
        raise ValueError(f"text over {limit} bytes")
    return struct.pack(">H", len(raw)) + raw


def _line_body(author: str, key: bytes, target: str, msg_id: bytes, ts_ms: int, clock: int,
               kind: int, text: str) -> bytes:
    if len(key) != KEY_LEN or len(msg_id) != ID_LEN:
        raise ValueError("bad key or message id length")
    if not (0 <= ts_ms < 1 << 64 and 0 <= clock < 1 << 64):
        raise ValueError("timestamp or clock out of range")
    return (_str8(author) + key + _str8(target) + msg_id + struct.pack(">QQB", ts_ms, clock, kind)
            + _text16(text, MAX_TEXT))


def encode_line(line: SignedLine) -> bytes:
    return line.signed_part() + line.signature


def _line16(line: SignedLine) -> bytes:
    raw = encode_line(line)
    return struct.pack(">H", len(raw)) + raw


def encode(msg: Message) -> bytes:
    """The control payload for ``msg``; ``ValueError`` for a message we must never send."""
    body = _encode_body(msg)
    payload = PREFIX + body
    if len(payload) > MAX_PAYLOAD:
        raise ValueError("chat control message over 32 KiB")
    decode(payload)  # what we send must pass our own checks (clear error here, not at the peer)
    return payload


def _encode_body(msg: Message) -> bytes:
    if isinstance(msg, Join):
        return bytes((JOIN,)) + _str8(msg.channel)
    if isinstance(msg, Part):
        return bytes((PART,)) + _str8(msg.channel) + _str8(msg.reason, MAX_SHORT)
    if isinstance(msg, State):
        if len(msg.channels) > MAX_STATE_CHANNELS or len(msg.topics) > MAX_STATE_CHANNELS:
            raise ValueError("too many channels in a state")
        return (bytes((STATE, int(msg.away))) + _str8(msg.away_text, MAX_SHORT)
                + bytes((len(msg.channels),)) + b"".join(_str8(c) for c in msg.channels)
                + bytes((len(msg.topics),)) + b"".join(_line16(t) for t in msg.topics))
    if isinstance(msg, Topic | Line):
        return bytes((TOPIC if isinstance(msg, Topic) else LINE,)) + _line16(msg.line)
    if isinstance(msg, Away):
        return bytes((AWAY, int(msg.away))) + _str8(msg.text, MAX_SHORT)
    if isinstance(msg, Rename):
        return bytes((RENAME,)) + _str8(msg.new_nick)
    if isinstance(msg, Receipt):
        if not 1 <= len(msg.msg_ids) <= MAX_RECEIPTS:
            raise ValueError("a receipt holds 1..64 message ids")
        return bytes((RECEIPT, len(msg.msg_ids))) + b"".join(msg.msg_ids)
    if isinstance(msg, BackfillRequest):
        if not 1 <= msg.limit <= MAX_BACKFILL:
            raise ValueError("backfill limit out of range")
        return (bytes((BACKFILL_REQ,)) + _str8(msg.channel)
                + struct.pack(">QH", msg.since_ms, msg.limit))
    if isinstance(msg, Backfill):
        return (bytes((BACKFILL,)) + _str8(msg.channel) + bytes((int(msg.last),))
                + struct.pack(">H", len(msg.lines)) + b"".join(_line16(x) for x in msg.lines))
    if isinstance(msg, AutoReply):
        return bytes((AUTO_REPLY,)) + msg.msg_id + _str8(msg.text, MAX_SHORT)
    raise TypeError(f"not a chat message: {msg!r}")


# --- decoding --------------------------------------------------------------------------------


class _Reader:
    __slots__ = ("data", "pos")

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def take(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            raise ProtocolError("SHORT", "chat message truncated")
        out = self.data[self.pos:self.pos + n]
        self.pos += n
        return out

    def u8(self) -> int:
        return self.take(1)[0]

    def u16(self) -> int:
        return int.from_bytes(self.take(2), "big")

    def u64(self) -> int:
        return int.from_bytes(self.take(8), "big")

    def text(self, n: int, limit: int, *, multiline: bool = False) -> str:
        if n > limit:
            raise ProtocolError("TOO_LONG", f"text over {limit} bytes")
        try:
            value = self.take(n).decode("utf-8")
        except UnicodeDecodeError:
            raise ProtocolError("BAD_UTF8", "text is not UTF-8") from None
        allowed = "\n\t" if multiline else ""
        for ch in value:
            if ch not in allowed and unicodedata.category(ch) in ("Cc", "Cs"):
                raise ProtocolError("BAD_TEXT", f"control character U+{ord(ch):04X} in text")
        return value

    def str8(self, limit: int = 255) -> str:
        return self.text(self.u8(), limit)

    def flag(self) -> bool:
        value = self.u8()
        if value > 1:
            raise ProtocolError("BAD_FLAG", "flag byte is not 0 or 1")
        return bool(value)

    def end(self) -> None:
        if self.pos != len(self.data):
            raise ProtocolError("TRAILING", "bytes after the chat message")


def _channel(value: str) -> str:
    names.normalize(value)
    return value


def _nick(value: str) -> str:
    nickname.normalize(value)
    return value


def _target(value: str) -> str:
    return _channel(value) if value.startswith(names.PREFIX) else _nick(value)


def _check_line(line: SignedLine, error: type[Exception]) -> None:
    """The rules beyond the byte layout (shared by ``sign_line`` and ``decode_line``)."""
    try:
        _nick(line.author)
        _target(line.target)
    except ProtocolError as exc:
        raise error(exc.text) from None
    if line.kind == Kind.TOPIC and (not line.is_channel or "\n" in line.text
                                    or len(line.text.encode("utf-8")) > MAX_TOPIC):
        raise error("a topic is one line of at most 300 bytes, for a channel")
    if line.kind != Kind.TOPIC and not line.text:
        raise error("empty chat line")


def _read_line(r: _Reader) -> SignedLine:
    author = r.str8()
    key = r.take(KEY_LEN)
    target = r.str8()
    msg_id = r.take(ID_LEN)
    ts_ms, clock = r.u64(), r.u64()
    kind_raw = r.u8()
    if kind_raw not in Kind._value2member_map_:
        raise ProtocolError("BAD_KIND", f"unknown line kind {kind_raw}")
    text = r.text(r.u16(), MAX_TEXT, multiline=True)
    line = SignedLine(author, key, target, msg_id, ts_ms, clock, Kind(kind_raw), text,
                      r.take(SIG_LEN))
    _check_line(line, _bad_line)
    return line


def _bad_line(text: str) -> ProtocolError:
    return ProtocolError("BAD_LINE", text)


def decode_line(raw: bytes) -> SignedLine:
    """One encoded ``SignedLine`` (as stored in history); ``ProtocolError`` if malformed."""
    r = _Reader(bytes(raw))
    line = _read_line(r)
    r.end()
    return line


def _line16_in(r: _Reader) -> SignedLine:
    return decode_line(r.take(r.u16()))


def decode(payload: bytes) -> Message:
    """Parse one chat control payload; ``ProtocolError`` for anything malformed."""
    if len(payload) > MAX_PAYLOAD:
        raise ProtocolError("TOO_LONG", "chat control message over 32 KiB")
    if len(payload) < 2 or payload[:1] != PREFIX:
        raise ProtocolError("SHORT", "not a chat control message")
    kind = payload[1]
    r = _Reader(bytes(payload[2:]))
    msg: Message
    if kind == JOIN:
        msg = Join(_channel(r.str8()))
    elif kind == PART:
        msg = Part(_channel(r.str8()), r.str8(MAX_SHORT))
    elif kind == STATE:
        away, away_text = r.flag(), r.str8(MAX_SHORT)
        channels = tuple(_channel(r.str8()) for _ in range(_count(r.u8(), MAX_STATE_CHANNELS)))
        topics = tuple(_topic(_line16_in(r)) for _ in range(_count(r.u8(), MAX_STATE_CHANNELS)))
        msg = State(away, away_text, channels, topics)
    elif kind == TOPIC:
        msg = Topic(_topic(_line16_in(r)))
    elif kind == AWAY:
        msg = Away(r.flag(), r.str8(MAX_SHORT))
    elif kind == RENAME:
        msg = Rename(_nick(r.str8()))
    elif kind == LINE:
        line = _line16_in(r)
        if line.kind == Kind.TOPIC:
            raise ProtocolError("BAD_KIND", "a topic sent as a chat line")
        msg = Line(line)
    elif kind == RECEIPT:
        msg = Receipt(tuple(r.take(ID_LEN) for _ in range(_count(r.u8(), MAX_RECEIPTS, 1))))
    elif kind == BACKFILL_REQ:
        channel, since, limit = _channel(r.str8()), r.u64(), r.u16()
        msg = BackfillRequest(channel, since, _count(limit, MAX_BACKFILL, 1))
    elif kind == BACKFILL:
        channel, last = _channel(r.str8()), r.flag()
        lines = tuple(_line16_in(r) for _ in range(_count(r.u16(), MAX_BACKFILL)))
        msg = Backfill(channel, last, lines)
    elif kind == AUTO_REPLY:
        msg = AutoReply(r.take(ID_LEN), r.str8(MAX_SHORT))
    else:
        raise ProtocolError("BAD_TYPE", f"unknown chat control type {kind:#x}")
    r.end()
    return msg


def _count(n: int, limit: int, low: int = 0) -> int:
    if not low <= n <= limit:
        raise ProtocolError("BAD_COUNT", f"count {n} outside {low}..{limit}")
    return n


def _topic(line: SignedLine) -> SignedLine:
    if line.kind != Kind.TOPIC:
        raise ProtocolError("BAD_KIND", "not a topic line")
    return line
