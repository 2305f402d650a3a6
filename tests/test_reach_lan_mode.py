"""No server (issue 10): three hosts on one switch chat directly -- room, private, a file, all
encrypted -- then the server comes up, everyone registers, and the LAN and directory rosters
merge without duplicates or leave/join noise. Also: a nickname clash on the LAN is shown and
never merged, and forged or flooding announcements do no harm."""

from __future__ import annotations

import random
import socket
import time
from pathlib import Path

import pytest

from client import events as ev
from client.reach.discovery import DEFAULT_PORT, MCAST_GROUP, Announcement
from tests.nat import Lab, lab_unavailable, lan_lab, udp_socket
from tests.reachlab import LabEngine, LabServer

reason = lab_unavailable()
pytestmark = [pytest.mark.netns, pytest.mark.skipif(reason is not None, reason=reason or "")]


def test_lan_mode_room_private_file_then_a_server_appears(tmp_path: Path) -> None:
    with Lab() as lab:
        hosts = lan_lab(lab, 4)
        server_addr = (hosts[3].ip, random.randint(20000, 60000))  # a fresh namespace: free
        made = [LabEngine(h.ns, server_addr, nick, tmp_path / nick, lan=True)
                for h, nick in zip(hosts, ("alice", "bob", "carol"), strict=False)]
        alice, bob, carol = made
        srv = None
        try:
            for e in made:
                note = e.wait_for(ev.Notice, timeout=1)
                assert "does not answer" in note.text and "this network" in note.text
            for e in made:
                e.wait_roster(sorted({"alice", "bob", "carol"} - {e.nick}), timeout=6)
            alice.engine.send_room("hello LAN")
            bob.wait_for(ev.RoomMessage, text="hello LAN", timeout=3)
            carol.wait_for(ev.RoomMessage, text="hello LAN", timeout=3)
            bob.engine.send_private("carol", "just us")
            carol.wait_for(ev.PrivateMessage, text="just us", sender="bob", timeout=3)
            assert alice.engine.whois("bob").fingerprint == bob.engine.own_fingerprint()
            assert alice.path("bob").startswith("LAN 10.77.0.2:")
            # a file, over the LAN path
            for e in made:
                e.run(lambda e=e: e.engine.attach_files(tmp_path / e.nick / "downloads"))
            payload = tmp_path / "notes.bin"
            payload.write_bytes(bytes(range(256)) * 400)
            alice.engine.offer_files("carol", [payload])
            offer = carol.wait_for(ev.FileOffered, timeout=5)
            carol.engine.accept_file(offer.transfer_id)
            done = carol.wait_for(ev.FileDone, timeout=10)
            assert Path(done.path).read_bytes() == payload.read_bytes()
            noise_before = {e.nick: len(e.of(ev.Joined)) + len(e.of(ev.Left)) for e in made}
            # the server comes up: everyone registers, nobody leaves or joins again
            srv = LabServer(hosts[3].ns, server_addr[0], tmp_path / "dir.db")
            srv.port = server_addr[1]
            srv.start()
            for e in made:
                e.wait_until(lambda e=e: e.engine.server_online, "registered", timeout=20)
                e.wait_text(ev.Notice, "registered with the server", timeout=2)
            time.sleep(1.0)
            for e in made:
                assert sorted(e.engine.roster()) == sorted({"alice", "bob", "carol"} - {e.nick})
                assert len(e.of(ev.Joined)) + len(e.of(ev.Left)) == noise_before[e.nick]
            carol.engine.send_room("merged")
            alice.wait_for(ev.RoomMessage, text="merged", timeout=3)
            bob.wait_for(ev.RoomMessage, text="merged", timeout=3)
            assert alice.path("carol").startswith("LAN")  # the LAN path stays the better one
        finally:
            for e in made:
                e.close()
            if srv is not None:
                srv.kill()


def _announce(sock: socket.socket, ann: Announcement) -> None:
    sock.sendto(ann.encode(), (MCAST_GROUP, DEFAULT_PORT))


def test_clash_forgery_and_flood_on_the_lan(tmp_path: Path) -> None:
    with Lab() as lab:
        hosts = lan_lab(lab, 3)
        nowhere = (hosts[2].ip, 9)  # no server
        alice = LabEngine(hosts[0].ns, nowhere, "alice", tmp_path / "alice", lan=True)
        bob = LabEngine(hosts[1].ns, nowhere, "bob", tmp_path / "bob", lan=True)
        evil = udp_socket(hosts[2].ns, (hosts[2].ip, 0))
        try:
            alice.wait_roster(["bob"], timeout=6)
            alice.engine.send_private("bob", "first")
            bob.wait_for(ev.PrivateMessage, text="first", timeout=3)
            evil.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF,
                            socket.inet_aton(hosts[2].ip))
            # another key announces "bob" (a clash: shown, never merged), and a flood of
            # made-up peers and garbage follows from the same host
            fake_bob = Announcement(False, evil.getsockname()[1], b"\x01" * 8, "bob",
                                    b"\x02" * 32)
            for _ in range(3):
                _announce(evil, fake_bob)
            note = alice.wait_text(ev.Notice, "clash", timeout=3)
            assert "bob" in note.text
            for i in range(2000):
                if i % 3:
                    evil.sendto(b"OLCa\x01\x00" + bytes(i % 200), (MCAST_GROUP, DEFAULT_PORT))
                else:
                    _announce(evil, Announcement(False, 9, i.to_bytes(8, "big"), f"x{i}",
                                                 i.to_bytes(32, "big")))
            time.sleep(0.5)
            roster = alice.engine.roster()
            assert "bob" in roster and len(roster) < 1 + 64  # per-source caps hold
            # bob is still bob: the messages reach him, not the forger
            alice.engine.send_private("bob", "still you?")
            bob.wait_for(ev.PrivateMessage, text="still you?", timeout=3)
            assert alice.engine.whois("bob").fingerprint == bob.engine.own_fingerprint()
            assert alice.engine.stats.get("internal_errors", 0) == 0
        finally:
            evil.close()
            alice.close()
            bob.close()


def test_the_server_is_found_with_no_server_option(tmp_path: Path) -> None:
    import subprocess
    import sys

    from tests.netns import REPO, client_env

    with Lab() as lab:
        hosts = lan_lab(lab, 2)
        srv = LabServer(hosts[1].ns, "0.0.0.0", tmp_path / "dir.db",
                        extra_args=("--beacon", "--label", "office"))
        srv.start()
        argv = ["ip", "netns", "exec", hosts[0].ns, sys.executable, "-m", "client",
                "--headless", "--lan", "--nick", "alice", "--config-dir", str(tmp_path / "a"),
                "--no-files"]
        proc = subprocess.Popen(argv, cwd=REPO, env=client_env(), stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            proc.stdin.write("/netcheck\n")
            proc.stdin.flush()
            time.sleep(3)
            proc.stdin.write("/quit\n")
            proc.stdin.flush()
            out, err = proc.communicate(timeout=15)
        finally:
            if proc.poll() is None:
                proc.kill()
            srv.kill()
        assert "-!- registered as alice" in out, (out, err[-2000:])
        assert "no server found" not in out
        assert f"server: {hosts[1].ip}:{srv.port} (online)" in out
        assert f"servers heard on the LAN: {hosts[1].ip}:{srv.port}" in out
