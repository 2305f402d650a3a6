"""What encryption costs: handshake time and per-datagram seal/open of the secure transport.

    python tools/bench_crypto.py [--handshakes 300] [--datagrams 20000] [--peers 200]

Prints:
- a handshake in memory (both sides' CPU, no sockets), p50/p99;
- a handshake with a new peer over loopback UDP: two real sockets on 127.0.0.1 driven from one
  thread, every datagram through the kernel, new pins saved to disk as the engine does (from
  ``on_timer`` right after the answer went out); from the first ``wrap`` to the first frame at
  the responder, and to the initiator's confirmation (the handshake fully done), p50/p99;
- ``wrap`` (seal) and ``unwrap`` (open) per datagram for 64/512/1165-byte frames, next to the
  AEAD call through nacl.bindings and the PLAIN transport, in microseconds;
- sealing one frame for N peers (a room message's fan-out), total and per peer.
"""

from __future__ import annotations

import argparse
import select
import socket
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import nacl.signing  # noqa: E402
from nacl.bindings import (  # noqa: E402
    crypto_aead_chacha20poly1305_ietf_decrypt,
    crypto_aead_chacha20poly1305_ietf_encrypt,
)

from client.peer.pins import PinStore  # noqa: E402
from client.peer.secure import SecureTransport  # noqa: E402
from models.peer_wire import MAX_FRAME, SEALED  # noqa: E402


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def ms(values: list[float]) -> str:
    return f"p50 {pct(values, 0.5) * 1e3:.3f} ms  p99 {pct(values, 0.99) * 1e3:.3f} ms"


def pair(a_nick: str = "alice", b_nick: str = "bob", b_pins: PinStore | None = None
         ) -> tuple[SecureTransport, SecureTransport]:
    a = SecureTransport(nacl.signing.SigningKey.generate(), a_nick, PinStore(), now=0.0)
    b = SecureTransport(nacl.signing.SigningKey.generate(), b_nick, b_pins or PinStore(), now=0.0)
    return a, b


def established_pair() -> tuple[SecureTransport, SecureTransport]:
    a, b = pair()
    a.wrap("bob", b"hello", 0.0)
    for _ in range(4):
        for src, dst, name in ((a, b, "alice"), (b, a, "bob")):
            for _peer, dg in src.take_outgoing():
                dst.unwrap(name, dg, 0.0)
    a.take_frames()
    b.take_frames()
    assert a.is_established("bob") and b.is_established("alice")
    return a, b


def bench_memory_handshake(n: int) -> list[float]:
    times = []
    for _ in range(n):
        a, b = pair()
        t0 = time.perf_counter()
        a.wrap("bob", b"hello", 0.0)
        for _ in range(3):
            for src, dst, name in ((a, b, "alice"), (b, a, "bob")):
                for _peer, dg in src.take_outgoing():
                    dst.unwrap(name, dg, 0.0)
        times.append(time.perf_counter() - t0)
        assert b.take_frames() == [("alice", b"hello")]
    return times


def bench_udp_handshake(n: int, pins_dir: Path) -> tuple[list[float], list[float]]:
    sa = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sb = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sa.bind(("127.0.0.1", 0))
    sb.bind(("127.0.0.1", 0))
    bob_pins = PinStore.in_dir(pins_dir)
    first_frame, complete = [], []
    try:
        for i in range(n):
            nick_a = f"alice{i}"  # a new peer each time: bob pins a new key
            a, b = pair(nick_a, "bob", bob_pins)
            ends = {sa: (a, "bob", sb.getsockname()), sb: (b, nick_a, sa.getsockname())}
            t0 = time.perf_counter()
            a.wrap("bob", b"hello", time.monotonic())
            got_frame = done = 0.0
            while not done:
                for sock, (t, _peer, dest) in ends.items():
                    for _p, dg in t.take_outgoing():
                        sock.sendto(dg, dest)
                    _drain_timers(t)  # new pins are saved here, after the answer went out
                ready, _, _ = select.select([sa, sb], [], [], 2.0)
                if not ready:
                    raise RuntimeError("handshake stalled")
                for sock in ready:
                    t, peer, _dest = ends[sock]
                    data, _ = sock.recvfrom(2048)
                    t.unwrap(peer, data, time.monotonic())
                    if t is a and data[2] == SEALED:
                        done = time.perf_counter()  # bob's confirmation: nothing left to do
                    if t is b and not got_frame and b.take_frames():
                        got_frame = time.perf_counter()
            first_frame.append(got_frame - t0)
            complete.append(done - t0)
    finally:
        sa.close()
        sb.close()
    return first_frame, complete


def _drain_timers(t: SecureTransport) -> None:
    deadline = t.next_deadline()
    now = time.monotonic()
    if deadline is not None and deadline <= now:
        t.on_timer(now)


def per_op(fn, count: int) -> float:
    t0 = time.perf_counter()
    fn(count)
    return (time.perf_counter() - t0) / count * 1e6


