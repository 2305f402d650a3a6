"""Test helpers for the IRC gateway: an IRC client from the ``irc`` package (a well-kept IRC
library, driven in the test's thread) and an OpenLChat user at a real terminal."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from client.engine import Engine
from client.irc.server import IrcGateway
from client.terminal import Terminal
from tests.test_terminal import Out, Pipe

irc_client = pytest.importorskip("irc.client", reason="the irc package is not installed")


class IrcUser:
    """One IRC client connection; ``wait`` pumps the reactor until an event matches."""

    def __init__(self, address: tuple[str, int], nick: str, password: str | None = None) -> None:
        self.reactor = irc_client.Reactor()
        self.events: list = []
        self.reactor.add_global_handler("all_events", lambda c, e: self.events.append(e), -10)
        self.conn = self.reactor.server().connect(address[0], address[1], nick,
                                                  password=password)

    def wait(self, pred: Callable[[object], bool], timeout: float = 8.0,
             what: str = "") -> object:
        end = time.monotonic() + timeout
        seen = 0
        while time.monotonic() < end:
            for e in self.events[seen:]:
                if pred(e):
                    return e
            seen = len(self.events)
            self.reactor.process_once(0.02)
        raise AssertionError(f"no IRC event {what}; got "
                             f"{[(e.type, e.source, e.target, e.arguments) for e in self.events]}")

    def wait_type(self, kind: str, *args: str, timeout: float = 8.0) -> object:
        def match(e: object) -> bool:
            return e.type == kind and all(a in " ".join(map(str, e.arguments))  # type: ignore[attr-defined]
                                          for a in args)
        return self.wait(match, timeout, f"{kind} {args}")

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.conn.disconnect()
        with contextlib.suppress(Exception):
            self.reactor.process_once(0.01)


@contextlib.contextmanager
def terminal_user(server, config_dir, nick: str = "bob") -> Iterator[tuple[Engine, Pipe, Out]]:
    """An OpenLChat user at a real terminal (a Terminal fed by a pipe)."""
    engine = Engine(server.address, nick, config_dir=config_dir)
    engine.start()
    stdin, stdout = Pipe(), Out()
    term = Terminal(engine, stdin, stdout)
    runner = threading.Thread(target=term.run, daemon=True)
    runner.start()
    try:
        yield engine, stdin, stdout
    finally:
        stdin.close_input()
        runner.join(5)


@contextlib.contextmanager
def gateway_user(server, config_dir, nick: str = "alice", **kw) -> Iterator[
        tuple[Engine, IrcGateway]]:
    """An engine served on a free loopback port by the IRC gateway."""
    engine = Engine(server.address, nick, config_dir=config_dir)
    engine.start()
    gateway = IrcGateway(engine.chat, engine.events, ("127.0.0.1", 0), **kw)
    gateway.start()
    try:
        yield engine, gateway
    finally:
        gateway.close()
        engine.close()
