"""The one command table (client/chat/commands.py) against a recording fake of ChatApi."""

from __future__ import annotations

from pathlib import Path

import nacl.signing
import pytest
from hypothesis import given
from hypothesis import strategies as st

from client.chat import commands as cmd
from client.chat.api import ChatApi, PersonInfo, TopicInfo
from client.chat.channels import ChannelError, ChannelInfo
from client.chat.wire import Kind, SignedLine, sign_line
from client.errors import UnknownPeer

KEY = nacl.signing.SigningKey(b"\x01" * 32)


class FakeApi:
    """Records every call as (name, args); answers with canned values."""

    nickname = "me"
    available = True

    def __init__(self) -> None:
        self.calls: list[tuple[object, ...]] = []
        self.lines = [sign_line(KEY, author="alice", target="#g", kind=Kind.MESSAGE, text="x",
                                ts_ms=0)]

    def _rec(self, *call: object) -> None:
        self.calls.append(call)

    def say(self, text: str) -> None:
        self._rec("say", text)

    def message(self, target: str, text: str) -> None:
        if target == "ghost":
            raise UnknownPeer("no such nick: ghost")
        self._rec("message", target, text)

    def action(self, target: str | None, text: str) -> None:
        self._rec("action", target, text)

    def who(self) -> list[str]:
        return ["me", "bob", "Alice"]

    def whois(self, nick: str) -> PersonInfo | None:
        if nick != "bob":
            return None
        return PersonInfo("bob", "ABCD EFGH", True, False, ("::1", 7700), "lunch", ("#g",))

    def verify(self, nick: str) -> bool:
        return nick == "bob"

    def away(self, text: str | None) -> None:
        self._rec("away", text)

    def rename(self, new: str) -> None:
        self._rec("rename", new)

    def join(self, channel: str) -> str:
        self._rec("join", channel)
        return channel

    def part(self, channel: str | None, reason: str) -> str:
        if channel == "#nope":
            raise ChannelError("you are not in #nope; /join #nope first")
        self._rec("part", channel, reason)
        return channel or "#room"

    def topic(self, channel: str | None) -> TopicInfo | None:
        return TopicInfo("#g", "chess", "alice") if channel == "#g" else None

    def set_topic(self, channel: str | None, text: str) -> None:
        self._rec("set_topic", channel, text)

    def list_channels(self) -> list[ChannelInfo]:
        return [ChannelInfo("#g", 2, "chess", True), ChannelInfo("#room", 3, "", False)]

    def names(self, channel: str | None) -> tuple[str, list[str]]:
        return (channel or "#room", ["alice", "me"])

    def history(self, target: str | None, count: int) -> list[SignedLine]:
        self._rec("history", target, count)
        return self.lines

    def search(self, text: str) -> list[SignedLine]:
        self._rec("search", text)
        return []

    def forget_history(self, target: str | None) -> int:
        self._rec("forget", target)
        return 7

    def offer_file(self, nick: str, path: Path) -> list[int]:
        self._rec("offer", nick, path)
        return [3]

    def accept_file(self, transfer_id: int) -> None:
        self._rec("accept", transfer_id)

    def decline_file(self, transfer_id: int) -> None:
        self._rec("decline", transfer_id)

    def cancel_file(self, transfer_id: int) -> None:
        self._rec("cancel", transfer_id)

    def netcheck(self) -> list[str]:
        return ["public address 1.2.3.4:7700", "behind NAT: no"]


def run(line: str, here: str | None = None) -> tuple[cmd.Reply, list[tuple[object, ...]]]:
    api = FakeApi()
    typed: ChatApi = api  # the fake satisfies the declared Protocol
    return cmd.run_line(line, typed, here), api.calls


@pytest.mark.parametrize(("line", "calls"), [
    ("hello", [("say", "hello")]),
    ("//not a command", [("say", "/not a command")]),
    ("/msg bob hi  there", [("message", "bob", "hi  there")]),
    ("/MSG #Games hi", [("message", "#Games", "hi")]),
    ("/me waves", [("action", None, "waves")]),
    ("/join #games", [("join", "#games")]),
    ("/part", [("part", None, "")]),
    ("/part #g", [("part", "#g", "")]),
    ("/part bye all", [("part", None, "bye all")]),
    ("/part #g bye", [("part", "#g", "bye")]),
    ("/topic #g new topic", [("set_topic", "#g", "new topic")]),
    ("/topic new topic", [("set_topic", None, "new topic")]),
    ("/away lunch", [("away", "lunch")]),
    ("/away", [("away", None)]),
    ("/nick alicia", [("rename", "alicia")]),
    ("/history", [("history", None, 50)]),
    ("/history 20", [("history", None, 20)]),
    ("/history bob 20", [("history", "bob", 20)]),
    ("/history #g", [("history", "#g", 50)]),
    ("/history #g 999999", [("history", "#g", cmd.HISTORY_MAX)]),
    ("/search two words", [("search", "two words")]),
    ("/forget-history #g", [("forget", "#g")]),
    ("/forget-history *", [("forget", "*")]),
    ("/forget-history", [("forget", None)]),
    ("/send bob ~/a file.txt", [("offer", "bob", Path("~/a file.txt").expanduser())]),
    ("/accept 3", [("accept", 3)]),
    ("/decline 4", [("decline", 4)]),
    ("/cancel 5", [("cancel", 5)]),
])
def test_engine_calls(line: str, calls: list[tuple[object, ...]]) -> None:
    assert run(line)[1] == calls


