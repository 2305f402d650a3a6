"""What the engine offers the command table (and later the IRC gateway): ``ChatApi``.

Every method is called from a face's thread and may block briefly on the engine thread (like
today's ``Engine.send_room``). Our user's mistakes and refusals raise ``client.errors
.ClientError`` subclasses (``UnknownPeer``, ``MessageTooLarge``, ``ChannelError`` ...), whose
text is plain words; channel names and nicknames were already checked by the parser.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from client.chat.channels import ChannelInfo
from client.chat.wire import SignedLine


@dataclass(frozen=True)
class PersonInfo:
    """``/whois``: today's fields plus away text and channels in common."""

    nickname: str
    fingerprint: str | None
    verified: bool = False
    key_changed: bool = False
    address: tuple[str, int] | None = None
    away: str | None = None
    channels: tuple[str, ...] = field(default=())
    path: str | None = None  # "LAN 10.0.0.2:5000, rtt 1 ms", "direct through NAT ...", "none yet"


@dataclass(frozen=True)
class TopicInfo:
    channel: str
    text: str
    setter: str


class ChatApi(Protocol):
    nickname: str

    @property
    def available(self) -> bool:
        """False when this engine runs without the chat layer (no encryption, or switched off):
        then only today's room and private messages work, and a face shows no channels."""

    # talking
    def say(self, text: str) -> None:
        """Plain text: to the current channel."""

    def message(self, target: str, text: str) -> None:
        """``/msg``: to a channel we are in, or a private message (queued if offline)."""

    def action(self, target: str | None, text: str) -> None:
        """``/me``: ``target`` None is the current channel."""

    # people
    def who(self) -> list[str]:
        """Everyone online, us included."""

    def whois(self, nick: str) -> PersonInfo | None: ...

    def verify(self, nick: str) -> bool:
        """Mark the pinned key as verified; False if no key is known yet."""

    def away(self, text: str | None) -> None:
        """Away with ``text``; None: back."""

    def rename(self, new: str) -> None:
        """``/nick``: peers see a rename; the directory registration moves."""

    # channels
    def join(self, channel: str) -> str:
        """Join (and make current); returns the channel's display name."""

    def part(self, channel: str | None, reason: str) -> str: ...

    def topic(self, channel: str | None) -> TopicInfo | None: ...

    def set_topic(self, channel: str | None, text: str) -> None: ...

    def list_channels(self) -> list[ChannelInfo]: ...

    def names(self, channel: str | None) -> tuple[str, list[str]]:
        """(channel display name, members including us)."""

    # history
    def history(self, target: str | None, count: int) -> list[SignedLine]:
        """The last ``count`` lines of a conversation (None: the current channel)."""

    def search(self, text: str) -> list[SignedLine]: ...

    def forget_history(self, target: str | None) -> int:
        """Forget one conversation (None: the current channel; ``"*"``: every conversation);
        the number of lines dropped."""

    # files
    def offer_file(self, nick: str, path: Path) -> list[int]: ...

    def accept_file(self, transfer_id: int) -> None: ...

    def decline_file(self, transfer_id: int) -> None: ...

    def cancel_file(self, transfer_id: int) -> None: ...

    # network (issue 10)
    def netcheck(self) -> list[str]:
        """The reachability report, one plain-words line each."""
