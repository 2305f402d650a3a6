"""Peer-to-peer file transfer: a self-contained manager the engine plugs in.

Contract (the engine calls these; none of them blocks on the network)::

    class FileTransfers:
        def __init__(self, *, downloads: Path, send_control: Callable[[str, bytes], None],
                     emit: Callable[[object], None],
                     key_for: Callable[[str, bytes], bytes | None],
                     address_of: Callable[[str], tuple[str, int] | None],
                     listen_host: str = "0.0.0.0", listen_port: int = 0,
                     offer_ttl: float = 120.0, wake: Callable[[], None] = ...,
                     udp_first: Callable[[str], bool] = ...): ...
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
        def on_peer_left(self, peer: str) -> None                # directory REF_DEL
        def on_undelivered(self, peer: str, payload: bytes) -> None   # control never acked

``send_control(peer, payload)`` must be thread-safe and deliver ``payload`` (<= 4 KiB) reliably
and encrypted to the peer's ``on_control``. ``emit(event)`` is called from the caller's thread
and from transfer threads, so it must be thread-safe too (the engine puts on its queue).
``key_for(peer, b"file" + token)`` returns 32 bytes bound to the live encrypted session, or None.
``address_of(peer)`` gives the peer's roster (UDP) address; its TCP listener is on that host.
``lane`` (a ``client.contracts.BulkSource``) is the UDP path: the engine feeds it the peers'
stream frames and sends what it gives, behind the chat; ``wake()`` wakes the engine for it.
``udp_first(peer)``: TCP is known not to work with ``peer`` (e.g. both behind NAT), so skip it.

Events: ``FileOffered`` (to the receiver), ``FileProgress`` (at most 4/s per transfer, both
sides), and exactly one ``FileDone`` or ``FileFailed`` per transfer on each side (including
decline and expiry). Ids are local to this manager. The engine holds it as a
``client.contracts.FileService``; timeouts and limits are in ``settings`` (``state.Settings``).

Who connects: the receiver, after accepting, connects to the sender's listener (host from the
roster, port from the offer). If that fails (or the connection is dropped before the stream
starts, twice: a flooded listener evicts its oldest unidentified connections), it sends REVERSE
with its own listener port and the sender connects to it. If that fails too, the sender sends
VIA_UDP and the receiver opens the stream over the peers' UDP path (``udplane``): the same
encrypted stream, hello, resume and DONE, carried in SEALED datagrams. Listener limits:
PROTOCOL.md section 8, "Limits (hostile peers)". The stream and the control messages:
``client/files/wire.py`` and ``docs/PROTOCOL.md section 8``. Files arrive as ``NAME.part`` plus
a ``NAME.part.json`` sidecar (peer, name, size, mtime); an interrupted transfer keeps them, and
a later offer of the same file from the same peer resumes from the ``.part`` length (after the
sender has checked the prefix hash). A cancel from either side deletes them. Verified files get
a fresh name (``name (1).ext``), never overwriting anything.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path

from client.events import FileDone, FileFailed, FileProgress
from client.files import udpwire, wire
from client.files.control import (
    Action,
    ConnectBack,
    Control,
    Emit,
    NoWayIn,
    Send,
    Stop,
    farewell,
)
from client.files.listener import Listener, open_listener
from client.files.receiver import Receiver
from client.files.resume import ResumeStore
from client.files.sender import Sender
from client.files.state import Settings, State, Transfer, hang_up
from client.files.udplane import UdpConn, UdpLane

log = logging.getLogger(__name__)

KEY_LABEL = b"file"


class FileTransfers:
    """Offers, accepts and runs file transfers, each in its own thread(s)."""

    def __init__(self, *, downloads: Path, send_control: Callable[[str, bytes], None],
                 emit: Callable[[object], None], key_for: Callable[[str, bytes], bytes | None],
                 address_of: Callable[[str], tuple[str, int] | None],
                 listen_host: str = "0.0.0.0", listen_port: int = 0,
                 offer_ttl: float = 120.0, wake: Callable[[], None] = lambda: None,
                 udp_first: Callable[[str], bool] = lambda peer: False) -> None:
        self.downloads = Path(downloads)
        self.settings = Settings(offer_ttl=offer_ttl)
        self.port = 0
        self.lock = threading.RLock()
        self.control = Control(self.settings)
        self._send_control = send_control
        self._emit = emit
        self._key_for = key_for
        self._address_of = address_of
        self._listen_host = listen_host
        self._listen_port = listen_port
        self._store = ResumeStore(self.lock)
        self._sender = Sender(self)
        self._receiver = Receiver(self, self._store)
        self._listener: Listener | None = None
        self._udp_first = udp_first
        self.lane = UdpLane(wake=wake, accept=self._stream_handoff)
        self._closed = threading.Event()
        self._threads: set[threading.Thread] = set()

    # --- life cycle ---------------------------------------------------------------------------

    def start(self) -> None:
        """Open the listening socket and its accept thread."""
        lsock = open_listener(self._listen_host, self._listen_port)
        if lsock is None:
            log.error("file listener unavailable: receivers will be asked to listen instead")
            return
        self._listener = Listener(lsock, self.settings, handoff=self._handoff,
                                  awaits=self._awaits_connection, peers=self._peers,
                                  address_of=self._address_of)
        self.port = self._listener.port
        log.info("file listener on %s:%d", self._listen_host, self.port)
        self._spawn(self._listener.run, name="files-listener")

    def close(self) -> None:
        """Stop listening and stop every transfer (the peers are told); idempotent."""
        if self._closed.is_set():
            return
        self._closed.set()
        with self.lock:
            live = list(self.control.by_id.values())
        # First stop everything (blocked calls on a broken socket return), then wait for the
        # threads under one deadline: one stuck in connect() or in the engine must not make
        # the caller wait a second per transfer.
        for t in live:
            self.stop(t, "closed", tell_peer=True, discard=False)
            with self.lock:
                extra = t.reverse_sock if t.reverse_sock is not t.sock else None
            if extra is not None:
                hang_up(extra)
        if self._listener is not None:
            self._listener.close()
        self.lane.close()
        deadline = time.monotonic() + self.settings.close_timeout
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
            with self.lock:
                t, send = self.control.offer(peer, os.urandom(wire.TOKEN_LEN), p, st.st_size,
                                             max(st.st_mtime_ns, 0), self.port)
            log.info("offering %s (%d bytes) to %s as #%d", t.name, t.size, peer, t.tid)
            self._run([send])
            ids.append(t.tid)
        return ids

    def accept(self, transfer_id: int) -> None:
        with self.lock:
            t = self.control.accept(transfer_id)
        if t is None:
            log.info("accept of unknown or already handled transfer #%s", transfer_id)
            return
        # The worker checks the free space and then sends ACCEPT (or DECLINE): disk work stays
        # off the caller's thread.
        self._spawn(self._receiver.work, t, name=f"files-recv-{t.tid}")

    def decline(self, transfer_id: int) -> None:
        with self.lock:
            t = self.control.by_id.get(transfer_id)
        if t is not None and not t.outgoing:
            self.stop(t, "declined", tell_peer=True, discard=True)

    def cancel(self, transfer_id: int) -> None:
        with self.lock:
            t = self.control.by_id.get(transfer_id)
        if t is not None:
            self.stop(t, "cancelled", tell_peer=True, discard=True)

    def tick(self, now: float) -> None:
        """Expire offers nobody answered and accepts that never got connected."""
        with self.lock:
            actions = self.control.tick(now)
        self._run(actions)

    def on_control(self, peer: str, payload: bytes) -> None:
        try:
            with self.lock:
                actions = self.control.receive(peer, payload)
            self._run(actions)
        except Exception:   # a bug of ours must not take the engine thread down
            log.exception("file control message from %s failed", peer)

    def on_peer_left(self, peer: str) -> None:
        """The directory says ``peer`` left: its unanswered offers and unconnected accepts end
        now (a transfer already streaming goes on: TCP does not need the directory)."""
        with self.lock:
            actions = self.control.peer_left(peer)
        self._run(actions)

    def on_undelivered(self, peer: str, payload: bytes) -> None:
        """A control message ``peer`` never acknowledged: an offer or accept that never arrived
        ends its transfer (the others are best-effort notices)."""
        with self.lock:
            actions = self.control.undelivered(peer, payload)
        self._run(actions)

    # --- carrying out what the control logic decided ---------------------------------------

    def _run(self, actions: list[Action] | list[Stop]) -> None:
        for a in actions:
            if isinstance(a, Send):
                self._send(a.peer, a.payload)
            elif isinstance(a, Emit):
                self._emit(a.event)
            elif isinstance(a, Stop):
                self.stop(a.transfer, a.reason, tell_peer=a.tell_peer, discard=a.discard)
            elif isinstance(a, NoWayIn):
                a.transfer.reverse_ready.set()  # its worker stops waiting: the UDP path
            elif isinstance(a, ConnectBack):
                self._spawn(self._sender.connect_back, a.transfer, a.port,
                            name=f"files-send-{a.transfer.tid}")

    def _send(self, peer: str, payload: bytes) -> None:
        try:
            self._send_control(peer, payload)
        except Exception as exc:    # the engine may be closing; the transfer fails on its own
            log.warning("cannot send file control to %s: %s", peer, exc)

    def _handoff(self, conn: socket.socket, addr: tuple, role: bytes, token: bytes) -> None:
        """A complete preamble from the listener: hand the connection to its transfer."""
        with self.lock:
            t = self.control.claim(role, token)
            if t is not None and not t.outgoing:
                t.reverse_sock = conn
                t.reverse_ready.set()
                return
        if t is None:
            if self._listener is not None:
                self._listener.refuse(conn, addr, "for no transfer waiting for one",
                                      time.monotonic())
            else:
                conn.close()
            return
        self._spawn(self._sender.run, t, conn, rewait=True, name=f"files-send-{t.tid}")

    def _stream_handoff(self, peer: str, sid: int, conn: UdpConn) -> bool:
        """The first frame of a stream on the UDP path (engine thread): our transfer takes it,
        or nobody does."""
        if self.settings.udp == "tcp":
            return False
        with self.lock:
            t = self.control.claim_stream(peer, sid)
        if t is None:
            return False
        log.info("%s opened #%d over the UDP path", peer, t.tid)
        self._spawn(self._sender.run, t, conn, rewait=True, name=f"files-send-{t.tid}")
        return True

    def _awaits_connection(self) -> bool:
        with self.lock:
            return self.control.awaits_connection()

    def _peers(self) -> set[str]:
        with self.lock:
            return self.control.peers()

    def _spawn(self, target: Callable[..., object], *args: object, name: str,
               **kwargs: object) -> None:
        def run() -> None:
            try:
                target(*args, **kwargs)
            except Exception:   # last resort: a transfer must never stay "running" forever
                log.exception("file thread %s died", name)
                for t in args:
                    if isinstance(t, Transfer):
                        self.fail(t, "internal error")
                        if t.sock is not None:
                            hang_up(t.sock)
            finally:
                self._threads.discard(threading.current_thread())
        th = threading.Thread(target=run, name=name, daemon=True)
        self._threads.add(th)
        th.start()

    # --- what the workers use (state.Core) ----------------------------------------------------

    def key(self, t: Transfer) -> bytes | None:
        return self._key_for(t.peer, KEY_LABEL + t.token)

    def address(self, peer: str) -> tuple[str, int] | None:
        return self._address_of(peer)

    def send(self, peer: str, msg: wire.Control) -> None:
        self._send(peer, wire.encode_control(msg))

    def udp_first(self, peer: str) -> bool:
        if self.settings.udp != "auto":
            return self.settings.udp == "udp"
        try:
            return bool(self._udp_first(peer))
        except Exception:   # the engine is closing: nobody knows; TCP first, as without it
            return False

    def udp_allowed(self) -> bool:
        return self.settings.udp != "tcp"

    def open_stream(self, t: Transfer) -> UdpConn:
        return self.lane.open(t.peer, udpwire.stream_id(t.token))

    def is_live(self, t: Transfer) -> bool:
        with self.lock:
            return self.control.is_live(t)

    def _take(self, t: Transfer) -> bool:
        """Remove ``t`` from the live set; True for the one caller that gets to report it."""
        with self.lock:
            if not self.control.take(t):
                return False
        with t.emit_lock:           # a progress event being emitted goes first
            return True

    def finished(self, t: Transfer, path: Path) -> None:
        """A worker verified ``t`` (sent, or received into ``path``): report it."""
        if not self._take(t):
            return
        if t.outgoing:
            log.info("sent %s to %s (#%d)", t.name, t.peer, t.tid)
        else:
            log.info("received %s from %s into %s", t.name, t.peer, path)
        self._emit(FileDone(t.tid, t.peer, t.name, path, outgoing=t.outgoing))

    def stop(self, t: Transfer, reason: str, *, tell_peer: bool, discard: bool = False) -> None:
        """End ``t`` now (user, peer, expiry or close): report it, tell the peer, break its
        socket so its thread stops; the thread itself then cleans up the .part."""
        with self.lock:
            running = self.control.stopping(t, reason, discard)
            t.stop.set()
            t.reverse_ready.set()
            sock = t.sock
        if not self._take(t):
            return
        if tell_peer:
            self.send(t.peer, farewell(t, reason))
        if sock is not None:
            hang_up(sock)
        log.info("transfer #%d (%s) stopped: %s", t.tid, t.name, reason)
        self._emit(FileFailed(t.tid, t.peer, t.name, reason, t.outgoing))
        if not running and t.discard:
            self._store.drop(t)

    def fail(self, t: Transfer, reason: str, *, lost: bool = False, tell: bool = True) -> None:
        """A transfer thread hit an error; report it unless someone stopped it first, and tell
        the peer. When the connection was merely ``lost``, the peer's CANCEL/DECLINE may be a
        moment behind its closed socket: wait briefly for the real reason."""
        if lost and t.stop.wait(self.settings.reason_grace):
            return
        if self._take(t):
            log.warning("transfer #%d (%s) with %s failed: %s", t.tid, t.name, t.peer, reason)
            if tell:
                self.send(t.peer, farewell(t, f"failed: {reason}"))
            self._emit(FileFailed(t.tid, t.peer, t.name, reason, t.outgoing))

    def progress(self, t: Transfer, done: int) -> None:
        now = time.monotonic()
        m = t.meter
        if m.last_emit == 0.0:          # the first call: show the bar (at the resume offset)
            rate = 0.0
        else:
            dt = now - m.last_emit
            if dt < self.settings.progress_interval and done < t.size:
                return
            inst = (done - m.last_done) / dt if dt > 0 else 0.0
            m.rate = inst if m.rate == 0.0 else 0.5 * m.rate + 0.5 * inst   # smooth the ETA
            rate = m.rate
        m.last_emit, m.last_done = now, done
        # Never after this transfer's FileDone or FileFailed (a late one would bring its row
        # back in the window): _take waits for an emit in progress (not under the lock, which
        # the engine thread takes).
        with t.emit_lock:
            if t.stop.is_set() or t.state is State.ENDED:
                return
            self._emit(FileProgress(t.tid, t.peer, t.name, done, t.size, rate, t.outgoing))
