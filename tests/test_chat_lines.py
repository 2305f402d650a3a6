"""Terminal lines (client/chat/lines.py): the issue's table, line by line."""

from __future__ import annotations

import nacl.signing
import pytest

from client.chat import events as ev
from client.chat import lines, wire
from client.config import format_address

KEY = nacl.signing.SigningKey(b"\x01" * 32)


def signed(text: str, target: str = "#room", kind: wire.Kind = wire.Kind.MESSAGE,
           author: str = "alice") -> wire.SignedLine:
    return wire.sign_line(KEY, author=author, target=target, kind=kind, text=text, ts_ms=0)


L = signed("x")


@pytest.mark.parametrize(("event", "line"), [
    (ev.ChannelMessage("#room", "alice", "text", L), "<alice> text"),
    (ev.ChannelMessage("#Room", "alice", "text", L), "<alice> text"),
    (ev.ChannelMessage("#games", "alice", "text", L), "[#games] <alice> text"),
    (ev.Action("alice", "waves", "#room", L), "* alice waves"),
    (ev.Action("alice", "waves", "#games", L), "[#games] * alice waves"),
    (ev.Action("alice", "waves", None, L), "* alice waves (private)"),
    (ev.ChannelJoined("#games", "alice", True), "-!- alice joined #games"),
    (ev.ChannelParted("#games", "alice", True), "-!- alice left #games"),
    (ev.ChannelParted("#games", "alice", True, "bye"), "-!- alice left #games (bye)"),
    (ev.TopicChanged("#games", "text", "alice"), "-!- #games topic: text (set by alice)"),
    (ev.AwayChanged("alice", "lunch"), "-!- alice is away: lunch"),
    (ev.AwayChanged("alice", None), "-!- alice is back"),
    (ev.Renamed("alice", "alicia"), "-!- alice is now known as alicia"),
    (ev.ChannelMessage("#room", "alice", "text", L, history=True), "(history) <alice> text"),
    (ev.ChannelMessage("#games", "alice", "text", L, history=True),
     "(history) [#games] <alice> text"),
    (ev.Action("alice", "waves", "#games", L, history=True), "(history) [#games] * alice waves"),
    (ev.PrivateLine("alice", "text", L, history=True), "(history) *alice* text"),
    (ev.TopicChanged("#games", "t", "alice", history=True),
     "(history) -!- #games topic: t (set by alice)"),
    (ev.Waiting("bob", "text", b"i" * 16), "-!- waiting for bob: text"),
    (ev.DeliveredLater("bob", "text", b"i" * 16), "-!- delivered to bob: text"),
    (ev.Failed("bob", "text", b"i" * 16), "-!- not delivered to bob: text"),
    (ev.PrivateLine("alice", "text", L), "*alice* text"),
    (ev.AwayReply("bob", "lunch"), "-!- bob is away: lunch"),
    (ev.ChannelMessage("#games", "alice", "one\ntwo", L), "[#games] <alice> one\n  two"),
])
def test_table(event: ev.ChatEvent, line: str) -> None:
    assert lines.format_chat_event(event) == line


@pytest.mark.parametrize("event", [
    ev.ChannelJoined("#games", "alice", False),  # not our channel
    ev.ChannelJoined("#games", "alice", True, fresh=False),  # learned when meeting alice
    ev.ChannelParted("#games", "alice", False),
    ev.ChannelParted("#games", "alice", True, quit=True),  # the roster says "-!- alice left"
    ev.TopicChanged("#games", "t", "alice", mine=False),
    ev.AwayChanged("alice", "x", fresh=False),
])
def test_silent(event: ev.ChatEvent) -> None:
    assert lines.format_chat_event(event) is None


def test_every_chat_event_has_a_format() -> None:
    import typing
    assert set(typing.get_args(ev.ChatEvent)) == set(lines._FORMATS)


def test_history_lines() -> None:
    assert lines.format_history(signed("hi", "#games"), "bob") == "(history) [#games] <alice> hi"
    assert lines.format_history(signed("hi", "bob"), "bob") == "(history) *alice* hi"
    assert lines.format_history(signed("hi", "bob", author="Me"), "me") == "(history) -> *bob* hi"
    assert lines.format_history(signed("waves", "bob", wire.Kind.ACTION), "bob") == (
        "(history) * alice waves (private)")
    assert lines.format_history(signed("t", "#games", wire.Kind.TOPIC), "bob") == (
        "(history) -!- #games topic: t (set by alice)")


def test_notice_and_address() -> None:
    assert lines.format_notice("online (1): me") == "-!- online (1): me"
    assert format_address(("::1", 7)) == "[::1]:7"
    assert format_address(("10.0.0.1", 7)) == "10.0.0.1:7"
