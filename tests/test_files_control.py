"""The file-transfer control protocol, sans-IO: fake time (0, 1, 2), no sockets, no threads."""

from __future__ import annotations

import inspect
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from client.contracts import FileService
from client.events import FileOffered
from client.files import FileTransfers, wire
from client.files.control import ConnectBack, Control, Emit, Send, Stop, farewell
from client.files.state import Core, Settings, State

TOKEN = bytes(range(16))
OTHER = bytes(range(1, 17))
SRC = Path("/nowhere/a.bin")


def _control(ttl: float = 2.0, **kw) -> Control:
    return Control(Settings(offer_ttl=ttl, **kw))


def _payload(msg: wire.Control) -> bytes:
    return wire.encode_control(msg)


def _sent(actions: list) -> list[wire.Control]:
    return [wire.decode_control(a.payload) for a in actions if isinstance(a, Send)]


def _offered(c: Control, peer: str = "alice", token: bytes = TOKEN):
    (action,) = c.receive(peer, _payload(wire.Offer(token, "a.bin", 10, 7, 4000)))
    assert isinstance(action, Emit) and isinstance(action.event, FileOffered)
    return c.by_id[action.event.transfer_id]


def test_an_outgoing_offer_is_one_offer_message() -> None:
    c = _control()
    t, send = c.offer("bob", TOKEN, SRC, 10, 7, 4000)
    assert (t.outgoing, t.state, t.name, t.path) == (True, State.OFFERED, "a.bin", SRC)
    assert send.peer == "bob"
    assert wire.decode_control(send.payload) == wire.Offer(TOKEN, "a.bin", 10, 7, 4000)
    assert c.find("bob", TOKEN, outgoing=True) is t and c.by_id == {t.tid: t}


def test_an_unanswered_offer_expires_at_the_ttl() -> None:
    c = _control(ttl=2.0)
    t, _ = c.offer("bob", TOKEN, SRC, 10, 7, 4000)
    assert c.tick(0.0) == [] and t.since == 0.0
    assert c.tick(1.0) == []
    (stop,) = c.tick(2.0)
    assert (stop.transfer, stop.reason, stop.tell_peer, stop.discard) == \
        (t, "offer expired", True, False)


def test_an_accept_restarts_the_clock_and_then_waits_for_a_connection() -> None:
    c = _control(ttl=2.0)
    t, _ = c.offer("bob", TOKEN, SRC, 10, 7, 4000)
    c.tick(0.0)
    assert c.receive("bob", _payload(wire.Accept(TOKEN))) == []
    assert t.state == State.ACCEPTED and t.since is None
    assert c.tick(1.0) == [] and c.tick(2.0) == []
    (stop,) = c.tick(3.0)
    assert stop.reason == "peer never connected"


def test_a_running_transfer_never_expires() -> None:
    c = _control(ttl=2.0)
    t, _ = c.offer("bob", TOKEN, SRC, 10, 7, 4000)
    assert c.claim(wire.ROLE_RECEIVER, TOKEN) is t      # its connection overtook the ACCEPT
    assert t.state == State.RUNNING
    assert [c.tick(now) for now in (0.0, 1.0, 2.0, 100.0)] == [[], [], [], []]
    assert c.receive("bob", _payload(wire.Accept(TOKEN))) == []     # late ACCEPT: ignored
    assert t.state == State.RUNNING


def test_an_incoming_offer_is_shown_accepted_and_expires_unconnected() -> None:
    c = _control(ttl=2.0)
    t = _offered(c)
    assert (t.outgoing, t.port, t.state) == (False, 4000, State.OFFERED)
    assert c.accept(t.tid) is t and t.state == State.ACCEPTED
    assert c.accept(t.tid) is None                      # once only
    assert c.tick(0.0) == [] and c.tick(1.0) == []
    assert [s.reason for s in c.tick(2.0)] == ["peer never connected"]


def test_accept_of_an_outgoing_or_unknown_transfer_does_nothing() -> None:
    c = _control()
    t, _ = c.offer("bob", TOKEN, SRC, 10, 7, 4000)
    assert c.accept(t.tid) is None and c.accept(999) is None
    assert t.state == State.OFFERED


def test_accept_for_no_offer_is_answered_with_cancel() -> None:
    c = _control()
    assert _sent(c.receive("bob", _payload(wire.Accept(TOKEN)))) == \
        [wire.Cancel(TOKEN, "no such offer (expired?)")]


def test_decline_and_cancel_from_the_peer() -> None:
    c = _control()
    out, _ = c.offer("bob", TOKEN, SRC, 10, 7, 4000)
    (stop,) = c.receive("bob", _payload(wire.Decline(TOKEN, "busy")))
    assert (stop.transfer, stop.reason, stop.tell_peer) == (out, "bob declined: busy", False)
    inc = _offered(c, "bob", OTHER)
    (stop,) = c.receive("bob", _payload(wire.Cancel(OTHER, "cancelled")))
    assert (stop.transfer, stop.reason, stop.discard) == (inc, "bob cancelled: cancelled", True)
    (stop,) = c.receive("bob", _payload(wire.Cancel(OTHER, "")))
    assert (stop.reason, stop.discard) == ("bob cancelled", False)


