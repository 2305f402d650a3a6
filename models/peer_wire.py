"""The outer envelope of every peer-to-peer datagram.

All peer traffic shares the client's one UDP socket with the directory server's datagrams.
A peer datagram starts with the byte 0xC1, which never starts valid UTF-8, so it can never be
mistaken for a server datagram (``keyword len COMMAND ...`` is UTF-8 text)::

    offset 0  0xC1      MAGIC
    offset 1  0x01      VERSION
    offset 2  kind      HS_INIT 0x01 | HS_RESP 0x02 | HS_FINISH 0x03 handshake (peer/secure.py)
                        PLAIN 0x10   rest is one frame, in clear (plain transport only)
                        SEALED 0x20  session_id(8) counter(8) AEAD ciphertext of one frame
                                     (additional data = the 19-byte header)

Frames (the reliable-messaging layer, ``models.frames``) never exceed ``MAX_FRAME`` bytes,
so a sealed frame always fits ``MAX_DATAGRAM``.
"""

from __future__ import annotations

from models.errors import ProtocolError

MAGIC = 0xC1
VERSION = 0x01

HS_INIT = 0x01
HS_RESP = 0x02
HS_FINISH = 0x03
PLAIN = 0x10
SEALED = 0x20
KINDS = frozenset({HS_INIT, HS_RESP, HS_FINISH, PLAIN, SEALED})

HEADER_LEN = 3
SEALED_HEADER_LEN = HEADER_LEN + 8 + 8
AEAD_TAG_LEN = 16
MAX_DATAGRAM = 1200
MAX_FRAME = MAX_DATAGRAM - SEALED_HEADER_LEN - AEAD_TAG_LEN


def is_peer_datagram(data: bytes) -> bool:
    """True for anything that claims to be peer traffic (it still has to parse)."""
    return len(data) > 0 and data[0] == MAGIC


def make_envelope(kind: int, body: bytes) -> bytes:
    if kind not in KINDS:
        raise ValueError(f"unknown envelope kind {kind:#x}")
    return bytes((MAGIC, VERSION, kind)) + body


def parse_envelope(data: bytes) -> tuple[int, bytes]:
    """Split a peer datagram into (kind, body); ProtocolError for anything malformed."""
    if len(data) < HEADER_LEN:
        raise ProtocolError("SHORT", "datagram shorter than the envelope header")
    if len(data) > MAX_DATAGRAM:
        raise ProtocolError("TOO_LONG", f"datagram of {len(data)} bytes exceeds {MAX_DATAGRAM}")
    if data[0] != MAGIC:
        raise ProtocolError("BAD_MAGIC", "not a peer datagram")
    if data[1] != VERSION:
        raise ProtocolError("BAD_VERSION", f"unsupported envelope version {data[1]}")
    if data[2] not in KINDS:
        raise ProtocolError("BAD_KIND", f"unknown envelope kind {data[2]:#x}")
    return data[2], data[HEADER_LEN:]
