"""models.secure_wire: layouts, sizes, round trips, and hostile bytes."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from models import secure_wire as sw
from models.errors import ProtocolError
from models.peer_wire import HS_FINISH, HS_INIT, HS_RESP, MAX_DATAGRAM, SEALED, make_envelope

hs_ids = st.binary(min_size=8, max_size=8)
keys = st.binary(min_size=32, max_size=32)
proofs = st.binary(min_size=sw.SEALED_PROOF_LEN, max_size=sw.SEALED_PROOF_LEN)


def test_sizes_no_amplification() -> None:
    assert sw.HS_INIT_LEN == sw.HS_RESP_LEN == 155
    assert sw.HS_FINISH_LEN == 123
    assert sw.MIN_SEALED_LEN == 35


def test_hs_init_exact_bytes() -> None:
    data = sw.HsInit(bytes(range(8)), bytes(range(32, 64))).encode()
    assert data[:3] == b"\xc1\x01\x01"
    assert data[3:11] == bytes(range(8))
    assert data[11:43] == bytes(range(32, 64))
    assert data[43:] == bytes(112)
    assert len(data) == 155


@given(hs_ids, keys)
def test_hs_init_round_trip(hs_id: bytes, key: bytes) -> None:
    msg = sw.HsInit(hs_id, key)
    assert sw.decode_handshake(msg.encode()) == msg


@given(hs_ids, keys, proofs)
def test_hs_resp_round_trip(hs_id: bytes, key: bytes, proof: bytes) -> None:
    msg = sw.HsResp(hs_id, key, proof)
    data = msg.encode()
    assert len(data) == sw.HS_RESP_LEN
    assert data[:43] == msg.header()
    assert sw.decode_handshake(data) == msg


@given(hs_ids, proofs)
def test_hs_finish_round_trip(hs_id: bytes, proof: bytes) -> None:
    msg = sw.HsFinish(hs_id, proof)
    data = msg.encode()
    assert len(data) == sw.HS_FINISH_LEN
    assert data[:11] == msg.header()
    assert sw.decode_handshake(data) == msg


@given(keys, st.binary(min_size=64, max_size=64))
def test_proof_round_trip(identity: bytes, signature: bytes) -> None:
    proof = sw.Proof(identity, signature)
    assert sw.Proof.decode(proof.encode()) == proof


def test_proof_wrong_length() -> None:
    with pytest.raises(ProtocolError):
        sw.Proof.decode(bytes(95))


def test_encode_rejects_wrong_lengths() -> None:
    with pytest.raises(ValueError):
        sw.HsInit(bytes(7), bytes(32)).encode()
    with pytest.raises(ValueError):
        sw.HsResp(bytes(8), bytes(32), bytes(10)).encode()
    with pytest.raises(ValueError):
        sw.sealed_header(bytes(9), 0)


def test_hs_init_padding_must_be_zero() -> None:
    data = bytearray(sw.HsInit(bytes(8), bytes(32)).encode())
    data[-1] = 1
    with pytest.raises(ProtocolError) as info:
        sw.decode_handshake(bytes(data))
    assert info.value.code == "BAD_PADDING"


@pytest.mark.parametrize("kind,length", [(HS_INIT, 155), (HS_RESP, 155), (HS_FINISH, 123)])
def test_handshake_wrong_length(kind: int, length: int) -> None:
    for size in (length - 4, length + 1):
        with pytest.raises(ProtocolError):
            sw.decode_handshake(make_envelope(kind, bytes(size - 3)))


def test_sealed_is_not_a_handshake() -> None:
    with pytest.raises(ProtocolError):
        sw.decode_handshake(make_envelope(SEALED, bytes(40)))


@given(st.binary(min_size=8, max_size=8), st.integers(0, 2**64 - 1),
       st.binary(min_size=16, max_size=MAX_DATAGRAM - 19))
def test_sealed_round_trip(session_id: bytes, counter: int, ciphertext: bytes) -> None:
    header = sw.sealed_header(session_id, counter)
    assert header == sw.sealed_prefix(session_id) + counter.to_bytes(8, "big")
    assert sw.parse_sealed(header + ciphertext) == (session_id, counter, header, ciphertext)


def test_sealed_header_exact_bytes() -> None:
    header = sw.sealed_header(bytes.fromhex("0102030405060708"), 258)
    assert header.hex() == "c10120" + "0102030405060708" + "0000000000000102"


def test_sealed_too_short_and_too_long() -> None:
    header = sw.sealed_header(bytes(8), 0)
    with pytest.raises(ProtocolError):
        sw.parse_sealed(header + bytes(15))
    with pytest.raises(ProtocolError):
        sw.parse_sealed(header + bytes(MAX_DATAGRAM))


def test_transcript_binds_both_nicknames_and_roles() -> None:
    base = sw.transcript(bytes(8), bytes(32), b"\x01" * 32, "alice", "bob")
    assert base != sw.transcript(bytes(8), bytes(32), b"\x01" * 32, "bob", "alice")
    assert base != sw.transcript(bytes(8), bytes(32), b"\x01" * 32, "alice", "carol")
    # length prefixes: moving a character from one nickname to the other changes the bytes
    assert (sw.transcript(bytes(8), bytes(32), bytes(32), "ab", "c")
            != sw.transcript(bytes(8), bytes(32), bytes(32), "a", "bc"))
    assert "алиса".encode() in sw.transcript(bytes(8), bytes(32), bytes(32), "алиса", "bob")


def test_signed_contents_differ_by_role() -> None:
    th, k = bytes(32), bytes(32)
    assert sw.resp_signed(th, k) != sw.init_signed(th, k, k)[:len(sw.resp_signed(th, k))]


@given(st.binary(max_size=1300))
def test_arbitrary_bytes_only_protocol_error(data: bytes) -> None:
    for decode in (sw.decode_handshake, sw.parse_sealed, sw.Proof.decode):
        with contextlib.suppress(ProtocolError):
            decode(data)


@given(st.sampled_from([HS_INIT, HS_RESP, HS_FINISH, SEALED, 0x10, 0x7F]),
       st.binary(max_size=1300))
def test_enveloped_garbage_only_protocol_error(kind: int, body: bytes) -> None:
    data = bytes((0xC1, 0x01, kind)) + body
    for decode in (sw.decode_handshake, sw.parse_sealed):
        with contextlib.suppress(ProtocolError):
            decode(data)
