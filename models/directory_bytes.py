"""The directory protocol's one encoder, at the byte level: no checks, no dataclasses.

``models.directory_wire`` validates a message and then encodes it with these functions; the
directory (``models.directory``, ``models.directory_push``) calls them directly on rows it
validated once, when they entered, and keeps their encoded text. So there is one way each
datagram is spelled, and the hot path (a PONG per PING, a REF_ADD per recipient) stays a
``%``-format of cached bytes.
"""

from __future__ import annotations

from hashlib import blake2b

DEFAULT_PACK_LIMIT = 1200
MAX_KEYWORD_LEN = 24


def entry_text(nickname: str, host: str, port: int) -> bytes:
    """A row ``nickname ip port`` as it appears in REFERENCE and REF_ADD."""
    return b"%s %s %d" % (nickname.encode(), host.encode(), port)


def frame_tail(body: bytes) -> bytes:
    """`` len body``: what follows the keyword in a datagram (shared by every recipient)."""
    return b" %d %s" % (len(body), body)


def frame_bytes(keyword: bytes, body: bytes) -> bytes:
    """``keyword len body``: one datagram for the owner of ``keyword``."""
    return b"%s %d %s" % (keyword, len(body), body)


def reference_line(texts: list[bytes]) -> bytes:
    """``REFERENCE n row row ...\\n`` from encoded rows."""
    if not texts:
        return b"REFERENCE 0\n"
    return b"REFERENCE %d %s\n" % (len(texts), b" ".join(texts))


def ping_body(nickname: str) -> bytes:
    """``PING nickname``: a plain PING's body (a PONG request adds `` digest``)."""
    return b"PING " + nickname.encode()


def pong_datagram(keyword: bytes, digest: int) -> bytes:
    """``keyword 21 PONG digest``: "PONG " + 16 hex digits is always 21 bytes."""
    return b"%s 21 PONG %016x" % (keyword, digest & 0xFFFFFFFFFFFFFFFF)


def body_budget(limit: int, keyword_len: int = MAX_KEYWORD_LEN) -> int:
    """Bytes a body may take so that ``keyword len body`` fits ``limit``."""
    # keyword, space, up to 5 len digits, space
    return limit - keyword_len - 2 - len(str(limit))


def pack_items(command: bytes, items: list[bytes], budget: int) -> list[list[bytes]]:
    """Greedy split of ``items`` into chunks whose ``COMMAND n item item ...`` body fits
    ``budget`` bytes. Raises ``ValueError`` if a single item cannot fit."""
    chunks: list[list[bytes]] = []
    chunk: list[bytes] = []
    size = 0  # bytes of the items in ``chunk``, one separating space each
    for item in items:
        # header "COMMAND nnn " counted with the count the chunk would have
        need = len(command) + 2 + len(str(len(chunk) + 1)) + size + len(item)
        if chunk and need > budget:
            chunks.append(chunk)
            chunk, size = [], 0
            need = len(command) + 3 + len(item)
        if need > budget:
            raise ValueError("a single entry does not fit the datagram limit")
        chunk.append(item)
        size += len(item) + 1
    if chunk:
        chunks.append(chunk)
    return chunks


def list_body(command: bytes, chunk: list[bytes]) -> bytes:
    """``COMMAND n item item ...``"""
    return b"%s %d %s" % (command, len(chunk), b" ".join(chunk))


def pack_bodies(command: bytes, items: list[bytes], limit: int = DEFAULT_PACK_LIMIT
                ) -> list[bytes]:
    """Bodies ``COMMAND n item item ...`` from already-encoded, already-valid items (a row's
    ``nickname ip port`` or a nickname), each fitting a datagram of ``limit`` with any keyword.
    For callers that keep their rows encoded; no checks."""
    return [list_body(command, c) for c in pack_items(command, items, body_budget(limit))]


def text_hash(text: bytes) -> int:
    """64-bit hash of one encoded row; a roster's digest XORs them."""
    return int.from_bytes(blake2b(text, digest_size=8).digest(), "big")


def format_digest(value: int) -> str:
    return f"{value & 0xFFFFFFFFFFFFFFFF:016x}"
