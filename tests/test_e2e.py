"""End to end: the real server.py and real terminal clients (``python -m client --headless``),
each with its own config dir, talking over 127.0.0.1 (encrypted, as the terminal always is)."""

from __future__ import annotations

import os
import re
import socket
import time
from pathlib import Path

import pytest

from models import directory_wire as wire
from tests.netns import ClientProc

PING = 0.5


@pytest.fixture
def clients(tmp_path: Path):
    made: list[ClientProc] = []

    def start(server, nick: str, config: str | None = None) -> ClientProc:
        c = ClientProc(server.address, nick, tmp_path / (config or nick))
        made.append(c)
        c.expect(r"-!- registered as .*", timeout=15)
        return c

    yield start
    for c in made:
        c.kill()


def quiet_lines(c: ClientProc, wait: float = 0.3) -> list[str]:
    return c.drain(wait)


@pytest.mark.parametrize("server", [{"ping_interval": PING}], indirect=True)
def test_three_clients_room_private_unicode_big_and_leaves(server, clients):
    alice = clients(server, "alice")
    bob = clients(server, "bob")
    alice.expect("-!- bob joined")
    carol = clients(server, "Вася")
    for c in (alice, bob):
        c.expect("-!- Вася joined")

    alice.send("/who")
    alice.expect(r"-!- online \(3\): alice, bob, Вася")

    alice.send("hello everyone")
    bob.expect("<alice> hello everyone")
    carol.expect("<alice> hello everyone")

    carol.send("Привет, мир! 🎉🐍 ёЁ")
    alice.expect("<Вася> Привет, мир! 🎉🐍 ёЁ")
    bob.expect("<Вася> Привет, мир! 🎉🐍 ёЁ")

    bob.send("/msg вася just between us")
    carol.expect(r"\*bob\* just between us")

    bob.send(r"first line\nsecond line")
    alice.expect("<bob> first line")
    alice.expect("  second line")

    big = "я" * (32 * 1024)  # 64 KiB of UTF-8
    alice.send(f"/msg bob {big}")
    got = bob.expect(r"\*alice\* я+", timeout=15)
    assert got == f"*alice* {big}"
    alice.send("ж" * (33 * 1024))  # 66 KiB: refused before sending
    alice.expect(r"-!- message too long, not sent: .*")

    assert not [x for x in quiet_lines(carol) if "hello" in x or "just between" in x]
    assert all("just between us" not in line for line in alice.seen)

    assert carol.quit() == 0
    alice.expect("-!- Вася left", timeout=5)
    bob.expect("-!- Вася left", timeout=5)
    bob.proc.stdin.close()  # end of input leaves too
    assert bob.proc.wait(10) == 0
    alice.expect("-!- bob left", timeout=5)


@pytest.mark.parametrize("server", [{"ping_interval": PING}], indirect=True)
def test_server_crash_restart_on_db_then_on_empty_db(server, clients, tmp_path):
    alice = clients(server, "alice")
    bob = clients(server, "bob")
    alice.expect("-!- bob joined")
    carol = clients(server, "carol")
    alice.expect("-!- carol joined")
    bob.expect("-!- carol joined")
    everyone = (alice, bob, carol)

    marks = {c.nick: len(c.seen) for c in everyone}
    server.kill()
    for c in everyone:
        c.expect("-!- server unreachable, peers still reachable", timeout=5)
    alice.send("the server is down but we are not")
    bob.expect("<alice> the server is down but we are not")
    carol.expect("<alice> the server is down but we are not")
    bob.send("/msg carol still private")
    carol.expect(r"\*bob\* still private")

    server.start()  # same database
    for c in everyone:
        c.expect("-!- server back", timeout=5)
    time.sleep(3 * PING)
    for c in everyone:
        later = c.seen[marks[c.nick]:] + quiet_lines(c)
        assert not [x for x in later if re.search(r" (joined|left)$", x)], later

    server.kill()
    for c in everyone:
        c.expect("-!- server unreachable, peers still reachable", timeout=5)
    server.db_path.unlink()
    for suffix in ("-wal", "-shm"):
        Path(str(server.db_path) + suffix).unlink(missing_ok=True)
    server.start()  # empty database: everyone registers again by themselves
    for c in everyone:
        c.expect("-!- server back", timeout=5)
    dave = clients(server, "dave")
    dave.send("/who")
    dave.expect(r"-!- online \(4\): alice, bob, carol, dave", timeout=5)
    for c in everyone:
        c.expect("-!- dave joined", timeout=5)
    dave.send("hi all")
    for c in everyone:
        c.expect("<dave> hi all")
    time.sleep(4 * PING)  # past the grace for peers missing from a fresh directory
    for c in everyone:
        assert not [x for x in quiet_lines(c) + c.seen if x.endswith(" left")]


@pytest.mark.parametrize("server", [{"ping_interval": PING}], indirect=True)
def test_garbage_and_foreign_datagrams_change_nothing(server, clients, udp_socket):
    alice = clients(server, "alice")
    bob = clients(server, "bob")
    alice.expect("-!- bob joined")
    alice.send("/whois bob")
    line = alice.expect(r"-!- bob at 127\.0\.0\.1:\d+: .*")
    port = int(re.search(r":(\d+):", line).group(1))
    bob_addr = ("127.0.0.1", port)
    junk = [b"", b"\x00", os.urandom(1200), b"\xc1\x01\x01" + os.urandom(152),
            b"\xc1\x01\x02" + os.urandom(152), b"\xc1\x01\x20" + os.urandom(100),
            b"\xc1\x01\x10" + os.urandom(40), b"\xc1\x09\x20" + os.urandom(40),
            wire.encode_datagram(wire.RefDel("abcdefgh", ("alice",))),
            wire.encode_datagram(wire.RefAdd("abcdefgh", (wire.Entry("eve", "127.0.0.1", 9),))),
            b"x" * 60000]
    for _ in range(3):
        for data in junk:
            udp_socket.sendto(data, bob_addr)
    time.sleep(0.3)
    alice.send("after the garbage")
    bob.expect("<alice> after the garbage")
    bob.send("/who")
    bob.expect(r"-!- online \(2\): alice, bob")
    unexpected = [x for x in bob.seen if x not in (
        "<alice> after the garbage", "-!- online (2): alice, bob") and
        not x.startswith("-!- registered")]
    assert unexpected == []


