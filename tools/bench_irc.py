"""IRC gateway benchmark: what the gateway adds to a message, and 1,000 lines/s through it.

    python tools/bench_irc.py [--count 200] [--rate 1000] [--seconds 5]

What runs: a real ``server.py`` (temporary database); two real encrypted engines in this
process, alice and bob, both in ``#room``; alice served by a real ``IrcGateway`` on a loopback
port, with a raw TCP socket as her IRC client (no IRC library in the measured path).

Printed:
- latency, one message at a time, alternating the two faces message by message (so drift
  hits both alike): from just before the face's input to the ``ChannelMessage`` event on bob's
  queue (``time.perf_counter``, one process):
  - terminal face: ``commands.run_line("/msg #room text", alice.chat)``, what the terminal does
    with a typed line;
  - IRC face: ``PRIVMSG #room :text`` written to the gateway's socket;
  the gateway's added latency is the difference of the p50s (target: <= 0.5 ms).
  Messages are spaced ``--gap`` apart: peers accept 20 channel lines/s from one member
  sustained (``client.chat.channels.RATE``), a flood guard this benchmark must not trip.
- throughput: ``--rate`` PRIVMSG lines/s written for ``--seconds``, paced, then how many became
  signed lines in alice's history (every line the engine accepted and sent to the members)
  and whether the IRC connection stayed up; loss must be 0. Bob receives at most the chat
  layer's 20 lines/s per member plus its burst, by design, so arrivals at a peer are not the
  measure here.
- translation: engine events -> IRC lines in the session alone, lines/s.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import queue
import socket
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench_peer import start_server  # noqa: E402

from client.chat import commands  # noqa: E402
from client.chat import events as cev  # noqa: E402
from client.engine import Engine  # noqa: E402
from client.irc.server import IrcGateway  # noqa: E402
from client.irc.session import Session  # noqa: E402


class Arrivals:
    """Bob's event queue drained in a thread: arrival time of each channel line by text."""

    def __init__(self, events: queue.Queue) -> None:
        self.events = events
        self.seen: dict[str, float] = {}
        self.cond = threading.Condition()
        self.stop = False
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self) -> None:
        while not self.stop:
            try:
                e = self.events.get(timeout=0.1)
            except queue.Empty:
                continue
            if isinstance(e, cev.ChannelMessage):
                t = time.perf_counter()
                with self.cond:
                    self.seen[e.text] = t
                    self.cond.notify_all()

    def wait(self, text: str, timeout: float = 5.0) -> float:
        end = time.monotonic() + timeout
        with self.cond:
            while text not in self.seen:
                left = end - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"{text!r} never arrived at bob")
                self.cond.wait(left)
            return self.seen[text]


def irc_client(address: tuple[str, int]) -> socket.socket:
    s = socket.create_connection(address)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    s.sendall(b"NICK alice\r\nUSER alice 0 * :alice\r\n")
    s.settimeout(5)
    got = b""
    while b" 366 " not in got:
        got += s.recv(65536)
    threading.Thread(target=_drain, args=(s,), daemon=True).start()
    return s


def _drain(s: socket.socket) -> None:
    with contextlib.suppress(OSError):
        while s.recv(65536):
            pass


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


def latency(alice: Engine, irc: socket.socket, arrivals: Arrivals, count: int,
            gap: float) -> tuple[list[float], list[float]]:
    term, gw = [], []
    for i in range(count * 2):
        text = f"lat {i}"
        if i % 2:
            t0 = time.perf_counter()
            irc.sendall(f"PRIVMSG #room :{text}\r\n".encode())
            gw.append(arrivals.wait(text) - t0)
        else:
            t0 = time.perf_counter()
            commands.run_line(f"/msg #room {text}", alice.chat)
            term.append(arrivals.wait(text) - t0)
        time.sleep(gap)
    return term, gw


def throughput(alice: Engine, irc: socket.socket, gateway: IrcGateway, rate: int,
               seconds: float) -> tuple[int, int, float]:
    before = len(alice.chat.history("#room", 1_000_000))
    total = int(rate * seconds)
    start = time.perf_counter()
    for i in range(total):
        due = start + i / rate
        delay = due - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        irc.sendall(f"PRIVMSG #room :bulk {i}\r\n".encode())
    sent_in = time.perf_counter() - start
    end = time.monotonic() + 10
    stored = 0
    while time.monotonic() < end:
        stored = len(alice.chat.history("#room", 1_000_000)) - before
        if stored >= total:
            break
        time.sleep(0.1)
    return total, stored, sent_in


def translation_rate(n: int = 20000) -> float:
    from client.chat.wire import Kind, SignedLine

    class NoApi:
        nickname = "alice"

    session = Session(NoApi(), 0.0)  # type: ignore[arg-type]
    session.registered = True
    session.out.nick = "alice"
    line = SignedLine("bob", b"k" * 32, "#room", b"i" * 16, 0, 0, Kind.MESSAGE, "hello", b"")
    event = cev.ChannelMessage("#room", "bob", "hello there, a typical line", line)
    t0 = time.perf_counter()
    for _ in range(n):
        session.on_event(event)
        session.take_output()
    return n / (time.perf_counter() - t0)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--count", type=int, default=200, help="messages per face (latency)")
    ap.add_argument("--gap", type=float, default=0.06, help="seconds between them")
    ap.add_argument("--rate", type=int, default=1000, help="PRIVMSG lines/s (throughput)")
    ap.add_argument("--seconds", type=float, default=5.0)
    args = ap.parse_args()
    # bob's flood guard says so when the throughput run trips it (by design): not a figure
    logging.basicConfig(level=logging.ERROR)
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        proc, server = start_server(tmp)
        engines: list[Engine] = []
        gateway = None
        try:
            bob = Engine(server, "bob", config_dir=tmp / "b")
            alice = Engine(server, "alice", config_dir=tmp / "a")
            for e in (bob, alice):
                e.start()
                engines.append(e)
            arrivals = Arrivals(bob.events)
            gateway = IrcGateway(alice.chat, alice.events, ("127.0.0.1", 0))
            gateway.start()
            irc = irc_client(gateway.address)
            commands.run_line("/msg #room warm-up", alice.chat)
            arrivals.wait("warm-up", 10)
            term, gw = latency(alice, irc, arrivals, args.count, args.gap)
            total, stored, took = throughput(alice, irc, gateway, args.rate, args.seconds)
            alive = gateway.stats["connections"] == 1
            rate = translation_rate()
        finally:
            if gateway is not None:
                gateway.close()
            for e in engines:
                e.close()
            proc.kill()
    ms = 1000.0
    print("| metric | value |\n|---|---|")
    print(f"| terminal face -> peer, p50 / p99 ms | {pct(term, .5) * ms:.3f} / "
          f"{pct(term, .99) * ms:.3f} |")
    print(f"| IRC gateway -> peer, p50 / p99 ms | {pct(gw, .5) * ms:.3f} / "
          f"{pct(gw, .99) * ms:.3f} |")
    added = (statistics.median(gw) - statistics.median(term)) * ms
    print(f"| gateway added latency, p50 ms (target <= 0.5) | {added:.3f} |")
    print(f"| {args.rate} lines/s for {args.seconds:g} s: stored / sent, lost | "
          f"{stored} / {total}, {total - stored} (written in {took:.2f} s; "
          f"connection {'kept' if alive else 'LOST'}) |")
    print(f"| translation, engine events -> IRC lines per s | {rate:,.0f} |")
    return 0 if stored == total and alive else 1  # latency: a figure, too noisy to fail on


if __name__ == "__main__":
    sys.exit(main())
