"""Load test for the directory server: starts ``server.py`` itself and prints a table.

    python tools/bench_server.py                     # 1,000 online clients, defaults below
    python tools/bench_server.py --clients 200 --rss-clients 2000 --quick   # a quick look

Simulated clients are plain sockets spread over several worker processes (so the load
generator is not the bottleneck). Phases, each bounded in time:

1. registrations (CONNECT / REFERENCE? / CHANNEL_SWITCH, one TCP connection each):
   sequential, then 32 concurrent; rate and p50/p99 latency;
2. the online clients send their first PING (joins), then PINGs at a paced rate: how many the
   server handled (its own counter, read with SIGUSR1) and how many were lost;
3. joins at ``--join-rate`` with ``--clients`` online: time from a join's first PING until
   every online client has its REF_ADD (p50/p99), and the sustained join rate;
4. a fresh server: RSS growth per registered (and announced) client over ``--rss-clients``.

Linux only for the RSS figure (/proc). Exit code 0 even when a target is missed: it reports.
"""

from __future__ import annotations

import argparse
import contextlib
import multiprocessing as mp
import os
import re
import selectors
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # run as a script: models/ for --mac

from models import directory_wire as wire  # noqa: E402
from models.dirauth import ClientAuth  # noqa: E402

SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)  # Linux values where Python lacks them
SCM_TIMESTAMPNS = getattr(socket, "SCM_TIMESTAMPNS", SO_TIMESTAMPNS)
LISTENING = re.compile(r"listening on \S+:(\d+) \(tcp\+udp\)")
STATS = re.compile(r"stats: .*?datagrams=(\d+) pings=(\d+)")
DELS = re.compile(r"dels=(\d+) del_p50_ms=([\d.]+) del_p99_ms=([\d.]+) del_max_ms=([\d.]+)")
PUSH = re.compile(r"pushes=(\d+) push_p50_ms=([\d.]+) push_p99_ms=([\d.]+) push_max_ms=([\d.]+)")


# ------------------------------------------------------------------ the server


