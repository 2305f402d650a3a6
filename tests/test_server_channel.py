"""The server channel, sans-IO, with fake time: PING cadence, digest repair, lost/back, UNKNOWN,
reclaim backoff. No sockets, no sleeps."""

from __future__ import annotations

import ast
import dataclasses
import pathlib

from hypothesis import given, settings
from hypothesis import strategies as st

from client import events as ev
from client.errors import RegistrationError, ServerUnreachable
from client.serverlink import channel as channel_module
from client.serverlink.channel import (
    GHOST_GRACE,
    RECLAIM_BACKOFF_MAX,
    SAVE_EVERY,
    Enrollment,
    RegisterAgain,
    RosterChanged,
    SaveSession,
    ServerChannel,
)
from models import directory_wire as wire
from models.dirauth import Agreement, ClientAuth, ServerAuth

KW = "k" * 24
INTERVAL = 3.0  # PINGs at 0, 1, 2, ...; lost after 3 s without a PONG
BOB = ("bob", "10.0.0.2", 4000)
CAROL = ("carol", "10.0.0.3", 4000)


def enrollment(keyword: str = KW, roster: tuple = (BOB,), nickname: str = "alice") -> Enrollment:
    return Enrollment(keyword, nickname, INTERVAL, roster + (("alice", "10.0.0.1", 4000),),
                      reclaimed=False, extended=True)


def pong(digest: str, keyword: str = KW) -> bytes:
    return wire.encode_datagram(wire.Pong(keyword, digest))


def sent(ch: ServerChannel) -> list[wire.Datagram]:
    return [wire.decode_datagram(d) for d in ch.take_outgoing()]


def requests(events: list) -> list[RegisterAgain]:
    return [e for e in events if isinstance(e, RegisterAgain)]


def test_pings_carry_the_digest_at_the_cadence() -> None:
    ch = ServerChannel(enrollment(), now=0)
    assert ch.roster.nicknames() == ["bob"] and ch.online and ch.nickname == "alice"
    assert ch.next_deadline() == 0
    ch.on_timer(0)
    assert sent(ch) == [wire.Ping(KW, "alice", ch.roster.digest())]
    assert ch.next_deadline() == 1  # ping_interval / 3
    assert ch.on_datagram(pong(ch.roster.digest()), 0.1) is None
    ch.on_timer(1)
    ch.on_datagram(pong(ch.roster.digest()), 1.1)
    ch.on_timer(1.5)  # nothing due: the PING of t=1 was answered
    ch.on_timer(2)
    assert len(sent(ch)) == 2
    assert ch.take_events() == []


def test_unanswered_ping_is_repeated_early() -> None:
    ch = ServerChannel(enrollment(), now=0)
    ch.on_timer(0)
    ch.on_timer(1)  # the PING of t=1 gets no PONG
    assert len(sent(ch)) == 2
    assert ch.next_deadline() == 1 + INTERVAL / 20
    ch.on_timer(1 + INTERVAL / 20)
    assert len(sent(ch)) == 1


def test_lost_pushes_are_repaired_after_two_mismatching_pongs() -> None:
    ch = ServerChannel(enrollment(), now=0)
    server_view = wire.roster_digest([wire.Entry(*BOB), wire.Entry(*CAROL)])  # a lost REF_ADD
    ch.on_timer(0)
    assert ch.on_datagram(pong(server_view), 0) is None
    assert ch.take_events() == []  # once can be a push still on its way
    ch.on_timer(1)
    assert ch.on_datagram(pong(server_view), 1) is None
    [ask] = requests(ch.take_events())
    assert (ask.reason, ask.keyword, ask.nickname) == ("refetch", KW, "alice")
    ch.on_timer(2)
    ch.on_datagram(pong(server_view), 2)
    assert requests(ch.take_events()) == []  # one re-fetch at a time
    sent(ch)
    ch.on_registered(ask, enrollment(roster=(BOB, CAROL)), 2)
    events = ch.take_events()
    assert [e.changes.joined for e in events if isinstance(e, RosterChanged)] == [["carol"]]
    assert ch.roster.digest() == server_view
    assert sent(ch) == [wire.Ping(KW, "alice", server_view)]  # the server learns at once


