"""Network labs in throw-away namespaces: a LAN on a bridge, and home routers behind NAT.

``Lab`` builds namespaces, bridges and veth links and removes them all on exit. Two shapes:

* ``lan_lab(n)``: ``n`` hosts on one bridge (a switch), 10.77.0.1..n/24, default route via the
  switch's 10.77.0.254 (so multicast and broadcast behave as on a real home LAN).
* ``nat_lab(homes=(1, 1), udp_timeout=2, random=False)``: an "internet" namespace with a
  bridge at 203.0.113.254/24 (a directory server runs there), and one home router per entry of
  ``homes``, each with that many hosts behind it. Router ``i`` has WAN address 203.0.113.(i+1)
  and LAN 10.0.(i+1).1/24; its hosts are 10.0.(i+1).2, .3, ... The router behaves as a cheap
  home router: ``masquerade`` on the WAN port (``masquerade random`` when ``random`` is set, a
  new random port per destination = "symmetric NAT"), its own WAN input closed except
  established flows, nothing forwarded from the WAN unless established, no hairpin, and UDP
  conntrack timeouts of ``udp_timeout`` seconds (both ``nf_conntrack_udp_timeout`` and
  ``..._stream``, set per namespace).

``udp_socket(ns, (ip, port))`` makes a UDP socket *inside* a namespace from this process
(``setns`` in a short-lived thread: a socket stays in the namespace it was made in), and
``in_netns(ns, fn)`` runs any ``fn`` there -- threads that ``fn`` starts stay in that namespace
too. ``Lab.run(ns, argv)`` runs a command there. Needs root, ``ip`` and ``nft``;
``lab_unavailable()`` says why not otherwise.
"""

from __future__ import annotations

import ctypes
import os
import socket
import subprocess
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

from tests.netns import netns_unavailable

T = TypeVar("T")
CLONE_NEWNET = 0x40000000
INTERNET_IP = "203.0.113.254"


def lab_unavailable(nat: bool = False) -> str | None:
    """None when namespaces and bridges (and with ``nat``, conntrack NAT) can be built here,
    else the reason."""
    basic = netns_unavailable()
    if basic is not None:
        return basic
    if nat and not os.path.exists("/proc/sys/net/netfilter/nf_conntrack_udp_timeout"):
        return "conntrack is not loaded (modprobe nf_conntrack nf_nat)"
    probe = f"olcprobe-{uuid.uuid4().hex[:6]}"
    try:
        subprocess.run(["ip", "netns", "add", probe], check=True, capture_output=True)
        subprocess.run(["ip", "-n", probe, "link", "add", "br0", "type", "bridge"], check=True,
                       capture_output=True)
    except (OSError, subprocess.CalledProcessError) as exc:
        return f"cannot build a namespace with a bridge here: {exc}"
    finally:
        subprocess.run(["ip", "netns", "del", probe], capture_output=True, check=False)
    return None


_libc = ctypes.CDLL(None, use_errno=True)


def in_netns(ns: str, fn: Callable[[], T]) -> T:
    """``fn()`` run in a thread that entered namespace ``ns``; its result (or exception)."""
    box: dict[str, object] = {}

    def run() -> None:
        try:
            fd = os.open(f"/run/netns/{ns}", os.O_RDONLY)
            try:
                if _libc.setns(fd, CLONE_NEWNET) != 0:
                    err = ctypes.get_errno()
                    raise OSError(err, f"setns {ns}: {os.strerror(err)}")
            finally:
                os.close(fd)
            box["value"] = fn()
        except BaseException as exc:  # handed to the caller's thread
            box["error"] = exc

    t = threading.Thread(target=run, name=f"netns-{ns}")
    t.start()
    t.join()
    if "error" in box:
        raise box["error"]  # type: ignore[misc]
    return box["value"]  # type: ignore[return-value]


def udp_socket(ns: str, bind: tuple[str, int], timeout: float = 0.5) -> socket.socket:
    """A UDP socket bound to ``bind`` inside namespace ``ns``."""

    def make() -> socket.socket:
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind(bind)
        s.settimeout(timeout)
        return s

    return in_netns(ns, make)


def set_sysctl(ns: str, key: str, value: int) -> None:
    """Write ``/proc/sys/<key>`` inside ``ns`` (no ``sysctl`` binary needed: procps may be
    missing on a fresh machine)."""

    def write() -> None:
        with open(f"/proc/sys/{key}", "w", encoding="ascii") as f:
            f.write(f"{value}\n")

    in_netns(ns, write)


@dataclass
class Host:
    ns: str
    ip: str


@dataclass
class Router:
    ns: str
    wan_ip: str
    lan_ip: str
    hosts: list[Host] = field(default_factory=list)


