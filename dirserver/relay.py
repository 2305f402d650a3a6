"""The relay's IO edge (``server.py --relay``): relay requests and relayed data from the UDP
side go to ``models.relay.RelayService``; what it decides is sent from the directory's UDP
socket. Without ``--relay`` the service still answers requests ("RELAY- target off"), so a
client can tell its user plainly that this server does not relay."""

from __future__ import annotations

import argparse
import logging
from collections.abc import Callable

import gevent

from models import relay_wire as rw
from models.directory import Directory
from models.relay import RelayLimits, RelayService

log = logging.getLogger("openlchat.server")

EXPIRE_EVERY = 1.0


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--relay", action="store_true",
                   help="relay opaque datagrams between two registered clients that both "
                        "asked for it and have no direct path (off: a directory only)")
    p.add_argument("--relay-rate", type=int, default=1 << 20, metavar="BYTES",
                   help="bytes per second each client may have relayed")
    p.add_argument("--relay-pairs", type=int, default=64,
                   help="relayed pairs of clients at most, in all")


def limits_from(args: argparse.Namespace) -> RelayLimits:
    rate = max(1, args.relay_rate)
    return RelayLimits(enabled=bool(args.relay), rate=float(rate),
                       burst=float(max(rate, rw.MAX_DATA)), max_pairs=max(0, args.relay_pairs))


class RelayEdge:
    def __init__(self, directory: Directory, limits: RelayLimits,
                 now: Callable[[], float]) -> None:
        self.now = now
        self.service = RelayService(by_keyword=directory.by_keyword.get,
                                    by_nickname=directory.by_key.get, limits=limits)
        self.send_errors = 0

    def wants(self, data: bytes) -> bool:
        """Relayed data or a relay request (cheap: looked at for every datagram)."""
        return bool(data) and (data[0] == rw.DATA
                               or data.find(b" RELAY", 0, 64) >= 0 and rw.is_relay(data))

    def handle(self, data: bytes, addr: tuple, sendto: Callable[[bytes, tuple], object]) -> None:
        now = self.now()
        if data[0] == rw.DATA:     # the hot path
            out = self.service.forward(data, addr, now)
            if out is not None:
                try:
                    sendto(data, out.addr)
                except OSError:     # a full send buffer: relayed data is best effort
                    self.send_errors += 1
            return
        for o in self.service.on_request(data, addr, now):
            try:
                sendto(o.data, o.addr)
            except OSError:     # a full send buffer: relayed data is best effort
                self.send_errors += 1

    def start(self) -> gevent.Greenlet:
        return gevent.spawn(self._expire_loop)

    def _expire_loop(self) -> None:
        while True:
            gevent.sleep(EXPIRE_EVERY)
            self.service.expire(self.now())

    def stats(self) -> str:
        s = self.service.stats
        dropped = sum(s[k] for k in ("dropped_unknown", "dropped_source", "dropped_cap",
                                     "dropped_gone"))
        return (f" relay_pairs={self.service.pairs} relay_forwarded={self.service.forwarded} "
                f"relay_bytes={self.service.bytes} relay_dropped={dropped}")
