"""Engines and a directory server inside the NAT lab (tests/nat.py), for the reachability tests.

Engines run in this process: each is made and started by a thread that entered its host's
namespace (``in_netns``), so its sockets and the threads it starts live there. The server is
``server.py`` in the internet namespace (a subprocess). Short intervals everywhere: PING every
0.5 s, a path silent for 1 s is dead, probes retried from 0.1 s.
"""

from __future__ import annotations

import queue
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from client import events as ev
from client.engine import Engine
from client.reach.paths import PathConfig
from client.reachlink import ReachConfig
from tests.conftest import ServerProcess
from tests.nat import in_netns

PING = 0.5
PATHS = PathConfig(first_retry=0.1, max_retry=0.5, probe_attempts=8, path_timeout=1.0,
                   keepalive_interval=25.0)


class LabServer(ServerProcess):
    """``server.py`` inside namespace ``ns``, listening on ``host``."""

    def __init__(self, ns: str, host: str, db_path: Path, ping_interval: float = PING,
                 extra_args: tuple[str, ...] = ()) -> None:
        super().__init__(db_path, ping_interval, extra_args)
        self.ns = ns
        self.host = host

    def command(self) -> list[str]:
        return ["ip", "netns", "exec", self.ns, *super().command()]


class LabEngine:
    """An engine in a namespace, with its events collected."""

    def __init__(self, ns: str, server: tuple[str, int] | None, nick: str, config_dir: Path,
                 *, lan: bool = False, paths: PathConfig = PATHS, start: bool = True,
                 encrypted: bool = True) -> None:
        self.ns = ns
        self.nick = nick
        self.seen: list[ev.Event] = []
        cfg = ReachConfig(paths=paths, lan=lan, lan_interval=1.0)
        self.engine: Engine = in_netns(ns, lambda: Engine(
            server, nick, config_dir=config_dir, encrypted=encrypted,
            reach=cfg, deadline=8.0))
        if start:
            self.run(lambda: self.engine.start(timeout=5))

    def run(self, fn: Callable[[], Any]) -> Any:
        """``fn()`` in this engine's namespace (sockets or threads it makes stay there)."""
        return in_netns(self.ns, fn)

    def pump(self) -> None:
        while True:
            try:
                self.seen.append(self.engine.events.get_nowait())
            except queue.Empty:
                return

    def of(self, cls: type) -> list[Any]:
        self.pump()
        return [e for e in self.seen if isinstance(e, cls)]

    def wait_for(self, cls: type, timeout: float = 8.0, **fields: Any) -> Any:
        end = time.monotonic() + timeout
        while True:
            for e in self.of(cls):
                if all(getattr(e, k) == v for k, v in fields.items()):
                    return e
            if time.monotonic() > end:
                raise AssertionError(f"{self.nick}: no {cls.__name__} {fields}; saw {self.seen}")
            time.sleep(0.02)

    def wait_text(self, cls: type, contains: str, timeout: float = 8.0) -> Any:
        """The first ``cls`` event whose ``text`` contains ``contains``."""
        found: list[Any] = []

        def check() -> bool:
            found[:] = [e for e in self.of(cls) if contains in e.text]
            return bool(found)

        self.wait_until(check, f"{cls.__name__} with {contains!r}", timeout)
        return found[0]

    def wait_until(self, check: Callable[[], bool], what: str, timeout: float = 8.0) -> None:
        end = time.monotonic() + timeout
        while not check():
            if time.monotonic() > end:
                raise AssertionError(f"{self.nick}: {what} never happened; saw {self.seen}")
            time.sleep(0.02)

    def wait_roster(self, names: list[str], timeout: float = 8.0) -> None:
        self.wait_until(lambda: sorted(self.engine.roster()) == sorted(names),
                        f"roster {names} (is {self.engine.roster()})", timeout)

    def path(self, peer: str) -> str:
        info = self.engine.whois(peer)
        return "" if info is None or info.path is None else info.path

    def close(self) -> None:
        self.engine.close()
