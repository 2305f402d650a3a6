"""Issue 12 item 6, the client's side: our engine uses the directory's MAC extension against the
real server, so a sniffer who saw every datagram cannot kick anyone with a forged QUIT, even
right after a server restart; design-only clients and design-only servers still work.

The sniffer is real: an AF_PACKET socket on the loopback (root) that sees every datagram, and
a raw socket that sends UDP with alice's own source address. Skipped without root.
"""

from __future__ import annotations

import os
import queue
import socket
import struct
import threading
import time
from pathlib import Path

import pytest

from client import events as ev
from client.engine import Engine
from models import directory_wire as wire

PING = 1.0  # a PING every 1/3 s; a registration is dropped 1.5 s after its last PING

needs_root = pytest.mark.skipif(os.name != "posix" or os.geteuid() != 0,
                                reason="sniffing and spoofing need raw sockets (root)")


class Sniffer:
    """Every UDP datagram sent to ``port`` on the loopback: (source port, payload)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.seen: list[tuple[int, bytes]] = []
        self._sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0800))
        self._sock.bind(("lo", 0))
        self._sock.settimeout(0.1)
        self._stop = False
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop:
            try:
                frame, addr = self._sock.recvfrom(65535)
            except TimeoutError:
                continue
            except OSError:
                return
            if addr[2] == socket.PACKET_OUTGOING:
                continue  # the loopback shows each packet twice
            ip = frame[14:]
            if len(ip) < 28 or ip[9] != socket.IPPROTO_UDP:
                continue
            udp = ip[(ip[0] & 0x0F) * 4:]
            src, dst, length = struct.unpack("!HHH", udp[:6])
            if dst == self.port:
                self.seen.append((src, bytes(udp[8:length])))

    def from_port(self, port: int) -> list[bytes]:
        return [data for src, data in list(self.seen) if src == port]

    def close(self) -> None:
        self._stop = True
        self._thread.join(2)
        self._sock.close()


def spoof(src_port: int, dst: tuple[str, int], payload: bytes) -> None:
    """A UDP datagram from 127.0.0.1:src_port (someone else's socket) to ``dst``."""
    raw = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_UDP)
    try:
        header = struct.pack("!HHHH", src_port, dst[1], 8 + len(payload), 0)  # no checksum
        raw.sendto(header + payload, (dst[0], 0))
    finally:
        raw.close()


def forgeries(sniffed: list[bytes], nickname: str) -> list[bytes]:
    """What a sniffer can make of someone's datagrams: QUIT with the keyword, QUIT with a
    sniffed MAC, the sniffed datagrams replayed."""
    keyword = sniffed[0].split(b" ", 1)[0].decode()
    out = [wire.encode_datagram(wire.Quit(keyword, nickname))]
    for data in sniffed:
        token = data.rsplit(b" ", 1)[-1]
        if token.startswith(b"#"):
            counter, mac = token[1:].split(b".")
            for c in (int(counter), int(counter) + 1, 10**9):
                out.append(wire.encode_datagram(
                    wire.Quit(keyword, nickname, wire.Auth(c, mac.decode()))))
    return out + list(sniffed)


def events_of(engine: Engine, seen: list[object]) -> list[object]:
    while True:
        try:
            seen.append(engine.events.get_nowait())
        except queue.Empty:
            return seen


def wait_event(engine: Engine, seen: list[object], predicate, timeout: float = 5.0) -> object:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        for e in events_of(engine, seen):
            if predicate(e):
                return e
        time.sleep(0.01)
    raise AssertionError(f"{engine.nickname}: no such event; saw {seen}")


def left(nick: str):
    return lambda e: isinstance(e, ev.Left) and e.nickname == nick


