"""Two FileTransfers managers wired together the way the engine would, for the file tests."""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from pathlib import Path

from client.files import FileTransfers

TEST_KEY = bytes(range(32))


class Inbox:
    """Collects emitted events; tests wait on them."""

    def __init__(self) -> None:
        self.events: list[object] = []
        self.cond = threading.Condition()

    def __call__(self, event: object) -> None:
        with self.cond:
            self.events.append(event)
            self.cond.notify_all()

    def wait_for(self, pred: Callable[[object], bool], timeout: float = 10.0) -> object:
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                for ev in self.events:
                    if pred(ev):
                        return ev
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"no matching event in {self.events!r}")
                self.cond.wait(left)

    def of(self, cls: type) -> list:
        with self.cond:
            return [e for e in self.events if isinstance(e, cls)]


class Link:
    """One direction of the control channel: delivered in order on its own thread, like the
    engine thread calling on_control."""

    def __init__(self, sender_nick: str) -> None:
        self.sender_nick = sender_nick
        self.target: FileTransfers | None = None
        self.q: queue.Queue[bytes | None] = queue.Queue()
        self.drop = False
        self.sent: list[bytes] = []
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def __call__(self, peer: str, payload: bytes) -> None:
        assert payload[:1] == b"F" and len(payload) <= 4096
        self.sent.append(payload)
        if not self.drop:
            self.q.put(payload)

    def _run(self) -> None:
        while (item := self.q.get()) is not None:
            assert self.target is not None
            self.target.on_control(self.sender_nick, item)

    def close(self) -> None:
        self.q.put(None)
        self.thread.join(2)


class Side:
    def __init__(self, nick: str, downloads: Path, link: Link, *, key: bytes | None = TEST_KEY,
                 listen: bool = True, offer_ttl: float = 120.0) -> None:
        self.nick = nick
        self.inbox = Inbox()
        self.link = link
        self.key = key
        self.ft = FileTransfers(downloads=downloads, send_control=link, emit=self.inbox,
                                key_for=lambda peer, label: self.key,
                                address_of=lambda peer: ("127.0.0.1", 1),
                                listen_host="127.0.0.1", offer_ttl=offer_ttl)
        if listen:
            self.ft.start()


class Pair:
    """alice and bob, each with a downloads folder under ``root``."""

    def __init__(self, root: Path, **kw) -> None:
        self.a_link, self.b_link = Link("alice"), Link("bob")
        self.alice = Side("alice", root / "alice-dl", self.a_link, **kw.get("alice", {}))
        self.bob = Side("bob", root / "bob-dl", self.b_link, **kw.get("bob", {}))
        self.a_link.target = self.bob.ft
        self.b_link.target = self.alice.ft
        self.root = root

    def close(self) -> None:
        self.alice.ft.close()
        self.bob.ft.close()
        self.a_link.close()
        self.b_link.close()