class Server:
    def __init__(self, workdir: Path, ping_interval: float) -> None:
        self.lines: list[str] = []
        self.cond = threading.Condition()
        cmd = [sys.executable, str(ROOT / "server.py"), "--host", "127.0.0.1", "--port", "0",
               "--db", str(workdir / f"bench{time.monotonic_ns()}.db"),
               "--ping-interval", str(ping_interval), "--stats-interval", "0",
               "--register-rate", "0", "--max-conns-per-ip", "100000",
               "--max-connections", "100000", "--log-level", "INFO"]
        self.proc = subprocess.Popen(cmd, cwd=ROOT, stderr=subprocess.PIPE, text=True,
                                     stdout=subprocess.DEVNULL)
        threading.Thread(target=self._read, daemon=True).start()
        line = self.wait(LISTENING, 15)
        if line is None:
            raise SystemExit("server did not start:\n" + "\n".join(self.lines[-20:]))
        self.port = int(LISTENING.search(line).group(1))  # type: ignore[union-attr]

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for raw in self.proc.stderr:
            with self.cond:
                self.lines.append(raw.rstrip("\n"))
                self.cond.notify_all()

    def wait(self, regex: re.Pattern[str], timeout: float, start: int = 0) -> str | None:
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                for line in self.lines[start:]:
                    if regex.search(line):
                        return line
                start = len(self.lines)
                if time.monotonic() > deadline:
                    return None
                self.cond.wait(0.1)

    def counters(self) -> tuple[int, int]:
        """(datagrams, pings) handled so far, from a SIGUSR1 stats line."""
        with self.cond:
            start = len(self.lines)
        self.proc.send_signal(signal.SIGUSR1)
        line = self.wait(STATS, 10, start)
        if line is None:
            raise SystemExit("no stats line from the server")
        self.last_stats = line
        m = STATS.search(line)
        return int(m.group(1)), int(m.group(2))  # type: ignore[union-attr]

    def cpu_seconds(self) -> float:
        """User + system CPU time the server has used (Linux; 0.0 elsewhere)."""
        try:
            fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return 0.0
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def rss_kib(self) -> int | None:
        try:
            for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        except OSError:
            return None
        return None

    def settle(self, quiet: float = 0.3, timeout: float = 30) -> None:
        """Wait until the server's datagram counter stops moving (its queues are drained)."""
        deadline = time.monotonic() + timeout
        last = self.counters()
        while time.monotonic() < deadline:
            time.sleep(quiet)
            now = self.counters()
            if now == last:
                return
            last = now

    def close(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


# ------------------------------------------------------------------ worker processes


def connect_line(nick: str, auth: ClientAuth | None) -> bytes:
    if auth is None:
        return f"CONNECT {nick}\n".encode()
    return wire.encode_line(auth.connect(nick))


def accept_keyword(line: bytes, auth: ClientAuth | None) -> str:
    """The keyword of a ``KEYWORD`` line; with ``--mac`` the MAC key is derived too."""
    if auth is not None:
        reply = wire.decode_reply(line)
        assert isinstance(reply, wire.Keyword) and auth.accept(reply), line
    return line[8:].split()[0].decode()


def register_one(addr: tuple[str, int], nick: str, auth: ClientAuth | None = None
                 ) -> tuple[str, float]:
    """The design's registration on one TCP connection; (keyword, seconds)."""
    t0 = time.perf_counter()
    with socket.create_connection(addr, timeout=10) as s:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        f = s.makefile("rb")
        s.sendall(connect_line(nick, auth))
        raw = f.readline()
        line = raw.decode()
        if not line.startswith("KEYWORD "):
            raise RuntimeError(f"registration of {nick} failed: {line.strip()}")
        keyword = accept_keyword(raw.rstrip(b"\n"), auth)
        s.sendall(b"REFERENCE?\n")
        f.readline()
        s.sendall(b"CHANNEL_SWITCH\n")
        f.read()  # until the server closes
    return keyword, time.perf_counter() - t0


def frame(keyword: str, body: str) -> bytes:
    b = body.encode()
    return b"%s %d %s" % (keyword.encode(), len(b), b)


class Worker:
    """Runs in a child process; holds its clients' sockets between commands."""

    def __init__(self, addr: tuple[str, int]) -> None:
        self.addr = addr
        self.clients: list[tuple[str, str]] = []  # (nick, keyword)
        self.socks: list[socket.socket] = []
        self.mac = False  # --mac: register with x25519=, PING with #counter.mac
        self.auths: dict[str, ClientAuth] = {}

    def use_mac(self, on: bool) -> None:
        self.mac = on

    def _auth(self, nick: str) -> ClientAuth | None:
        if not self.mac:
            return None
        auth = self.auths[nick] = ClientAuth()
        return auth

    def _pings(self, rounds: int) -> list[tuple[socket.socket, bytes]]:
        """The PINGs of ``rounds`` rounds over all clients; with --mac each is sealed with
        its own counter (made before the clock starts: the generator must not slow down)."""
        pairs = list(zip(self.socks, self.clients, strict=True))
        if not self.mac:
            return [(s, frame(kw, f"PING {n}")) for s, (n, kw) in pairs]
        return [(s, self.auths[n].seal(wire.Ping(kw, n))) for _ in range(rounds)
                for s, (n, kw) in pairs]

    def reset(self) -> None:
        for s in self.socks:
            s.close()
        self.clients, self.socks = [], []

    def take(self, prefix: str) -> list[tuple[str, str]]:
        """Hand over the clients whose nickname starts with ``prefix`` (before ``bind``)."""
        mine = [c for c in self.clients if c[0].startswith(prefix)]
        self.clients = [c for c in self.clients if not c[0].startswith(prefix)]
        return mine

    def adopt(self, clients: list[tuple[str, str]]) -> None:
        self.clients += clients

    def register(self, nicks: list[str], concurrency: int) -> list[float]:
        """Register ``nicks`` with ``concurrency`` connections in flight; latencies (s).

        One selector loop instead of threads: the load generator must cost the machine as
        little as possible, since it shares the CPUs with the server."""
        if concurrency <= 1:
            results = [register_one(self.addr, n, self._auth(n)) for n in nicks]
            self.clients += [(n, kw) for n, (kw, _) in zip(nicks, results, strict=True)]
            return [lat for _, lat in results]
        sel = selectors.DefaultSelector()
        todo = list(reversed(nicks))
        latencies: list[float] = []
        steps = (b"REFERENCE?\n", b"CHANNEL_SWITCH\n")

        def start() -> None:
            nick = todo.pop()
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.connect(self.addr)  # loopback: immediate
            sock.setblocking(False)
            sock.send(connect_line(nick, self._auth(nick)))
            sel.register(sock, selectors.EVENT_READ, [nick, time.perf_counter(), 0, b"", ""])

        for _ in range(min(concurrency, len(todo))):
            start()
        while sel.get_map():
            for key, _ in sel.select(10):
                sock, state = key.fileobj, key.data
                try:
                    data = sock.recv(65536)  # type: ignore[union-attr]
                except BlockingIOError:
                    continue
                if not data:  # closed by the server after CHANNEL_SWITCH: done
                    sel.unregister(sock)
                    sock.close()  # type: ignore[union-attr]
                    latencies.append(time.perf_counter() - state[1])
                    self.clients.append((state[0], state[4]))
                    if todo:
                        start()
                    continue
                state[3] += data
                while b"\n" in state[3]:
                    line, _, state[3] = state[3].partition(b"\n")
                    if state[2] == 0:
                        if not line.startswith(b"KEYWORD "):
                            raise RuntimeError(f"{state[0]}: {line.decode(errors='replace')}")
                        state[4] = accept_keyword(line, self.auths.get(state[0]))
                    sock.send(steps[state[2]])  # type: ignore[union-attr]
                    state[2] += 1
        sel.close()
        return latencies

    def bind(self) -> None:
        for _ in self.clients[len(self.socks):]:
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
            with contextlib.suppress(OSError):
                s.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
            s.bind(("127.0.0.1", 0))
            s.setblocking(False)
            self.socks.append(s)

    def _paced(self, datagrams: list[tuple[socket.socket, bytes]], rate: float,
               seconds: float | None = None) -> tuple[int, list[float]]:
        """Send round-robin at ``rate``/s (for ``seconds``, or each once); (sent, send times)."""
        sent = 0
        times: list[float] = []
        start = time.monotonic()
        n = len(datagrams)
        total = n if seconds is None else int(rate * seconds)
        while sent < total:
            due = min(total, int((time.monotonic() - start) * rate) + 1)
            while sent < due:
                sock, data = datagrams[sent % n]
                try:
                    sock.sendto(data, self.addr)
                except BlockingIOError:
                    continue
                if seconds is None:
                    times.append(time.monotonic())
                sent += 1
            time.sleep(0.0005)
        return sent, times

    def announce(self, rate: float) -> int:
        sent, _ = self._paced(self._pings(1), rate)
        return sent

    def ping(self, rate: float, seconds: float) -> int:
        rounds = -(-int(rate * seconds) // max(1, len(self.clients)))
        sent, _ = self._paced(self._pings(rounds), rate, seconds)
        return sent

    def drain(self) -> int:
        got = 0
        for s in self.socks:
            with contextlib.suppress(BlockingIOError):
                while True:
                    s.recv(65536)
                    got += 1
        return got

    def listen(self, seconds: float, prefix: str, stamped: bool
               ) -> dict[str, tuple[int, float]]:
        """REF_ADDs for nicknames starting with ``prefix``: nick -> (listeners, last arrival).

        ``stamped``: sleep, then read everything with the kernel's arrival timestamps
        (SO_TIMESTAMPNS): the time each datagram reached the client's socket, without the
        load generator's own scheduling in it (and without it competing for the CPUs).
        Otherwise: read as it comes (select) and take the time when read."""
        seen: dict[str, list] = {}
        needle = prefix.encode()

        def note(data: bytes, at: float) -> None:
            parts = data.split(b" ")
            if len(parts) > 3 and parts[2] == b"REF_ADD":
                for nick in parts[4::3]:
                    if nick.startswith(needle):
                        rec = seen.get(nick)
                        if rec is None:
                            seen[nick] = [1, at]
                        else:
                            rec[0] += 1
                            rec[1] = max(rec[1], at)

        if stamped:
            time.sleep(seconds)
            offset = time.time() - time.monotonic()  # kernel stamps are wall-clock time
            for sock in self.socks:
                while True:
                    try:
                        data, anc, _, _ = sock.recvmsg(65536, socket.CMSG_SPACE(16))
                    except BlockingIOError:
                        break
                    at = time.monotonic()
                    for level, kind, raw in anc:
                        if level == socket.SOL_SOCKET and kind == SCM_TIMESTAMPNS:
                            sec, nsec = struct.unpack("qq", raw[:16])
                            at = sec + nsec / 1e9 - offset
                    note(data, at)
            return {k.decode(): (v[0], v[1]) for k, v in seen.items()}
        sel = selectors.DefaultSelector()
        for s in self.socks:
            sel.register(s, selectors.EVENT_READ)
        end = time.monotonic() + seconds
        while (left := end - time.monotonic()) > 0:
            for key, _ in sel.select(min(left, 0.1)):
                sock = key.fileobj
                while True:
                    try:
                        data = sock.recv(65536)  # type: ignore[union-attr]
                    except BlockingIOError:
                        break
                    note(data, time.monotonic())
        sel.close()
        return {k.decode(): (v[0], v[1]) for k, v in seen.items()}

    def join(self, nicks: list[str], rate: float, linger: float | None, threads: int = 16
             ) -> list[tuple[str, float]]:
        """Joins as a real client makes them: register over TCP, then at once the first PING
        from the client's own UDP socket; paced at ``rate``/s over ``threads`` threads. Each
        QUITs ``linger`` s after joining (None: stays, keeping its socket). Returns
        (nick, time of first PING)."""
        start = time.monotonic() + 0.05
        results: list[tuple[str, float]] = []
        lock = threading.Lock()

        def run(first: int) -> None:
            quits: list[tuple[float, socket.socket, bytes]] = []

            def send_quits(now: float) -> None:
                while quits and quits[0][0] <= now:
                    _, sock, data = quits.pop(0)
                    sock.sendto(data, self.addr)
                    sock.close()

            for i in range(first, len(nicks), threads):
                target = start + i / rate
                while (now := time.monotonic()) < target:
                    send_quits(now)
                    # sleep until the next thing due, not in short steps: 32 threads polling
                    # every 0.5 ms would take a share of the CPUs the server needs
                    due = min(target, quits[0][0]) if quits else target
                    time.sleep(max(0.0, due - now))
                nick = nicks[i]
                sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                sock.bind(("127.0.0.1", 0))
                sock.setblocking(False)
                keyword, _ = register_one(self.addr, nick)
                sock.sendto(frame(keyword, f"PING {nick}"), self.addr)
                t = time.monotonic()
                with lock:
                    results.append((nick, t))
                    if linger is None:
                        self.clients.append((nick, keyword))
                        self.socks.append(sock)
                if linger is not None:
                    quits.append((t + linger, sock, frame(keyword, f"QUIT {nick}")))
                send_quits(time.monotonic())
            while quits:
                time.sleep(max(0.0, quits[0][0] - time.monotonic()))
                send_quits(time.monotonic())

        pool = [threading.Thread(target=run, args=(k,)) for k in range(threads)]
        for t in pool:
            t.start()
        for t in pool:
            t.join()
        return results


    def cpu(self) -> float:
        """CPU seconds this load process has used (to tell whether it is the bottleneck)."""
        return time.process_time()


def worker_main(conn, addr: tuple[str, int]) -> None:  # type: ignore[no-untyped-def]
    worker = Worker(addr)
    while True:
        cmd, args = conn.recv()
        if cmd == "exit":
            return
        try:
            conn.send(("ok", getattr(worker, cmd)(*args)))
        except Exception as exc:  # reported by the parent
            conn.send(("error", f"{type(exc).__name__}: {exc}"))


class Workers:
    def __init__(self, count: int, addr: tuple[str, int]) -> None:
        ctx = mp.get_context("spawn" if sys.platform == "win32" else "fork")
        self.conns = []
        self.procs = []
        for _ in range(count):
            parent, child = ctx.Pipe()
            p = ctx.Process(target=worker_main, args=(child, addr), daemon=True)
            p.start()
            self.conns.append(parent)
            self.procs.append(p)

    def send(self, i: int, cmd: str, *args) -> None:  # type: ignore[no-untyped-def]
        self.conns[i].send((cmd, args))

    def result(self, i: int):  # type: ignore[no-untyped-def]
        status, value = self.conns[i].recv()
        if status != "ok":
            raise SystemExit(f"worker {i}: {value}")
        return value

    def ask(self, i: int, cmd: str, *args):  # type: ignore[no-untyped-def]
        self.send(i, cmd, *args)
        return self.result(i)

    def all(self, cmd: str, per_worker_args: list[tuple]) -> list:  # type: ignore[type-arg]
        for i, args in enumerate(per_worker_args):
            self.send(i, cmd, *args)
        return [self.result(i) for i in range(len(per_worker_args))]

    def close(self) -> None:
        for c in self.conns:
            with contextlib.suppress(OSError):
                c.send(("exit", ()))
        for p in self.procs:
            p.join(5)


# ------------------------------------------------------------------ phases


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q / 100 * (len(values) - 1))))]


