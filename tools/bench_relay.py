"""Benchmark the directory's relay (``server.py --relay``): server CPU per GB relayed.

Run from the repository root::

    python tools/bench_relay.py                # 256 MiB through the relay
    python tools/bench_relay.py --size-mib 64

Two clients made of plain sockets register with a real ``server.py --relay`` (its own
process), ask for a relay with each other, and one sends full-size relayed datagrams (9-byte
relay header + 1200-byte peer datagram) paced to what the other receives (a window of
in-flight datagrams), so nothing is lost to full buffers. Printed: MB/s relayed, the server's
CPU-seconds per GB (user + system from /proc/PID/stat, Linux), and bytes out vs bytes in.
"""

from __future__ import annotations

import argparse
import os
import socket
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_peer import start_server  # noqa: E402

from client.serverlink.registration import register  # noqa: E402
from models import directory_wire as wire  # noqa: E402
from models import relay_wire as rw  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
PAYLOAD = 1200
WINDOW = 64


def _cpu(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Client:
    def __init__(self, server: tuple[str, int], nick: str) -> None:
        self.server, self.nick = server, nick
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        self.keyword = register(server, nick).keyword
        self.sock.sendto(wire.encode_datagram(wire.Ping(self.keyword, nick, None)), server)

    def ask(self, target: str) -> None:
        self.sock.sendto(rw.encode(rw.RelayRequest(self.keyword, self.nick, target)),
                         self.server)

    def ready(self) -> bytes:
        self.sock.settimeout(5)
        while True:
            data, _ = self.sock.recvfrom(4096)
            if rw.is_relay(data):
                msg = rw.decode(data)
                if isinstance(msg, rw.RelayReady):
                    return msg.pair


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size-mib", type=int, default=256, help="MiB to relay (default %(default)s)")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        proc, server = start_server(Path(tmp), ("--relay", "--relay-rate", str(1 << 40),
                                                "--ping-interval", "30"))
        try:
            a, b = Client(server, "alice"), Client(server, "bob")
            a.ask("bob")
            time.sleep(0.1)
            b.ask("alice")
            pair = a.ready()
            datagram = rw.wrap(pair, b"\xc1\x01\x20" + os.urandom(PAYLOAD - 3))
            count = (args.size_mib << 20) // PAYLOAD
            b.sock.setblocking(False)
            sent = got = 0
            cpu0, t0 = _cpu(proc.pid), time.perf_counter()
            stalled_since = None
            while got < count:
                while sent < count and sent - got < WINDOW:
                    a.sock.sendto(datagram, server)
                    sent += 1
                try:
                    while True:
                        b.sock.recv(2048)
                        got += 1
                        stalled_since = None
                except BlockingIOError:
                    pass
                if sent - got >= WINDOW:
                    now = time.perf_counter()
                    stalled_since = stalled_since or now
                    if now - stalled_since > 0.05:   # lost on the way: open the window again
                        sent = got + WINDOW // 2
                        stalled_since = None
            wall, cpu = time.perf_counter() - t0, _cpu(proc.pid) - cpu0
        finally:
            proc.kill()
            proc.wait()
    gb = count * len(datagram) / 1e9
    print(f"\n{args.size_mib} MiB through server.py --relay on loopback, {os.cpu_count()} CPUs\n")
    print("| path | MB/s relayed | server CPU-s/GB |")
    print("|---|---:|---:|")
    print(f"| relay (1209-byte datagrams) | {gb * 1e3 / wall:.0f} | {cpu / gb:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