def test_a_matching_pong_resets_the_mismatch_count() -> None:
    ch = ServerChannel(enrollment(), now=0)
    other = wire.roster_digest([])
    for t, digest in enumerate([other, ch.roster.digest(), other]):
        ch.on_timer(t)
        ch.on_datagram(pong(digest), t)
    assert requests(ch.take_events()) == []


def test_pushes_change_the_roster() -> None:
    ch = ServerChannel(enrollment(), now=0)
    add = wire.encode_datagram(wire.RefAdd(KW, (wire.Entry(*CAROL),)))
    assert ch.on_datagram(add, 1) is None
    assert ch.on_datagram(wire.encode_datagram(wire.RefDel(KW, ("bob",))), 2) is None
    changes = [e.changes for e in ch.take_events()]
    assert [c.joined for c in changes] == [["carol"], []]
    assert [c.left for c in changes] == [[], ["bob"]]
    assert ch.roster.nicknames() == ["carol"]


def test_server_lost_then_back() -> None:
    ch = ServerChannel(enrollment(), now=0)
    for t in (0, 1, 2, 3):
        ch.on_timer(t)
    assert ch.online and ch.take_events() == []  # 3 s without a PONG: not yet
    ch.on_timer(3.1)
    assert ch.take_events() == [ev.ServerLost("no answer from the server")]
    assert not ch.online
    ch.on_timer(4)
    assert any(isinstance(m, wire.Ping) for m in sent(ch))  # PINGs go on while lost
    ch.on_datagram(pong(ch.roster.digest()), 4.5)
    assert ch.online and ch.take_events() == [ev.ServerBack()]
    ch.on_timer(100 * INTERVAL)  # the reclaim planned when it was lost is off
    assert requests(ch.take_events()) == []


def test_unknown_means_register_again_and_missing_peers_linger_as_ghosts() -> None:
    ch = ServerChannel(enrollment(roster=(BOB, CAROL)), now=0)
    assert ch.on_datagram(wire.encode_datagram(wire.Unknown(KW)), 1) is None
    [ask] = requests(ch.take_events())
    assert (ask.reason, ask.keyword) == ("reregister", KW)
    new_kw = "n" * 24
    ch.on_registered(ask, enrollment(keyword=new_kw, roster=(BOB,), nickname="Alice"), 2)
    assert ch.take_events() == [ev.Reregistered()]  # carol not reported left yet
    assert (ch.keyword, ch.nickname) == (new_kw, "Alice")
    assert sent(ch) == [wire.Ping(new_kw, "Alice", ch.roster.digest())]
    assert ch.roster.nicknames() == ["bob", "carol"]
    assert ch.on_datagram(pong(ch.roster.digest()), 2.5) == \
        "server datagram with a foreign keyword"  # the old keyword is gone
    ch.on_datagram(pong(ch.roster.digest(), new_kw), 2.5)
    ch.on_timer(2 + GHOST_GRACE * INTERVAL)
    left = [e.changes.left for e in ch.take_events() if isinstance(e, RosterChanged)]
    assert left == [["carol"]]


def test_a_refused_reregistration_is_fatal_a_throttled_one_is_not() -> None:
    ch = ServerChannel(enrollment(), now=0)
    ch.on_datagram(wire.encode_datagram(wire.Unknown(KW)), 1)
    [ask] = requests(ch.take_events())
    ch.on_registered(ask, RegistrationError("THROTTLED", "slow down"), 1)
    assert ch.take_events() == []
    ch.on_datagram(wire.encode_datagram(wire.Unknown(KW)), 2)
    [ask] = requests(ch.take_events())
    ch.on_registered(ask, RegistrationError("NICK_TAKEN", "alice is taken"), 2)
    assert ch.take_events() == [ev.Fatal("could not register again: alice is taken")]


