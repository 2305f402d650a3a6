"""A stand-in ``ChatApi`` for the IRC session tests: records every call, answers from a small
in-memory state. (The gateway's own network code is never faked: see test_irc_gateway.py.)"""

from __future__ import annotations

from pathlib import Path

from client.chat.api import PersonInfo, TopicInfo
from client.chat.channels import ChannelError, ChannelInfo
from client.chat.wire import Kind, SignedLine
from client.errors import ClientError, UnknownPeer


def signed(author: str, target: str, text: str, ts_ms: int = 1_700_000_000_000,
           kind: Kind = Kind.MESSAGE) -> SignedLine:
    return SignedLine(author, b"k" * 32, target, b"i" * 16, ts_ms, 1, kind, text, b"s" * 64)


class FakeChat:
    def __init__(self, nickname: str = "alice") -> None:
        self.nickname = nickname
        self.available = True
        self.calls: list[tuple] = []
        self.online = ["bob", "carol"]
        self.channels: dict[str, list[str]] = {"#room": ["bob", "carol"]}
        self.joined = ["#room"]
        self.topics: dict[str, TopicInfo] = {"#room": TopicInfo("#room", "welcome", "bob")}
        self.stored: dict[str, list[SignedLine]] = {
            "#room": [signed("bob", "#room", "earlier"), signed("bob", "#room", "waves",
                                                               kind=Kind.ACTION)]}
        self.taken = {"mallory"}

    def say(self, text: str) -> None:
        self.calls.append(("say", text))

    def message(self, target: str, text: str) -> None:
        if target.startswith("#") and target not in self.joined:
            raise ChannelError(f"you are not in {target}")
        self.calls.append(("message", target, text))

    def action(self, target: str | None, text: str) -> None:
        self.calls.append(("action", target, text))

    def who(self) -> list[str]:
        return [self.nickname, *self.online]

    def whois(self, nick: str) -> PersonInfo | None:
        if nick.lower() not in self.online:
            return None
        return PersonInfo(nick, "ABCD-EF01", verified=False, away="lunch",
                          channels=("#room",))

    def verify(self, nick: str) -> bool:
        self.calls.append(("verify", nick))
        return True

    def away(self, text: str | None) -> None:
        self.calls.append(("away", text))

    def rename(self, new: str) -> None:
        if new.lower() in self.taken:
            raise ClientError(f"the nickname {new} is taken")
        self.calls.append(("rename", new))
        self.nickname = new

    def join(self, channel: str) -> str:
        if len(self.joined) >= 3:
            raise ChannelError("too many channels")
        self.calls.append(("join", channel))
        self.joined.append(channel)
        self.channels.setdefault(channel, [])
        return channel

    def part(self, channel: str | None, reason: str) -> str:
        self.calls.append(("part", channel, reason))
        self.joined.remove(channel)
        return channel

    def topic(self, channel: str | None) -> TopicInfo | None:
        return self.topics.get(channel)

    def set_topic(self, channel: str | None, text: str) -> None:
        self.calls.append(("set_topic", channel, text))
        self.topics[channel] = TopicInfo(channel, text, self.nickname)

    def list_channels(self) -> list[ChannelInfo]:
        return [ChannelInfo(c, len(m) + (c in self.joined),
                            self.topics[c].text if c in self.topics else "", c in self.joined)
                for c, m in self.channels.items()]

    def names(self, channel: str | None) -> tuple[str, list[str]]:
        return channel, sorted([self.nickname, *self.channels.get(channel, [])])

    def history(self, target: str | None, count: int) -> list[SignedLine]:
        return self.stored.get(target, [])[-count:]

    def search(self, text: str) -> list[SignedLine]:
        return [x for lines in self.stored.values() for x in lines if text in x.text]

    def forget_history(self, target: str | None) -> int:
        return 0

    def offer_file(self, nick: str, path: Path) -> list[int]:
        raise UnknownPeer(f"{nick} is not online")

    def accept_file(self, transfer_id: int) -> None: ...

    def decline_file(self, transfer_id: int) -> None: ...

    def cancel_file(self, transfer_id: int) -> None: ...

    def netcheck(self) -> list[str]:
        return ["reachable"]

