"""The one exception every codec in ``models`` raises for bad input."""

from __future__ import annotations


class ProtocolError(ValueError):
    """The peer sent something we cannot accept.

    ``code`` is the machine-readable error code used in ``ERROR CODE text``
    replies on the directory's TCP channel (e.g. ``BAD_NICK``, ``LINE_TOO_LONG``).
    """

    def __init__(self, code: str, text: str) -> None:
        super().__init__(f"{code}: {text}")
        self.code = code
        self.text = text
