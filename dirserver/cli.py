"""Start-up and command line of the directory server: arguments, logging, the database
check, the sockets, signals, and an orderly stop. ``server.py`` calls ``main``."""

from __future__ import annotations

import argparse
import contextlib
import logging
import logging.handlers
import math
import os
import queue
import signal
import sys
from collections.abc import Callable
from pathlib import Path

import gevent

from client.reach.discovery import DEFAULT_PORT as DISCOVERY_PORT
from dirserver import relay
from dirserver.app import DirectoryServer
from dirserver.udp import bind_sockets
from models import directory_wire as wire
from models.netaddrs import friends_line
from models.store import Leaves, StorageError, Store

log = logging.getLogger("openlchat.server")


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
    p.add_argument("--port", type=_port, default=wire.DEFAULT_PORT,
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
    p.add_argument("--log-window", type=_positive, default=10.0,
                   help="seconds: per-event lines anyone can cause (join, leave, freed, ...) "
                        "beyond 20 in this long are summarised in one line")
    p.add_argument("--beacon", action=argparse.BooleanOptionalAction,
                   default=not os.environ.get("OPENLCHAT_NO_LAN"),
                   help="announce this server on the LAN so clients find it with no --server "
                        "(off when $OPENLCHAT_NO_LAN is set)")
    p.add_argument("--label", default=None,
                   help="the name the LAN announcement carries (None: the host name)")
    p.add_argument("--beacon-port", type=_port, default=DISCOVERY_PORT,
                   help="UDP port of LAN discovery (default: %(default)s)")
    relay.add_arguments(p)
    p.add_argument("--log-level", default="INFO",
                   choices=["DEBUG", "INFO", "WARNING", "ERROR"], help="logging level")
    return p


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
    leaves = Leaves(args.db)
    try:
        store.claim()
        rows = store.open()
        gone = set(leaves.open())
    except StorageError as exc:
        print(f"server.py: cannot use database {args.db}: {exc}", file=sys.stderr)
        return 2
    store.close()  # the database thread opens its own connection
    if gone:  # removed by the previous run, its deletes unwritten: neither loaded nor listed
        rows = [r for r in rows if (r[0], r[1]) not in gone]
        log.info("%d rows removed by the previous run are deleted now", len(gone))
    try:
        tcp, udp, port = bind_sockets(args.host, args.port)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        print(f"server.py: cannot listen on {args.host}:{args.port}: {reason}", file=sys.stderr)
        return 2
    server = DirectoryServer(args, store, leaves=leaves,
                             pending=[("del", nick, kw) for nick, kw in sorted(gone)])
    server.dropped_log_lines = lambda: _DroppingQueueHandler.dropped
    server.start(tcp, udp, rows)
    shown = f"[{args.host}]" if ":" in args.host else args.host
    log.info("listening on %s:%d (tcp+udp), db=%s, ping_interval=%g; %s",
             shown, port, args.db, args.ping_interval, friends_line(port, args.host))

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
