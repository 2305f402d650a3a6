"""The client engine: the wiring of the parts, and the one thread that drives them.

What the faces (``client/terminal.py``, ``client/gui/``) drive; see docs/ARCHITECTURE.md
("Engine", "Threads") for the contract and docs/PROTOCOL.md section 5 for the behaviour.
``start()`` registers over TCP, then runs the engine thread, which owns every part below and
loops on ``select`` with the earliest deadline as timeout:

- ``client.udp``: the socket (bind, family, wake-up, drain, send);
- ``client.routing``: which layer a received datagram belongs to (peer, server, dropped);
- ``client.serverlink``: the sans-IO server channel (PING cadence, roster, lost/back, reclaim)
  and its IO half (``link``: TCP re-registration in a worker thread), the saved session;
- ``client.peerlink``: Messenger and transport (``client.contracts.Transport``) pumped together,
  their events for the face and the file layer (``client.contracts.FileService``);
- ``client.bridge``: callers' commands in (call, post) and events out (``Outbox``).
"""

from __future__ import annotations

import logging
import pathlib
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

from client import config
from client import events as ev
from client.bridge import CALL_TIMEOUT, Bridge, Outbox
from client.contracts import FileService, Transport
from client.errors import (
    EngineClosed,
    EngineNotResponding,
    FilesUnavailable,
    MessageTooLarge,
    RegistrationError,
    ServerUnreachable,
    UnknownPeer,
)
from client.peer.messenger import KIND_CONTROL, KIND_PRIVATE, KIND_ROOM, MAX_MESSAGE, Messenger
from client.peerlink import PeerLink, answer
from client.routing import Router
from client.serverlink.channel import ChannelEvent, RosterChanged, SaveSession, ServerChannel
from client.serverlink.link import ServerLink
from client.serverlink.registration import enroll
from client.serverlink.roster import Changes, PeerRoster
from client.serverlink.session import SavedSession
from client.udp import UdpEdge, bind_for, literal_family

__all__ = ["Engine", "MessageTooLarge", "RegistrationError", "ServerUnreachable", "UnknownPeer"]

log = logging.getLogger(__name__)

QUIT_WAIT = 0.5  # close() waits this long for QUIT to be sent before closing files
FILES_TICK = 1.0  # seconds between FileTransfers.tick calls (offer expiry)


def _payload(text: str) -> bytes:
    payload = text.encode("utf-8", "surrogatepass")
    if len(payload) > MAX_MESSAGE:
        raise MessageTooLarge(f"message of {len(payload)} bytes; the limit is {MAX_MESSAGE} bytes")
    return payload


def _load_keys(encrypted: bool, config_dir: pathlib.Path | None) -> Any:
    """(identity key, pin store) for the encrypted transport; None for the plain one."""
    if not encrypted:
        return None
    from client.peer import identity
    from client.peer.pins import PinStore

    cdir = config.config_dir(config_dir)
    return identity.load_or_create(cdir), PinStore.in_dir(cdir)


def _make_transport(keys: Any, nickname: str, now: float) -> Transport:
    if keys is None:
        from client.peer.plain import PlainTransport

        return PlainTransport(now=now)
    from client.peer.secure import SecureTransport

    signing_key, pins = keys
    return SecureTransport(signing_key, nickname, pins, now=now)


