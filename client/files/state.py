"""A file transfer's state, its record, the manager's tunables, and what workers may ask of it."""

from __future__ import annotations

import contextlib
import socket
import threading
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import BinaryIO, Protocol

from client.files import stream as fs
from client.files import wire


class State(StrEnum):
    """Where a transfer is. Only ``ENDED`` is final: once reported (FileDone/FileFailed) a
    transfer never moves again and emits nothing more."""

    OFFERED = "offered"     # offer sent or received, not answered yet
    ACCEPTED = "accepted"   # accepted, its connection not (or no longer) made
    RUNNING = "running"     # a connection carries (or is about to carry) its stream
    RELEASED = "released"   # receiving side: the worker gave its .part back, report pending
    ENDED = "ended"         # reported and out of the table


@dataclass
class Settings:
    """Timeouts and limits, read when used (a test may change them on a live manager)."""

    offer_ttl: float = 120.0
    io_timeout: float = 30.0            # a peer silent this long mid-transfer has gone
    connect_timeout: float = 5.0
    reverse_timeout: float = 30.0       # how long the receiver waits for the sender to connect
    handshake_timeout: float = 3.0      # for the preamble on an accepted connection
    progress_interval: float = 0.25
    retry_pause: float = 0.2            # before another try on a connection dropped early
    reason_grace: float = 0.5
    close_timeout: float = 1.0          # close() waits this long in all for the threads
    max_transfers: int = 256
    max_offers_per_peer: int = 32
    max_pending_connections: int = 32   # accepted, preamble not yet complete: in all ...
    max_pending_per_host: int = 4       # ... and from one source host
    accept_batch: int = 64
    free_space_margin: int = 16 << 20
    chunk: int = fs.CHUNK
    # when a transfer goes over the peer's UDP path: "auto" when TCP fails both ways, "udp"
    # straight away, "tcp" never (then the transfer fails as before)
    udp: str = "auto"


@dataclass
class Meter:
    """Progress pacing and the smoothed rate for the ETA."""

    last_emit: float = 0.0
    last_done: int = 0
    rate: float = 0.0


@dataclass(eq=False)
class Transfer:
    tid: int
    peer: str
    token: bytes
    name: str                       # what the UI shows: sanitized name (incoming), file name (out)
    size: int
    mtime_ns: int
    outgoing: bool
    path: Path | None = None        # source file (outgoing)
    port: int = 0                   # the peer's TCP listener (incoming)
    state: State = State.OFFERED
    since: float | None = None      # tick time the current state started (set on first tick)
    reason: str | None = None       # why it was stopped, when we know before the socket breaks
    discard: bool = False           # delete the .part when the worker stops (explicit cancel)
    part: Path | None = None
    # the workers' side: control.py never touches these
    out: BinaryIO | None = None     # the open .part (incoming)
    sock: fs.Conn | None = None       # TCP, or a stream on the UDP path
    reverse_sock: socket.socket | None = None
    stop: threading.Event = field(default_factory=threading.Event)
    reverse_ready: threading.Event = field(default_factory=threading.Event)
    meter: Meter = field(default_factory=Meter)
    emit_lock: threading.RLock = field(default_factory=threading.RLock)  # progress vs. take

    def move(self, to: State) -> None:
        """Change state unless it has ended (a late worker must not bring it back)."""
        if self.state is not State.ENDED:
            self.state = to


class Core(Protocol):
    """What the sending and receiving workers use of the manager."""

    lock: threading.RLock
    settings: Settings
    downloads: Path
    port: int

    def key(self, t: Transfer) -> bytes | None: ...

    def address(self, peer: str) -> tuple[str, int] | None: ...

    def send(self, peer: str, msg: wire.Control) -> None: ...

    def progress(self, t: Transfer, done: int) -> None: ...

    def finished(self, t: Transfer, path: Path) -> None: ...

    def stop(self, t: Transfer, reason: str, *, tell_peer: bool, discard: bool = False
             ) -> None: ...

    def fail(self, t: Transfer, reason: str, *, lost: bool = False, tell: bool = True
             ) -> None: ...

    def is_live(self, t: Transfer) -> bool: ...

    def udp_first(self, peer: str) -> bool:
        """Skip TCP: the transfer goes over the UDP path straight away."""

    def udp_allowed(self) -> bool: ...

    def open_stream(self, t: Transfer) -> fs.Conn:
        """A new stream on the UDP path for incoming ``t``; OSError if there is no room."""


def reason_of(exc: BaseException) -> str:
    """An exception from a transfer in words for the user."""
    if isinstance(exc, fs.StreamError):
        return str(exc)
    if isinstance(exc, TimeoutError):
        return "the peer stopped responding"
    if isinstance(exc, ConnectionError):
        return f"connection lost ({exc.strerror or exc})"
    if isinstance(exc, OSError):    # the disk, usually: say which file
        where = f": {exc.filename}" if exc.filename else ""
        return f"{exc.strerror or exc}{where}"
    return str(exc)


def is_lost(exc: BaseException) -> bool:
    return isinstance(exc, fs.ConnectionLost | ConnectionError)


def hang_up(sock: fs.Conn) -> None:
    """Wake any thread blocked on ``sock`` (close alone does not on Linux) and close it."""
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    sock.close()
