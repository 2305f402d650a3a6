"""The channel state machine (client/chat/channels.py), with fake time and an in-memory mesh."""

from __future__ import annotations

import logging

import nacl.signing
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from client.chat import channels as ch
from client.chat import events as ev
from client.chat import wire
from models.errors import ProtocolError

KEYS = {n: nacl.signing.SigningKey(bytes([i + 1]) * 32)
        for i, n in enumerate(["alice", "bob", "carol", "dave", "mallory"])}


def key_of(nick: str) -> bytes | None:
    key = KEYS.get(nick.lower())
    return bytes(key.verify_key) if key else None


class Mesh:
    """Peers joined by perfect, ordered links; records who received what."""

    def __init__(self, *nicks: str) -> None:
        self.peers = {n: ch.Channels(n, KEYS[n], key_of) for n in nicks}
        self.events: dict[str, list[object]] = {n: [] for n in nicks}
        self.received: dict[str, list[wire.Message]] = {n: [] for n in nicks}
        for a in nicks:
            for b in nicks:
                if a != b:
                    self.peers[a].peer_online(b, 0)
        self.pump()

    def pump(self, now: float = 0) -> None:
        moved = True
        while moved:
            moved = False
            for name, peer in self.peers.items():
                for send in peer.take_sends():
                    for to in send.peers:
                        if to in self.peers:
                            moved = True
                            self.received[to].append(wire.decode(send.payload))
                            self.peers[to].on_control(name, send.payload, now)
                self.events[name].extend(peer.take_events())

    def take(self, name: str) -> list[object]:
        out, self.events[name] = self.events[name], []
        return out


def test_room_and_channels_with_disjoint_members() -> None:
    m = Mesh("alice", "bob", "carol")
    for n in ("alice", "bob", "carol"):
        m.peers[n].join("#room", 0)
    m.peers["alice"].join("#games", 1)
    m.peers["bob"].join("#Games", 1)
    m.pump(1)
    a = m.peers["alice"]
    assert a.current == "#games"
    assert a.members("#GAMES") == ["bob"]
    assert a.names("#games") == ["alice", "bob"]
    assert sorted(a.members("#room")) == ["bob", "carol"]
    for n in m.received:
        m.received[n].clear()
    line = a.say(None, "gg", 2)
    m.pump(2)
    assert [x for x in m.received["carol"] if isinstance(x, wire.Line)] == []
    got = [e for e in m.take("bob") if isinstance(e, ev.ChannelMessage)]
    assert got == [ev.ChannelMessage("#Games", "alice", "gg", line)]  # bob's own spelling
    info = {c.name.lower(): c for c in m.peers["carol"].channels()}
    assert info["#games"].members == 2 and not info["#games"].joined
    assert info["#room"].members == 3 and info["#room"].joined


def test_join_part_events_and_mine_flag() -> None:
    m = Mesh("alice", "bob", "carol")
    m.peers["alice"].join("#games", 0)
    m.pump()
    assert ev.ChannelJoined("#games", "alice", True) in m.take("alice")
    assert ev.ChannelJoined("#games", "alice", False) in m.take("bob")
    m.peers["bob"].join("#games", 1)
    m.pump()
    assert ev.ChannelJoined("#games", "bob", True) in m.take("alice")
    m.peers["bob"].part("#games", "bye", 2)
    m.pump()
    assert ev.ChannelParted("#games", "bob", True, "bye") in m.take("alice")
    assert m.peers["alice"].members("#games") == []
    with pytest.raises(ch.ChannelError, match="not in #games"):
        m.peers["bob"].say("#games", "x", 3)


def test_newcomer_learns_channels_members_and_topics_from_peers_it_meets() -> None:
    m = Mesh("alice", "bob")
    m.peers["alice"].join("#games", 0)
    m.peers["bob"].join("#games", 0)
    m.pump()
    m.peers["alice"].set_topic("#games", "chess at 5", 1)
    m.peers["bob"].set_away("lunch", 1)
    m.pump(1)
    carol = ch.Channels("carol", KEYS["carol"], key_of)
    m.peers["carol"] = carol
    m.events["carol"], m.received["carol"] = [], []
    for n in ("alice", "bob"):
        m.peers[n].peer_online("carol", 2)
        carol.peer_online(n, 2)
    m.pump(2)
    assert sorted(carol.members("#games")) == ["alice", "bob"]
    assert carol.topic("#games").text == "chess at 5"
    assert carol.away_of("bob") == "lunch"
    evs = m.take("carol")
    assert ev.ChannelJoined("#games", "alice", False, fresh=False) in evs
    assert ev.AwayChanged("bob", "lunch", fresh=False) in evs