class Lab:
    """Namespaces and links, all removed on ``close``."""

    def __init__(self) -> None:
        self.tag = uuid.uuid4().hex[:6]
        self.namespaces: list[str] = []

    def __enter__(self) -> Lab:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        for ns in reversed(self.namespaces):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, check=False)
        self.namespaces.clear()

    def run(self, ns: str, argv: list[str], stdin: str | None = None) -> str:
        out = subprocess.run(["ip", "netns", "exec", ns, *argv], input=stdin,
                             capture_output=True, text=True)
        if out.returncode != 0:
            raise RuntimeError(f"{' '.join(argv)} in {ns}: {out.stderr.strip()}")
        return out.stdout

    def ip(self, ns: str, *args: str) -> None:
        self.run(ns, ["ip", *args])

    def add_ns(self, role: str) -> str:
        name = f"olc{self.tag}-{role}"
        subprocess.run(["ip", "netns", "add", name], check=True)
        self.namespaces.append(name)
        self.ip(name, "link", "set", "lo", "up")
        return name

    def bridge(self, ns: str, name: str, cidr: str | None = None) -> None:
        self.ip(ns, "link", "add", name, "type", "bridge")
        self.ip(ns, "link", "set", name, "up")
        if cidr:
            self.ip(ns, "addr", "add", cidr, "dev", name)

    def link(self, ns: str, ifname: str, cidr: str, bridge_ns: str, bridge: str) -> None:
        """A veth from ``ns`` (``ifname``, with ``cidr``) into ``bridge`` in ``bridge_ns``."""
        peer = f"v{len(self.namespaces)}{uuid.uuid4().hex[:8]}"
        self.ip(ns, "link", "add", ifname, "type", "veth", "peer", "name", peer,
                "netns", bridge_ns)
        self.ip(bridge_ns, "link", "set", peer, "master", bridge)
        self.ip(bridge_ns, "link", "set", peer, "up")
        self.ip(ns, "addr", "add", cidr, "dev", ifname)
        self.ip(ns, "link", "set", ifname, "up")

    def router(self, ns: str, udp_timeout: int, random: bool) -> None:
        set_sysctl(ns, "net/ipv4/ip_forward", 1)
        masq = "masquerade random" if random else "masquerade"
        rules = f"""
table ip olc_nat {{
  chain postrouting {{ type nat hook postrouting priority srcnat; policy accept;
    oifname "wan" {masq}
  }}
}}
table inet olc_fw {{
  chain input {{ type filter hook input priority filter; policy accept;
    iifname "wan" ct state established,related accept
    iifname "wan" drop
  }}
  chain forward {{ type filter hook forward priority filter; policy drop;
    iifname "lan" oifname "wan" accept
    # hosts on the router's own switch (br_netfilter sends bridged frames through here)
    iifname "lan" oifname "lan" accept
    ct state established,related accept
  }}
}}
"""
        self.run(ns, ["nft", "-f", "-"], stdin=rules)
        # After the first NAT rule the conntrack sysctls exist in this namespace.
        for key in ("nf_conntrack_udp_timeout", "nf_conntrack_udp_timeout_stream"):
            set_sysctl(ns, f"net/netfilter/{key}", udp_timeout)


def lan_lab(lab: Lab, n: int) -> list[Host]:
    """``n`` hosts on one switch (see the module docstring)."""
    switch = lab.add_ns("sw")
    lab.bridge(switch, "br0", "10.77.0.254/24")
    hosts = []
    for i in range(n):
        ns = lab.add_ns(f"h{i}")
        ip = f"10.77.0.{i + 1}"
        lab.link(ns, "eth0", f"{ip}/24", switch, "br0")
        lab.ip(ns, "route", "add", "default", "via", "10.77.0.254")
        hosts.append(Host(ns, ip))
    return hosts


def nat_lab(lab: Lab, homes: tuple[int, ...] = (1, 1), udp_timeout: int = 2,
            random: bool = False) -> tuple[str, list[Router]]:
    """(internet namespace, routers with their hosts); see the module docstring."""
    inet = lab.add_ns("inet")
    lab.bridge(inet, "br0", f"{INTERNET_IP}/24")
    routers = []
    for i, count in enumerate(homes):
        ns = lab.add_ns(f"r{i}")
        wan, lan_ip = f"203.0.113.{i + 1}", f"10.0.{i + 1}.1"
        lab.link(ns, "wan", f"{wan}/24", inet, "br0")
        lab.bridge(ns, "lan", f"{lan_ip}/24")
        lab.router(ns, udp_timeout, random)
        r = Router(ns, wan, lan_ip)
        for j in range(count):
            hns = lab.add_ns(f"r{i}h{j}")
            ip = f"10.0.{i + 1}.{j + 2}"
            lab.link(hns, "eth0", f"{ip}/24", ns, "lan")
            lab.ip(hns, "route", "add", "default", "via", lan_ip)
            r.hosts.append(Host(hns, ip))
        routers.append(r)
    return inet, routers


class Reflector:
    """A UDP echo of the source address (a tiny STUN) in a namespace: each datagram is
    answered with ``"ip port"`` of its sender, as the directory would see it."""

    def __init__(self, ns: str, ip: str) -> None:
        self.sock = udp_socket(ns, (ip, 0), timeout=0.2)
        self.addr: tuple[str, int] = self.sock.getsockname()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                _data, src = self.sock.recvfrom(2048)
            except TimeoutError:
                continue
            except OSError:
                return
            self.sock.sendto(f"{src[0]} {src[1]}".encode(), src)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self.sock.close()


def public_address(sock: socket.socket, reflector: tuple[str, int]) -> tuple[str, int]:
    """Our address as ``reflector`` sees it."""
    for _ in range(5):
        sock.sendto(b"?", reflector)
        try:
            data, src = sock.recvfrom(2048)
        except TimeoutError:
            continue
        if src == reflector:
            ip, port = data.decode().split()
            return ip, int(port)
    raise AssertionError("the reflector did not answer")