def bottleneck(server_cpu: float, generator_cpu: float) -> str:
    """A warning when the figures may say more about the machine than about the server: the
    load generator shares the CPUs with it."""
    cpus = os.cpu_count() or 1
    if generator_cpu >= 0.9 * max(1, cpus - 1) or server_cpu + generator_cpu >= 0.9 * cpus:
        return (f" (WARNING: server + load generator use {server_cpu + generator_cpu:.0%} of "
                f"{cpus} CPUs: the load generator may be the bottleneck here)")
    return ""


def split(items: list, n: int) -> list[list]:  # type: ignore[type-arg]
    return [items[i::n] for i in range(n)]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--clients", type=int, default=1000, help="clients online during 2 and 3")
    p.add_argument("--procs", type=int, default=4, help="load-generating processes")
    p.add_argument("--seq-registrations", type=int, default=1000)
    p.add_argument("--concurrency", type=int, default=32)
    p.add_argument("--ping-rate", type=float, default=100_000, help="PINGs/s offered")
    p.add_argument("--ping-seconds", type=float, default=3.0)
    p.add_argument("--join-rate", type=float, default=1000, help="joins/s offered")
    p.add_argument("--join-seconds", type=float, default=3.0)
    p.add_argument("--join-linger", type=float, default=0.3,
                   help="a joiner QUITs this long after joining (keeps ~--clients online)")
    p.add_argument("--rss-clients", type=int, default=10_000)
    p.add_argument("--quick", action="store_true", help="shorter phases")
    p.add_argument("--mac", action="store_true",
                   help="phases 1 and 2 use the MAC extension (x25519= registrations, "
                        "PINGs with #counter.mac); the joiners of 3 stay design-only")
    p.add_argument("--read-live", dest="stamped", action="store_false",
                   help="listeners read REF_ADDs as they come and time them when read, "
                        "instead of kernel arrival timestamps (adds the load generator's "
                        "own scheduling delays to the fan-out times)")
    args = p.parse_args(argv)
    if args.quick:
        args.ping_seconds = args.join_seconds = 1.0
        args.seq_registrations = min(args.seq_registrations, 300)

    rows: list[tuple[str, str, str]] = []
    with tempfile.TemporaryDirectory() as tmp:
        server = Server(Path(tmp), ping_interval=120)
        addr = ("127.0.0.1", server.port)
        nprocs = max(1, args.procs)
        workers = Workers(nprocs + 2, addr)  # the last two are the joiners
        try:
            workers.all("use_mac", [(args.mac,)] * (nprocs + 1))
            # 1. registrations ---------------------------------------------------------
            t0 = time.perf_counter()
            workers.send(nprocs, "register", [f"s{i:06d}" for i in range(args.seq_registrations)],
                         1)
            lat = workers.result(nprocs)
            wall = time.perf_counter() - t0
            rows.append(("registrations/s, sequential", f"{len(lat) / wall:,.0f}",
                         f"p50 {pct(lat, 50) * 1e3:.2f} ms, p99 {pct(lat, 99) * 1e3:.2f} ms"))
            workers.send(nprocs, "reset")  # forget the sequential ones
            workers.result(nprocs)

            joins_total = int(args.join_rate * args.join_seconds)
            online = [f"c{i:06d}" for i in range(args.clients)]
            joiners = [f"j{i:06d}" for i in range(joins_total)]
            per = max(1, args.concurrency // nprocs)
            gen0 = sum(workers.all("cpu", [()] * nprocs))
            cpu0 = server.cpu_seconds()
            t0 = time.perf_counter()
            lats = workers.all("register", [(chunk, per) for chunk in split(online, nprocs)])
            wall = time.perf_counter() - t0
            reg_cpu = (server.cpu_seconds() - cpu0) / wall
            gen_cpu = (sum(workers.all("cpu", [()] * nprocs)) - gen0) / wall
            lat = [x for part in lats for x in part]
            rows.append((f"registrations/s, {args.concurrency} concurrent",
                         f"{len(lat) / wall:,.0f}",
                         f"p50 {pct(lat, 50) * 1e3:.2f} ms, p99 {pct(lat, 99) * 1e3:.2f} ms "
                         f"({len(lat)} registrations); server CPU {reg_cpu:.0%}, load "
                         f"generator CPU {gen_cpu:.0%}{bottleneck(reg_cpu, gen_cpu)}"))
            workers.all("bind", [()] * nprocs)

            # 2. online clients join, then PINGs at a paced rate -------------------------
            workers.all("announce", [(2000 / nprocs,)] * nprocs)
            server.settle()
            workers.all("drain", [()] * nprocs)
            before, _ = server.counters()
            cpu0 = server.cpu_seconds()
            sent = sum(workers.all("ping", [(args.ping_rate / nprocs, args.ping_seconds)]
                                   * nprocs))
            ping_cpu = (server.cpu_seconds() - cpu0) / args.ping_seconds
            server.settle()
            after, _ = server.counters()
            handled = after - before
            lost = max(0, sent - handled)
            rows.append(("PINGs handled/s (paced)",
                         f"{handled / args.ping_seconds:,.0f}",
                         f"offered {args.ping_rate:,.0f}/s for {args.ping_seconds:g} s: "
                         f"sent {sent:,}, handled {handled:,}, lost {lost:,}; "
                         f"server CPU {ping_cpu:.0%}"))

            # 3a. lone joins (one every 50 ms): the fan-out latency without load -------
            workers.all("drain", [()] * nprocs)
            lone = [f"l{i:06d}" for i in range(40)]
            for i in range(nprocs):
                workers.send(i, "listen", 2.0 + 0.05 * len(lone) + args.join_linger, "l",
                             args.stamped)
            time.sleep(0.2)
            server.counters()  # starts the server's own push-latency record afresh
            workers.send(nprocs, "join", lone, 20.0, args.join_linger, 1)
            lone_at = dict(workers.result(nprocs))
            heard = [workers.result(i) for i in range(nprocs)]
            server.counters()
            lone_push = PUSH.search(server.last_stats)
            lone_lat = [max(h[n][1] for h in heard if n in h) - t for n, t in lone_at.items()
                        if sum(h.get(n, (0, 0.0))[0] for h in heard) >= args.clients]
            rows.append(("REF_ADD to all, lone joins", f"p99 {pct(lone_lat, 99) * 1e3:.1f} ms",
                         f"p50 {pct(lone_lat, 50) * 1e3:.1f} ms; {len(lone_lat)}/{len(lone)} "
                         f"joins at 20/s reached all {args.clients:,} online clients"
                         + (f"; server side p50 {lone_push.group(2)} ms, p99 "
                            f"{lone_push.group(3)} ms" if lone_push else "")))

            # 3. joins with the online clients listening ----------------------------------
            workers.all("drain", [()] * nprocs)
            listen_for = args.join_seconds + args.join_linger + 2.0
            for i in range(nprocs):
                workers.send(i, "listen", listen_for, "j", args.stamped)
            time.sleep(0.2)
            server.counters()  # starts the server's own push-latency record afresh
            joiner_cpu = lambda: sum(workers.ask(nprocs + k, "cpu") for k in (0, 1))  # noqa: E731
            gen0 = joiner_cpu()
            cpu0 = server.cpu_seconds()
            t0 = time.perf_counter()
            for k in (0, 1):  # two joiner processes, each half the joins at half the rate
                workers.send(nprocs + k, "join", joiners[k::2], args.join_rate / 2,
                             args.join_linger)
            sent_at = dict(workers.result(nprocs) + workers.result(nprocs + 1))
            cpu1 = server.cpu_seconds()
            wall = time.perf_counter() - t0
            times = sorted(sent_at.values())
            join_wall = times[-1] - times[0] if len(times) > 1 else float("nan")
            join_cpu = (cpu1 - cpu0) / wall
            gen_cpu = (joiner_cpu() - gen0) / wall  # the listeners sleep meanwhile (stamped)
            heard = [workers.result(i) for i in range(nprocs)]
            server.counters()
            push = PUSH.search(server.last_stats)
            complete, latencies = 0, []
            for nick, t_sent in sent_at.items():
                count = sum(h.get(nick, (0, 0.0))[0] for h in heard)
                if count >= args.clients:
                    complete += 1
                    last = max(h[nick][1] for h in heard if nick in h)
                    latencies.append(last - t_sent)
            rows.append(("joins/s sustained", f"{min(complete, len(times)) / join_wall:,.0f}",
                         f"offered {args.join_rate:,.0f}/s for {args.join_seconds:g} s with "
                         f"{args.clients:,} online, each joiner QUITting {args.join_linger:g} s "
                         f"later; {complete}/{len(sent_at)} reached everyone; "
                         f"server CPU {join_cpu:.0%}, load generator CPU {gen_cpu:.0%}"
                         f"{bottleneck(join_cpu, gen_cpu)}"))
            rows.append(("REF_ADD to all online clients",
                         f"p99 {pct(latencies, 99) * 1e3:.1f} ms",
                         f"p50 {pct(latencies, 50) * 1e3:.1f} ms, max "
                         f"{max(latencies, default=float('nan')) * 1e3:.1f} ms, from first PING "
                         f"to the last of {args.clients:,} recipients "
                         + ("(kernel arrival stamps)" if args.stamped else "reading it")))
            if push:
                rows.append(("REF_ADD to all, server side", f"p99 {push.group(3)} ms",
                             f"p50 {push.group(2)} ms, max {push.group(4)} ms over "
                             f"{push.group(1)} joins: from the PING's arrival to the end of "
                             f"the push that carried it (its REF_ADDs go first)"))
            dels = DELS.search(server.last_stats)
            if dels:
                rows.append(("REF_DEL to all, server side", f"p99 {dels.group(3)} ms",
                             f"p50 {dels.group(2)} ms, max {dels.group(4)} ms over "
                             f"{dels.group(1)} QUITs: under churn spread over 8 pushes, "
                             f"after their REF_ADDs, so a push costs a recipient ~1 datagram"))
        finally:
            workers.close()
            server.close()

        # 4. RSS per registered client, on a fresh server ------------------------------
        server = Server(Path(tmp), ping_interval=600)
        addr = ("127.0.0.1", server.port)
        workers = Workers(nprocs, addr)
        try:
            warm = [f"w{i:04d}" for i in range(100)]
            workers.all("register", [(chunk, 4) for chunk in split(warm, nprocs)])
            server.settle()
            rss0 = server.rss_kib()
            names = [f"r{i:06d}" for i in range(args.rss_clients)]
            t0 = time.monotonic()
            workers.all("join", [(chunk, 4000 / nprocs, None, max(1, 8 // nprocs))
                                 for chunk in split(names, nprocs)])
            rss_wall = time.monotonic() - t0
            server.settle()
            rss1 = server.rss_kib()
            if rss0 is not None and rss1 is not None:
                total = len(names) + len(warm)
                rows.append(("server RSS per registered client",
                             f"{(rss1 - rss0) * 1024 / len(names):,.0f} B",
                             f"RSS {rss0 / 1024:.1f} -> {rss1 / 1024:.1f} MiB with "
                             f"{total:,} registered and announced "
                             f"(joined in {rss_wall:.1f} s)"))
        finally:
            workers.close()
            server.close()

    width = max(len(r[0]) for r in rows)
    vwidth = max(len(r[1]) for r in rows)
    cpu = os.cpu_count()
    print(f"OpenLChat directory server benchmark ({cpu} CPUs, Python "
          f"{sys.version.split()[0]}, {nprocs} load processes): "
          f"python tools/bench_server.py {' '.join(argv if argv is not None else sys.argv[1:])}")
    print(f"| {'measure'.ljust(width)} | {'result'.rjust(vwidth)} | details |")
    print(f"|{'-' * (width + 2)}|{'-' * (vwidth + 2)}|---------|")
    for name, value, detail in rows:
        print(f"| {name.ljust(width)} | {value.rjust(vwidth)} | {detail} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
