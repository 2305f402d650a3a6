"""Issue 11 end to end: the real server.py and real terminal clients (``python -m client
--headless``), each with its own config dir (its history lives there too): channels with
disjoint members, topic agreement, actions, away auto-reply, rename, history after a restart,
backfill to a late joiner (and a forged line rejected), a message to an offline peer delivered
after both restart."""

from __future__ import annotations

import time

import pytest

from client.chat import backfill as backfill_mod
from client.chat import events as cev
from client.chat import wire
from client.engine import Engine
from tests.netns import ClientProc
from tests.test_e2e import clients  # noqa: F401 - a fixture: terminal clients

PING = 0.5


def until(c: ClientProc, command: str, pattern: str, timeout: float = 10.0) -> str:
    """Send ``command`` again until it prints a line matching ``pattern``."""
    end = time.monotonic() + timeout
    while True:
        c.send(command)
        try:
            return c.expect(pattern, timeout=0.5)
        except AssertionError:
            if time.monotonic() > end:
                raise


def never(c: ClientProc, needle: str, wait: float = 0.3) -> None:
    c.drain(wait)
    assert not [x for x in c.seen if needle in x], (c.nick, needle, c.seen)


@pytest.mark.parametrize("server", [{"ping_interval": PING}], indirect=True)
def test_channels_topic_actions_away_and_rename(server, clients):  # noqa: F811
    alice = clients(server, "alice")
    bob = clients(server, "bob")
    alice.expect("-!- bob joined")
    carol = clients(server, "carol")
    for c in (alice, bob):
        c.expect("-!- carol joined")

    # #room as today
    alice.send("hello everyone")
    bob.expect("<alice> hello everyone")
    carol.expect("<alice> hello everyone")

    # a channel with alice and bob only; carol is not a member and never sees its lines
    alice.send("/join #Games")
    alice.expect("-!- alice joined #Games")
    until(bob, "/list", r"-!- #Games \(1\)")  # bob learns the channel from alice's JOIN
    bob.send("/join #GAMES")  # the same channel: names compare like nicknames
    bob.expect("-!- bob joined #Games")
    alice.expect("-!- bob joined #Games")
    alice.send("secret move e2e4")  # /join made #Games current
    bob.expect(r"\[#Games\] <alice> secret move e2e4")
    bob.send("/msg #games and d7d5")
    alice.expect(r"\[#Games\] <bob> and d7d5")
    carol.send("/msg #games let me in")
    carol.expect("-!- you are not in #games; /join #games first")
    carol.send("/list")
    carol.expect(r"-!- #Games \(2\)")
    alice.send("/names")
    alice.expect(r"-!- #Games \(2\): alice, bob")
    never(carol, "e2e4")
    never(carol, "d7d5")

    # actions
    alice.send("/me waves")
    bob.expect(r"\[#Games\] \* alice waves")
    bob.send("//me is plain text")
    alice.expect(r"\[#Games\] <bob> /me is plain text")
    carol.send("/me yawns")
    alice.expect(r"\* carol yawns")

    # topics set at once by both members: everyone ends with the same one
    alice.send("/topic #games chess tonight")
    bob.send("/topic #games go tomorrow")
    for c in (alice, bob):
        c.expect(r"-!- #Games topic: .* \(set by (alice|bob)\)")
    time.sleep(0.5)
    shown = []
    for c in (alice, bob):
        c.drain()
        c.send("/topic #games")
        shown.append(c.expect(r"-!- #Games topic: .*"))
    assert shown[0] == shown[1], shown

    # away: announced, one auto-reply per away, then back
    bob.send("/away lunch")
    alice.expect("-!- bob is away: lunch")
    alice.send("/msg bob are you there?")
    bob.expect(r"\*alice\* are you there\?")
    alice.expect("-!- bob is away: lunch")  # the auto-reply
    alice.send("/msg bob still there?")
    bob.expect(r"\*alice\* still there\?")
    alice.drain(0.5)
    assert alice.seen.count("-!- bob is away: lunch") == 2
    alice.send("/whois bob")
    alice.expect(r"-!- bob at .*; away: lunch; channels in common: #Games")
    alice.expect(r"-!- bob path: direct 127\.0\.0\.1:\d+(, rtt \d+ ms)?")
    bob.send("/away")
    alice.expect("-!- bob is back")

    # rename: peers see one line, not a leave and a join; the new name works at once
    carol.send("/nick caroline")
    carol.expect("-!- carol is now known as caroline")
    for c in (alice, bob):
        c.expect("-!- carol is now known as caroline")
    until(carol, "/who", r"-!- online \(3\): alice, bob, caroline")
    until(alice, "/who", r"-!- online \(3\): alice, bob, caroline")
    alice.send("/msg caroline welcome back")
    carol.expect(r"\*alice\* welcome back", timeout=15)
    for c in (alice, bob):
        never(c, "-!- carol left")
        never(c, "-!- caroline joined")

    # parting
    bob.send("/part #games bye")
    alice.expect(r"-!- bob left #Games \(bye\)")
    alice.send("/help")
    alice.expect(r"  /topic \[#channel\] \[text\] +show a channel's topic, or set it")
    alice.send("/help nick")
    alice.expect(r"-!- /nick NEWNAME -- change your nickname")


