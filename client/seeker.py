"""Finding a directory server to register with (issue 10: no ``--server``, or none reachable).

Where to look, in order: the server the user named (``--server``), then every server heard on
the LAN (``client.reach.lan``: servers announce themselves with the same beacon as clients).
At start-up ``first()`` blocks like the old registration did: the named server, or with none
named a short wait (``LAN_WAIT``) for a LAN server to answer our discovery query. With nothing
found the engine runs in LAN mode (peers on this network only) and ``poll`` keeps looking,
off the engine thread, with a growing gap (``RETRY_FIRST`` .. ``RETRY_MAX``); a server heard on
the LAN is tried at once. A refusal by a server we reached (nickname taken, ...) is final at
start-up (the user must hear it) and only logged later.
"""

from __future__ import annotations

import logging
import pathlib
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from client.errors import RegistrationError, ServerUnreachable
from client.serverlink.channel import Enrollment
from client.serverlink.registration import enroll
from client.serverlink.session import SavedSession
from models.dirauth import ClientAuth

log = logging.getLogger(__name__)

Address = tuple[str, int]

LAN_WAIT = 1.5      # seconds start-up waits for a LAN server when none is named
RETRY_FIRST = 1.0
RETRY_MAX = 15.0


@dataclass(frozen=True)
class Found:
    server: Address
    enrollment: Enrollment
    session: SavedSession        # claimed for this process (released by the engine at close)
    auth: ClientAuth             # the MAC extension's state (the channel's from now on)


class ServerSeeker:
    def __init__(self, named: Address | None, nickname: str, config_dir: pathlib.Path | None,
                 lan_servers: Callable[[], list[Address]], *, timeout: float = 5.0) -> None:
        self.named = named
        self.nickname = nickname
        self.config_dir = config_dir
        self.lan_servers = lan_servers
        self.timeout = timeout
        self.found = False
        self.closed = False
        self._busy = False
        self._gap = RETRY_FIRST
        self._next: float | None = None
        self._tried_lan: set[Address] = set()
        self._told: set[str] = set()
        # told (on the engine thread) when a server we reached refuses us (nickname taken...)
        self.on_refused: Callable[[str], None] | None = None

    def candidates(self) -> list[Address]:
        seen = [self.named] if self.named is not None else []
        return seen + [a for a in self.lan_servers() if a not in seen]

    def _register(self, server: Address) -> Found:
        session = SavedSession(self.config_dir, server)
        try:
            reg, auth = enroll(server, self.nickname, session, timeout=self.timeout)
        except BaseException:
            session.release()
            raise
        return Found(server, reg, session, auth)

    def close(self) -> None:
        """A registration found after the engine stopped is not ours to keep."""
        self.found = self.closed = True

    def first(self, lan_on: bool) -> Found | None:
        """At start-up (blocking). Raises ``RegistrationError`` (refused), or
        ``ServerUnreachable`` when nothing answered and there is no LAN mode to fall back on."""
        if self.named is not None:
            try:
                return self._register(self.named)
            except ServerUnreachable:
                if not lan_on:
                    raise
                log.warning("server %s:%d unreachable: LAN mode", *self.named)
        if not lan_on:
            raise ServerUnreachable("no server given")
        end = time.monotonic() + (LAN_WAIT if self.named is None else 0.0)
        while True:
            for server in self.candidates():
                if server == self.named:
                    continue
                self._tried_lan.add(server)
                try:
                    return self._register(server)
                except ServerUnreachable as exc:
                    log.info("LAN server %s:%d unreachable: %s", server[0], server[1], exc)
            if time.monotonic() >= end:
                return None
            time.sleep(0.05)

    # ------------------------------------------------------------------ LAN mode
    def next_deadline(self, now: float) -> float | None:
        if self.found:
            return None
        if self._next is None:
            self._next = now + self._gap
        fresh = [a for a in self.lan_servers() if a not in self._tried_lan]
        return now if fresh and not self._busy else self._next

    def poll(self, now: float, post: Callable[[Callable[[float], None]], None],
             on_found: Callable[[Found, float], None]) -> None:
        """While we have no server: when due, try the candidates in a worker thread; the one
        that takes us is handed to ``on_found`` on the engine thread (through ``post``)."""
        due = self.next_deadline(now)
        if self.found or self._busy or due is None or now < due:
            return
        self._busy = True
        candidates = self.candidates()
        self._tried_lan.update(candidates)

        def work() -> None:
            result: Found | None = None
            refusals: list[str] = []
            for server in candidates:
                try:
                    result = self._register(server)
                    break
                except RegistrationError as exc:  # reached, but it said no: the user must know
                    log.info("server %s:%d refused: %s", server[0], server[1], exc)
                    refusals.append(f"the server at {server[0]}:{server[1]} refused "
                                    f"{self.nickname}: {exc.text}")
                except (ServerUnreachable, OSError) as exc:
                    log.info("server %s:%d: %s", server[0], server[1], exc)
            post(lambda now: self._done(result, now, on_found, refusals))

        threading.Thread(target=work, name="seek-server", daemon=True).start()

    def _done(self, result: Found | None, now: float, on_found: Callable[[Found, float], None],
              refusals: Sequence[str] = ()) -> None:
        self._busy = False
        for text in refusals:
            if text not in self._told and self.on_refused is not None:
                self._told.add(text)  # once each: we keep trying, quietly
                self.on_refused(text)
        if result is not None and self.closed:
            result.session.release()
            return
        if result is None:
            self._gap = min(RETRY_MAX, self._gap * 2)
            self._next = now + self._gap
            return
        self.found = True
        on_found(result, now)
