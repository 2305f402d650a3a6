"""The directory's first channel from the client side: one blocking TCP exchange.

``register`` does, on one connection::

    CONNECT nickname [keyword] [x25519=K [proof=P]]
                                 ->  KEYWORD kw [x25519=K']  (with our old keyword: a reclaim)
    INFO?                        ->  INFO ping_interval=.. nickname=..  (extension; optional)
    REFERENCE?                   ->  REFERENCE n (nick ip port)*n
    CHANNEL_SWITCH               ->  the server closes

It is used for the first registration, for coming back after a crash (``keyword`` = the saved
one), for re-fetching the roster (our current keyword: the server hands it back unchanged and
announces nothing) and for registering again after the server forgot us (it answers with a
*new* keyword). It blocks, so the engine runs it in a worker thread after start-up.

MAC extension (``models.dirauth``): the CONNECT offering a key (``offer``) is made by the
caller's ``ClientAuth`` on the thread that owns it; a server that answers it with
``ERROR BAD_ARGS`` (the design's answer to an unknown token) gets the design's CONNECT on the
same connection, and the enrollment says ``plain_only``.
"""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Callable

from client.errors import RegistrationError, ServerUnreachable
from client.serverlink.channel import Enrollment
from client.serverlink.session import SavedSession
from models import directory_wire as wire
from models.dirauth import ClientAuth, unb64
from models.errors import ProtocolError

log = logging.getLogger(__name__)

DEFAULT_PING_INTERVAL = 10.0
MAX_REPLY_LINE = 8 * 1024 * 1024  # a REFERENCE of 100k rows fits; more is an attack


class _Lines:
    """Reads ``\\n``-terminated lines from a socket under one overall deadline."""

    def __init__(self, sock: socket.socket, deadline: float) -> None:
        self.sock = sock
        self.deadline = deadline
        self.buf = bytearray()

    def read(self) -> bytes:
        while True:
            i = self.buf.find(b"\n")
            if i >= 0:
                line = bytes(self.buf[: i + 1])
                del self.buf[: i + 1]
                return line
            if len(self.buf) > MAX_REPLY_LINE:
                raise RegistrationError("LINE_TOO_LONG", "server reply line too long")
            left = self.deadline - time.monotonic()
            if left <= 0:
                raise ServerUnreachable("server did not answer in time")
            self.sock.settimeout(left)
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ServerUnreachable("server closed the connection")
            self.buf += chunk


def _ask(sock: socket.socket, lines: _Lines, request: wire.Request) -> wire.Reply:
    sock.sendall(wire.encode_line(request))
    try:
        return wire.decode_reply(lines.read())
    except ProtocolError as exc:
        raise RegistrationError("BAD_REPLY", f"unreadable server reply ({exc.text})") from None


def enroll(server: tuple[str, int], nickname: str, session: SavedSession,
           timeout: float = 5.0) -> tuple[Enrollment, ClientAuth]:
    """The first registration, offering the MAC extension; with the session saved for
    ``nickname`` (claimed for this process) a reclaim, with the proof made with its MAC key if
    it has one. Blocking; raises as ``register``. The ``ClientAuth`` is then the channel's.

    The key the server agreed is saved as soon as its KEYWORD arrives: if the rest of the
    exchange fails, the server already holds the new key, and only it can prove the next
    reclaim."""
    auth = ClientAuth()
    saved = session.claim(nickname)
    keyword, mac = (saved.keyword, saved.mac) if saved is not None else (None, None)
    if keyword is not None and not wire.is_keyword(keyword):
        keyword = None  # a damaged saved session: register afresh
    if keyword is not None and mac is not None:
        try:
            if len(unb64(mac[0])) == 32:
                auth.restore(*mac)
        except ValueError:
            log.warning("ignoring a damaged MAC key in the saved session")

    def agreed(reply: wire.Keyword) -> None:
        auth.accept(reply)
        session.save(nickname, reply.keyword, auth.saved())

    reg = register(server, nickname, keyword=keyword, timeout=timeout,
                   offer=auth.connect(nickname, keyword), on_keyword=agreed)
    return reg, auth