@pytest.mark.parametrize("server", [{"ping_interval": PING}], indirect=True)
def test_history_after_restart_and_a_message_that_waits(server, clients):  # noqa: F811
    alice = clients(server, "alice")
    bob = clients(server, "bob")
    alice.expect("-!- bob joined")
    alice.send("before the restart")
    bob.expect("<alice> before the restart")
    bob.send("/msg alice psst")
    alice.expect(r"\*bob\* psst")

    bob.send("/join #notes")
    bob.expect("-!- bob joined #notes")
    bob.send("remember the milk")
    assert bob.quit() == 0
    alice.expect("-!- bob left")
    alice.send("/msg bob are you there?")
    alice.expect(r"-!- waiting for bob: are you there\?")
    alice.send("/history bob")
    alice.expect(r"\(history\) \*bob\* psst")
    alice.expect(r"\(history\) -> \*bob\* are you there\?")
    alice.send("/msg nobody hi")  # never met: nothing to wait for
    alice.expect("-!- no such nick: nobody is not online")
    assert alice.quit() == 0

    bob = clients(server, "bob")
    bob.expect(r"\(history\) <alice> before the restart")
    bob.expect(r"\(history\) \[#notes\] <bob> remember the milk")  # #notes rejoined
    bob.send("/names #notes")
    bob.expect(r"-!- #notes \(1\): bob")
    alice = clients(server, "alice")
    alice.expect(r"\(history\) <alice> before the restart")
    alice.expect(r"-!- waiting for bob: are you there\?")
    bob.expect(r"\*alice\* are you there\?", timeout=15)
    alice.expect(r"-!- delivered to bob: are you there\?", timeout=15)
    bob.send("/search restart")
    bob.expect(r"\(history\) <alice> before the restart")


@pytest.mark.parametrize("server", [{"ping_interval": PING}], indirect=True)
def test_backfill_to_a_late_joiner_and_a_forged_line_rejected(server, clients,  # noqa: F811
                                                            tmp_path):
    alice = clients(server, "alice")
    # mallory: an in-process engine whose backfill answers carry a forged and an altered line
    mallory = Engine(server.address, "mallory", config_dir=tmp_path / "m",
                     bind=("127.0.0.1", 0))
    mallory.start()
    try:
        alice.expect("-!- mallory joined")
        alice.send("/join #ops")
        mallory.chat.join("#ops")
        alice.expect("-!- mallory joined #ops")
        for i in range(3):
            alice.send(f"deploy step {i}")
        got: list[wire.SignedLine] = []
        end = time.monotonic() + 10
        while len(got) < 3 and time.monotonic() < end:
            e = mallory.events.get(timeout=5)
            if isinstance(e, cev.ChannelMessage):
                got.append(e.line)
        assert [x.text for x in got] == [f"deploy step {i}" for i in range(3)]

        svc = mallory.chat.service
        assert svc is not None
        forged = wire.sign_line(svc.channels._key, author="alice", target="#ops",
                                kind=wire.Kind.MESSAGE, text="FORGED: send me the keys",
                                ts_ms=got[0].ts_ms + 1)
        altered = wire.SignedLine(**{**got[1].__dict__, "text": "ALTERED: rm -rf"})

        def hostile(peer, request, **kw):
            return [cev.Send((peer,), p) for p in backfill_mod.pack(
                request.channel, [*got[:1], forged, altered, got[2]])]

        svc.backfill.answer = hostile  # type: ignore[method-assign]

        # -v: carol's log records on her stderr, where the test reads them
        carol = ClientProc(server.address, "carol", tmp_path / "carol", extra=["-v"])
        carol.expect(r"-!- registered as .*", timeout=15)
        until(carol, "/list", r"-!- #ops \(2\)")  # both members known: both are asked
        carol.send("/join #ops")
        carol.expect(r"\(history\) \[#ops\] <alice> deploy step 0", timeout=10)
        carol.expect(r"\(history\) \[#ops\] <alice> deploy step 2", timeout=10)
        never(carol, "FORGED")
        never(carol, "ALTERED")
        for junk in (b"C", b"C\xff", b"C\x07" + b"\x00" * 10, b"C\x03\x02", b"C\x0a" * 40):
            mallory.send_control("carol", junk)  # garbage from an authenticated peer
        alice.send("still here")
        carol.expect(r"\[#ops\] <alice> still here")
        assert carol.quit() == 0
        assert "dropping bad chat message from mallory" in carol.stderr_text
        assert "dropping a history line by alice" in carol.stderr_text
    finally:
        mallory.close()
