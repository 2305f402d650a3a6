"""PlainTransport (client/peer/plain.py): PLAIN envelopes around frames, nothing else gets
through."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from client.peer.messenger import KIND_ROOM, Delivered, Messenger
from client.peer.plain import PlainTransport
from models import peer_wire
from models.peer_wire import MAX_FRAME, PLAIN, SEALED


def test_wrap_makes_a_plain_envelope():
    t = PlainTransport(now=0.0)
    t.wrap("bob", b"\x01frame", 0.0)
    assert t.take_outgoing() == [("bob", bytes.fromhex("c10110") + b"\x01frame")]
    assert t.take_outgoing() == []
    assert t.next_deadline() is None and t.take_events() == []


def test_unwrap_returns_the_frame():
    t = PlainTransport()
    t.unwrap("alice", bytes.fromhex("c10110") + b"\x02abc", 1.0)
    assert t.take_frames() == [("alice", b"\x02abc")]
    assert t.take_frames() == []


def test_everything_else_is_dropped():
    t = PlainTransport()
    for datagram in (b"", b"\xc1", b"\xc1\x02\x10x", b"\xc1\x01\x99x", b"hello",
                     peer_wire.make_envelope(SEALED, bytes(40)),
                     peer_wire.make_envelope(PLAIN, b""),
                     peer_wire.make_envelope(PLAIN, bytes(MAX_FRAME + 1))):
        t.unwrap("mallory", datagram, 0.0)
    assert t.take_frames() == []
    assert t.counters["malformed"] == 7 and t.counters["not_plain"] == 1


def test_largest_frame_fits_a_datagram():
    t = PlainTransport()
    t.wrap("bob", bytes(MAX_FRAME), 0.0)
    [(_, datagram)] = t.take_outgoing()
    assert len(datagram) <= peer_wire.MAX_DATAGRAM
    t.unwrap("bob", datagram, 0.0)
    assert t.take_frames() == [("bob", bytes(MAX_FRAME))]


def test_forget_peer_drops_its_queued_items():
    t = PlainTransport()
    t.wrap("bob", b"\x01a", 0.0)
    t.wrap("carol", b"\x01b", 0.0)
    t.unwrap("bob", peer_wire.make_envelope(PLAIN, b"\x01c"), 0.0)
    t.forget_peer("bob")
    assert [p for p, _ in t.take_outgoing()] == ["carol"]
    assert t.take_frames() == []


def test_messengers_talk_through_plain_transports():
    alice, bob = Messenger(now=0.0), Messenger(now=0.0)
    ta, tb = PlainTransport(), PlainTransport()
    payload = "всем привет 🎉".encode() * 500
    msg_id = alice.send(["bob"], KIND_ROOM, payload, 0.0)
    for _ in range(3):
        for peer, frame in alice.take_outgoing():
            ta.wrap(peer, frame, 0.0)
        for _, datagram in ta.take_outgoing():
            tb.unwrap("alice", datagram, 0.0)
        for peer, frame in tb.take_frames():
            bob.receive(peer, frame, 0.0)
        for peer, frame in bob.take_outgoing():
            tb.wrap(peer, frame, 0.0)
        for _, datagram in tb.take_outgoing():
            ta.unwrap("bob", datagram, 0.0)
        for peer, frame in ta.take_frames():
            alice.receive(peer, frame, 0.0)
    assert bob.take_events() == [Delivered("alice", KIND_ROOM, payload, msg_id)]


@given(st.binary(max_size=1300))
def test_arbitrary_datagrams_never_raise(datagram):
    t = PlainTransport()
    t.unwrap("x", datagram, 0.0)
    for _, frame in t.take_frames():
        assert 0 < len(frame) <= MAX_FRAME


@given(st.lists(st.binary(min_size=1, max_size=MAX_FRAME), max_size=8))
def test_frames_round_trip(frames):
    ta, tb = PlainTransport(), PlainTransport()
    for frame in frames:
        ta.wrap("bob", frame, 0.0)
    for _, datagram in ta.take_outgoing():
        tb.unwrap("alice", datagram, 0.0)
    assert tb.take_frames() == [("alice", frame) for frame in frames]
