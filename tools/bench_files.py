"""Benchmark peer-to-peer file transfer on loopback: encrypted FileTransfers vs a plain send loop.

Run from the repository root::

    python tools/bench_files.py                 # 1 GiB of random data
    python tools/bench_files.py --size-mib 256  # quicker

It writes a random file to a temporary directory, then, with the sender and the receiver in two
separate processes, measures

* ``FileTransfers`` (secretstream-encrypted, authenticated, fsynced and moved into place),
* the same over the UDP path: two real engines (SecureTransport) registered with a real
  ``server.py``, the stream carried in SEALED datagrams with LEDBAT congestion control, and
* an unencrypted loop sending the same file in 64 KiB ``sendall`` calls into a receiver that
  writes it to disk in 64 KiB ``recv_into`` calls (the floor set by the kernel and the disk),

printing a Markdown table: MB/s, CPU-seconds per GB on each side (``time.process_time``, user +
system of the whole process), and the receiver's resident memory during the transfer. The two
processes exchange the control messages over a local TCP connection, standing in for the
engine's encrypted UDP channel; the file key is a fixed test key.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from client.engine import Engine  # noqa: E402
from client.events import FileDone, FileFailed, FileOffered  # noqa: E402
from client.files import FileTransfers  # noqa: E402

KEY = bytes(range(32))
BLOCK = 64 * 1024


def _rss_now() -> int:
    """Current resident set size in bytes (Linux /proc; ru_maxrss elsewhere)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, AttributeError):
        try:
            import resource  # POSIX only; peak rather than current there
        except ImportError:
            return 0
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


class _RssSampler:
    def __init__(self) -> None:
        self.start = _rss_now()
        self.peak = self.start
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.02):
            self.peak = max(self.peak, _rss_now())

    def stop(self) -> dict:
        self._stop.set()
        self._thread.join()
        return {"rss_start": self.start, "rss_peak": self.peak}


class _ControlPipe:
    """Length-prefixed control messages over one TCP connection, delivered in order."""

    def __init__(self, sock: socket.socket, peer: str) -> None:
        self.sock, self.peer = sock, peer
        self.lock = threading.Lock()
        self.target: FileTransfers | None = None

    def send(self, peer: str, payload: bytes) -> None:
        with self.lock:
            self.sock.sendall(struct.pack(">H", len(payload)) + payload)

    def run(self) -> None:
        f = self.sock.makefile("rb")
        while (head := f.read(2)) and len(head) == 2:
            payload = f.read(struct.unpack(">H", head)[0])
            assert self.target is not None
            self.target.on_control(self.peer, payload)


def _manager(pipe: _ControlPipe, downloads: Path, events: list, cond: threading.Condition):
    def emit(ev: object) -> None:
        with cond:
            events.append(ev)
            cond.notify_all()

    ft = FileTransfers(downloads=downloads, send_control=pipe.send, emit=emit,
                       key_for=lambda peer, label: KEY,
                       address_of=lambda peer: ("127.0.0.1", 1), listen_host="127.0.0.1")
    pipe.target = ft
    ft.start()
    threading.Thread(target=pipe.run, daemon=True).start()
    return ft


def _wait(events: list, cond: threading.Condition, kinds: tuple) -> object:
    with cond:
        while True:
            for ev in events:
                if isinstance(ev, kinds):
                    return ev
            cond.wait(60)


def _usage() -> float:
    return time.process_time()


def _engine(args: argparse.Namespace, nick: str, downloads: Path) -> Engine:
    host, port = args.server.rsplit(":", 1)
    eng = Engine((host, int(port)), nick, config_dir=Path(tempfile.mkdtemp()),  # fresh keys
                 bind=("127.0.0.1", 0))
    eng.start(timeout=10)
    files = eng.attach_files(downloads)
    files.settings.udp = "udp"
    return eng


def _engine_wait(eng: Engine, kinds: tuple, timeout: float = 600.0) -> object:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        ev = eng.events.get(timeout=end - time.monotonic())
        if isinstance(ev, kinds):
            return ev
    raise SystemExit("timed out")


