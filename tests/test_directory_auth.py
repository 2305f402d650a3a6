"""The MAC extension (issue 12 item 6): a sniffer who saw every datagram cannot forge QUIT.

Pure parts with pinned randomness and times 0, 1, 2; then the real server over real sockets.
"""

from __future__ import annotations

import contextlib
import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from models import directory_wire as w
from models.dirauth import Agreement, ClientAuth, ServerAuth
from models.directory import Directory, Refused
from models.errors import ProtocolError
from tests.conftest import TcpSession

A, B, S = ("10.0.0.1", 1001), ("10.0.0.2", 1002), ("10.6.6.6", 6666)


def counter_random(seed: int):
    """Pinned randomness: distinct, reproducible 32-byte strings."""
    count = itertools.count(seed)
    return lambda n: bytes([next(count) % 251 + 1]) * n


def register(d: Directory, nick: str, now: float, auth: ClientAuth | None = None,
             keyword: str | None = None, server_random=None):
    """The TCP path of dirserver/tcp.py without the sockets."""
    if auth is None:
        reg, _ = d.register(nick, keyword, now)
        return reg
    connect = auth.connect(nick, keyword)
    agreement = Agreement.answer(connect.x25519, server_random or counter_random(100))
    reg, _ = d.register(nick, connect.keyword, now, connect.x25519, connect.proof)
    d.set_auth(reg, ServerAuth(agreement.key(reg.keyword)))
    assert auth.accept(w.Keyword(reg.keyword, agreement.x25519))
    return reg


def test_both_ends_derive_the_same_key_and_macs_check() -> None:
    client = ClientAuth(counter_random(1))
    connect = client.connect("alice")
    agreement = Agreement.answer(connect.x25519, counter_random(50))
    client.accept(w.Keyword("kwA", agreement.x25519))
    server = ServerAuth(agreement.key("kwA"))
    assert server.key == client.key and len(server.key) == 32
    data = client.seal(w.Ping("kwA", "alice", w.EMPTY_DIGEST))
    msg = w.decode_datagram(data)
    assert msg.auth is not None and msg.auth.counter == 1
    assert data.startswith(b"kwA ") and data.endswith(b" #1." + msg.auth.mac.encode())
    assert server.check(msg)
    assert not server.check(msg)  # replayed
    forged = w.Quit("kwA", "alice", w.Auth(2, msg.auth.mac))
    assert not server.check(forged)
    assert not server.check(w.Quit("kwA", "alice"))  # plain
    assert server.check(w.decode_datagram(client.seal(w.Quit("kwA", "alice"))))


def test_a_low_order_key_is_refused() -> None:
    with pytest.raises(ProtocolError):
        Agreement.answer("A" * 43)  # all zero bytes: no shared secret


def test_sniffer_cannot_quit_or_move_a_mac_client() -> None:
    d = Directory(ping_interval=10)
    alice_auth = ClientAuth(counter_random(1))
    alice = register(d, "alice", 0, alice_auth)
    bob = register(d, "bob", 0)  # design-only: unchanged
    seen = alice_auth.seal(w.Ping(alice.keyword, "alice"))
    assert d.on_datagram(seen, A, 0) is None
    d.on_datagram(w.encode_datagram(w.Ping(bob.keyword, "bob")), B, 0)
    d.take_outgoing()
    # the sniffer saw the keyword and that datagram
    assert d.on_datagram(w.encode_datagram(w.Quit(alice.keyword, "alice")), S, 1) is None
    assert d.on_datagram(seen, S, 1) is None  # replayed from elsewhere: no "moved"
    assert d.on_datagram(w.encode_datagram(w.Ping(alice.keyword, "alice")), S, 1) is None
    assert d.take_outgoing() == [] and d.by_key["alice"].addr == A
    assert d.stats.bad_mac == 3
    # alice's own QUIT works; so does bob's plain one
    d.on_datagram(alice_auth.seal(w.Quit(alice.keyword, "alice")), A, 2)
    assert "alice" not in d.by_key
    d.on_datagram(w.encode_datagram(w.Quit(bob.keyword, "bob")), B, 2)
    assert len(d) == 0


def test_unmaced_pings_do_not_keep_a_mac_client_alive() -> None:
    d = Directory(ping_interval=10)
    auth = ClientAuth(counter_random(1))
    reg = register(d, "alice", 0, auth)
    d.on_datagram(auth.seal(w.Ping(reg.keyword, "alice")), A, 0)
    for t in (5, 10, 14):
        d.on_datagram(w.encode_datagram(w.Ping(reg.keyword, "alice")), A, t)
    assert [r.nickname for r, _ in d.expire(15)] == ["alice"]


