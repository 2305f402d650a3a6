"""The UDP path of file transfers: streams over the peer's encrypted UDP path.

``UdpLane`` is the engine's side (a ``client.contracts.BulkSource``): stream frames that
arrived go in with ``on_frame``; frames to seal and send come out of ``take_bulk``, which the
engine calls only after the chat's datagrams of the same turn went out, so chat is always
ahead of file data. ``UdpConn`` is the workers' side: a blocking, socket-like face of one
stream (``sendall``, ``recv_into``, ``settimeout``, ``shutdown``, ``close``), so the
encrypted file stream of ``client.files.stream`` runs over it unchanged: the same hello,
resume offset, prefix check, chunks and DONE as over TCP.

Threads: the engine thread calls ``on_frame``/``take_bulk``/``next_deadline``; a transfer's
worker calls its conn. Each conn's ``Stream`` (sans-IO) is guarded by the conn's condition.
A stream is opened by the receiving side (``open``); the first frame of an unknown stream id
from a peer is offered to ``accept(peer, sid, conn)``, which takes it only for a transfer that
waits for exactly that (the id is secret: the first 8 bytes of the transfer's token). After a
close the stream lingers (FIN, and what is still unacknowledged) at most ``linger`` seconds.
"""

from __future__ import annotations

import errno
import logging
import math
import threading
import time
from collections.abc import Callable

from client.files import udpwire as uw
from client.files.udpstream import Stream, StreamSettings
from models.errors import ProtocolError

log = logging.getLogger(__name__)

Accept = Callable[[str, int, "UdpConn"], bool]
# A worker is woken when this much can be read (or written), not for every datagram: each
# wake-up costs a thread switch, which in CPython costs more than handling a datagram.
BATCH = 256 << 10


class UdpConn:
    """One stream as the file workers see it (the subset of a socket they use)."""

    def __init__(self, lane: UdpLane, peer: str, sid: int, stream: Stream) -> None:
        self.peer = peer
        self.sid = sid
        self.stream = stream
        self.cond = threading.Condition(threading.Lock())
        self.closed = False          # closed by us: only lingers to deliver what is written
        self.linger_until = math.inf
        self.waiting = 0             # workers blocked on ``cond`` (notify only then: it costs)
        self.want_read = 0           # bytes a blocked reader waits for (0: none waits)
        self.want_write = 0          # room a blocked writer waits for (0: none waits)
        self._lane = lane
        self._timeout: float | None = None

    def settimeout(self, timeout: float | None) -> None:
        self._timeout = timeout

    def sendall(self, data: bytes | bytearray | memoryview) -> None:
        view = memoryview(data).cast("B")
        deadline = self._deadline()
        while len(view):
            with self.cond:
                while True:
                    if self.closed:
                        raise OSError(errno.EBADF, "stream closed")
                    if self.stream.error is not None:
                        raise ConnectionResetError(errno.ECONNRESET, self.stream.error)
                    n = self.stream.write(view)
                    if n:
                        break
                    self.want_write = min(len(view), BATCH)
                    try:
                        self._wait(deadline)
                    finally:
                        self.want_write = 0
            view = view[n:]
            self._lane.kick()

    def recv_into(self, view: memoryview | bytearray) -> int:
        """Like a socket's, but returns only once ``min(len(view), BATCH)`` bytes are there
        (or the stream ended or broke): fewer, larger wake-ups."""
        deadline = self._deadline()
        mv = memoryview(view).cast("B")
        want = min(len(mv), BATCH)
        with self.cond:
            s = self.stream
            while True:
                if self.closed:
                    return 0
                if s.readable() >= want or s.readable() and (s.eof or s.error is not None):
                    n = s.read_into(mv)
                    break
                if s.eof:
                    return 0
                if s.error is not None:
                    raise ConnectionResetError(errno.ECONNRESET, s.error)
                self.want_read = want
                try:
                    self._wait(deadline)
                finally:
                    self.want_read = 0
            update = self.stream.owes_ack()   # e.g. a window update
        if update:
            self._lane.kick()
        return n

    def shutdown(self, how: int = 2) -> None:
        """No more writes or reads: what is written still goes out (then FIN)."""
        with self.cond:
            if self.closed:
                return
            self.closed = True
            self.stream.close_write()
            self.linger_until = time.monotonic() + self._lane.linger
            self.cond.notify_all()
        self._lane.kick()

    def close(self) -> None:
        self.shutdown()

    def _deadline(self) -> float | None:
        return None if self._timeout is None else time.monotonic() + self._timeout

    def _wait(self, deadline: float | None) -> None:
        left = 1.0 if deadline is None else deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("timed out")
        self.waiting += 1
        try:
            self.cond.wait(left)
        finally:
            self.waiting -= 1