def register(server: tuple[str, int], nickname: str, *, keyword: str | None = None,
             timeout: float = 5.0, offer: wire.Connect | None = None,
             on_keyword: Callable[[wire.Keyword], None] | None = None) -> Enrollment:
    """Register (or reclaim with ``keyword``) and fetch the roster. Blocking. ``offer``: the
    MAC extension's CONNECT (for the same nickname and keyword), tried first;
    ``on_keyword(reply)`` as soon as the server's KEYWORD is in (the key it agreed counts from
    then on, even if the rest of the exchange fails).

    Raises ``RegistrationError(code, text)`` when the server says no, ``ServerUnreachable`` when
    it cannot be talked to within ``timeout`` seconds overall.
    """
    deadline = time.monotonic() + timeout
    if keyword is not None and not wire.is_keyword(keyword):
        keyword = None  # a damaged saved session: register afresh
    try:
        wire.encode_line(wire.Connect(nickname, keyword))
    except ValueError:
        raise RegistrationError("BAD_NICK", "nickname must not contain spaces") from None
    try:
        sock = socket.create_connection(server, timeout=timeout)
    except OSError as exc:
        raise ServerUnreachable(f"cannot reach {server[0]}:{server[1]}: {exc}") from None
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return _converse(sock, _Lines(sock, deadline), nickname, keyword, offer, on_keyword)
    except TimeoutError:
        raise ServerUnreachable("server did not answer in time") from None
    except OSError as exc:
        raise ServerUnreachable(f"connection to the server failed: {exc}") from None
    finally:
        sock.close()


def _converse(sock: socket.socket, lines: _Lines, nickname: str, keyword: str | None,
              offer: wire.Connect | None,
              on_keyword: Callable[[wire.Keyword], None] | None) -> Enrollment:
    plain = wire.Connect(nickname, keyword)
    reply = _ask(sock, lines, offer or plain)
    plain_only = False
    if offer is not None and isinstance(reply, wire.Error) and reply.code == "BAD_ARGS":
        log.info("the server does not take x25519= (%s): registering without the MAC "
                 "extension", reply.text)
        plain_only = True
        reply = _ask(sock, lines, plain)
    if isinstance(reply, wire.Error):
        raise RegistrationError(reply.code, reply.text)
    if not isinstance(reply, wire.Keyword):
        raise RegistrationError("BAD_REPLY", f"expected KEYWORD, got {type(reply).__name__}")
    new_keyword, x25519 = reply.keyword, reply.x25519
    if on_keyword is not None:
        on_keyword(reply)

    ping_interval, display, extended = DEFAULT_PING_INTERVAL, nickname, False
    reply = _ask(sock, lines, wire.InfoRequest())
    if isinstance(reply, wire.Info):
        ping_interval, extended = reply.ping_interval, True
        display = reply.nickname or nickname
    elif not isinstance(reply, wire.Error):  # a design-only server says ERROR: fine
        raise RegistrationError("BAD_REPLY", f"expected INFO, got {type(reply).__name__}")

    reply = _ask(sock, lines, wire.ReferenceRequest())
    if isinstance(reply, wire.Error):
        raise RegistrationError(reply.code, reply.text)
    if not isinstance(reply, wire.Reference):
        raise RegistrationError("BAD_REPLY", f"expected REFERENCE, got {type(reply).__name__}")
    roster = tuple((e.nickname, e.host, e.port) for e in reply.entries)

    sock.sendall(wire.encode_line(wire.ChannelSwitch()))
    # The server closes; waiting for that keeps the order "switch, then first PING" on the wire.
    try:
        sock.settimeout(max(0.05, min(1.0, lines.deadline - time.monotonic())))
        sock.recv(1024)
    except OSError:
        pass
    log.info("registered as %s (%s%s), %d listed, ping_interval %s", display,
             "reclaimed" if new_keyword == keyword else "new keyword",
             ", MAC extension" if x25519 is not None else "", len(roster), ping_interval)
    return Enrollment(new_keyword, display, ping_interval, roster,
                      reclaimed=keyword is not None and new_keyword == keyword,
                      extended=extended, x25519=x25519, plain_only=plain_only)
