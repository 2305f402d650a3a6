"""Micro-benchmark of the sender's CPU per recipient of a room message (issue 3 target: <= 5 us).

Sends a 100-byte room message to 200 peers and feeds back every peer's ACK, and prints the
sender's CPU time per recipient for send + ack:
- in memory (no sockets): the Messenger alone, then with the sender's PlainTransport;
- through the real engine code (``Engine._send``/``_pump``/``_drain``, its one UDP socket, the
  roster) to 200 real loopback sockets answered in this process between rounds (no server, no
  other processes competing for the CPUs), plain then encrypted; measured with
  ``time.thread_time`` around the sender's calls only;
- the floor under that: bare ``sendto`` to 200 sockets plus ``recvfrom`` of 200 replies, no
  Python work at all. On loopback the kernel runs the receiving side of ``sendto`` in the
  sender's context, so this is most of the figure.

    python tools/bench_messenger.py [--peers 200] [--rounds 500] [--size 100] [--no-engine]
"""

from __future__ import annotations

import argparse
import contextlib
import socket
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from client.engine import Engine  # noqa: E402
from client.peer.messenger import KIND_ROOM, Messenger  # noqa: E402
from client.peer.plain import PlainTransport  # noqa: E402
from client.reach.merged import MergedRoster  # noqa: E402
from client.serverlink.roster import PeerRoster  # noqa: E402


def run(peers: int, rounds: int, size: int,
        plain: bool = False) -> tuple[list[float], list[float]]:
    """Per round: (us per recipient for send, us per recipient for send + all acks)."""
    names = [f"peer{i}" for i in range(peers)]
    sender = Messenger(now=0.0)
    transport = PlainTransport()
    peers_transport = PlainTransport()
    receivers = {name: Messenger(now=0.0) for name in names}
    payload = b"x" * size
    send_us: list[float] = []
    total_us: list[float] = []
    now = 0.0
    for _ in range(rounds):
        now += 0.001
        t0 = time.perf_counter()
        sender.send(names, KIND_ROOM, payload, now)
        frames_out = sender.take_outgoing()
        if plain:
            for peer, frame in frames_out:
                transport.wrap(peer, frame, now)
            transport.take_outgoing()
        t1 = time.perf_counter()
        acks = []
        for peer, frame in frames_out:  # the recipients' work is not the sender's CPU
            r = receivers[peer]
            r.receive("sender", frame, now)
            acks.extend((peer, f) for _, f in r.take_outgoing())
            r.take_events()
        if plain:  # the recipients' envelopes, not the sender's CPU either
            for peer, frame in acks:
                peers_transport.wrap(peer, frame, now)
            acks = peers_transport.take_outgoing()
        t2 = time.perf_counter()
        if plain:
            for peer, datagram in acks:
                transport.unwrap(peer, datagram, now)
            acks = transport.take_frames()
        for peer, frame in acks:
            sender.receive(peer, frame, now)
        sender.take_events()
        sender.next_deadline()
        t3 = time.perf_counter()
        send_us.append((t1 - t0) * 1e6 / peers)
        total_us.append(((t1 - t0) + (t3 - t2)) * 1e6 / peers)
    return send_us, total_us


def _sockets(count: int) -> list[socket.socket]:
    socks = []
    for _ in range(count):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind(("127.0.0.1", 0))
        s.setblocking(False)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        socks.append(s)
    return socks


