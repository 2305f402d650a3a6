"""The sending worker: streams a file over a connection the receiver made, or one we made to
its listener after a REVERSE."""

from __future__ import annotations

import logging
import socket

from client.files import stream as fs
from client.files import wire
from client.files.state import Core, State, Transfer, hang_up, is_lost, reason_of

log = logging.getLogger(__name__)


class Sender:
    def __init__(self, core: Core) -> None:
        self._core = core

    def connect_back(self, t: Transfer, port: int) -> None:
        """REVERSE: connect to the receiver's listener; once more if that connection is
        dropped before the stream starts (its listener may be flooded)."""
        try:
            self._connect_back_tries(t, port)
        except Exception:   # e.g. address_of timed out on a closing engine
            log.exception("connecting back for #%d failed", t.tid)
            self._core.fail(t, "internal error")

    def _connect_back_tries(self, t: Transfer, port: int) -> None:
        core = self._core
        for again in (True, False):
            addr = core.address(t.peer)
            if addr is None:
                core.fail(t, f"{t.peer} is not online")
                return
            try:
                conn = socket.create_connection((addr[0], port),
                                                timeout=core.settings.connect_timeout)
                conn.sendall(wire.encode_preamble(wire.ROLE_SENDER, t.token))
            except OSError as exc:
                if core.udp_allowed():
                    self._via_udp(t, exc)
                else:
                    core.fail(t, f"cannot connect to {t.peer} either way: {exc}")
                return
            if self.run(t, conn, again=again) or t.stop.wait(core.settings.retry_pause):
                return
            log.info("%s's file listener dropped our connection; trying once more", t.peer)

    def _via_udp(self, t: Transfer, exc: OSError) -> None:
        """Neither side could connect: ask the receiver to open a stream on the UDP path, and
        wait for it as for the receiver's connection (the offer's expiry bounds the wait)."""
        core = self._core
        with core.lock:
            if t.stop.is_set() or not core.is_live(t):
                return
            t.state, t.since, t.sock = State.ACCEPTED, None, None
        log.info("cannot connect to %s's file listener either (%s): over the UDP path", t.peer,
                 exc)
        core.send(t.peer, wire.ViaUdp(t.token))

    def run(self, t: Transfer, conn: fs.Conn, *, again: bool = False,
            rewait: bool = False) -> bool:
        """Stream ``t`` over ``conn``. If the connection breaks before the receiver's stream
        header (nothing happened on it) and ``again``, return False so the caller tries another
        connection; with ``rewait``, go back to waiting for the receiver to connect (it retries,
        or asks for REVERSE). True when ``t`` is finished with, either way."""
        core = self._core
        assert t.path is not None
        with core.lock:
            t.sock = conn
            stopped = t.stop.is_set()
        if stopped:
            hang_up(conn)
            return True
        try:
            key = core.key(t)     # may raise: the engine is gone
            if key is None:
                raise fs.StreamError(f"no encrypted session with {t.peer}")
            st = t.path.stat()
            if (st.st_size, max(st.st_mtime_ns, 0)) != (t.size, t.mtime_ns):
                raise fs.StreamError("the file changed since it was offered")
            conn.settimeout(core.settings.io_timeout)
            fs.send_stream(conn, key=key, path=t.path, size=t.size,
                           progress=lambda done: core.progress(t, done),
                           stop=t.stop.is_set, chunk=core.settings.chunk)
        except fs.NotConnected as exc:
            if again and not t.stop.is_set():
                return False
            if rewait and self._rewait(t):
                return True
            core.fail(t, reason_of(exc), lost=True)
        except (OSError, fs.StreamError) as exc:
            core.fail(t, reason_of(exc), lost=is_lost(exc))
        except Exception:
            log.exception("sending #%d failed", t.tid)
            core.fail(t, "internal error")
        else:
            core.finished(t, t.path)
        finally:
            hang_up(conn)
        return True

    def _rewait(self, t: Transfer) -> bool:
        """The receiver's connection broke before its stream began: wait for another one."""
        with self._core.lock:
            if t.stop.is_set() or not self._core.is_live(t):
                return False
            t.state, t.since, t.sock = State.ACCEPTED, None, None
        log.info("connection from %s for #%d dropped before the stream; waiting for another",
                 t.peer, t.tid)
        return True
