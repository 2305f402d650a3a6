"""Plain words for both faces: errors, the directory's error codes, nicknames and sizes.

Errors are matched by class (``isinstance``), never by class name. Sizes use IEC binary units
everywhere (B, KiB, MiB, GiB, TiB: 1 KiB = 1024 B), so a file shows the same in either face.
"""

from __future__ import annotations

import re

from client import errors
from models.errors import ProtocolError
from models.nickname import display_form

# The client API's classes, plus what the OS raises before the engine can wrap it.
_REFUSED = (errors.RegistrationError,)
_UNREACHABLE = (errors.ServerUnreachable, OSError, TimeoutError)
_IDENTITY = (errors.IdentityError,)

# Every ERROR code the directory sends (server.py, models/directory.py, models/directory_wire.py)
# and BAD_REPLY (our own registration could not read the answer) -> what a person should read.
_CODES = {
    "NICK_TAKEN": "The nickname “{nick}” is already taken on this server. Please choose another.",
    "THROTTLED": "The server is refusing new connections from your address for a moment "
                 "(too many tries). Please wait a little and try again.",
    "STORAGE": "The server cannot store registrations right now. Please try again later.",
    "AUTH_REQUIRED": "The server still holds “{nick}” for a session that signed its messages. "
                     "Please wait a few seconds and try again.",
    "BAD_KEY": "The server did not accept this client's session key. Please try again.",
    "TOO_MANY_CONNECTIONS": "The server has too many connections right now. Please try again "
                            "later.",
    "TIMEOUT": "The server gave up waiting for us. Please try again.",
    "LINE_TOO_LONG": "The server and this client do not understand each other (a line was too "
                     "long). Is it an OpenLChat server of the same version?",
    "OUT_OF_ORDER": "The server and this client do not understand each other (steps out of "
                    "order). Is it an OpenLChat server of the same version?",
    "BAD_ARGS": "The server did not understand this client: {text}. Is it an OpenLChat server "
                "of the same version?",
    "BAD_ENCODING": "The server did not understand this client: {text}. Is it an OpenLChat "
                    "server of the same version?",
    "UNKNOWN_COMMAND": "The server did not understand this client: {text}. Is it an OpenLChat "
                       "server of the same version?",
    "BAD_REPLY": "The server’s answer could not be read ({text}). Is this the address of an "
                 "OpenLChat server?",
}
_IEC_UNITS = ("B", "KiB", "MiB", "GiB", "TiB")


def human_size(n: float) -> str:
    """``2_500_000`` -> ``2.4 MiB`` (IEC units, one decimal above bytes)."""
    for unit in _IEC_UNITS:
        if abs(n) < 1024 or unit == _IEC_UNITS[-1]:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")  # pragma: no cover


def bad_nickname(nick: str, reason: str) -> str:
    """Why ``nick`` cannot be used; an empty one asks for a nickname."""
    if not nick.strip():
        return "Please choose a nickname (an empty one cannot be used as a nickname)."
    return f"“{nick}” cannot be used as a nickname: {reason.rstrip('.')}."


def check_nickname(nick: str) -> str:
    """A first, local check with the server's own rules (models/nickname.py); the display
    form, or ValueError in plain words. The server still has the final word."""
    nick = nick.strip()
    try:
        return display_form(nick)
    except ProtocolError as exc:
        raise ValueError(bad_nickname(nick, exc.text)) from None


def _reason(text: str) -> str:
    """``cannot reach h:p: [Errno 111] Connection refused`` -> ``connection refused``."""
    text = re.sub(r"\[(Errno|WinError) -?\d+\]\s*", "", text.rsplit(": ", 1)[-1]).strip()
    return text[:1].lower() + text[1:].rstrip(".")


def describe_error(exc: BaseException, nick: str, server: str) -> str:
    """What went wrong when connecting, for a person rather than a log file."""
    if isinstance(exc, _REFUSED):
        if exc.code == "BAD_NICK":
            return bad_nickname(nick, exc.text)
        if exc.code in _CODES:
            return _CODES[exc.code].format(nick=nick, text=exc.text.rstrip("."))
        return f"The server refused to let us in: {exc.text or exc.code}"
    if isinstance(exc, _UNREACHABLE):
        why = _reason(str(exc))
        return (f"Cannot reach the server at {server}{': ' + why if why else ''}. "
                "Check the address and that the server is running.")
    if isinstance(exc, _IDENTITY):
        return (f"Your identity key cannot be used: {exc}. Move the file away to start with a "
                "new key (people who verified you will see a key change).")
    return f"Could not connect: {str(exc) or type(exc).__name__}"


def error_line(exc: BaseException, nick: str, server: str) -> str:
    """``describe_error`` for a terminal's one line, after a short headline a script can
    match: ``server unreachable: ...``, ``refused by the server (NICK_TAKEN): ...``."""
    if isinstance(exc, _REFUSED):
        headline = f"refused by the server ({exc.code})"
    elif isinstance(exc, _UNREACHABLE):
        headline = "server unreachable"
    elif isinstance(exc, _IDENTITY):
        headline = "identity key unusable"
    else:
        headline = "cannot start"
    return f"{headline}: {describe_error(exc, nick, server)}"
