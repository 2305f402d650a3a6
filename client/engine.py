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
- ``client.bridge``: callers' commands in (call, post) and events out (``Outbox``);
- ``client.chatlink``: ``engine.chat`` (the ``ChatApi`` faces drive: channels, history, the
  outbox of messages that wait) and its glue to ``client.chat``.
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
from client.bridge import Bridge, Outbox
from client.bulk import BulkPath
from client.chatlink import ChatLink, ChatParts
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
from client.identity_calls import IdentityCalls
from client.peer.messenger import KIND_CONTROL, KIND_PRIVATE, KIND_ROOM, MAX_MESSAGE, Messenger
from client.peerlink import PeerLink
from client.reach.merged import MergedRoster
from client.reachlink import ReachConfig, ReachLink, lan_key, no_server_text, server_view
from client.relaylink import tcp_hopeless
from client.routing import Router
from client.seeker import Found, ServerSeeker
from client.serverlink.channel import ChannelEvent, RosterChanged, SaveSession, ServerChannel
from client.serverlink.link import ServerLink
from client.serverlink.roster import Changes
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


class Engine(IdentityCalls):
    def __init__(self, server: tuple[str, int] | None, nickname: str, *,
                 config_dir: pathlib.Path | None = None, data_dir: pathlib.Path | None = None,
                 bind: tuple[str, int] = ("0.0.0.0", 0), encrypted: bool = True,
                 notify: Callable[[], None] | None = None, deadline: float = 10.0,
                 reach: ReachConfig | None = None, chat: bool = True) -> None:
        self.server = None if server is None else (server[0], int(server[1]))
        self.nickname = nickname
        self._outbox = Outbox(notify)
        self.events: queue.Queue[ev.Event] = self._outbox.queue
        self.files: FileService | None = None  # attached by whoever wires file transfer in
        # the ChatApi every face drives; chat=False: today's room and private messages only
        self.chat = ChatLink(self, data_dir, config_dir, enabled=chat)
        # called in the engine thread as (peer, msg_id) when a peer acknowledged a whole
        # message; for tools (the benchmark), never blocking
        self.on_acked: Callable[[str, int], None] | None = None
        self.stats = {"peer_dropped": 0, "server_dropped": 0, "sent": 0, "received": 0}
        self._config_dir = config_dir
        self._encrypted = encrypted
        self._deadline = deadline
        # the socket's family follows the server's address: an IPv6 server needs an AF_INET6
        # socket (a host name is resolved in start(), which may re-open the socket then)
        family = literal_family(self.server[0]) if self.server is not None else None
        self._udp = UdpEdge(bind_for(bind, family), self.stats)
        self._bridge = Bridge(self._udp.wake)
        self._session: SavedSession | None = None
        self._seeker: ServerSeeker | None = None  # finds a server (none named, none reachable)
        self._close_lock = threading.Lock()
        self._roster_view: tuple[str, ...] = ()
        # state owned by the engine thread once started
        self._roster = MergedRoster(nickname)  # the directory's peers and the LAN's
        self._channel: ServerChannel | None = None
        self._server: ServerLink | None = None
        self._server_addr: tuple[str, int] | None = None
        self._messenger: Messenger | None = None
        self._transport: Transport | None = None
        self._peers: PeerLink | None = None
        self._router: Router | None = None
        self._reach_cfg = reach or ReachConfig()  # paths, NAT, LAN discovery: client/reachlink
        self._reach: ReachLink | None = None
        self._bulk = BulkPath()  # file data on the UDP path, behind the chat (attach_files)
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
        """Register over TCP (blocking), then run the engine thread. With LAN discovery on
        (``ReachConfig.lan``) and no server named or reachable, run in LAN mode and keep
        looking (client/seeker.py).

        Raises ``RegistrationError`` or ``ServerUnreachable``; the engine is then unusable
        and should be closed.
        """
        if self._bridge.thread is not None:
            raise RuntimeError("engine already started")
        lan = self._reach_cfg.lan
        try:  # TCP to the address the UDP side uses (same family as the UDP channel)
            named = self._udp.resolve(*self.server) if self.server is not None else None
        except (OSError, LookupError) as exc:
            if not lan:
                raise ServerUnreachable(f"cannot resolve {self.server[0]}: {exc}") from None
            named = None
        keys = _load_keys(self._encrypted, self._config_dir)  # a damaged key file fails fast
        now = time.monotonic()
        self._wire_peers(Messenger(now=now, deadline=self._deadline),
                         _make_transport(keys, self.nickname, now), lan_key(keys), now)
        self._seeker = ServerSeeker(named, self.nickname, self._config_dir,
                                    self._reach.lan_servers, timeout=timeout)
        self._seeker.on_refused = lambda text: self._emit(ev.Notice(text))
        found = self._seeker.first(lan)
        if found is not None:
            self._attach(found, now, initial=True)
        else:
            self._emit(ev.Notice(no_server_text(self.server)))
        self._emit(ev.Registered(self.nickname, self._roster_view))
        self.chat.attach(ChatParts(self._roster, self._transport, lambda: self._server,
                                   lambda: self._session,
                                   self._send, self._call, self._emit, self._adopted,
                                   keys and keys[0]), now)
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

        reach = self._reach
        files = FileTransfers(downloads=pathlib.Path(downloads), send_control=self.send_control,
                              emit=self.post_event, key_for=self.session_key_for,
                              address_of=self.address_of, listen_host=self._listen_host(),
                              listen_port=self.address[1], wake=self._udp.wake,
                              udp_first=lambda p: self._call(lambda _: tcp_hopeless(reach, p)))
        files.start()
        self._bulk.attach(files.lane, self._peers, self._transport, self._send_datagrams)
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
        return self._call(lambda now: self._reach.address_of(peer))

    def wait_idle(self, timeout: float) -> bool:
        """Wait until every message sent so far is acknowledged or given up (and no handshake
        is under way), at most ``timeout`` seconds; True if idle (before leaving)."""
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
        if self._session is not None:
            self._session.release()
        if self._seeker is not None:
            self._seeker.close()

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

    # ------------------------------------------------------------------ set-up
    def _attach(self, found: Found, now: float, initial: bool = False) -> None:
        """A server took our registration: at start, or later (from LAN mode)."""
        self._server_addr, self._session = found.server, found.session
        self._channel = ServerChannel(found.enrollment, now, found.auth)
        self._server = ServerLink(self._channel, found.server, send=self._udp.send,
                                  put=self._bridge.put, handle=self._on_channel_event,
                                  stopping=lambda: self._closing or self._bridge.closed)
        self._adopted()
        self._router.set_server(self._server)
        changes = self._roster.set_directory(self._channel.roster)
        if not initial:
            self._apply(changes, now)
            self._emit(ev.Notice(f"registered with the server at {found.server[0]}:"
                                 f"{found.server[1]}: peers beyond this network can reach you"))
            return
        self._roster_view = tuple(self._roster.nicknames())
        self._reach.on_roster(changes, now)  # punch at once
        for nick in self._roster_view:
            self._peers.update_verified(nick, now)

    def _adopted(self) -> None:
        """The channel has a (new) registration: take its nickname, save its keyword."""
        asked_as = self.nickname
        self.nickname = self._channel.nickname
        if self._session is not None:
            self._session.save(asked_as, self._channel.keyword, self._channel.mac_state())

    def _wire_peers(self, messenger: Messenger, transport: Transport, key: bytes | None = None,
                    now: float = 0.0) -> None:
        self._messenger, self._transport = messenger, transport
        self._reach = ReachLink(self._udp, transport, self._roster, cfg=self._reach_cfg,
                                server=lambda: server_view(self._server), lan_key=key, now=now,
                                post=lambda go: self._bridge.post(go, lambda: None),
                                emit=self._emit, on_changes=self._apply)
        self._peers = PeerLink(messenger, transport, self._roster,
                               send_datagrams=self._send_datagrams, emit=self._emit,
                               with_files=self._with_files,
                               on_path_frame=self._reach.on_path_frame, chat=self.chat)
        self._router = Router(self._udp, self._reach, transport, None, self.stats)

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
                    self._peers.pump(now, self.on_acked)
                    self._bulk.run(now)
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
            self.chat.close()
            bridge.drop_queued()

    def _close_transport(self) -> None:
        if self._peers is not None:
            self._peers.close()
        if self._reach is not None:
            self._reach.close()

    def _timeout(self, now: float) -> float:
        files = self._next_files_tick if self.files is not None else None
        server = self._channel.next_deadline() if self._channel else self._seeker.next_deadline(now)
        self._due = min((d for d in (server, self._peers.next_deadline(),
                                     self._reach.next_deadline(), self.chat.next_deadline(),
                                     files) if d is not None),
                        default=now + 1.0)
        return self._bulk.wait(now, min(max(0.0, self._due - now), 1.0))

    def _drain(self, now: float) -> None:
        self._router.drain(now)

    def _on_timers(self, now: float) -> None:
        self._peers.on_timer(now)
        if self._server is not None:
            self._server.on_timer(now)
        else:
            self._seeker.poll(now, lambda go: self._bridge.post(go, lambda: None), self._attach)
        self.chat.on_timer(now)
        if self.files is not None and now >= self._next_files_tick:
            self._next_files_tick = now + FILES_TICK
            self._with_files(lambda files: files.tick(now))
        self._peers.on_late_timer(now)
        self._reach.on_timer(now)

    # ------------------------------------------------------------------ server channel
    def _on_channel_event(self, event: ChannelEvent, now: float) -> None:
        if isinstance(event, RosterChanged):
            self._apply(self._roster.from_directory(event.changes), now)
            return
        if isinstance(event, ev.Reregistered | SaveSession):
            self._adopted()
        if isinstance(event, ev.ServerLost | ev.ServerBack | ev.Reregistered):
            self._reach.server_changed(not isinstance(event, ev.ServerLost), now)
        if not isinstance(event, SaveSession):
            self._emit(event)
        if isinstance(event, ev.ServerBack):
            self.chat.server_back(now)

    def _send_quit(self, now: float) -> None:
        if self._server is not None:
            self._server.quit()

    def _stop(self, now: float) -> None:  # the loop ends after this turn (sends go out)
        self._closing = True

    # ------------------------------------------------------------------ peers
    def _send(self, peers: list[str], kind: int, payload: bytes, now: float) -> int:
        self._reach.sent(peers, now)
        return self._peers.send(peers, kind, payload, now)

    def _send_datagrams(self, out: list[tuple[str, bytes]]) -> None:  # tools wrap it
        self._reach.send_many(out)

    def _apply(self, changes: Changes, now: float) -> None:
        if changes:
            self._reach.on_roster(changes, now)  # first: the candidates a handshake goes to
            self._peers.apply(changes, now)
            self._roster_view = tuple(self._roster.nicknames())
            self.chat.on_roster(changes, now)

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
        self._outbox.put(self.chat.label(event))