def _received(accept: Callable[[], None], wait_done: Callable[[], object],
              close: Callable[[], None]) -> dict:
    """The receiving side's measurement: accept, wait for the end, the figures."""
    sampler = _RssSampler()
    cpu0, t0 = _usage(), time.perf_counter()
    accept()
    done = wait_done()
    wall, cpu = time.perf_counter() - t0, _usage() - cpu0
    mem = sampler.stop()
    close()
    if not isinstance(done, FileDone):
        raise SystemExit(f"transfer failed: {done}")
    os.unlink(done.path)
    return {"wall": wall, "cpu": cpu, **mem}


def _udp_receive(args: argparse.Namespace) -> dict:
    eng = _engine(args, "receiver", Path(args.out))
    print("ready", flush=True)
    offer = _engine_wait(eng, (FileOffered,))
    return _received(lambda: eng.accept_file(offer.transfer_id),
                     lambda: _engine_wait(eng, (FileDone, FileFailed)), eng.close)


def _udp_send(args: argparse.Namespace) -> dict:
    eng = _engine(args, "sender", Path(tempfile.mkdtemp()))
    end = time.monotonic() + 10
    while "receiver" not in eng.roster() and time.monotonic() < end:
        time.sleep(0.02)
    cpu0, t0 = _usage(), time.perf_counter()
    eng.offer_files("receiver", [Path(args.file)])
    done = _engine_wait(eng, (FileDone, FileFailed))
    wall, cpu = time.perf_counter() - t0, _usage() - cpu0
    eng.close()
    if not isinstance(done, FileDone):
        raise SystemExit(f"transfer failed: {done}")
    return {"wall": wall, "cpu": cpu}


def role_receiver(args: argparse.Namespace) -> dict:
    if args.mode == "udp":
        return _udp_receive(args)
    lsock = socket.create_server(("127.0.0.1", 0))
    print(lsock.getsockname()[1], flush=True)
    conn, _ = lsock.accept()
    if args.mode == "plain":
        return _plain_receive(conn, Path(args.out), args.size)
    events: list = []
    cond = threading.Condition()
    ft = _manager(_ControlPipe(conn, "sender"), Path(args.out), events, cond)
    offer = _wait(events, cond, (FileOffered,))
    return _received(lambda: ft.accept(offer.transfer_id),
                     lambda: _wait(events, cond, (FileDone, FileFailed)), ft.close)


def _plain_receive(conn: socket.socket, out_dir: Path, size: int) -> dict:
    sampler = _RssSampler()
    buf = bytearray(BLOCK)
    view = memoryview(buf)
    cpu0, t0 = _usage(), time.perf_counter()
    got = 0
    path = out_dir / "plain.bin"
    with open(path, "wb") as f:
        while got < size:
            n = conn.recv_into(view)
            if not n:
                break
            f.write(view[:n])
            got += n
        f.flush()
        os.fsync(f.fileno())
    conn.sendall(b"k")
    wall, cpu = time.perf_counter() - t0, _usage() - cpu0
    mem = sampler.stop()
    path.unlink()
    if got != size:
        raise SystemExit(f"plain receive got {got} of {size}")
    return {"wall": wall, "cpu": cpu, **mem}


def role_sender(args: argparse.Namespace) -> dict:
    if args.mode == "udp":
        return _udp_send(args)
    conn = socket.create_connection(("127.0.0.1", args.port))
    src = Path(args.file)
    if args.mode == "plain":
        cpu0, t0 = _usage(), time.perf_counter()
        with open(src, "rb") as f:
            while block := f.read(BLOCK):
                conn.sendall(block)
        conn.recv(1)
        return {"wall": time.perf_counter() - t0, "cpu": _usage() - cpu0}
    events: list = []
    cond = threading.Condition()
    ft = _manager(_ControlPipe(conn, "receiver"), Path(tempfile.gettempdir()), events, cond)
    cpu0, t0 = _usage(), time.perf_counter()
    ft.offer("receiver", [src])
    done = _wait(events, cond, (FileDone, FileFailed))
    wall, cpu = time.perf_counter() - t0, _usage() - cpu0
    ft.close()
    if not isinstance(done, FileDone):
        raise SystemExit(f"transfer failed: {done}")
    return {"wall": wall, "cpu": cpu}