def test_a_peer_cannot_touch_another_peers_transfer() -> None:
    c = _control()
    t, _ = c.offer("bob", TOKEN, SRC, 10, 7, 4000)
    assert c.receive("mallory", _payload(wire.Decline(TOKEN, "ha"))) == []
    assert _sent(c.receive("mallory", _payload(wire.Accept(TOKEN)))) == \
        [wire.Cancel(TOKEN, "no such offer (expired?)")]
    assert t.state == State.OFFERED


def test_reverse_only_after_accept() -> None:
    c = _control()
    t, _ = c.offer("bob", TOKEN, SRC, 10, 7, 4000)
    assert c.receive("bob", _payload(wire.Reverse(TOKEN, 5000))) == []
    c.receive("bob", _payload(wire.Accept(TOKEN)))
    assert c.receive("bob", _payload(wire.Reverse(TOKEN, 5000))) == [ConnectBack(t, 5000)]
    assert t.state == State.RUNNING
    assert c.receive("bob", _payload(wire.Reverse(TOKEN, 5000))) == []     # only once


def test_duplicate_offers_are_ignored_and_floods_declined() -> None:
    c = _control(max_offers_per_peer=2)
    _offered(c, token=TOKEN)
    assert c.receive("alice", _payload(wire.Offer(TOKEN, "a.bin", 10, 7, 4000))) == []
    _offered(c, token=OTHER)
    third = bytes(16)
    assert _sent(c.receive("alice", _payload(wire.Offer(third, "c", 1, 0, 1)))) == \
        [wire.Decline(third, "too many offers")]
    assert len(c.by_id) == 2
    _offered(c, "carol", third)                         # another peer has its own quota


def test_peer_left_ends_waiting_transfers_only() -> None:
    c = _control()
    waiting, _ = c.offer("bob", TOKEN, SRC, 10, 7, 4000)
    accepted = _offered(c, "bob", OTHER)
    c.accept(accepted.tid)                              # its worker is connecting: goes on
    running, _ = c.offer("bob", bytes(16), SRC, 10, 7, 4000)
    c.claim(wire.ROLE_RECEIVER, bytes(16))
    assert [(s.transfer, s.reason, s.tell_peer) for s in c.peer_left("bob")] == \
        [(waiting, "bob left", False)]
    assert c.peer_left("carol") == []


def test_undelivered_offer_or_accept_ends_the_transfer() -> None:
    c = _control()
    out, send = c.offer("bob", TOKEN, SRC, 10, 7, 4000)
    assert [s.transfer for s in c.undelivered("bob", send.payload)] == [out]
    inc = _offered(c, "bob", OTHER)
    assert [s.reason for s in c.undelivered("bob", _payload(wire.Accept(OTHER)))] == \
        ["bob did not answer"] and inc.state == State.OFFERED
    assert c.undelivered("bob", _payload(wire.Decline(OTHER, ""))) == []   # a notice
    assert c.undelivered("bob", b"junk") == []


def test_take_ends_a_transfer_for_good() -> None:
    c = _control()
    t, _ = c.offer("bob", TOKEN, SRC, 10, 7, 4000)
    assert c.take(t) and not c.take(t)
    assert t.state == State.ENDED and not c.is_live(t) and c.by_id == {}
    t.move(State.RUNNING)                               # a late worker
    assert t.state == State.ENDED
    assert c.claim(wire.ROLE_RECEIVER, TOKEN) is None


def test_claim_of_a_connection() -> None:
    c = _control()
    inc = _offered(c, "alice", TOKEN)
    assert c.claim(wire.ROLE_SENDER, TOKEN) is None     # not accepted yet
    assert not c.awaits_connection()
    c.accept(inc.tid)
    assert c.awaits_connection()
    assert c.claim(wire.ROLE_RECEIVER, TOKEN) is None   # wrong direction
    assert c.claim(wire.ROLE_SENDER, TOKEN) is inc
    inc.move(State.RELEASED)                            # its worker gave up
    assert c.claim(wire.ROLE_SENDER, TOKEN) is None and not c.awaits_connection()


def test_stopping_and_farewell() -> None:
    c = _control()
    out, _ = c.offer("bob", TOKEN, SRC, 10, 7, 4000)
    assert not c.stopping(out, "cancelled", True)       # no worker yet
    assert (out.reason, out.discard) == ("cancelled", True)
    assert not c.stopping(out, "closed", False)         # the first reason and discard stay
    assert (out.reason, out.discard) == ("cancelled", True)
    inc = _offered(c, "bob", OTHER)
    c.accept(inc.tid)
    assert c.stopping(inc, "declined", True)            # its worker cleans up
    assert farewell(out, "x") == wire.Cancel(TOKEN, "x")
    assert farewell(inc, "y") == wire.Decline(OTHER, "y")


