"""What the engine tells a UI. Plain frozen dataclasses, put on ``Engine.events`` in order.

Chat events (channels, history, the outbox) are ``client.chat.events.ChatEvent``; they travel on
the same queue.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from client.chat.events import ChatEvent


@dataclass(frozen=True)
class Registered:
    nickname: str
    roster: tuple[str, ...]


@dataclass(frozen=True)
class RoomMessage:
    sender: str
    text: str
    msg_id: int = 0
    warning: str | None = None


@dataclass(frozen=True)
class PrivateMessage:
    sender: str
    text: str
    msg_id: int = 0
    warning: str | None = None


@dataclass(frozen=True)
class Joined:
    nickname: str
    rename: bool = False  # the second half of a rename the peer announced (chat ``Renamed``)


@dataclass(frozen=True)
class Left:
    nickname: str
    rename: bool = False  # the first half of a rename: the terminal prints no line


@dataclass(frozen=True)
class NotDelivered:
    nickname: str
    text: str
    msg_id: int
    private: bool = False


@dataclass(frozen=True)
class ServerLost:
    reason: str = ""


@dataclass(frozen=True)
class ServerBack:
    pass


@dataclass(frozen=True)
class Reregistered:
    """The server had forgotten us; we registered again under the same nickname."""


@dataclass(frozen=True)
class KeyChanged:
    nickname: str
    old_fingerprint: str
    new_fingerprint: str


@dataclass(frozen=True)
class PeerUnreachable:
    nickname: str
    reason: str


@dataclass(frozen=True)
class FileOffered:
    transfer_id: int
    sender: str
    name: str
    size: int


@dataclass(frozen=True)
class FileProgress:
    transfer_id: int
    peer: str
    name: str
    done: int
    total: int
    bytes_per_s: float
    outgoing: bool


@dataclass(frozen=True)
class FileDone:
    transfer_id: int
    peer: str
    name: str
    path: Path | None = None
    outgoing: bool = False


@dataclass(frozen=True)
class FileFailed:
    transfer_id: int
    peer: str
    name: str
    reason: str
    outgoing: bool = False


@dataclass(frozen=True)
class Fatal:
    text: str


@dataclass(frozen=True)
class Notice:
    """Something about reaching people to tell the user in plain words (no server: LAN mode;
    a server found; a nickname clash on the LAN)."""

    text: str


@dataclass(frozen=True)
class Whois:
    nickname: str
    fingerprint: str | None
    verified: bool = False
    key_changed: bool = False
    address: tuple[str, int] | None = field(default=None)
    path: str | None = None  # "LAN 10.0.0.2:5000, rtt 1 ms", "direct through NAT ...", "none yet"


Event = (
    Registered | RoomMessage | PrivateMessage | Joined | Left | NotDelivered | ServerLost
    | ServerBack | Reregistered | KeyChanged | PeerUnreachable | FileOffered | FileProgress
    | FileDone | FileFailed | Fatal | Notice | ChatEvent
)
