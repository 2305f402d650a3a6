"""One file over one TCP connection, encrypted with libsodium secretstream (both directions).

Blocking functions run by a transfer's own thread: ``send_stream`` on the sender's side and
``receive_stream`` on the receiver's side, after the connecting side's 22-byte preamble
(``client/files/wire.py``). Byte layout and the reasoning behind it: ``docs/PROTOCOL.md section 8``.

Keys: the 32-byte ``key_for(peer, b"file" + token)`` is split into one key per direction
(keyed BLAKE2b with distinct personalisations), so the two secretstreams never share a key.
Integrity: secretstream authenticates every chunk, their order and the end (TAG_FINAL), so a
stream that is cut, reordered or altered fails to decrypt. A stream starts at the offset the
receiver asked for only if the receiver's ``.part`` prefix hashes (BLAKE2b-256) to the same value
as the sender's file prefix, and the sender echoes the receiver's random challenge, so an old
recorded stream cannot be replayed at another offset. Memory per transfer is O(chunk).
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO, Protocol

from nacl.bindings import crypto_secretstream as ss
from nacl.exceptions import CryptoError

from client.files import wire
from models.errors import ProtocolError

log = logging.getLogger(__name__)

CHUNK = 1 << 20                       # plaintext bytes per secretstream message
ABYTES = ss.crypto_secretstream_xchacha20poly1305_ABYTES
SS_HEADER = ss.crypto_secretstream_xchacha20poly1305_HEADERBYTES
TAG_MESSAGE = ss.crypto_secretstream_xchacha20poly1305_TAG_MESSAGE
TAG_FINAL = ss.crypto_secretstream_xchacha20poly1305_TAG_FINAL
MAX_FRAME = CHUNK + ABYTES
ZERO_HASH = bytes(wire.HASH_LEN)
HASH_BLOCK = 1 << 20


class Conn(Protocol):
    """What a transfer's stream runs over: a TCP socket, or a stream on the UDP path
    (``client.files.udplane.UdpConn``)."""

    def sendall(self, data: bytes | bytearray | memoryview, /) -> None: ...

    def recv_into(self, buffer: bytearray | memoryview, /) -> int: ...

    def settimeout(self, timeout: float | None, /) -> None: ...

    def shutdown(self, how: int, /) -> None: ...

    def close(self) -> None: ...


class StreamError(Exception):
    """The transfer over this connection failed; ``str(exc)`` is a short reason for people."""


class ConnectionLost(StreamError):
    """The other side went away; it may be about to tell us why."""


class NotConnected(ConnectionLost):
    """The connection broke before the other side's stream header arrived: nothing of the
    transfer happened on it (e.g. a flooded listener dropped it), so another try is safe."""


def _recv_header(sock: Conn) -> bytes:
    try:
        return recv_exact(sock, SS_HEADER)
    except (ConnectionLost, ConnectionError) as exc:
        raise NotConnected("connection closed before the stream started") from exc


def direction_keys(key: bytes) -> tuple[bytes, bytes]:
    """(sender->receiver key, receiver->sender key) from the per-transfer key."""
    if len(key) != 32:
        raise ValueError("file key must be 32 bytes")
    s2r = hashlib.blake2b(key=key, digest_size=32, person=b"OLCfile s2r").digest()
    r2s = hashlib.blake2b(key=key, digest_size=32, person=b"OLCfile r2s").digest()
    return s2r, r2s


def prefix_hash(path: Path, length: int, stop: Callable[[], bool] = lambda: False) -> bytes | None:
    """BLAKE2b-256 of the first ``length`` bytes of ``path``; None if the file is shorter."""
    h = hashlib.blake2b(digest_size=wire.HASH_LEN)
    buf = bytearray(HASH_BLOCK)
    view = memoryview(buf)
    left = length
    with open(path, "rb") as f:
        while left:
            if stop():
                raise StreamError("cancelled")
            n = f.readinto(view[:min(left, HASH_BLOCK)])
            if not n:
                return None
            h.update(view[:n])
            left -= n
    return h.digest()


try:    # PyNaCl's own cffi binding of the same libsodium calls, minus the wrapper's copies
    from nacl._sodium import ffi as _ffi
    from nacl._sodium import lib as _lib
    _FAST = all(hasattr(_lib, f"crypto_secretstream_xchacha20poly1305_{op}")
                for op in ("push", "pull"))
except ImportError:     # pragma: no cover - older/newer PyNaCl: the public API, one copy more
    _FAST = False


class _Pusher:
    def __init__(self, key: bytes) -> None:
        self.state = ss.crypto_secretstream_xchacha20poly1305_state()
        self.header = ss.crypto_secretstream_xchacha20poly1305_init_push(self.state, key)

    def push(self, data: bytes, tag: int = TAG_MESSAGE) -> bytes:
        return ss.crypto_secretstream_xchacha20poly1305_push(self.state, data, None, tag)

    def push_frame(self, src: bytearray, n: int, frame: bytearray) -> int:
        """Encrypt ``src[:n]`` into ``frame`` as length u32 + ciphertext; the frame's length.
        Both buffers are reused for every chunk, so memory stays flat and nothing is copied
        beyond what encryption itself writes."""
        clen = n + ABYTES
        if not 0 <= n <= len(src) or 4 + clen > len(frame):
            raise ValueError("chunk larger than its buffers")
        if _FAST:
            rc = _lib.crypto_secretstream_xchacha20poly1305_push(
                self.state.statebuf, _ffi.from_buffer("unsigned char[]", frame) + 4, _ffi.NULL,
                _ffi.from_buffer(src), n, _ffi.NULL, 0, TAG_MESSAGE)
            if rc != 0:
                raise StreamError("encryption failed")
        else:
            frame[4:4 + clen] = self.push(bytes(memoryview(src)[:n]))
        wire.FRAME_HEADER.pack_into(frame, 0, clen)
        return 4 + clen


class _Puller:
    def __init__(self, header: bytes, key: bytes) -> None:
        self.state = ss.crypto_secretstream_xchacha20poly1305_state()
        ss.crypto_secretstream_xchacha20poly1305_init_pull(self.state, header, key)
        self.finished = False
        self._tag = _ffi.new("unsigned char *") if _FAST else None
        self._mlen = _ffi.new("unsigned long long *") if _FAST else None

    def pull(self, ciphertext: bytes) -> tuple[bytes, int]:
        if self.finished:
            raise StreamError("data after the end of the stream")
        try:
            data, tag = ss.crypto_secretstream_xchacha20poly1305_pull(self.state, ciphertext)
        except (CryptoError, ValueError) as exc:
            raise StreamError("corrupted or forged data on the wire") from exc
        return data, self._check(tag)

    def pull_into(self, src: bytearray, clen: int, dst: bytearray) -> tuple[int, int]:
        """Decrypt ``src[:clen]`` into ``dst``; (plaintext length, tag)."""
        if self.finished:
            raise StreamError("data after the end of the stream")
        if not ABYTES <= clen <= len(src) or clen - ABYTES > len(dst):   # libsodium trusts us
            raise StreamError("bad frame length on the wire")
        if not _FAST:
            data, tag = self.pull(bytes(memoryview(src)[:clen]))
            dst[:len(data)] = data
            return len(data), tag
        rc = _lib.crypto_secretstream_xchacha20poly1305_pull(
            self.state.statebuf, _ffi.from_buffer("unsigned char[]", dst), self._mlen, self._tag,
            _ffi.from_buffer(src), clen, _ffi.NULL, 0)
        if rc != 0:
            raise StreamError("corrupted or forged data on the wire")
        return int(self._mlen[0]), self._check(int(self._tag[0]))

    def _check(self, tag: int) -> int:
        if tag == TAG_FINAL:
            self.finished = True
        elif tag != TAG_MESSAGE:
            raise StreamError("unexpected secretstream tag")
        return tag


def recv_exact(sock: Conn, n: int) -> bytes:
    buf = bytearray(n)
    recv_into_exact(sock, memoryview(buf))
    return bytes(buf)


def recv_into_exact(sock: Conn, view: memoryview) -> None:
    got, n = 0, len(view)
    while got < n:
        k = sock.recv_into(view[got:])
        if not k:
            raise ConnectionLost("connection closed mid-transfer")
        got += k


def _recv_frame_into(sock: Conn, buf: bytearray) -> int:
    (n,) = wire.FRAME_HEADER.unpack(recv_exact(sock, wire.FRAME_HEADER.size))
    if not ABYTES <= n <= min(MAX_FRAME, len(buf)):
        raise StreamError("bad frame length on the wire")
    recv_into_exact(sock, memoryview(buf)[:n])
    return n


def _frame(ciphertext: bytes) -> bytes:
    return wire.FRAME_HEADER.pack(len(ciphertext)) + ciphertext


def send_stream(sock: Conn, *, key: bytes, path: Path, size: int,
                progress: Callable[[int], None], stop: Callable[[], bool],
                chunk: int = CHUNK) -> None:
    """Sender side: read the receiver's hello, stream ``path`` from the agreed offset, wait for
    the receiver's DONE. Raises StreamError (or OSError from the socket) on any failure."""
    s2r_key, r2s_key = direction_keys(key)
    puller = _Puller(_recv_header(sock), r2s_key)
    data, tag = puller.pull(recv_exact(sock, wire.HELLO_LEN + ABYTES))
    if tag != TAG_MESSAGE:
        raise StreamError("bad hello")
    try:
        hello = wire.decode_hello(data)
    except ProtocolError as exc:
        raise StreamError("bad hello") from exc
    start = _agree_offset(path, size, hello, stop)
    pusher = _Pusher(s2r_key)
    sock.sendall(pusher.header + _frame(pusher.push(wire.encode_start(hello.challenge, start))))
    _send_body(sock, pusher, path, start, size, progress, stop, min(chunk, CHUNK))
    sock.sendall(_frame(pusher.push(wire.encode_end(size), TAG_FINAL)))
    done, tag = puller.pull(recv_exact(sock, len(wire.DONE) + ABYTES))
    if tag != TAG_FINAL or done != wire.DONE:
        raise StreamError("receiver did not confirm")