class UdpLane:
    """Every file stream of one client: the engine's bulk source and the workers' factory."""

    def __init__(self, *, wake: Callable[[], None], accept: Accept,
                 settings: StreamSettings | None = None, max_streams: int = 64,
                 linger: float = 3.0) -> None:
        self.settings = settings or StreamSettings()
        self.max_streams = max_streams
        self.linger = linger
        self._wake = wake
        self._accept = accept
        self._lock = threading.Lock()
        self._conns: dict[tuple[str, int], UdpConn] = {}
        self._order: list[UdpConn] = []   # round robin of the engine thread
        self._next = 0
        self._kicked = False
        self.dropped = 0

    # ---- the workers' side -------------------------------------------------------------------

    def open(self, peer: str, sid: int) -> UdpConn:
        """A new stream to ``peer`` (the receiving side of a transfer opens it)."""
        with self._lock:
            if (peer, sid) in self._conns or len(self._conns) >= self.max_streams:
                raise ConnectionRefusedError(errno.ECONNREFUSED, "no room for another stream")
            conn = self._add(peer, sid, time.monotonic())
        return conn

    def kick(self) -> None:
        """A stream has something to send: wake the engine (once until it looks)."""
        if not self._kicked:
            self._kicked = True
            self._wake()

    def close(self) -> None:
        with self._lock:
            conns = list(self._conns.values())
            self._conns.clear()
            self._order = []
        for conn in conns:
            with conn.cond:
                conn.stream.abort()
                conn.cond.notify_all()

    def _add(self, peer: str, sid: int, now: float) -> UdpConn:
        conn = UdpConn(self, peer, sid, Stream(sid, now, self.settings))
        self._conns[(peer, sid)] = conn
        self._order = list(self._conns.values())
        return conn

    # ---- the engine thread (client.contracts.BulkSource) -----------------------------------

    def on_frame(self, peer: str, frame: bytes, now: float) -> None:
        """An authenticated stream frame from ``peer``; never raises."""
        try:
            seg = uw.decode(frame)
        except ProtocolError as exc:
            self._drop(peer, f"malformed stream frame ({exc.code})")
            return
        conn = self._conns.get((peer, seg.sid))
        if conn is None:
            conn = self._incoming(peer, seg, now)
            if conn is None:
                return
        with conn.cond:
            s = conn.stream
            s.receive(seg, now)
            if conn.waiting and (conn.want_read and s.readable() >= conn.want_read
                                 or s.eof or s.error is not None):
                conn.cond.notify_all()

    def _incoming(self, peer: str, seg: uw.Segment, now: float) -> UdpConn | None:
        if seg.flags & uw.FLAG_RESET or not seg.has_seq or seg.seq != 0:
            self._drop(peer, "frame for no stream")
            return None
        with self._lock:
            if len(self._conns) >= self.max_streams:
                self._drop(peer, "too many streams")
                return None
            conn = self._add(peer, seg.sid, now)
        try:
            taken = self._accept(peer, seg.sid, conn)
        except Exception:
            log.exception("accepting a stream from %s failed", peer)
            taken = False
        if not taken:
            with self._lock:
                self._remove(conn)
            self._drop(peer, "stream for no transfer waiting for one")
            return None
        return conn

    def take_bulk(self, now: float, budget: int) -> list[tuple[str, bytes]]:
        """Frames to send now, at most ``budget``, the streams taking turns."""
        self._kicked = False
        order = self._order
        out: list[tuple[str, bytes]] = []
        if not order:
            return out
        share = max(1, budget // len(order))
        done = []
        for i in range(len(order)):
            conn = order[(self._next + i) % len(order)]
            with conn.cond:
                frames = conn.stream.poll(now, min(share, budget - len(out)))
                finished = conn.closed and (conn.stream.flushed() or now >= conn.linger_until
                                            or conn.stream.error is not None)
                s = conn.stream
                if conn.waiting and (conn.want_write and s.writable() >= conn.want_write
                                     or s.error is not None):
                    conn.cond.notify_all()      # room in the send buffer, or broken
            out.extend((conn.peer, f) for f in frames)
            if finished:
                done.append(conn)
            if len(out) >= budget:
                break
        self._next = (self._next + 1) % len(order)
        if done:
            with self._lock:
                for conn in done:
                    self._remove(conn)
        return out

    def next_deadline(self, now: float) -> float | None:
        best = math.inf
        for conn in self._order:
            with conn.cond:
                due = conn.stream.next_deadline(now)
            if due is not None:
                best = min(best, due)
            if conn.closed:
                best = min(best, conn.linger_until)
            if best <= now:
                return now
        return None if best == math.inf else best

    def _remove(self, conn: UdpConn) -> None:
        if self._conns.get((conn.peer, conn.sid)) is conn:
            del self._conns[(conn.peer, conn.sid)]
            self._order = list(self._conns.values())

    def _drop(self, peer: str, why: str) -> None:
        self.dropped += 1
        n = self.dropped
        if n & (n - 1) == 0:
            log.info("dropped a file stream frame from %s: %s (%d so far)", peer, why, n)