def test_pong_answers_a_maced_ping() -> None:
    d = Directory(ping_interval=10)
    auth = ClientAuth(counter_random(1))
    reg = register(d, "alice", 0, auth)
    reply = d.on_datagram(auth.seal(w.Ping(reg.keyword, "alice", w.EMPTY_DIGEST)), A, 0)
    assert w.decode_datagram(reply) == w.Pong(reg.keyword, w.EMPTY_DIGEST)


def test_reclaim_needs_a_proof_and_a_proof_cannot_be_replayed() -> None:
    d = Directory(ping_interval=10)
    auth = ClientAuth(counter_random(1))
    reg = register(d, "alice", 0, auth)
    with pytest.raises(Refused) as err:
        d.register("alice", reg.keyword, 1)  # the sniffer knows the keyword
    assert err.value.code == "AUTH_REQUIRED"
    connect = auth.connect("alice", reg.keyword)
    assert connect.proof is not None
    again, reclaimed = d.register("alice", reg.keyword, 1, connect.x25519, connect.proof)
    assert reclaimed and again is reg
    with pytest.raises(Refused):  # the same CONNECT line replayed
        d.register("alice", reg.keyword, 1, connect.x25519, connect.proof)
    # a full reclaim: new key on both ends, counters start again
    reg2 = register(d, "alice", 2, auth, keyword=reg.keyword, server_random=counter_random(9))
    assert reg2 is reg and auth.counter == 0
    assert d.on_datagram(auth.seal(w.Ping(reg.keyword, "alice", w.EMPTY_DIGEST)), A, 2)


def test_a_server_that_lost_the_key_says_rekey() -> None:
    d = Directory(ping_interval=10)
    d.load([("alice", "kwAlice", "10.0.0.1", 1001)], now=0)
    auth = ClientAuth(counter_random(1))
    auth.connect("alice")
    auth.accept(w.Keyword("kwAlice", Agreement.answer(
        ClientAuth(counter_random(7)).connect("x").x25519).x25519))
    data = auth.seal(w.Ping("kwAlice", "alice", w.EMPTY_DIGEST))
    assert w.decode_datagram(d.on_datagram(data, A, 1)) == w.Rekey("kwAlice")
    assert d.by_key["alice"].deadline == 16  # the PING still counted
    auth.forget()
    assert w.decode_datagram(auth.seal(w.Ping("kwAlice", "alice"))).auth is None
    # after REKEY the client reclaims with a key and no proof
    reg = register(d, "alice", 2, auth, keyword="kwAlice")
    assert reg.auth is not None


# ------------------------------------------------------------------ codec

KW = "kw_1"
PUB = "B" * 43
auth_st = st.builds(w.Auth, st.integers(0, w.MAX_COUNTER),
                    st.from_regex(r"\A[A-Za-z0-9_-]{22}\Z"))


def test_extension_lines_byte_for_byte() -> None:
    proof = w.Auth(7, "C" * 22)
    line = f"CONNECT alice {KW} x25519={PUB} proof=#7.{'C' * 22}\n".encode()
    assert w.encode_line(w.Connect("alice", KW, PUB, proof)) == line
    assert w.decode_request(line) == w.Connect("alice", KW, PUB, proof)
    assert w.decode_request(f"CONNECT alice x25519={PUB}\n".encode()) == w.Connect(
        "alice", None, PUB)
    assert w.decode_reply(f"KEYWORD {KW} x25519={PUB}\n".encode()) == w.Keyword(KW, PUB)
    data = f"{KW} 37 QUIT alice #12.{'D' * 22}".encode()
    assert w.decode_datagram(data) == w.Quit(KW, "alice", w.Auth(12, "D" * 22))
    assert w.encode_datagram(w.Rekey(KW)) == b"kw_1 5 REKEY"
    for bad in (f"CONNECT alice x25519={PUB[:-1]}", f"CONNECT alice {KW} proof=#1.{'C' * 22}",
                f"CONNECT alice x25519={PUB} proof=#1.short", "CONNECT a b c d e"):
        with pytest.raises(ProtocolError):
            w.decode_request(bad.encode())


@given(st.builds(w.Ping, st.just(KW), st.just("alice"),
                 st.none() | st.just(w.EMPTY_DIGEST), st.none() | auth_st)
       | st.builds(w.Quit, st.just(KW), st.just("bob"), st.none() | auth_st))
def test_maced_datagrams_round_trip(msg) -> None:
    assert w.decode_datagram(w.encode_datagram(msg)) == msg


