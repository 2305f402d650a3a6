"""Channel names: ``#`` then 1..32 characters, compared like nicknames.

No whitespace, commas or control/format characters. The part after ``#`` goes through the same
PRECIS profiles as nicknames (``models.nickname``): ``NicknameCasePreserved`` gives the display
form, ``NicknameCaseMapped`` the comparison key, so ``#Games`` == ``#games`` == ``#ＧＡＭＥＳ``.
Bad input raises ``ProtocolError("BAD_CHANNEL", text)``; the text is written for our own user.
"""

from __future__ import annotations

import unicodedata
from functools import lru_cache

from precis_i18n import get_profile

from models import nickname
from models.errors import ProtocolError

PREFIX = "#"
MAX_CHANNEL_LEN = 32  # characters after the "#"
_MAX_RAW_LEN = 4 * MAX_CHANNEL_LEN
ROOM = "#room"  # the channel everyone is in at start

_DISPLAY = get_profile("NicknameCasePreserved")
_CANONICAL = get_profile("NicknameCaseMapped")


def _bad(text: str) -> ProtocolError:
    return ProtocolError("BAD_CHANNEL", text)


def _check_chars(body: str) -> None:
    for ch in body:
        if ch.isspace():
            raise _bad("channel names cannot contain spaces")
        if ch == ",":
            raise _bad("channel names cannot contain commas")
        if unicodedata.category(ch).startswith(("C", "Z")):
            raise _bad(f"channel names cannot contain the character U+{ord(ch):04X}")


def _plain_ascii(body: str) -> bool:
    return body.isascii() and body.isprintable() and " " not in body and "," not in body


@lru_cache(maxsize=4096)
def _normalize(raw: str) -> tuple[str, str]:
    if not raw.startswith(PREFIX):
        raise _bad("channel names start with #")
    body = raw[1:]
    if not body:
        raise _bad("a channel name needs at least one character after #")
    if len(body) > _MAX_RAW_LEN:
        raise _bad(f"channel names are at most {MAX_CHANNEL_LEN} characters after #")
    if len(body) <= MAX_CHANNEL_LEN and _plain_ascii(body):
        return raw, raw.lower()
    _check_chars(body)
    try:
        display = _DISPLAY.enforce(body)
        key = _CANONICAL.enforce(body)
    except UnicodeError as exc:
        raise _bad(f"channel name not allowed ({exc.reason})") from None
    _check_chars(display)
    if len(display) > MAX_CHANNEL_LEN or len(key) > MAX_CHANNEL_LEN:
        raise _bad(f"channel names are at most {MAX_CHANNEL_LEN} characters after #")
    return PREFIX + display, PREFIX + key


def normalize(raw: str) -> tuple[str, str]:
    """``(display, key)`` of a channel name; ``ProtocolError("BAD_CHANNEL")`` if invalid."""
    if not isinstance(raw, str):
        raise _bad("channel name must be text")
    return _normalize(raw)


def display_form(raw: str) -> str:
    return normalize(raw)[0]


def channel_key(raw: str) -> str:
    """The comparison key (case- and width-folded), ``#`` included."""
    return normalize(raw)[1]


def is_channel(raw: str) -> bool:
    """True for a valid channel name (a target starting with ``#`` that passes the rules)."""
    try:
        normalize(raw)
    except ProtocolError:
        return False
    return True


def same_channel(a: str, b: str) -> bool:
    try:
        return channel_key(a) == channel_key(b)
    except ProtocolError:
        return False


def peer_key(nick: str) -> str:
    """A nickname's comparison key (``models.nickname.canonical``); an invalid one as given
    (it never comes from the roster, so it matches nobody)."""
    try:
        return nickname.canonical(nick)
    except ProtocolError:
        return nick