def test_here_is_the_faces_conversation() -> None:
    assert run("hi", here="bob")[1] == [("message", "bob", "hi")]
    assert run("/me waves", here="bob")[1] == [("action", "bob", "waves")]
    assert run("/history", here="bob")[1] == [("history", "bob", 50)]


@pytest.mark.parametrize(("line", "text"), [
    ("/join games", "channel names start with #"),
    ("/join", "usage: /join #channel"),
    ("/join #a b", "usage: /join #channel"),
    ("/join #a,b", "channel names cannot contain commas"),
    ("/msg bob", "usage: /msg NICK|#channel text"),
    ("/msg", "usage: /msg NICK|#channel text"),
    ("/msg bad\x01nick hi", "nickname must not contain the character U+0001"),
    ("/accept x", "usage: /accept ID"),
    ("/accept 0", "usage: /accept ID"),
    ("/accept 1 2", "usage: /accept ID"),
    ("/whois", "usage: /whois NICK"),
    ("/frobnicate", "unknown command /frobnicate; /help lists them"),
    ("/me", "usage: /me text"),
    ("/history * 3", "usage: /history [#channel|NICK] [N]"),
])
def test_usage_errors_in_plain_words(line: str, text: str) -> None:
    reply, calls = run(line)
    assert calls == []
    assert reply.notices == (text,)


def test_engine_refusals_become_notices() -> None:
    assert run("/msg ghost hi")[0].notices == ("no such nick: ghost",)
    assert run("/part #nope")[0].notices == ("you are not in #nope; /join #nope first",)


def test_replies() -> None:
    assert run("/who")[0].notices == ("online (3): Alice, bob, me",)
    assert run("/whois bob")[0].notices == (
        "bob at [::1]:7700: fingerprint ABCD EFGH (verified); away: lunch; "
        "channels in common: #g",)
    assert run("/whois zed")[0].notices == ("no such nick: zed",)
    assert run("/verify bob")[0].notices == ("bob's key is now marked as verified",)
    assert run("/topic #g")[0].notices == ("#g topic: chess (set by alice)",)
    assert run("/topic #h")[0].notices == ("#h has no topic",)
    assert run("/list")[0].notices == ("#g (2) *: chess", "#room (3)")
    assert run("/names")[0].notices == ("#room (2): alice, me",)
    assert run("/netcheck")[0].notices == ("public address 1.2.3.4:7700", "behind NAT: no")
    assert run("/search nothing")[0].notices == ("nothing found: nothing",)
    assert len(run("/history")[0].history) == 1
    assert run("/forget-history *")[0].notices == ("forgot 7 line(s) of every conversation",)
    assert run("/send bob f")[0].notices == ("offered f to bob as #3",)
    assert run("/quit")[0].quit
    assert run("   ") == (cmd.Reply(), [])


def test_help_lists_every_command_once() -> None:
    (line,) = run("/help")[0].notices
    for spec in cmd.TABLE:
        assert f"/{spec.name}," in line or f"/{spec.name};" in line
    assert run("/help join")[0].notices == (
        "/join #channel -- join a channel (created if nobody has it) and make it current",)
    assert run("/help /nope")[0].notices == ("unknown command /nope",)
    names = [s.name for s in cmd.TABLE]
    assert len(names) == len(set(names))
    for old in ("msg", "who", "whois", "verify", "send", "accept", "decline", "cancel", "quit",
                "help", "join", "part", "topic", "list", "names", "me", "away", "nick",
                "history", "search", "forget-history", "netcheck"):
        assert old in names


@given(st.text(max_size=80))
def test_parse_never_raises(line: str) -> None:
    result = cmd.parse(line)
    assert result is None or isinstance(result, cmd.Command | cmd.UsageError)
