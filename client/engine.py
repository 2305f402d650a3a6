"""The client engine: one UDP socket, one thread, all the sans-IO parts wired together.

What the UIs (``client/terminal.py``, ``client/gui.py``) drive; see docs/ARCHITECTURE.md
("Engine", "Threads") for the contract and docs/PROTOCOL.md section 5 for the behaviour.

- ``start()`` registers over TCP (``client.registration``), then starts the engine thread.
- The engine thread owns the UDP socket, the roster, the Messenger and the transport. It loops
  on ``select`` with the earliest deadline as timeout. Public methods post a command and wake it
  with a one-byte datagram to its own socket (``close()`` does not wake a blocked ``recvfrom``
  on Linux, and a datagram works on Windows too).
- Datagrams starting with 0xC1 are peer traffic, accepted only from an address the roster lists
  (and then authenticated by the secure transport); anything else must come from the server's
  address and carry our keyword.
- Server channel: a PING (with our roster digest) every ping_interval/3; two PONGs in a row with
  another digest -> re-fetch the roster; no PONG for a ping_interval -> ``ServerLost``, keep
  PINGing, try a TCP reclaim with backoff; ``UNKNOWN`` or a reclaim answering with a new keyword
  -> registered again (``Reregistered``). TCP always runs in a worker thread.
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import pathlib
import queue
import select
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

from client import config
from client import events as ev
from client.peer.messenger import (
    KIND_CONTROL,
    KIND_PRIVATE,
    KIND_ROOM,
    MAX_MESSAGE,
    Acked,
    Delivered,
    MessageTooLarge,
    Messenger,
    Undelivered,
)
from client.registration import Registration, RegistrationError, ServerUnreachable, register
from client.roster import Changes, Roster
from models import directory_wire as wire
from models.errors import ProtocolError
from models.nickname import canonical
from models.peer_wire import MAGIC

__all__ = ["Engine", "MessageTooLarge", "RegistrationError", "ServerUnreachable", "UnknownPeer"]

log = logging.getLogger(__name__)

SESSION_FILE = "session.json"
WAKE = b"\x00"
PEER_MAGIC = bytes((MAGIC,))  # first byte of every peer datagram
# Receive buffer: every valid datagram is <= 1200 bytes (peer envelope, packed REF_ADD/REF_DEL);
# a longer one is truncated to this, still too long, and dropped by the size checks (Windows
# instead fails the recvfrom with WSAEMSGSIZE, and the datagram is gone: counted, not logged).
MAX_UDP = 4096
WSAEMSGSIZE = 10040
DRAIN_BATCH = 512  # datagrams handled before timers get a turn
PINGS_PER_INTERVAL = 3
# A PING still unanswered after ping_interval/RETRY_DIVISOR is repeated at once (and so on): under
# 20% loss each way a PING/PONG round trip fails 36% of the time, and a server that is there must
# not be declared lost by chance (0.36**14 ~ 1e-6 in the 2/3 interval before it would be).
RETRY_DIVISOR = 20
LOST_AFTER = 1.0  # ping intervals without a PONG before the server counts as lost
RECLAIM_BACKOFF_MAX = 60.0
GHOST_GRACE = 3.0  # ping intervals a peer missing after a re-registration stays listed
# ping intervals a peer missing from a re-fetched roster stays listed: a server restarted on its
# database may not have had the peer's address on disk yet and lists it again at its next PING
REFETCH_GRACE = 1.0
CALL_TIMEOUT = 5.0
QUIT_WAIT = 0.5  # close() waits this long for QUIT to be sent before closing files
CALL_SLICE = 0.05  # a caller re-checks that the engine thread still runs this often
FILES_TICK = 1.0  # seconds between FileTransfers.tick calls (offer expiry)
MAX_COMMANDS_PER_TURN = 1000
MAX_IDENTITY_WAITERS = 64  # fetch_identity callers waiting on a handshake (a UI, not a flood)


_NO_CALLS: list[_Call] = []  # never appended to


class UnknownPeer(ValueError):
    """No such nickname online."""


class _Call:
    """A command for the engine thread and, for the caller, its result."""

    __slots__ = ("fn", "done", "result", "error", "on_drop")

    def __init__(self, fn: Callable[[float], Any],
                 on_drop: Callable[[], None] | None = None) -> None:
        self.fn = fn
        self.done = threading.Event()
        self.result: Any = None
        self.error: BaseException | None = None
        # run instead of fn when the engine stops with the command still queued
        self.on_drop = on_drop


def _same_nick(a: str, b: str) -> bool:
    try:
        return canonical(a) == canonical(b)
    except ProtocolError:
        return a == b


def _literal_family(host: str) -> int | None:
    """AF_INET6 / AF_INET for an IP literal, None for a host name (resolved later)."""
    try:
        ip = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return None
    return socket.AF_INET6 if ip.version == 6 else socket.AF_INET


def _bind_for(bind: tuple[str, int], family: int | None) -> tuple[str, int]:
    """The default wildcard bind, in the server's family (an explicit address stays)."""
    host, port = bind
    if host in ("", "0.0.0.0", "::") and family is not None:
        host = "::" if family == socket.AF_INET6 else "0.0.0.0"
    return host, int(port)