@given(st.binary(max_size=200))
def test_auth_parsing_raises_only_protocol_error(data: bytes) -> None:
    for blob in (data, b"kw 40 PING a #" + data, b"CONNECT a x25519=" + data):
        with contextlib.suppress(ProtocolError):
            w.decode_datagram(blob)
        with contextlib.suppress(ProtocolError):
            w.decode_request(blob)


# ------------------------------------------------------------------ the real server


def test_real_server_ignores_a_sniffers_quit(server, joined) -> None:
    bob = joined(server, "bob")  # design-only watcher
    auth = ClientAuth()
    tcp = TcpSession(server.address)
    reply = tcp.request(auth.connect("alice"))
    assert isinstance(reply, w.Keyword) and reply.x25519 is not None
    assert auth.accept(reply)
    tcp.request(w.ReferenceRequest())
    tcp.close()
    import socket

    alice = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    alice.bind(("127.0.0.1", 0))
    sniffer = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sniffer.bind(("127.0.0.1", 0))
    try:
        seen = auth.seal(w.Ping(reply.keyword, "alice"))
        alice.sendto(seen, server.address)
        assert bob.recv_until(lambda m: isinstance(m, w.RefAdd)) is not None
        sniffer.sendto(w.encode_datagram(w.Quit(reply.keyword, "alice")), server.address)
        sniffer.sendto(seen, server.address)
        assert bob.drain(0.3) == []  # no REF_DEL, no "moved"
        tcp = TcpSession(server.address)  # nor a reclaim with the keyword alone
        refused = tcp.request(w.Connect("alice", reply.keyword))
        tcp.close()
        assert isinstance(refused, w.Error) and refused.code == "AUTH_REQUIRED"
        alice.sendto(auth.seal(w.Quit(reply.keyword, "alice")), server.address)
        got = bob.recv_until(lambda m: isinstance(m, w.RefDel))
        assert got == w.RefDel(bob.keyword, ("alice",))
    finally:
        alice.close()
        sniffer.close()


def test_the_worked_example_of_protocol_md() -> None:
    """docs/PROTOCOL.md, "MAC extension": pinned keys, exact bytes."""
    client = ClientAuth(lambda n: b"\x01" * n)
    connect = client.connect("Evan")
    assert w.encode_line(connect) == (
        b"CONNECT Evan x25519=pOCSkrZRwni5dyxWn1-puxPZBrRqtoyd-dwrRAn4ogk\n")
    agreement = Agreement.answer(connect.x25519, lambda n: b"\x02" * n)
    reply = w.Keyword("kw1", agreement.x25519)
    assert w.encode_line(reply) == (
        b"KEYWORD kw1 x25519=zo060cy2M-x7cMF4FKXHbs0CloUFDTRHRboFhw5YfVk\n")
    assert client.accept(reply)
    assert client.key == agreement.key("kw1") == bytes.fromhex(
        "b8006ad1aa7ed9442c152be9e6f2980f45add5839ca1b3629fa7fe12f31cc3d8")
    assert client.seal(w.Ping("kw1", "Evan")) == b"kw1 35 PING Evan #1.JSePMGijT3nXfnAaUS7nCQ"
    assert client.seal(w.Ping("kw1", "Evan", "0123456789abcdef")) == (
        b"kw1 52 PING Evan 0123456789abcdef #2.0l8o7X0azk8u7f9jI-PKTQ")
    assert client.seal(w.Quit("kw1", "Evan")) == b"kw1 35 QUIT Evan #3.JVbe9-q_CwzT3o25YiMryw"
    assert w.encode_line(client.connect("Evan", "kw1")) == (
        b"CONNECT Evan kw1 x25519=pOCSkrZRwni5dyxWn1-puxPZBrRqtoyd-dwrRAn4ogk "
        b"proof=#4.oqjJBdp3eoXL42dRGV6eyQ\n")


def test_a_restarted_client_reclaims_with_its_saved_key() -> None:
    d = Directory(ping_interval=10)
    before = ClientAuth(counter_random(1))
    reg = register(d, "alice", 0, before)
    d.on_datagram(before.seal(w.Ping(reg.keyword, "alice")), A, 0)
    saved = before.saved()
    assert saved is not None
    for t in (1, 2):  # sent after the session was saved
        d.on_datagram(before.seal(w.Ping(reg.keyword, "alice")), A, t)
    after = ClientAuth(counter_random(30))  # the new process
    after.restore(*saved)
    connect = after.connect("alice", reg.keyword)
    again, reclaimed = d.register("alice", reg.keyword, 3, connect.x25519, connect.proof)
    assert reclaimed and again is reg
