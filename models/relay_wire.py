"""The directory's opt-in relay (``server.py --relay``): its messages, sans-IO, for both ends.
docs/PROTOCOL.md section 2 ("Relay extension") has them byte by byte.

Control messages use the framing of every directory datagram, ``keyword len COMMAND args``
(ASCII keyword, decimal ``len`` = bytes after the space that follows it, UTF-8, single spaces)::

    kw len RELAY? nickname target pad   c -> s  relay my datagrams to and from ``target``
    kw len RELAY target pair            s -> c  both asked: the pair id (16 hex digits)
    kw len RELAY- target reason         s -> c  not (yet): off | unknown | full | wait
    tkw len RELAY+ nickname             s -> target: ``nickname`` asks for a relay with you

``pad`` is one token of ``-`` making the request at least ``PAD_TO`` bytes plus the bytes of
the asker's nickname, so nothing the server sends because of a request (to the asker or to
the target) is larger than the request. Relayed data is binary and never read by the server::

    0xC0  pair id (8 bytes)  payload (one peer datagram, <= 1200 bytes)

sent by either client of the pair to the server's UDP port; the server sends the very same bytes
on to the other client of the pair. ``0xC0`` never starts UTF-8 text, nor a peer datagram
(``0xC1``). ``decode`` raises only ``ProtocolError``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from models.errors import ProtocolError
from models.nickname import MAX_NICK_LEN
from models.reach_wire import PAD_TO, check, frame, padded, split

DATA = 0xC0
PAIR_LEN = 8
DATA_HEADER = 1 + PAIR_LEN
MAX_DATA = DATA_HEADER + 1200
MAX_RELAY_DATAGRAM = 256
COMMANDS = (b"RELAY?", b"RELAY", b"RELAY-", b"RELAY+")
REASONS = ("off", "unknown", "full", "wait")
_PAD = re.compile(r"-{1,240}\Z")
_PAIR = re.compile(r"[0-9a-f]{16}\Z")


@dataclass(frozen=True)
class RelayRequest:
    keyword: str
    nickname: str
    target: str


@dataclass(frozen=True)
class RelayReady:
    keyword: str
    target: str
    pair: bytes


@dataclass(frozen=True)
class RelayRefused:
    keyword: str
    target: str
    reason: str


@dataclass(frozen=True)
class RelayInvite:
    keyword: str            # the target's keyword
    nickname: str           # who asks


Message = RelayRequest | RelayReady | RelayRefused | RelayInvite


def encode(msg: Message) -> bytes:
    if isinstance(msg, RelayRequest):
        check(msg.keyword, msg.nickname, msg.target)
        return padded(msg.keyword, f"RELAY? {msg.nickname} {msg.target}",
                      len(msg.nickname.encode("utf-8")))
    if isinstance(msg, RelayReady):
        check(msg.keyword, msg.target)
        if len(msg.pair) != PAIR_LEN:
            raise ValueError("pair id must be 8 bytes")
        return frame(msg.keyword, f"RELAY {msg.target} {msg.pair.hex()}")
    if isinstance(msg, RelayRefused):
        check(msg.keyword, msg.target)
        if msg.reason not in REASONS:
            raise ValueError(f"bad reason {msg.reason!r}")
        return frame(msg.keyword, f"RELAY- {msg.target} {msg.reason}")
    if isinstance(msg, RelayInvite):
        check(msg.keyword, msg.nickname)
        return frame(msg.keyword, f"RELAY+ {msg.nickname}")
    raise ValueError(f"not a relay message: {msg!r}")


def is_relay(data: bytes) -> bool:
    """Cheap pre-check: does this datagram carry one of our commands? (then ``decode`` it)"""
    parts = data[:80].split(b" ", 3)
    return len(parts) >= 3 and parts[2] in COMMANDS


def is_data(data: bytes) -> bool:
    return len(data) > DATA_HEADER and data[0] == DATA


def wrap(pair: bytes, payload: bytes) -> bytes:
    return bytes((DATA,)) + pair + payload


def _bad(text: str) -> ProtocolError:
    return ProtocolError("BAD_RELAY", text)


def _nick(token: str) -> str:
    if not token or len(token) > MAX_NICK_LEN or not token.isprintable():
        raise _bad("bad nickname")
    return token


def decode(data: bytes) -> Message:
    keyword, tokens = split(data, "BAD_RELAY", MAX_RELAY_DATAGRAM)
    command, args = tokens[0], tokens[1:]
    if command == "RELAY?" and len(args) == 3 and _PAD.match(args[2]):
        nick = _nick(args[0])
        if len(data) < PAD_TO + len(nick.encode("utf-8")):
            raise _bad("request shorter than the padding rule")
        return RelayRequest(keyword, nick, _nick(args[1]))
    if command == "RELAY" and len(args) == 2 and _PAIR.match(args[1]):
        return RelayReady(keyword, _nick(args[0]), bytes.fromhex(args[1]))
    if command == "RELAY-" and len(args) == 2 and args[1] in REASONS:
        return RelayRefused(keyword, _nick(args[0]), args[1])
    if command == "RELAY+" and len(args) == 1:
        return RelayInvite(keyword, _nick(args[0]))
    raise _bad(f"bad {command[:8]!r} message")
