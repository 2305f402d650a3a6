"""Nickname rules: what a valid nickname is, and when two nicknames are the same one.

Two forms of every nickname (RFC 8265 via ``precis-i18n``):

* the *display* form -- ``NicknameCasePreserved`` (NFKC, width-folded, case kept): what the
  server stores, lists in ``REFERENCE``/``REF_ADD`` and what people see (``Ｅｖａｎ`` -> ``Evan``);
* the *canonical* key -- ``NicknameCaseMapped`` (also case-folded): what uniqueness and every
  comparison use, so ``Вася`` == ``вася`` and ``Ｅｖａｎ`` == ``evan``.

Before PRECIS runs, anything with whitespace or control/format characters is rejected outright
(PRECIS would map inner spaces instead, but a wire token cannot hold one). Both forms must be
1..24 characters (the design's ``CHAR(24)``). Bad input raises ``ProtocolError("BAD_NICK", ...)``.
"""

from __future__ import annotations

import unicodedata
from functools import lru_cache

from precis_i18n import get_profile

from models.errors import ProtocolError

MAX_NICK_LEN = 24
# Longer raw input is rejected before PRECIS runs (NFKC may shrink a string, but not by this much).
_MAX_RAW_LEN = 4 * MAX_NICK_LEN

_DISPLAY = get_profile("NicknameCasePreserved")
_CANONICAL = get_profile("NicknameCaseMapped")


def _bad(text: str) -> ProtocolError:
    return ProtocolError("BAD_NICK", text)


def _check_chars(value: str) -> None:
    if not value:
        raise _bad("nickname is empty")
    for ch in value:
        if ch.isspace():
            raise _bad("nickname must not contain whitespace")
        # Cc control, Cf format (zero-width...), Cs surrogates, Co private use, Cn unassigned
        if unicodedata.category(ch).startswith(("C", "Z")):
            raise _bad(f"nickname must not contain the character U+{ord(ch):04X}")


def _is_plain_ascii(raw: str) -> bool:
    # U+0021..U+007E are PVALID in PRECIS and untouched by width mapping and NFKC; case
    # mapping is then str.lower(). (tests/test_nickname.py checks this against precis-i18n.)
    return raw.isascii() and raw.isprintable() and " " not in raw


@lru_cache(maxsize=4096)
def _normalize(raw: str) -> tuple[str, str]:
    if len(raw) > _MAX_RAW_LEN:
        raise _bad(f"nickname longer than {MAX_NICK_LEN} characters")
    if raw and len(raw) <= MAX_NICK_LEN and _is_plain_ascii(raw):
        return raw, raw.lower()  # the common case, ~20x faster than running both profiles
    _check_chars(raw)
    try:
        display = _DISPLAY.enforce(raw)
        key = _CANONICAL.enforce(raw)
    except UnicodeError as exc:
        raise _bad(f"nickname not allowed by PRECIS rules ({exc.reason})") from None
    _check_chars(display)
    if len(display) > MAX_NICK_LEN or len(key) > MAX_NICK_LEN:
        raise _bad(f"nickname longer than {MAX_NICK_LEN} characters")
    return display, key


def normalize(raw: str) -> tuple[str, str]:
    """``(display, canonical)`` forms of ``raw``; ``ProtocolError("BAD_NICK")`` if invalid."""
    if not isinstance(raw, str):
        raise _bad("nickname must be text")
    return _normalize(raw)


def display_form(raw: str) -> str:
    """The form to store and show (case preserved). Raises ``ProtocolError("BAD_NICK")``."""
    return normalize(raw)[0]


def canonical(raw: str) -> str:
    """The comparison key (case-insensitive, width-folded). Raises ``ProtocolError("BAD_NICK")``."""
    return normalize(raw)[1]


def is_valid(raw: str) -> bool:
    try:
        normalize(raw)
    except ProtocolError:
        return False
    return True


def same_nickname(a: str, b: str) -> bool:
    """True when ``a`` and ``b`` are the same nickname; False if either is invalid."""
    try:
        return canonical(a) == canonical(b)
    except ProtocolError:
        return False
