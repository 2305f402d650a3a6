"""Two FileTransfers managers wired together the way the engine would, for the file tests."""

from __future__ import annotations

import contextlib
import os
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
        self.transform: Callable[[bytes], bytes] | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def __call__(self, peer: str, payload: bytes) -> None:
        assert payload[:1] == b"F" and len(payload) <= 4096
        if self.transform is not None:
            payload = self.transform(payload)
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

    def source(self, name: str, size: int) -> tuple[Path, bytes]:
        """A file of ``size`` random bytes for alice to offer, and its content."""
        data = os.urandom(size)
        path = self.root / "src" / name
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(data)
        return path, data

    def close(self) -> None:
        self.alice.ft.close()
        self.bob.ft.close()
        self.a_link.close()
        self.b_link.close()


class Proxy:
    """A TCP proxy on 127.0.0.1 in front of ``target`` that can damage the sender->receiver
    direction of the stream: flip one byte, stall, or cut both sockets abruptly.

    ``upstream_first`` says who connects: True when the receiver connects through the proxy to
    the sender's listener (the normal case), so "down" (toward the receiver) is the reply side.
    """

    def __init__(self, target: tuple[str, int], *, flip_at: int | None = None,
                 stall_after: int | None = None, cut_after: int | None = None) -> None:
        import socket
        self.target = target
        self.flip_at, self.stall_after, self.cut_after = flip_at, stall_after, cut_after
        self.released = threading.Event()
        self.stalled = threading.Event()
        self.down_bytes: list[int] = []       # per connection: bytes forwarded to the receiver
        self.lsock = socket.create_server(("127.0.0.1", 0))
        self.port = self.lsock.getsockname()[1]
        self.conns: list = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        import socket
        while True:
            try:
                client, _ = self.lsock.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.target)
            self.conns += [client, upstream]
            idx = len(self.down_bytes)
            self.down_bytes.append(0)
            threading.Thread(target=self._pump_up, args=(client, upstream), daemon=True).start()
            threading.Thread(target=self._pump_down, args=(upstream, client, idx),
                             daemon=True).start()

    @staticmethod
    def _pump_up(src, dst) -> None:
        import socket
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        with contextlib.suppress(OSError):
            dst.shutdown(socket.SHUT_WR)        # pass the end of the stream on

    def _pump_down(self, src, dst, idx: int) -> None:
        import socket
        try:
            while data := src.recv(65536):
                pos = self.down_bytes[idx]
                end = pos + len(data)
                if self.flip_at is not None and pos <= self.flip_at < end:
                    buf = bytearray(data)
                    buf[self.flip_at - pos] ^= 0x01
                    data = bytes(buf)
                limit = self.cut_after if self.cut_after is not None else self.stall_after
                if limit is not None and end > limit and idx == 0:
                    dst.sendall(data[:max(0, limit - pos)])
                    self.down_bytes[idx] = limit
                    if self.cut_after is not None:
                        for s in (src, dst):   # what the kernel does for a killed process
                            with contextlib.suppress(OSError):
                                s.shutdown(socket.SHUT_RDWR)
                        return
                    self.stalled.set()
                    self.released.wait()
                    break                           # then pass the end of the stream on
                dst.sendall(data)
                self.down_bytes[idx] = end
        except OSError:
            pass
        with contextlib.suppress(OSError):
            dst.shutdown(socket.SHUT_WR)

    def close(self) -> None:
        self.released.set()
        self.lsock.close()
        for s in self.conns:
            with contextlib.suppress(OSError):
                s.close()


def reroute_offers(link: Link, port: int) -> None:
    """Make ``link`` rewrite the listener port in OFFER messages (to put a proxy in between)."""
    from client.files import wire

    def rewrite(payload: bytes) -> bytes:
        msg = wire.decode_control(payload)
        if isinstance(msg, wire.Offer):
            return wire.encode_control(wire.Offer(msg.token, msg.name, msg.size,
                                                  msg.mtime_ns, port))
        return payload

    link.transform = rewrite
