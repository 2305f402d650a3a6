"""The unencrypted transport: one frame per PLAIN envelope, no handshake, sans-IO.

Used before encryption exists and as the benchmark baseline. It only puts frames into envelopes
and takes them out; where a datagram may come from (the roster address of ``peer``) is checked by
the engine before ``unwrap``. Same interface as ``client.peer.secure.SecureTransport``
(docs/ARCHITECTURE.md, "Transports").
"""

from __future__ import annotations

import logging
from collections import Counter

from models.errors import ProtocolError
from models.peer_wire import HEADER_LEN, MAX_FRAME, PLAIN, make_envelope, parse_envelope

log = logging.getLogger(__name__)

MAX_PENDING = 65536  # frames or datagrams waiting to be taken, per direction
_HEADER = make_envelope(PLAIN, b"")  # what every PLAIN datagram starts with


class PlainTransport:
    """The ``client.contracts.Transport`` without crypto: no sessions, keys or pins."""

    def __init__(self, *, now: float = 0.0) -> None:
        self._outgoing: list[tuple[str, bytes]] = []
        self._frames: list[tuple[str, bytes]] = []
        self.counters: Counter[str] = Counter()

    def wrap(self, peer: str, frame: bytes, now: float) -> None:
        """Queue ``frame`` for ``peer`` as one PLAIN datagram."""
        if len(frame) > MAX_FRAME:
            raise ValueError(f"frame of {len(frame)} bytes exceeds {MAX_FRAME}")
        if len(self._outgoing) >= MAX_PENDING:
            self.counters["dropped_outgoing"] += 1  # the engine stopped draining; loss is fine
            return
        self._outgoing.append((peer, _HEADER + frame))

    def unwrap(self, peer: str, datagram: bytes, now: float) -> bool:
        """Take the frame out of a PLAIN datagram from ``peer``; anything else is dropped.
        True when a frame was taken (nothing is authenticated here: the best there is)."""
        if HEADER_LEN < len(datagram) <= HEADER_LEN + MAX_FRAME and \
                datagram[:HEADER_LEN] == _HEADER and len(self._frames) < MAX_PENDING:
            self._frames.append((peer, datagram[HEADER_LEN:]))  # the usual case, checked as below
            return True
        try:
            kind, body = parse_envelope(datagram)
        except ProtocolError as exc:
            self.counters["malformed"] += 1
            log.debug("dropped bad datagram from %s: %s", peer, exc)
            return False
        if kind != PLAIN:
            # a peer that speaks the encrypted protocol: we have no session to offer
            self.counters["not_plain"] += 1
            log.debug("dropped non-PLAIN datagram (kind %#x) from %s", kind, peer)
            return False
        if not body or len(body) > MAX_FRAME:
            self.counters["malformed"] += 1
            log.debug("dropped PLAIN datagram with a %d-byte frame from %s", len(body), peer)
            return False
        if len(self._frames) >= MAX_PENDING:
            self.counters["dropped_incoming"] += 1
            return False
        self._frames.append((peer, body))
        return True

    def seal(self, peer: str, frame: bytes) -> bytes | None:
        """One PLAIN datagram carrying ``frame`` (for a probe to one address)."""
        return _HEADER + frame

    def on_timer(self, now: float) -> None:
        """Nothing is timed without a handshake."""

    def next_deadline(self) -> float | None:
        return None

    def take_outgoing(self) -> list[tuple[str, bytes]]:
        out, self._outgoing = self._outgoing, []
        return out

    def take_frames(self) -> list[tuple[str, bytes]]:
        got, self._frames = self._frames, []
        return got

    def take_events(self) -> list[object]:
        return []

    def forget_peer(self, peer: str) -> None:
        """Drop whatever is still queued for or from ``peer``."""
        self._outgoing = [item for item in self._outgoing if item[0] != peer]
        self._frames = [item for item in self._frames if item[0] != peer]

    # ---- the rest of the Transport contract: nothing to secure, so nothing to say -------------

    def ensure_session(self, peer: str, now: float) -> bool:
        """Frames flow at once: there is no session to wait for."""
        return True

    def session_key_for(self, peer: str, label: bytes) -> bytes | None:
        return None

    def identity_key(self, peer: str) -> bytes | None:
        return None

    def rename(self, nickname: str) -> None:
        pass

    def own_fingerprint(self) -> str | None:
        return None

    def fingerprint(self, peer: str) -> str | None:
        return None

    def warning_for(self, peer: str) -> str | None:
        return None

    def key_changed(self, peer: str) -> bool:
        return False

    def is_verified(self, peer: str) -> bool:
        return False

    def mark_verified(self, peer: str) -> bool:
        return False

    def close(self) -> None:
        """Nothing to save."""