def _quiet_windows_resets(sock: socket.socket) -> None:
    # On Windows an ICMP port-unreachable makes the *next* recvfrom fail with WSAECONNRESET;
    # SIO_UDP_CONNRESET turns that off. Elsewhere there is no such ioctl (we also catch it).
    if hasattr(socket, "SIO_UDP_CONNRESET") and hasattr(sock, "ioctl"):
        with contextlib.suppress(OSError, ValueError):
            sock.ioctl(socket.SIO_UDP_CONNRESET, False)  # type: ignore[attr-defined]


class Engine:
    def __init__(self, server: tuple[str, int], nickname: str, *,
                 config_dir: pathlib.Path | None = None,
                 bind: tuple[str, int] = ("0.0.0.0", 0), encrypted: bool = True,
                 notify: Callable[[], None] | None = None, deadline: float = 10.0) -> None:
        self.server = (server[0], int(server[1]))
        self.nickname = nickname
        self.server_online = False
        self.events: queue.Queue[ev.Event] = queue.Queue()
        self.files: Any = None  # client.files.FileTransfers, attached by whoever wires it in
        # called in the engine thread as (peer, msg_id) when a peer acknowledged a whole
        # message; for tools (the benchmark), never blocking
        self.on_acked: Callable[[str, int], None] | None = None
        self.stats = {"peer_dropped": 0, "server_dropped": 0, "sent": 0, "received": 0}
        self._config_dir = config_dir
        self._encrypted = encrypted
        self._notify = notify
        self._deadline = deadline
        # the socket's family follows the server's address: an IPv6 server needs an AF_INET6
        # socket (a host name is resolved in start(), which may re-open the socket then)
        self._bind = _bind_for(bind, _literal_family(self.server[0]))
        self._open_socket(self._bind)
        self._commands: queue.SimpleQueue[_Call] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._closing = False
        self._closed = False
        self._close_lock = threading.Lock()
        self._roster_view: tuple[str, ...] = ()
        # state owned by the engine thread once started
        self._roster = Roster(nickname)
        self._server_addr: tuple[str, int] | None = None
        self._keyword = ""
        self._ping_interval = 10.0
        self._extended = True
        self._next_ping = 0.0
        self._last_ping = 0.0
        self._last_pong = 0.0
        self._bad_digests = 0
        self._worker: threading.Thread | None = None
        self._worker_reason = ""
        self._next_reclaim: float | None = None
        self._reclaim_backoff = 1.0
        self._messenger: Messenger | None = None
        self._transport: Any = None
        self._transport_closed = False
        self._quit_sent = False
        self._pending_events = False
        self._next_files_tick = 0.0
        self._due = 0.0  # the earliest deadline, as of the last _timeout()
        # fetch_identity callers waiting for a handshake: (deadline, peer, callback)
        self._identity_waiters: list[tuple[float, str, Callable[[ev.Whois | None], None]]] = []
        # nicknames online whose key the user verified (now or in an earlier run); written by
        # the engine thread only, read by UIs (``is_verified``) without a round trip
        self._verified: set[str] = set()

    # ------------------------------------------------------------------ public API
    @property
    def address(self) -> tuple[str, int]:
        """Our UDP socket's local address (host, port), IPv4 or IPv6."""
        return self._sock.getsockname()[:2]

    def start(self, timeout: float = 5.0) -> None:
        """Register over TCP (blocking), then run the engine thread.

        Raises ``RegistrationError`` or ``ServerUnreachable``; the engine is then unusable
        and should be closed.
        """
        if self._thread is not None:
            raise RuntimeError("engine already started")
        self._server_addr = self._resolve(timeout)
        keys = self._load_keys()  # before registering: a damaged key file fails fast
        saved = self._load_session()
        # TCP to the address the UDP side uses: for a name with IPv4 and IPv6 addresses, the
        # server must see both channels come from the same family
        reg = register(self._server_addr, self.nickname, keyword=saved, timeout=timeout)
        now = time.monotonic()
        self._adopt(reg, now)
        self._roster = Roster(self.nickname)
        self._roster.replace(reg.roster)
        self._roster_view = tuple(self._roster.nicknames())
        self._messenger = Messenger(now=now, deadline=self._deadline)
        self._transport = self._make_transport(keys, now)
        self.server_online = True
        self._last_pong = now
        self._next_ping = now
        for nick in self._roster_view:
            self._update_verified(nick, now)
        self._emit(ev.Registered(self.nickname, self._roster_view))
        self._thread = threading.Thread(target=self._run, name=f"engine-{self.nickname}",
                                        daemon=True)
        self._thread.start()

    def send_room(self, text: str) -> int:
        payload = self._payload(text)
        return self._call(lambda now: self._send(self._roster.nicknames(), KIND_ROOM, payload, now))

    def send_private(self, nickname: str, text: str) -> int:
        payload = self._payload(text)

        def go(now: float) -> int:
            peer = self._roster.resolve(nickname)
            if peer is None:
                raise UnknownPeer(f"{nickname} is not online")
            return self._send([peer], KIND_PRIVATE, payload, now)

        return self._call(go)

    def send_control(self, peer: str, payload: bytes) -> None:
        """Queue a KIND_CONTROL message to one peer (file-transfer signalling). Thread-safe and
        non-blocking: the file layer may call it while holding its own lock, and the engine
        thread may at that moment be inside ``files.on_control`` waiting for that lock."""
        if len(payload) > MAX_MESSAGE:
            raise MessageTooLarge(f"control message of {len(payload)} bytes")
        data = bytes(payload)

        def go(now: float) -> None:
            self._send([peer], KIND_CONTROL, data, now)

        if threading.current_thread() is self._thread:
            go(time.monotonic())
            return
        # not self._closed: close() lets the file layer's "closed" notices out before stopping
        if self._thread is None or self._closing or not self._thread.is_alive():
            raise RuntimeError("engine closed")
        self._commands.put(_Call(go))
        self._wake()

    def attach_files(self, downloads: pathlib.Path) -> Any:
        """Plug in peer-to-peer file transfer (client/files.py) after ``start()``; its TCP
        listener takes our UDP port number when free. Returns the manager."""
        from client.files import FileTransfers

        files = FileTransfers(downloads=pathlib.Path(downloads), send_control=self.send_control,
                              emit=self.post_event, key_for=self.session_key_for,
                              address_of=self.address_of, listen_host=self._listen_host(),
                              listen_port=self.address[1])
        files.start()
        self.files = files
        return files

    def _listen_host(self) -> str:
        """Where the file listener binds: our explicit bind address, else the wildcard of our
        socket's family (peers of an IPv6 server connect over IPv6)."""
        host = self._bind[0]
        if host in ("", "0.0.0.0", "::"):
            return "::" if self._v6 else "0.0.0.0"
        return host

    def roster(self) -> list[str]:
        """Nicknames online, not including ourselves, sorted."""
        return list(self._roster_view)

    def resolve(self, typed: str) -> str | None:
        """The online nickname a user means by ``typed`` (case-insensitive), or None."""
        return self._call(lambda now: self._roster.resolve(typed))

    def address_of(self, peer: str) -> tuple[str, int] | None:
        return self._call(lambda now: self._roster.address_of(peer))

    def session_key_for(self, peer: str, label: bytes) -> bytes | None:
        fn = getattr(self._transport, "session_key_for", None)
        return None if fn is None else self._call(lambda now: fn(peer, label))

    def own_fingerprint(self) -> str | None:
        fn = getattr(self._transport, "own_fingerprint", None)
        return None if fn is None else fn()

    def whois(self, nickname: str) -> ev.Whois | None:
        return self._call(lambda now: self._whois(nickname))

    def mark_verified(self, nickname: str) -> bool:
        """Remember that the user checked ``nickname``'s fingerprint. False if there is none."""
        return self._call(lambda now: self._mark_verified(nickname))

    def fetch_identity(self, nickname: str, on_result: Callable[[ev.Whois | None], None],
                       timeout: float = 1.5) -> None:
        """Non-blocking ``whois`` that first makes sure the peer's key is known: with no
        session yet, a handshake starts (no message needed) and ``on_result`` gets the answer
        once it completes, fails, or ``timeout`` passes (then with what is known, maybe no
        fingerprint). ``on_result`` runs on the engine thread (or at once, if the engine is
        not running, with None): it must only hand the result over, e.g. to a queue."""
        def go(now: float) -> None:
            peer = self._roster.resolve(nickname)
            ensure = getattr(self._transport, "ensure_session", None)
            if peer is None or ensure is None or ensure(peer, now) or \
                    len(self._identity_waiters) >= MAX_IDENTITY_WAITERS:
                self._answer(on_result, self._whois(nickname))
            else:
                self._identity_waiters.append((now + max(0.0, timeout), peer, on_result))

        self._post(go, lambda: self._answer(on_result, None))

    def mark_verified_later(self, nickname: str, on_result: Callable[[bool], None]) -> None:
        """Non-blocking ``mark_verified`` (for the Tk face: saving the pins may fsync).
        ``on_result(ok)`` runs on the engine thread (False at once if it is not running)."""
        self._post(lambda now: self._answer(on_result, self._mark_verified(nickname)),
                   lambda: self._answer(on_result, False))

    def _post(self, go: Callable[[float], None], dropped: Callable[[], None]) -> None:
        """Run ``go`` on the engine thread without waiting; ``dropped()`` instead if the
        engine is not running or stops first (a callback is always answered)."""
        if self._thread is None or self._closed or not self._thread.is_alive():
            dropped()
            return
        if threading.current_thread() is self._thread:
            go(time.monotonic())
            return
        self._commands.put(_Call(go, on_drop=dropped))
        self._wake()
        if not self._thread.is_alive():  # it stopped after our check: nobody else drains
            self._drop_queued()

    def whois_fetched(self, nickname: str, timeout: float = 1.5) -> ev.Whois | None:
        """Blocking ``fetch_identity`` (for the terminal): waits up to ``timeout`` for the key."""
        box: list[ev.Whois | None] = []
        done = threading.Event()

        def got(info: ev.Whois | None) -> None:
            box.append(info)
            done.set()

        self.fetch_identity(nickname, got, timeout)
        if not done.wait(timeout + CALL_TIMEOUT):
            raise RuntimeError("engine did not answer")
        return box[0]

    def is_verified(self, nickname: str) -> bool:
        """Whether ``nickname`` (as the roster shows it) is online with a key the user verified,
        in this run or an earlier one (pins file). Thread-safe, never waits on the engine."""
        return nickname in self._verified

    def wait_idle(self, timeout: float) -> bool:
        """Wait until every message sent so far is acknowledged or given up (and no handshake
        is under way), at most ``timeout`` seconds; True if idle. For leaving after
        end of input without cutting off what was just typed."""
        end = time.monotonic() + timeout
        while True:
            try:
                idle = self._call(lambda now: self._messenger.next_deadline() is None
                                  and self._transport.next_deadline() is None)
            except RuntimeError:
                return False
            if idle:
                return True
            if time.monotonic() >= end:
                return False
            time.sleep(0.02)

    def post_event(self, event: ev.Event) -> None:
        """Hand an event to the UI from any thread (the file-transfer manager's ``emit``)."""
        if threading.current_thread() is self._thread:
            self._emit(event)
            return
        self.events.put(event)
        if self._notify is not None:
            try:
                self._notify()
            except Exception:
                log.exception("notify callback failed")

    def offer_files(self, nickname: str, paths: list[pathlib.Path]) -> list[int]:
        return self._files().offer(nickname, paths)

    def accept_file(self, transfer_id: int) -> None:
        self._files().accept(transfer_id)

    def decline_file(self, transfer_id: int) -> None:
        self._files().decline(transfer_id)

    def cancel_file(self, transfer_id: int) -> None:
        self._files().cancel(transfer_id)

    def close(self) -> None:
        """Send QUIT (twice: it is UDP), close file transfers, stop the thread, close the
        socket. Idempotent. QUIT goes first: it is what the server and the peers need, and a
        UI may not wait for the rest."""
        with self._close_lock:
            if self._closed:
                return
            self._closed = True
        thread = self._thread
        running = thread is not None and thread.is_alive() \
            and thread is not threading.current_thread()
        if running:
            quit_call = _Call(self._send_quit)
            self._commands.put(quit_call)
            self._wake()
            quit_call.done.wait(QUIT_WAIT)
        else:
            self._send_quit(time.monotonic())
        files = self.files
        if files is not None and hasattr(files, "close"):
            try:  # its "closed" notices still go out: the thread runs until the next command
                files.close()
            except Exception:
                log.exception("closing file transfers failed")
        if running:
            self._commands.put(_Call(self._stop))
            self._wake()
            thread.join(3.0)
        self._closing = True
        if thread is None or not thread.is_alive():
            self._close_transport()  # the thread never ran (or is gone): pins still saved
        self._sock.close()

    # ------------------------------------------------------------------ caller side helpers
    @staticmethod
    def _payload(text: str) -> bytes:
        payload = text.encode("utf-8", "surrogatepass")
        if len(payload) > MAX_MESSAGE:
            raise MessageTooLarge(
                f"message of {len(payload)} bytes; the limit is {MAX_MESSAGE} bytes")
        return payload

    def _files(self) -> Any:
        if self.files is None:
            raise RuntimeError("file transfer is not available")
        return self.files

    def _call(self, fn: Callable[[float], Any]) -> Any:
        if self._thread is None:
            raise RuntimeError("engine not started")
        if threading.current_thread() is self._thread:
            return fn(time.monotonic())
        if self._closed or not self._thread.is_alive():
            raise RuntimeError("engine closed")
        call = _Call(fn)
        self._commands.put(call)
        self._wake()
        end = time.monotonic() + CALL_TIMEOUT
        # short slices: a thread that stops after the is_alive() check above never answers
        while not call.done.wait(min(CALL_SLICE, max(0.0, end - time.monotonic()))):
            if not self._thread.is_alive():
                self._drop_queued()
            elif time.monotonic() >= end:
                raise RuntimeError("engine did not answer")
        if call.error is not None:
            raise call.error
        return call.result

    def _wake(self) -> None:
        with contextlib.suppress(OSError):
            self._sock.sendto(WAKE, self._wake_addr)

    # ------------------------------------------------------------------ set-up
    def _open_socket(self, bind: tuple[str, int]) -> None:
        family = socket.AF_INET6 if ":" in bind[0] else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            sock.bind(bind)
            sock.setblocking(False)
        except OSError:
            sock.close()
            raise
        _quiet_windows_resets(sock)
        wildcard = bind[0] in ("", "0.0.0.0", "::")
        host = bind[0] if not wildcard else ("::1" if family == socket.AF_INET6 else "127.0.0.1")
        self._sock = sock
        self._v6 = family == socket.AF_INET6
        self._wake_addr = (host, sock.getsockname()[1])

    def _resolve(self, timeout: float) -> tuple[str, int]:
        """The server's address in our socket's family; with a wildcard bind, the socket is
        re-opened in the other family when the server has only addresses of that one."""
        host, port = self.server
        try:
            infos = socket.getaddrinfo(host, port, 0, socket.SOCK_DGRAM)
        except OSError as exc:
            raise ServerUnreachable(f"cannot resolve {host}: {exc}") from None
        mine = socket.AF_INET6 if self._v6 else socket.AF_INET
        usable = [i for i in infos if i[0] == mine]
        if not usable:
            other = [i for i in infos if i[0] in (socket.AF_INET, socket.AF_INET6)]
            if not other or self._bind[0] not in ("", "0.0.0.0", "::"):
                raise ServerUnreachable(
                    f"{host} has no address of the family of our UDP socket "
                    f"({self._bind[0] or '*'})")
            wildcard = "::" if other[0][0] == socket.AF_INET6 else "0.0.0.0"
            self._sock.close()
            self._bind = (wildcard, self._bind[1])
            self._open_socket(self._bind)
            usable = other
        addr = usable[0][4]
        return addr[0], addr[1]

    def _session_path(self) -> pathlib.Path:
        return config.config_dir(self._config_dir) / SESSION_FILE

    def _load_session(self) -> str | None:
        data = config.load_json(self._session_path())
        saved_nick = data.get("nickname")
        if data.get("server") == f"{self.server[0]}:{self.server[1]}" and \
                isinstance(saved_nick, str) and _same_nick(saved_nick, self.nickname):
            kw = data.get("keyword")
            return kw if isinstance(kw, str) else None
        return None

    def _save_session(self, asked_as: str) -> None:
        try:
            config.save_json(self._session_path(), {
                "server": f"{self.server[0]}:{self.server[1]}",
                "nickname": asked_as,
                "keyword": self._keyword,
            }, private=True)
        except OSError as exc:
            log.warning("cannot save the session (%s); a crash will need a fresh nickname", exc)

    def _adopt(self, reg: Registration, now: float) -> None:
        asked_as = self.nickname
        self._keyword = reg.keyword
        self.nickname = reg.nickname
        self._ping_interval = max(0.05, reg.ping_interval)
        self._extended = reg.extended
        self._save_session(asked_as)

    def _load_keys(self) -> Any:
        """(identity key, pin store) for the encrypted transport; None for the plain one."""
        if not self._encrypted:
            return None
        from client.peer import identity
        from client.peer.pins import PinStore

        cdir = config.config_dir(self._config_dir)
        return identity.load_or_create(cdir), PinStore.in_dir(cdir)

    def _make_transport(self, keys: Any, now: float) -> Any:
        if keys is None:
            from client.peer.plain import PlainTransport

            return PlainTransport(now=now)
        from client.peer.secure import SecureTransport

        signing_key, pins = keys
        return SecureTransport(signing_key, self.nickname, pins, now=now)

    # ------------------------------------------------------------------ engine thread
    def _run(self) -> None:
        try:
            while not self._closing:
                now = time.monotonic()
                timeout = self._timeout(now)
                try:
                    readable, _, _ = select.select([self._sock], [], [], timeout)
                except (OSError, ValueError):
                    break  # socket closed under us
                now = time.monotonic()
                if readable:
                    self._drain(now)
                answered = self._run_commands()
                try:
                    now = time.monotonic()
                    # woken by datagrams before anything is due (the ACKs of a room message):
                    # no timer work; deadlines made since _timeout() are all later than now
                    if now >= self._due:
                        self._on_timers(now)
                    self._pump(now)
                finally:
                    # callers learn their result only now that what their command queued
                    # (a message's datagrams) is sent: woken earlier, a caller takes the GIL
                    # from this thread before the sendto calls (tens of us per message)
                    for call in answered:
                        call.done.set()
                self._flush_events()
        except Exception as exc:  # our own bug: be loud, tell the UI
            log.exception("engine thread crashed")
            self._emit(ev.Fatal(f"internal error: {exc}"))
            self._flush_events()
        finally:
            self._closing = True
            self._close_transport()
            waiters, self._identity_waiters = self._identity_waiters, []
            for _deadline, _peer, on_result in waiters:
                self._answer(on_result, None)
            self._drop_queued()

    def _drop_queued(self) -> None:
        """Answer every queued command with "engine closed" (never leave a caller waiting).
        Only once the engine thread has stopped: from it, or from a caller that saw it dead."""
        while True:
            try:
                call = self._commands.get_nowait()
            except queue.Empty:
                return
            call.error = RuntimeError("engine closed")
            if call.on_drop is not None:
                try:
                    call.on_drop()
                except Exception:
                    log.exception("dropping a queued command failed")
            call.done.set()

    def _close_transport(self) -> None:
        """Let the transport finish its writes (pins saved lazily after a handshake)."""
        close = getattr(self._transport, "close", None)
        if close is None or self._transport_closed:
            return
        self._transport_closed = True
        try:
            close()
        except Exception:
            log.exception("closing the transport failed")

    def _timeout(self, now: float) -> float:
        deadlines = [self._next_ping]
        retry = self._ping_retry_due()
        if retry is not None:
            deadlines.append(retry)
        for d in (self._messenger.next_deadline(), self._transport.next_deadline(),
                  self._roster.next_deadline(), self._next_reclaim):
            if d is not None:
                deadlines.append(d)
        if self.server_online and self._extended:
            deadlines.append(self._last_pong + LOST_AFTER * self._ping_interval)
        if self.files is not None:
            deadlines.append(self._next_files_tick)
        if self._identity_waiters:
            deadlines.append(min(w[0] for w in self._identity_waiters))
        self._due = min(deadlines)
        return min(max(0.0, self._due - now), 1.0)

    def _drain(self, now: float) -> None:
        # The ACK hot path of a room message: up to DRAIN_BATCH datagrams, then the layers
        # process them together (``_pump``). A peer datagram from a listed address goes straight
        # to the transport here; everything else through ``_dispatch``.
        recvfrom = self._sock.recvfrom
        nickname_at = self._roster.nickname_at
        unwrap = self._transport.unwrap
        v6 = self._v6
        received = 0
        try:
            for _ in range(DRAIN_BATCH):
                try:
                    data, addr = recvfrom(MAX_UDP)
                    if v6:
                        addr = addr[:2]  # (host, port, flowinfo, scope_id) -> the roster's form
                except (BlockingIOError, InterruptedError):
                    return
                except (ConnectionResetError, ConnectionRefusedError):
                    continue  # ICMP port unreachable from a peer that went away
                except OSError as exc:
                    if getattr(exc, "winerror", None) == WSAEMSGSIZE:
                        self.stats["oversized"] = self.stats.get("oversized", 0) + 1
                        continue
                    if self._closing:
                        return
                    log.warning("recvfrom failed: %s", exc)
                    return
                try:
                    if data and data[0] == MAGIC and (peer := nickname_at(addr)) is not None:
                        received += 1
                        unwrap(peer, data, now)
                    else:
                        self._dispatch(data, addr, now)  # addr is an (ip, port) tuple
                except Exception:  # our bug; one datagram must not take the engine down
                    self.stats["internal_errors"] = self.stats.get("internal_errors", 0) + 1
                    if self.stats["internal_errors"] <= 10:
                        log.exception("internal error handling a datagram from %s", addr)
        finally:
            self.stats["received"] += received

    def _dispatch(self, data: bytes, addr: tuple[str, int], now: float) -> None:
        if addr == self._wake_addr and data == WAKE:
            return
        if data[:1] == PEER_MAGIC:
            peer = self._roster.nickname_at(addr)
            if peer is None:
                self._drop("peer", addr, "datagram from an address nobody is listed at")
                return
            self.stats["received"] += 1
            self._transport.unwrap(peer, data, now)
            return
        if addr != self._server_addr:
            self._drop("server", addr, "non-peer datagram not from the server")
            return
        try:
            msg = wire.decode_datagram(data)
        except ProtocolError as exc:
            self._drop("server", addr, exc.text)
            return
        if msg.keyword != self._keyword:
            self._drop("server", addr, "server datagram with a foreign keyword")
            return
        handler = self._server_handlers.get(type(msg))
        if handler is None:
            self._drop("server", addr, f"unexpected {type(msg).__name__}")
            return
        handler(self, msg, now)

    def _drop(self, which: str, addr: tuple[str, int], why: str) -> None:
        key = f"{which}_dropped"
        self.stats[key] += 1
        if self.stats[key] <= 10 or self.stats[key] % 1000 == 0:  # log, but not a flood
            log.info("dropped datagram from %s:%d: %s (%d so far)", addr[0], addr[1], why,
                     self.stats[key])

    def _run_commands(self) -> list[_Call]:
        """Run queued commands; the caller sets their ``done`` (see ``_run``)."""
        if self._commands.empty():  # the usual case on a datagram wake-up; no exception
            return _NO_CALLS
        answered = []
        for _ in range(MAX_COMMANDS_PER_TURN):
            try:
                call = self._commands.get_nowait()
            except queue.Empty:
                break
            answered.append(call)
            try:
                call.result = call.fn(time.monotonic())
            except Exception as exc:
                call.error = exc
        return answered

    def _on_timers(self, now: float) -> None:
        self._messenger.on_timer(now)
        self._transport.on_timer(now)
        self._apply(self._roster.expire_ghosts(now), now)
        retry = self._ping_retry_due()
        if now >= self._next_ping:
            self._send_ping(now)
            step = self._ping_interval / PINGS_PER_INTERVAL
            self._next_ping = max(self._next_ping + step, now + step / 2)
        elif retry is not None and now >= retry:
            self._send_ping(now)
        if self.server_online and self._extended and \
                now - self._last_pong > LOST_AFTER * self._ping_interval:
            self.server_online = False
            self._reclaim_backoff = self._ping_interval
            self._next_reclaim = now + self._reclaim_backoff
            log.warning("server lost: no PONG for %.1f s", now - self._last_pong)
            self._emit(ev.ServerLost("no answer from the server"))
        if self._next_reclaim is not None and now >= self._next_reclaim:
            self._next_reclaim = None
            self._start_worker("reclaim")
        if self.files is not None and now >= self._next_files_tick:
            self._next_files_tick = now + FILES_TICK
            if hasattr(self.files, "tick"):
                self._safe_files("tick", now)
        if self._identity_waiters:
            self._answer_waiters(now, lambda deadline, peer: now >= deadline)

    # ------------------------------------------------------------------ server channel
    def _ping_retry_due(self) -> float | None:
        """When to repeat an unanswered PING (None: nothing unanswered, or the server is
        already known to be lost and PINGs go at the normal pace)."""
        if not (self.server_online and self._extended and self._last_pong < self._last_ping):
            return None
        return self._last_ping + self._ping_interval / RETRY_DIVISOR

    def _send_ping(self, now: float) -> None:
        self._last_ping = now
        digest = self._roster.digest() if self._extended else None
        self._send_server(wire.Ping(self._keyword, self.nickname, digest))

    def _send_server(self, msg: wire.Datagram) -> None:
        try:
            data = wire.encode_datagram(msg)
        except ValueError as exc:
            log.error("cannot encode %s: %s", type(msg).__name__, exc)
            return
        self._sendto(data, self._server_addr)

    def _sendto(self, data: bytes, addr: tuple[str, int] | None) -> None:
        if addr is None:
            return
        try:
            self._sock.sendto(data, addr)
            self.stats["sent"] += 1
        except (BlockingIOError, InterruptedError):
            self.stats["send_full"] = self.stats.get("send_full", 0) + 1
            if self.stats["send_full"] in (1, 10, 100) or self.stats["send_full"] % 10000 == 0:
                log.info("send buffer full; %d datagrams dropped so far (retransmission covers "
                         "them)", self.stats["send_full"])
        except (ConnectionResetError, ConnectionRefusedError):
            pass
        except OSError as exc:
            if not self._closing:
                log.warning("sendto %s:%d failed: %s", addr[0], addr[1], exc)

    def _send_datagrams(self, out: list[tuple[str, bytes]]) -> None:
        """The hot path of a room message: one sendto per recipient, nothing else."""
        sendto = self._sock.sendto
        address_of = self._roster.address_of
        sent = 0
        for peer, datagram in out:
            addr = address_of(peer)
            if addr is None:
                continue
            try:
                sendto(datagram, addr)
                sent += 1
            except OSError:
                self._sendto(datagram, addr)  # the slow path sorts out and logs the error
        self.stats["sent"] += sent

    def _on_pong(self, msg: wire.Pong, now: float) -> None:
        self._last_pong = now
        self._server_is_back()
        if msg.digest == self._roster.digest():
            self._bad_digests = 0
            return
        self._bad_digests += 1
        if self._bad_digests >= 2:
            self._bad_digests = 0
            log.info("roster digest differs from the server's twice: re-fetching")
            self._start_worker("refetch")

    def _on_unknown(self, msg: wire.Unknown, now: float) -> None:
        log.info("the server does not know our keyword: registering again")
        self._start_worker("reregister")

    def _on_ref_add(self, msg: wire.RefAdd, now: float) -> None:
        self._apply(self._roster.add((e.nickname, e.host, e.port) for e in msg.entries), now)

    def _on_ref_del(self, msg: wire.RefDel, now: float) -> None:
        self._apply(self._roster.remove(msg.nicknames), now)

    _server_handlers: dict[type, Callable[[Engine, Any, float], None]] = {
        wire.Pong: _on_pong,
        wire.Unknown: _on_unknown,
        wire.RefAdd: _on_ref_add,
        wire.RefDel: _on_ref_del,
    }

    def _server_is_back(self) -> None:
        if not self.server_online:
            self.server_online = True
            self._next_reclaim = None
            log.info("server back")
            self._emit(ev.ServerBack())

    def _start_worker(self, reason: str) -> None:
        """TCP re-fetch / reclaim / re-registration in a thread; the result comes back as a
        command. One at a time."""
        if self._worker is not None and self._worker.is_alive():
            return
        keyword, nickname, timeout = self._keyword, self.nickname, max(2.0, self._ping_interval)

        def work() -> None:
            try:
                reg: Registration | Exception = register(self._server_addr, nickname,
                                                         keyword=keyword, timeout=timeout)
            except (RegistrationError, ServerUnreachable) as exc:
                reg = exc
            except Exception as exc:  # never let a worker die silently
                log.exception("registration worker failed")
                reg = exc
            if not self._closing and not self._closed:
                self._commands.put(_Call(lambda now: self._worker_done(reason, keyword, reg,
                                                                       now)))
                self._wake()

        self._worker_reason = reason
        self._worker = threading.Thread(target=work, name=f"register-{reason}", daemon=True)
        self._worker.start()

    def _worker_done(self, reason: str, old_keyword: str, result: Any, now: float) -> None:
        if isinstance(result, Exception):
            if isinstance(result, RegistrationError) and result.code not in ("THROTTLED",
                                                                             "STORAGE"):
                log.warning("%s refused: %s", reason, result)
                if reason == "reregister" or result.code == "NICK_TAKEN":
                    self._emit(ev.Fatal(f"could not register again: {result.text}"))
            else:
                log.info("%s failed: %s", reason, result)
            self._schedule_reclaim(now)
            return
        if old_keyword != self._keyword:
            return  # stale result
        reg: Registration = result
        self._reclaim_backoff = 1.0
        self._next_reclaim = None
        if reg.keyword == self._keyword:
            changes = self._roster.replace(
                reg.roster, grace_until=now + REFETCH_GRACE * self._ping_interval)
        else:
            self._adopt(reg, now)
            log.info("registered again with a new keyword")
            self._emit(ev.Reregistered())
            # everyone re-registers one by one: keep the missing as ghosts for a while
            changes = self._roster.replace(
                reg.roster, grace_until=now + GHOST_GRACE * self._ping_interval)
        self._last_pong = now
        self._server_is_back()
        self._bad_digests = 0
        self._apply(changes, now)
        self._send_ping(now)  # our first PING after CHANNEL_SWITCH: the server learns our address

    def _schedule_reclaim(self, now: float) -> None:
        if self.server_online:
            return  # PONGs flow; the next mismatch or UNKNOWN will try again
        self._next_reclaim = now + self._reclaim_backoff
        self._reclaim_backoff = min(RECLAIM_BACKOFF_MAX, self._reclaim_backoff * 2)

    def _send_quit(self, now: float) -> None:
        if self._keyword and not self._quit_sent:
            self._quit_sent = True
            for _ in range(2):
                self._send_server(wire.Quit(self._keyword, self.nickname))

    def _stop(self, now: float) -> None:
        self._closing = True  # the loop ends after this turn's _pump (queued sends go out)

    # ------------------------------------------------------------------ peers
    def _send(self, peers: list[str], kind: int, payload: bytes, now: float) -> int:
        return self._messenger.send(peers, kind, payload, now)

    def _apply(self, changes: Changes, now: float) -> None:
        if not changes:
            return
        for nick in changes.left:
            self._messenger.forget_peer(nick, now)
            self._transport.forget_peer(nick)
            self._verified.discard(nick)
            if self.files is not None and hasattr(self.files, "on_peer_left"):
                self._safe_files("on_peer_left", nick)
            self._emit(ev.Left(nick))
        for nick in changes.joined:
            self._update_verified(nick, now)  # before the UI hears of the join
            self._emit(ev.Joined(nick))
        self._roster_view = tuple(self._roster.nicknames())

    def _pump(self, now: float) -> None:
        """Move frames and datagrams between the layers until nothing is left to move."""
        messenger, transport = self._messenger, self._transport
        receive, wrap = messenger.receive, transport.wrap
        on_acked = self.on_acked
        for _ in range(64):
            moved = False
            # transport events first: a restarted session resets the Messenger's state for
            # that peer before the frames of the new session reach it
            for event in transport.take_events():
                self._on_transport_event(event, now)
                moved = True
            frames = transport.take_frames()
            if frames:
                moved = True
                for peer, frame in frames:
                    receive(peer, frame, now)
            outgoing = messenger.take_outgoing()
            if outgoing:
                moved = True
                for peer, frame in outgoing:
                    wrap(peer, frame, now)
            out = transport.take_outgoing()
            if out:
                self._send_datagrams(out)
            events = messenger.take_events()
            if events:
                moved = True
                for event in events:
                    if type(event) is Acked:  # one per recipient of a room message: cheap
                        if on_acked is not None:
                            on_acked(event.peer, event.msg_id)
                    else:
                        self._on_messenger_event(event, now)
            if not moved:
                return

    def _warning(self, peer: str) -> str | None:
        fn = getattr(self._transport, "warning_for", None)
        return fn(peer) if fn is not None else None

    def _on_messenger_event(self, event: object, now: float) -> None:
        if isinstance(event, Delivered):
            if event.kind == KIND_CONTROL:
                if event.payload[:1] == b"F" and self.files is not None:
                    self._safe_files("on_control", event.peer, event.payload)
                return
            text = event.payload.decode("utf-8", "replace")
            cls = ev.PrivateMessage if event.kind == KIND_PRIVATE else ev.RoomMessage
            if event.kind not in (KIND_ROOM, KIND_PRIVATE):
                return
            self._emit(cls(event.peer, text, event.msg_id, self._warning(event.peer)))
        elif isinstance(event, Acked):
            if self.on_acked is not None:
                self.on_acked(event.peer, event.msg_id)
        elif isinstance(event, Undelivered):
            if event.kind == KIND_CONTROL:
                if self.files is not None and hasattr(self.files, "on_undelivered"):
                    self._safe_files("on_undelivered", event.peer, event.payload)
                return
            self._emit(ev.NotDelivered(event.peer, event.payload.decode("utf-8", "replace"),
                                       event.msg_id, private=event.kind == KIND_PRIVATE))

    def _on_transport_event(self, event: object, now: float) -> None:
        if type(event).__name__ == "SessionStarted":
            peer = event.peer  # type: ignore[attr-defined]
            if getattr(event, "restarted", False):
                self._messenger.reset_peer(peer)
            self._update_verified(peer)  # the live key may differ from the verified pin
            if self._identity_waiters:
                self._answer_waiters(now, lambda deadline, p: p == peer)
        elif isinstance(event, ev.KeyChanged | ev.PeerUnreachable):
            self._update_verified(event.nickname)
            self._emit(event)
            if self._identity_waiters:
                self._answer_waiters(now, lambda deadline, p: p == event.nickname)

    def _safe_files(self, method: str, *args: Any) -> None:
        try:
            getattr(self.files, method)(*args)
        except Exception:
            log.exception("file transfer %s failed", method)

    def _whois(self, nickname: str) -> ev.Whois | None:
        peer = self._roster.resolve(nickname) or nickname
        t = self._transport
        fingerprint = t.fingerprint(peer) if hasattr(t, "fingerprint") else None
        address = self._roster.address_of(peer)
        if fingerprint is None and address is None:
            return None
        verified = bool(t.is_verified(peer)) if hasattr(t, "is_verified") else False
        changed = bool(t.key_changed(peer)) if hasattr(t, "key_changed") else False
        return ev.Whois(peer, fingerprint, verified=verified, key_changed=changed,
                        address=address)

    def _mark_verified(self, nickname: str) -> bool:
        peer = self._roster.resolve(nickname) or nickname
        t = self._transport
        ok = bool(t.mark_verified(peer)) if hasattr(t, "mark_verified") else False
        self._update_verified(peer)
        return ok

    def _update_verified(self, peer: str, now: float | None = None) -> None:
        """Refresh ``is_verified(peer)``. With ``now`` (peer just seen online), a verified peer
        without a session gets a handshake at once: its pin is only what the key *was*, and an
        impostor under that nickname must turn into a KeyChanged warning, not keep the mark."""
        t = self._transport
        fn = getattr(t, "is_verified", None)
        if fn is not None and fn(peer) and self._roster.address_of(peer) is not None:
            self._verified.add(peer)
            if now is not None and hasattr(t, "ensure_session"):
                t.ensure_session(peer, now)
        else:
            self._verified.discard(peer)

    def _answer_waiters(self, now: float, due: Callable[[float, str], bool]) -> None:
        keep = []
        for deadline, peer, on_result in self._identity_waiters:
            if due(deadline, peer):
                self._answer(on_result, self._whois(peer))
            else:
                keep.append((deadline, peer, on_result))
        self._identity_waiters = keep

    @staticmethod
    def _answer(on_result: Callable[[Any], None], info: Any) -> None:
        try:
            on_result(info)
        except Exception:  # a UI's bug must not stop the engine
            log.exception("%r callback failed", on_result)

    # ------------------------------------------------------------------ events
    def _emit(self, event: ev.Event) -> None:
        self.events.put(event)
        self._pending_events = True

    def _flush_events(self) -> None:
        if self._pending_events:
            self._pending_events = False
            if self._notify is not None:
                try:
                    self._notify()
                except Exception:
                    log.exception("notify callback failed")
