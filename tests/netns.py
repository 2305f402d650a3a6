"""Helpers for the end-to-end tests: client processes, lossy network namespaces, a sniffer.

- ``ClientProc``: a real ``python -m client --headless`` process with its own config dir; its
  stdout lines are collected by a thread so a test can ``expect`` a line with a deadline.
- ``Netns``: a throw-away network namespace (``ip netns add``) with ``lo`` up and, optionally, an
  nftables input-hook rule dropping a random share of UDP datagrams. Every datagram crosses the
  input hook exactly once on ``lo``, so "20%" is 20% of each direction. One-byte datagrams
  (the engine's wake-up to its own socket, which never travels a real network) are exempt.
  Needs root, ``ip`` and ``nft``; ``netns_unavailable()`` says why not otherwise.
- ``python tests/netns.py sniff SECONDS``: run inside a namespace (``ip netns exec``), prints
  the hex payload of every UDP datagram seen on ``lo`` (AF_PACKET, root), one per line.
"""

from __future__ import annotations

import os
import queue
import re
import shutil
import socket
import struct
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def netns_unavailable() -> str | None:
    """None when lossy namespaces can be built here, else the reason."""
    if not sys.platform.startswith("linux"):
        return "network namespaces are Linux-only"
    if os.geteuid() != 0:
        return "needs root for ip netns / nftables"
    for tool in ("ip", "nft"):
        if shutil.which(tool) is None:
            return f"`{tool}` is not installed (apt-get install iproute2 nftables)"
    return None


class Netns:
    def __init__(self, loss_percent: int = 0) -> None:
        self.name = f"olc-{uuid.uuid4().hex[:10]}"
        self.loss_percent = loss_percent

    def __enter__(self) -> Netns:
        subprocess.run(["ip", "netns", "add", self.name], check=True)
        try:
            subprocess.run(["ip", "-n", self.name, "link", "set", "lo", "up"], check=True)
            if self.loss_percent:
                rule = (f"meta l4proto udp udp length > 9 numgen random mod 100 < "
                        f"{self.loss_percent} counter drop")
                ruleset = ("table inet olc_loss {\n chain input {\n"
                           "  type filter hook input priority 0; policy accept;\n"
                           f"  {rule}\n }}\n}}\n")
                subprocess.run(self.wrap(["nft", "-f", "-"]), input=ruleset.encode(),
                               check=True)
        except BaseException:
            self.close()
            raise
        return self

    def wrap(self, argv: list[str]) -> list[str]:
        return ["ip", "netns", "exec", self.name, *argv]

    def free_port(self) -> int:
        """A port free for both TCP and UDP inside the namespace (nothing else runs there)."""
        code = ("import socket\nfor _ in range(50):\n"
                " t=socket.socket(); t.bind(('127.0.0.1',0)); p=t.getsockname()[1]\n"
                " u=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\n"
                " try:\n  u.bind(('127.0.0.1',p)); print(p); break\n"
                " except OSError: pass\n")
        out = subprocess.run(self.wrap([sys.executable, "-c", code]), capture_output=True,
                             check=True, text=True)
        return int(out.stdout.strip())

    def dropped(self) -> int:
        """Datagrams the loss rule dropped so far."""
        out = subprocess.run(self.wrap(["nft", "list", "table", "inet", "olc_loss"]),
                             capture_output=True, text=True, check=True).stdout
        match = re.search(r"counter packets (\d+)", out)
        return int(match.group(1)) if match else 0

    def close(self) -> None:
        subprocess.run(["ip", "netns", "del", self.name], check=False,
                       stderr=subprocess.DEVNULL)

    def __exit__(self, *exc: object) -> None:
        self.close()


def client_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    env["PYTHONIOENCODING"] = "utf-8"
    env["PYTHONUNBUFFERED"] = "1"
    return env


class ClientProc:
    """A terminal client process; ``lines`` collects what it prints."""

    def __init__(self, server: tuple[str, int], nick: str, config_dir: Path, *,
                 netns: Netns | None = None, extra: list[str] | None = None) -> None:
        self.nick = nick
        argv = [sys.executable, "-m", "client", "--headless", "--server",
                f"{server[0]}:{server[1]}", "--nick", nick, "--config-dir", str(config_dir),
                "--downloads", str(Path(config_dir) / "downloads"), *(extra or [])]
        if netns is not None:
            argv = netns.wrap(argv)
        self.proc = subprocess.Popen(argv, cwd=REPO, env=client_env(), stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        self.stderr_text = ""
        self._out = threading.Thread(target=self._read_out, daemon=True)
        self._err = threading.Thread(target=self._read_err, daemon=True)
        self._out.start()
        self._err.start()

    def _read_out(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            self.lines.put(raw.decode("utf-8", "replace").rstrip("\n"))

    def _read_err(self) -> None:
        assert self.proc.stderr is not None
        data = self.proc.stderr.read()
        self.stderr_text = data.decode("utf-8", "replace")

    def send(self, line: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line.encode("utf-8") + b"\n")
        self.proc.stdin.flush()

    def expect(self, pattern: str, timeout: float = 10.0) -> str:
        """The next line matching ``pattern`` (a regex, full match); earlier lines are kept in
        ``seen``. AssertionError on timeout."""
        rx = re.compile(pattern)
        end = time.monotonic() + timeout
        while True:
            left = end - time.monotonic()
            if left <= 0:
                raise AssertionError(f"{self.nick}: no line matching {pattern!r} within "
                                     f"{timeout}s; saw {self.seen[-20:]!r}; "
                                     f"stderr {self.stderr_text[-2000:]!r}")
            try:
                line = self.lines.get(timeout=left)
            except queue.Empty:
                continue
            self.seen.append(line)
            if rx.fullmatch(line):
                return line

    def drain(self, wait: float = 0.0) -> list[str]:
        """Every line printed so far (waiting ``wait`` seconds first)."""
        if wait:
            time.sleep(wait)
        got = []
        while True:
            try:
                line = self.lines.get_nowait()
            except queue.Empty:
                break
            self.seen.append(line)
            got.append(line)
        return got

    def quit(self, timeout: float = 10.0) -> int:
        if self.proc.poll() is None:
            try:
                self.send("/quit")
                self.proc.stdin.close()  # type: ignore[union-attr]
            except OSError:
                pass
        try:
            return self.proc.wait(timeout)
        finally:
            self.kill()

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)


# ---------------------------------------------------------------- sniffer (run in a netns)

ETH_P_ALL = 0x0003


def sniff(seconds: float) -> None:
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    sock.bind(("lo", 0))
    sock.settimeout(0.2)
    print("ready", flush=True)
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        try:
            frame, meta = sock.recvfrom(65536)
        except TimeoutError:
            continue
        if meta[2] == socket.PACKET_OUTGOING:
            continue  # on lo every packet is seen twice; keep the incoming copy
        ip = frame[14:]  # Ethernet header on lo
        if len(ip) < 20 or ip[0] >> 4 != 4 or ip[9] != socket.IPPROTO_UDP:
            continue
        ihl = (ip[0] & 0x0F) * 4
        sport, dport, length = struct.unpack("!HHH", ip[ihl:ihl + 6])
        payload = ip[ihl + 8:ihl + length]
        print(f"{sport} {dport} {payload.hex()}", flush=True)


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "sniff":
        sniff(float(sys.argv[2]))
    else:
        sys.exit("usage: python tests/netns.py sniff SECONDS")
