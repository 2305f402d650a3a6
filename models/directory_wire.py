"""The directory server's wire codec: both channels, sans-IO (bytes in, messages out).

First channel, TCP: UTF-8 lines ending in ``\\n`` (``\\r\\n`` accepted), tokens separated by
single spaces. Client -> server lines are at most ``MAX_REQUEST_LINE`` bytes.

=====================================  ======================================================
client -> server                       server -> client, and what it triggers
=====================================  ======================================================
``CONNECT nickname``                   ``KEYWORD kw`` -- a new registration, nickname reserved
``CONNECT nickname keyword`` (ext.)    ``KEYWORD kw`` -- reclaim: same keyword, nothing announced
``CONNECT nick [kw] x25519=K [proof=T]`` ``KEYWORD kw x25519=K'`` -- MAC extension (models.dirauth)
``REFERENCE?``                         ``REFERENCE n (nickname ip port)*n`` -- announced clients
``CHANNEL_SWITCH``                     server closes the connection; client goes on over UDP
``INFO?`` (extension, any time)        ``INFO ping_interval=10 [nickname=Evan]``
anything the server cannot honour      ``ERROR CODE human text``
=====================================  ======================================================

Second channel, UDP, one message per datagram: ``keyword len COMMAND args`` where ``len`` is
the UTF-8 byte length of the text after the space that follows ``len``.

=========================================  ===================================================
``kw len PING nickname``          c -> s   still here; the first one fixes the client's address
                                           and announces it (REF_ADD to everyone else)
``kw len PING nickname digest``   c -> s   extension: same, and asks for a PONG
``kw len QUIT nickname``          c -> s   leave now: REF_DEL to everyone else
``kw len REF_ADD n (nick ip port)*n``      s -> c: rows added (a listed nick: its new address)
``kw len REF_DEL n (nick)*n``              s -> c: rows removed
``kw len PONG digest``            s -> c   extension: digest of the roster the recipient should hold
``kw len UNKNOWN``                s -> c   extension: the server does not know this keyword
``kw len PING|QUIT ... #ctr.mac``  c -> s   MAC extension: counter and MAC of the rest
``kw len REKEY``                  s -> c   MAC extension: the server has no MAC key for you
=========================================  ===================================================

In every server -> client datagram ``kw`` is the recipient's own keyword. Decoders raise only
``models.errors.ProtocolError``; encoders raise ``ValueError`` for messages we must never send.
"""

from __future__ import annotations

import ipaddress
import math
import re
from collections.abc import Iterable

from models.directory_bytes import (
    DEFAULT_PACK_LIMIT,
    MAX_KEYWORD_LEN,
    entry_text,
    format_digest,
    frame_bytes,
    list_body,
    pack_bodies,
    ping_body,
    pong_datagram,
    reference_line,
    text_hash,
)
from models.directory_messages import (
    Auth,
    ChannelSwitch,
    Connect,
    Datagram,
    Entry,
    Error,
    Info,
    InfoRequest,
    Keyword,
    Ping,
    Pong,
    Quit,
    RefAdd,
    RefDel,
    Reference,
    ReferenceRequest,
    Rekey,
    Reply,
    Request,
    Unknown,
)
from models.errors import ProtocolError

__all__ = [  # re-exported: the messages, and the byte-level helpers callers use
    "DEFAULT_PACK_LIMIT", "MAX_KEYWORD_LEN", "format_digest", "pack_bodies",
    "Auth",
    "ChannelSwitch",
    "Connect",
    "Datagram",
    "Entry",
    "Error",
    "Info",
    "InfoRequest",
    "Keyword",
    "Ping",
    "Pong",
    "Quit",
    "RefAdd",
    "RefDel",
    "Reference",
    "ReferenceRequest",
    "Rekey",
    "Reply",
    "Request",
    "Unknown",
]

