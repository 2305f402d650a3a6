"""``DirectoryServer``: the directory (pure logic) wired to its three edges -- the TCP
registrar, the UDP side and the database thread -- plus the stats line."""

from __future__ import annotations

import argparse
import logging
import socket
import time
from collections.abc import Callable, Iterable

import gevent
from gevent import socket as gsocket
from gevent.event import Event
from gevent.pool import Pool
from gevent.server import StreamServer

from dirserver import relay
from dirserver.reach import Beacon, ReachSide
from dirserver.relay import RelayEdge
from dirserver.storage import StorageWriter
from dirserver.tcp import Registrar
from dirserver.udp import UdpSide
from models.directory import Directory
from models.registration import StoreOp
from models.store import Leaves, Store

log = logging.getLogger("openlchat.server")

# under churn a batch of REF_DELs reaches 1/DEL_SPREAD of the clients per push, after the
# REF_ADDs: a push costs each about one datagram, never two (models.directory_push)
DEL_SPREAD = 8


class DirectoryServer:
    def __init__(self, args: argparse.Namespace, store: Store, clock: Callable[[], float]
                 = time.monotonic, leaves: Leaves | None = None,
                 pending: Iterable[StoreOp] = ()) -> None:
        self.args = args
        self.now = clock
        self.directory = Directory(
            ping_interval=args.ping_interval,
            unknown_rate=args.unknown_rate,
            unknown_burst=max(args.unknown_rate, 1.0),
            del_spread=DEL_SPREAD,
            log_window=args.log_window,
        )
        self.storage = StorageWriter(store, leaves, pending)
        self.registrar = Registrar(args, self.directory, self.storage, clock)
        self.udp = UdpSide(self.directory, clock, args.ping_interval, self.storage.add_ops)
        self.udp.relay = self.relay = RelayEdge(self.directory, relay.limits_from(args), clock)
        self.stopping = Event()
        self.tcp_server: StreamServer | None = None
        self._greenlets: list[gevent.Greenlet] = []
        self._closers: list[Callable[[], None]] = []
        self.dropped_log_lines: Callable[[], int] = lambda: 0

    def start(self, tcp: gsocket.socket, udp: gsocket.socket, rows: list) -> None:
        loaded = self.directory.load(rows, self.now())
        if loaded:
            log.info("loaded %d clients from the database; each gets a fresh deadline", loaded)
        self.tcp_server = StreamServer(tcp, self.registrar.handle,
                                       spawn=Pool(self.args.max_connections))
        self.tcp_server.start()
        self._greenlets = [*self.udp.start(udp), *self.storage.start(),
                           gevent.spawn(self._housekeeping), self.relay.start()]
        if self.relay.service.limits.enabled:
            log.info("relay on: %d bytes/s per client, %d pairs at most",
                     self.relay.service.limits.rate, self.relay.service.limits.max_pairs)
        self._greenlets += self._start_reach(udp)
        if self.args.stats_interval > 0:
            self._greenlets.append(gevent.spawn(self._stats_loop))

    def _start_reach(self, udp: gsocket.socket) -> list[gevent.Greenlet]:
        """The reachability extension (WHERE?/PROBE?/NUDGE) and the LAN beacon (issue 10)."""
        host, port = udp.getsockname()[:2]
        reach = ReachSide(self.directory, self.now, host)
        reach.send = self.udp._send
        try:
            reach.open_probe_socket()
        except OSError as exc:
            log.warning("no probe port (PROBE? goes unanswered): %s", exc)
        self.udp.reach = reach
        self._closers.append(reach.close)
        if not self.args.beacon:
            return []
        if ":" in host:  # the beacon is IPv4 (clients would try the server over IPv4)
            log.info("no LAN beacon: it is IPv4 and this server listens on IPv6 only")
            return []
        try:
            beacon = Beacon(port, self.args.label or socket.gethostname(),
                            beacon_port=self.args.beacon_port)
        except OSError as exc:
            log.warning("LAN beacon unavailable: %s", exc)
            return []
        self._closers.append(beacon.close)
        log.info("announcing on the LAN (port %d); probe port %d", self.args.beacon_port,
                 reach.probe_port)
        return beacon.start()

    def stop(self) -> None:
        """Stop serving; write what is pending; close the database."""
        if self.tcp_server is not None:
            self.tcp_server.stop(timeout=1)
        self.udp.stop()
        gevent.killall(self._greenlets, timeout=1)
        for close in self._closers:
            close()
        self.storage.stop(self.directory.take_store_ops())

    def _housekeeping(self) -> None:
        while True:
            gevent.sleep(1.0)
            self.registrar.flush_logs(self.now())

    def stats_line(self) -> str:
        d = self.directory
        s = d.stats
        tcp = self.registrar.stats
        return (
            f"stats: online={d.online} registered={len(d)} datagrams={s.datagrams} "
            f"pings={s.pings} dropped={s.dropped} (bad={s.bad_datagrams} "
            f"unknown_keyword={s.unknown_keyword} nick_mismatch={s.nick_mismatch} "
            f"bad_mac={s.bad_mac}) "
            f"unknown_replies={s.unknown_replies} pongs={s.pongs} sent={s.sent} "
            f"send_errors={self.udp.send_errors} joins={s.joins} leaves={s.leaves} "
            f"timeouts={s.timeouts} squatters={s.squatters} registrations={s.registrations} "
            f"reclaims={s.reclaims} tcp_connections={tcp['connections']} "
            f"tcp_errors={tcp['errors']} storage_failures={self.storage.failures} "
            f"storage_pending={self.storage.pending}"
            f" log_lines_dropped={self.dropped_log_lines()}"
            f"{self.udp.fanout_summary()}{self.relay.stats()}"
        )

    def _stats_loop(self) -> None:
        while True:
            gevent.sleep(self.args.stats_interval)
            log.info("%s", self.stats_line())
