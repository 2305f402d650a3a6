"""The UDP edge: the only client code that touches the UDP socket.

One non-blocking socket whose family follows the server's address (bind, and re-open in the
other family when a host name only has addresses of that one), a one-byte datagram to ourselves
to wake the engine thread out of ``select`` (``close()`` does not wake a blocked ``recvfrom`` on
Linux, and a datagram works on Windows too), draining in batches and sending with the errors a
datagram socket gives sorted out: a full send buffer is loss (retransmission covers it), ICMP
port-unreachable is ignored (Windows: SIO_UDP_CONNRESET off), an oversized datagram on Windows
(WSAEMSGSIZE) is counted.
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import select
import socket
from collections.abc import Callable, Iterable

log = logging.getLogger(__name__)

Address = tuple[str, int]

WAKE = b"\x00"
# Receive buffer: every valid datagram is <= 1200 bytes (peer envelope, packed REF_ADD/REF_DEL);
# a longer one is truncated to this, still too long, and dropped by the size checks (Windows
# instead fails the recvfrom with WSAEMSGSIZE, and the datagram is gone: counted, not logged).
MAX_UDP = 4096
WSAEMSGSIZE = 10040
RCVBUF = 4 << 20
WILDCARDS = ("", "0.0.0.0", "::")


def literal_family(host: str) -> int | None:
    """AF_INET6 / AF_INET for an IP literal, None for a host name (resolved later)."""
    try:
        ip = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return None
    return socket.AF_INET6 if ip.version == 6 else socket.AF_INET


def bind_for(bind: Address, family: int | None) -> Address:
    """The default wildcard bind, in the server's family (an explicit address stays)."""
    host, port = bind
    if host in WILDCARDS and family is not None:
        host = "::" if family == socket.AF_INET6 else "0.0.0.0"
    return host, int(port)


def _quiet_windows_resets(sock: socket.socket) -> None:
    # On Windows an ICMP port-unreachable makes the *next* recvfrom fail with WSAECONNRESET;
    # SIO_UDP_CONNRESET turns that off. Elsewhere there is no such ioctl (we also catch it).
    if hasattr(socket, "SIO_UDP_CONNRESET") and hasattr(sock, "ioctl"):
        with contextlib.suppress(OSError, ValueError):
            sock.ioctl(socket.SIO_UDP_CONNRESET, False)  # type: ignore[attr-defined]


class UdpEdge:
    """The engine's socket. ``stats`` is the engine's counters dict (sent, send_full, ...)."""

    def __init__(self, bind: Address, stats: dict[str, int]) -> None:
        self.stats = stats
        self.closing = False  # errors while closing are expected: not logged
        self._open(bind)

    @property
    def address(self) -> Address:
        return self.sock.getsockname()[:2]

    def _open(self, bind: Address) -> None:
        family = socket.AF_INET6 if ":" in bind[0] else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            sock.bind(bind)
            sock.setblocking(False)
        except OSError:
            sock.close()
            raise
        _quiet_windows_resets(sock)
        # room for a burst of file data on the UDP path (the kernel caps it at its maximum)
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RCVBUF)
        host = bind[0]
        if host in WILDCARDS:
            host = "::1" if family == socket.AF_INET6 else "127.0.0.1"
        self.bind = bind
        self.sock = sock
        self.v6 = family == socket.AF_INET6
        self.wake_addr = (host, sock.getsockname()[1])

    def resolve(self, host: str, port: int) -> Address:
        """The server's address in our socket's family; with a wildcard bind, the socket is
        re-opened in the other family when the server has only addresses of that one. Raises
        OSError (cannot resolve) or LookupError (no address of a family we can use)."""
        infos = socket.getaddrinfo(host, port, 0, socket.SOCK_DGRAM)
        mine = socket.AF_INET6 if self.v6 else socket.AF_INET
        usable = [i for i in infos if i[0] == mine]
        if not usable:
            other = [i for i in infos if i[0] in (socket.AF_INET, socket.AF_INET6)]
            if not other or self.bind[0] not in WILDCARDS:
                raise LookupError(f"{host} has no address of the family of our UDP socket "
                                  f"({self.bind[0] or '*'})")
            wildcard = "::" if other[0][0] == socket.AF_INET6 else "0.0.0.0"
            self.sock.close()
            self._open((wildcard, self.bind[1]))
            usable = other
        addr = usable[0][4]
        return addr[0], addr[1]

    def listen_host(self) -> str:
        """Our explicit bind address, else the wildcard of our socket's family."""
        host = self.bind[0]
        if host in WILDCARDS:
            return "::" if self.v6 else "0.0.0.0"
        return host

    def wake(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.sendto(WAKE, self.wake_addr)

    def is_wake(self, data: bytes, addr: Address) -> bool:
        return data == WAKE and addr == self.wake_addr

    def wait(self, timeout: float) -> bool | None:
        """Readable within ``timeout``? None once the socket is closed under us."""
        try:
            readable, _, _ = select.select([self.sock], [], [], timeout)
        except (OSError, ValueError):
            return None
        return bool(readable)

    def receive(self, limit: int) -> list[tuple[bytes, Address]]:
        """Up to ``limit`` waiting datagrams, as (data, (ip, port))."""
        recvfrom = self.sock.recvfrom
        v6 = self.v6
        got: list[tuple[bytes, Address]] = []
        append = got.append
        for _ in range(limit):
            try:
                item = recvfrom(MAX_UDP)
            except (BlockingIOError, InterruptedError):
                break
            except (ConnectionResetError, ConnectionRefusedError):
                continue  # ICMP port unreachable from a peer that went away
            except OSError as exc:
                if getattr(exc, "winerror", None) == WSAEMSGSIZE:  # platform probe
                    self.stats["oversized"] = self.stats.get("oversized", 0) + 1
                    continue
                if not self.closing:
                    log.warning("recvfrom failed: %s", exc)
                break
            # (host, port, flowinfo, scope_id) -> the roster's (host, port)
            append((item[0], item[1][:2]) if v6 else item)
        return got

    def send(self, data: bytes, addr: Address | None) -> None:
        if addr is None:
            return
        try:
            self.sock.sendto(data, addr)
            self.stats["sent"] += 1
        except (BlockingIOError, InterruptedError):
            full = self.stats["send_full"] = self.stats.get("send_full", 0) + 1
            if full in (1, 10, 100) or full % 10000 == 0:
                log.info("send buffer full; %d datagrams dropped so far (retransmission covers "
                         "them)", full)
        except (ConnectionResetError, ConnectionRefusedError):
            pass
        except OSError as exc:
            if not self.closing:
                log.warning("sendto %s:%d failed: %s", addr[0], addr[1], exc)

    def send_many(self, out: Iterable[tuple[str, bytes]],
                  address_of: Callable[[str], Address | None]) -> None:
        """The hot path of a room message: one sendto per recipient, nothing else."""
        sendto = self.sock.sendto
        sent = 0
        for peer, datagram in out:
            addr = address_of(peer)
            if addr is None:
                continue
            try:
                sendto(datagram, addr)
                sent += 1
            except OSError:
                self.send(datagram, addr)  # the slow path sorts out and logs the error
        self.stats["sent"] += sent

    def close(self) -> None:
        self.closing = True
        self.sock.close()
