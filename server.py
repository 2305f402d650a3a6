"""OpenLChat directory server: who is online, and where. It never relays messages.

    python server.py [--host 0.0.0.0] [--port 7700] [--db openlchat.db] [--ping-interval 10]

One process, gevent, no monkey-patching: a ``StreamServer`` (TCP, registration: CONNECT /
REFERENCE? / CHANNEL_SWITCH / INFO?) and a ``DatagramServer`` (UDP: PING / QUIT in, REF_ADD /
REF_DEL / PONG / UNKNOWN out) on the same port number. The logic is ``models.directory``
(pure, takes ``now``); this module only decodes, calls, encodes and sends. SQLite writes run in
one worker thread so a slow or locked database never stalls the UDP loop. See docs/PROTOCOL.md.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import logging
import logging.handlers
import math
import os
import queue
import signal
import socket
import sys
import time
from collections import Counter, deque
from collections.abc import Callable, Iterator
from pathlib import Path

import gevent
from gevent import socket as gsocket
from gevent.event import AsyncResult, Event
from gevent.pool import Pool
from gevent.server import DatagramServer, StreamServer
from gevent.threadpool import ThreadPool

from models import directory_wire as wire
from models.directory import Directory, KeyedRateLimiter, Refused, Registration
from models.errors import ProtocolError
from models.netaddrs import friends_line
from models.store import StorageError, Store

log = logging.getLogger("openlchat.server")

# ERROR codes after which the server closes the TCP connection (others leave it open).
CLOSING_ERRORS = frozenset({"LINE_TOO_LONG", "TOO_MANY_CONNECTIONS", "THROTTLED", "TIMEOUT"})
MAX_ERRORS_PER_CONNECTION = 8
SEND_YIELD_EVERY = 250  # datagrams sent (~1 ms) between handling the PINGs waiting
HUB_YIELD_EVERY = 1000  # datagrams sent (~5 ms) between chances for everything else to run
# UDP receive buffer asked for (the kernel caps it at net.core.rmem_max unless we may force
# it): 32 MiB holds ~0.4 s of PINGs at 100,000/s while the process is descheduled; kernel
# memory, used only while a backlog exists
RCVBUF = 32 << 20
MAX_COALESCE = 0.010  # seconds a push may be held back, under load only
# under churn a batch of REF_DELs reaches 1/DEL_SPREAD of the clients per push, after the
# REF_ADDs: a push costs each about one datagram, never two (models.directory.iter_outgoing)
DEL_SPREAD = 8
MIN_COALESCE = 0.003  # changes within this long after a push travel together in the next


def _positive(text: str) -> float:
    value = float(text)
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be a positive number, not {text}")
    return value


def _non_negative(text: str) -> float:
    value = float(text)
    if not (math.isfinite(value) and value >= 0):
        raise argparse.ArgumentTypeError(f"must be zero or a positive number, not {text}")
    return value


def _port(text: str) -> int:
    value = int(text)
    if not 0 <= value < 65536:
        raise argparse.ArgumentTypeError(f"port must be 0..65535, not {text}")
    return value


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="server.py",
        description="OpenLChat directory server (TCP registration + UDP liveness, same port).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--host", default="0.0.0.0", help="address to listen on")
    p.add_argument("--port", type=_port, default=7700,
                   help="TCP and UDP port; 0 picks a free one (logged at start-up)")
    p.add_argument("--db", type=Path, default=Path("openlchat.db"),
                   help="SQLite database file (created if missing)")
    p.add_argument("--ping-interval", type=_positive, default=10.0,
                   help="seconds between a client's PINGs; silent for 1.5x this = gone")
    p.add_argument("--stats-interval", type=_non_negative, default=60.0,
                   help="seconds between stats log lines (0: only on SIGUSR1)")
    p.add_argument("--register-timeout", type=_positive, default=10.0,
                   help="seconds a TCP connection may take to finish registering")
    p.add_argument("--max-conns-per-ip", type=int, default=16,
                   help="concurrent TCP connections allowed from one address")
    p.add_argument("--max-connections", type=int, default=4096,
                   help="concurrent TCP connections in all")
    p.add_argument("--register-rate", type=_non_negative, default=10.0,
                   help="registrations per second allowed from one address (0: unlimited)")
    p.add_argument("--register-burst", type=_positive, default=30.0,
                   help="registrations from one address allowed in a burst")
    p.add_argument("--unknown-rate", type=_non_negative, default=50.0,
                   help="UNKNOWN replies per second, whole server (burst the same)")
    p.add_argument("--db-timeout", type=_positive, default=1.0,
                   help="seconds to wait for a locked database before giving up")
    p.add_argument("--log-level", default="INFO",
                   choices=["DEBUG", "INFO", "WARNING", "ERROR"], help="logging level")
    return p


class _UdpServer(DatagramServer):
    reuse_addr = None  # never share the UDP port with another server
    max_accept = 1000  # datagrams handled per readiness event before other greenlets run

    def do_read(self):  # type: ignore[override]
        try:
            return self._socket.recvfrom(8192)
        except BlockingIOError:
            return None
        except OSError:  # e.g. ICMP errors reported on some platforms: not fatal
            return None


def bind_sockets(host: str, port: int, attempts: int = 20
                 ) -> tuple[gsocket.socket, gsocket.socket, int]:
    """A listening TCP socket and a UDP socket on the same port. ``port=0``: any free one."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    last: OSError | None = None
    for _ in range(attempts if port == 0 else 1):
        tcp = gsocket.socket(family, socket.SOCK_STREAM)
        tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # TIME_WAIT only; TCP
        try:
            tcp.bind((host, port))
            tcp.listen(1024)
        except OSError:
            tcp.close()
            raise
        actual = tcp.getsockname()[1]
        udp = gsocket.socket(family, socket.SOCK_DGRAM)
        try:
            udp.bind((host, actual))
        except OSError as exc:
            udp.close()
            tcp.close()
            last = exc
            if port == 0 and exc.errno == errno.EADDRINUSE:
                continue
            raise
        for opt, size in ((socket.SO_RCVBUF, RCVBUF), (socket.SO_SNDBUF, 4 << 20)):
            with contextlib.suppress(OSError):
                udp.setsockopt(socket.SOL_SOCKET, opt, size)
        force = getattr(socket, "SO_RCVBUFFORCE", None)
        if force is not None:
            # lets root go beyond net.core.rmem_max: bursts of PINGs are not lost
            with contextlib.suppress(OSError):
                udp.setsockopt(socket.SOL_SOCKET, force, RCVBUF)
        return tcp, udp, actual
    assert last is not None
    raise last