def test_reclaim_backs_off_while_the_server_stays_away() -> None:
    ch = ServerChannel(enrollment(), now=0)
    ch.on_timer(0)
    ch.on_timer(3.1)
    assert ch.take_events() == [ev.ServerLost("no answer from the server")]
    asked_at = []
    t = 3.1
    while t < 400:
        t = round(t + 0.1, 1)
        ch.on_timer(t)
        for ask in requests(ch.take_events()):
            assert ask.reason == "reclaim"
            asked_at.append(t)
            ch.on_registered(ask, ServerUnreachable("connection refused"), t)
    gaps = [round(b - a, 1) for a, b in zip(asked_at, asked_at[1:], strict=False)]
    assert asked_at[0] == 6.1  # one ping interval after it was lost
    assert gaps[:4] == [3.0, 6.0, 12.0, 24.0]
    assert max(gaps) == RECLAIM_BACKOFF_MAX
    assert not ch.online


def test_a_successful_reclaim_brings_the_server_back() -> None:
    ch = ServerChannel(enrollment(), now=0)
    ch.on_timer(0)
    ch.on_timer(3.1)
    ch.on_timer(6.1)
    [ask] = requests(ch.take_events())
    ch.on_registered(ask, enrollment(roster=(BOB, CAROL)), 7)  # same keyword: reclaimed
    events = ch.take_events()
    assert events[0] == ev.ServerBack() and isinstance(events[1], RosterChanged)
    assert ch.online
    ch.on_timer(8)
    assert ch.take_events() == []  # no second reclaim, not lost again


def test_a_stale_result_is_ignored() -> None:
    ch = ServerChannel(enrollment(), now=0)
    stale = RegisterAgain("refetch", "alice", "o" * 24, 3.0)
    ch.on_registered(stale, enrollment(roster=(BOB, CAROL)), 1)
    assert ch.take_events() == [] and ch.roster.nicknames() == ["bob"]


def test_quit_is_said_twice_and_once() -> None:
    ch = ServerChannel(enrollment(), now=0)
    ch.quit()
    ch.quit()
    assert sent(ch) == [wire.Quit(KW, "alice")] * 2


def test_drop_reasons() -> None:
    ch = ServerChannel(enrollment(), now=0)
    assert ch.on_datagram(wire.encode_datagram(wire.Ping(KW, "alice")), 0) == "unexpected Ping"
    assert ch.on_datagram(b"garbage", 0) is not None


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.sampled_from([b"", KW.encode() + b" ", b"x" * 24 + b" "]),
                          st.binary(max_size=300)), max_size=20))
def test_arbitrary_datagrams_never_raise(datagrams: list[tuple[bytes, bytes]]) -> None:
    ch = ServerChannel(enrollment(), now=0)
    for t, (prefix, body) in enumerate(datagrams):
        why = ch.on_datagram(prefix + body, t)
        assert why is None or isinstance(why, str)
        ch.on_timer(t)
    assert "alice" not in ch.roster.nicknames()
    ch.take_events()
    ch.take_outgoing()


