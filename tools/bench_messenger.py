"""Micro-benchmark of the Messenger's sender CPU per recipient (issue 3 target: <= 5 us).

Sends a 100-byte room message to 200 peers and feeds back every peer's ACK, all in memory
(no sockets), and prints the sender's CPU time per recipient for send + ack: once for the
Messenger alone, once with the sender's PlainTransport wrap/unwrap included.

    python tools/bench_messenger.py [--peers 200] [--rounds 500] [--size 100]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from client.plain import PlainTransport  # noqa: E402
from client.reliable import KIND_ROOM, Messenger  # noqa: E402


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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--peers", type=int, default=200, help="recipients (%(default)s)")
    parser.add_argument("--rounds", type=int, default=500, help="messages sent (%(default)s)")
    parser.add_argument("--size", type=int, default=100, help="payload bytes (%(default)s)")
    args = parser.parse_args(argv)
    print(f"{args.peers} peers, {args.size}-byte room message, {args.rounds} rounds, "
          "sender CPU per recipient:")
    for label, plain in (("Messenger", False), ("Messenger + PlainTransport", True)):
        send_us, total_us = run(args.peers, args.rounds, args.size, plain)
        print(f"{label:27} send {statistics.median(send_us):.2f} us, send + ack: median "
              f"{statistics.median(total_us):.2f} us, p99 "
              f"{statistics.quantiles(total_us, n=100)[98]:.2f} us")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