@pytest.mark.parametrize("server", [{"ping_interval": PING}], indirect=True)
def test_impostor_with_another_key_is_flagged(server, clients):
    alice = clients(server, "alice")
    bob = clients(server, "bob")
    alice.expect("-!- bob joined")
    alice.send("hi bob, it is really me")
    bob.expect("<alice> hi bob, it is really me")  # bob pins alice's key
    assert alice.quit() == 0
    bob.expect("-!- alice left", timeout=5)
    mallory = clients(server, "alice", config="mallory")  # same nickname, another identity key
    bob.expect("-!- alice joined")
    mallory.send("hi bob, it is me again, honest")
    bob.expect(r"-!- WARNING: .*alice.*", timeout=10)
    bob.expect(r"<alice> hi bob, it is me again, honest")
    bob.send("/whois alice")
    bob.expect(r"-!- alice at .*KEY CHANGED.*")
    mallory.send("/whois bob")
    mallory.expect(r"-!- bob at .*: fingerprint [A-Z2-7 ]+ \(not verified\)")
    # bob checks the new key with its owner and accepts it: the warning stops
    bob.send("/verify alice")
    bob.expect("-!- alice's key is now marked as verified")
    bob.send("/whois alice")
    bob.expect(r"-!- alice at .*: fingerprint [A-Z2-7 ]+ \(verified\)")
    mallory.send("second message")
    bob.expect("<alice> second message")
    assert bob.seen[-2] != "-!- WARNING: UNVERIFIED KEY CHANGE (alice)"


def test_cannot_start_reports_on_stderr(tmp_path):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    c = ClientProc(("127.0.0.1", port), "alice", tmp_path / "a")
    assert c.proc.wait(15) == 1
    c._err.join(5)
    errors = [x for x in c.stderr_text.splitlines() if x.strip()]
    assert len(errors) == 1 and errors[0].startswith("error: server unreachable")


@pytest.mark.parametrize("server", [{"ping_interval": PING}], indirect=True)
def test_piped_input_is_delivered_before_leaving(server, clients, tmp_path):
    bob = clients(server, "bob")
    script = ClientProc(server.address, "script", tmp_path / "script")
    script.send("one line from a script")
    script.send("/msg bob and a private one")
    script.proc.stdin.close()  # end of input right away: leave, but deliver first
    assert script.proc.wait(15) == 0
    bob.expect("<script> one line from a script")
    bob.expect(r"\*script\* and a private one")
    bob.expect("-!- script left")


@pytest.mark.parametrize("server", [{"ping_interval": PING}], indirect=True)
def test_file_transfer_between_terminals(server, clients, tmp_path):
    alice = clients(server, "alice")
    bob = clients(server, "bob")
    alice.expect("-!- bob joined")
    src = tmp_path / "отчёт 📄.bin"
    data = os.urandom(300_000)
    src.write_bytes(data)
    alice.send(f"/send BOB {src}")
    alice.expect(r"-!- offered .* to bob as #\d+")
    line = bob.expect(r"-!- alice offers file #(\d+): отчёт 📄\.bin \(293\.0 KiB\); .*")
    tid = re.search(r"#(\d+)", line).group(1)
    alice.send("still chatting")
    bob.expect("<alice> still chatting")
    bob.send(f"/accept {tid}")
    done = bob.expect(rf"-!- file #{tid} отчёт 📄\.bin from alice saved as (.*)", timeout=20)
    saved = Path(done.split(" saved as ", 1)[1])
    assert saved.parent == tmp_path / "bob" / "downloads"
    assert saved.read_bytes() == data
    alice.expect(r"-!- file #\d+ отчёт 📄\.bin sent to bob", timeout=10)
    bob.send("/decline 999")
    alice.send(f"/send bob {tmp_path / 'missing.txt'}")
    alice.expect(r"-!- file: .*missing\.txt.*")


# The old entry must outlive the new process's start-up (a Python start on a loaded 2-core
# machine can take over a second), so this test gives the server a longer timeout.
RESTART_PING = 2.0


@pytest.mark.parametrize("server", [{"ping_interval": RESTART_PING}], indirect=True)
def test_killed_client_restarts_at_once_without_noise(server, clients):
    alice = clients(server, "alice")
    bob = clients(server, "bob")
    alice.expect("-!- bob joined")
    mark = len(alice.seen)
    bob.proc.kill()  # SIGKILL: no QUIT
    bob.proc.wait(5)
    bob2 = clients(server, "bob")  # same config dir: reclaims its saved registration
    bob2.send("back already")
    alice.expect("<bob> back already")
    alice.send("welcome back")
    bob2.expect("<alice> welcome back")
    time.sleep(1.5 * RESTART_PING + 0.5)  # longer than the server's timeout for the old socket
    later = alice.seen[mark:] + quiet_lines(alice)
    assert not [x for x in later if re.search(r" (joined|left)$", x)], later
