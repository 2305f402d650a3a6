"""What the chat modules tell the engine and the faces: frozen dataclasses.

Face events (``ChatEvent``) are shown to the user (``client.chat.lines`` gives the terminal line).
Engine events (``EngineEvent``) are for the engine only: it routes them to history, backfill and
the outbox; they never reach a face.
"""

from __future__ import annotations

from dataclasses import dataclass

from client.chat.wire import BackfillRequest, SignedLine


@dataclass(frozen=True)
class Send:
    """Send ``payload`` (a chat control payload) to each of ``peers`` (Messenger KIND_CONTROL)."""

    peers: tuple[str, ...]
    payload: bytes


@dataclass(frozen=True)
class ChannelJoined:
    channel: str
    nick: str
    mine: bool  # a channel we are in (the terminal shows only those)
    fresh: bool = True  # False: learned from a peer's state when we met it, not a new join


@dataclass(frozen=True)
class ChannelParted:
    channel: str
    nick: str
    mine: bool
    reason: str = ""
    quit: bool = False  # the peer left the directory (the roster already says so)


@dataclass(frozen=True)
class TopicChanged:
    channel: str
    text: str
    setter: str
    mine: bool = True
    history: bool = False


@dataclass(frozen=True)
class AwayChanged:
    nick: str
    text: str | None  # None: back
    fresh: bool = True


@dataclass(frozen=True)
class Renamed:
    old: str
    new: str


@dataclass(frozen=True)
class ChannelMessage:
    channel: str
    sender: str
    text: str
    line: SignedLine
    history: bool = False
    warning: str | None = None  # the sender's key changed (not verified since)


@dataclass(frozen=True)
class PrivateLine:
    sender: str
    text: str
    line: SignedLine
    history: bool = False
    warning: str | None = None  # the sender's key changed (not verified since)


@dataclass(frozen=True)
class Action:
    sender: str
    text: str
    channel: str | None  # None: a private action
    line: SignedLine
    history: bool = False
    warning: str | None = None  # the sender's key changed (not verified since)


@dataclass(frozen=True)
class AwayReply:
    """``nick`` is away and answered our private message with its away text (once)."""

    nick: str
    text: str


@dataclass(frozen=True)
class Waiting:
    """A private message kept in the outbox until ``nick`` is reachable."""

    nick: str
    text: str
    msg_id: bytes


@dataclass(frozen=True)
class DeliveredLater:
    nick: str
    text: str
    msg_id: bytes


@dataclass(frozen=True)
class Failed:
    nick: str
    text: str
    msg_id: bytes


ChatEvent = (ChannelJoined | ChannelParted | TopicChanged | AwayChanged | Renamed
             | ChannelMessage | PrivateLine | Action | AwayReply | Waiting | DeliveredLater
             | Failed)


@dataclass(frozen=True)
class ReceiptReceived:
    """``peer`` stored our private lines ``msg_ids``: mark them delivered in the outbox."""

    peer: str
    msg_ids: tuple[bytes, ...]


@dataclass(frozen=True)
class BackfillAsked:
    peer: str
    request: BackfillRequest


@dataclass(frozen=True)
class BackfillArrived:
    peer: str
    channel: str
    last: bool
    lines: tuple[SignedLine, ...]


EngineEvent = ReceiptReceived | BackfillAsked | BackfillArrived
