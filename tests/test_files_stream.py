"""The secretstream file stream against a misbehaving peer that holds the key (socketpair)."""

from __future__ import annotations

import io
import socket
import struct
import threading
from collections.abc import Callable

import pytest
from nacl.bindings import crypto_secretstream as ss

from client.files import stream as fs
from client.files import wire

KEY = bytes(range(32))
S2R, R2S = fs.direction_keys(KEY)


def _evil_sender(sock: socket.socket, script: Callable[[Callable[..., None], bytes], None]) -> None:
    """Answer the receiver's hello like a sender would, then let ``script`` misbehave."""
    header = fs.recv_exact(sock, fs.SS_HEADER)
    st = ss.crypto_secretstream_xchacha20poly1305_state()
    ss.crypto_secretstream_xchacha20poly1305_init_pull(st, header, R2S)
    hello, _ = ss.crypto_secretstream_xchacha20poly1305_pull(
        st, fs.recv_exact(sock, wire.HELLO_LEN + fs.ABYTES))
    challenge = wire.decode_hello(hello).challenge
    out = ss.crypto_secretstream_xchacha20poly1305_state()
    sock.sendall(ss.crypto_secretstream_xchacha20poly1305_init_push(out, S2R))

    def frame(data: bytes, tag: int = fs.TAG_MESSAGE, length: int | None = None) -> None:
        ct = ss.crypto_secretstream_xchacha20poly1305_push(out, data, None, tag)
        sock.sendall(struct.pack(">I", len(ct) if length is None else length) + ct)

    script(frame, challenge)
    sock.shutdown(socket.SHUT_WR)


def _receive(script, size: int = 10) -> tuple[str | None, bytes, bool]:
    a, b = socket.socketpair()
    a.settimeout(5)
    b.settimeout(5)
    t = threading.Thread(target=_evil_sender, args=(a, script), daemon=True)
    t.start()
    out = io.BytesIO()
    finished = []
    try:
        fs.receive_stream(b, key=KEY, out=out, offset=0, prefix=fs.ZERO_HASH, size=size,
                          progress=lambda d: None, stop=lambda: False,
                          finish=lambda: finished.append(True))
        error = None
    except fs.StreamError as exc:
        error = str(exc)
    finally:
        t.join(5)
        a.close()
        b.close()
    return error, out.getvalue(), bool(finished)


def test_a_well_behaved_stream_is_accepted() -> None:
    def script(frame, ch):
        frame(wire.encode_start(ch, 0))
        frame(b"0123456789")
        frame(wire.encode_end(10), fs.TAG_FINAL)
    assert _receive(script) == (None, b"0123456789", True)


@pytest.mark.parametrize("name,script,why", [
    ("wrong challenge", lambda f, ch: f(wire.encode_start(bytes(16), 0)), "does not answer"),
    ("offset not asked for", lambda f, ch: f(wire.encode_start(ch, 5)), "does not answer"),
    ("more than offered", lambda f, ch: (f(wire.encode_start(ch, 0)), f(b"x" * 11)),
     "more than the offered"),
    ("no final tag", lambda f, ch: (f(wire.encode_start(ch, 0)), f(b"x" * 10)),
     "connection closed"),
    ("short file", lambda f, ch: (f(wire.encode_start(ch, 0)), f(b"x" * 9),
                                  f(wire.encode_end(10), fs.TAG_FINAL)), "stream ended at 9"),
    ("lying end", lambda f, ch: (f(wire.encode_start(ch, 0)), f(b"x" * 10),
                                 f(wire.encode_end(11), fs.TAG_FINAL)), "stream ended"),
    ("huge frame length", lambda f, ch: (f(wire.encode_start(ch, 0)),
                                         f(b"x", length=1 << 30)), "bad frame length"),
    ("tiny frame length", lambda f, ch: (f(wire.encode_start(ch, 0)), f(b"x", length=3)),
     "bad frame length"),
    ("frame length lies", lambda f, ch: (f(wire.encode_start(ch, 0)), f(b"xy", length=18)),
     "corrupted"),
    ("final start", lambda f, ch: f(wire.encode_start(ch, 0), fs.TAG_FINAL), "does not answer"),
])
def test_misbehaving_sender_is_caught(name: str, script, why: str) -> None:
    error, data, finished = _receive(script)
    assert error is not None and why in error, (name, error)
    assert not finished


def test_stranger_without_the_key_gets_nothing() -> None:
    a, b = socket.socketpair()
    a.settimeout(5)
    out = io.BytesIO()

    def stranger() -> None:
        fs.recv_exact(a, fs.SS_HEADER + wire.HELLO_LEN + fs.ABYTES)
        st = ss.crypto_secretstream_xchacha20poly1305_state()
        a.sendall(ss.crypto_secretstream_xchacha20poly1305_init_push(st, bytes(32)))
        ct = ss.crypto_secretstream_xchacha20poly1305_push(st, b"\x00" * 24)
        a.sendall(struct.pack(">I", len(ct)) + ct)
    t = threading.Thread(target=stranger, daemon=True)
    t.start()
    with pytest.raises(fs.StreamError, match="corrupted"):
        fs.receive_stream(b, key=KEY, out=out, offset=0, prefix=fs.ZERO_HASH, size=1,
                          progress=lambda d: None, stop=lambda: False, finish=lambda: None)
    t.join(5)
    a.close()
    b.close()
    assert out.getvalue() == b""


def test_prefix_hash(tmp_path) -> None:
    p = tmp_path / "f"
    p.write_bytes(b"abcdef")
    import hashlib
    assert fs.prefix_hash(p, 3) == hashlib.blake2b(b"abc", digest_size=32).digest()
    assert fs.prefix_hash(p, 7) is None
    assert fs.direction_keys(KEY)[0] != fs.direction_keys(KEY)[1]
