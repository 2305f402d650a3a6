"""What the window knows about channels and people, built from the chat events (no Tk).

The sidebar, the topic bar and the member list all read this one model; the chat handlers
(client/gui/channel_handlers.py) feed it each ``client.chat.events`` event in order. Nicknames
and channel names are compared by their keys (``client.chat.names``), shown as first seen.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from client.chat import events as cev
from client.chat import names
from client.chat.channels import ChannelInfo

ROOM = names.ROOM


def channel_key(name: str) -> str:
    """The comparison key of a channel name; an invalid one as given (it matches nobody)."""
    return names.channel_key(name) if names.is_channel(name) else name


def is_room(target: str | None) -> bool:
    return target is None or names.same_channel(target, ROOM)


@dataclass
class Channel:
    name: str
    joined: bool = False
    members: dict[str, str] = field(default_factory=dict)  # nick key -> nick, us excluded
    topic: str = ""
    setter: str = ""


class ChannelState:
    """Channels (ours and those we heard of), their members and topics, and who is away."""

    def __init__(self, me: str) -> None:
        self.me = me
        self._channels: dict[str, Channel] = {}
        self._away: dict[str, str] = {}  # nick key -> away text

    # --- queries ---------------------------------------------------------------------------
    def joined(self) -> list[str]:
        """Our channels, ``#room`` first, then by name."""
        ours = [c.name for c in self._channels.values() if c.joined]
        return sorted(ours, key=lambda n: (not is_room(n), n.casefold()))

    def is_joined(self, channel: str) -> bool:
        found = self._channels.get(channel_key(channel))
        return found is not None and found.joined

    def display(self, channel: str) -> str:
        found = self._channels.get(channel_key(channel))
        return found.name if found is not None else channel

    def members(self, channel: str) -> list[str]:
        """Everyone in ``channel`` we know of, us included when we are in it."""
        found = self._channels.get(channel_key(channel))
        if found is None:
            return []
        out = list(found.members.values()) + ([self.me] if found.joined else [])
        return sorted(out, key=str.casefold)

    def topic(self, channel: str) -> tuple[str, str]:
        """(text, set by); empty when there is none."""
        found = self._channels.get(channel_key(channel))
        return ("", "") if found is None else (found.topic, found.setter)

    def away_of(self, nick: str) -> str | None:
        return self._away.get(names.peer_key(nick))

    def away_map(self) -> dict[str, str]:
        """Nickname (as a member list shows it) -> away text."""
        shown = {names.peer_key(n): n for c in self._channels.values()
                 for n in c.members.values()}
        shown[names.peer_key(self.me)] = self.me
        return {shown.get(k, k): text for k, text in self._away.items()}

    # --- what the engine tells us ----------------------------------------------------------
    def seed(self, channels: list[ChannelInfo], members: dict[str, list[str]]) -> None:
        """What ``ChatApi.list_channels`` and ``names`` said when the window opened."""
        for info in channels:
            chan = self._channel(info.name)
            chan.joined = chan.joined or info.joined
            if info.topic and not chan.topic:
                chan.topic = info.topic
        for channel, nicks in members.items():
            chan = self._channel(channel)
            for nick in nicks:
                self._add(chan, nick)

    def apply(self, event: cev.ChatEvent) -> None:
        if isinstance(event, cev.ChannelJoined):
            chan = self._channel(event.channel)
            if self._is_me(event.nick):
                chan.joined = True
            else:
                self._add(chan, event.nick)
        elif isinstance(event, cev.ChannelParted):
            self._parted(event)
        elif isinstance(event, cev.TopicChanged):
            chan = self._channel(event.channel)
            chan.topic, chan.setter = event.text, event.setter
        elif isinstance(event, cev.AwayChanged):
            if event.text is None:
                self._away.pop(names.peer_key(event.nick), None)
            else:
                self._away[names.peer_key(event.nick)] = event.text
        elif isinstance(event, cev.Renamed):
            self._renamed(event.old, event.new)

    def _parted(self, event: cev.ChannelParted) -> None:
        key = channel_key(event.channel)
        chan = self._channels.get(key)
        if chan is None:
            return
        if self._is_me(event.nick):
            chan.joined = False
        else:
            chan.members.pop(names.peer_key(event.nick), None)
        if event.quit:
            self._away.pop(names.peer_key(event.nick), None)
        if not chan.joined and not chan.members and not is_room(chan.name):
            del self._channels[key]

    def _renamed(self, old: str, new: str) -> None:
        okey, nkey = names.peer_key(old), names.peer_key(new)
        if self._is_me(old):
            self.me = new
        for chan in self._channels.values():
            if chan.members.pop(okey, None) is not None:
                chan.members[nkey] = new
        if okey in self._away:
            self._away[nkey] = self._away.pop(okey)

    def _channel(self, name: str) -> Channel:
        key = channel_key(name)
        chan = self._channels.get(key)
        if chan is None:
            chan = self._channels[key] = Channel(name)
        return chan

    def _add(self, chan: Channel, nick: str) -> None:
        if not self._is_me(nick):
            chan.members[names.peer_key(nick)] = nick

    def _is_me(self, nick: str) -> bool:
        return names.peer_key(nick) == names.peer_key(self.me)


def mentions(text: str, nick: str | None) -> bool:
    """Whether ``text`` names ``nick`` as a word (``alice:``, ``@alice``, not ``malice``)."""
    if not nick:
        return False
    pattern = rf"(?<!\w){re.escape(nick.casefold())}(?!\w)"
    return re.search(pattern, text.casefold()) is not None
