"""The declared interfaces between the client's layers.

The engine holds its parts by these types, so a reader (and a type checker) sees what each layer
offers without asking it at run time. Implementations: ``Transport`` by the plain and the secure
peer transports; ``FileService`` by the file-transfer manager.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol


class Transport(Protocol):
    """Sans-IO peer transport: frames in and out for the Messenger, datagrams to and from peers.

    Every method takes ``now`` where time matters and never touches a socket.
    """

    def wrap(self, peer: str, frame: bytes, now: float) -> None:
        """Queue ``frame`` for ``peer`` (may start a handshake)."""

    def unwrap(self, peer: str, datagram: bytes, now: float) -> bool:
        """A datagram from one of ``peer``'s candidate addresses; never raises. True when it
        authenticated as ``peer``'s (the path manager then trusts its source address)."""

    def seal(self, peer: str, frame: bytes) -> bytes | None:
        """One datagram carrying ``frame`` on the live session (not queued), or None."""

    def on_timer(self, now: float) -> None: ...

    def next_deadline(self) -> float | None: ...

    def take_outgoing(self) -> list[tuple[str, bytes]]:
        """(peer, datagram) pairs to send."""

    def take_frames(self) -> list[tuple[str, bytes]]:
        """(peer, frame) pairs for the Messenger, authenticated."""

    def take_events(self) -> list[object]:
        """Session events (started, key changed, unreachable), in order; before ``take_frames``."""

    def forget_peer(self, peer: str) -> None: ...

    def ensure_session(self, peer: str, now: float) -> bool:
        """True if a session with ``peer`` is up; else start one (unless one is under way)."""

    def session_key_for(self, peer: str, label: bytes) -> bytes | None:
        """32 bytes bound to the live session with ``peer``, or None (no session / no crypto)."""

    def own_fingerprint(self) -> str | None: ...

    def fingerprint(self, peer: str) -> str | None: ...

    def warning_for(self, peer: str) -> str | None: ...

    def key_changed(self, peer: str) -> bool: ...

    def is_verified(self, peer: str) -> bool: ...

    def mark_verified(self, peer: str) -> bool: ...

    def identity_key(self, peer: str) -> bytes | None:
        """The Ed25519 identity key ``peer`` proved in the live session, else its pin (chat
        lines are checked against it); None when unknown or without crypto."""

    def rename(self, nickname: str) -> None:
        """Our own nickname changed: the next handshakes bind the new one."""

    def close(self) -> None:
        """Flush anything still to be saved (pins); the engine calls it when it stops."""


class BulkSource(Protocol):
    """File data on the UDP path (``client.files.udplane.UdpLane``), driven by the engine thread.

    Its frames (first byte ``models.frames.FILE_STREAM``) travel sealed by the transport like
    the Messenger's, but the engine asks for them only after the chat's datagrams of the same
    turn went out, and at most ``budget`` per turn: chat is always ahead of file data.
    """

    def on_frame(self, peer: str, frame: bytes, now: float) -> None:
        """An authenticated frame from ``peer`` whose first byte is FILE_STREAM; never raises."""

    def take_bulk(self, now: float, budget: int) -> list[tuple[str, bytes]]:
        """Up to ``budget`` (peer, frame) pairs to seal and send now."""

    def next_deadline(self, now: float) -> float | None:
        """When ``take_bulk`` has something to do (``now``: at once), or None."""


class FileService(Protocol):
    """Peer-to-peer file transfer as the engine drives it; none of these blocks on the network."""

    port: int
    lane: BulkSource    # the UDP path of the transfers

    def start(self) -> None: ...

    def offer(self, peer: str, paths: list[Path]) -> list[int]: ...

    def accept(self, transfer_id: int) -> None: ...

    def decline(self, transfer_id: int) -> None: ...

    def cancel(self, transfer_id: int) -> None: ...

    def on_control(self, peer: str, payload: bytes) -> None:
        """An authenticated, reliable, in-order control payload (starts with b"F"); never raises."""

    def on_peer_left(self, peer: str) -> None: ...

    def on_undelivered(self, peer: str, payload: bytes) -> None: ...

    def tick(self, now: float) -> None: ...

    def close(self) -> None: ...