DEFAULT_PORT = 7700  # the directory's TCP and UDP port unless told otherwise (server and client)
MAX_REQUEST_LINE = 1024  # bytes, client -> server TCP lines, terminator included
MAX_DATAGRAM = 65507  # anything longer cannot be a UDP payload
DIGEST_LEN = 16
EMPTY_DIGEST = "0" * DIGEST_LEN

_KEYWORD_RE = re.compile(r"[A-Za-z0-9_-]{1,24}\Z")
_DIGEST_RE = re.compile(r"[0-9a-f]{16}\Z")
_COUNT_RE = re.compile(r"(0|[1-9][0-9]{0,8})\Z")
_CODE_RE = re.compile(r"[A-Z][A-Z0-9_]{0,31}\Z")
_INFO_KEY_RE = re.compile(r"[a-z][a-z0-9_]{0,31}\Z")
_PUBKEY_RE = re.compile(r"[A-Za-z0-9_-]{43}\Z")  # 32 bytes, base64url without padding
_AUTH_RE = re.compile(r"#(0|[1-9][0-9]{0,18})\.([A-Za-z0-9_-]{22})\Z")
MAX_COUNTER = 2**63 - 1


# ---------------------------------------------------------------- token checks


def is_keyword(value: str) -> bool:
    return isinstance(value, str) and _KEYWORD_RE.match(value) is not None


def is_digest(value: str) -> bool:
    return isinstance(value, str) and _DIGEST_RE.match(value) is not None


def _is_token(value: str) -> bool:
    """A wire token: non-empty, no whitespace or control characters."""
    return bool(value) and value.isprintable() and not any(ch.isspace() for ch in value)