def bench_datagrams(count: int) -> None:
    from client.peer.plain import PlainTransport

    key, nonce = bytes(range(32)), bytes(12)
    print("per datagram, microseconds       64 B    512 B   1165 B")
    names = ("nacl.bindings AEAD encrypt", "nacl.bindings AEAD decrypt", "secure wrap (seal)",
             "secure unwrap (open)", "plain wrap", "plain unwrap")
    rows: dict[str, list[float]] = {name: [] for name in names}
    for size in (64, 512, MAX_FRAME):
        frame = bytes(size)
        ad = bytes(19)
        ct = crypto_aead_chacha20poly1305_ietf_encrypt(frame, ad, nonce, key)
        rows["nacl.bindings AEAD encrypt"].append(per_op(
            lambda n, f=frame, a=ad: [crypto_aead_chacha20poly1305_ietf_encrypt(f, a, nonce, key)
                                      for _ in range(n)], count))
        rows["nacl.bindings AEAD decrypt"].append(per_op(
            lambda n, c=ct, a=ad: [crypto_aead_chacha20poly1305_ietf_decrypt(c, a, nonce, key)
                                   for _ in range(n)], count))
        a, b = established_pair()

        def wrap(n: int, a: SecureTransport = a, f: bytes = frame) -> None:
            for _ in range(n):
                a.wrap("bob", f, 0.0)

        rows["secure wrap (seal)"].append(per_op(wrap, count))
        datagrams = [dg for _, dg in a.take_outgoing()]

        def unwrap(n: int, b: SecureTransport = b, dgs: list[bytes] = datagrams) -> None:
            for dg in dgs[:n]:
                b.unwrap("alice", dg, 0.0)

        rows["secure unwrap (open)"].append(per_op(unwrap, count))
        assert len(b.take_frames()) == count, b.stats
        p, q = PlainTransport(), PlainTransport()

        def pwrap(n: int, p: PlainTransport = p, f: bytes = frame) -> None:
            for _ in range(n):
                p.wrap("bob", f, 0.0)

        rows["plain wrap"].append(per_op(pwrap, count))
        plain = [dg for _, dg in p.take_outgoing()]

        def punwrap(n: int, q: PlainTransport = q, dgs: list[bytes] = plain) -> None:
            for dg in dgs[:n]:
                q.unwrap("alice", dg, 0.0)

        rows["plain unwrap"].append(per_op(punwrap, count))
    for name, values in rows.items():
        print(f"  {name:<28}" + "".join(f"{v:8.2f}" for v in values))


def bench_fanout(peers: int, rounds: int = 200) -> list[float]:
    sender = SecureTransport(nacl.signing.SigningKey.generate(), "sender", PinStore(), now=0.0)
    names = [f"peer{i}" for i in range(peers)]
    others = {name: SecureTransport(nacl.signing.SigningKey.generate(), name, PinStore(), now=0.0)
              for name in names}
    for name in names:
        sender.wrap(name, b"hello", 0.0)
    for _ in range(4):
        for peer, dg in sender.take_outgoing():
            others[peer].unwrap("sender", dg, 0.0)
        for name, t in others.items():
            for _peer, dg in t.take_outgoing():
                sender.unwrap(name, dg, 0.0)
    assert all(sender.is_established(n) for n in names)
    frame = bytes(200)
    times = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        for name in names:
            sender.wrap(name, frame, 0.0)
        sender.take_outgoing()
        times.append(time.perf_counter() - t0)
    return times


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--handshakes", type=int, default=300,
                        help="handshakes to time (default %(default)s)")
    parser.add_argument("--datagrams", type=int, default=20000,
                        help="datagrams per seal/open measurement (default %(default)s)")
    parser.add_argument("--peers", type=int, default=200,
                        help="peers for the fan-out measurement (default %(default)s)")
    args = parser.parse_args(argv)
    if min(args.handshakes, args.datagrams, args.peers) < 1:
        print("bench_crypto: counts must be positive", file=sys.stderr)
        return 2

    memory = bench_memory_handshake(args.handshakes)
    print(f"handshake in memory (CPU of both sides):      {ms(memory)}")
    with tempfile.TemporaryDirectory() as tmp:
        try:
            first, complete = bench_udp_handshake(args.handshakes, Path(tmp))
        except (RuntimeError, OSError) as exc:
            print(f"bench_crypto: loopback handshake failed: {exc}", file=sys.stderr)
            return 1
    print(f"handshake, loopback UDP, first frame at peer: {ms(first)}")
    print(f"handshake, loopback UDP, confirmed both ends: {ms(complete)}")
    bench_datagrams(args.datagrams)
    fan = bench_fanout(args.peers)
    print(f"seal one 200-byte frame for {args.peers} peers:     {ms(fan)}  "
          f"({pct(fan, 0.5) / args.peers * 1e6:.2f} us per peer at p50)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
