"""Peer-path benchmark: a real client Engine talking to N simulated peers over loopback UDP.

    python tools/bench_peer.py [--peers 200] [--workers 4] [--mode both|plain|secure]
                               [--loss 0.2] [--room 100] [--one 300] [--burst 2000]
                               [--peer-nice 0]

What runs: a real ``server.py`` (temporary database) for the directory; the *sender* is a real
``client.engine.Engine`` in this process; the N simulated peers live in ``--workers`` processes,
each a select loop over its peers' UDP sockets, every peer a real ``Messenger`` + transport
(``PlainTransport`` or ``SecureTransport`` with its own identity key), registered with the server
over TCP and PINGing it, so they are in the sender's roster exactly like real clients.

Printed per mode (plain, then encrypted):
- first message to a new peer (includes the handshake when encrypted), p50/p99;
- one-to-one latency (send call -> delivered at the peer), p50/p99, one message at a time;
- a room message to all N peers, p50/p99 over ``--room`` messages: when the sender's last
  ``sendto`` returned ("on the wire"); when the datagram that completed it had *arrived* at
  the last peer's socket; when the last peer had *processed* it (delivered by its Messenger);
  and when every ACK was back; the sender's CPU per recipient (send + ACKs): the engine
  thread's (``time.thread_time`` read in that thread), and the whole process's (getrusage; also
  this tool's own main thread). Both include the kernel's work: on loopback ``sendto`` also
  runs the receiving side of the stack and wakes the peer, all charged to the sender;
- messages/s to one peer (``--burst`` back-to-back private messages, until all acknowledged);
- the same latencies with ``--loss`` (default 20%) random drop of peer datagrams in BOTH
  directions, done by a loss knob in the simulated peers (drop on receive = sender->peer loss,
  drop on send = peer->sender loss); every message must arrive exactly once and in order.
"Arrived" and "processed" differ because the simulated peers are a load tool: 200 Python peers
in ``--workers`` processes share the machine's CPUs with the sender, so the time until the last
of them has *processed* a room message includes waiting for a CPU behind the others. "Arrived"
is the kernel's receive timestamp of the datagram at the peer's socket (SO_TIMESTAMPNS ancillary
data, Linux; CLOCK_REALTIME) minus ``time.time()`` (also CLOCK_REALTIME) read just before the
send call: what a real recipient on its own machine would see, less its own processing.
"Processed" and everything else use CLOCK_MONOTONIC (``time.perf_counter``), shared by all
processes on Linux. Without kernel timestamps (not Linux), "arrived" is printed as n/a.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import multiprocessing as mp
import os
import random
import resource
import select
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from client.engine import Engine  # noqa: E402
from client.errors import RegistrationError  # noqa: E402
from client.peer.messenger import KIND_PRIVATE, KIND_ROOM, Delivered, Messenger  # noqa: E402
from client.serverlink.registration import register  # noqa: E402
from models import directory_wire as wire  # noqa: E402
from models.peer_wire import is_peer_datagram  # noqa: E402

log = logging.getLogger("bench_peer")

# Linux values; Python's socket module does not export them
SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)
SCM_TIMESTAMPNS = getattr(socket, "SCM_TIMESTAMPNS", SO_TIMESTAMPNS)
TIMESPEC = struct.Struct("@qq")  # struct timespec on 64-bit Linux
ANC_SPACE = socket.CMSG_SPACE(TIMESPEC.size) if hasattr(socket, "CMSG_SPACE") else 0


# ---------------------------------------------------------------- simulated peers (workers)


class SimPeer:
    def __init__(self, nick: str, server: tuple[str, int], encrypted: bool, now: float) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.setblocking(False)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        self.kernel_ts = False  # kernel receive timestamps (CLOCK_REALTIME) on each datagram
        if sys.platform == "linux" and ANC_SPACE:
            with contextlib.suppress(OSError):
                self.sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
                self.kernel_ts = True
        self.arrived = float("nan")  # kernel timestamp of the datagram being handled
        self.server = server
        for attempt in range(50):
            try:
                reg = register(server, nick, timeout=10)
                break
            except RegistrationError as exc:
                if exc.code != "THROTTLED" or attempt == 49:
                    raise
                time.sleep(0.2)
        self.nick, self.keyword, self.interval = reg.nickname, reg.keyword, reg.ping_interval
        self.messenger = Messenger(now=now)
        if encrypted:
            import nacl.signing

            from client.peer.pins import PinStore
            from client.peer.secure import SecureTransport

            self.transport = SecureTransport(nacl.signing.SigningKey.generate(), self.nick,
                                             PinStore(None), now=now)
        else:
            from client.peer.plain import PlainTransport

            self.transport = PlainTransport(now=now)
        self.sender: tuple[str, tuple[str, int]] | None = None
        # (tag, seq, t_processed monotonic, t_arrived realtime or nan)
        self.records: list[tuple[str, int, float, float]] = []
        self.last_seq: dict[str, int] = {}
        self.dups = 0
        self.disorder = 0
        self.next_ping = now
        self.ping()

    def ping(self) -> None:
        data = wire.encode_datagram(wire.Ping(self.keyword, self.nick))
        with contextlib.suppress(OSError):
            self.sock.sendto(data, self.server)

    def on_readable(self, loss: float, rng: random.Random) -> None:
        while True:
            try:
                if self.kernel_ts:
                    data, anc, _flags, addr = self.sock.recvmsg(65535, ANC_SPACE)
                    self.arrived = float("nan")
                    for level, kind, cdata in anc:
                        if level == socket.SOL_SOCKET and kind == SCM_TIMESTAMPNS:
                            sec, nsec = TIMESPEC.unpack_from(cdata)
                            self.arrived = sec + nsec * 1e-9
                else:
                    data, addr = self.sock.recvfrom(65535)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                continue
            now = time.perf_counter()
            if not is_peer_datagram(data) or self.sender is None or addr != self.sender[1]:
                continue
            if loss and rng.random() < loss:
                continue
            self.transport.unwrap(self.sender[0], data, now)
            self.pump(now, loss, rng)

    def pump(self, now: float, loss: float, rng: random.Random) -> None:
        m, t = self.messenger, self.transport
        for _ in range(16):
            t.take_events()
            for peer, frame in t.take_frames():
                m.receive(peer, frame, now)
            for peer, frame in m.take_outgoing():
                t.wrap(peer, frame, now)
            for ev in m.take_events():
                if isinstance(ev, Delivered) and ev.kind in (KIND_ROOM, KIND_PRIVATE):
                    self.record(ev.payload, now)
            out = t.take_outgoing()
            if not out:
                return
            for _peer, dgram in out:
                if loss and rng.random() < loss:
                    continue
                with contextlib.suppress(OSError):
                    self.sock.sendto(dgram, self.sender[1])  # type: ignore[index]

    def record(self, payload: bytes, now: float) -> None:
        tag, seq_s = payload.split(b" ", 2)[:2]
        tag_s, seq = tag.decode(), int(seq_s)
        last = self.last_seq.get(tag_s, -1)
        if seq == last:
            self.dups += 1
        elif seq < last:
            self.disorder += 1
        self.last_seq[tag_s] = max(last, seq)
        self.records.append((tag_s, seq, now, self.arrived))

    def deadline(self) -> float:
        d = self.next_ping
        for x in (self.messenger.next_deadline(), self.transport.next_deadline()):
            if x is not None and x < d:
                d = x
        return d

    def on_timer(self, now: float, loss: float, rng: random.Random) -> None:
        if now >= self.next_ping:
            self.ping()
            self.next_ping = now + self.interval / 3
        self.messenger.on_timer(now)
        self.transport.on_timer(now)
        self.pump(now, loss, rng)


def worker_main(conn, server: tuple[str, int], names: list[str], encrypted: bool,
                seed: int, nice: int = 0) -> None:
    logging.basicConfig(level=logging.WARNING)
    if nice and hasattr(os, "nice"):
        os.nice(nice)  # the load tool yields the CPUs to the sender it measures
    rng = random.Random(seed)
    now = time.perf_counter()
    peers = [SimPeer(n, server, encrypted, now) for n in names]
    by_fd = {p.sock.fileno(): p for p in peers}
    conn.send(("ready", [(p.nick, p.sock.getsockname()[1]) for p in peers]))
    loss = 0.0
    poller = select.epoll()
    for fd in by_fd:
        poller.register(fd, select.EPOLLIN)
    poller.register(conn.fileno(), select.EPOLLIN)
    while True:
        now = time.perf_counter()
        timeout = max(0.0, min(p.deadline() for p in peers) - now)
        for fd, _ in poller.poll(min(timeout, 0.5)):
            if fd in by_fd:
                by_fd[fd].on_readable(loss, rng)
                continue
            cmd = conn.recv()
            if cmd[0] == "sender":
                for p in peers:
                    p.sender = (cmd[1], tuple(cmd[2]))
            elif cmd[0] == "loss":
                loss = cmd[1]
            elif cmd[0] == "report":
                conn.send(("report", [r for p in peers for r in p.records],
                           sum(p.dups for p in peers), sum(p.disorder for p in peers)))
                for p in peers:
                    p.records.clear()
            elif cmd[0] == "stop":
                for p in peers:
                    data = wire.encode_datagram(wire.Quit(p.keyword, p.nick))
                    with contextlib.suppress(OSError):
                        p.sock.sendto(data, server)
                conn.send(("stopped",))
                return
        now = time.perf_counter()
        for p in peers:
            if p.deadline() <= now:
                p.on_timer(now, loss, rng)


# ---------------------------------------------------------------- coordinator


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, int(round(q / 100 * (len(s) - 1))))]


def free_port() -> int:
    for _ in range(100):
        t = socket.socket()
        t.bind(("127.0.0.1", 0))
        port = t.getsockname()[1]
        u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            u.bind(("127.0.0.1", port))
            return port
        except OSError:
            continue
        finally:
            t.close()
            u.close()
    raise RuntimeError("no free port")


def start_server(tmp: Path, extra: tuple[str, ...] = ()) -> tuple[subprocess.Popen,
                                                                   tuple[str, int]]:
    port = free_port()
    proc = subprocess.Popen([sys.executable, str(REPO / "server.py"), "--host", "127.0.0.1",
                             "--port", str(port), "--db", str(tmp / "bench.db"),
                             "--register-rate", "0", "--log-level", "WARNING", *extra],
                            cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    end = time.monotonic() + 10
    while time.monotonic() < end:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return proc, ("127.0.0.1", port)
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError("server.py did not start")


class Bench:
    def __init__(self, args: argparse.Namespace, encrypted: bool, tmp: Path) -> None:
        self.args, self.encrypted = args, encrypted
        self.conns: list = []
        self.procs: list = []
        self.engine: Engine | None = None
        self.server_proc, self.server = start_server(tmp)
        try:
            self._set_up(args, encrypted, tmp)
        except BaseException:
            self.close()  # never leave a server or workers behind
            raise

    def _set_up(self, args: argparse.Namespace, encrypted: bool, tmp: Path) -> None:
        self.engine = Engine(self.server, "sender", config_dir=tmp / "sender",
                             bind=("127.0.0.1", 0), encrypted=encrypted, deadline=30.0)
        self.lock = threading.Lock()
        self.acks: dict[int, int] = {}  # msg_id -> ACKs so far
        self.want = 1  # ACKs that complete a message (set before sending)
        self.acked_at: dict[int, float] = {}  # msg_id -> when its last wanted ACK came
        self.waiting = -1  # the msg_id the main thread awaits
        self.done = threading.Event()
        self.engine.on_acked = self._on_acked
        # when the engine's last sendto of a room message returned: the sender's own share
        self.fanout_done: float | None = None
        plain_send = self.engine._send_datagrams

        def timed_send(out: list[tuple[str, bytes]]) -> None:
            plain_send(out)
            if len(out) >= args.peers:
                self.fanout_done = time.perf_counter()

        self.engine._send_datagrams = timed_send  # type: ignore[method-assign]
        self.engine.start(timeout=10)
        ctx = mp.get_context("spawn")
        names = [f"sim{i:03d}" for i in range(args.peers)]
        for w in range(args.workers):
            parent, child = ctx.Pipe()
            p = ctx.Process(target=worker_main, daemon=True,
                            args=(child, self.server, names[w::args.workers], encrypted, w,
                                  args.peer_nice))
            p.start()
            self.conns.append(parent)
            self.procs.append(p)
        self.peers = []
        for c in self.conns:
            if not c.poll(120):
                raise RuntimeError("a worker did not get ready")
            self.peers += [n for n, _ in c.recv()[1]]
        for c in self.conns:
            c.send(("sender", self.engine.nickname, self.engine.address))
        end = time.monotonic() + 30
        while len(self.engine.roster()) < args.peers:
            if time.monotonic() > end:
                raise RuntimeError(f"roster has {len(self.engine.roster())}/{args.peers}")
            time.sleep(0.05)
        self.seq = 0

    def _on_acked(self, peer: str, msg_id: int) -> None:
        # engine thread, once per recipient: count, read the clock only for the last ACK and
        # wake the waiter then, so the sender's CPU figure is the engine's, not this bookkeeping
        n = self.acks.get(msg_id, 0) + 1
        self.acks[msg_id] = n
        if n == self.want:
            self.acked_at[msg_id] = time.perf_counter()
            if msg_id == self.waiting:
                self.done.set()

    def wait_acks(self, msg_id: int, count: int, timeout: float) -> float | None:
        """When the ``count``-th ACK of ``msg_id`` came (``self.want`` was ``count`` when it
        was sent), or None after ``timeout``."""
        assert count == self.want
        with self.lock:
            self.waiting = msg_id
            self.done.clear()
            if msg_id not in self.acked_at and not self.done.wait(timeout):
                self.waiting = -1
                return None
            self.waiting = -1
            self.acks.pop(msg_id, None)
            return self.acked_at.pop(msg_id)

    def engine_cpu(self) -> float:
        """CPU time (user + system) of the engine thread so far, read in that thread."""
        return self.engine._call(lambda now: time.thread_time())

    def payload(self, tag: str) -> str:
        self.seq += 1
        return f"{tag} {self.seq} " + "x" * 60

    def report(self) -> tuple[list[tuple[str, int, float, float]], int, int]:
        records, dups, disorder = [], 0, 0
        for c in self.conns:
            c.send(("report",))
        for c in self.conns:
            _, r, d, o = c.recv()
            records += r
            dups += d
            disorder += o
        return records, dups, disorder

    def set_loss(self, loss: float) -> None:
        for c in self.conns:
            c.send(("loss", loss))

    def one_to_one(self, tag: str, targets: list[str], timeout: float) -> dict:
        sent: dict[int, tuple[float, float]] = {}  # seq -> (perf_counter, time.time) at send
        lost = 0
        self.want = 1
        for peer in targets:
            text = self.payload(tag)
            t0r = time.time()
            t0 = time.perf_counter()
            msg_id = self.engine.send_private(peer, text)
            sent[self.seq] = (t0, t0r)
            if self.wait_acks(msg_id, 1, timeout) is None:
                lost += 1
        records, dups, disorder = self.report()
        mine = [(sent[s], t, ta) for tg, s, t, ta in records if tg == tag and s in sent]
        lat = [t - t0 for (t0, _), t, _ in mine]
        arrived = [ta - t0r for (_, t0r), _, ta in mine if ta == ta]  # nan: no timestamp
        return {"lat": lat, "arrived": arrived, "sent": len(sent), "got": len(lat),
                "dups": dups, "disorder": disorder, "unacked": lost}

    def room(self, tag: str, count: int, timeout: float) -> dict:
        n = len(self.peers)
        sent: dict[int, tuple[float, float]] = {}  # seq -> (perf_counter, time.time) at send
        ack_all: list[float] = []
        on_wire: list[float] = []
        self.want = n
        thread0 = self.engine_cpu()
        cpu0 = resource.getrusage(resource.RUSAGE_SELF)
        for _ in range(count):
            text = self.payload(tag)
            self.fanout_done = None
            t0r = time.time()
            t0 = time.perf_counter()
            msg_id = self.engine.send_room(text)
            sent[self.seq] = (t0, t0r)
            t_all = self.wait_acks(msg_id, n, timeout)
            if t_all is not None:
                ack_all.append(t_all - t0)
            if self.fanout_done is not None:
                on_wire.append(self.fanout_done - t0)
        cpu1 = resource.getrusage(resource.RUSAGE_SELF)
        thread1 = self.engine_cpu()
        cpu = (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime)
        records, dups, disorder = self.report()
        per_msg: dict[int, list[float]] = {}
        arrivals: dict[int, list[float]] = {}
        for tg, s, t, ta in records:
            if tg == tag and s in sent:
                per_msg.setdefault(s, []).append(t - sent[s][0])
                if ta == ta:  # nan: no kernel timestamp
                    arrivals.setdefault(s, []).append(ta - sent[s][1])
        to_all = [max(v) for v in per_msg.values() if len(v) == n]
        arrived_all = [max(v) for v in arrivals.values() if len(v) == n]
        got = sum(len(v) for v in per_msg.values())
        return {"to_all": to_all, "arrived_all": arrived_all, "ack_all": ack_all,
                "on_wire": on_wire,
                "cpu_per_recipient": cpu / (count * n),
                "engine_cpu_per_recipient": (thread1 - thread0) / (count * n),
                "sent": count * n, "got": got, "dups": dups, "disorder": disorder}

    def burst(self, tag: str, count: int) -> float:
        peer = self.peers[0]
        t0 = time.perf_counter()
        last = 0
        self.want = 1
        for _ in range(count):
            last = self.engine.send_private(peer, self.payload(tag))
        ids_done = self.wait_acks(last, 1, 60)
        elapsed = (ids_done or time.perf_counter()) - t0
        records, _, _ = self.report()
        got = sum(1 for r in records if r[0] == tag)
        self.acks.clear()
        self.acked_at.clear()
        return got / elapsed

    def close(self) -> None:
        for c in self.conns:
            with contextlib.suppress(OSError, EOFError):
                c.send(("stop",))
                c.poll(5) and c.recv()
        for p in self.procs:
            p.join(5)
            if p.is_alive():
                p.kill()
        if self.engine is not None:
            self.engine.close()
        self.server_proc.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.server_proc.wait(5)
        if self.server_proc.poll() is None:
            self.server_proc.kill()


def run_mode(args: argparse.Namespace, encrypted: bool) -> dict:
    with tempfile.TemporaryDirectory() as tmpdir:
        b = Bench(args, encrypted, Path(tmpdir))
        try:
            res: dict = {"mode": "encrypted" if encrypted else "plain", "peers": args.peers}
            first = b.one_to_one("first", list(b.peers), 10)
            res["first"] = first
            res["one"] = b.one_to_one("one", [b.peers[i % len(b.peers)]
                                              for i in range(args.one)], 10)
            res["room"] = b.room("room", args.room, 30)
            res["burst_msgs_per_s"] = b.burst("burst", args.burst)
            b.set_loss(args.loss)
            time.sleep(0.2)
            res["loss_one"] = b.one_to_one("lone", [b.peers[i % len(b.peers)]
                                                    for i in range(args.one)], 30)
            res["loss_room"] = b.room("lroom", args.loss_room, 30)
            b.set_loss(0.0)
            return res
        finally:
            b.close()


def ms(x: float) -> str:
    return f"{x * 1000:.2f}"


def p50_99(values: list[float]) -> str:
    if not values:
        return "n/a"
    return f"{ms(pct(values, 50))} / {ms(pct(values, 99))}"


def print_table(results: list[dict], args: argparse.Namespace) -> None:
    n = args.peers
    rows = [("metric", *[r["mode"] for r in results])]

    def row(label: str, fn) -> None:  # type: ignore[no-untyped-def]
        rows.append((label, *[fn(r) for r in results]))

    row("first message to a new peer (incl. handshake), processed p50 / p99 ms",
        lambda r: p50_99(r["first"]["lat"]))
    row("one-to-one, arrived at the peer's socket (kernel) p50 / p99 ms",
        lambda r: p50_99(r["one"]["arrived"]))
    row("one-to-one, processed by the peer p50 / p99 ms",
        lambda r: p50_99(r["one"]["lat"]))
    row(f"room to {n}, on the wire (sender's last sendto returned) p50 / p99 ms",
        lambda r: p50_99(r["room"]["on_wire"]))
    row(f"room to {n}, arrived at all {n} peers' sockets (kernel) p50 / p99 ms",
        lambda r: p50_99(r["room"]["arrived_all"]))
    row(f"room to {n}, processed by all {n} peers p50 / p99 ms",
        lambda r: p50_99(r["room"]["to_all"]))
    row(f"room to {n}, all {n} ACKs back at the sender p50 / p99 ms",
        lambda r: p50_99(r["room"]["ack_all"]))
    row("sender CPU per recipient (send + ACK), engine thread / whole process us",
        lambda r: f"{r['room']['engine_cpu_per_recipient'] * 1e6:.1f} / "
                  f"{r['room']['cpu_per_recipient'] * 1e6:.1f}")
    row("messages/s to one peer",
        lambda r: f"{r['burst_msgs_per_s']:.0f}")
    loss = f"{args.loss:.0%} loss both ways"
    row(f"{loss}: one-to-one, arrived (kernel) p50 / p99 ms",
        lambda r: p50_99(r["loss_one"]["arrived"]))
    row(f"{loss}: one-to-one, processed p50 / p99 ms",
        lambda r: p50_99(r["loss_one"]["lat"]))
    row(f"{loss}: room, arrived at all (kernel) p50 / p99 ms",
        lambda r: p50_99(r["loss_room"]["arrived_all"]))
    row(f"{loss}: room, processed by all p50 / p99 ms",
        lambda r: p50_99(r["loss_room"]["to_all"]))
    row(f"{loss}: room, all ACKs back p50 / p99 ms",
        lambda r: p50_99(r["loss_room"]["ack_all"]))
    row(f"{loss}: delivered / sent, duplicates, out of order",
        lambda r: "{} / {}, {}, {}".format(
            r["loss_one"]["got"] + r["loss_room"]["got"],
            r["loss_one"]["sent"] + r["loss_room"]["sent"],
            r["loss_one"]["dups"] + r["loss_room"]["dups"],
            r["loss_one"]["disorder"] + r["loss_room"]["disorder"]))
    width = [max(len(str(x[i])) for x in rows) for i in range(len(rows[0]))]
    lines = []
    for i, r in enumerate(rows):
        lines.append("| " + " | ".join(str(c).ljust(w) for c, w in zip(r, width, strict=True))
                     + " |")
        if i == 0:
            lines.append("|" + "|".join("-" * (w + 2) for w in width) + "|")
    print("\n".join(lines))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--peers", type=int, default=200, help="simulated peers (%(default)s)")
    p.add_argument("--workers", type=int, default=4,
                   help="processes hosting the simulated peers (%(default)s)")
    p.add_argument("--peer-nice", type=int, default=0,
                   help="nice increment of the simulated peers' processes, so they disturb the "
                        "sender less on a small machine (%(default)s)")
    p.add_argument("--mode", choices=("both", "plain", "secure"), default="both",
                   help="transport(s) to measure (%(default)s)")
    p.add_argument("--one", type=int, default=300,
                   help="one-to-one messages, one at a time (%(default)s)")
    p.add_argument("--room", type=int, default=100, help="room messages (%(default)s)")
    p.add_argument("--loss-room", type=int, default=30,
                   help="room messages under loss (%(default)s)")
    p.add_argument("--burst", type=int, default=2000,
                   help="back-to-back messages for the messages/s figure (%(default)s)")
    p.add_argument("--loss", type=float, default=0.2,
                   help="drop probability per datagram, each direction (%(default)s)")
    p.add_argument("--json", action="store_true", help="also print the raw figures as JSON")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    modes = {"both": [False, True], "plain": [False], "secure": [True]}[args.mode]
    results = [run_mode(args, enc) for enc in modes]
    print(f"# python tools/bench_peer.py {' '.join(argv if argv is not None else sys.argv[1:])}"
          f"  ({os.cpu_count()} CPUs)")
    print_table(results, args)
    print("# arrived: kernel receive timestamp at the peer's socket (SO_TIMESTAMPNS, "
          "CLOCK_REALTIME) minus time.time() just before the send call\n"
          "# processed: delivered by the simulated peer's Messenger (perf_counter); the 200 "
          "simulated peers share the CPUs with the sender\n"
          "# on the wire: the sender's last sendto of the fan-out returned (perf_counter)")
    if args.json:
        slim = [{k: (v if not isinstance(v, dict) else
                     {kk: vv for kk, vv in v.items() if not isinstance(vv, list)})
                 for k, v in r.items()} for r in results]
        print(json.dumps(slim, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
