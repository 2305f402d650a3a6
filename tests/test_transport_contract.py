"""Both peer transports implement client.contracts.Transport: every method, same signatures."""

from __future__ import annotations

import inspect

import nacl.signing
import pytest

from client.contracts import Transport
from client.peer.pins import PinStore
from client.peer.plain import PlainTransport
from client.peer.secure import SecureTransport

_CONTRACT = [name for name, member in vars(Transport).items()
             if inspect.isfunction(member) and not name.startswith("_")]


def _secure() -> SecureTransport:
    return SecureTransport(nacl.signing.SigningKey(bytes(range(32))), "alice", PinStore())


def _exercise(transport: Transport) -> None:
    """Every method of the contract, with sane arguments, through the Protocol's type."""
    transport.wrap("bob", b"\x01frame", 0.0)
    transport.unwrap("bob", b"\x00not a datagram", 0.0)
    transport.on_timer(0.0)
    deadline = transport.next_deadline()
    assert deadline is None or isinstance(deadline, float)
    assert all(isinstance(peer, str) and isinstance(dg, bytes)
               for peer, dg in transport.take_outgoing())
    assert transport.take_frames() == []
    assert isinstance(transport.take_events(), list)
    assert isinstance(transport.ensure_session("bob", 0.0), bool)
    assert transport.session_key_for("bob", b"files") is None  # no session with bob yet
    own = transport.own_fingerprint()
    assert own is None or isinstance(own, str)
    assert transport.fingerprint("bob") is None
    assert transport.warning_for("bob") is None
    assert transport.key_changed("bob") is False
    assert transport.is_verified("bob") is False
    assert transport.mark_verified("bob") is False  # no key known for bob
    transport.forget_peer("bob")
    transport.close()


def test_contract_lists_the_methods_the_engine_uses() -> None:
    assert {"wrap", "unwrap", "take_frames", "ensure_session", "close"} <= set(_CONTRACT)


@pytest.mark.parametrize("cls", [PlainTransport, SecureTransport])
def test_every_contract_method_with_the_same_signature(cls: type) -> None:
    for name in _CONTRACT:
        ours = inspect.signature(getattr(cls, name))
        theirs = inspect.signature(getattr(Transport, name))
        assert list(ours.parameters) == list(theirs.parameters), name


def test_plain_transport_satisfies_the_protocol() -> None:
    transport: Transport = PlainTransport()
    _exercise(transport)
    assert transport.ensure_session("bob", 0.0) is True  # frames flow at once
    assert transport.own_fingerprint() is None


def test_secure_transport_satisfies_the_protocol() -> None:
    transport: Transport = _secure()
    _exercise(transport)
    assert transport.ensure_session("carol", 0.0) is False  # a handshake starts instead
    assert isinstance(transport.own_fingerprint(), str)