def _agree_offset(path: Path, size: int, hello: wire.Hello, stop: Callable[[], bool]) -> int:
    """Resume where the receiver asks only if our prefix is byte-for-byte what it holds."""
    if hello.offset == 0 or hello.offset > size:
        return 0
    ours = prefix_hash(path, hello.offset, stop)
    if ours is not None and ours == hello.prefix_hash:
        log.info("resuming %s at %d", path.name, hello.offset)
        return hello.offset
    log.info("resume of %s refused: prefix differs, starting over", path.name)
    return 0


def _send_body(sock: Conn, pusher: _Pusher, path: Path, start: int, size: int,
               progress: Callable[[int], None], stop: Callable[[], bool], chunk: int) -> None:
    plain = bytearray(chunk)
    frame = bytearray(4 + chunk + ABYTES)
    pview, fview = memoryview(plain), memoryview(frame)
    done = start
    with open(path, "rb", buffering=0) as f:
        f.seek(start)
        while done < size:
            if stop():
                raise StreamError("cancelled")
            n = f.readinto(pview[:min(chunk, size - done)])
            if not n:
                raise StreamError("the file got shorter while sending")
            sock.sendall(fview[:pusher.push_frame(plain, n, frame)])
            done += n
            progress(done)


def receive_stream(sock: Conn, *, key: bytes, out: BinaryIO, offset: int,
                   prefix: bytes, size: int, progress: Callable[[int], None],
                   stop: Callable[[], bool], finish: Callable[[], object]) -> None:
    """Receiver side: ask for ``offset`` (``out`` holds that many verified bytes whose hash is
    ``prefix``), write the authenticated chunks to ``out``, check the end, call ``finish()``
    (which must put the file in place) and then confirm DONE to the sender."""
    s2r_key, r2s_key = direction_keys(key)
    challenge = os.urandom(wire.CHALLENGE_LEN)
    pusher = _Pusher(r2s_key)
    hello = wire.encode_hello(wire.Hello(challenge, offset, prefix if offset else ZERO_HASH))
    try:
        sock.sendall(pusher.header + pusher.push(hello))
    except ConnectionError as exc:
        raise NotConnected("connection closed before the stream started") from exc
    puller = _Puller(_recv_header(sock), s2r_key)
    cipher, plain = bytearray(MAX_FRAME), bytearray(CHUNK)
    n, tag = puller.pull_into(cipher, _recv_frame_into(sock, cipher), plain)
    try:
        echoed, start = wire.decode_start(bytes(plain[:n])) if tag == TAG_MESSAGE else (b"", -1)
    except ProtocolError as exc:
        raise StreamError("bad start") from exc
    if echoed != challenge or start not in (0, offset):
        raise StreamError("stream does not answer our request")
    out.seek(start)
    out.truncate(start)
    done = start
    progress(done)
    pview = memoryview(plain)
    while True:
        if stop():
            raise StreamError("cancelled")
        n, tag = puller.pull_into(cipher, _recv_frame_into(sock, cipher), plain)
        if tag == TAG_FINAL:
            break
        if done + n > size:
            raise StreamError("sender sent more than the offered size")
        out.write(pview[:n])
        done += n
        progress(done)
    try:
        end = wire.decode_end(bytes(plain[:n]))
    except ProtocolError as exc:
        raise StreamError("bad end of stream") from exc
    if end != size or done != size:
        raise StreamError(f"stream ended at {done} of {size} bytes")
    finish()
    sock.sendall(pusher.push(wire.DONE, TAG_FINAL))
