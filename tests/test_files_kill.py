"""Resume after the sending process is SIGKILLed mid-transfer (real processes, real sockets)."""

from __future__ import annotations

import os
import socket
import struct
import subprocess
import sys
import threading
from pathlib import Path

from client.events import FileDone, FileFailed, FileOffered, FileProgress
from client.files import FileTransfers, wire
from tests.test_files_support import TEST_KEY, Inbox, Proxy

REPO = Path(__file__).resolve().parent.parent

# The sender: a FileTransfers in its own process, control messages over a local TCP socket.
SENDER = """
import socket, struct, sys, threading, time
from pathlib import Path
sys.path.insert(0, sys.argv[4])
from client.files import FileTransfers
ctl = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
lock = threading.Lock()
def send(peer, payload):
    with lock:
        ctl.sendall(struct.pack(">H", len(payload)) + payload)
ft = FileTransfers(downloads=Path(sys.argv[3]), send_control=send, emit=lambda e: None,
                   key_for=lambda p, l: bytes(range(32)),
                   address_of=lambda p: ("127.0.0.1", 1), listen_host="127.0.0.1")
ft.start()
ft.offer("bob", [Path(sys.argv[2])])
f = ctl.makefile("rb")
while (h := f.read(2)) and len(h) == 2:
    ft.on_control("bob", f.read(struct.unpack(">H", h)[0]))
"""


class SenderProcess:
    """Runs SENDER and relays its control messages to ``bob`` through a stall-able proxy."""

    def __init__(self, tmp: Path, src: Path, bob: FileTransfers, stall_after: int | None) -> None:
        self.bob = bob
        self.stall_after = stall_after
        self.proxy: Proxy | None = None
        self.lsock = socket.create_server(("127.0.0.1", 0))
        script = tmp / "sender.py"
        script.write_text(SENDER, encoding="utf-8")
        self.proc = subprocess.Popen([sys.executable, str(script), str(self.lsock.getsockname()[1]),
                                      str(src), str(tmp), str(REPO)])
        self.lsock.settimeout(20)
        self.conn, _ = self.lsock.accept()
        self.conn.settimeout(None)
        self.lock = threading.Lock()
        threading.Thread(target=self._relay, daemon=True).start()

    def send(self, peer: str, payload: bytes) -> None:
        with self.lock:
            self.conn.sendall(struct.pack(">H", len(payload)) + payload)

    def _relay(self) -> None:
        f = self.conn.makefile("rb")
        while (head := f.read(2)) and len(head) == 2:
            payload = f.read(struct.unpack(">H", head)[0])
            msg = wire.decode_control(payload)
            if isinstance(msg, wire.Offer):
                self.proxy = Proxy(("127.0.0.1", msg.port), stall_after=self.stall_after)
                payload = wire.encode_control(wire.Offer(msg.token, msg.name, msg.size,
                                                         msg.mtime_ns, self.proxy.port))
            self.bob.on_control("alice", payload)

    def close(self) -> None:
        self.proc.kill()
        self.proc.wait(10)
        self.conn.close()
        self.lsock.close()
        if self.proxy is not None:
            self.proxy.close()


class _Switch:
    """bob's send_control: goes to whichever sender process is current."""

    def __init__(self) -> None:
        self.current: SenderProcess | None = None

    def __call__(self, peer: str, payload: bytes) -> None:
        if self.current is not None:
            self.current.send(peer, payload)


def test_resume_after_the_sender_process_is_killed(tmp_path: Path) -> None:
    size = 12 << 20
    data = os.urandom(size)
    src = tmp_path / "holiday.mp4"
    src.write_bytes(data)
    inbox, switch = Inbox(), _Switch()
    bob = FileTransfers(downloads=tmp_path / "bob-dl", send_control=switch, emit=inbox,
                        key_for=lambda p, label: TEST_KEY,
                        address_of=lambda p: ("127.0.0.1", 1), listen_host="127.0.0.1")
    bob.start()
    first = second = None
    try:
        first = switch.current = SenderProcess(tmp_path, src, bob, stall_after=5 << 20)
        offer = inbox.wait_for(lambda e: isinstance(e, FileOffered), 20)
        bob.accept(offer.transfer_id)
        assert first.proxy is not None and first.proxy.stalled.wait(20)
        first.proc.kill()                                  # SIGKILL mid-transfer
        first.proc.wait(10)
        first.proxy.released.set()                         # let the dead sender's end through
        failed = inbox.wait_for(lambda e: isinstance(e, FileFailed), 20)
        assert failed.transfer_id == offer.transfer_id
        part = tmp_path / "bob-dl" / "holiday.mp4.part"
        kept = part.stat().st_size
        assert 0 < kept < size and part.read_bytes() == data[:kept]

        second = switch.current = SenderProcess(tmp_path, src, bob, stall_after=None)
        offer2 = inbox.wait_for(lambda e: isinstance(e, FileOffered)
                                and e.transfer_id != offer.transfer_id, 20)
        bob.accept(offer2.transfer_id)
        done = inbox.wait_for(lambda e: isinstance(e, FileDone | FileFailed)
                              and e.transfer_id == offer2.transfer_id, 30)
        assert isinstance(done, FileDone), done
        assert done.path.read_bytes() == data
        assert sorted(p.name for p in done.path.parent.iterdir()) == ["holiday.mp4"]
        start = next(e for e in inbox.of(FileProgress) if e.transfer_id == offer2.transfer_id)
        assert start.done == kept                           # resumed, not restarted
        assert second.proxy is not None and second.proxy.down_bytes[0] < size - kept + 4096
    finally:
        bob.close()
        for s in (first, second):
            if s is not None:
                s.close()