def test_the_channel_imports_no_io() -> None:
    tree = ast.parse(pathlib.Path(channel_module.__file__).read_text())
    names = {alias.name.split(".")[0] for node in ast.walk(tree)
             if isinstance(node, ast.Import) for alias in node.names}
    names |= {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    assert not names & {"socket", "select", "threading", "time", "client.serverlink.registration"}


# -- MAC extension (issue 12 item 6) ---------------------------------------------------------

def agreed(keyword: str = KW, **changes) -> tuple[ServerChannel, ServerAuth]:
    """A channel whose first registration agreed a MAC key, and the server's end of it."""
    auth = ClientAuth()
    agreement = Agreement.answer(auth.connect("alice").x25519)
    first = dataclasses.replace(enrollment(keyword), x25519=agreement.x25519, **changes)
    assert auth.accept(wire.Keyword(keyword, agreement.x25519))
    return ServerChannel(first, now=0, auth=auth), ServerAuth(agreement.key(keyword))


def answer(ask: RegisterAgain, server: ServerAuth | None, keyword: str = KW,
           **changes) -> tuple[Enrollment, ServerAuth]:
    """What the server does with ``ask.offer``: checks the proof, agrees a new key."""
    assert ask.offer is not None and ask.offer.x25519 is not None
    if server is not None:
        assert server.check_proof(ask.keyword, ask.offer.x25519, ask.offer.proof)
    agreement = Agreement.answer(ask.offer.x25519)
    result = dataclasses.replace(enrollment(keyword), x25519=agreement.x25519, **changes)
    return result, ServerAuth(agreement.key(keyword))


def test_mac_pings_and_quit_pass_the_server_check_a_forged_or_replayed_one_does_not() -> None:
    ch, server = agreed()
    ch.on_timer(0)
    ch.on_timer(1)
    [ping0, ping1] = sent(ch)
    assert ping0.auth is not None and ping1.auth is not None
    assert (ping0.auth.counter, ping1.auth.counter) == (1, 2)
    assert ping0.digest == ch.roster.digest()  # still the extended PING
    assert server.check(ping0) and server.check(ping1)
    assert not server.check(ping1)  # replayed
    ch.quit()
    quits = sent(ch)
    assert [type(m) for m in quits] == [wire.Quit, wire.Quit]
    assert not server.check(wire.Quit(KW, "alice"))  # what a sniffer can make
    assert not server.check(wire.Quit(KW, "alice", wire.Auth(9, ping1.auth.mac)))
    assert all(server.check(q) for q in quits)
    assert ch.mac_state() is not None and ch.mac_state()[1] == 4


def test_a_reclaim_proves_the_old_key_and_moves_to_the_new_one() -> None:
    ch, server = agreed()
    ch.on_timer(0)
    assert server.check(sent(ch)[0])
    ch.on_timer(3.1)
    ch.on_timer(6.1)  # lost; a reclaim
    [ask] = requests(ch.take_events())
    assert ask.reason == "reclaim" and ask.offer.keyword == KW and ask.offer.proof is not None
    assert not server.check_proof(KW, ask.offer.x25519, None)  # a sniffer's reclaim
    result, new_server = answer(ask, server)
    sent(ch)  # the PINGs made while the server was lost
    ch.on_registered(ask, result, 7)
    assert SaveSession() in ch.take_events()
    [ping] = sent(ch)
    assert ping.auth.counter == 1 and new_server.check(ping)
    assert not server.check(dataclasses.replace(ping, auth=wire.Auth(99, ping.auth.mac)))


def test_a_reclaim_that_failed_after_keyword_still_moves_to_the_new_key() -> None:
    ch, server = agreed()
    ch.on_timer(0)
    ch.on_timer(3.1)
    ch.on_timer(6.1)
    [ask] = requests(ch.take_events())
    result, new_server = answer(ask, server)
    sent(ch)
    # the server agreed (and now holds the new key), then REFERENCE timed out
    ch.on_registered(ask, ServerUnreachable("server did not answer in time"), 7,
                     wire.Keyword(KW, result.x25519))
    assert SaveSession() in ch.take_events()
    ch.on_timer(8)
    pings = sent(ch)
    assert pings and all(new_server.check(m) for m in pings)


def test_rekey_reclaims_at_once_but_at_most_once_per_interval() -> None:
    ch, server = agreed()
    rekey = wire.encode_datagram(wire.Rekey(KW))
    assert ch.on_datagram(rekey, 1) is None
    [ask] = requests(ch.take_events())
    assert ask.reason == "rekey" and ask.offer.proof is not None  # the key is kept meanwhile
    ch.on_datagram(rekey, 1.5)
    assert requests(ch.take_events()) == []  # one at a time
    result, new_server = answer(ask, None)  # the restarted server has no key: no proof check
    ch.on_registered(ask, result, 2)
    ch.take_events()
    assert new_server.check(sent(ch)[0])
    ch.on_datagram(rekey, 2.5)  # forged by a sniffer, within the interval: ignored
    assert requests(ch.take_events()) == []
    ch.on_datagram(rekey, 1 + INTERVAL)
    assert [a.reason for a in requests(ch.take_events())] == ["rekey"]


def test_rekey_means_nothing_without_the_extension() -> None:
    ch = ServerChannel(enrollment(), now=0)
    assert ch.on_datagram(wire.encode_datagram(wire.Rekey(KW)), 1) is None
    assert ch.take_events() == []


def test_a_server_without_the_extension_gets_plain_messages() -> None:
    auth = ClientAuth()
    auth.connect("alice")
    auth.accept(wire.Keyword(KW))  # KEYWORD without x25519=: not in use
    ch = ServerChannel(enrollment(), now=0, auth=auth)
    ch.on_timer(0)
    assert sent(ch) == [wire.Ping(KW, "alice", ch.roster.digest())]
    assert ch.mac_state() is None
    ch.on_datagram(wire.encode_datagram(wire.Unknown(KW)), 1)
    [ask] = requests(ch.take_events())
    assert ask.offer is not None  # offered again (it may have been restarted with it)
    ch.on_registered(ask, dataclasses.replace(enrollment("n" * 24), plain_only=True), 2)
    assert sent(ch) == [wire.Ping("n" * 24, "alice", ch.roster.digest())]
    ch.on_datagram(wire.encode_datagram(wire.Unknown("n" * 24)), 3)
    [ask] = requests(ch.take_events())
    assert ask.offer is None  # it refused x25519=: the design's CONNECT from now on
    ch.quit()
    assert sent(ch) == [wire.Quit("n" * 24, "alice")] * 2


def test_a_server_that_refused_at_first_is_never_offered_the_key() -> None:
    auth = ClientAuth()
    auth.connect("alice")
    auth.accept(wire.Keyword(KW))
    ch = ServerChannel(dataclasses.replace(enrollment(), plain_only=True), now=0, auth=auth)
    ch.on_datagram(wire.encode_datagram(wire.Unknown(KW)), 1)
    assert requests(ch.take_events())[0].offer is None


def test_the_session_is_saved_again_as_the_counter_moves_on() -> None:
    ch, server = agreed()
    for t in (0, 1, 2):
        ch.on_timer(t)
        ch.on_datagram(pong(ch.roster.digest()), t)
    assert ch.take_events() == []
    ch._auth.counter = SAVE_EVERY - 1  # a long life, shortened
    ch.on_timer(3)
    assert ch.take_events() == [SaveSession()]
    assert ch.mac_state()[1] == SAVE_EVERY
    ch.on_datagram(pong(ch.roster.digest()), 3)
    ch.on_timer(4)
    assert ch.take_events() == []


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.sampled_from([b"", KW.encode() + b" "]),
                          st.sampled_from([b"", b"5 REKEY", b"4 PONG ", b"7 UNKNOWN"]),
                          st.binary(max_size=100)), max_size=20))
