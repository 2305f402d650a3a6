"""The IRC session state machine with fake time (0, 1, 2 ...) and a stand-in ChatApi."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from client import events as cev
from client.chat import events as ev
from client.irc import protocol as p
from client.irc.session import Limits, Session
from tests.irc_fakes import FakeChat, signed


def lines(s: Session) -> list[p.Message]:
    return [p.parse(x) for x in s.take_output().split(b"\r\n") if x]


def codes(msgs: list[p.Message]) -> list[str]:
    return [m.command for m in msgs]


def registered(api: FakeChat | None = None, caps: str = "", **kw) -> Session:
    s = Session(api or FakeChat(), 0.0, **kw)
    if caps:
        s.receive(b"CAP LS 302\r\nCAP REQ :" + caps.encode() + b"\r\n", 0.0)
    s.receive(b"NICK someone\r\nUSER u 0 * :Real Name\r\n", 0.0)
    if caps:
        assert not s.registered  # suspended until CAP END
        s.receive(b"CAP END\r\n", 0.0)
    assert s.registered
    return s


def test_registration_welcome_isupport_motd_and_channels():
    s = Session(FakeChat(), 0.0)
    s.receive(b"PRIVMSG bob :early\r\n", 0.0)
    assert codes(lines(s)) == ["451"]
    s.receive(b"NICK someone\r\nUSER u 0 * :Real\r\n", 0.0)
    out = lines(s)
    assert out[0].command == "001" and out[0].params[0] == "alice"  # the engine's nickname
    assert codes(out)[:5] == ["001", "002", "003", "004", "005"]
    isupport = out[4].params
    for token in ("CHANTYPES=#", "NICKLEN=24", "CHANNELLEN=33", "NETWORK=OpenLChat"):
        assert token in isupport
    assert any(t.startswith("CASEMAPPING=") for t in isupport)
    assert "376" in codes(out)
    i = codes(out).index("JOIN")
    assert out[i].prefix.startswith("alice!") and out[i].params == ("#room",)
    assert codes(out)[i + 1:i + 4] == ["332", "353", "366"]
    assert out[i + 1].params[-1] == "welcome"
    assert out[i + 2].params[-1] == "alice bob carol"
    replay = out[i + 4:]
    assert [m.params for m in replay] == [("#room", "[" + replay[0].params[1][1:6] + "] earlier"),
                                          ("#room", "\x01ACTION " + replay[1].params[1][8:])]
    assert replay[0].params[1].endswith("] earlier")


def test_cap_server_time_tags_history():
    s = registered(caps="server-time")
    out = lines(s)
    assert any(m.command == "CAP" and m.params[1] == "ACK" for m in out)
    replay = [m for m in out if m.command == "PRIVMSG"]
    assert replay[0].params == ("#room", "earlier")
    assert replay[0].tag("time") == "2023-11-14T22:13:20.000Z"
    s.receive(b"CAP REQ :sasl\r\nCAP LIST\r\n", 1.0)
    nak, listed = lines(s)
    assert nak.params[1] == "NAK" and listed.params[-1] == "server-time"


def test_without_the_chat_layer_no_channels():
    api = FakeChat()
    api.available = False
    out = lines(registered(api))
    assert "JOIN" not in codes(out)
    assert out[-1].command == "NOTICE" and "without channels" in out[-1].params[1]


def test_password_checked_from_pass():
    s = Session(FakeChat(), 0.0, password="sesame")
    s.receive(b"PASS wrong\r\nNICK a\r\nUSER u 0 * :R\r\n", 0.0)
    assert codes(lines(s)) == ["464", "ERROR"] and s.closed and not s.registered
    s = Session(FakeChat(), 0.0, password="sesame")
    s.receive(b"PASS sesame\r\nNICK a\r\nUSER u 0 * :R\r\n", 0.0)
    assert s.registered


def test_talking_both_ways():
    api = FakeChat()
    s = registered(api)
    lines(s)
    s.receive(b"PRIVMSG #room :hello all\r\nPRIVMSG bob :psst\r\n"
              b"PRIVMSG #room :\x01ACTION waves\x01\r\nPRIVMSG #nope :x\r\n"
              b"NOTICE #nope :quiet\r\nPRIVMSG #room\r\nPRIVMSG " + b"x" * 30 + b" :x\r\n", 1.0)
    assert api.calls == [("message", "#room", "hello all"), ("message", "bob", "psst"),
                         ("action", "#room", "waves")]
    assert codes(lines(s)) == ["404", "412", "401"]
    line = signed("bob", "#room", "hi\nthere")
    s.on_event(ev.ChannelMessage("#room", "bob", "hi\nthere", line))
    s.on_event(ev.Action("bob", "dances", None, line))
    s.on_event(ev.PrivateLine("bob", "secret", line))
    s.on_event(ev.PrivateLine("bob", "trust me", line, warning="UNVERIFIED KEY CHANGE"))
    out = lines(s)
    warned = out.pop()
    assert out.pop().params == ("alice", "WARNING: UNVERIFIED KEY CHANGE (bob)")
    assert warned.params == ("alice", "trust me")
    assert [(m.prefix.split("!")[0], m.params) for m in out] == [
        ("bob", ("#room", "hi")), ("bob", ("#room", "there")),
        ("bob", ("alice", "\x01ACTION dances\x01")), ("bob", ("alice", "secret"))]


def test_long_peer_text_is_cut_to_fit():
    s = registered()
    lines(s)
    text = "é" * 2000
    s.on_event(ev.ChannelMessage("#room", "bob", text, signed("bob", "#room", text)))
    raw = s.take_output().split(b"\r\n")[:-1]
    assert all(len(x) + 2 <= p.MAX_LINE for x in raw)
    assert "".join(p.parse(x).params[1] for x in raw) == text


def test_join_part_topic_names_list_who():
    api = FakeChat()
    s = registered(api)
    lines(s)
    s.receive(b"JOIN #games,bad\r\n", 1.0)
    out = lines(s)
    assert codes(out) == ["JOIN", "353", "366", "403"]
    assert ("join", "#games") in api.calls
    s.receive(b"JOIN #more\r\nJOIN #toomany\r\n", 1.0)
    assert codes(lines(s))[-1] == "405"
    s.receive(b"TOPIC #games :new topic\r\nTOPIC #games\r\nTOPIC #elsewhere\r\n", 1.0)
    out = lines(s)
    assert codes(out) == ["TOPIC", "332", "442"]
    assert out[0].params == ("#games", "new topic")
    s.on_event(ev.TopicChanged("#games", "new topic", "alice"))  # what we just set: no repeat
    s.on_event(ev.TopicChanged("#games", "other", "bob"))
    assert [m.params for m in lines(s)] == [("#games", "other")]
    s.on_event(ev.AwayChanged("carol", "lunch", fresh=False))
    s.receive(b"NAMES #room\r\nLIST\r\nWHO #room\r\nWHO bob\r\n", 1.0)
    out = lines(s)
    assert [m.params[6] for m in out if m.command == "352"] == ["H", "H", "G", "H"]
    assert codes(out) == ["353", "366", "321", "322", "322", "322", "323",
                          "352", "352", "352", "315", "352", "315"]
    s.receive(b"PART #games :bye\r\nPART #games\r\n", 1.0)
    out = lines(s)
    assert codes(out) == ["PART", "442"] and out[0].params == ("#games", "bye")
    s.on_event(ev.ChannelParted("#games", "alice", True, "bye"))  # ours: already said
    assert lines(s) == []


def test_members_coming_and_going():
    s = registered()
    lines(s)
    s.on_event(ev.ChannelJoined("#room", "dave", True))
    s.on_event(ev.ChannelJoined("#other", "dave", False))  # not our channel
    s.on_event(ev.ChannelParted("#room", "dave", True, "later"))
    s.on_event(ev.ChannelParted("#room", "carol", True, quit=True))
    s.on_event(cev.Left("carol"))
    s.on_event(cev.Left("bob", rename=True))  # half of bob's rename: the NICK says it
    s.on_event(ev.Renamed("bob", "bobby"))
    s.on_event(ev.ChannelJoined("#room", "alice", True))  # ours, known
    s.on_event(cev.Joined("erin"))  # the directory's roster: no line
    out = lines(s)
    assert [(m.prefix.split("!")[0], m.command, m.params) for m in out] == [
        ("dave", "JOIN", ("#room",)), ("dave", "PART", ("#room", "later")),
        ("carol", "QUIT", ("left OpenLChat",)), ("bob", "NICK", ("bobby",))]


def test_whois_away_nick():
    api = FakeChat()
    s = registered(api)
    lines(s)
    s.receive(b"WHOIS bob\r\nWHOIS nobody\r\n", 1.0)
    out = lines(s)
    assert codes(out) == ["311", "319", "312", "301", "276", "320", "318", "401", "318"]
    assert "ABCD-EF01" in out[4].params[-1] and "NOT verified" in out[5].params[-1]
    s.receive(b"AWAY :lunch\r\nAWAY\r\n", 1.0)
    assert codes(lines(s)) == ["306", "305"]
    assert ("away", "lunch") in api.calls and ("away", None) in api.calls
    s.on_event(ev.AwayReply("bob", "gone fishing"))
    assert lines(s)[0].params == ("alice", "bob", "gone fishing")
    s.receive(b"NICK mallory\r\nNICK b\xc3\xbcrk\r\nNICK " + b"x" * 30 + b"\r\nNICK :\r\n", 1.0)
    out = lines(s)
    assert codes(out) == ["433", "NICK", "432", "431"]
    assert out[1].prefix.startswith("alice!") and out[1].params == ("bürk",)
    s.on_event(ev.Renamed("alice", "bürk"))  # ours: already said
    s.on_event(ev.AwayChanged("bürk", "x"))
    assert lines(s) == []


def test_notices_from_openlchat():
    api = FakeChat()
    s = registered(api)
    lines(s)
    s.on_event(ev.Waiting("bob", "hello", b"x"))
    s.on_event(ev.Failed("bob", "hello", b"x"))
    s.on_event(cev.KeyChanged("bob", "AAAA", "BBBB"))
    s.on_event(cev.NotDelivered("bob", "hi", 1))
    out = lines(s)
    assert all(m.prefix.startswith("*openlchat*!") and m.command == "NOTICE" for m in out)
    texts = [m.params[1] for m in out]
    assert texts[0] == "waiting for bob: hello" and texts[1] == "not delivered to bob: hello"
    assert texts[2].startswith("WARNING: bob's identity key changed")
    s.receive(b"PRIVMSG *openlchat* :verify bob\r\nVERIFY carol\r\nHISTORY #room 1\r\n", 1.0)
    out = lines(s)
    assert ("verify", "bob") in api.calls and ("verify", "carol") in api.calls
    assert out[0].params[1] == "bob's key is now marked as verified"
    assert out[-1].params[1].startswith("(history) ")


def test_harmless_answers_and_unknown():
    s = registered()
    lines(s)
    s.receive(b"MODE alice\r\nMODE alice +i\r\nMODE #room\r\nMODE #room b\r\nMODE #room +o bob\r\n"
              b"MODE bob\r\nFROB x\r\nUSER again 0 * :x\r\nPING :tok\r\nISON bob zed\r\n"
              b"USERHOST bob\r\nMOTD\r\n", 1.0)
    out = lines(s)
    assert codes(out)[:10] == ["221", "221", "324", "368", "482", "502", "421", "462", "PONG",
                               "303"]
    assert out[8].params[-1] == "tok" and out[9].params[-1] == "bob"
    assert codes(out)[10:12] == ["302", "375"]


def test_keepalive_with_fake_time():
    lim = Limits(ping_idle=10, ping_timeout=5, register_timeout=3)
    s = Session(FakeChat(), 0.0, limits=lim)
    assert s.next_deadline() == 3
    s.on_timer(3.0)
    assert s.closed and "Registration timed out" in lines(s)[-1].params[0]
    s = registered(limits=lim)
    lines(s)
    assert s.next_deadline() == 10
    s.on_timer(10.0)
    assert lines(s)[0].command == "PING" and s.next_deadline() == 15
    s.receive(b"PONG openlchat\r\n", 12.0)
    assert s.next_deadline() == 22
    s.on_timer(22.0)
    s.on_timer(27.0)
    assert s.closed and lines(s)[-1].params[0] == "Closing link: Ping timeout"


def test_flood_disconnects_and_overlong_lines_get_417():
    s = registered(limits=Limits(flood_rate=10, flood_burst=20))
    lines(s)
    s.receive(b"PRIVMSG #room :" + b"x" * 600 + b"\r\n", 1.0)
    assert codes(lines(s)) == ["417"]
    s.receive(b"PING x\r\n" * 50, 1.0)
    out = lines(s)
    assert s.closed and out[-1].params[0] == "Closing link: Excess Flood"
    s.receive(b"PING x\r\n", 1.0)
    assert lines(s) == []


def test_quit_closes():
    s = registered()
    lines(s)
    s.receive(b"QUIT :bye\r\n", 1.0)
    assert s.closed and lines(s)[-1].command == "ERROR"


@settings(max_examples=200, deadline=None)
@given(st.lists(st.binary(max_size=300), max_size=8))
def test_hostile_bytes_never_raise(chunks):
    api = FakeChat()
    s = registered(api)
    for i, chunk in enumerate(chunks):
        s.receive(chunk + b"\n", float(i))
    s.take_output()


@settings(max_examples=100, deadline=None)
@given(st.lists(st.sampled_from([b"PRIVMSG", b"JOIN", b"PART", b"TOPIC", b"NICK", b"WHOIS",
                                 b"MODE", b"NAMES", b"WHO", b"AWAY", b"CAP", b"LIST",
                                 b"NOTICE", b"ISON", b"HISTORY", b"KICK"]), max_size=6),
       st.lists(st.text(max_size=20), max_size=4))
def test_commands_with_odd_arguments_never_raise(commands, args):
    s = registered(FakeChat())
    for c in commands:
        s.receive(c + b" " + " ".join(args).encode("utf-8", "replace") + b"\r\n", 1.0)
    for m in lines(s):
        assert "internal error" not in m.param(1)
