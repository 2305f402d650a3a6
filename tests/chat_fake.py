"""An in-memory ``ChatApi`` for GUI tests and tools/screenshots.py (no network, no database).

It records each call and puts on ``events`` what the real chat part would tell a face (the
events of client/chat/events.py), so the window under test sees the same sequence. Lines are
really signed (``client.chat.wire.sign_line``) so they carry ids like the engine's.
"""

from __future__ import annotations

import itertools
import queue
from pathlib import Path

import nacl.signing

from client.chat import events as cev
from client.chat import names
from client.chat.api import PersonInfo, TopicInfo
from client.chat.channels import ChannelError, ChannelInfo
from client.chat.wire import Kind, SignedLine, sign_line
from client.errors import UnknownPeer

KEYS = {}


def key_of(nick: str) -> nacl.signing.SigningKey:
    if nick not in KEYS:
        KEYS[nick] = nacl.signing.SigningKey(bytes([len(KEYS) + 1]) * 32)
    return KEYS[nick]


_clock = itertools.count(1_700_000_000_000, 60_000)


def line(author: str, target: str, text: str, kind: Kind = Kind.MESSAGE,
         ts_ms: int | None = None) -> SignedLine:
    return sign_line(key_of(author), author=author, target=target, kind=kind, text=text,
                     ts_ms=next(_clock) if ts_ms is None else ts_ms)


class FakeChat:
    """What ``engine.chat`` offers, kept in dicts; ``online``: who may be reached now."""

    def __init__(self, me: str, events: queue.Queue[object], online: list[str]) -> None:
        self.nickname = me
        self.available = True
        self.events = events
        self.online = set(online)
        self.calls: list[tuple[object, ...]] = []
        self.joined: list[str] = []
        self.members: dict[str, list[str]] = {}
        self.topics: dict[str, TopicInfo] = {}
        self.stored: dict[str, list[SignedLine]] = {}
        self.away_text: str | None = None

    # --- set-up helpers for tests ----------------------------------------------------------
    def store(self, *lines: SignedLine) -> None:
        for one in lines:
            where = one.target if one.is_channel else (
                one.target if names.peer_key(one.author) == names.peer_key(self.nickname)
                else one.author)
            self.stored.setdefault(_key(where), []).append(one)

    def start(self, channels: list[str], members: dict[str, list[str]]) -> None:
        """Like ``ChatService.start``: our channels rejoined, with what history they have."""
        for channel in channels:
            self.joined.append(channel)
            self.members[_key(channel)] = members.get(channel, [])
            self.events.put(cev.ChannelJoined(channel, self.nickname, True, False))
            for nick in members.get(channel, []):
                self.events.put(cev.ChannelJoined(channel, nick, True, False))
            for old in self.stored.get(_key(channel), [])[-20:]:
                self.events.put(cev.ChannelMessage(channel, old.author, old.text, old, True))

    # --- ChatApi ---------------------------------------------------------------------------
    def say(self, text: str) -> None:
        self.calls.append(("say", text))

    def message(self, target: str, text: str) -> None:
        if target == "ghost":
            raise UnknownPeer("no such nick: ghost is not online")
        self.calls.append(("message", target, text))
        sent = line(self.nickname, target, text)
        self.store(sent)
        if not target.startswith("#") and target not in self.online:
            self.events.put(cev.Waiting(target, text, sent.msg_id))

    def action(self, target: str | None, text: str) -> None:
        self.calls.append(("action", target, text))

    def who(self) -> list[str]:
        return sorted([self.nickname, *self.online], key=str.casefold)

    def whois(self, nick: str) -> PersonInfo | None:
        return PersonInfo(nick, "AB12 CD34", False) if nick in self.online else None

    def verify(self, nick: str) -> bool:
        return nick in self.online

    def away(self, text: str | None) -> None:
        self.calls.append(("away", text))
        self.away_text = text
        self.events.put(cev.AwayChanged(self.nickname, text))

    def rename(self, new: str) -> None:
        self.calls.append(("rename", new))
        old, self.nickname = self.nickname, new
        self.events.put(cev.Renamed(old, new))

    def join(self, channel: str) -> str:
        self.calls.append(("join", channel))
        if _key(channel) not in map(_key, self.joined):
            self.joined.append(channel)
            self.members.setdefault(_key(channel), [])
            self.events.put(cev.ChannelJoined(channel, self.nickname, True, True))
        return channel

    def part(self, channel: str | None, reason: str) -> str:
        self.calls.append(("part", channel, reason))
        if channel is None or _key(channel) not in map(_key, self.joined):
            raise ChannelError(f"you are not in {channel}")
        self.joined = [c for c in self.joined if _key(c) != _key(channel)]
        self.events.put(cev.ChannelParted(channel, self.nickname, True, reason))
        return channel

    def topic(self, channel: str | None) -> TopicInfo | None:
        return self.topics.get(_key(channel or names.ROOM))

    def set_topic(self, channel: str | None, text: str) -> None:
        self.calls.append(("set_topic", channel, text))
        where = channel or names.ROOM
        self.topics[_key(where)] = TopicInfo(where, text, self.nickname)
        self.events.put(cev.TopicChanged(where, text, self.nickname))

    def list_channels(self) -> list[ChannelInfo]:
        out = [ChannelInfo(c, len(self.members.get(_key(c), [])) + 1,
                           self.topics[_key(c)].text if _key(c) in self.topics else "", True)
               for c in self.joined]
        return out + [ChannelInfo("#music", 4, "lo-fi all day", False)]

    def names(self, channel: str | None) -> tuple[str, list[str]]:
        where = channel or names.ROOM
        return where, sorted([self.nickname, *self.members.get(_key(where), [])],
                             key=str.casefold)

    def history(self, target: str | None, count: int) -> list[SignedLine]:
        self.calls.append(("history", target, count))
        return self.stored.get(_key(target or names.ROOM), [])[-count:]

    def search(self, text: str) -> list[SignedLine]:
        return [x for lines in self.stored.values() for x in lines if text in x.text]

    def forget_history(self, target: str | None) -> int:
        return len(self.stored.pop(_key(target or names.ROOM), []))

    def offer_file(self, nick: str, path: Path) -> list[int]:
        return []

    def accept_file(self, transfer_id: int) -> None:
        pass

    def decline_file(self, transfer_id: int) -> None:
        pass

    def cancel_file(self, transfer_id: int) -> None:
        pass

    def netcheck(self) -> list[str]:
        return ["public address unknown (offline fake)"]


def _key(target: str) -> str:
    return names.channel_key(target) if target.startswith("#") else names.peer_key(target)