def test_arbitrary_datagrams_never_raise_with_the_mac(datagrams) -> None:
    ch, server = agreed()
    for t, (prefix, middle, body) in enumerate(datagrams):
        why = ch.on_datagram(prefix + middle + body, t)
        assert why is None or isinstance(why, str)
        ch.on_timer(t)
        for ask in requests(ch.take_events()):
            ch.on_registered(ask, ServerUnreachable("no"), t)
    for msg in sent(ch):
        assert msg.auth is not None  # never a plain PING once the key is agreed


def test_a_rename_quits_the_old_registration_and_pings_as_the_new() -> None:
    ch = ServerChannel(enrollment(), 0.0)
    sent(ch)
    ch.take_events()
    # the new registration was made while the old one still stood: it lists alice too
    new = Enrollment("n" * 24, "alicia", INTERVAL,
                     (BOB, CAROL, ("alice", "10.0.0.1", 4000), ("alicia", "10.0.0.1", 4000)),
                     False, True)
    ch.moved(new, None, 1.0)
    out = sent(ch)
    assert [type(m) for m in out] == [wire.Quit, wire.Quit, wire.Ping]
    assert (out[0].keyword, out[0].nickname) == (KW, "alice")
    assert (out[2].keyword, out[2].nickname) == ("n" * 24, "alicia")
    assert (ch.keyword, ch.nickname) == ("n" * 24, "alicia")
    assert sorted(ch.roster.nicknames()) == ["bob", "carol"]
    (changed,) = [e for e in ch.take_events() if isinstance(e, RosterChanged)]
    assert list(changed.changes.joined) == ["carol"]