class Engine:
    def __init__(self, server: tuple[str, int], nickname: str, *,
                 config_dir: pathlib.Path | None = None,
                 bind: tuple[str, int] = ("0.0.0.0", 0), encrypted: bool = True,
                 notify: Callable[[], None] | None = None, deadline: float = 10.0) -> None:
        self.server = (server[0], int(server[1]))
        self.nickname = nickname
        self._outbox = Outbox(notify)
        self.events: queue.Queue[ev.Event] = self._outbox.queue
        self.files: FileService | None = None  # attached by whoever wires file transfer in
        # called in the engine thread as (peer, msg_id) when a peer acknowledged a whole
        # message; for tools (the benchmark), never blocking
        self.on_acked: Callable[[str, int], None] | None = None
        self.stats = {"peer_dropped": 0, "server_dropped": 0, "sent": 0, "received": 0}
        self._config_dir = config_dir
        self._encrypted = encrypted
        self._deadline = deadline
        # the socket's family follows the server's address: an IPv6 server needs an AF_INET6
        # socket (a host name is resolved in start(), which may re-open the socket then)
        self._udp = UdpEdge(bind_for(bind, literal_family(self.server[0])), self.stats)
        self._bridge = Bridge(self._udp.wake)
        self._session = SavedSession(config_dir, self.server)
        self._close_lock = threading.Lock()
        self._roster_view: tuple[str, ...] = ()
        # state owned by the engine thread once started
        self._roster = PeerRoster(nickname)
        self._channel: ServerChannel | None = None
        self._server: ServerLink | None = None
        self._server_addr: tuple[str, int] | None = None
        self._messenger: Messenger | None = None
        self._transport: Transport | None = None
        self._peers: PeerLink | None = None
        self._router: Router | None = None
        self._next_files_tick = 0.0
        self._due = 0.0  # the earliest deadline, as of the last _timeout()

    # ------------------------------------------------------------------ public API
    @property
    def address(self) -> tuple[str, int]:
        """Our UDP socket's local address (host, port), IPv4 or IPv6."""
        return self._udp.address

    @property
    def server_online(self) -> bool:
        return self._channel is not None and self._channel.online

    def start(self, timeout: float = 5.0) -> None:
        """Register over TCP (blocking), then run the engine thread.

        Raises ``RegistrationError`` or ``ServerUnreachable``; the engine is then unusable
        and should be closed.
        """
        if self._bridge.thread is not None:
            raise RuntimeError("engine already started")
        host = self.server[0]
        try:
            self._server_addr = self._udp.resolve(*self.server)
        except OSError as exc:
            raise ServerUnreachable(f"cannot resolve {host}: {exc}") from None
        except LookupError as exc:
            raise ServerUnreachable(str(exc)) from None
        # before registering: a damaged key file fails fast
        keys = _load_keys(self._encrypted, self._config_dir)
        # TCP to the address the UDP side uses: for a name with IPv4 and IPv6 addresses, the
        # server must see both channels come from the same family
        reg, auth = enroll(self._server_addr, self.nickname, self._session, timeout=timeout)
        now = time.monotonic()
        self._channel = ServerChannel(reg, now, auth)
        self._server = ServerLink(self._channel, self._server_addr, send=self._udp.send,
                                  put=self._bridge.put, handle=self._on_channel_event,
                                  stopping=lambda: self._closing or self._bridge.closed)
        self._adopted()
        self._roster = self._channel.roster
        self._roster_view = tuple(self._roster.nicknames())
        self._wire_peers(Messenger(now=now, deadline=self._deadline),
                         _make_transport(keys, self.nickname, now))
        for nick in self._roster_view:
            self._peers.update_verified(nick, now)
        self._emit(ev.Registered(self.nickname, self._roster_view))
        self._bridge.thread = threading.Thread(target=self._run, name=f"engine-{self.nickname}",
                                               daemon=True)
        self._bridge.thread.start()

    def send_room(self, text: str) -> int:
        payload = _payload(text)
        return self._call(lambda now: self._send(self._roster.nicknames(), KIND_ROOM, payload, now))

    def send_private(self, nickname: str, text: str) -> int:
        payload = _payload(text)

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

        if self._bridge.on_thread():
            go(time.monotonic())
            return
        # not "closed": close() lets the file layer's "closed" notices out before stopping
        if not self._bridge.running() or self._closing:
            raise EngineClosed("engine closed")
        self._bridge.put(go)

    def attach_files(self, downloads: pathlib.Path) -> FileService:
        """Plug in peer-to-peer file transfer (client/files/) after ``start()``; its TCP
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
        return self._udp.listen_host()

    def roster(self) -> list[str]:
        """Nicknames online, not including ourselves, sorted."""
        return list(self._roster_view)

    def resolve(self, typed: str) -> str | None:
        """The online nickname a user means by ``typed`` (case-insensitive), or None."""
        return self._call(lambda now: self._roster.resolve(typed))

    def address_of(self, peer: str) -> tuple[str, int] | None:
        return self._call(lambda now: self._roster.address_of(peer))

    def session_key_for(self, peer: str, label: bytes) -> bytes | None:
        transport = self._transport
        if transport is None:
            return None
        return self._call(lambda now: transport.session_key_for(peer, label))

    def own_fingerprint(self) -> str | None:
        return None if self._transport is None else self._transport.own_fingerprint()

    def whois(self, nickname: str) -> ev.Whois | None:
        return self._call(lambda now: self._peers.whois(nickname))

    def mark_verified(self, nickname: str) -> bool:
        """Remember that the user checked ``nickname``'s fingerprint. False if there is none."""
        return self._call(lambda now: self._peers.mark_verified(nickname))

    def fetch_identity(self, nickname: str, on_result: Callable[[ev.Whois | None], None],
                       timeout: float = 1.5) -> None:
        """Non-blocking ``whois`` that first makes sure the peer's key is known: with no
        session yet, a handshake starts (no message needed) and ``on_result`` gets the answer
        once it completes, fails, or ``timeout`` passes (then with what is known, maybe no
        fingerprint). ``on_result`` runs on the engine thread (or at once, if the engine is
        not running, with None): it must only hand the result over, e.g. to a queue."""
        self._bridge.post(lambda now: self._peers.ask_identity(nickname, on_result, timeout, now),
                          lambda: answer(on_result, None))

    def mark_verified_later(self, nickname: str, on_result: Callable[[bool], None]) -> None:
        """Non-blocking ``mark_verified`` (for the Tk face: saving the pins may fsync).
        ``on_result(ok)`` runs on the engine thread (False at once if it is not running)."""
        self._bridge.post(lambda now: answer(on_result, self._peers.mark_verified(nickname)),
                          lambda: answer(on_result, False))

    def whois_fetched(self, nickname: str, timeout: float = 1.5) -> ev.Whois | None:
        """Blocking ``fetch_identity`` (for the terminal): waits up to ``timeout`` for the key."""
        box: list[ev.Whois | None] = []
        done = threading.Event()

        def got(info: ev.Whois | None) -> None:
            box.append(info)
            done.set()

        self.fetch_identity(nickname, got, timeout)
        if not done.wait(timeout + CALL_TIMEOUT):
            raise EngineNotResponding("engine did not answer")
        return box[0]

    def is_verified(self, nickname: str) -> bool:
        """Whether ``nickname`` (as the roster shows it) is online with a key the user verified,
        in this run or an earlier one (pins file). Thread-safe, never waits on the engine."""
        return self._peers is not None and nickname in self._peers.verified

    def wait_idle(self, timeout: float) -> bool:
        """Wait until every message sent so far is acknowledged or given up (and no handshake
        is under way), at most ``timeout`` seconds; True if idle. For leaving after
        end of input without cutting off what was just typed."""
        end = time.monotonic() + timeout
        while True:
            try:
                idle = self._call(lambda now: self._peers.idle())
            except (EngineClosed, EngineNotResponding):
                return False
            if idle:
                return True
            if time.monotonic() >= end:
                return False
            time.sleep(0.02)

    def post_event(self, event: ev.Event) -> None:
        """Hand an event to the UI from any thread (the file-transfer manager's ``emit``)."""
        (self._emit if self._bridge.on_thread() else self._outbox.post)(event)

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
            if self._bridge.closed:
                return
            self._bridge.closed = True
        thread = self._bridge.thread
        running = thread is not None and thread.is_alive() \
            and thread is not threading.current_thread()
        if running:
            self._bridge.put(self._send_quit).done.wait(QUIT_WAIT)
        else:
            self._send_quit(time.monotonic())
        # its "closed" notices still go out: the thread runs until the next command
        self._with_files(lambda files: files.close())
        if running:
            self._bridge.put(self._stop)
            thread.join(3.0)
        self._closing = True
        if thread is None or not thread.is_alive():
            self._close_transport()  # the thread never ran (or is gone): pins still saved
        self._udp.close()
        self._session.release()

    # ------------------------------------------------------------------ caller side helpers
    @property
    def _closing(self) -> bool:
        """The engine thread ends after this turn (and the socket's errors are expected)."""
        return self._udp.closing

    @_closing.setter
    def _closing(self, value: bool) -> None:
        self._udp.closing = value

    @property
    def _sock(self) -> Any:
        """The UDP socket itself, for tools and tests that tune or break it."""
        return self._udp.sock

    def _files(self) -> FileService:
        if self.files is None:
            raise FilesUnavailable("file transfer is not available")
        return self.files

    def _call(self, fn: Callable[[float], Any]) -> Any:
        return self._bridge.call(fn)

    # ------------------------------------------------------------------ set-up
    def _adopted(self) -> None:
        """The channel has a (new) registration: take its nickname, save its keyword."""
        asked_as = self.nickname
        self.nickname = self._channel.nickname
        self._session.save(asked_as, self._channel.keyword, self._channel.mac_state())

    def _wire_peers(self, messenger: Messenger, transport: Transport) -> None:
        self._messenger, self._transport = messenger, transport
        self._peers = PeerLink(messenger, transport, self._roster,
                               send_datagrams=self._send_datagrams, emit=self._emit,
                               with_files=self._with_files)
        self._router = Router(self._udp, self._roster, transport, self._server, self.stats)

    # ------------------------------------------------------------------ engine thread
    def _run(self) -> None:
        udp, bridge = self._udp, self._bridge
        try:
            while not self._closing:
                readable = udp.wait(self._timeout(time.monotonic()))
                if readable is None:
                    break  # socket closed under us
                if readable:
                    self._drain(time.monotonic())
                answered = bridge.run_commands()
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
                self._outbox.flush()
        except Exception as exc:  # our own bug: be loud, tell the UI
            log.exception("engine thread crashed")
            self._emit(ev.Fatal(f"internal error: {exc}"))
            self._outbox.flush()
        finally:
            self._closing = True
            self._close_transport()
            bridge.drop_queued()

    def _close_transport(self) -> None:
        if self._peers is not None:
            self._peers.close()

    def _timeout(self, now: float) -> float:
        deadlines = [self._channel.next_deadline()]
        peers_due = self._peers.next_deadline()
        if peers_due is not None:
            deadlines.append(peers_due)
        if self.files is not None:
            deadlines.append(self._next_files_tick)
        self._due = min(deadlines)
        return min(max(0.0, self._due - now), 1.0)

    def _drain(self, now: float) -> None:
        self._router.drain(now)

    def _on_timers(self, now: float) -> None:
        self._peers.on_timer(now)
        self._server.on_timer(now)
        if self.files is not None and now >= self._next_files_tick:
            self._next_files_tick = now + FILES_TICK
            self._with_files(lambda files: files.tick(now))
        self._peers.on_late_timer(now)

    # ------------------------------------------------------------------ server channel
    def _on_channel_event(self, event: ChannelEvent, now: float) -> None:
        if isinstance(event, RosterChanged):
            self._apply(event.changes, now)
            return
        if isinstance(event, ev.Reregistered | SaveSession):
            self._adopted()
        if not isinstance(event, SaveSession):
            self._emit(event)

    def _send_quit(self, now: float) -> None:
        if self._server is not None:
            self._server.quit()

    def _stop(self, now: float) -> None:
        self._closing = True  # the loop ends after this turn's _pump (queued sends go out)

    # ------------------------------------------------------------------ peers
    def _send(self, peers: list[str], kind: int, payload: bytes, now: float) -> int:
        return self._peers.send(peers, kind, payload, now)

    def _send_datagrams(self, out: list[tuple[str, bytes]]) -> None:
        self._udp.send_many(out, self._roster.address_of)

    def _pump(self, now: float) -> None:
        self._peers.pump(now, self.on_acked)

    def _apply(self, changes: Changes, now: float) -> None:
        if changes:
            self._peers.apply(changes, now)
            self._roster_view = tuple(self._roster.nicknames())

    def _with_files(self, fn: Callable[[FileService], object]) -> None:
        """Hand something to the file layer, if wired in; its failure is logged, not ours."""
        files = self.files
        if files is None:
            return
        try:
            fn(files)
        except Exception:
            log.exception("file transfer call failed")

    def _emit(self, event: ev.Event) -> None:
        self._outbox.put(event)