def test_concurrent_topics_converge() -> None:
    m = Mesh("alice", "bob", "carol")
    for n in m.peers:
        m.peers[n].join("#t", 0)
    m.pump()
    # both set before hearing the other (same clock): every peer must pick the same one
    m.peers["alice"].set_topic("#t", "from alice", 1)
    m.peers["bob"].set_topic("#t", "from bob", 1)
    m.pump(1)
    topics = {n: p.topic("#t").text for n, p in m.peers.items()}
    assert len(set(topics.values())) == 1, topics
    # a later topic wins everywhere
    m.peers["carol"].set_topic(None, "later", 2)
    m.pump(2)
    assert {p.topic("#t").text for p in m.peers.values()} == {"later"}


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["alice", "bob", "carol"]), st.booleans()),
                min_size=1, max_size=8))
def test_topics_converge_in_any_delivery_order(script: list[tuple[str, bool]]) -> None:
    m = Mesh("alice", "bob", "carol")
    for n in m.peers:
        m.peers[n].join("#t", 0)
    m.pump()
    for i, (who, deliver) in enumerate(script):
        m.peers[who].set_topic("#t", f"t{i}", i)
        if deliver:
            m.pump(i)
    m.pump(99)
    assert len({p.topic("#t").text for p in m.peers.values()}) == 1


def test_forged_topic_and_lines_are_dropped(caplog: pytest.LogCaptureFixture) -> None:
    m = Mesh("alice", "bob")
    m.peers["alice"].join("#g", 0)
    m.peers["bob"].join("#g", 0)
    m.pump()
    bob = m.peers["bob"]
    forged = wire.sign_line(KEYS["mallory"], author="alice", target="#g", kind=wire.Kind.TOPIC,
                            text="pwned", ts_ms=0, clock=5)
    by_mallory_as_alice = wire.sign_line(KEYS["mallory"], author="alice", target="#g",
                                         kind=wire.Kind.MESSAGE, text="x", ts_ms=0)
    real_alice = wire.sign_line(KEYS["alice"], author="alice", target="#g",
                                kind=wire.Kind.MESSAGE, text="y", ts_ms=0)
    with caplog.at_level(logging.WARNING):
        bob.on_control("alice", wire.encode(wire.Topic(forged)), 1)
        bob.on_control("alice", wire.encode(wire.Line(by_mallory_as_alice)), 1)
        bob.on_control("carol", wire.encode(wire.Line(real_alice)), 1)  # relayed live: refused
        bob.on_control("alice", b"C\xff", 1)
    assert bob.topic("#g") is None
    assert not [e for e in bob.take_events() if isinstance(e, ev.ChannelMessage)]
    text = caplog.text
    assert "not the author's key" in text and "NOT_AUTHOR" in text and "BAD_TYPE" in text


def test_non_member_line_refused_and_state_cannot_add_others() -> None:
    m = Mesh("alice", "bob")
    m.peers["bob"].join("#g", 0)
    m.pump()
    line = wire.sign_line(KEYS["alice"], author="alice", target="#g", kind=wire.Kind.MESSAGE,
                          text="hi", ts_ms=0)
    m.peers["bob"].on_control("alice", wire.encode(wire.Line(line)), 1)
    assert not [e for e in m.peers["bob"].take_events() if isinstance(e, ev.ChannelMessage)]
    # a STATE only ever speaks for its sender
    m.peers["bob"].on_control("mallory", wire.encode(wire.State(False, "", ("#g",))), 1)
    assert m.peers["bob"].members("#g") == ["mallory"]


