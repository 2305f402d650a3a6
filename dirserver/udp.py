"""The UDP edge: PING / QUIT in (decoded and answered by the directory), coalesced
REF_ADD / REF_DEL pushes out. The hot path; it never waits for the database."""

from __future__ import annotations

import contextlib
import errno
import logging
import socket
import time
from collections import deque
from collections.abc import Callable, Iterator

import gevent
from gevent import socket as gsocket
from gevent.event import Event
from gevent.server import DatagramServer

from dirserver.reach import ReachSide
from dirserver.relay import RelayEdge
from models.directory import Directory
from models.registration import StoreOp

log = logging.getLogger("openlchat.server")

SEND_YIELD_EVERY = 250  # datagrams sent (~1 ms) between handling the PINGs waiting
HUB_YIELD_EVERY = 1000  # datagrams sent (~5 ms) between chances for everything else to run
# UDP receive buffer asked for (the kernel caps it at net.core.rmem_max unless we may force
# it): 32 MiB holds ~0.4 s of PINGs at 100,000/s while the process is descheduled; kernel
# memory, used only while a backlog exists
RCVBUF = 32 << 20
MAX_COALESCE = 0.010  # seconds a push may be held back, under load only
MIN_COALESCE = 0.003  # changes within this long after a push travel together in the next
INTERNAL_ERROR_LOG_EVERY = 10.0  # seconds: our bug, but a datagram flood must not flood the log


class UdpServer(DatagramServer):
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
        if family == socket.AF_INET6:
            _v6_only(tcp)
        try:
            tcp.bind((host, port))
            tcp.listen(1024)
        except OSError:
            tcp.close()
            raise
        actual = tcp.getsockname()[1]
        udp = gsocket.socket(family, socket.SOCK_DGRAM)
        if family == socket.AF_INET6:
            _v6_only(udp)
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


def _v6_only(sock: gsocket.socket) -> None:
    """An IPv6 server serves IPv6 clients only. A dual-stack socket would list IPv4 clients as
    ``::ffff:a.b.c.d``, an address their IPv4 peers cannot send to: every message between them
    would fail silently. Refusing IPv4 on ``::`` makes that a clear "cannot reach" instead."""
    with contextlib.suppress(OSError, AttributeError):
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)


class UdpSide:
    """Receives datagrams, runs the expiry tick, and pushes what the directory has to say.

    ``on_store_ops`` receives the joins/leaves to write after each push."""

    def __init__(self, directory: Directory, now: Callable[[], float], ping_interval: float,
                 on_store_ops: Callable[[list[StoreOp]], None]) -> None:
        self.directory = directory
        self.now = now
        self.ping_interval = ping_interval
        self.on_store_ops = on_store_ops
        self.wake = Event()
        self.send_errors = 0
        # push latencies since the last stats line: additions, removals
        self.fanout: deque[float] = deque(maxlen=100_000)
        self.fanout_del: deque[float] = deque(maxlen=100_000)
        self.server: UdpServer | None = None
        self.relay: RelayEdge | None = None   # the relay extension (dirserver/relay.py)
        self._raw: socket.socket | None = None
        self._last_error_log = -INTERNAL_ERROR_LOG_EVERY
        self.reach: ReachSide | None = None  # WHERE?/PROBE?/NUDGE (dirserver/reach.py)

    def start(self, udp: gsocket.socket) -> list[gevent.Greenlet]:
        self.server = UdpServer(udp, self.handle, spawn=None)
        self.server.start()
        # the plain non-blocking socket under gevent's wrapper: the wrapper's sendto would wait
        # in the hub when the send buffer is full; this one raises BlockingIOError instead
        self._raw = getattr(udp, "_sock", udp)
        self.wake.set()  # deletions of unusable rows found while loading
        return [gevent.spawn(self._flush_loop), gevent.spawn(self._tick_loop)]

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()

    def handle(self, data: bytes, addr: tuple) -> None:
        d = self.directory
        relay = self.relay
        if relay is not None and relay.wants(data):
            relay.handle(data, addr, self._raw.sendto)  # type: ignore[union-attr]
            return
        reach = self.reach
        try:
            if reach is not None and reach.consume(data, addr):
                return
            reply = d.on_datagram(data, addr, self.now())
            if reach is not None and reach.service.watching:  # after a WHERE?: PINGs may move
                reach.after_ping(data, addr)
        except Exception:  # our bug, not the peer's: loud, but the loop goes on
            now = time.monotonic()
            if now - self._last_error_log >= INTERNAL_ERROR_LOG_EVERY:
                self._last_error_log = now
                log.exception("internal error handling a datagram from %s (logged at most "
                              "once per %g s)", addr[0], INTERNAL_ERROR_LOG_EVERY)
            return
        if reply is not None:
            try:
                self._raw.sendto(reply, addr)  # type: ignore[union-attr]
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
            d.push.batch_times, d.push.batch_del_times = [], []
            sent = self._push(d.iter_outgoing(self.now()))
            d.stats.sent += sent
            if ops:  # after the push: the database thread competes for the GIL
                self.on_store_ops(ops)
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
        sendto = self._raw.sendto  # type: ignore[union-attr]
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
                    self._poll(limit=1000)
        return sent

    def _poll(self, limit: int) -> None:
        """Handle the datagrams waiting in the UDP socket, as the UDP server would."""
        recvfrom = self._raw.recvfrom  # type: ignore[union-attr]
        for _ in range(limit):
            try:
                data, addr = recvfrom(8192)
            except BlockingIOError:
                return
            except OSError:  # e.g. an ICMP error reported on some platforms: not fatal
                continue
            self.handle(data, addr)

    def _send(self, data: bytes, addr: tuple) -> None:
        raw = self._raw
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
        tick = min(0.25, self.ping_interval / 8)
        while True:
            gevent.sleep(tick)
            self.directory.expire(self.now())
            if self.directory.has_work():
                self.wake.set()

    def fanout_summary(self) -> str:
        """Push latency percentiles since the last call (then forgotten): additions
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