@given(st.lists(st.binary(max_size=300), max_size=20))
def test_arbitrary_control_payloads_are_dropped(payloads: list[bytes]) -> None:
    c = _control()
    t, _ = c.offer("bob", TOKEN, SRC, 10, 7, 4000)
    for p in payloads:
        c.receive("bob", p)                             # raises nothing at all
        c.undelivered("bob", p)
    for action in c.tick(0.0):
        assert isinstance(action, Stop)


tokens = st.sampled_from([TOKEN, OTHER, bytes(16)])
messages = st.one_of(
    st.builds(wire.Offer, tokens, st.text(min_size=1, max_size=20), st.integers(0, 1 << 40),
              st.integers(0, 1 << 40), st.integers(0, 0xFFFF)),
    st.builds(wire.Accept, tokens),
    st.builds(wire.Decline, tokens, st.text(max_size=10)),
    st.builds(wire.Cancel, tokens, st.sampled_from(["", "cancelled", "x"])),
    st.builds(wire.Reverse, tokens, st.integers(1, 0xFFFF)),
)
steps = st.lists(st.tuples(st.sampled_from(["bob", "carol"]), messages, st.integers(0, 3)),
                 max_size=30)


@settings(max_examples=200)
@given(steps)
def test_any_sequence_of_messages_keeps_the_table_consistent(seq) -> None:
    c = _control(ttl=2.0, max_offers_per_peer=2)
    c.offer("bob", TOKEN, SRC, 10, 7, 4000)
    for now, (peer, msg, user) in enumerate(seq):
        for action in c.receive(peer, _payload(msg)) + c.tick(float(now)):
            assert isinstance(action, Send | Emit | Stop | ConnectBack)
            if isinstance(action, Stop):
                c.take(action.transfer)
        if user and c.by_id:
            c.accept(sorted(c.by_id)[user % len(c.by_id)])
        for t in c.by_id.values():
            assert c.find(t.peer, t.token, outgoing=t.outgoing) is t
            assert t.state in (State.OFFERED, State.ACCEPTED, State.RUNNING)
        assert sum(1 for t in c.by_id.values() if t.peer == peer and not t.outgoing) <= 2


def test_file_transfers_offers_the_file_service_contract() -> None:
    """FileTransfers satisfies client.contracts.FileService member for member (a static
    checker sees the same; this keeps it honest without one)."""
    ft: FileService = FileTransfers(downloads=Path("unused"), send_control=lambda p, b: None,
                                    emit=lambda e: None, key_for=lambda p, b: None,
                                    address_of=lambda p: None)
    assert isinstance(ft.port, int)
    _same_members(FileService, FileTransfers)


def test_file_transfers_offers_what_the_workers_use() -> None:
    ft = FileTransfers(downloads=Path("unused"), send_control=lambda p, b: None,
                       emit=lambda e: None, key_for=lambda p, b: None, address_of=lambda p: None)
    for name in ("lock", "settings", "downloads", "port"):
        assert name in vars(ft), name
    _same_members(Core, FileTransfers)


def _same_members(protocol: type, cls: type) -> None:
    for name, member in vars(protocol).items():
        if name.startswith("_") or not callable(member):
            continue
        ours = getattr(cls, name)
        want = list(inspect.signature(member).parameters)
        assert list(inspect.signature(ours).parameters) == want, name


def test_via_udp_wakes_only_an_accepted_incoming_transfer() -> None:
    from client.files.control import NoWayIn

    c = _control()
    t = _offered(c, "bob")
    assert c.receive("bob", _payload(wire.ViaUdp(TOKEN))) == []          # not accepted yet
    assert c.accept(t.tid) is t
    assert c.receive("carol", _payload(wire.ViaUdp(TOKEN))) == []        # another peer's
    assert c.receive("bob", _payload(wire.ViaUdp(TOKEN))) == [NoWayIn(t)]
    assert wire.decode_control(_payload(wire.ViaUdp(TOKEN))) == wire.ViaUdp(TOKEN)


def test_a_stream_on_the_udp_path_is_claimed_once_by_its_own_offer() -> None:
    from client.files.udpwire import stream_id

    c = _control()
    t, _send = c.offer("bob", TOKEN, Path("a.bin"), 10, 0, 0)
    sid = stream_id(TOKEN)
    assert c.claim_stream("carol", sid) is None           # only the peer it was offered to
    assert c.claim_stream("bob", sid + 1) is None
    assert c.claim_stream("bob", sid) is t and t.state == State.RUNNING
    assert c.claim_stream("bob", sid) is None             # once
