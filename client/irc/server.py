"""The IRC gateway's IO edge: a TCP listener (stdlib sockets + threads) serving one IRC client
at a time for one engine.

* Bound to 127.0.0.1:6667 by default; any other address needs a password (checked from
  ``PASS``), refused at start without one.
* One connection drives the engine; a second one gets ``ERROR`` (another IRC client is
  attached) and is closed. When the client goes, the engine stays online: peers notice nothing.
  What came meanwhile and history does not hold (private lines, notices) is kept (bounded) and
  replayed with its time to the next client, after the channels' history.
* Threads: ``irc-accept`` (the listener), ``irc-events`` (drains the engine's event queue,
  always, attached or not), ``irc-conn`` (reads the attached client). The session is touched
  under one lock; writes to a client that does not read time out and drop it.
"""

from __future__ import annotations

import collections
import contextlib
import ipaddress
import logging
import queue
import select
import socket
import threading
import time

from client.chat.api import ChatApi
from client.config import BadServerAddress, parse_server
from client.errors import ClientError
from client.irc import protocol as p
from client.irc.replies import kept_while_detached
from client.irc.session import DEFAULT_LIMITS, Limits, Session

log = logging.getLogger(__name__)

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 6667
SEND_TIMEOUT = 10.0  # seconds a write may take before the client is dropped
KEEP_DETACHED = 1000  # events kept for the next client
POLL = 0.2
LINGER = 1.0  # seconds a closed client's last bytes are read and dropped


class GatewayError(ClientError):
    """The gateway cannot serve as asked (address in use, no password for a public address)."""


def parse_listen(text: str) -> tuple[str, int]:
    """``--irc [HOST:]PORT``: ``6667``, ``0.0.0.0:6667``, ``[::1]:6667`` (a host alone: port
    6667); ``ValueError`` with a sentence if bad."""
    text = text.strip()
    if text.isdigit():
        if int(text) > 65535:
            raise ValueError(f"“{text}” is not a port number (1–65535).")
        return DEFAULT_HOST, int(text)
    try:
        return parse_server(text, DEFAULT_PORT)
    except BadServerAddress as exc:
        raise ValueError(str(exc)) from None


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class _Attached:
    """The attached client: its socket and session."""

    def __init__(self, sock: socket.socket, session: Session) -> None:
        self.sock = sock
        self.session = session
        self.dead = False


