"""The receiving worker: checks the disk, accepts, connects to the sender (or asks it to
connect back), receives into the ``.part`` and moves the verified file into place."""

from __future__ import annotations

import logging
import shutil
import socket
from pathlib import Path

from client.files import stream as fs
from client.files import wire
from client.files.resume import ResumeStore, is_empty
from client.files.state import Core, State, Transfer, hang_up, is_lost, reason_of

log = logging.getLogger(__name__)


class Receiver:
    def __init__(self, core: Core, store: ResumeStore) -> None:
        self._core = core
        self._store = store

    def work(self, t: Transfer) -> None:
        """The thread of one accepted incoming transfer, to its one report."""
        core = self._core
        final: list[Path] = []
        error, lost = None, False
        try:
            self._receive(t, final)
        except (OSError, fs.StreamError) as exc:
            error, lost = reason_of(exc), is_lost(exc)
        except Exception:
            log.exception("receiving #%d failed", t.tid)
            error = "internal error"
        finally:
            if error is not None and not lost:      # tell the sender before it sees the close
                core.send(t.peer, wire.Decline(t.token, f"failed: {error}"))
            self.release(t)
        # Report only once the .part is closed and free again, so a new offer can resume it.
        if error is not None:
            core.fail(t, error, lost=lost, tell=lost)
        elif final:
            core.finished(t, final[0])

    def _receive(self, t: Transfer, final: list[Path]) -> None:
        core = self._core
        if t.stop.is_set():
            return
        # Read once: the user may change it mid-transfer; this one finishes where it began.
        t.out, offset = self._store.open(t, Path(core.downloads))
        assert t.part is not None
        free = shutil.disk_usage(t.part.parent).free
        if free < t.size - offset + core.settings.free_space_margin:
            core.stop(t, f"not enough free space ({free} bytes free, "
                         f"{t.size - offset} needed)", tell_peer=True)
            return
        core.send(t.peer, wire.Accept(t.token))
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
            key = core.key(t)
            if key is None:
                raise fs.StreamError(f"no encrypted session with {t.peer}")
            conn.settimeout(core.settings.io_timeout)
            try:
                fs.receive_stream(conn, key=key, out=out, offset=offset, prefix=prefix,
                                  size=t.size, progress=lambda done: core.progress(t, done),
                                  stop=t.stop.is_set,
                                  finish=lambda: final.append(self._store.finish(t, out)))
                return
            except fs.NotConnected:
                if reversed_ or t.stop.is_set():
                    raise
            with core.lock:
                t.sock = None
                if not t.stop.is_set():
                    t.move(State.ACCEPTED)
            hang_up(conn)
            log.info("%s's file listener dropped our connection before the stream; %s", t.peer,
                     "trying again" if direct_left else "asking it to connect")
            if t.stop.wait(core.settings.retry_pause):
                return

    def release(self, t: Transfer) -> None:
        """The worker is done with the .part: close it, drop it if cancelled or empty."""
        if t.out is not None and not t.out.closed:
            t.out.close()
        if t.sock is not None:
            hang_up(t.sock)
        with self._core.lock:
            t.move(State.RELEASED)  # from now on the listener hands it no connection
            # the sender's connection may have landed just after our wait for it timed out
            late = t.reverse_sock if t.reverse_sock is not t.sock else None
            drop = t.discard or is_empty(t.part)
            self._store.release(t.part)
        if late is not None:
            hang_up(late)
        if drop:
            self._store.drop(t)

    def _connect_or_wait(self, t: Transfer, *, direct: bool
                         ) -> tuple[fs.Conn | None, bool]:
        """The receiver connects to the sender (if ``direct``); failing that, it asks the
        sender to connect; failing that too (or at once, when TCP is known not to work), it
        opens a stream on the UDP path. Returns (connection or None if stopped, whether it
        was the last resort: REVERSE or UDP)."""
        core = self._core
        addr = core.address(t.peer)
        if addr is None:
            raise fs.StreamError(f"{t.peer} is not online")
        conn: fs.Conn | None = None
        udp_first = core.udp_first(t.peer)
        if direct and not udp_first:
            try:
                conn = socket.create_connection((addr[0], t.port),
                                                timeout=core.settings.connect_timeout)
                conn.sendall(wire.encode_preamble(wire.ROLE_RECEIVER, t.token))
            except OSError as exc:
                log.info("cannot reach %s's file listener (%s); asking it to connect", t.peer, exc)
                conn = None
        if conn is None and not udp_first and core.port:
            core.send(t.peer, wire.Reverse(t.token, core.port))
            t.reverse_ready.wait(core.settings.reverse_timeout)
            conn = t.reverse_sock
            if conn is None and t.stop.is_set():
                return None, True
        if conn is None:
            if not core.udp_allowed():
                raise fs.StreamError(f"cannot connect to {t.peer}, and {t.peer} could not "
                                     "connect either" if core.port else
                                     f"cannot connect to {t.peer} and we have no listener")
            log.info("receiving #%d from %s over the UDP path", t.tid, t.peer)
            conn = core.open_stream(t)
            direct = False
        with core.lock:
            t.sock = conn
            t.move(State.RUNNING)
            stopped = t.stop.is_set()
        if stopped:
            hang_up(conn)
            return None, True
        return conn, not direct or t.reverse_sock is conn
