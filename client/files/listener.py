"""The flood-guarded TCP listener: accepts connections and reads their preambles on one thread.

A connection that has not sent its 22 bytes costs a table entry and no thread. The table is
bounded per source host and in all; when it is full the oldest entry makes room, so idle
connections cannot lock a real peer out (issue 6). Limits: PROTOCOL.md section 8.
"""

from __future__ import annotations

import contextlib
import logging
import select
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from client.files import wire
from client.files.state import Settings
from models.errors import ProtocolError

log = logging.getLogger(__name__)

# (connection, address, role, token): hand a connection to its transfer; never blocks
Handoff = Callable[[socket.socket, tuple, bytes, bytes], None]


def open_listener(host: str, port: int) -> socket.socket | None:
    """A non-blocking listening socket on ``port``, else on an ephemeral one; None if neither."""
    # create_server binds IPv4 unless told otherwise; an IPv6 engine listens on "::"
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    for p in dict.fromkeys((port, 0)):
        try:
            lsock = socket.create_server((host, p), family=family, backlog=128,
                                         reuse_port=False)
        except OSError as exc:
            log.warning("file listener: cannot bind %s:%s (%s)", host, p, exc)
            continue
        lsock.setblocking(False)     # the accept loop takes a batch at a time
        return lsock
    return None


@dataclass(eq=False)
class _Pending:
    """An accepted connection whose preamble is not complete yet."""
    conn: socket.socket
    addr: tuple
    since: float
    buf: bytearray = field(default_factory=bytearray)


class Listener:
    """Run ``run()`` on a thread of its own; ``close()`` from any thread ends it."""

    def __init__(self, lsock: socket.socket, settings: Settings, *, handoff: Handoff,
                 awaits: Callable[[], bool], peers: Callable[[], set[str]],
                 address_of: Callable[[str], tuple[str, int] | None]) -> None:
        self._lsock = lsock
        self.settings = settings
        self._handoff = handoff
        self._awaits = awaits
        self._peers = peers
        self._address_of = address_of
        self._wake = socket.socketpair()    # select() wake-up that works on Windows too
        self._closed = threading.Event()
        self._hosts: set[str] = set()
        self._hosts_at = -1e9
        self._refused = 0
        self._refused_logged = -1e9

    @property
    def port(self) -> int:
        return self._lsock.getsockname()[1]

    def close(self) -> None:
        self._closed.set()
        with contextlib.suppress(OSError):
            self._wake[1].send(b"x")    # the listener thread closes its sockets

    def run(self) -> None:
        lsock, wake = self._lsock, self._wake
        limit = self.settings
        pending: list[_Pending] = []        # oldest first
        try:
            while not self._closed.is_set():
                now = time.monotonic()
                for p in [p for p in pending if now - p.since >= limit.handshake_timeout]:
                    pending.remove(p)
                    self.refuse(p.conn, p.addr, "no preamble in time", now)
                timeout = (max(0.0, pending[0].since + limit.handshake_timeout - now)
                           if pending else None)
                try:
                    ready, _, _ = select.select([lsock, wake[0], *(p.conn for p in pending)],
                                                [], [], timeout)
                except (OSError, ValueError):   # a closed socket in the table: forget it
                    pending[:] = [p for p in pending if p.conn.fileno() != -1]
                    time.sleep(0.05)
                    continue
                if wake[0] in ready:
                    continue                # close() woke us: the loop condition ends it
                try:
                    for p in [p for p in pending if p.conn in ready]:
                        if self._read_preamble(p):
                            pending.remove(p)
                    if lsock in ready:
                        self._accept_some(pending)
                except Exception:   # e.g. no thread to spare: the listener itself must live on
                    log.exception("file listener: unexpected error")
                    time.sleep(0.05)
        finally:
            for p in pending:
                p.conn.close()
            for s in (lsock, *wake):
                s.close()

    def _accept_some(self, pending: list[_Pending]) -> None:
        """Accept what is queued (a batch, so a flood does not fill the kernel's queue and
        delay a real peer's SYN by a retransmission)."""
        for _ in range(self.settings.accept_batch):
            try:
                conn, addr = self._lsock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:   # e.g. EMFILE: do not spin, do not flood the log
                self.refuse(None, ("?",), f"accept failed: {exc}", time.monotonic())
                time.sleep(0.05)
                return
            self._admit(pending, conn, addr, time.monotonic())

    def _admit(self, pending: list[_Pending], conn: socket.socket, addr: tuple,
               now: float) -> None:
        """Put a new connection in the pending table, evicting to make room if needed."""
        if not self._awaits():
            self.refuse(conn, addr, "no transfer waiting for a connection", now)
            return
        host = addr[0]
        same = [p for p in pending if p.addr[0] == host]
        victim = None
        if len(same) >= self.settings.max_pending_per_host:
            victim = same[0]
        elif len(pending) >= self.settings.max_pending_connections:
            hosts = self._peer_hosts(now)
            victim = next((p for p in pending if p.addr[0] not in hosts), pending[0])
        if victim is not None:
            pending.remove(victim)
            self.refuse(victim.conn, victim.addr, "evicted by a newer connection", now)
        p = _Pending(conn, addr, now)
        try:
            conn.setblocking(False)
        except OSError:
            conn.close()
            return
        if not self._read_preamble(p):      # it may have arrived with the connection
            pending.append(p)

    def _read_preamble(self, p: _Pending) -> bool:
        """Read what ``p`` has sent so far; True when it is finished with (handed on or
        closed), False while its preamble is still incomplete."""
        try:
            data = p.conn.recv(wire.PREAMBLE_LEN - len(p.buf))
        except (BlockingIOError, InterruptedError):
            return False
        except OSError as exc:
            self.refuse(p.conn, p.addr, str(exc), time.monotonic())
            return True
        if not data:
            self.refuse(p.conn, p.addr, "closed before its preamble", time.monotonic())
            return True
        p.buf += data
        if len(p.buf) < wire.PREAMBLE_LEN:
            return False
        try:
            role, token = wire.decode_preamble(bytes(p.buf))
            p.conn.setblocking(True)
        except (OSError, ProtocolError) as exc:
            self.refuse(p.conn, p.addr, f"bad preamble: {exc}", time.monotonic())
            return True
        self._handoff(p.conn, p.addr, role, token)
        return True

    def _peer_hosts(self, now: float) -> set[str]:
        """Roster hosts of the peers we have transfers with (cached for a second): when the
        table is full, a connection from any other host is evicted first. Only a preference,
        not a filter, as a peer behind some NATs may connect from another address."""
        if now - self._hosts_at < 1.0:
            return self._hosts
        hosts = set()
        for peer in self._peers():      # outside the manager's lock: address_of may wait
            try:
                addr = self._address_of(peer)
            except Exception as exc:    # the engine is closing
                log.debug("address_of(%s) failed: %s", peer, exc)
                continue
            if addr is not None:
                hosts.add(addr[0])
        self._hosts, self._hosts_at = hosts, now
        return hosts

    def refuse(self, conn: socket.socket | None, addr: tuple, why: str, now: float) -> None:
        """Close a connection that never became a transfer; logged at most every few seconds
        (a flood must not flood the log too)."""
        if conn is not None:
            conn.close()
        self._refused += 1
        if now - self._refused_logged >= 5.0:
            log.warning("dropped %d file connection(s) without a preamble; latest from %s: %s",
                        self._refused, addr, why)
            self._refused, self._refused_logged = 0, now