class IrcGateway:
    def __init__(self, api: ChatApi, events: queue.Queue, address: tuple[str, int] = (
            DEFAULT_HOST, DEFAULT_PORT), *, password: str | None = None,
                 limits: Limits = DEFAULT_LIMITS) -> None:
        if not is_loopback(address[0]) and not password:
            raise GatewayError(f"serving IRC on {address[0]} (not this machine only) needs "
                               "--irc-password")
        self.api = api
        self.events = events
        self.password = password or None
        self.limits = limits
        self._want = address
        self._lock = threading.Lock()
        self._attached: _Attached | None = None
        self._kept: collections.deque[tuple[object, float]] = collections.deque(
            maxlen=KEEP_DETACHED)
        self._stop = threading.Event()
        self._listener: socket.socket | None = None
        self._threads: list[threading.Thread] = []
        self.stats = {"connections": 0, "refused": 0, "events": 0}

    @property
    def address(self) -> tuple[str, int]:
        assert self._listener is not None, "not started"
        host, port = self._listener.getsockname()[:2]
        return host, port

    def start(self) -> None:
        host, port = self._want
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        try:
            infos = socket.getaddrinfo(host, port, family, socket.SOCK_STREAM)
            sock = socket.socket(infos[0][0], socket.SOCK_STREAM)
            if hasattr(socket, "SO_EXCLUSIVEADDRUSE"):  # Windows: no port stealing
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_EXCLUSIVEADDRUSE, 1)
            else:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(infos[0][4])
            sock.listen(4)
        except OSError as exc:
            raise GatewayError(f"cannot serve IRC on {host}:{port}: {exc}") from None
        sock.settimeout(POLL)
        self._listener = sock
        for target, name in ((self._accept_loop, "irc-accept"), (self._event_loop, "irc-events")):
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)

    def serve_forever(self) -> None:
        """Block until ``close()`` (Ctrl-C raises KeyboardInterrupt here)."""
        while not self._stop.wait(POLL):
            pass

    def close(self) -> None:
        self._stop.set()
        with self._lock:
            attached = self._attached
            if attached is not None:
                attached.session.close("OpenLChat is shutting down")
                self._flush(attached)
                self._drop(attached)
        if self._listener is not None:
            self._listener.close()
        for thread in self._threads:
            if thread is not threading.current_thread():
                thread.join(2.0)

    # --- threads -------------------------------------------------------------------------------
    def _accept_loop(self) -> None:
        assert self._listener is not None
        while not self._stop.is_set():
            try:
                sock, peer = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                if not self._stop.is_set():
                    log.exception("IRC listener failed")
                return
            self._attach(sock, peer)

    def _attach(self, sock: socket.socket, peer: tuple) -> None:
        sock.settimeout(SEND_TIMEOUT)
        with self._lock:
            busy = self._attached is not None
            if not busy:
                attached = _Attached(sock, Session(self.api, time.monotonic(),
                                                   password=self.password, limits=self.limits))
                self._attached = attached
                self.stats["connections"] += 1
        if busy:
            self.stats["refused"] += 1
            log.info("IRC: refused a second client from %s", peer[0])
            error = p.message("ERROR", "Closing link: another IRC client is attached to this "
                              "OpenLChat client (one at a time)")
            threading.Thread(target=_close_gently, args=(sock, p.format_message(error)),
                             name="irc-refuse", daemon=True).start()
            return
        log.info("IRC: client attached from %s", peer[0])
        thread = threading.Thread(target=self._read_loop, args=(attached,), name="irc-conn",
                                  daemon=True)
        thread.start()

    def _read_loop(self, attached: _Attached) -> None:
        session, sock = attached.session, attached.sock
        try:
            while not attached.dead and not self._stop.is_set():
                now = time.monotonic()
                wait = min(max(session.next_deadline() - now, 0.0), POLL)
                readable, _, _ = select.select([sock], [], [], wait)
                data = sock.recv(65536) if readable else None
                if data == b"":
                    break
                with self._lock:
                    now = time.monotonic()
                    if data:
                        was = session.registered
                        session.receive(data, now)
                        if session.registered and not was:
                            self._replay_kept(session)
                    session.on_timer(now)
                    self._flush(attached)
                    if session.closed:
                        break
        except (OSError, ValueError) as exc:  # reset, closed under us
            log.debug("IRC connection ended: %s", exc)
        finally:
            with self._lock:
                gentle = not attached.dead
                attached.dead = True  # no more writes from the event thread
                if self._attached is attached:
                    self._attached = None
            if gentle:
                _close_gently(sock, b"")
            log.info("IRC: client detached")

    def _event_loop(self) -> None:
        while not self._stop.is_set():
            try:
                event = self.events.get(timeout=POLL)
            except queue.Empty:
                continue
            with self._lock:
                self.stats["events"] += 1
                attached = self._attached
                if attached is not None and attached.session.registered:
                    attached.session.on_event(event)
                    self._flush(attached)
                elif kept_while_detached(event):
                    self._kept.append((event, time.time()))

    # --- helpers (under the lock) --------------------------------------------------------------
    def _replay_kept(self, session: Session) -> None:
        while self._kept:
            event, ts = self._kept.popleft()
            session.on_event(event, ts)

    def _flush(self, attached: _Attached) -> None:
        data = attached.session.take_output()
        if not data or attached.dead:
            return
        try:
            attached.sock.sendall(data)
        except OSError as exc:  # a client that does not read, or gone
            log.info("IRC: dropping the client: %s", exc)
            self._drop(attached)

    def _drop(self, attached: _Attached) -> None:
        if attached.dead:
            return
        attached.dead = True
        if self._attached is attached:
            self._attached = None
        with contextlib.suppress(OSError):
            attached.sock.shutdown(socket.SHUT_RDWR)
        attached.sock.close()


def _close_gently(sock: socket.socket, last: bytes) -> None:
    """Send ``last``, then close without a reset: what the client still sends is read and
    dropped for a moment, so it gets our last line (an ERROR) before the connection ends."""
    try:
        if last:
            sock.sendall(last)
        sock.shutdown(socket.SHUT_WR)
        end = time.monotonic() + LINGER
        while time.monotonic() < end:
            readable, _, _ = select.select([sock], [], [], max(0.0, end - time.monotonic()))
            if not readable or not sock.recv(65536):
                break
    except OSError:
        pass
    finally:
        sock.close()
