"""The registration channel (TCP): CONNECT / REFERENCE? / CHANNEL_SWITCH / INFO?, one greenlet
per connection, each request through one dispatch table, each refusal an ``ERROR`` line."""

from __future__ import annotations

import argparse
import contextlib
import logging
import socket
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

import gevent
from gevent import socket as gsocket

from dirserver.storage import StorageWriter
from models import directory_wire as wire
from models.dirauth import Agreement, ServerAuth
from models.directory import Directory, KeyedRateLimiter, Refused, Registration
from models.errors import ProtocolError
from models.ratelimit import LogBudget

log = logging.getLogger("openlchat.server")

# ERROR codes after which the server closes the TCP connection (others leave it open).
CLOSING_ERRORS = frozenset({"LINE_TOO_LONG", "TOO_MANY_CONNECTIONS", "THROTTLED", "TIMEOUT"})
MAX_ERRORS_PER_CONNECTION = 8


class _Close(Exception):
    """End this TCP session (after CHANNEL_SWITCH, or a closing error)."""


@dataclass
class _Session:
    ip: str
    reg: Registration | None = None  # set by CONNECT


class Registrar:
    """Serves one TCP connection at a time per greenlet (``handle`` is the StreamServer's)."""

    def __init__(self, args: argparse.Namespace, directory: Directory, storage: StorageWriter,
                 now: Callable[[], float]) -> None:
        self.args = args
        self.directory = directory
        self.storage = storage
        self.now = now
        self.limiter = KeyedRateLimiter(args.register_rate, args.register_burst)
        self.conns: Counter[str] = Counter()
        self.stats: Counter[str] = Counter()
        self.log_budget = LogBudget(log, {
            "reclaim": "... and {n} more reclaims in the last {window} s"},
            window=args.log_window)
        self.debug_budget = LogBudget(log, {
            "registered": "... and {n} more registrations in the last {window} s",
            "refused": "... and {n} more requests refused in the last {window} s",
        }, window=args.log_window, level=logging.DEBUG)
        self._dispatch: dict[type, Callable] = {
            wire.Connect: self._on_connect,
            wire.ReferenceRequest: self._on_reference,
            wire.ChannelSwitch: self._on_channel_switch,
            wire.InfoRequest: self._on_info,
        }

    def handle(self, sock: gsocket.socket, addr: tuple) -> None:
        ip = addr[0]
        self.stats["connections"] += 1
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self.conns[ip] >= self.args.max_conns_per_ip:
            self.stats["too_many"] += 1
            self._reply_error(sock, "TOO_MANY_CONNECTIONS",
                              f"at most {self.args.max_conns_per_ip} connections per address")
            sock.close()
            return
        self.conns[ip] += 1
        timeout = gevent.Timeout(self.args.register_timeout)
        timeout.start()
        try:
            self._session(sock, _Session(ip))
        except gevent.Timeout as t:
            if t is not timeout:
                raise
            self.stats["timeouts"] += 1
            self._reply_error(sock, "TIMEOUT",
                              f"registration not finished within {self.args.register_timeout:g} s")
        except OSError:
            pass  # the peer went away
        finally:
            timeout.close()
            self.conns[ip] -= 1
            if self.conns[ip] <= 0:
                del self.conns[ip]
            sock.close()

    def _reply_error(self, sock: gsocket.socket, code: str, text: str) -> None:
        self.stats["errors"] += 1
        try:
            with gevent.Timeout(1, False):
                sock.sendall(wire.encode_line(wire.Error(code, text)))
        except OSError:
            pass

    def _session(self, sock: gsocket.socket, session: _Session) -> None:
        buf = b""
        errors = 0
        limit = wire.MAX_REQUEST_LINE
        while True:
            while b"\n" not in buf:
                if len(buf) >= limit:
                    self._reply_error(sock, "LINE_TOO_LONG", f"lines are at most {limit} bytes")
                    return
                data = sock.recv(4096)
                if not data:
                    return
                buf += data
            line, _, buf = buf.partition(b"\n")
            try:
                if len(line) >= limit:
                    raise ProtocolError("LINE_TOO_LONG", f"lines are at most {limit} bytes")
                msg = wire.decode_request(line + b"\n")
                reply = self._dispatch[type(msg)](msg, session)
            except _Close:
                return
            except ProtocolError as exc:  # Refused is one too
                self._reply_error(sock, exc.code, exc.text)
                self.debug_budget.log("refused", self.now(), "tcp %s: %s %s",
                                      session.ip, exc.code, exc.text)
                errors += 1
                if exc.code in CLOSING_ERRORS or errors >= MAX_ERRORS_PER_CONNECTION:
                    return
                continue
            sock.sendall(reply)

    def _on_connect(self, msg: wire.Connect, session: _Session) -> bytes:
        if session.reg is not None:
            raise Refused("OUT_OF_ORDER", "already registered on this connection")
        now = self.now()
        if not self.limiter.allow(session.ip, now):
            self.stats["throttled"] += 1
            raise Refused("THROTTLED", "too many registrations from your address; slow down")
        # a bad key is refused before anything is reserved
        agreement = Agreement.answer(msg.x25519) if msg.x25519 is not None else None
        reg, reclaimed = self.directory.register(msg.nickname, msg.keyword, now,
                                                 msg.x25519, msg.proof)
        if not reclaimed:
            exc = self.storage.register(reg.nickname, reg.keyword)
            if exc is not None:
                self.directory.cancel(reg)
                self.storage.failed(f"registration of {reg.nickname} refused: {exc}")
                raise Refused("STORAGE", "the directory cannot store registrations right now; "
                                         "try again later") from None
            self.debug_budget.log("registered", now, "registered %s from %s", reg.nickname,
                                  session.ip)
        else:
            self.log_budget.log("reclaim", now, "reclaimed %s from %s", reg.nickname,
                                session.ip)
        session.reg = reg
        if agreement is None:
            return wire.encode_line(wire.Keyword(reg.keyword))
        self.directory.set_auth(reg, ServerAuth(agreement.key(reg.keyword)))
        return wire.encode_line(wire.Keyword(reg.keyword, agreement.x25519))

    def flush_logs(self, now: float) -> None:
        self.log_budget.flush(now)
        self.debug_budget.flush(now)

    def _on_reference(self, msg: wire.ReferenceRequest, session: _Session) -> bytes:
        if session.reg is None:
            raise Refused("OUT_OF_ORDER", "CONNECT first")
        return self.directory.reference_line(session.reg, self.now())

    def _on_channel_switch(self, msg: wire.ChannelSwitch, session: _Session) -> bytes:
        if session.reg is None:
            raise Refused("OUT_OF_ORDER", "CONNECT first")
        raise _Close()

    def _on_info(self, msg: wire.InfoRequest, session: _Session) -> bytes:
        nickname = session.reg.nickname if session.reg is not None else None
        return wire.encode_line(wire.Info(self.args.ping_interval, nickname))