def _is_host(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


def _check_entry(entry: Entry) -> None:
    if not _is_token(entry.nickname):
        raise ValueError(f"bad nickname in entry: {entry.nickname!r}")
    if not _is_host(entry.host):
        raise ValueError(f"bad host in entry: {entry.host!r}")
    if type(entry.port) is not int or not 0 < entry.port < 65536:
        raise ValueError(f"bad port in entry: {entry.port!r}")


def _check_nick_token(value: str) -> None:
    if not _is_token(value):
        raise ValueError(f"bad nickname token: {value!r}")


def _check_keyword(value: str) -> None:
    if not is_keyword(value):
        raise ValueError(f"bad keyword: {value!r}")


def is_pubkey(value: str) -> bool:
    return isinstance(value, str) and _PUBKEY_RE.match(value) is not None


def _check_pubkey(value: str) -> None:
    if not is_pubkey(value):
        raise ValueError(f"bad public key: {value!r}")


def auth_token(auth: Auth) -> str:
    """``#counter.mac``"""
    if not (type(auth.counter) is int and 0 <= auth.counter <= MAX_COUNTER
            and _AUTH_RE.match(f"#{auth.counter}.{auth.mac}")):
        raise ValueError(f"bad auth {auth!r}")
    return f"#{auth.counter}.{auth.mac}"


def parse_auth(token: str) -> Auth | None:
    m = _AUTH_RE.match(token)
    if m is None or int(m.group(1)) > MAX_COUNTER:
        return None
    return Auth(int(m.group(1)), m.group(2))


def _format_float(value: float) -> str:
    if value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return repr(value)


# ---------------------------------------------------------------- TCP encode


def _entries_text(entries: Iterable[Entry]) -> list[bytes]:
    out = []
    for e in entries:
        _check_entry(e)
        out.append(entry_text(e.nickname, e.host, e.port))
    return out


def _line_text(msg: Request | Reply) -> str:
    if isinstance(msg, Connect):
        _check_nick_token(msg.nickname)
        text = f"CONNECT {msg.nickname}"
        if msg.keyword is not None:
            _check_keyword(msg.keyword)
            text += f" {msg.keyword}"
        if msg.x25519 is not None:
            _check_pubkey(msg.x25519)
            text += f" x25519={msg.x25519}"
        if msg.proof is not None:
            if msg.x25519 is None or msg.keyword is None:
                raise ValueError("a proof goes with a keyword and a new key")
            text += f" proof={auth_token(msg.proof)}"
        return text
    if isinstance(msg, ReferenceRequest):
        return "REFERENCE?"
    if isinstance(msg, ChannelSwitch):
        return "CHANNEL_SWITCH"
    if isinstance(msg, InfoRequest):
        return "INFO?"
    if isinstance(msg, Keyword):
        _check_keyword(msg.keyword)
        if msg.x25519 is None:
            return f"KEYWORD {msg.keyword}"
        _check_pubkey(msg.x25519)
        return f"KEYWORD {msg.keyword} x25519={msg.x25519}"
    if isinstance(msg, Info):
        if not (math.isfinite(msg.ping_interval) and msg.ping_interval > 0):
            raise ValueError(f"bad ping_interval {msg.ping_interval!r}")
        text = f"INFO ping_interval={_format_float(float(msg.ping_interval))}"
        if msg.nickname is not None:
            _check_nick_token(msg.nickname)
            text += f" nickname={msg.nickname}"
        return text
    if isinstance(msg, Error):
        if not _CODE_RE.match(msg.code):
            raise ValueError(f"bad error code {msg.code!r}")
        if "\n" in msg.text or "\r" in msg.text:
            raise ValueError("error text must be one line")
        return f"ERROR {msg.code} {msg.text}" if msg.text else f"ERROR {msg.code}"
    raise ValueError(f"not a TCP message: {msg!r}")


def encode_line(msg: Request | Reply) -> bytes:
    """One TCP line, ``\\n`` included."""
    if isinstance(msg, Reference):
        return reference_line(_entries_text(msg.entries))
    return _line_text(msg).encode("utf-8") + b"\n"


# ---------------------------------------------------------------- TCP decode


def _line_tokens(line: bytes, limit: int | None) -> list[str]:
    if not isinstance(line, bytes | bytearray | memoryview):
        raise ProtocolError("BAD_ARGS", "a line must be bytes")
    line = bytes(line)
    if limit is not None and len(line) > limit:
        raise ProtocolError("LINE_TOO_LONG", f"line longer than {limit} bytes")
    if line.endswith(b"\n"):
        line = line[:-1]
        if line.endswith(b"\r"):
            line = line[:-1]
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError:
        raise ProtocolError("BAD_ENCODING", "line is not valid UTF-8") from None
    if "\n" in text or "\r" in text:
        raise ProtocolError("BAD_ARGS", "line breaks inside a line")
    if not text:
        raise ProtocolError("UNKNOWN_COMMAND", "empty line")
    return text.split(" ")


def _args(tokens: list[str], low: int, high: int, free_first: bool = False) -> list[str]:
    """The arguments, ``low..high`` of them. ``free_first``: the first may hold any character
    but a space (a nickname: its own rules judge it, with a clearer error)."""
    args = tokens[1:]
    if not low <= len(args) <= high:
        want = str(low) if low == high else f"{low} to {high}"
        raise ProtocolError("BAD_ARGS", f"{tokens[0]} takes {want} argument(s), got {len(args)}")
    for i, arg in enumerate(args):
        if free_first and i == 0 and arg:
            continue
        if not _is_token(arg):
            raise ProtocolError("BAD_ARGS", "empty token or control character (single spaces only)")
    return args


def decode_request(line: bytes) -> Request:
    """A client -> server TCP line (terminator optional). Raises ``ProtocolError``."""
    tokens = _line_tokens(line, MAX_REQUEST_LINE)
    command = tokens[0]
    if command == "CONNECT":
        return _decode_connect(_args(tokens, 1, 4, free_first=True))
    if command == "REFERENCE?":
        _args(tokens, 0, 0)
        return ReferenceRequest()
    if command == "CHANNEL_SWITCH":
        _args(tokens, 0, 0)
        return ChannelSwitch()
    if command == "INFO?":
        _args(tokens, 0, 0)
        return InfoRequest()
    shown = command[:32].encode("unicode_escape").decode("ascii")
    raise ProtocolError("UNKNOWN_COMMAND", f"unknown command {shown}")


def _decode_connect(args: list[str]) -> Connect:
    """``nickname [keyword] [x25519=K [proof=#ctr.mac]]``"""
    rest = args[1:]
    keyword = None
    if rest and "=" not in rest[0]:
        keyword = rest.pop(0)
        if not is_keyword(keyword):
            raise ProtocolError("BAD_ARGS", "malformed keyword")
    x25519 = proof = None
    if rest and rest[0].startswith("x25519="):
        x25519 = rest.pop(0)[7:]
        if not is_pubkey(x25519):
            raise ProtocolError("BAD_ARGS", "malformed x25519 key")
        if rest and rest[0].startswith("proof=") and keyword is not None:
            proof = parse_auth(rest.pop(0)[6:])
            if proof is None:
                raise ProtocolError("BAD_ARGS", "malformed proof")
    if rest:
        raise ProtocolError("BAD_ARGS", "CONNECT takes nickname [keyword] [x25519=K [proof=P]]")
    return Connect(args[0], keyword, x25519, proof)


def _decode_count(token: str) -> int:
    if not _COUNT_RE.match(token):
        raise ProtocolError("BAD_ARGS", "malformed count")
    return int(token)


def _decode_entries(tokens: list[str]) -> tuple[Entry, ...]:
    """``n (nick ip port)*n`` -> entries."""
    if not tokens:
        raise ProtocolError("BAD_ARGS", "missing count")
    count = _decode_count(tokens[0])
    rest = tokens[1:]
    if len(rest) != 3 * count:
        raise ProtocolError("BAD_ARGS", f"count {count} does not match {len(rest)} tokens")
    entries = []
    for i in range(0, len(rest), 3):
        nick, host, port_s = rest[i], rest[i + 1], rest[i + 2]
        if not _is_token(nick):
            raise ProtocolError("BAD_ARGS", "malformed nickname")
        if not _is_host(host):
            raise ProtocolError("BAD_ARGS", "malformed host")
        if not _COUNT_RE.match(port_s) or not 0 < int(port_s) < 65536:
            raise ProtocolError("BAD_ARGS", "malformed port")
        entries.append(Entry(nick, host, int(port_s)))
    return tuple(entries)


def _decode_info(args: list[str]) -> Info:
    values: dict[str, str] = {}
    for token in args:
        key, sep, value = token.partition("=")
        if not sep or not _INFO_KEY_RE.match(key) or not value:
            raise ProtocolError("BAD_ARGS", "INFO takes key=value tokens")
        values[key] = value  # unknown keys are ignored: room for later additions
    raw = values.get("ping_interval")
    if raw is None:
        raise ProtocolError("BAD_ARGS", "INFO without ping_interval")
    if not re.fullmatch(r"[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)?", raw):
        raise ProtocolError("BAD_ARGS", "malformed ping_interval")
    interval = float(raw)
    if not (math.isfinite(interval) and interval > 0):
        raise ProtocolError("BAD_ARGS", "ping_interval must be positive")
    return Info(interval, values.get("nickname"))


def decode_reply(line: bytes) -> Reply:
    """A server -> client TCP line (no length limit: REFERENCE may be long)."""
    tokens = _line_tokens(line, None)
    command = tokens[0]
    if command == "ERROR":
        if len(tokens) < 2 or not _CODE_RE.match(tokens[1]):
            raise ProtocolError("BAD_ARGS", "ERROR without a code")
        return Error(tokens[1], " ".join(tokens[2:]))
    if command == "KEYWORD":
        args = _args(tokens, 1, 2)
        if not is_keyword(args[0]):
            raise ProtocolError("BAD_ARGS", "malformed keyword")
        if len(args) == 1:
            return Keyword(args[0])
        if not (args[1].startswith("x25519=") and is_pubkey(args[1][7:])):
            raise ProtocolError("BAD_ARGS", "malformed x25519 key")
        return Keyword(args[0], args[1][7:])
    if command == "REFERENCE":
        return Reference(_decode_entries(_args(tokens, 1, 3 * 10**6)))
    if command == "INFO":
        return _decode_info(_args(tokens, 1, 64))
    shown = command[:32].encode("unicode_escape").decode("ascii")
    raise ProtocolError("UNKNOWN_COMMAND", f"unknown reply {shown}")


# ---------------------------------------------------------------- UDP


def frame(keyword: str, body: bytes) -> bytes:
    """``keyword len body``: wrap an already-encoded ``COMMAND args`` body for one recipient."""
    return frame_bytes(keyword.encode("ascii"), body)


def _datagram_body(msg: Datagram) -> bytes:
    if isinstance(msg, Ping | Quit):
        return _authed_body(msg, _plain_body(msg))
    if isinstance(msg, RefAdd):
        return _list_or_empty(b"REF_ADD", _entries_text(msg.entries))
    if isinstance(msg, RefDel):
        return _list_or_empty(b"REF_DEL", _nick_items(msg.nicknames))
    if isinstance(msg, Unknown):
        return b"UNKNOWN"
    if isinstance(msg, Rekey):
        return b"REKEY"
    raise ValueError(f"not a datagram message: {msg!r}")


def _plain_body(msg: Ping | Quit) -> bytes:
    """The body without the MAC token."""
    _check_nick_token(msg.nickname)
    if isinstance(msg, Quit):
        return f"QUIT {msg.nickname}".encode()
    if msg.digest is None:
        return ping_body(msg.nickname)
    if not is_digest(msg.digest):
        raise ValueError(f"bad digest {msg.digest!r}")
    return b"%s %s" % (ping_body(msg.nickname), msg.digest.encode())


def _authed_body(msg: Ping | Quit, plain: bytes) -> bytes:
    return plain if msg.auth is None else b"%s %s" % (plain, auth_token(msg.auth).encode())


def mac_input(keyword: str, msg: Ping | Quit, counter: int) -> bytes:
    """What the MAC of a PING or QUIT covers: ``keyword SP body SP #counter`` (the body
    without the token; no ``len``)."""
    _check_keyword(keyword)
    return b"%s %s #%d" % (keyword.encode("ascii"), _plain_body(msg), counter)


def _list_or_empty(command: bytes, items: list[bytes]) -> bytes:
    return list_body(command, items) if items else command + b" 0"


def _nick_items(nicknames: Iterable[str]) -> list[bytes]:
    items = []
    for nick in nicknames:
        _check_nick_token(nick)
        items.append(nick.encode("utf-8"))
    return items


def encode_datagram(msg: Datagram) -> bytes:
    _check_keyword(msg.keyword)
    if isinstance(msg, Pong):
        if not is_digest(msg.digest):
            raise ValueError(f"bad digest {msg.digest!r}")
        return pong_datagram(msg.keyword.encode("ascii"), int(msg.digest, 16))
    return frame(msg.keyword, _datagram_body(msg))


def decode_datagram(data: bytes) -> Datagram:
    """One UDP datagram of the directory protocol. Raises ``ProtocolError``."""
    if not isinstance(data, bytes | bytearray | memoryview):
        raise ProtocolError("BAD_FRAMING", "a datagram must be bytes")
    data = bytes(data)
    if len(data) > MAX_DATAGRAM:
        raise ProtocolError("BAD_FRAMING", "datagram too long")
    parts = data.split(b" ", 2)
    if len(parts) != 3:
        raise ProtocolError("BAD_FRAMING", "expected 'keyword len COMMAND ...'")
    kw_b, len_b, body = parts
    if not len_b.isdigit() or len(len_b) > 5 or (len(len_b) > 1 and len_b[0] == 0x30):
        raise ProtocolError("BAD_FRAMING", "malformed len")
    if int(len_b) != len(body):
        raise ProtocolError("BAD_LENGTH", f"len says {int(len_b)}, body has {len(body)} bytes")
    try:
        keyword = kw_b.decode("ascii")
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise ProtocolError("BAD_ENCODING", "datagram is not valid UTF-8") from None
    if not is_keyword(keyword):
        raise ProtocolError("BAD_FRAMING", "malformed keyword")
    tokens = text.split(" ")
    command = tokens[0]
    args = tokens[1:]
    for arg in args:
        if not _is_token(arg):
            raise ProtocolError("BAD_ARGS", "empty token or control character")
    auth = None
    if command in ("PING", "QUIT") and len(args) >= 2:
        auth = parse_auth(args[-1])
        if auth is not None:
            args = args[:-1]
    if command == "PING":
        if len(args) == 1:
            return Ping(keyword, args[0], None, auth)
        if len(args) == 2 and is_digest(args[1]):
            return Ping(keyword, args[0], args[1], auth)
        raise ProtocolError("BAD_ARGS", "PING takes a nickname and an optional digest")
    if command == "QUIT":
        if len(args) != 1:
            raise ProtocolError("BAD_ARGS", "QUIT takes a nickname")
        return Quit(keyword, args[0], auth)
    if command == "REF_ADD":
        return RefAdd(keyword, _decode_entries(args))
    if command == "REF_DEL":
        if not args:
            raise ProtocolError("BAD_ARGS", "missing count")
        count = _decode_count(args[0])
        if len(args) - 1 != count:
            raise ProtocolError("BAD_ARGS", f"count {count} does not match {len(args) - 1}")
        return RefDel(keyword, tuple(args[1:]))
    if command == "PONG":
        if len(args) != 1 or not is_digest(args[0]):
            raise ProtocolError("BAD_ARGS", "PONG takes a digest")
        return Pong(keyword, args[0])
    if command in ("UNKNOWN", "REKEY"):
        if args:
            raise ProtocolError("BAD_ARGS", f"{command} takes no arguments")
        return Unknown(keyword) if command == "UNKNOWN" else Rekey(keyword)
    raise ProtocolError("UNKNOWN_COMMAND", "unknown datagram command")


# ---------------------------------------------------------------- packing


def ref_add_bodies(entries: Iterable[Entry], limit: int = DEFAULT_PACK_LIMIT) -> list[bytes]:
    """REF_ADD bodies that, framed with any keyword, give datagrams of at most ``limit`` bytes."""
    return pack_bodies(b"REF_ADD", _entries_text(entries), limit)


def ref_del_bodies(nicknames: Iterable[str], limit: int = DEFAULT_PACK_LIMIT) -> list[bytes]:
    return pack_bodies(b"REF_DEL", _nick_items(nicknames), limit)


def pack_ref_add(keyword: str, entries: Iterable[Entry], limit: int = DEFAULT_PACK_LIMIT
                 ) -> list[bytes]:
    """``entries`` as REF_ADD datagrams of at most ``limit`` bytes each (none if empty)."""
    _check_keyword(keyword)
    return [frame(keyword, body) for body in ref_add_bodies(entries, limit)]


def pack_ref_del(keyword: str, nicknames: Iterable[str], limit: int = DEFAULT_PACK_LIMIT
                 ) -> list[bytes]:
    _check_keyword(keyword)
    return [frame(keyword, body) for body in ref_del_bodies(nicknames, limit)]


# ---------------------------------------------------------------- roster digest


def entry_hash(entry: Entry) -> int:
    """64-bit hash of one row, as it appears on the wire; a roster's digest XORs them."""
    return text_hash(entry_text(entry.nickname, entry.host, entry.port))


def roster_digest(entries: Iterable[Entry]) -> str:
    """16 lowercase hex digits; order-independent; ``EMPTY_DIGEST`` for no entries."""
    acc = 0
    for entry in entries:
        acc ^= entry_hash(entry)
    return format_digest(acc)
