"""The directory's reachability extension on the UDP channel: WHERE?/HERE, PROBE?/PROBE and
NUDGE (issue 10). Sans-IO codec for both ends; docs/PROTOCOL.md section 2 has them byte by byte.

Same framing as every directory datagram, ``keyword len COMMAND args`` (ASCII keyword, decimal
``len`` = bytes after the space that follows it, UTF-8 text, single spaces)::

    kw len WHERE? nickname pad           c -> s  our public address, please
    kw len HERE ip port                  s -> c  the address the server sees (and lists) for us
    kw len PROBE? nickname pad           c -> s  send an unsolicited datagram to my address
    kw len PROBE                         s -> c  from the server's probe port (another port)
    kw len NUDGE nickname target pad     c -> s  ask ``target`` to punch toward me
    tkw len NUDGE nickname ip port       s -> target: ``nickname`` (at ``ip port``) wants a path

``pad`` is one token of ``-`` characters making the request at least ``PAD_TO`` (96) bytes in
all (a NUDGE request: ``PAD_TO`` plus the bytes of the asker's nickname), so nothing the server
sends because of a request is ever larger than the request (the server also checks that). A
request is authenticated like PING: the keyword must be registered under that nickname.
``decode`` raises only ``ProtocolError``; a datagram of the base protocol raises
``ProtocolError("NOT_REACH")`` so callers can hand it on.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

from models.errors import ProtocolError
from models.nickname import MAX_NICK_LEN

PAD_TO = 96  # > the longest HERE: 24-byte keyword, IPv4-mapped IPv6 literal, port
MAX_REACH_DATAGRAM = 256
COMMANDS = (b"WHERE?", b"HERE", b"PROBE?", b"PROBE", b"NUDGE")
_KEYWORD = re.compile(r"[A-Za-z0-9_-]{1,24}\Z")
_PAD = re.compile(r"-{1,240}\Z")
Addr = tuple[str, int]


@dataclass(frozen=True)
class Where:
    keyword: str
    nickname: str


@dataclass(frozen=True)
class Here:
    keyword: str
    addr: Addr


@dataclass(frozen=True)
class ProbeRequest:
    keyword: str
    nickname: str


@dataclass(frozen=True)
class Probe:
    keyword: str


@dataclass(frozen=True)
class NudgeRequest:
    keyword: str
    nickname: str
    target: str


@dataclass(frozen=True)
class Nudge:
    keyword: str          # the target's keyword
    nickname: str         # who asks for a path
    addr: Addr            # where the directory lists the asker


Message = Where | Here | ProbeRequest | Probe | NudgeRequest | Nudge
REQUESTS = (Where, ProbeRequest, NudgeRequest)


def frame(keyword: str, body: str) -> bytes:
    """``keyword len body``: the framing of every directory datagram (also the relay's)."""
    raw = body.encode("utf-8")
    return b"%s %d %s" % (keyword.encode("ascii"), len(raw), raw)


def padded(keyword: str, body: str, extra: int = 0) -> bytes:
    """``frame`` of ``body`` plus a ``-`` pad token: at least ``PAD_TO + extra`` bytes."""
    plain = frame(keyword, body + " -")
    short = PAD_TO + extra - len(plain)
    return frame(keyword, body + " " + "-" * (1 + max(0, short)))


def request_body(msg: Where | ProbeRequest | NudgeRequest) -> bytes:
    """The ``COMMAND args pad`` part of a request (``encode`` without ``keyword len``), for a
    caller that frames it itself (the MAC extension appends its tail to it)."""
    return encode(msg).split(b" ", 2)[2]


def check(keyword: str, *nicks: str) -> None:
    """ValueError for a keyword or nickname we must never send."""
    if not _KEYWORD.match(keyword):
        raise ValueError(f"bad keyword {keyword!r}")
    for nick in nicks:
        if not nick or " " in nick or len(nick) > MAX_NICK_LEN or not nick.isprintable():
            raise ValueError(f"bad nickname {nick!r}")


def encode(msg: Message) -> bytes:
    if isinstance(msg, Where):
        check(msg.keyword, msg.nickname)
        return padded(msg.keyword, f"WHERE? {msg.nickname}")
    if isinstance(msg, ProbeRequest):
        check(msg.keyword, msg.nickname)
        return padded(msg.keyword, f"PROBE? {msg.nickname}")
    if isinstance(msg, NudgeRequest):
        check(msg.keyword, msg.nickname, msg.target)
        return padded(msg.keyword, f"NUDGE {msg.nickname} {msg.target}",
                       len(msg.nickname.encode("utf-8")))
    if isinstance(msg, Here):
        check(msg.keyword)
        return frame(msg.keyword, f"HERE {format_here(msg.addr)}")
    if isinstance(msg, Probe):
        check(msg.keyword)
        return frame(msg.keyword, "PROBE")
    if isinstance(msg, Nudge):
        check(msg.keyword, msg.nickname)
        return frame(msg.keyword, f"NUDGE {msg.nickname} {format_here(msg.addr)}")
    raise ValueError(f"not a reach message: {msg!r}")


def is_reach(data: bytes) -> bool:
    """Cheap pre-check: does this datagram carry one of our commands? (then ``decode`` it)

    Runs for every datagram the server gets (PINGs above all): two ``find``s and a
    ``startswith`` before any list is made."""
    first = data.find(b" ", 0, 40)
    second = data.find(b" ", first + 1, 48) if first > 0 else -1
    if second < 0 or not data.startswith(COMMANDS, second + 1):
        return False
    parts = data.split(b" ", 3)
    return len(parts) >= 3 and parts[2] in COMMANDS


def _bad(text: str) -> ProtocolError:
    return ProtocolError("BAD_REACH", text)


def _nick(token: str) -> str:
    if not token or len(token) > MAX_NICK_LEN or not token.isprintable():
        raise _bad("bad nickname")
    return token


def decode(data: bytes) -> Message:
    msg = _decode(data)
    if isinstance(msg, REQUESTS) and len(data) < PAD_TO:
        raise _bad("request shorter than the padding rule")
    return msg


def split(data: bytes, code: str = "BAD_REACH", limit: int = MAX_REACH_DATAGRAM
          ) -> tuple[str, list[str]]:
    """``keyword len body`` -> (keyword, the body's tokens); ``ProtocolError(code)`` else."""
    def bad(text: str) -> ProtocolError:
        return ProtocolError(code, text)

    if len(data) > limit:
        raise bad("datagram too long")
    parts = bytes(data).split(b" ", 2)
    if len(parts) != 3:
        raise bad("expected 'keyword len COMMAND ...'")
    kw_b, len_b, body = parts
    if not len_b.isdigit() or len(len_b) > 3 or (len(len_b) > 1 and len_b[:1] == b"0"):
        raise bad("malformed len")
    if int(len_b) != len(body):
        raise bad("len does not match")
    try:
        keyword = kw_b.decode("ascii")
        tokens = body.decode("utf-8").split(" ")
    except UnicodeDecodeError:
        raise bad("not UTF-8") from None
    if not _KEYWORD.match(keyword):
        raise bad("malformed keyword")
    return keyword, tokens


def _decode(data: bytes) -> Message:
    keyword, tokens = split(data)
    command, args = tokens[0], tokens[1:]
    if command.encode() not in COMMANDS:
        raise ProtocolError("NOT_REACH", "not a reachability message")
    if command == "WHERE?" and len(args) == 2 and _PAD.match(args[1]):
        return Where(keyword, _nick(args[0]))
    if command == "PROBE?" and len(args) == 2 and _PAD.match(args[1]):
        return ProbeRequest(keyword, _nick(args[0]))
    if command == "NUDGE" and len(args) == 3:
        if _PAD.match(args[2]):
            return NudgeRequest(keyword, _nick(args[0]), _nick(args[1]))
        return Nudge(keyword, _nick(args[0]), _here(" ".join(args[1:])))
    if command == "HERE" and len(args) == 2:
        return Here(keyword, _here(" ".join(args)))
    if command == "PROBE" and not args:
        return Probe(keyword)
    raise _bad(f"bad arguments for {command}")


def _here(text: str) -> Addr:
    try:
        return parse_here(text)
    except ProtocolError as exc:
        raise _bad(exc.text) from None


def parse_here(args: str) -> Addr:
    """``"ip port"`` (canonical IP, port 1..65535) -> ``(ip, port)``; ``ProtocolError`` else."""
    parts = args.split(" ")
    if len(parts) != 2 or len(args) > 60:
        raise ProtocolError("BAD_HERE", "HERE wants: ip port")
    ip_text, port_text = parts
    if not port_text.isascii() or not port_text.isdigit() or port_text.startswith("0"):
        raise ProtocolError("BAD_HERE", "bad port")
    port = int(port_text)
    if port > 65535:
        raise ProtocolError("BAD_HERE", "bad port")
    try:
        ip = ipaddress.ip_address(ip_text)
    except ValueError:
        raise ProtocolError("BAD_HERE", "bad address") from None
    if str(ip) != ip_text:
        raise ProtocolError("BAD_HERE", "address not in canonical form")
    return ip_text, port


def format_here(addr: Addr) -> str:
    return f"{ipaddress.ip_address(addr[0])} {addr[1]}"
