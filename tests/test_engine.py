"""The client engine in-process against the real server.py: messaging, roster, hostile input,
server loss and restarts, crash recovery. Real sockets on 127.0.0.1, ports chosen at run time."""

from __future__ import annotations

import json
import logging
import os
import queue
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from client import events as ev
from client.engine import Engine, MessageTooLarge, UnknownPeer
from client.peer.messenger import MAX_MESSAGE
from client.reachlink import ReachConfig
from models import directory_wire as wire
from models import frames
from models.peer_wire import PLAIN, make_envelope

PING = 0.5


class Probe:
    """An engine plus everything it reported, for assertions."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.seen: list[object] = []

    def pump(self) -> None:
        while True:
            try:
                self.seen.append(self.engine.events.get_nowait())
            except queue.Empty:
                return

    def wait(self, predicate: Callable[[object], bool], timeout: float = 5.0) -> object:
        end = time.monotonic() + timeout
        start = 0
        while True:
            self.pump()
            for e in self.seen[start:]:
                if predicate(e):
                    return e
            start = len(self.seen)
            if time.monotonic() > end:
                raise AssertionError(f"{self.engine.nickname}: no such event; saw {self.seen}")
            time.sleep(0.01)

    def wait_for(self, cls: type, timeout: float = 5.0, **fields: object) -> object:
        return self.wait(lambda e: isinstance(e, cls) and all(
            getattr(e, k) == v for k, v in fields.items()), timeout)

    def of(self, cls: type) -> list[object]:
        self.pump()
        return [e for e in self.seen if isinstance(e, cls)]


@pytest.fixture
def make_engine(tmp_path: Path):
    made: list[Engine] = []

    def make(server, nick: str, *, encrypted: bool = False, config: str | None = None,
             start: bool = True, deadline: float = 10.0, punch: bool = True) -> Probe:
        # the engine core as it carries today's room and private messages; the chat layer on
        # top of it (channels, history: client/chatlink.py) has its own tests
        eng = Engine(server.address, nick, config_dir=tmp_path / (config or nick),
                     bind=("127.0.0.1", 0), encrypted=encrypted, deadline=deadline,
                     reach=ReachConfig(punch_at_join=punch), chat=False)
        made.append(eng)
        if start:
            eng.start(timeout=5)
        return Probe(eng)

    yield make
    for eng in made:
        eng.close()


def wait_roster(p: Probe, names: list[str], timeout: float = 5.0) -> None:
    end = time.monotonic() + timeout
    while sorted(p.engine.roster()) != sorted(names):
        assert time.monotonic() < end, f"{p.engine.nickname} roster {p.engine.roster()}"
        time.sleep(0.01)


def no_noise(p: Probe) -> list[object]:
    return [e for e in p.of(object) if isinstance(e, ev.Joined | ev.Left)]


@pytest.mark.parametrize("server", [{"ping_interval": PING}], indirect=True)
def test_room_private_join_leave(server, make_engine):
    a = make_engine(server, "alice")
    b = make_engine(server, "bob")
    c = make_engine(server, "Вася")
    for p, others in ((a, ["bob", "Вася"]), (b, ["alice", "Вася"]), (c, ["alice", "bob"])):
        wait_roster(p, others)
    a.wait_for(ev.Joined, nickname="bob")
    b.wait_for(ev.Registered)
    msg_id = a.engine.send_room("привет 👋 всем")
    for p in (b, c):
        p.wait_for(ev.RoomMessage, sender="alice", text="привет 👋 всем", msg_id=msg_id)
    b.engine.send_private("ВАСЯ", "line one\nline two")  # resolves case-insensitively
    c.wait_for(ev.PrivateMessage, sender="bob", text="line one\nline two")
    assert not [e for e in a.of(ev.PrivateMessage)]
    with pytest.raises(UnknownPeer):
        a.engine.send_private("nobody", "hi")
    c.engine.close()
    a.wait_for(ev.Left, nickname="Вася", timeout=3)
    b.wait_for(ev.Left, nickname="Вася", timeout=3)
    assert a.engine.roster() == ["bob"]


@pytest.mark.parametrize("server", [{"ping_interval": PING}], indirect=True)
def test_64k_whole_65k_refused(server, make_engine):
    a = make_engine(server, "alice")
    b = make_engine(server, "bob")
    wait_roster(a, ["bob"])
    big = ("я" * (MAX_MESSAGE // 2))  # 2 bytes each: exactly 64 KiB
    assert len(big.encode()) == MAX_MESSAGE
    a.engine.send_private("bob", big)
    got = b.wait_for(ev.PrivateMessage, sender="alice")
    assert got.text == big
    with pytest.raises(MessageTooLarge):
        a.engine.send_room("x" * (65 * 1024))


@pytest.mark.parametrize("server", [{"ping_interval": PING}], indirect=True)
def test_encrypted_engines_talk_and_show_fingerprints(server, make_engine):
    a = make_engine(server, "alice", encrypted=True)
    b = make_engine(server, "bob", encrypted=True)
    wait_roster(a, ["bob"])
    a.engine.send_room("secret plans")
    b.wait_for(ev.RoomMessage, sender="alice", text="secret plans")
    info = b.engine.whois("ALICE")
    assert info is not None and info.fingerprint == a.engine.own_fingerprint()
    assert not info.verified
    assert b.engine.mark_verified("alice")
    assert b.engine.whois("alice").verified
    assert b.engine.whois("nobody") is None
    answers: queue.Queue[bool] = queue.Queue()  # the Tk face's non-blocking form
    b.engine.mark_verified_later("alice", answers.put)
    b.engine.mark_verified_later("nobody", answers.put)
    assert (answers.get(timeout=5), answers.get(timeout=5)) == (True, False)
    b.engine.close()
    b.engine.mark_verified_later("alice", answers.put)  # a closed engine answers at once
    assert answers.get_nowait() is False


@pytest.mark.parametrize("server", [{"ping_interval": PING}], indirect=True)
def test_undelivered_when_peer_dies(server, make_engine):
    a = make_engine(server, "alice", deadline=30.0)
    b = make_engine(server, "bob")
    wait_roster(a, ["bob"])
    b.engine._closing = True  # a crash: no QUIT, the socket just goes away
    b.engine._sock.close()
    msg_id = a.engine.send_private("bob", "are you there?")
    nd = a.wait_for(ev.NotDelivered, timeout=5)
    assert (nd.nickname, nd.text, nd.msg_id, nd.private) == ("bob", "are you there?", msg_id,
                                                             True)
    a.wait_for(ev.Left, nickname="bob")


@pytest.mark.parametrize("server", [{"ping_interval": PING}], indirect=True)
def test_spoofed_and_garbage_datagrams_change_nothing(server, make_engine, udp_socket):
    a = make_engine(server, "alice")
    b = make_engine(server, "bob")
    wait_roster(a, ["bob"])
    wait_roster(b, ["alice"])
    target = b.engine.address
    # a well-formed DATA frame, exactly what alice would send, but from another address
    data = frames.encode(frames.Data(epoch=7, seq=0, lag=0, kind=frames.KIND_ROOM, msg_id=1,
                                     index=0, count=1, chunk=b"I am alice"))
    spoof = make_envelope(PLAIN, data)
    udp_socket.sendto(spoof, target)
    # server-looking datagrams from a non-server address, and with a wrong keyword
    keyword = b.engine._channel.keyword
    udp_socket.sendto(wire.encode_datagram(wire.RefDel(keyword, ("alice",))), target)
    fake_del = wire.encode_datagram(wire.RefDel("wrongkeyword", ("alice",)))
    for junk in [b"", b"\xc1", b"\xc1\x01\x10", b"\xc1\x01\x20" + os.urandom(60), os.urandom(1200),
                 b"garbage 3 PONG", fake_del, b"\xff" * 3000]:
        udp_socket.sendto(junk, target)
    time.sleep(0.3)
    assert b.engine.roster() == ["alice"]
    assert not b.of(ev.RoomMessage)
    assert b.engine.stats["peer_dropped"] >= 1 and b.engine.stats["server_dropped"] >= 3
    # and it still works
    a.engine.send_room("still fine")
    b.wait_for(ev.RoomMessage, sender="alice", text="still fine")


@pytest.mark.parametrize("server", [{"ping_interval": PING}], indirect=True)
def test_server_killed_then_restarted_on_its_database(server, make_engine):
    a = make_engine(server, "alice")
    b = make_engine(server, "bob")
    wait_roster(a, ["bob"])
    wait_roster(b, ["alice"])
    server.kill()
    a.wait_for(ev.ServerLost, timeout=3)
    b.wait_for(ev.ServerLost, timeout=3)
    assert not a.engine.server_online
    a.engine.send_room("server is gone, we are not")
    b.wait_for(ev.RoomMessage, text="server is gone, we are not")
    server.start()
    a.wait_for(ev.ServerBack, timeout=5)
    b.wait_for(ev.ServerBack, timeout=5)
    b.engine.send_private("alice", "welcome back")
    a.wait_for(ev.PrivateMessage, text="welcome back")
    time.sleep(3 * PING)
    assert a.engine.roster() == ["bob"] and b.engine.roster() == ["alice"]
    assert not a.of(ev.Reregistered) and not b.of(ev.Reregistered)
    assert [type(e) for e in no_noise(a)] == [ev.Joined]  # only bob's original join
    assert no_noise(b) == []


@pytest.mark.parametrize("server", [{"ping_interval": PING}], indirect=True)
def test_server_restarted_on_empty_database_clients_reregister(server, make_engine):
    a = make_engine(server, "alice")
    b = make_engine(server, "bob")
    wait_roster(a, ["bob"])
    wait_roster(b, ["alice"])
    server.kill()
    a.wait_for(ev.ServerLost, timeout=3)
    server.db_path.unlink()
    for suffix in ("-wal", "-shm"):
        Path(str(server.db_path) + suffix).unlink(missing_ok=True)
    server.start()
    a.wait_for(ev.Reregistered, timeout=5)
    b.wait_for(ev.Reregistered, timeout=5)
    # both are in the new directory again: a newcomer sees them
    c = make_engine(server, "carol")
    wait_roster(c, ["alice", "bob"])
    wait_roster(a, ["bob", "carol"])
    a.engine.send_room("after the reset")
    for p in (b, c):
        p.wait_for(ev.RoomMessage, text="after the reset")
    time.sleep(4 * PING)  # past the ghost grace
    assert not [e for e in no_noise(a) if isinstance(e, ev.Left)]
    assert not [e for e in no_noise(b) if isinstance(e, ev.Left)]


@pytest.mark.parametrize("server", [{"ping_interval": PING}], indirect=True)
def test_crashed_client_comes_back_at_once_with_its_saved_keyword(server, make_engine):
    a = make_engine(server, "alice")
    b = make_engine(server, "bob")
    wait_roster(b, ["alice"])
    a.engine._closing = True  # crash: no QUIT
    a.engine._sock.close()
    a.engine._session.release()  # as the OS does for a dead process's locks
    a2 = make_engine(server, "alice")  # same config dir: reclaims at once
    a2.engine.send_room("back")
    b.wait_for(ev.RoomMessage, sender="alice", text="back")
    time.sleep(2 * PING)
    assert no_noise(b) == []
    assert b.engine.roster() == ["alice"]


@pytest.mark.parametrize("server", [{"ping_interval": PING}], indirect=True)
def test_roster_repaired_after_a_lost_ref_del(server, make_engine, joined):
    a = make_engine(server, "alice")
    ghost = joined(server, "ghost")  # a directory client that we make alice miss
    wait_roster(a, ["ghost"])
    # inject a stale row alice never hears the end of: alice believes "phantom" is online
    a.engine._call(lambda now: a.engine._apply(
        a.engine._roster.directory.add([("phantom", "127.0.0.1", 9)]), now))
    assert "phantom" in a.engine.roster()
    a.wait_for(ev.Left, nickname="phantom", timeout=6 * PING + 3)
    ghost.quit()
    a.wait_for(ev.Left, nickname="ghost", timeout=3)


@pytest.mark.parametrize("server", [{"ping_interval": PING}], indirect=True)
def test_close_is_idempotent_and_sends_quit(server, make_engine):
    a = make_engine(server, "alice")
    b = make_engine(server, "bob")
    wait_roster(b, ["alice"])
    t0 = time.monotonic()
    a.engine.close()
    a.engine.close()
    assert time.monotonic() - t0 < 2
    assert server.wait_for_log(r"leave alice \(quit\)", timeout=3)  # QUIT, not the timeout
    b.wait_for(ev.Left, nickname="alice", timeout=3)
    with pytest.raises(RuntimeError):
        a.engine.send_room("after close")


def test_unreachable_server_and_refused_nickname(server_factory, tmp_path):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    from client.errors import RegistrationError, ServerUnreachable

    eng = Engine(("127.0.0.1", port), "alice", config_dir=tmp_path / "x", encrypted=False)
    with pytest.raises(ServerUnreachable):
        eng.start(timeout=1)
    eng.close()
    srv = server_factory(ping_interval=PING)
    eng = Engine(srv.address, "bad nick", config_dir=tmp_path / "y", encrypted=False)
    with pytest.raises(RegistrationError):
        eng.start(timeout=2)
    eng.close()


@pytest.mark.parametrize("server", [{"ping_interval": PING}], indirect=True)
def test_peer_that_never_comes_back_after_an_empty_restart_is_reported_left(server,
                                                                            make_engine):
    a = make_engine(server, "alice")
    b = make_engine(server, "bob")
    wait_roster(a, ["bob"])
    server.kill()
    a.wait_for(ev.ServerLost, timeout=3)
    b.engine._closing = True  # bob dies while the server is away
    b.engine._sock.close()
    server.db_path.unlink()
    for suffix in ("-wal", "-shm"):
        Path(str(server.db_path) + suffix).unlink(missing_ok=True)
    server.start()
    a.wait_for(ev.Reregistered, timeout=5)
    assert a.engine.roster() == ["bob"]  # a ghost for a while: he may be re-registering
    a.wait_for(ev.Left, nickname="bob", timeout=5 * PING + 2)
    assert a.engine.roster() == []


class Files:
    """Stands in for client.files.FileTransfers: records what the engine routes to it."""

    def __init__(self) -> None:
        self.control: list[tuple[str, bytes]] = []

    def on_control(self, peer: str, payload: bytes) -> None:
        self.control.append((peer, payload))


@pytest.mark.parametrize("server", [{"ping_interval": PING}], indirect=True)
def test_control_messages_reach_the_file_layer_and_notify_is_called(server, make_engine,
                                                                    tmp_path):
    woken = []
    b_engine = Engine(server.address, "bob", config_dir=tmp_path / "bob2", encrypted=False,
                      notify=lambda: woken.append(1))
    b_engine.files = Files()
    b_engine.start()
    try:
        a = make_engine(server, "alice")
        wait_roster(a, ["bob"])
        a.engine.send_control("bob", b"F\x01offer")
        a.engine.send_control("bob", b"Xnot for files")
        end = time.monotonic() + 5
        while not b_engine.files.control and time.monotonic() < end:
            time.sleep(0.01)
        time.sleep(0.1)
        assert b_engine.files.control == [("alice", b"F\x01offer")]
        assert woken
        assert a.engine.address_of("bob") == ("127.0.0.1", b_engine.address[1])
    finally:
        b_engine.close()


@pytest.mark.parametrize("server", [{"ping_interval": 2.0}], indirect=True)
def test_arbitrary_datagrams_never_raise_nor_change_the_roster(server, make_engine):
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    a = make_engine(server, "alice", encrypted=True)
    b = make_engine(server, "bob", encrypted=True)
    wait_roster(a, ["bob"])
    eng = a.engine
    peer_addr = eng.address_of("bob")
    sources = st.sampled_from([peer_addr, eng._server_addr, ("127.0.0.1", 9)])
    prefixes = st.sampled_from([b"", b"\xc1", b"\xc1\x01", b"\xc1\x01\x20",
                                eng._channel.keyword.encode() + b" "])

    @settings(max_examples=300, deadline=None,
              suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(prefix=prefixes, body=st.binary(max_size=1300), source=sources)
    def feed(prefix: bytes, body: bytes, source: tuple[str, int]) -> None:
        eng._call(lambda now: eng._router._dispatch(prefix + body, source, now))

    feed()
    assert eng.roster() == ["bob"]
    assert eng.stats.get("internal_errors", 0) == 0
    a.engine.send_room("still talking")
    b.wait_for(ev.RoomMessage, text="still talking")


@pytest.mark.parametrize("server", [{"ping_interval": PING}], indirect=True)
def test_fetch_identity_handshakes_without_a_message(server, make_engine):
    # without the punch at join (issue 10), which would bring the key before anyone asks
    a = make_engine(server, "alice", encrypted=True, punch=False)
    b = make_engine(server, "bob", encrypted=True, punch=False)
    wait_roster(a, ["bob"])
    assert a.engine.whois("bob").fingerprint is None  # nothing exchanged, nothing pinned
    answers: queue.Queue = queue.Queue()
    a.engine.fetch_identity("BOB", answers.put, timeout=3.0)
    info = answers.get(timeout=5)
    assert info.nickname == "bob" and info.fingerprint == b.engine.own_fingerprint()
    a.engine.fetch_identity("nobody", answers.put)  # not online, never seen: None at once
    assert answers.get(timeout=5) is None
    assert not a.of(ev.RoomMessage) and not b.of(ev.RoomMessage)


@pytest.mark.parametrize("server", [{"ping_interval": PING}], indirect=True)
def test_verified_in_an_earlier_run_is_known_at_start_and_on_join(server, make_engine):
    a = make_engine(server, "alice", encrypted=True)
    b = make_engine(server, "bob", encrypted=True)
    wait_roster(a, ["bob"])
    assert a.engine.whois_fetched("bob").fingerprint == b.engine.own_fingerprint()
    assert not a.engine.is_verified("bob")
    assert a.engine.mark_verified("bob") and a.engine.is_verified("bob")
    a.engine.close()  # the pin is saved as verified
    # a new run with the same config: bob is verified from the start, no handshake needed
    a2 = make_engine(server, "alice", encrypted=True, config="alice")
    assert a2.engine.is_verified("bob")
    b.engine.close()
    a2.wait_for(ev.Left, nickname="bob")
    assert not a2.engine.is_verified("bob")
    b2 = make_engine(server, "bob", encrypted=True, config="bob")  # same key
    a2.wait_for(ev.Joined, nickname="bob")
    assert a2.engine.is_verified("bob")  # set before the Joined event was queued
    b2.engine.close()
    a2.wait_for(ev.Left, nickname="bob")
    make_engine(server, "bob", encrypted=True, config="impostor")  # another key
    # a verified peer's key is checked at once (a handshake on join): the impostor is flagged
    a2.wait_for(ev.KeyChanged, nickname="bob")
    assert not a2.engine.is_verified("bob")


def test_engines_over_ipv6(server_factory, tmp_path):
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as probe:
            probe.bind(("::1", 0))
    except OSError as exc:
        pytest.skip(f"no IPv6 loopback here: {exc}")
    srv = server_factory(ping_interval=PING, start=False)
    srv.host = "::1"
    srv.start()
    made = []
    try:
        for nick in ("alice", "bob"):
            eng = Engine(("::1", srv.port), nick, config_dir=tmp_path / nick)
            made.append(eng)
            eng.start(timeout=5)
        a, b = Probe(made[0]), Probe(made[1])
        assert a.engine.address[0] == "::" and len(a.engine.address) == 2
        assert a.engine._listen_host() == "::"  # the file listener takes our socket's family
        wait_roster(a, ["bob"])
        assert a.engine.address_of("bob") == ("::1", b.engine.address[1])
        a.engine.send_room("привет over v6 🚀")  # a command: the wake-up datagram works
        b.wait_for(ev.RoomMessage, sender="alice", text="привет over v6 🚀")
        b.engine.send_private("alice", "private v6")
        a.wait_for(ev.PrivateMessage, sender="bob", text="private v6")
        assert a.engine.whois("bob").fingerprint == b.engine.own_fingerprint()
        # garbage and a forged peer datagram from another IPv6 socket change nothing
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as evil:
            for junk in (b"\xc1\x01\x20" + bytes(40), b"PONG x y", b""):
                evil.sendto(junk, ("::1", a.engine.address[1]))
        deadline = time.monotonic() + 3
        while a.engine.stats["peer_dropped"] + a.engine.stats["server_dropped"] < 2:
            assert time.monotonic() < deadline, a.engine.stats
            time.sleep(0.01)
        a.engine.send_room("still fine")
        b.wait_for(ev.RoomMessage, sender="alice", text="still fine")
        time.sleep(3 * PING)  # PINGs and PONGs over IPv6: the server stays online
        assert a.engine.server_online and not a.of(ev.ServerLost)
        # a file goes straight across over IPv6 too (the listener binds "::")
        a.engine.attach_files(tmp_path / "a-dl")
        b.engine.attach_files(tmp_path / "b-dl")
        src = tmp_path / "v6.bin"
        data = os.urandom(200_000)
        src.write_bytes(data)
        a.engine.offer_files("bob", [src])
        offer = b.wait_for(ev.FileOffered, sender="alice", name="v6.bin")
        b.engine.accept_file(offer.transfer_id)
        done = b.wait_for(ev.FileDone, name="v6.bin", timeout=15)
        assert done.path is not None and done.path.read_bytes() == data
    finally:
        for eng in made:
            eng.close()


# --- review fixes: closing, stopping, Windows oversized datagrams ------------------------------

@pytest.mark.parametrize("server", [{"ping_interval": PING}], indirect=True)
def test_new_pins_are_saved_when_the_engine_closes(server, make_engine, tmp_path):
    a = make_engine(server, "alice", encrypted=True)
    make_engine(server, "bob", encrypted=True)
    wait_roster(a, ["bob"])
    a.engine.send_private("bob", "hi")
    end = time.monotonic() + 5
    while a.engine.whois("bob").fingerprint is None:  # the handshake is done
        assert time.monotonic() < end
        time.sleep(0.005)
    a.engine.close()  # at once: the lazy 0.2 s save has not happened yet
    pins = json.loads((tmp_path / "alice" / "pins.json").read_text())
    assert "bob" in pins["pins"]


class BlockingFiles:
    """A file layer whose tick() or close() blocks until the test lets it go."""

    def __init__(self, engine: Engine | None = None) -> None:
        self.engine = engine
        self.entered = threading.Event()
        self.release = threading.Event()
        self.closed_at: float | None = None

    def tick(self, now: float) -> None:
        if self.engine is not None and not self.entered.is_set():
            self.entered.set()
            self.release.wait(5)
            self.engine._closing = True  # the engine thread stops at the end of this turn

    def close(self) -> None:
        if self.engine is None:
            self.entered.set()
            self.release.wait(5)
            self.closed_at = time.monotonic()


@pytest.mark.parametrize("server", [{"ping_interval": PING}], indirect=True)
def test_callers_are_answered_when_the_engine_thread_stops(server, make_engine):
    a = make_engine(server, "alice", start=False)
    a.engine.files = BlockingFiles(a.engine)
    a.engine.start(timeout=5)
    assert a.engine.files.entered.wait(5)  # the engine thread is busy in tick()
    got: list[object] = []
    a.engine.fetch_identity("nobody", got.append)  # queued behind the busy turn
    errors: list[BaseException] = []

    def whois() -> None:
        try:
            a.engine.whois("nobody")
        except RuntimeError as exc:
            errors.append(exc)

    caller = threading.Thread(target=whois)
    caller.start()
    time.sleep(0.05)
    t0 = time.monotonic()
    a.engine.files.release.set()  # the thread stops with both commands still queued
    caller.join(2)
    assert not caller.is_alive() and time.monotonic() - t0 < 1
    assert got == [None] and len(errors) == 1


@pytest.mark.parametrize("server", [{"ping_interval": PING}], indirect=True)
def test_close_sends_quit_before_closing_slow_file_transfers(server, make_engine):
    a = make_engine(server, "alice", start=False)
    b = make_engine(server, "bob")
    a.engine.files = files = BlockingFiles()
    a.engine.start(timeout=5)
    wait_roster(b, ["alice"])
    closer = threading.Thread(target=a.engine.close)
    closer.start()
    try:
        assert files.entered.wait(3)
        # files.close() is still running, and the server already saw the QUIT
        assert server.wait_for_log(r"leave alice \(quit\)", timeout=3)
        b.wait_for(ev.Left, nickname="alice", timeout=3)
    finally:
        files.release.set()
        closer.join(5)
    assert files.closed_at is not None and not closer.is_alive()


class OversizedThenOne:
    """A socket stand-in: Windows' WSAEMSGSIZE for a datagram over the buffer, then one more."""

    def __init__(self) -> None:
        big = OSError(10040, "message too long")
        big.winerror = 10040  # what Windows sets; Linux truncates instead
        self.script: list[object] = [big, big, (b"PONG x y", ("127.0.0.1", 9))]

    def recvfrom(self, size: int) -> tuple[bytes, tuple[str, int]]:
        if not self.script:
            raise BlockingIOError
        item = self.script.pop(0)
        if isinstance(item, BaseException):
            raise item
        return item  # type: ignore[return-value]


def test_windows_oversized_datagram_is_counted_and_the_batch_goes_on(tmp_path, caplog):
    from client.peer.messenger import Messenger
    from client.peer.plain import PlainTransport

    eng = Engine(("127.0.0.1", 9), "alice", config_dir=tmp_path, bind=("127.0.0.1", 0))
    real = eng._udp.sock
    try:
        eng._wire_peers(Messenger(now=0.0), PlainTransport(now=0.0))
        eng._udp.sock = OversizedThenOne()  # type: ignore[assignment]
        with caplog.at_level(logging.WARNING):  # neither the engine nor the UDP edge logs
            eng._drain(0.0)
        assert eng.stats["oversized"] == 2
        assert eng.stats["server_dropped"] == 1  # the datagram after them was still read
        assert eng._listen_host() == "127.0.0.1"  # an explicit bind address: files listen there
        assert not caplog.records
    finally:
        eng._udp.sock = real
        eng.close()