def run_engine(peers: int, rounds: int, size: int, secure: bool) -> tuple[float, float]:
    """(us per recipient for the send, for send + all ACKs) through the engine's code."""
    now = time.monotonic()
    engine = Engine(("127.0.0.1", 9), "sender", bind=("127.0.0.1", 0), encrypted=False)
    socks = _sockets(peers)
    try:
        engine._sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        names = [f"sim{i:03d}" for i in range(peers)]
        directory = PeerRoster("sender")
        changes = directory.replace([(n, "127.0.0.1", s.getsockname()[1])
                                     for n, s in zip(names, socks, strict=True)])
        engine._roster = MergedRoster("sender")
        engine._roster.set_directory(directory)
        engine._messenger = Messenger(now=now, deadline=30.0)
        if secure:
            import nacl.signing

            from client.peer.pins import PinStore
            from client.peer.secure import SecureTransport

            def make(nick: str):  # type: ignore[no-untyped-def]
                return SecureTransport(nacl.signing.SigningKey.generate(), nick, PinStore(None),
                                       now=now)
        else:
            def make(nick: str):  # type: ignore[no-untyped-def]
                return PlainTransport(now=now)
        engine._transport = make("sender")
        engine._wire_peers(engine._messenger, engine._transport)
        engine._reach.on_roster(changes, now, punch=False)  # candidates: the directory's
        sims = [(s, Messenger(now=now), make(n)) for n, s in zip(names, socks, strict=True)]
        address = engine._sock.getsockname()

        def answer(now: float) -> None:  # the peers' side: not the sender's CPU
            for sock, m, t in sims:
                with contextlib.suppress(BlockingIOError):
                    while True:
                        t.unwrap("sender", sock.recv(65535), now)
                for _ in range(4):
                    t.take_events()
                    for peer, frame in t.take_frames():
                        m.receive(peer, frame, now)
                    for peer, frame in m.take_outgoing():
                        t.wrap(peer, frame, now)
                    m.take_events()
                    out = t.take_outgoing()
                    if not out:
                        break
                    for _peer, datagram in out:
                        sock.sendto(datagram, address)

        def round_trip(payload: bytes) -> tuple[float, float]:
            c0 = time.thread_time()
            engine._send(engine._roster.nicknames(), KIND_ROOM, payload, time.monotonic())
            engine._peers.pump(time.monotonic(), engine.on_acked)
            c1 = time.thread_time()
            answer(time.monotonic())
            for _ in range(4):  # the encrypted warm-up has handshakes to finish
                c2 = time.thread_time()
                engine._drain(time.monotonic())
                engine._peers.pump(time.monotonic(), engine.on_acked)
                engine._messenger.next_deadline()
                c3 = time.thread_time()
                if engine._messenger.next_deadline() is None:
                    break
                answer(time.monotonic())
            return c1 - c0, (c1 - c0) + (c3 - c2)

        for _ in range(3):
            round_trip(b"warm-up")
        send = total = 0.0
        payload = b"x" * size
        for _ in range(rounds):
            a, b = round_trip(payload)
            send += a
            total += b
        return send * 1e6 / (rounds * peers), total * 1e6 / (rounds * peers)
    finally:
        engine.close()
        for s in socks:
            s.close()


def run_floor(peers: int, rounds: int, size: int) -> float:
    """us per recipient for a bare sendto to each peer plus a bare recvfrom of its reply."""
    me = _sockets(1)[0]
    socks = _sockets(peers)
    try:
        addrs = [s.getsockname() for s in socks]
        address = me.getsockname()
        data = b"x" * (size + 30)
        spent = 0.0
        for _ in range(rounds):
            c0 = time.thread_time()
            for addr in addrs:
                me.sendto(data, addr)
            c1 = time.thread_time()
            for s in socks:
                s.recv(65535)
                s.sendto(b"a" * 30, address)
            c2 = time.thread_time()
            for _ in addrs:
                me.recvfrom(4096)
            spent += (c1 - c0) + (time.thread_time() - c2)
        return spent * 1e6 / (rounds * peers)
    finally:
        me.close()
        for s in socks:
            s.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--peers", type=int, default=200, help="recipients (%(default)s)")
    parser.add_argument("--rounds", type=int, default=500, help="messages sent (%(default)s)")
    parser.add_argument("--size", type=int, default=100, help="payload bytes (%(default)s)")
    parser.add_argument("--no-engine", action="store_true",
                        help="only the in-memory figures (no sockets)")
    args = parser.parse_args(argv)
    print(f"{args.peers} peers, {args.size}-byte room message, {args.rounds} rounds, "
          "sender CPU per recipient:")
    for label, plain in (("Messenger", False), ("Messenger + PlainTransport", True)):
        send_us, total_us = run(args.peers, args.rounds, args.size, plain)
        print(f"{label:27} send {statistics.median(send_us):.2f} us, send + ack: median "
              f"{statistics.median(total_us):.2f} us, p99 "
              f"{statistics.quantiles(total_us, n=100)[98]:.2f} us")
    if not args.no_engine:
        for label, secure in (("Engine, plain, real sockets", False),
                              ("Engine, encrypted, sockets", True)):
            send, total = run_engine(args.peers, args.rounds, args.size, secure)
            print(f"{label:27} send {send:.2f} us, send + ack: {total:.2f} us")
        floor = run_floor(args.peers, args.rounds, args.size)
        print(f"{'bare sendto + recvfrom':27} {floor:.2f} us (the kernel's share: no Python work)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
