"""Behind-NAT detection and the /netcheck report (client/reach/nat.py), fake time."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from client.reach.nat import (
    PAD_TO,
    NatWatch,
    NetCheck,
    Reach,
    behind_nat,
    format_here,
    looks_private,
    pad_for_reply,
    parse_here,
)
from models.errors import ProtocolError


def test_behind_nat_compares_ip_and_port() -> None:
    assert behind_nat(None, ["10.0.0.2"], 7700) is None
    assert behind_nat(("10.0.0.2", 7700), ["10.0.0.2"], 7700) is False
    assert behind_nat(("203.0.113.1", 7700), ["10.0.0.2"], 7700) is True
    assert behind_nat(("10.0.0.2", 40001), ["10.0.0.2"], 7700) is True  # port rewritten
    assert behind_nat(("127.0.0.1", 7700), ["0.0.0.0"], 7700) is False  # loopback: never NAT


@pytest.mark.parametrize(("addr", "private"), [
    ("10.1.2.3", True), ("192.168.1.1", True), ("100.64.0.1", True), ("fe80::1", True),
    ("203.0.113.9", True),  # documentation range counts as private in ipaddress
    ("8.8.8.8", False), ("2001:4860::8888", False)])
def test_looks_private(addr: str, private: bool) -> None:
    assert looks_private(addr) is private


def test_watch_public_seen_and_report() -> None:
    w = NatWatch(local_port=7700)
    w.set_local(["10.0.0.2", "10.0.0.2", "fd00::2"])
    assert w.behind_nat is None
    assert w.public_seen(("203.0.113.1", 40001)) is True
    assert w.behind_nat is True
    assert w.public_seen(("203.0.113.1", 40002)) is False   # rebinding: still behind NAT
    assert w.report(["bob", "alice"], [("10.0.0.1", 7700)]) == NetCheck(
        ("203.0.113.1", 40002), True, ("10.0.0.2", "fd00::2"), ("alice", "bob"),
        (("10.0.0.1", 7700),), Reach.UNKNOWN)


def test_probe_arrives_or_times_out() -> None:
    w = NatWatch(local_port=7700, probe_timeout=2)
    w.probe_requested(0)
    assert w.next_deadline() == 2
    w.poll(1)
    assert w.unsolicited is Reach.UNKNOWN
    w.probe_arrived(1)
    assert w.unsolicited is Reach.YES and w.next_deadline() is None
    w.probe_requested(10)
    w.poll(12)
    assert w.unsolicited is Reach.NO
    w.server_lost()
    assert w.unsolicited is Reach.UNKNOWN and w.public is None


def test_here_codec() -> None:
    assert parse_here("203.0.113.1 40001") == ("203.0.113.1", 40001)
    assert parse_here("2001:db8::1 7700") == ("2001:db8::1", 7700)
    assert format_here(("2001:db8::1", 7700)) == "2001:db8::1 7700"
    for bad in ["", "1.2.3.4", "1.2.3.4 0", "1.2.3.4 65536", "1.2.3.4 07700", "x 1",
                "1.2.3.4  1", "2001:DB8::1 1", "1.2.3.4 ٣"]:
        with pytest.raises(ProtocolError):
            parse_here(bad)


def test_padded_request_is_never_smaller_than_the_longest_reply() -> None:
    request = pad_for_reply("WHERE? a")
    assert len(request) == PAD_TO
    longest = "HERE " + format_here(("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 65535))
    assert len(longest) <= PAD_TO
    assert len(pad_for_reply("WHERE? " + "я" * 24).encode()) == PAD_TO
    assert pad_for_reply("WHERE? " + "\U0001d49c" * 24).endswith(" -")  # long already


@given(st.ip_addresses(), st.integers(1, 65535))
def test_here_round_trip(ip, port: int) -> None:
    addr = (str(ip), port)
    assert parse_here(format_here(addr)) == addr


@given(st.text(max_size=80))
def test_here_arbitrary_text_only_protocol_error(text: str) -> None:
    with contextlib.suppress(ProtocolError):
        parse_here(text)