@needs_root
@pytest.mark.parametrize("server", [{"ping_interval": PING}], indirect=True)
def test_a_sniffer_cannot_kick_a_client_with_a_forged_quit(server, tmp_path: Path, joined
                                                           ) -> None:
    sniffer = Sniffer(server.port)
    engines: list[Engine] = []
    try:
        for nick in ("alice", "bob"):
            eng = Engine(server.address, nick, config_dir=tmp_path / nick,
                         bind=("127.0.0.1", 0), encrypted=False)
            engines.append(eng)
            eng.start(timeout=5)
        alice, bob = engines
        bob_seen: list[object] = []
        assert bob.roster() == ["alice"]
        # the control: a design-only client, kicked by the same forgery
        carol = joined(server, "carol")
        wait_event(bob, bob_seen, lambda e: isinstance(e, ev.Joined) and e.nickname == "carol")
        for data in forgeries([wire.encode_datagram(wire.Ping(carol.keyword, "carol"))],
                              "carol"):
            spoof(carol.udp_port, server.address, data)
        wait_event(bob, bob_seen, left("carol"), timeout=1.0)  # before carol's timeout

        port = alice.address[1]
        time.sleep(PING)  # three PINGs
        sniffed = sniffer.from_port(port)
        assert len(sniffed) >= 3, sniffed
        for data in forgeries(sniffed, "alice"):
            spoof(port, server.address, data)
        bob.send_room("still there?")
        wait_event(alice, [], lambda e: isinstance(e, ev.RoomMessage))
        time.sleep(2 * PING)
        assert not [e for e in events_of(bob, bob_seen) if left("alice")(e)]
        assert bob.roster() == ["alice"]
        assert all(b" #" in data for data in sniffed), sniffed  # MACed, every one

        # a server restart loses the keys: REKEY, a new key, and the forgery fails again
        server.kill()
        server.start()
        assert server.wait_for_log("reclaimed alice", timeout=3 * PING, since_start=True)
        mark = len(sniffer.from_port(port))
        time.sleep(PING)
        resniffed = sniffer.from_port(port)[mark:]
        assert len(resniffed) >= 2 and all(b" #" in data for data in resniffed), resniffed
        for data in forgeries(resniffed, "alice"):
            spoof(port, server.address, data)
        time.sleep(2 * PING)
        assert not [e for e in events_of(bob, bob_seen) if left("alice")(e)]
        assert bob.roster() == ["alice"] and alice.server_online
    finally:
        sniffer.close()
        for eng in engines:
            eng.close()


class DesignServer:
    """The design's directory, no extensions, on one port (TCP and UDP): what an OpenLChat
    client meets at a server of another implementation. Records the datagrams it gets."""

    KEYWORD = "designkw0123456789abcdef"

    def __init__(self) -> None:
        self.tcp = socket.create_server(("127.0.0.1", 0))
        self.address = self.tcp.getsockname()[:2]
        self.udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.udp.bind(self.address)
        self.udp.settimeout(0.1)
        self.lines: list[str] = []
        self.datagrams: queue.Queue[bytes] = queue.Queue()
        self._stop = False
        self._threads = [threading.Thread(target=f, daemon=True) for f in (self._serve, self._recv)]
        for t in self._threads:
            t.start()

    def _serve(self) -> None:
        conn, _ = self.tcp.accept()
        with conn, conn.makefile("rb") as lines:
            for raw in lines:
                line = raw.decode().rstrip("\r\n")
                self.lines.append(line)
                tokens = line.split(" ")
                if tokens[0] == "CONNECT":
                    reply = f"KEYWORD {self.KEYWORD}" if len(tokens) == 2 \
                        else "ERROR BAD_ARGS CONNECT takes one argument"
                elif tokens[0] == "REFERENCE?":
                    reply = "REFERENCE 1 dave 127.0.0.1 9"
                elif tokens[0] == "CHANNEL_SWITCH":
                    return
                else:
                    reply = "ERROR UNKNOWN_COMMAND unknown command"
                conn.sendall(reply.encode() + b"\n")

    def _recv(self) -> None:
        while not self._stop:
            try:
                self.datagrams.put(self.udp.recv(65536))
            except TimeoutError:
                continue
            except OSError:
                return

    def close(self) -> None:
        self._stop = True
        self.tcp.close()
        self._threads[1].join(2)
        self.udp.close()


def test_a_design_only_server_gets_the_design_messages(tmp_path: Path) -> None:
    design = DesignServer()
    eng = Engine(design.address, "alice", config_dir=tmp_path, bind=("127.0.0.1", 0),
                 encrypted=False)
    try:
        eng.start(timeout=5)
        assert eng.roster() == ["dave"]
        assert design.lines[0].startswith("CONNECT alice x25519=")  # offered...
        assert design.lines[1] == "CONNECT alice"  # ... and said again the design's way
        ping = design.datagrams.get(timeout=5)
        assert ping == wire.encode_datagram(wire.Ping(design.KEYWORD, "alice"))
        eng.close()
        quits = [design.datagrams.get(timeout=2) for _ in range(2)]
        assert set(quits) == {wire.encode_datagram(wire.Quit(design.KEYWORD, "alice"))}
    finally:
        eng.close()
        design.close()


@pytest.mark.parametrize("server", [{"ping_interval": PING}], indirect=True)
def test_a_design_only_client_still_works_beside_mac_clients(server, tmp_path: Path, joined
                                                             ) -> None:
    eng = Engine(server.address, "alice", config_dir=tmp_path, bind=("127.0.0.1", 0),
                 encrypted=False)
    try:
        eng.start(timeout=5)
        carol = joined(server, "carol")  # CONNECT, PING and PONG without the extension
        seen: list[object] = []
        wait_event(eng, seen, lambda e: isinstance(e, ev.Joined) and e.nickname == "carol")
        assert eng.roster() == ["carol"]
        carol.ping(carol.digest())
        assert carol.recv_until(lambda m: isinstance(m, wire.Pong)) is not None
        carol.quit()
        wait_event(eng, seen, left("carol"), timeout=1.0)  # its plain QUIT still counts
    finally:
        eng.close()