class _Close(Exception):
    """End this TCP session (after CHANNEL_SWITCH, or a closing error)."""


class DirectoryServer:
    def __init__(self, args: argparse.Namespace, store: Store, clock: Callable[[], float]
                 = time.monotonic) -> None:
        self.args = args
        self.store = store
        self.now = clock
        self.directory = Directory(
            ping_interval=args.ping_interval,
            unknown_rate=args.unknown_rate,
            unknown_burst=max(args.unknown_rate, 1.0),
            del_spread=DEL_SPREAD,
        )
        self.limiter = KeyedRateLimiter(args.register_rate, args.register_burst)
        self.pool = ThreadPool(1)  # the one thread that touches SQLite: writes stay in order
        self.wake = Event()
        self.write_wake = Event()
        self._ops: list = []  # joins/leaves waiting for the database thread
        self._adds: list[tuple[str, str, AsyncResult]] = []  # registrations waiting for it
        self.stopping = Event()
        self.conns: Counter[str] = Counter()
        self.tcp_stats: Counter[str] = Counter()
        self.storage_failures = 0
        # push latencies since the last stats line: additions, removals
        self.fanout: deque[float] = deque(maxlen=100_000)
        self.fanout_del: deque[float] = deque(maxlen=100_000)
        self.send_errors = 0
        self._last_storage_log = -math.inf
        self.tcp_server: StreamServer | None = None
        self.udp_server: _UdpServer | None = None
        self._raw_udp: socket.socket | None = None
        self._greenlets: list[gevent.Greenlet] = []
        self._dispatch: dict[type, Callable] = {
            wire.Connect: self._on_connect,
            wire.ReferenceRequest: self._on_reference,
            wire.ChannelSwitch: self._on_channel_switch,
            wire.InfoRequest: self._on_info,
        }

    # ------------------------------------------------------------ start / stop

    def start(self, tcp: gsocket.socket, udp: gsocket.socket, rows: list) -> None:
        loaded = self.directory.load(rows, self.now())
        if loaded:
            log.info("loaded %d clients from the database; each gets a fresh deadline", loaded)
        self.tcp_server = StreamServer(tcp, self._handle_tcp,
                                       spawn=Pool(self.args.max_connections))
        self.udp_server = _UdpServer(udp, self._handle_udp, spawn=None)
        self.tcp_server.start()
        self.udp_server.start()
        # the plain non-blocking socket under gevent's wrapper: the wrapper's sendto would wait
        # in the hub when the send buffer is full; this one raises BlockingIOError instead
        self._raw_udp = getattr(udp, "_sock", udp)
        self._greenlets = [gevent.spawn(self._flush_loop), gevent.spawn(self._tick_loop),
                           gevent.spawn(self._write_loop)]
        if self.args.stats_interval > 0:
            self._greenlets.append(gevent.spawn(self._stats_loop))
        self.wake.set()  # deletions of unusable rows found while loading

    def stop(self) -> None:
        """Stop serving; write what is pending; close the database."""
        if self.tcp_server is not None:
            self.tcp_server.stop(timeout=1)
        if self.udp_server is not None:
            self.udp_server.stop()
        gevent.killall(self._greenlets, timeout=1)
        ops = self._ops + self.directory.take_store_ops()
        if ops:
            self.pool.apply(self._apply_ops, (ops,))
        self.pool.apply(self._close_store)
        self.pool.kill()

    # ------------------------------------------------------------ UDP (hot path)

    def _handle_udp(self, data: bytes, addr: tuple) -> None:
        d = self.directory
        try:
            reply = d.on_datagram(data, addr, self.now())
        except Exception:  # our bug, not the peer's: loud, but the loop goes on
            log.exception("internal error handling a datagram from %s", addr[0])
            return
        if reply is not None:
            try:
                self._raw_udp.sendto(reply, addr)  # type: ignore[union-attr]
            except OSError:
                self.send_errors += 1
        if d.has_work():
            self.wake.set()

    def _flush_loop(self) -> None:
        """Send coalesced REF_ADD/REF_DEL: whatever piles up while sending goes next round."""
        d = self.directory
        next_push = 0.0
        while True:
            self.wake.wait()
            # Coalesce under load: after a push that took D seconds, the next starts no sooner
            # than D/2 (at least MIN_, at most MAX_COALESCE) after it ended; changes arriving
            # meanwhile travel together. After a quiet spell a lone join goes out at once.
            rest = next_push - time.monotonic()
            if rest > 0:
                gevent.sleep(rest)
            self.wake.clear()
            started = time.monotonic()
            ops = d.take_store_ops()
            d.batch_times, d.batch_del_times = [], []
            outgoing = d.iter_outgoing(self.now())
            sent = self._push(outgoing)
            d.stats.sent += sent
            if ops:  # after the push: the database thread competes for the GIL
                self._ops.extend(ops)
                self.write_wake.set()
            ended = time.monotonic()
            next_push = ended + min(max((ended - started) / 2, MIN_COALESCE), MAX_COALESCE)
            if d.has_work():  # removals held back, or work that came meanwhile: next round
                self.wake.set()
            # from each change to the last datagram of its push handed to the kernel (for an
            # addition an upper bound: the REF_ADDs go out before the REF_DELs)
            self.fanout.extend(ended - t for t in d.batch_times)
            self.fanout_del.extend(ended - t for t in d.batch_del_times)

    def _push(self, outgoing: Iterator[tuple[tuple, bytes]]) -> int:
        """One ``sendto`` a datagram, here in the loop. Every SEND_YIELD_EVERY datagrams the
        PINGs waiting are handled inline (none is lost, liveness stays exact); registrations
        and the rest run every HUB_YIELD_EVERY datagrams only: a push is the latency everyone
        waits for, a registration only its own (but a joiner must not wait long either)."""
        sent = 0
        sendto = self._raw_udp.sendto  # type: ignore[union-attr]
        for addr, data in outgoing:
            try:
                sendto(data, addr)  # the hot loop: no method call unless it fails
            except OSError:
                self._send(data, addr)
            sent += 1
            if sent % SEND_YIELD_EVERY == 0:
                if sent % HUB_YIELD_EVERY == 0:
                    gevent.sleep(0)  # everyone else; new changes wait for the next round
                else:
                    self._poll_udp()
        return sent

    def _poll_udp(self, limit: int = 1000) -> None:
        """Handle the datagrams waiting in the UDP socket, as the UDP server would."""
        recvfrom = self._raw_udp.recvfrom  # type: ignore[union-attr]
        for _ in range(limit):
            try:
                data, addr = recvfrom(8192)
            except BlockingIOError:
                return
            except OSError:  # e.g. an ICMP error reported on some platforms: not fatal
                continue
            self._handle_udp(data, addr)

    def _send(self, data: bytes, addr: tuple) -> None:
        raw = self._raw_udp
        assert raw is not None
        try:
            raw.sendto(data, addr)
        except BlockingIOError:
            try:  # send buffer full: wait for room (only this greenlet waits)
                gsocket.wait_write(raw.fileno(), timeout=0.5)
                raw.sendto(data, addr)
            except (OSError, gevent.Timeout):
                self.send_errors += 1
        except (OSError, ValueError, TypeError):
            self.send_errors += 1

    def _tick_loop(self) -> None:
        tick = min(0.25, self.args.ping_interval / 8)
        while True:
            gevent.sleep(tick)
            self.directory.expire(self.now())
            if self.directory.has_work():
                self.wake.set()

    # ------------------------------------------------------------ storage

    def _write_loop(self) -> None:
        """Hands everything waiting (new registrations, joins, leaves) to the database thread
        as one transaction (group commit); the flusher and the UDP loop never wait for it."""
        while True:
            self.write_wake.wait()
            self.write_wake.clear()
            ops, self._ops = self._ops, []
            adds, self._adds = self._adds, []
            if not (ops or adds):
                continue
            rows = [(nick, kw) for nick, kw, _ in adds]
            exc = self.pool.apply(self._write, (rows, ops))
            for _, _, done in adds:
                done.set(exc)

    # These run in the database thread. They never raise: gevent would print a traceback.

    def _write(self, rows: list[tuple[str, str]], ops: list) -> Exception | None:
        try:
            self.store.write(rows, ops)
        except StorageError as exc:
            if ops:
                self._storage_failed(f"{len(ops)} join/leave writes lost: {exc}")
            return exc
        except Exception as exc:  # our bug: loud, but registrations only get an ERROR
            log.exception("writing %d registrations, %d joins/leaves failed", len(rows), len(ops))
            return exc
        return None

    def _apply_ops(self, ops: list) -> None:
        try:
            self.store.apply(ops)
        except StorageError as exc:
            self._storage_failed(f"{len(ops)} join/leave writes lost: {exc}")
        except Exception:
            log.exception("writing %d joins/leaves failed", len(ops))

    def _close_store(self) -> None:
        try:
            self.store.close()
        except Exception:  # closing is best effort; the data is committed already
            log.debug("closing the database failed", exc_info=True)

    def _storage_failed(self, text: str) -> None:
        self.storage_failures += 1
        now = time.monotonic()
        if now - self._last_storage_log > 5:  # once per 5 s, not once per failure
            self._last_storage_log = now
            log.warning("storage: %s", text)

    # ------------------------------------------------------------ TCP

    def _handle_tcp(self, sock: gsocket.socket, addr: tuple) -> None:
        ip = addr[0]
        self.tcp_stats["connections"] += 1
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self.conns[ip] >= self.args.max_conns_per_ip:
            self.tcp_stats["too_many"] += 1
            self._reply_error(sock, "TOO_MANY_CONNECTIONS",
                              f"at most {self.args.max_conns_per_ip} connections per address")
            sock.close()
            return
        self.conns[ip] += 1
        timeout = gevent.Timeout(self.args.register_timeout)
        timeout.start()
        try:
            self._session(sock, ip)
        except gevent.Timeout as t:
            if t is not timeout:
                raise
            self.tcp_stats["timeouts"] += 1
            self._reply_error(sock, "TIMEOUT",
                              f"registration not finished within {self.args.register_timeout:g} s")
        except OSError:
            pass  # the peer went away
        finally:
            timeout.close()
            self.conns[ip] -= 1
            if self.conns[ip] <= 0:
                del self.conns[ip]
            sock.close()

    def _reply_error(self, sock: gsocket.socket, code: str, text: str) -> None:
        self.tcp_stats["errors"] += 1
        try:
            with gevent.Timeout(1, False):
                sock.sendall(wire.encode_line(wire.Error(code, text)))
        except OSError:
            pass

    def _session(self, sock: gsocket.socket, ip: str) -> None:
        state: dict = {"ip": ip, "reg": None}
        buf = b""
        errors = 0
        limit = wire.MAX_REQUEST_LINE
        while True:
            while b"\n" not in buf:
                if len(buf) >= limit:
                    self._reply_error(sock, "LINE_TOO_LONG", f"lines are at most {limit} bytes")
                    return
                data = sock.recv(4096)
                if not data:
                    return
                buf += data
            line, _, buf = buf.partition(b"\n")
            try:
                if len(line) >= limit:
                    raise ProtocolError("LINE_TOO_LONG", f"lines are at most {limit} bytes")
                msg = wire.decode_request(line + b"\n")
                reply = self._dispatch[type(msg)](msg, state)
            except _Close:
                return
            except ProtocolError as exc:  # Refused is one too
                self._reply_error(sock, exc.code, exc.text)
                log.debug("tcp %s: %s %s", ip, exc.code, exc.text)
                errors += 1
                if exc.code in CLOSING_ERRORS or errors >= MAX_ERRORS_PER_CONNECTION:
                    return
                continue
            sock.sendall(reply)

    def _on_connect(self, msg: wire.Connect, state: dict) -> bytes:
        if state["reg"] is not None:
            raise Refused("OUT_OF_ORDER", "already registered on this connection")
        now = self.now()
        if not self.limiter.allow(state["ip"], now):
            self.tcp_stats["throttled"] += 1
            raise Refused("THROTTLED", "too many registrations from your address; slow down")
        reg, reclaimed = self.directory.register(msg.nickname, msg.keyword, now)
        if not reclaimed:
            done = AsyncResult()
            self._adds.append((reg.nickname, reg.keyword, done))
            self.write_wake.set()
            exc = done.get()
            if exc is not None:
                self.directory.cancel(reg)
                self._storage_failed(f"registration of {reg.nickname} refused: {exc}")
                raise Refused("STORAGE", "the directory cannot store registrations right now; "
                                         "try again later") from None
            log.debug("registered %s from %s", reg.nickname, state["ip"])
        else:
            log.info("reclaimed %s from %s", reg.nickname, state["ip"])
        state["reg"] = reg
        return wire.encode_line(wire.Keyword(reg.keyword))

    def _on_reference(self, msg: wire.ReferenceRequest, state: dict) -> bytes:
        reg: Registration | None = state["reg"]
        if reg is None:
            raise Refused("OUT_OF_ORDER", "CONNECT first")
        return self.directory.reference_line(reg, self.now())

    def _on_channel_switch(self, msg: wire.ChannelSwitch, state: dict) -> bytes:
        if state["reg"] is None:
            raise Refused("OUT_OF_ORDER", "CONNECT first")
        raise _Close()

    def _on_info(self, msg: wire.InfoRequest, state: dict) -> bytes:
        reg: Registration | None = state["reg"]
        nickname = reg.nickname if reg is not None else None
        return wire.encode_line(wire.Info(self.args.ping_interval, nickname))

    # ------------------------------------------------------------ stats

    def stats_line(self) -> str:
        d = self.directory
        s = d.stats
        return (
            f"stats: online={d.online} registered={len(d)} datagrams={s.datagrams} "
            f"pings={s.pings} dropped={s.dropped} (bad={s.bad_datagrams} "
            f"unknown_keyword={s.unknown_keyword} nick_mismatch={s.nick_mismatch}) "
            f"unknown_replies={s.unknown_replies} pongs={s.pongs} sent={s.sent} "
            f"send_errors={self.send_errors} joins={s.joins} leaves={s.leaves} "
            f"timeouts={s.timeouts} squatters={s.squatters} registrations={s.registrations} "
            f"reclaims={s.reclaims} tcp_connections={self.tcp_stats['connections']} "
            f"tcp_errors={self.tcp_stats['errors']} storage_failures={self.storage_failures}"
            f" log_lines_dropped={_DroppingQueueHandler.dropped}"
            f"{self._fanout_summary()}"
        )

    def _fanout_summary(self) -> str:
        """Push latency percentiles since the last stats line (then forgotten): additions
        (``pushes``, ``push_*``) and removals (``dels``, ``del_*``: spread over pushes under
        churn, see DEL_SPREAD)."""
        out = ""
        for count, name, record in (("pushes", "push", self.fanout),
                                    ("dels", "del", self.fanout_del)):
            if not record:
                continue
            values = sorted(record)
            record.clear()
            p50 = values[len(values) // 2]
            p99 = values[min(len(values) - 1, int(len(values) * 0.99))]
            out += (f" {count}={len(values)} {name}_p50_ms={p50 * 1e3:.1f} "
                    f"{name}_p99_ms={p99 * 1e3:.1f} {name}_max_ms={values[-1] * 1e3:.1f}")
        return out

    def _stats_loop(self) -> None:
        while True:
            gevent.sleep(self.args.stats_interval)
            log.info("%s", self.stats_line())


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    listener = setup_logging(args.log_level)
    # OPENLCHAT_PROFILE=file: cProfile the whole run and write its stats there (pstats
    # format); "{pid}" in the name becomes the process id (a benchmark starts several servers)
    profile_to = os.environ.get("OPENLCHAT_PROFILE", "").replace("{pid}", str(os.getpid()))
    profiler = None
    if profile_to:
        import cProfile

        profiler = cProfile.Profile()
        profiler.enable()
    try:
        return run(args)
    finally:
        if profiler is not None:
            profiler.disable()
            profiler.dump_stats(profile_to)
        listener.stop()  # writes out what is still queued


class _DroppingQueueHandler(logging.handlers.QueueHandler):
    """Never blocks: when the writer thread is behind (stderr is a full pipe), drop."""

    dropped = 0

    def prepare(self, record: logging.LogRecord) -> logging.LogRecord:
        # the base class formats the message and copies the record here, in the serving
        # thread; the writer thread's formatter does that anyway (our arguments are plain
        # strings and numbers, safe to format later)
        return record

    def enqueue(self, record: logging.LogRecord) -> None:
        try:
            self.queue.put_nowait(record)
        except queue.Full:
            _DroppingQueueHandler.dropped += 1


def setup_logging(level: str) -> logging.handlers.QueueListener:
    """Log lines are written by a thread: a slow stderr must never stall the UDP loop (a
    blocked write in the hub would stop every greenlet)."""
    out = logging.StreamHandler(sys.stderr)
    out.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    records: queue.Queue[logging.LogRecord] = queue.Queue(maxsize=10_000)
    logging.basicConfig(level=level, handlers=[_DroppingQueueHandler(records)], force=True)
    listener = logging.handlers.QueueListener(records, out)
    listener.start()
    return listener


def run(args: argparse.Namespace) -> int:
    store = Store(args.db, busy_timeout=args.db_timeout)
    try:
        store.claim()
        rows = store.open()
    except StorageError as exc:
        print(f"server.py: cannot use database {args.db}: {exc}", file=sys.stderr)
        return 2
    store.close()  # the database thread opens its own connection
    try:
        tcp, udp, port = bind_sockets(args.host, args.port)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        print(f"server.py: cannot listen on {args.host}:{args.port}: {reason}", file=sys.stderr)
        return 2
    server = DirectoryServer(args, store)
    server.start(tcp, udp, rows)
    log.info("listening on %s:%d (tcp+udp), db=%s, ping_interval=%g; %s",
             args.host, port, args.db, args.ping_interval, friends_line(port, args.host))

    def on_stop() -> None:
        server.stopping.set()

    handlers: list[tuple[int, Callable[[], None]]] = [(signal.SIGTERM, on_stop),
                                                      (signal.SIGINT, on_stop)]
    if hasattr(signal, "SIGUSR1"):  # not on Windows
        handlers.append((signal.SIGUSR1, lambda: log.info("%s", server.stats_line())))
    for signum, handler in handlers:
        try:
            gevent.signal_handler(signum, handler)
        except (AttributeError, NotImplementedError, OSError, ValueError):
            # where gevent cannot watch signals, Ctrl+C still interrupts the wait below
            log.debug("cannot watch signal %s", signum)
    with contextlib.suppress(KeyboardInterrupt):
        server.stopping.wait()
    log.info("stopping: %s", server.stats_line())
    server.stop()
    log.info("stopped; directory saved in %s", args.db)
    return 0


if __name__ == "__main__":
    sys.exit(main())