def test_private_lines_receipt_dedupe_and_away_reply_once() -> None:
    m = Mesh("alice", "bob")
    m.peers["bob"].set_away("lunch", 0)
    m.pump()
    m.take("alice")
    line = m.peers["alice"].private("bob", "hi", 1)
    m.pump(1)
    assert ev.PrivateLine("alice", "hi", line) in m.take("bob")
    evs = m.take("alice")
    assert ev.ReceiptReceived("bob", (line.msg_id,)) in evs
    assert ev.AwayReply("bob", "lunch") in evs
    m.peers["alice"].resend(line)  # outbox retry after a lost receipt: shown once, acked again
    m.peers["alice"].private("bob", "again", 2)
    m.pump(2)
    assert [e.text for e in m.take("bob") if isinstance(e, ev.PrivateLine)] == ["again"]
    evs = m.take("alice")
    assert not [e for e in evs if isinstance(e, ev.AwayReply)]
    assert sum(isinstance(e, ev.ReceiptReceived) for e in evs) == 2
    m.peers["bob"].set_away(None, 3)
    m.pump(3)
    assert ev.AwayChanged("bob", None) in m.take("alice")


def test_private_line_to_offline_peer_is_not_sent() -> None:
    m = Mesh("alice")
    m.peers["alice"].private("bob", "later", 0)
    assert m.peers["alice"].take_sends() == []


def test_rename_moves_membership_and_away() -> None:
    m = Mesh("alice", "bob")
    m.peers["alice"].join("#g", 0)
    m.peers["bob"].join("#g", 0)
    m.peers["alice"].set_away("afk", 0)
    m.pump()
    m.take("bob")
    m.peers["alice"].rename("alicia", 1)
    m.pump(1)
    bob = m.peers["bob"]
    assert ev.Renamed("alice", "alicia") in m.take("bob")
    assert bob.members("#g") == ["alicia"]
    assert bob.away_of("alicia") == "afk"
    assert bob.common_channels("alicia") == ["#g"]
    assert m.peers["alice"].me == "alicia"


def test_peer_gone_forgets_memberships_and_empty_channels() -> None:
    m = Mesh("alice", "bob")
    m.peers["alice"].join("#solo", 0)
    m.pump()
    bob = m.peers["bob"]
    assert [c.name for c in bob.channels()] == ["#solo"]
    bob.peer_gone("alice", 1)
    assert ev.ChannelParted("#solo", "alice", False, quit=True) in bob.take_events()
    assert bob.channels() == []


def test_limits_channels_per_peer_and_rate() -> None:
    alice = ch.Channels("alice", KEYS["alice"], key_of)
    for i in range(ch.MAX_CHANNELS_PER_PEER):
        alice.join(f"#c{i}", 0)
    with pytest.raises(ch.ChannelError, match="/part one first"):
        alice.join("#one-more", 0)
    bob = ch.Channels("bob", KEYS["bob"], key_of)
    for i in range(ch.MAX_CHANNELS_PER_PEER + 5):
        bob.on_control("mallory", wire.encode(wire.Join(f"#m{i}")), i)  # slow: never limited
    assert sum(c.members for c in bob.channels()) == ch.MAX_CHANNELS_PER_PEER
    flood = wire.encode(wire.Away(True, "x"))
    accepted = 0
    for _ in range(500):  # all at time 1000: only the burst gets through
        before = bob.away_of("eve")
        bob.on_control("eve", flood if before is None else wire.encode(wire.Away(False)), 1000)
        accepted += bob.away_of("eve") != before
    assert accepted <= ch.BURST


def test_own_mistakes_are_plain_words() -> None:
    alice = ch.Channels("alice", KEYS["alice"], key_of)
    with pytest.raises(ProtocolError, match="channel names start with #"):
        alice.join("games", 0)
    with pytest.raises(ch.ChannelError, match="no channel"):
        alice.say(None, "x", 0)
    with pytest.raises(ch.ChannelError, match="not in #x"):
        alice.set_topic("#x", "t", 0)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300))
def test_hostile_payloads_never_raise(data: bytes) -> None:
    bob = ch.Channels("bob", KEYS["bob"], key_of)
    bob.join("#room", 0)
    bob.on_control("mallory", b"C" + data, 0)
    bob.on_control("mallory", data, 0)


def test_line_event_for_history() -> None:
    line = wire.sign_line(KEYS["alice"], author="alice", target="#g", kind=wire.Kind.ACTION,
                          text="waves", ts_ms=0)
    assert ch.line_event(line, "bob") == ev.Action("alice", "waves", "#g", line, True)
