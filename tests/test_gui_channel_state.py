"""The window's model of channels (client/gui/channel_state.py): pure, no Tk."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from client.chat import events as cev
from client.chat.channels import ChannelInfo
from client.gui.channel_state import ChannelState, mentions


def test_joins_parts_topics_away_and_renames() -> None:
    state = ChannelState("alice")
    state.seed([ChannelInfo("#room", 2, "", True), ChannelInfo("#music", 3, "lo-fi", False)],
               {"#room": ["alice", "bob"]})
    assert state.joined() == ["#room"]
    for event in (cev.ChannelJoined("#Games", "alice", True),
                  cev.ChannelJoined("#games", "Carol", True),
                  cev.ChannelJoined("#room", "carol", True),
                  cev.TopicChanged("#GAMES", "CTF tonight", "carol"),
                  cev.AwayChanged("carol", "lunch")):
        state.apply(event)
    assert state.joined() == ["#room", "#Games"]            # #room first; names as first seen
    assert state.members("#games") == ["alice", "Carol"]
    assert state.topic("#games") == ("CTF tonight", "carol")
    assert state.topic("#music") == ("lo-fi", "")
    assert state.away_of("CAROL") == "lunch"
    state.apply(cev.Renamed("carol", "caroline"))
    assert state.members("#games") == ["alice", "caroline"]
    assert state.away_of("caroline") == "lunch" and state.away_of("carol") is None
    assert state.away_map() == {"caroline": "lunch"}
    state.apply(cev.Renamed("alice", "alicia"))
    assert state.me == "alicia" and state.members("#room") == ["alicia", "bob", "caroline"]
    state.apply(cev.ChannelParted("#games", "caroline", True, quit=True))
    assert state.members("#games") == ["alicia"] and state.away_of("caroline") is None
    state.apply(cev.ChannelParted("#games", "alicia", True))
    assert state.joined() == ["#room"] and not state.is_joined("#games")
    assert state.members("#games") == []                     # forgotten: nobody left in it
    state.apply(cev.ChannelParted("#room", "alicia", True))
    assert state.joined() == [] and state.members("#room") == ["bob", "caroline"]
    state.apply(cev.ChannelParted("#nowhere", "bob", False))  # unknown channel: nothing


def test_mentions_are_whole_words() -> None:
    assert mentions("alice: look", "alice")
    assert mentions("hey @Alice!", "alice")
    assert mentions("ALICE?", "Alice")
    assert not mentions("malice", "alice")
    assert not mentions("alicexyz", "alice")
    assert not mentions("anything", None)
    assert mentions("ping a.b", "a.b") and not mentions("ping axb", "a.b")


@given(st.text(max_size=200), st.text(min_size=1, max_size=20))
def test_mentions_never_raises(text: str, nick: str) -> None:
    assert mentions(text, nick) in (True, False)
