"""The engine's identity and reachability questions (who is this peer, which key, which path),
as a mixin of ``client.engine.Engine``: the engine class stays the wiring (under 400 lines).

Every call goes through the engine thread (``_call`` / the bridge), as the rest of the API.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from client import events as ev
from client.bridge import CALL_TIMEOUT, Bridge
from client.contracts import Transport
from client.errors import EngineNotResponding
from client.peerlink import PeerLink, answer
from client.reach.paths import PathInfo
from client.reachlink import ReachLink


class IdentityCalls:
    _transport: Transport | None
    _peers: PeerLink | None
    _reach: ReachLink | None
    _bridge: Bridge

    def _call(self, fn: Callable[[float], Any]) -> Any:
        return self._bridge.call(fn)

    def session_key_for(self, peer: str, label: bytes) -> bytes | None:
        transport = self._transport
        if transport is None:
            return None
        return self._call(lambda now: transport.session_key_for(peer, label))

    def own_fingerprint(self) -> str | None:
        return None if self._transport is None else self._transport.own_fingerprint()

    def whois(self, nickname: str) -> ev.Whois | None:
        return self._call(lambda now: self._reach.whois(self._peers.whois(nickname)))

    def path_of(self, nickname: str) -> PathInfo | None:
        """The path in use to ``nickname`` (kind LAN / DIRECT / RELAY, address, RTT), or None
        (none yet): for the file layer (issue 14) and tools."""
        return self._call(lambda now: self._reach.paths.path_of(nickname))

    def netcheck(self) -> list[str]:
        """``/netcheck`` lines (client.reachlink.ReachLink.netcheck)."""
        return self._call(lambda now: self._reach.netcheck(now))

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
        with_path = lambda info: on_result(self._reach.whois(info))  # noqa: E731
        self._bridge.post(lambda now: self._peers.ask_identity(nickname, with_path, timeout, now),
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

