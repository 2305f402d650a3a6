"""The IRC line codec, sans-IO: bytes <-> ``Message`` (IRCv3 tags, prefix, command, params).

Small on purpose and written here: the tokenisers on PyPI raise IndexError/UnicodeDecodeError
on hostile lines and are no longer maintained. It follows the ircdocs parser tests (runs of
spaces separate parameters; a parameter starting with ``:`` takes the rest of the line), checked
against their vectors in tests/test_irc_protocol.py.

Limits: the line without its tags is at most ``MAX_LINE`` bytes with its CR LF (RFC 1459); the
tags part, ``@`` and its space included, at most ``MAX_TAGS`` bytes (IRCv3 message-tags).
Text is UTF-8; a line that is not valid UTF-8 is read as Latin-1 (what IRC clients do for
old clients), tags as UTF-8 with replacement characters. Anything wrong raises
``models.errors.ProtocolError``, never anything else.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from models.errors import ProtocolError

MAX_LINE = 512  # bytes, CR LF included, tags excluded
MAX_TAGS = 8191  # bytes of "@tags " (IRCv3)
MAX_PARAMS = 15

_TAG_ESCAPES = {";": "\\:", " ": "\\s", "\\": "\\\\", "\r": "\\r", "\n": "\\n"}
_TAG_UNESCAPES = {":": ";", "s": " ", "\\": "\\", "r": "\r", "n": "\n"}


def _bad(code: str, text: str) -> ProtocolError:
    return ProtocolError(code, text)


@dataclass(frozen=True)
class Message:
    command: str
    params: tuple[str, ...] = ()
    prefix: str | None = None
    tags: tuple[tuple[str, str], ...] = field(default=())

    def tag(self, key: str) -> str | None:
        for k, v in self.tags:
            if k == key:
                return v
        return None

    def param(self, i: int, default: str = "") -> str:
        return self.params[i] if i < len(self.params) else default


def message(command: str, *params: str, prefix: str | None = None,
            tags: dict[str, str] | None = None) -> Message:
    return Message(command, tuple(params), prefix, tuple((tags or {}).items()))


# --- parsing -----------------------------------------------------------------------------------

def decode_text(raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def _unescape(value: str) -> str:
    if "\\" not in value:
        return value
    out: list[str] = []
    i = 0
    while i < len(value):
        ch = value[i]
        if ch == "\\":
            if i + 1 < len(value):
                nxt = value[i + 1]
                out.append(_TAG_UNESCAPES.get(nxt, nxt))
            i += 2
            continue
        out.append(ch)
        i += 1
    return "".join(out)


def _parse_tags(raw: bytes) -> tuple[tuple[str, str], ...]:
    text = raw.decode("utf-8", "replace")
    tags: dict[str, str] = {}
    for part in text.split(";"):
        if not part:
            continue
        key, _, value = part.partition("=")
        if not key:
            raise _bad("BAD_TAGS", "a message tag without a name")
        tags[key] = _unescape(value)  # the last of a repeated key wins (IRCv3)
    return tuple(tags.items())


def parse(raw: bytes) -> Message:
    """One line without its line ending (a trailing CR is dropped)."""
    if raw.endswith(b"\r"):
        raw = raw[:-1]
    tags: tuple[tuple[str, str], ...] = ()
    if raw.startswith(b"@"):
        tag_part, sep, raw = raw.partition(b" ")
        if len(tag_part) + 1 > MAX_TAGS:
            raise _bad("TAGS_TOO_LONG", f"message tags over {MAX_TAGS} bytes")
        tags = _parse_tags(tag_part[1:])
    raw = raw.lstrip(b" ")
    if len(raw) + 2 > MAX_LINE:
        raise _bad("LINE_TOO_LONG", f"line over {MAX_LINE} bytes")
    if b"\0" in raw or b"\r" in raw or b"\n" in raw:
        raise _bad("BAD_LINE", "NUL, CR or LF inside a line")
    text = decode_text(raw)
    prefix = None
    if text.startswith(":"):
        prefix, _, text = text[1:].partition(" ")
        text = text.lstrip(" ")
        if not prefix:
            raise _bad("BAD_LINE", "an empty prefix")
    head, trailing_sep, trailing = text.partition(" :")
    if head.startswith(":"):  # "CMD :x" cannot happen here; a lone ":x" has no command
        raise _bad("BAD_LINE", "no command")
    words = [w for w in head.split(" ") if w]  # tabs are not separators
    if not words:
        raise _bad("BAD_LINE", "no command")
    command = words[0]
    if not (command.isascii() and (command.isalpha()
                                   or (len(command) == 3 and command.isdigit()))):
        raise _bad("BAD_COMMAND", "a command is letters or three digits")
    params = words[1:]
    if trailing_sep:
        params.append(trailing)
    return Message(command.upper(), tuple(params), prefix, tags)


class LineReader:
    """Splits a byte stream into lines (LF, CR LF) and parses them; a line over the limits is
    reported once (as a ``ProtocolError``) and skipped up to its end."""

    def __init__(self) -> None:
        self._buf = bytearray()
        self._skipping = False

    def feed(self, data: bytes) -> list[Message | ProtocolError]:
        out: list[Message | ProtocolError] = []
        self._buf += data
        while True:
            end = self._buf.find(b"\n")
            if end < 0:
                if len(self._buf) > MAX_TAGS + MAX_LINE:
                    if not self._skipping:
                        out.append(_bad("LINE_TOO_LONG", f"line over {MAX_LINE} bytes"))
                    self._skipping = True
                    self._buf.clear()
                return out
            line = bytes(self._buf[:end])
            del self._buf[:end + 1]
            if self._skipping:
                self._skipping = False
                continue
            if not line.strip(b" \r"):
                continue  # blank lines are ignored (RFC 1459)
            try:
                out.append(parse(line))
            except ProtocolError as exc:
                out.append(exc)


# --- formatting --------------------------------------------------------------------------------

def _escape(value: str) -> str:
    return "".join(_TAG_ESCAPES.get(ch, ch) for ch in value)


def format_message(msg: Message) -> bytes:
    """The line with CR LF. Raises ``ValueError`` for a message we must not build (a middle
    parameter with a space, a line break anywhere): our own bug, never peer input."""
    parts: list[str] = []
    if msg.tags:
        parts.append("@" + ";".join(k + ("=" + _escape(v) if v else "") for k, v in msg.tags))
    if msg.prefix:
        parts.append(":" + msg.prefix)
    parts.append(msg.command)
    for i, p in enumerate(msg.params):
        if any(ch in p for ch in "\r\n\0"):
            raise ValueError(f"line break in IRC parameter {p!r}")
        last = i == len(msg.params) - 1
        if not p or " " in p or p.startswith(":"):
            if not last:
                raise ValueError(f"bad middle IRC parameter {p!r}")
            p = ":" + p
        parts.append(p)
    return (" ".join(parts) + "\r\n").encode("utf-8")


def line_room(msg: Message) -> int:
    """Bytes left for the last parameter of ``msg`` (whose last parameter is empty) within
    ``MAX_LINE``, tags not counted."""
    bare = Message(msg.command, msg.params, msg.prefix)
    return MAX_LINE - len(format_message(bare))


def clean_text(text: str) -> list[str]:
    """Peer text as IRC lines: one per line break, without CR or NUL."""
    return [x.replace("\r", "").replace("\0", "") for x in text.split("\n")]


def split_to_fit(text: str, room: int) -> list[str]:
    """``text`` cut into pieces of at most ``room`` UTF-8 bytes, never inside a character."""
    room = max(room, 4)
    data = text.encode("utf-8")
    if len(data) <= room:
        return [text]
    out: list[str] = []
    while data:
        cut = min(room, len(data))
        while cut < len(data) and (data[cut] & 0xC0) == 0x80:
            cut -= 1  # back to a character's first byte
        out.append(data[:cut].decode("utf-8"))
        data = data[cut:]
    return out