def _run_pair(mode: str, src: Path, out: Path, size: int, server: str = ""
              ) -> tuple[dict, dict]:
    me = [sys.executable, str(Path(__file__).resolve())]
    extra = ["--server", server] if server else []
    recv = subprocess.Popen(me + ["--role", "receiver", "--mode", mode, "--out", str(out),
                                  "--size", str(size), *extra], stdout=subprocess.PIPE,
                            text=True)
    assert recv.stdout is not None
    port = recv.stdout.readline().strip()
    if mode == "udp":
        port = "0"
    send = subprocess.run(me + ["--role", "sender", "--mode", mode, "--file", str(src),
                                "--port", port, *extra], capture_output=True, text=True,
                          check=True)
    r_out, _ = recv.communicate(timeout=600)
    if recv.returncode:
        raise SystemExit(f"receiver failed ({recv.returncode})")
    last = send.stdout.strip().splitlines()[-1]
    return json.loads(last), json.loads(r_out.strip().splitlines()[-1])


def _make_file(path: Path, size: int) -> None:
    with open(path, "wb") as f:
        left = size
        while left:
            n = min(left, 16 << 20)
            f.write(os.urandom(n))
            left -= n
        f.flush()
        os.fsync(f.fileno())    # no writeback of the source competing with the runs


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size-mib", type=int, default=1024,
                    help="file size in MiB (default %(default)s)")
    ap.add_argument("--dir", type=Path, default=None,
                    help="where to put the test files (default: a temporary directory)")
    ap.add_argument("--rounds", type=int, default=1, help="runs of each mode (default %(default)s)")
    ap.add_argument("--role", choices=["sender", "receiver"], help=argparse.SUPPRESS)
    ap.add_argument("--mode", choices=["plain", "files", "udp"], help=argparse.SUPPRESS)
    ap.add_argument("--server", help=argparse.SUPPRESS)
    ap.add_argument("--file", help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    ap.add_argument("--port", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--size", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.role:
        result = role_sender(args) if args.role == "sender" else role_receiver(args)
        print(json.dumps(result), flush=True)
        return 0

    size = args.size_mib << 20
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        src, out = Path(tmp) / "source.bin", Path(tmp) / "downloads"
        out.mkdir()
        _make_file(src, size)
        runs: dict[str, list[tuple]] = {}
        modes = [("plain", "plain 64 KiB sendall loop (no crypto)"),
                 ("files", "FileTransfers (secretstream, verified)"),
                 ("udp", "FileTransfers over the UDP path (engines, SEALED, LEDBAT)")]
        from bench_peer import start_server
        server_proc, server = start_server(Path(tmp))
        try:
            for i in range(args.rounds):
                for mode, label in modes[::1 if i % 2 == 0 else -1]:   # alternate: no bias
                    s, r = _run_pair(mode, src, out, size, f"{server[0]}:{server[1]}")
                    wall = max(s["wall"], r["wall"])
                    gb = size / 1e9
                    runs.setdefault(label, []).append(
                        (size / wall / 1e6, s["cpu"] / gb, r["cpu"] / gb,
                         r["rss_start"] / 2**20, r["rss_peak"] / 2**20))
        finally:
            server_proc.kill()
            server_proc.wait()
    print(f"\n{args.size_mib} MiB over loopback, sender and receiver in separate processes, "
          f"{os.cpu_count()} CPUs, median of {args.rounds} run(s), load average "
          f"{os.getloadavg()[0] if hasattr(os, 'getloadavg') else float('nan'):.1f}\n")
    print("| path | MB/s | sender CPU-s/GB | receiver CPU-s/GB | receiver RSS start → peak (MiB) |")
    print("|---|---:|---:|---:|---:|")
    for _, label in modes:
        rows = runs[label]
        mbs, scpu, rcpu, rss0, rss1 = (statistics.median(col) for col in zip(*rows, strict=True))
        print(f"| {label} | {mbs:.0f} | {scpu:.2f} | {rcpu:.2f} | {rss0:.1f} → {rss1:.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
