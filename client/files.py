"""Peer-to-peer file transfer: a self-contained manager the engine plugs in.

Contract (the engine calls these; none of them blocks on the network)::

    class FileTransfers:
        def __init__(self, *, downloads: Path, send_control: Callable[[str, bytes], None],
                     emit: Callable[[object], None],
                     key_for: Callable[[str, bytes], bytes | None],
                     address_of: Callable[[str], tuple[str, int] | None],
                     listen_host: str = "0.0.0.0", listen_port: int = 0,
                     offer_ttl: float = 120.0): ...
        def start(self) -> None          # open the TCP listener on listen_port (the engine passes
                                         # its UDP port number); if taken, an ephemeral port.
                                         # The port in use is announced in each offer (``port``).
        def offer(self, peer: str, paths: list[Path]) -> list[int]   # one offer (and id) per file;
                                         # OSError/ValueError if a path is not a readable file
        def accept(self, transfer_id: int) -> None
        def decline(self, transfer_id: int) -> None
        def cancel(self, transfer_id: int) -> None
        def on_control(self, peer: str, payload: bytes) -> None   # authenticated, reliable, in
                                         # order; payload starts with b"F"; never raises
        def tick(self, now: float) -> None    # expire offers (call about once a second)
        def close(self) -> None
        # optional hooks the engine calls when it has them:
        def on_peer_left(self, peer: str) -> None                # directory REF_DEL
        def on_undelivered(self, peer: str, payload: bytes) -> None   # control never acked

``send_control(peer, payload)`` must be thread-safe and deliver ``payload`` (<= 4 KiB) reliably
and encrypted to the peer's ``on_control``. ``emit(event)`` is called from the caller's thread
and from transfer threads, so it must be thread-safe too (the engine puts on its queue).
``key_for(peer, b"file" + token)`` returns 32 bytes bound to the live encrypted session, or None.
``address_of(peer)`` gives the peer's roster (UDP) address; its TCP listener is on that host.

Events: ``FileOffered`` (to the receiver), ``FileProgress`` (at most 4/s per transfer, both
sides), and exactly one ``FileDone`` or ``FileFailed`` per transfer on each side (including
decline and expiry). Ids are local to this manager.

Who connects: the receiver, after accepting, connects to the sender's listener (host from the
roster, port from the offer). If that fails (or the connection is dropped before the stream
starts, twice: a flooded listener evicts its oldest unidentified connections), it sends REVERSE
with its own listener port and the sender connects to it. Listener limits: PROTOCOL.md section 8,
"Limits (hostile peers)". The stream and the control messages: ``client/files_wire.py`` and
``docs/PROTOCOL.md section 8``. Files arrive as ``NAME.part`` plus a ``NAME.part.json`` sidecar
(peer, name, size, mtime); an interrupted transfer keeps them, and a later offer of the same
file from the same peer resumes from the ``.part`` length (after the sender has checked the
prefix hash). A cancel from either side deletes them. Verified files get a fresh name
(``name (1).ext``), never overwriting anything.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import logging
import os
import select
import shutil
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from client import files_stream as fs
from client import files_wire as wire
from client.config import load_json
from client.events import FileDone, FileFailed, FileOffered, FileProgress
from client.files_names import candidate_names, reserve_unique, sanitize_name
from models.errors import ProtocolError

log = logging.getLogger(__name__)

KEY_LABEL = b"file"
PART = ".part"
SIDECAR = ".part.json"

OFFERED, ACCEPTED, RUNNING = "offered", "accepted", "running"


@dataclass(eq=False)
class _Transfer:
    tid: int
    peer: str
    token: bytes
    name: str                       # what the UI shows: sanitized name (incoming), file name (out)
    size: int
    mtime_ns: int
    outgoing: bool
    path: Path | None = None        # source file (outgoing)
    port: int = 0                   # the peer's TCP listener (incoming)
    state: str = OFFERED
    since: float | None = None      # tick time the current state started (set on first tick)
    sock: socket.socket | None = None
    stop: threading.Event = field(default_factory=threading.Event)
    reverse_sock: socket.socket | None = None
    reverse_ready: threading.Event = field(default_factory=threading.Event)
    discard: bool = False           # delete the .part when the worker stops (explicit cancel)
    reason: str | None = None       # why it was stopped, when we know before the socket breaks
    part: Path | None = None
    out: BinaryIO | None = None     # the open .part (incoming)
    worker_done: bool = False       # the receiving thread has closed and released the .part
    last_emit: float = 0.0
    last_done: int = 0
    rate: float = 0.0
    taken: bool = False             # reported (FileDone/FileFailed): no more progress
    emit_lock: threading.RLock = field(default_factory=threading.RLock)  # progress vs. _take


@dataclass(eq=False)
class _Pending:
    """An accepted connection whose preamble is not complete yet."""
    conn: socket.socket
    addr: tuple
    since: float
    buf: bytearray = field(default_factory=bytearray)


class FileTransfers:
    """Offers, accepts and runs file transfers, each in its own thread(s)."""

    io_timeout = 30.0               # a peer silent this long mid-transfer has gone
    connect_timeout = 5.0
    reverse_timeout = 30.0          # how long the receiver waits for the sender to connect back
    handshake_timeout = 3.0         # for the preamble on an accepted connection
    progress_interval = 0.25
    retry_pause = 0.2               # before another try on a connection dropped before the stream
    reason_grace = 0.5
    close_timeout = 1.0             # close() waits this long in all for the transfer threads
    max_transfers = 256
    max_offers_per_peer = 32
    max_pending_connections = 32    # accepted, preamble not yet complete: in all ...
    max_pending_per_host = 4        # ... and from one source host
    accept_batch = 64
    free_space_margin = 16 << 20
    chunk = fs.CHUNK

    def __init__(self, *, downloads: Path, send_control: Callable[[str, bytes], None],
                 emit: Callable[[object], None], key_for: Callable[[str, bytes], bytes | None],
                 address_of: Callable[[str], tuple[str, int] | None],
                 listen_host: str = "0.0.0.0", listen_port: int = 0,
                 offer_ttl: float = 120.0) -> None:
        self.downloads = Path(downloads)
        self._send_control = send_control
        self._emit = emit
        self._key_for = key_for
        self._address_of = address_of
        self._listen_host = listen_host
        self._listen_port = listen_port
        self.offer_ttl = offer_ttl
        self.port = 0
        self._lock = threading.RLock()
        self._ids = itertools.count(1)
        self._by_id: dict[int, _Transfer] = {}
        self._by_token: dict[tuple[str, bytes, bool], _Transfer] = {}
        self._parts_in_use: set[Path] = set()
        self._listener: socket.socket | None = None
        self._wake: tuple[socket.socket, socket.socket] | None = None
        self._closed = threading.Event()
        self._hosts: set[str] = set()
        self._hosts_at = -1e9
        self._refused = 0
        self._refused_logged = -1e9
        self._threads: set[threading.Thread] = set()

    # --- life cycle ---------------------------------------------------------------------------

    def start(self) -> None:
        """Open the listening socket and its accept thread."""
        lsock = None
        # create_server binds IPv4 unless told otherwise; an IPv6 engine listens on "::"
        family = socket.AF_INET6 if ":" in self._listen_host else socket.AF_INET
        for port in dict.fromkeys((self._listen_port, 0)):
            try:
                lsock = socket.create_server((self._listen_host, port), family=family,
                                             backlog=128, reuse_port=False)
                lsock.setblocking(False)     # the accept loop takes a batch at a time
                break
            except OSError as exc:
                log.warning("file listener: cannot bind %s:%s (%s)", self._listen_host, port, exc)
        if lsock is None:
            log.error("file listener unavailable: receivers will be asked to listen instead")
            return
        self._listener = lsock
        self._wake = socket.socketpair()    # select() wake-up that works on Windows too
        self.port = lsock.getsockname()[1]
        log.info("file listener on %s:%d", self._listen_host, self.port)
        self._spawn(self._accept_loop, name="files-listener")

    def close(self) -> None:
        """Stop listening and stop every transfer (the peers are told); idempotent."""
        if self._closed.is_set():
            return
        self._closed.set()
        with self._lock:
            live = list(self._by_id.values())
        # First stop everything (blocked calls on a broken socket return), then wait for the
        # threads under one deadline: one stuck in connect() or in the engine must not make
        # the caller wait a second per transfer.
        for t in live:
            self._stop(t, "closed", tell_peer=True, discard=False)
            with self._lock:
                extra = t.reverse_sock if t.reverse_sock is not t.sock else None
            if extra is not None:
                _break(extra)
        if self._wake is not None:
            with contextlib.suppress(OSError):
                self._wake[1].send(b"x")    # the listener thread closes its sockets
        deadline = time.monotonic() + self.close_timeout
        for th in list(self._threads):
            left = deadline - time.monotonic()
            if left <= 0:
                log.info("file threads still running after close: %d", len(self._threads))
                break
            if th.is_alive() and th is not threading.current_thread():
                th.join(timeout=left)

    # --- what the engine calls ----------------------------------------------------------------

    def offer(self, peer: str, paths: list[Path]) -> list[int]:
        files = []
        for p in paths:
            p = Path(p)
            st = p.stat()
            if not p.is_file():
                raise ValueError(f"not a regular file: {p}")
            if not os.access(p, os.R_OK):
                raise PermissionError(f"cannot read {p}")
            files.append((p, st))
        ids = []
        for p, st in files:
            name = p.name or "file"
            t = _Transfer(next(self._ids), peer, os.urandom(wire.TOKEN_LEN), name, st.st_size,
                          max(st.st_mtime_ns, 0), outgoing=True, path=p)
            with self._lock:
                self._add(t)
            log.info("offering %s (%d bytes) to %s as #%d", name, t.size, peer, t.tid)
            self._control(peer, wire.Offer(t.token, _cap_utf8(name, wire.MAX_NAME_BYTES), t.size,
                                           t.mtime_ns, self.port))
            ids.append(t.tid)
        return ids

    def accept(self, transfer_id: int) -> None:
        with self._lock:
            t = self._by_id.get(transfer_id)
            if t is None or t.outgoing or t.state != OFFERED:
                log.info("accept of unknown or already handled transfer #%s", transfer_id)
                return
            t.state, t.since = ACCEPTED, None
        # The worker checks the free space and then sends ACCEPT (or DECLINE): disk work stays
        # off the caller's thread.
        self._spawn(self._receive_worker, t, name=f"files-recv-{t.tid}")

    def decline(self, transfer_id: int) -> None:
        with self._lock:
            t = self._by_id.get(transfer_id)
        if t is not None and not t.outgoing:
            self._stop(t, "declined", tell_peer=True, discard=True)

    def cancel(self, transfer_id: int) -> None:
        with self._lock:
            t = self._by_id.get(transfer_id)
        if t is not None:
            self._stop(t, "cancelled", tell_peer=True, discard=True)

    def tick(self, now: float) -> None:
        """Expire offers nobody answered and accepts that never got connected."""
        expired = []
        with self._lock:
            for t in self._by_id.values():
                if t.state == RUNNING:
                    continue
                if t.since is None:
                    t.since = now
                elif now - t.since >= self.offer_ttl:
                    expired.append(t)
        for t in expired:
            why = "offer expired" if t.state == OFFERED else "peer never connected"
            self._stop(t, why, tell_peer=True, discard=False)

    def on_control(self, peer: str, payload: bytes) -> None:
        try:
            msg = wire.decode_control(payload)
        except ProtocolError as exc:
            log.warning("dropping bad file control message from %s: %s", peer, exc)
            return
        try:
            handler = self._HANDLERS[type(msg)]
            handler(self, peer, msg)
        except Exception:   # a bug of ours must not take the engine thread down
            log.exception("file control message from %s failed", peer)

    def on_peer_left(self, peer: str) -> None:
        """The directory says ``peer`` left: its unanswered offers and unconnected accepts end
        now (a transfer already streaming goes on: TCP does not need the directory)."""
        with self._lock:
            waiting = [t for t in self._by_id.values() if t.peer == peer and t.state != RUNNING
                       and not (not t.outgoing and t.state == ACCEPTED)]
        for t in waiting:
            self._stop(t, f"{peer} left", tell_peer=False)

    def on_undelivered(self, peer: str, payload: bytes) -> None:
        """A control message ``peer`` never acknowledged: an offer or accept that never arrived
        ends its transfer (the others are best-effort notices)."""
        try:
            msg = wire.decode_control(payload)
        except ProtocolError:
            return
        if isinstance(msg, wire.Offer | wire.Accept | wire.Reverse):
            # our OFFER is about an outgoing transfer; our ACCEPT/REVERSE about an incoming one
            t = self._find(peer, msg.token, outgoing=isinstance(msg, wire.Offer))
            if t is not None:
                self._stop(t, f"{peer} did not answer", tell_peer=False)

    # --- control messages in ------------------------------------------------------------------

    def _on_offer(self, peer: str, msg: wire.Offer) -> None:
        name = sanitize_name(msg.name)
        with self._lock:
            if (peer, msg.token, False) in self._by_token:
                return
            mine = sum(1 for t in self._by_id.values() if t.peer == peer and not t.outgoing)
            full = len(self._by_id) >= self.max_transfers or mine >= self.max_offers_per_peer
            if not full:
                t = _Transfer(next(self._ids), peer, msg.token, name, msg.size, msg.mtime_ns,
                              outgoing=False, port=msg.port)
                self._add(t)
        if full:
            log.warning("refusing offer from %s: too many transfers", peer)
            self._control(peer, wire.Decline(msg.token, "too many offers"))
            return
        log.info("%s offers %r (%d bytes) as #%d", peer, name, msg.size, t.tid)
        self._emit(FileOffered(t.tid, peer, name, msg.size))

    def _on_accept(self, peer: str, msg: wire.Accept) -> None:
        t = self._find(peer, msg.token, outgoing=True)
        with self._lock:
            ok = t is not None and t.state == OFFERED
            if ok:
                t.state, t.since = ACCEPTED, None
        if t is None:
            self._control(peer, wire.Cancel(msg.token, "no such offer (expired?)"))
        elif ok:
            log.info("%s accepted #%d", peer, t.tid)
        # else: its connection overtook this ACCEPT and the transfer is already running

    def _on_decline(self, peer: str, msg: wire.Decline) -> None:
        t = self._find(peer, msg.token, outgoing=True)
        if t is not None:
            self._stop(t, _peer_reason(f"{peer} declined", msg.reason), tell_peer=False)

    def _on_cancel(self, peer: str, msg: wire.Cancel) -> None:
        t = self._find(peer, msg.token, outgoing=False)
        if t is not None:
            self._stop(t, _peer_reason(f"{peer} cancelled", msg.reason), tell_peer=False,
                       discard=msg.reason == "cancelled")

    def _on_reverse(self, peer: str, msg: wire.Reverse) -> None:
        t = self._find(peer, msg.token, outgoing=True)
        with self._lock:
            if t is None or t.state != ACCEPTED:
                return
            t.state = RUNNING
        self._spawn(self._connect_back, t, msg.port, name=f"files-send-{t.tid}")

    _HANDLERS = {wire.Offer: _on_offer, wire.Accept: _on_accept, wire.Decline: _on_decline,
                 wire.Cancel: _on_cancel, wire.Reverse: _on_reverse}

    # --- bookkeeping --------------------------------------------------------------------------

    def _add(self, t: _Transfer) -> None:
        self._by_id[t.tid] = t
        self._by_token[(t.peer, t.token, t.outgoing)] = t

    def _find(self, peer: str, token: bytes, *, outgoing: bool) -> _Transfer | None:
        with self._lock:
            return self._by_token.get((peer, token, outgoing))

    def _control(self, peer: str, msg: wire.Control) -> None:
        try:
            self._send_control(peer, wire.encode_control(msg))
        except Exception as exc:    # the engine may be closing; the transfer fails on its own
            log.warning("cannot send file control to %s: %s", peer, exc)

    def _spawn(self, target: Callable[..., object], *args: object, name: str,
               **kwargs: object) -> None:
        def run() -> None:
            try:
                target(*args, **kwargs)
            except Exception:   # last resort: a transfer must never stay "running" forever
                log.exception("file thread %s died", name)
                for t in args:
                    if isinstance(t, _Transfer):
                        self._fail(t, "internal error")
                        if t.sock is not None:
                            _break(t.sock)
            finally:
                self._threads.discard(threading.current_thread())
        th = threading.Thread(target=run, name=name, daemon=True)
        self._threads.add(th)
        th.start()

    def _take(self, t: _Transfer) -> bool:
        """Remove ``t`` from the live set; True for the one caller that gets to report it."""
        with self._lock:
            if self._by_id.get(t.tid) is not t:
                return False
            del self._by_id[t.tid]
            self._by_token.pop((t.peer, t.token, t.outgoing), None)
            t.taken = True
        with t.emit_lock:           # a progress event being emitted goes first
            return True

    def _stop(self, t: _Transfer, reason: str, *, tell_peer: bool, discard: bool = False) -> None:
        """End ``t`` now (user, peer, expiry or close): report it, tell the peer, break its
        socket so its thread stops; the thread itself then cleans up the .part."""
        with self._lock:
            t.reason = t.reason or reason
            t.discard = t.discard or discard
            running = (t.state == RUNNING or (not t.outgoing and t.state == ACCEPTED)) \
                and not t.worker_done
            t.stop.set()
            t.reverse_ready.set()
            sock = t.sock
        if not self._take(t):
            return
        if tell_peer:
            msg = wire.Cancel if t.outgoing else wire.Decline
            self._control(t.peer, msg(t.token, reason))
        if sock is not None:
            _break(sock)
        log.info("transfer #%d (%s) stopped: %s", t.tid, t.name, reason)
        self._emit(FileFailed(t.tid, t.peer, t.name, reason, t.outgoing))
        if not running and t.discard:
            self._drop_part(t)

    def _fail(self, t: _Transfer, reason: str, *, lost: bool = False, tell: bool = True) -> None:
        """A transfer thread hit an error; report it unless someone stopped it first, and tell
        the peer. When the connection was merely ``lost``, the peer's CANCEL/DECLINE may be a
        moment behind its closed socket: wait briefly for the real reason."""
        if lost and t.stop.wait(self.reason_grace):
            return
        if self._take(t):
            log.warning("transfer #%d (%s) with %s failed: %s", t.tid, t.name, t.peer, reason)
            if tell:
                msg = wire.Cancel if t.outgoing else wire.Decline
                self._control(t.peer, msg(t.token, f"failed: {reason}"))
            self._emit(FileFailed(t.tid, t.peer, t.name, reason, t.outgoing))

    def _progress(self, t: _Transfer, done: int) -> None:
        now = time.monotonic()
        if t.last_emit == 0.0:          # the first call: show the bar (at the resume offset)
            rate = 0.0
        else:
            dt = now - t.last_emit
            if dt < self.progress_interval and done < t.size:
                return
            inst = (done - t.last_done) / dt if dt > 0 else 0.0
            t.rate = inst if t.rate == 0.0 else 0.5 * t.rate + 0.5 * inst   # smooth the ETA
            rate = t.rate
        t.last_emit, t.last_done = now, done
        # Never after this transfer's FileDone or FileFailed (a late one would bring its row
        # back in the window): _take waits for an emit in progress (not under _lock, which the
        # engine thread takes).
        with t.emit_lock:
            if t.stop.is_set() or t.taken:
                return
            self._emit(FileProgress(t.tid, t.peer, t.name, done, t.size, rate, t.outgoing))

    # --- sockets --------------------------------------------------------------------------------

    def _accept_loop(self) -> None:
        """Accept connections and read their preambles, all on this one thread: a connection
        that has not sent its 22 bytes costs a table entry and no thread. The table is bounded
        per source host and in all; when it is full the oldest entry makes room, so idle
        connections cannot lock a real peer out (issue 6)."""
        lsock, wake = self._listener, self._wake
        assert lsock is not None and wake is not None
        pending: list[_Pending] = []        # oldest first
        try:
            while not self._closed.is_set():
                now = time.monotonic()
                for p in [p for p in pending if now - p.since >= self.handshake_timeout]:
                    pending.remove(p)
                    self._refuse(p.conn, p.addr, "no preamble in time", now)
                timeout = (max(0.0, pending[0].since + self.handshake_timeout - now)
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
                        self._accept_some(lsock, pending)
                except Exception:   # e.g. no thread to spare: the listener itself must live on
                    log.exception("file listener: unexpected error")
                    time.sleep(0.05)
        finally:
            for p in pending:
                p.conn.close()
            for s in (lsock, *wake):
                s.close()

    def _accept_some(self, lsock: socket.socket, pending: list[_Pending]) -> None:
        """Accept what is queued (a batch, so a flood does not fill the kernel's queue and
        delay a real peer's SYN by a retransmission)."""
        for _ in range(self.accept_batch):
            try:
                conn, addr = lsock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:   # e.g. EMFILE: do not spin, do not flood the log
                self._refuse(None, ("?",), f"accept failed: {exc}", time.monotonic())
                time.sleep(0.05)
                return
            self._admit(pending, conn, addr, time.monotonic())

    def _admit(self, pending: list[_Pending], conn: socket.socket, addr: tuple,
               now: float) -> None:
        """Put a new connection in the pending table, evicting to make room if needed."""
        if not self._awaits_connection():
            self._refuse(conn, addr, "no transfer waiting for a connection", now)
            return
        host = addr[0]
        same = [p for p in pending if p.addr[0] == host]
        victim = None
        if len(same) >= self.max_pending_per_host:
            victim = same[0]
        elif len(pending) >= self.max_pending_connections:
            hosts = self._peer_hosts(now)
            victim = next((p for p in pending if p.addr[0] not in hosts), pending[0])
        if victim is not None:
            pending.remove(victim)
            self._refuse(victim.conn, victim.addr, "evicted by a newer connection", now)
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
            self._refuse(p.conn, p.addr, str(exc), time.monotonic())
            return True
        if not data:
            self._refuse(p.conn, p.addr, "closed before its preamble", time.monotonic())
            return True
        p.buf += data
        if len(p.buf) < wire.PREAMBLE_LEN:
            return False
        try:
            role, token = wire.decode_preamble(bytes(p.buf))
            p.conn.setblocking(True)
        except (OSError, ProtocolError) as exc:
            self._refuse(p.conn, p.addr, f"bad preamble: {exc}", time.monotonic())
            return True
        self._dispatch(p.conn, p.addr, role, token)
        return True

    def _dispatch(self, conn: socket.socket, addr: tuple, role: bytes, token: bytes) -> None:
        """A complete preamble: hand the connection to its transfer (never blocks)."""
        with self._lock:
            t = next((x for x in self._by_id.values() if x.token == token
                      and x.outgoing == (role == wire.ROLE_RECEIVER)), None)
            # OFFERED too: the receiver's TCP connection may overtake its ACCEPT message, and
            # only the receiver knows the token (it travelled encrypted in our OFFER).
            if t is not None and t.outgoing and t.state in (OFFERED, ACCEPTED):
                t.state = RUNNING
            elif t is not None and not t.outgoing and t.reverse_sock is None \
                    and t.state == ACCEPTED and not t.worker_done:
                t.reverse_sock = conn
                t.reverse_ready.set()
                return
            else:
                t = None
        if t is None:
            self._refuse(conn, addr, "for no transfer waiting for one", time.monotonic())
            return
        self._spawn(self._run_sender, t, conn, rewait=True, name=f"files-send-{t.tid}")

    def _awaits_connection(self) -> bool:
        """Is any transfer waiting for an incoming connection? If not, nobody can use one."""
        with self._lock:
            return any(t.state in (OFFERED, ACCEPTED) if t.outgoing
                       else t.state == ACCEPTED and t.reverse_sock is None
                       for t in self._by_id.values())

    def _peer_hosts(self, now: float) -> set[str]:
        """Roster hosts of the peers we have transfers with (cached for a second): when the
        table is full, a connection from any other host is evicted first. Only a preference,
        not a filter, as a peer behind some NATs may connect from another address."""
        if now - self._hosts_at < 1.0:
            return self._hosts
        with self._lock:
            peers = {t.peer for t in self._by_id.values()}
        hosts = set()
        for peer in peers:          # outside our lock: address_of may wait on the engine
            try:
                addr = self._address_of(peer)
            except Exception as exc:    # the engine is closing
                log.debug("address_of(%s) failed: %s", peer, exc)
                continue
            if addr is not None:
                hosts.add(addr[0])
        self._hosts, self._hosts_at = hosts, now
        return hosts

    def _refuse(self, conn: socket.socket | None, addr: tuple, why: str, now: float) -> None:
        """Close a connection that never became a transfer; logged at most every few seconds
        (a flood must not flood the log too)."""
        if conn is not None:
            conn.close()
        self._refused += 1
        if now - self._refused_logged >= 5.0:
            log.warning("dropped %d file connection(s) without a preamble; latest from %s: %s",
                        self._refused, addr, why)
            self._refused, self._refused_logged = 0, now

    def _connect_back(self, t: _Transfer, port: int) -> None:
        """REVERSE: connect to the receiver's listener; once more if that connection is
        dropped before the stream starts (its listener may be flooded)."""
        try:
            self._connect_back_tries(t, port)
        except Exception:   # e.g. address_of timed out on a closing engine
            log.exception("connecting back for #%d failed", t.tid)
            self._fail(t, "internal error")

    def _connect_back_tries(self, t: _Transfer, port: int) -> None:
        for again in (True, False):
            addr = self._address_of(t.peer)
            if addr is None:
                self._fail(t, f"{t.peer} is not online")
                return
            try:
                conn = socket.create_connection((addr[0], port), timeout=self.connect_timeout)
                conn.sendall(wire.encode_preamble(wire.ROLE_SENDER, t.token))
            except OSError as exc:
                self._fail(t, f"cannot connect to {t.peer} either way: {exc}")
                return
            if self._run_sender(t, conn, again=again) or t.stop.wait(self.retry_pause):
                return
            log.info("%s's file listener dropped our connection; trying once more", t.peer)

    def _run_sender(self, t: _Transfer, conn: socket.socket, *, again: bool = False,
                    rewait: bool = False) -> bool:
        """Stream ``t`` over ``conn``. If the connection breaks before the receiver's stream
        header (nothing happened on it) and ``again``, return False so the caller tries another
        connection; with ``rewait``, go back to waiting for the receiver to connect (it retries,
        or asks for REVERSE). True when ``t`` is finished with, either way."""
        assert t.path is not None
        with self._lock:
            t.sock = conn
            stopped = t.stop.is_set()
        if stopped:
            _break(conn)
            return True
        try:
            key = self._key_for(t.peer, KEY_LABEL + t.token)    # may raise: the engine is gone
            if key is None:
                raise fs.StreamError(f"no encrypted session with {t.peer}")
            st = t.path.stat()
            if (st.st_size, max(st.st_mtime_ns, 0)) != (t.size, t.mtime_ns):
                raise fs.StreamError("the file changed since it was offered")
            conn.settimeout(self.io_timeout)
            fs.send_stream(conn, key=key, path=t.path, size=t.size,
                           progress=lambda done: self._progress(t, done),
                           stop=t.stop.is_set, chunk=self.chunk)
        except fs.NotConnected as exc:
            if again and not t.stop.is_set():
                return False
            if rewait and self._rewait(t):
                return True
            self._fail(t, _reason(exc), lost=True)
        except (OSError, fs.StreamError) as exc:
            self._fail(t, _reason(exc), lost=_lost(exc))
        except Exception:
            log.exception("sending #%d failed", t.tid)
            self._fail(t, "internal error")
        else:
            if self._take(t):
                log.info("sent %s to %s (#%d)", t.name, t.peer, t.tid)
                self._emit(FileDone(t.tid, t.peer, t.name, t.path, outgoing=True))
        finally:
            _break(conn)
        return True

    def _rewait(self, t: _Transfer) -> bool:
        """The receiver's connection broke before its stream began: wait for another one."""
        with self._lock:
            if t.stop.is_set() or self._by_id.get(t.tid) is not t:
                return False
            t.state, t.since, t.sock = ACCEPTED, None, None
        log.info("connection from %s for #%d dropped before the stream; waiting for another",
                 t.peer, t.tid)
        return True

    # --- the receiving side -------------------------------------------------------------------

    def _receive_worker(self, t: _Transfer) -> None:
        final: list[Path] = []
        error, lost = None, False
        try:
            self._receive(t, final)
        except (OSError, fs.StreamError) as exc:
            error, lost = _reason(exc), _lost(exc)
        except Exception:
            log.exception("receiving #%d failed", t.tid)
            error = "internal error"
        finally:
            if error is not None and not lost:      # tell the sender before it sees the close
                self._control(t.peer, wire.Decline(t.token, f"failed: {error}"))
            self._release_part(t)
        # Report only once the .part is closed and free again, so a new offer can resume it.
        if error is not None:
            self._fail(t, error, lost=lost, tell=lost)
        elif final and self._take(t):
            log.info("received %s from %s into %s", t.name, t.peer, final[0])
            self._emit(FileDone(t.tid, t.peer, t.name, final[0], outgoing=False))

    def _receive(self, t: _Transfer, final: list[Path]) -> None:
        if t.stop.is_set():
            return
        t.out, offset = self._open_part(t)
        assert t.part is not None
        free = shutil.disk_usage(t.part.parent).free
        if free < t.size - offset + self.free_space_margin:
            self._stop(t, f"not enough free space ({free} bytes free, "
                          f"{t.size - offset} needed)", tell_peer=True)
            return
        self._control(t.peer, wire.Accept(t.token))
        prefix = fs.prefix_hash(t.part, offset, t.stop.is_set) if offset else fs.ZERO_HASH
        if prefix is None:      # the .part shrank under us: start over
            offset, prefix = 0, fs.ZERO_HASH
        # Two tries at the sender's listener, then REVERSE: a connection dropped before the
        # sender's stream header (a flooded listener evicts unidentified connections) is "could
        # not reach", not a failure. Nothing is written to the .part before that header.
        direct_left = 2 if t.port else 0
        out = t.out
        while True:
            conn, reversed_ = self._connect_or_wait(t, direct=direct_left > 0)
            if conn is None:
                return
            direct_left = 0 if reversed_ else direct_left - 1
            key = self._key_for(t.peer, KEY_LABEL + t.token)
            if key is None:
                raise fs.StreamError(f"no encrypted session with {t.peer}")
            conn.settimeout(self.io_timeout)
            try:
                fs.receive_stream(conn, key=key, out=out, offset=offset, prefix=prefix,
                                  size=t.size, progress=lambda done: self._progress(t, done),
                                  stop=t.stop.is_set,
                                  finish=lambda: final.append(self._finish_part(t, out)))
                return
            except fs.NotConnected:
                if reversed_ or t.stop.is_set():
                    raise
            with self._lock:
                t.sock = None
                if not t.stop.is_set():
                    t.state = ACCEPTED
            _break(conn)
            log.info("%s's file listener dropped our connection before the stream; %s", t.peer,
                     "trying again" if direct_left else "asking it to connect")
            if t.stop.wait(self.retry_pause):
                return

    def _release_part(self, t: _Transfer) -> None:
        """The worker is done with the .part: close it, drop it if cancelled or empty."""
        if t.out is not None and not t.out.closed:
            t.out.close()
        if t.sock is not None:
            _break(t.sock)
        with self._lock:
            t.worker_done = True    # from now on the listener hands it no connection
            # the sender's connection may have landed just after our wait for it timed out
            late = t.reverse_sock if t.reverse_sock is not t.sock else None
            drop = t.discard or _empty(t.part)
            self._parts_in_use.discard(t.part)
        if late is not None:
            _break(late)
        if drop:
            self._drop_part(t)

    def _connect_or_wait(self, t: _Transfer, *, direct: bool
                         ) -> tuple[socket.socket | None, bool]:
        """The receiver connects to the sender (if ``direct``); failing that, it asks the
        sender to connect. Returns (connection or None if stopped, whether it was REVERSE)."""
        addr = self._address_of(t.peer)
        if addr is None:
            raise fs.StreamError(f"{t.peer} is not online")
        conn = None
        if direct:
            try:
                conn = socket.create_connection((addr[0], t.port), timeout=self.connect_timeout)
                conn.sendall(wire.encode_preamble(wire.ROLE_RECEIVER, t.token))
            except OSError as exc:
                log.info("cannot reach %s's file listener (%s); asking it to connect", t.peer, exc)
                conn = None
        if conn is None:
            if not self.port:
                raise fs.StreamError(f"cannot connect to {t.peer} and we have no listener")
            self._control(t.peer, wire.Reverse(t.token, self.port))
            t.reverse_ready.wait(self.reverse_timeout)
            conn = t.reverse_sock
            if conn is None:
                if t.stop.is_set():
                    return None, True
                raise fs.StreamError(f"{t.peer} could not connect either")
        with self._lock:
            t.sock = conn
            t.state = RUNNING
            stopped = t.stop.is_set()
        if stopped:
            _break(conn)
            return None, True
        return conn, not direct or t.reverse_sock is conn

    def _open_part(self, t: _Transfer) -> tuple[BinaryIO, int]:
        """Open the ``.part`` to write: the matching one of an interrupted transfer (resume)
        or a fresh one with its sidecar. Returns (file object, bytes already there)."""
        ident = {"v": 1, "peer": t.peer, "name": t.name, "size": t.size, "mtime_ns": t.mtime_ns}
        # Read once: the GUI may change it mid-transfer; this transfer finishes where it began.
        folder = Path(self.downloads)
        folder.mkdir(parents=True, exist_ok=True)
        found = self._resumable(folder, ident)  # disk I/O: outside the lock
        with self._lock:
            part = next((p for p in found if p not in self._parts_in_use), None)
            if part is not None:
                self._parts_in_use.add(part)
                t.part = part
        if part is None:
            part = self._fresh_part(folder, t)
        # Not fsynced: losing the sidecar in a crash only costs the resume, and offers should
        # not wait for the disk.
        _sidecar(part).write_text(json.dumps(ident), encoding="utf-8")
        out = open(part, "r+b")   # noqa: SIM115 -- closed by _release_part
        offset = min(out.seek(0, os.SEEK_END), t.size)
        if offset:
            log.info("resuming %s from %s at %d bytes", t.name, t.peer, offset)
        return out, offset

    def _fresh_part(self, folder: Path, t: _Transfer) -> Path:
        """Create a new empty ``.part`` for ``t`` under a name nobody uses. The disk work
        (up to thousands of checks on a slow folder) is outside ``_lock``, which the engine
        thread takes; the exclusive create settles races with other transfers and processes."""
        for c in candidate_names(t.name):
            part = folder / (c + PART)
            if _sidecar(part).exists():
                continue
            try:
                with open(part, "xb"):
                    pass
            except FileExistsError:
                continue
            with self._lock:
                if part not in self._parts_in_use:  # its file was deleted under a live transfer
                    self._parts_in_use.add(part)
                    t.part = part
                    return part
        raise fs.StreamError("no free name for the partial file")

    def _resumable(self, folder: Path, ident: dict) -> list[Path]:
        """``.part`` files in ``folder`` whose sidecar matches ``ident``, longest first."""
        found = []
        try:
            entries = list(itertools.islice(folder.iterdir(), 10_000))
        except OSError:
            return []
        for side in entries:
            if not side.name.endswith(SIDECAR):
                continue
            part = side.with_name(side.name[:-len(".json")])
            try:
                if side.stat().st_size > 4096:
                    continue
                length = part.stat().st_size
            except OSError:
                continue
            if length <= ident["size"] and load_json(side) == ident:
                found.append((length, part))
        return [p for _, p in sorted(found, key=lambda lp: lp[0], reverse=True)]

    def _finish_part(self, t: _Transfer, out) -> Path:
        """Verified: flush to disk and move into place under a name nobody uses."""
        out.flush()
        os.fsync(out.fileno())
        out.close()
        assert t.part is not None
        target = reserve_unique(t.part.parent, t.name)   # same filesystem: os.replace works
        os.replace(t.part, target)
        _sidecar(t.part).unlink(missing_ok=True)
        return target

    def _drop_part(self, t: _Transfer) -> None:
        if t.outgoing or t.part is None:
            return
        for p in (t.part, _sidecar(t.part)):
            try:
                p.unlink(missing_ok=True)
            except OSError as exc:
                log.warning("cannot remove %s: %s", p, exc)


def _empty(part: Path | None) -> bool:
    try:
        return part is not None and part.stat().st_size == 0
    except OSError:
        return False


def _sidecar(part: Path) -> Path:
    return part.with_name(part.name + ".json")


def _cap_utf8(text: str, limit: int) -> str:
    return text.encode("utf-8")[:limit].decode("utf-8", "ignore") or "file"


def _peer_reason(what: str, reason: str) -> str:
    return f"{what}: {reason}" if reason else what


def _reason(exc: BaseException) -> str:
    if isinstance(exc, fs.StreamError):
        return str(exc)
    if isinstance(exc, TimeoutError):
        return "the peer stopped responding"
    if isinstance(exc, ConnectionError):
        return f"connection lost ({exc.strerror or exc})"
    if isinstance(exc, OSError):    # the disk, usually: say which file
        where = f": {exc.filename}" if exc.filename else ""
        return f"{exc.strerror or exc}{where}"
    return str(exc)


def _lost(exc: BaseException) -> bool:
    return isinstance(exc, fs.ConnectionLost | ConnectionError)


def _recv_exact(conn: socket.socket, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        data = conn.recv(n - len(buf))
        if not data:
            raise fs.StreamError("connection closed")
        buf += data
    return bytes(buf)


def _break(sock: socket.socket) -> None:
    """Wake any thread blocked on ``sock`` (close alone does not on Linux) and close it."""
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    sock.close()
