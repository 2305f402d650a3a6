"""client.peer.secure: SecureTransports wired together in memory, with a simulated clock."""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path

import nacl.signing
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from client.events import KeyChanged, PeerUnreachable
from client.peer.identity import fingerprint
from client.peer.pins import PinStore
from client.peer.secure import SecureTransport, SessionStarted
from client.peer.trust import WARNING_KEY_CHANGED
from models import secure_wire as sw
from models.peer_wire import HS_FINISH, MAGIC, MAX_FRAME, SEALED, VERSION

Filter = Callable[[str, str, bytes], bool]  # (src, dst, datagram) -> deliver?


def key_of(name: str) -> nacl.signing.SigningKey:
    return nacl.signing.SigningKey(name.encode().ljust(32, b"\0")[:32])


class Net:
    """Transports by nickname; datagrams go src -> dst through an optional filter."""

    def __init__(self, *names: str, loss: float = 0.0, seed: int = 0) -> None:
        self.rand = random.Random(seed)
        self.loss = loss
        self.now = 0.0
        self.t: dict[str, SecureTransport] = {}
        self.pins: dict[str, PinStore] = {}
        self.sniffed: list[bytes] = []
        self.filter: Filter | None = None
        self.frames: dict[str, list[tuple[str, bytes]]] = {}
        self.events: dict[str, list[object]] = {}
        for name in names:
            self.add(name)

    def add(self, name: str, key: nacl.signing.SigningKey | None = None,
            pins: PinStore | None = None) -> SecureTransport:
        self.pins[name] = pins if pins is not None else self.pins.get(name, PinStore())
        transport = SecureTransport(key or key_of(name), name, self.pins[name], now=self.now,
                                    rng=self.rand.randbytes)
        self.t[name] = transport
        self.frames.setdefault(name, [])
        self.events.setdefault(name, [])
        return transport

    def collect(self) -> None:
        for name, transport in self.t.items():
            self.events[name] += transport.take_events()
            self.frames[name] += transport.take_frames()

    def flush(self) -> int:
        """Deliver everything in flight (repeatedly, until quiet); returns datagrams sent."""
        sent = 0
        while True:
            batch = [(src, dst, dg) for src, tr in self.t.items() for dst, dg in tr.take_outgoing()]
            if not batch:
                self.collect()
                return sent
            for src, dst, dg in batch:
                sent += 1
                self.sniffed.append(dg)
                if self.filter is not None and not self.filter(src, dst, dg):
                    continue
                if self.loss and self.rand.random() < self.loss:
                    continue
                if dst in self.t:
                    self.t[dst].unwrap(src, dg, self.now)

    def run(self, until: float) -> None:
        """Deliver and fire timers until ``until`` (simulated seconds)."""
        self.flush()
        while True:
            deadlines = [d for tr in self.t.values() if (d := tr.next_deadline()) is not None]
            if not deadlines or min(deadlines) > until:
                break
            self.now = max(self.now, min(deadlines))
            for tr in self.t.values():
                tr.on_timer(self.now)
            self.flush()
        self.now = max(self.now, until)

    def send(self, src: str, dst: str, frame: bytes) -> None:
        self.t[src].wrap(dst, frame, self.now)


def sessions(net: Net, a: str, b: str) -> bool:
    ka = net.t[a].session_key_for(b, b"test")
    return ka is not None and ka == net.t[b].session_key_for(a, b"test")


def test_handshake_then_frames_both_ways() -> None:
    net = Net("alice", "bob")
    net.send("alice", "bob", b"hello bob")
    net.flush()
    assert net.frames["bob"] == [("alice", b"hello bob")]
    assert net.events["alice"] == [SessionStarted("bob", restarted=False)]
    assert net.events["bob"] == [SessionStarted("alice", restarted=False)]
    assert sessions(net, "alice", "bob")
    net.send("bob", "alice", b"hi alice")
    net.send("bob", "alice", b"and again")
    net.flush()
    assert net.frames["alice"] == [("bob", b"hi alice"), ("bob", b"and again")]
    net.run(until=1.0)  # new pins are saved from on_timer, a little after the handshake
    assert net.t["alice"].next_deadline() is None and net.t["bob"].next_deadline() is None
    assert not net.t["alice"].stats and not net.t["bob"].stats


def test_handshake_datagram_sizes_and_confirmation() -> None:
    net = Net("alice", "bob")
    net.send("alice", "bob", b"x")
    net.flush()
    kinds = [(dg[2], len(dg)) for dg in net.sniffed]
    assert kinds == [(0x01, 155), (0x02, 155), (0x03, 123), (0x20, 19 + 1 + 16), (0x20, 35)]


def test_frames_queued_until_session_then_sent_in_order() -> None:
    net = Net("alice", "bob")
    for i in range(10):
        net.send("alice", "bob", b"frame %d" % i)
    net.flush()
    assert net.frames["bob"] == [("alice", b"frame %d" % i) for i in range(10)]


def test_sniffer_sees_no_text_no_nicknames_no_identity_keys() -> None:
    net = Net("alice", "bob")
    secret = "секрет — the meeting is at noon 🙂".encode()
    net.send("alice", "bob", secret)
    net.flush()
    net.send("bob", "alice", secret)
    net.flush()
    assert net.frames["bob"] == [("alice", secret)] and net.frames["alice"] == [("bob", secret)]
    forbidden = [secret, b"alice", b"bob", b"meeting", bytes(key_of("alice").verify_key),
                 bytes(key_of("bob").verify_key)]
    for dg in net.sniffed:
        for needle in forbidden:
            assert needle not in dg


def test_session_keys_differ_per_label_and_per_session() -> None:
    net = Net("alice", "bob", "carol")
    net.send("alice", "bob", b"x")
    net.send("alice", "carol", b"x")
    net.flush()
    ab = net.t["alice"].session_key_for("bob", b"file")
    assert ab is not None and len(ab) == 32
    assert ab == net.t["bob"].session_key_for("alice", b"file")
    assert ab != net.t["alice"].session_key_for("bob", b"other")
    assert ab != net.t["alice"].session_key_for("carol", b"file")
    assert net.t["bob"].session_key_for("carol", b"file") is None


@pytest.mark.parametrize("seed", range(40))
def test_handshake_survives_20_percent_loss(seed: int) -> None:
    net = Net("alice", "bob", loss=0.2, seed=seed)
    net.send("alice", "bob", b"first")
    net.run(until=10.0)
    assert sessions(net, "alice", "bob")
    assert not any(isinstance(e, PeerUnreachable) for evs in net.events.values() for e in evs)
    # frames themselves are not retransmitted here (that is the Messenger's job): whatever
    # arrives arrives once and in order
    for i in range(50):
        net.send("alice", "bob", b"%d" % i)
    net.run(until=20.0)
    got = [int(f) for p, f in net.frames["bob"] if f != b"first"]
    assert got == sorted(set(got)) and len(got) > 25


@pytest.mark.parametrize("seed", range(10))
def test_simultaneous_open_gives_one_session(seed: int) -> None:
    net = Net("alice", "bob", seed=seed)
    net.send("alice", "bob", b"from alice")
    net.send("bob", "alice", b"from bob")
    net.run(until=5.0)
    assert sessions(net, "alice", "bob")
    assert net.frames["bob"] == [("alice", b"from alice")]
    assert net.frames["alice"] == [("bob", b"from bob")]
    for name in ("alice", "bob"):
        assert [e for e in net.events[name] if isinstance(e, SessionStarted)] == [
            SessionStarted("bob" if name == "alice" else "alice", restarted=False)]
    winners = sum(net.t[n].stats["simultaneous open (we initiate)"] for n in ("alice", "bob"))
    assert winners == 1


@pytest.mark.parametrize("seed", range(10))
def test_simultaneous_open_under_loss(seed: int) -> None:
    net = Net("alice", "bob", loss=0.2, seed=seed)
    net.send("alice", "bob", b"a")
    net.send("bob", "alice", b"b")
    net.run(until=10.0)
    assert sessions(net, "alice", "bob")


def established(*names: str) -> Net:
    net = Net(*names)
    for other in names[1:]:
        net.send(names[0], other, b"hello")
    net.flush()
    for name in names:
        net.frames[name].clear()
        net.events[name].clear()
    return net


def sealed_from(net: Net, src: str, dst: str, frame: bytes) -> bytes:
    net.send(src, dst, frame)
    [(peer, dg)] = net.t[src].take_outgoing()
    assert peer == dst
    return dg


def test_tampered_datagrams_dropped() -> None:
    net = established("alice", "bob")
    dg = sealed_from(net, "alice", "bob", b"important")
    for i in range(3, len(dg)):
        bad = bytearray(dg)
        bad[i] ^= 0x01
        net.t["bob"].unwrap("alice", bytes(bad), net.now)
    net.t["bob"].unwrap("alice", dg[:-1], net.now)
    net.t["bob"].unwrap("alice", dg + b"\0", net.now)
    assert net.t["bob"].take_frames() == []
    net.t["bob"].unwrap("alice", dg, net.now)  # the genuine one still goes through
    assert net.t["bob"].take_frames() == [("alice", b"important")]


def test_replayed_datagram_dropped() -> None:
    net = established("alice", "bob")
    dg = sealed_from(net, "alice", "bob", b"pay 10 coins")
    for _ in range(3):
        net.t["bob"].unwrap("alice", dg, net.now)
    assert net.t["bob"].take_frames() == [("alice", b"pay 10 coins")]
    assert net.t["bob"].stats["replayed"] == 2


def test_reordering_within_window_accepted_too_old_dropped() -> None:
    net = established("alice", "bob")
    dgs = [sealed_from(net, "alice", "bob", b"%d" % i) for i in range(1100)]
    bob = net.t["bob"]
    bob.unwrap("alice", dgs[1099], net.now)
    bob.unwrap("alice", dgs[500], net.now)  # late but inside the 1024 window
    bob.unwrap("alice", dgs[10], net.now)   # too old
    bob.unwrap("alice", dgs[500], net.now)  # replay of a late one
    assert [f for _, f in bob.take_frames()] == [b"1099", b"500"]
    assert bob.stats["too old"] == 1 and bob.stats["replayed"] == 1


def test_datagram_for_bob_does_not_decrypt_at_carol() -> None:
    net = established("alice", "bob", "carol")
    dg = sealed_from(net, "alice", "bob", b"for bob only")
    net.t["carol"].unwrap("alice", dg, net.now)
    assert net.t["carol"].take_frames() == []
    # and one pretending to come from someone else at bob
    net.t["bob"].unwrap("carol", dg, net.now)
    assert net.t["bob"].take_frames() == []


def test_same_session_id_with_wrong_key_fails() -> None:
    net = established("alice", "bob")
    bob = net.t["bob"]
    dg = sealed_from(net, "alice", "bob", b"x")
    # a forger who knows the session id and picks an unused counter still cannot pass
    forged = dg[:11] + (99).to_bytes(8, "big") + dg[19:]
    bob.unwrap("alice", forged, net.now)
    assert bob.take_frames() == [] and bob.stats["authentication failed"] == 1


def test_restarted_peer_gets_new_session() -> None:
    net = established("alice", "bob")
    old = sealed_from(net, "alice", "bob", b"old session")
    net.add("bob")  # bob restarts: same key and pins, no session
    net.send("bob", "alice", b"I am back")
    net.flush()
    assert net.events["alice"] == [SessionStarted("bob", restarted=True)]
    assert net.events["bob"] == [SessionStarted("alice", restarted=False)]
    assert net.frames["alice"] == [("bob", b"I am back")]
    assert sessions(net, "alice", "bob")
    net.t["bob"].unwrap("alice", old, net.now)  # a datagram of the old session
    assert net.t["bob"].take_frames() == []
    net.send("alice", "bob", b"new session")
    net.flush()
    assert net.frames["bob"] == [("alice", b"new session")]


def test_old_session_datagram_rejected_after_restart_at_the_other_side() -> None:
    net = established("alice", "bob")
    old = sealed_from(net, "bob", "alice", b"before restart")
    net.add("bob")
    net.send("bob", "alice", b"x")
    net.flush()
    net.t["alice"].unwrap("bob", old, net.now)
    assert net.t["alice"].take_frames() == []
    assert net.t["alice"].stats["unknown session"] == 1


def test_restart_discovered_from_unknown_session() -> None:
    """Bob restarts and stays silent; alice's next frame makes him start a handshake."""
    net = established("alice", "bob")
    net.add("bob")
    net.send("alice", "bob", b"lost: bob has no session")
    net.flush()
    assert net.frames["bob"] == []
    assert net.events["alice"] == [SessionStarted("bob", restarted=True)]
    net.send("alice", "bob", b"retransmitted by the messenger")
    net.flush()
    assert net.frames["bob"] == [("alice", b"retransmitted by the messenger")]


def test_responder_restarting_mid_handshake_recovers_at_once() -> None:
    net = Net("alice", "bob")
    net.send("alice", "bob", b"x")
    [(_, init)] = net.t["alice"].take_outgoing()
    net.t["bob"].unwrap("alice", init, net.now)
    [(_, resp)] = net.t["bob"].take_outgoing()
    net.add("bob")  # bob restarts between HS_RESP and HS_FINISH
    net.t["alice"].unwrap("bob", resp, net.now)
    dropped: list[bytes] = []

    def drop_first_sealed(src: str, dst: str, dg: bytes) -> bool:
        if src == "alice" and dg[2] == 0x20 and not dropped:
            dropped.append(dg)  # only HS_FINISH tells bob that alice thinks they have a session
            return False
        return True

    net.filter = drop_first_sealed
    net.flush()  # HS_FINISH reaches a bob who knows nothing of it: he starts a handshake
    assert dropped and sessions(net, "alice", "bob")
    assert net.events["alice"][-1] == SessionStarted("bob", restarted=True)
    net.run(until=1.0)
    assert net.t["alice"].next_deadline() is None
    net.send("alice", "bob", b"y")
    net.flush()
    assert net.frames["bob"] == [("alice", b"y")]


def test_forged_hs_init_mid_handshake_recovers_at_once() -> None:
    net = Net("alice", "bob")
    forged: list[int] = []

    def forge(src: str, dst: str, dg: bytes) -> bool:
        if dg[2] == 0x02 and not forged:  # as bob answers, a forger sends bob a new HS_INIT
            forged.append(1)
            net.t["bob"].unwrap("alice", sw.HsInit(b"\x66" * 8, bytes(31) + b"\x09").encode(),
                                net.now)
            net.t["bob"].take_outgoing()  # its answer goes to alice's address, and is dropped
        return True

    net.filter = forge
    net.send("alice", "bob", b"x")
    net.run(until=0.5)
    assert forged and sessions(net, "alice", "bob")
    net.send("alice", "bob", b"y")
    net.flush()
    assert ("alice", b"y") in net.frames["bob"]


def test_restart_trigger_is_rate_limited() -> None:
    net = established("alice", "bob")
    net.add("bob")
    net.filter = lambda src, dst, dg: src == "alice"  # bob's HS_INITs never arrive
    for _ in range(20):
        net.send("alice", "bob", b"x")
    net.flush()
    hs_inits = [dg for dg in net.sniffed if dg[2] == 0x01]
    assert len(hs_inits) == 2  # the first handshake of established(), then one trigger


def test_key_change_flagged_and_warned() -> None:
    net = established("alice", "bob")
    old_fp = net.t["alice"].fingerprint("bob")
    assert net.t["alice"].warning_for("bob") is None
    impostor = nacl.signing.SigningKey(b"\x42" * 32)
    net.add("bob", key=impostor, pins=PinStore())  # someone registers as "bob" with a new key
    net.send("bob", "alice", b"trust me")
    net.flush()
    new_fp = fingerprint(bytes(impostor.verify_key))
    assert net.events["alice"] == [KeyChanged("bob", old_fp, new_fp),
                                   SessionStarted("bob", restarted=True)]
    assert net.frames["alice"] == [("bob", b"trust me")]  # delivered, but marked:
    assert net.t["alice"].warning_for("bob") == WARNING_KEY_CHANGED
    assert net.t["alice"].key_changed("bob")
    assert net.t["alice"].fingerprint("bob") == new_fp
    assert net.pins["alice"].get("bob").key == bytes(key_of("bob").verify_key)  # pin kept
    assert not net.t["alice"].is_verified("bob")
    # the user compares fingerprints aloud and accepts the new key
    assert net.t["alice"].mark_verified("bob")
    assert net.t["alice"].warning_for("bob") is None
    assert net.t["alice"].is_verified("bob")
    assert net.pins["alice"].get("bob").key == bytes(impostor.verify_key)


def test_key_change_reported_once_per_key() -> None:
    net = established("alice", "bob")
    impostor = nacl.signing.SigningKey(b"\x42" * 32)
    net.add("bob", key=impostor, pins=PinStore())
    net.send("bob", "alice", b"1")
    net.flush()
    net.add("bob", key=impostor, pins=PinStore())  # restarts again with the same new key
    net.send("bob", "alice", b"2")
    net.flush()
    assert sum(isinstance(e, KeyChanged) for e in net.events["alice"]) == 1
    assert net.t["alice"].warning_for("bob") == WARNING_KEY_CHANGED


def test_first_contact_pins_and_verification_remembered() -> None:
    net = established("alice", "bob")
    assert net.pins["alice"].check("bob", bytes(key_of("bob").verify_key)) == "same"
    assert not net.t["alice"].is_verified("bob")
    assert net.t["alice"].mark_verified("bob")
    assert net.pins["alice"].is_verified("bob")
    assert net.t["alice"].own_fingerprint() == net.t["bob"].fingerprint("alice")
    assert net.t["alice"].fingerprint("nobody") is None
    assert not net.t["alice"].mark_verified("nobody")


def test_pins_saved_to_disk_after_handshake(tmp_path: Path) -> None:
    net = Net("alice")
    net.add("bob", pins=PinStore.in_dir(tmp_path))
    net.send("alice", "bob", b"x")
    net.flush()
    assert net.t["bob"].next_deadline() == net.now + SecureTransport.PIN_SAVE_DELAY
    assert PinStore.in_dir(tmp_path).get("alice") is None  # not yet: never during a handshake
    net.run(until=net.now + SecureTransport.PIN_SAVE_DELAY)
    assert PinStore.in_dir(tmp_path).check("alice", bytes(key_of("alice").verify_key)) == "same"
    assert net.t["bob"].next_deadline() is None


def test_new_pins_saved_once_per_burst_and_on_close(tmp_path: Path) -> None:
    net = Net("alice", "bob", "carol")
    net.add("dave", pins=PinStore.in_dir(tmp_path))
    writes: list[int] = []
    real_save = net.pins["dave"].save
    net.pins["dave"].save = lambda: (writes.append(1), real_save())  # type: ignore[method-assign]
    for name in ("alice", "bob", "carol"):
        net.send(name, "dave", b"hi")
    net.flush()
    net.run(until=1.0)
    assert len(writes) == 1
    assert PinStore.in_dir(tmp_path).nicknames() == ["alice", "bob", "carol"]
    net.add("erin")
    net.send("erin", "dave", b"hi")
    net.flush()
    net.t["dave"].close()  # stopping before the delay: still written
    assert "erin" in PinStore.in_dir(tmp_path).nicknames()
    net.t["dave"].close()
    assert len(writes) == 2


def test_nickname_case_variants_agree() -> None:
    """Alice's roster shows "Bob"; bob calls himself "bob": the same nickname, one session."""
    net = Net("alice", "bob")

    def rename(src: str, dst: str, dg: bytes) -> bool:
        if dst == "Bob":
            net.t["bob"].unwrap("alice", dg, net.now)
            return False
        if src == "bob":
            net.t["alice"].unwrap("Bob", dg, net.now)
            return False
        return True

    net.filter = rename
    net.send("alice", "Bob", b"hi")
    net.flush()
    assert net.frames["bob"] == [("alice", b"hi")]
    assert net.t["alice"].is_established("Bob")
    assert net.pins["alice"].check("bob", bytes(key_of("bob").verify_key)) == "same"


def test_nicknames_are_bound_into_the_handshake() -> None:
    """Bob's roster calls the sender carol: alice's handshake for "bob" must not complete."""
    net = Net("alice", "bob")

    def misattribute(src: str, dst: str, dg: bytes) -> bool:
        if src == "alice":  # bob's roster says this address is carol's
            net.t["bob"].unwrap("carol", dg, net.now)
            return False
        if dst == "carol":  # ... so bob answers "carol", which is alice's address
            net.t["alice"].unwrap("bob", dg, net.now)
            return False
        return True

    net.filter = misattribute
    net.t["bob"].pins.pin("carol", bytes(key_of("carol").verify_key))
    net.send("alice", "bob", b"hi")
    net.run(until=30.0)
    assert not net.t["alice"].is_established("bob")
    assert not net.t["bob"].is_established("carol")
    assert net.frames["bob"] == []
    assert net.t["alice"].stats["handshake decryption failed"] > 0


def test_unreachable_peer_after_deadline() -> None:
    net = Net("alice", "bob")
    net.filter = lambda src, dst, dg: False  # bob never hears anything
    net.send("alice", "bob", b"anyone?")
    net.run(until=9.9)
    assert net.events["alice"] == []
    times = len([dg for dg in net.sniffed if dg[2] == 0x01])
    assert 8 <= times <= 15  # retransmitted with backoff, capped at one per second
    net.run(until=10.5)
    assert net.events["alice"] == [PeerUnreachable("bob", "no answer to the secure handshake")]
    assert net.t["alice"].next_deadline() is None
    sent = len(net.sniffed)
    net.send("alice", "bob", b"during holdoff")  # sent nothing, no plaintext fallback
    net.flush()
    assert len(net.sniffed) == sent
    net.run(until=13.0)
    net.filter = None
    net.send("alice", "bob", b"later")
    net.flush()
    assert net.frames["bob"] == [("alice", b"later")]


def test_unconfirmed_session_retransmits_finish() -> None:
    net = Net("alice", "bob")
    lost: list[int] = []

    def drop_first_finish_and_confirmation(src: str, dst: str, dg: bytes) -> bool:
        if dg[2] == 0x03 and not lost:
            lost.append(1)
            return False
        return True

    net.filter = drop_first_finish_and_confirmation
    net.send("alice", "bob", b"early")
    net.flush()
    # bob buffered the SEALED that overtook the lost HS_FINISH
    assert net.frames["bob"] == []
    net.run(until=1.0)
    assert net.frames["bob"] == [("alice", b"early")]
    assert net.t["alice"].next_deadline() is None  # confirmed: no more timers


def test_lost_confirmation_answered_again() -> None:
    net = Net("alice", "bob")
    net.filter = lambda src, dst, dg: not (src == "bob" and dg[2] == 0x20)
    net.send("alice", "bob", b"x")
    net.run(until=0.6)
    assert net.t["alice"].next_deadline() is not None
    net.filter = None
    net.run(until=3.0)
    assert net.t["alice"].next_deadline() is None
    assert [f for _, f in net.frames["bob"]] == [b"x"]


def test_frame_retransmitted_before_the_session_is_queued_once() -> None:
    net = Net("alice", "bob")
    net.filter = lambda src, dst, dg: dg[2] != 0x02  # hold the handshake back
    for _ in range(5):
        net.send("alice", "bob", b"same frame")
    net.send("alice", "bob", b"other frame")
    net.filter = None
    net.run(until=1.0)
    assert net.frames["bob"] == [("alice", b"same frame"), ("alice", b"other frame")]


def test_queue_is_bounded() -> None:
    net = Net("alice", "bob")
    net.filter = lambda src, dst, dg: dg[2] != 0x02  # hold the handshake back
    for i in range(400):
        net.send("alice", "bob", b"%d" % i)
    assert net.t["alice"].stats["queue full"] == 400 - net.t["alice"].max_queue
    net.filter = None
    net.run(until=1.0)
    assert len(net.frames["bob"]) == net.t["alice"].max_queue


def test_hs_init_flood_is_capped() -> None:
    net = established("alice", "bob")
    bob = net.t["bob"]
    rand = random.Random(1)
    # 500 spoofed sources (the engine only hands us roster addresses, but be safe anyway)
    for i in range(500):
        bob.unwrap(f"ghost{i}", sw.HsInit(rand.randbytes(8), rand.randbytes(32)).encode(), 0.0)
    answers = bob.take_outgoing()
    assert len(answers) == bob.max_half_open
    assert all(len(dg) <= sw.HS_INIT_LEN for _, dg in answers)  # no amplification
    # and one source with many fresh handshakes is rate-limited
    for _ in range(100):
        bob.unwrap("alice", sw.HsInit(rand.randbytes(8), rand.randbytes(32)).encode(), 0.0)
    assert len(bob.take_outgoing()) == 0  # the half-open table is full
    bob.on_timer(100.0)  # they all expire
    assert bob.next_deadline() is None
    for _ in range(100):
        bob.unwrap("alice", sw.HsInit(rand.randbytes(8), rand.randbytes(32)).encode(), 100.0)
    assert len(bob.take_outgoing()) == int(SecureTransport.INIT_BURST)
    assert bob.is_established("alice")  # the live session was never disturbed
    net.send("alice", "bob", b"still fine")
    net.flush()
    assert net.frames["bob"] == [("alice", b"still fine")]


def test_retransmitted_hs_init_gets_cached_answer() -> None:
    net = Net("alice", "bob")
    net.send("alice", "bob", b"x")
    [(_, init)] = net.t["alice"].take_outgoing()
    net.t["bob"].unwrap("alice", init, 0.0)
    net.t["bob"].unwrap("alice", init, 0.1)
    first, second = net.t["bob"].take_outgoing()
    assert first == second


def test_reflected_datagrams_rejected() -> None:
    """An attacker bouncing our own datagrams back at us from the peer's address gets nowhere."""
    net = Net("alice", "bob")
    alice = net.t["alice"]
    net.send("alice", "bob", b"x")
    [(_, init)] = alice.take_outgoing()
    alice.unwrap("bob", init, 0.0)
    assert alice.take_outgoing() == [] and alice.stats["our own HS_INIT reflected"] == 1
    net.t["bob"].unwrap("alice", init, 0.0)
    net.flush()
    assert net.frames["bob"] == [("alice", b"x")]
    own = sealed_from(net, "alice", "bob", b"mine")
    alice.unwrap("bob", own, 0.0)  # same session id, but the other direction's key
    assert alice.take_frames() == [] and alice.stats["authentication failed"] == 1


def test_low_order_ephemeral_rejected() -> None:
    net = Net("alice", "bob")
    net.t["bob"].unwrap("alice", sw.HsInit(bytes(8), bytes(32)).encode(), 0.0)
    assert net.t["bob"].take_outgoing() == []
    assert net.t["bob"].stats["bad ephemeral key"] == 1


def test_forget_peer_drops_everything() -> None:
    net = established("alice", "bob")
    net.t["alice"].forget_peer("bob")
    assert not net.t["alice"].is_established("bob")
    assert net.t["alice"].session_key_for("bob", b"x") is None
    net.t["alice"].forget_peer("nobody")


def test_wrap_rejects_empty_and_oversized_frames() -> None:
    net = Net("alice", "bob")
    with pytest.raises(ValueError):
        net.send("alice", "bob", b"")
    with pytest.raises(ValueError):
        net.send("alice", "bob", bytes(MAX_FRAME + 1))
    net.send("alice", "bob", bytes(MAX_FRAME))
    net.flush()
    assert net.frames["bob"] == [("alice", bytes(MAX_FRAME))]
    assert max(len(dg) for dg in net.sniffed) == 1200


def test_counter_exhaustion_forces_a_new_session() -> None:
    net = established("alice", "bob")
    net.t["alice"]._peers["bob"].session.send_ctr = 2**64
    net.send("alice", "bob", b"after 2**64 datagrams")
    net.flush()
    assert net.frames["bob"] == [("alice", b"after 2**64 datagrams")]
    assert net.events["bob"] == [SessionStarted("alice", restarted=True)]


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=1300), st.sampled_from([b"", b"\xc1\x01\x01", b"\xc1\x01\x02",
                                                  b"\xc1\x01\x03", b"\xc1\x01\x20"]))
def test_arbitrary_bytes_into_unwrap_never_raise(data: bytes, prefix: bytes) -> None:
    net = established("alice", "bob")
    bob = net.t["bob"]
    bob.unwrap("alice", prefix + data, 1.0)
    bob.unwrap("mallory", prefix + data, 1.0)
    assert bob.take_frames() == []
    assert bob.stats["internal error"] == 0
    assert len(bob.take_outgoing()) <= 2


def scripted(*chunks: bytes) -> Callable[[int], bytes]:
    it = iter(chunks)

    def rng(n: int) -> bytes:
        chunk = next(it)
        assert len(chunk) == n
        return chunk

    return rng


def test_protocol_doc_example() -> None:
    """The worked example of docs/PROTOCOL.md section 7, and its formulas redone with hashlib."""
    import hashlib
    import re

    from nacl.bindings import (
        crypto_aead_chacha20poly1305_ietf_decrypt,
        crypto_scalarmult,
        crypto_scalarmult_base,
    )

    doc = (Path(__file__).parent.parent / "docs" / "PROTOCOL.md").read_text("utf-8")
    compact = re.sub(r"\s+", "", doc)
    ka, kb = nacl.signing.SigningKey(b"\x01" * 32), nacl.signing.SigningKey(b"\x02" * 32)
    alice = SecureTransport(ka, "alice", PinStore(), rng=scripted(b"\x11" * 8, b"\x21" * 32))
    bob = SecureTransport(kb, "bob", PinStore(), rng=scripted(b"\x22" * 32))
    alice.wrap("bob", b"hello", 0.0)
    wire = []
    for _ in range(3):
        for src, dst, name in ((alice, bob, "alice"), (bob, alice, "bob")):
            for _peer, dg in src.take_outgoing():
                wire.append(dg)
                dst.unwrap(name, dg, 0.0)
    assert bob.take_frames() == [("alice", b"hello")]
    assert [len(dg) for dg in wire] == [155, 155, 123, 40, 35]
    for dg in wire:
        assert dg.hex() in compact

    def h(data: bytes, person: bytes, key: bytes = b"") -> bytes:
        return hashlib.blake2b(data, digest_size=32, key=key, person=person).digest()

    pk_a, pk_b = bytes(ka.verify_key), bytes(kb.verify_key)
    e_i, e_r = crypto_scalarmult_base(b"\x21" * 32), crypto_scalarmult_base(b"\x22" * 32)
    transcript = (b"OpenLChat handshake v1" + b"\x11" * 8 + e_i + e_r + b"\x05alice\x03bob")
    th = h(transcript, b"OLChat-th-v1")
    prk = h(crypto_scalarmult(b"\x21" * 32, e_r), b"OLChat-prk-v1", th)
    th2 = h(th + pk_b + pk_a, b"OLChat-th2-v1")
    k_i2r = h(b"i2r" + th2, b"OLChat-kdf-v1", prk)
    sid = h(b"sid" + th2, b"OLChat-kdf-v1", prk)[:8]
    for value in (th, prk, th2, k_i2r, sid):
        assert value.hex() in compact
    sealed = wire[3]
    assert sealed[3:11] == sid
    assert crypto_aead_chacha20poly1305_ietf_decrypt(
        sealed[19:], sealed[:19], bytes(4) + sealed[11:19], k_i2r) == b"hello"
    export = h(b"export" + th2, b"OLChat-kdf-v1", prk)
    assert alice.session_key_for("bob", b"f") == h(b"export:f", b"OLChat-kdf-v1", export)


# ---- the Messenger (client/peer/messenger.py) over the secure transport, as the engine wires it


class Node:
    def __init__(self, name: str, now: float, rand: random.Random,
                 key: nacl.signing.SigningKey | None = None) -> None:
        from client.peer.messenger import Messenger

        self.name = name
        self.messenger = Messenger(now=now, rng=random.Random(rand.random()))
        self.transport = SecureTransport(key or key_of(name), name, PinStore(), now=now,
                                         rng=rand.randbytes)
        self.delivered: list[tuple[str, bytes]] = []
        self.undelivered: list[bytes] = []
        self.restarts = 0

    def pump(self, now: float) -> list[tuple[str, bytes]]:
        from client.peer.messenger import Delivered, Undelivered

        m, t = self.messenger, self.transport
        out = []
        for _ in range(64):
            for event in t.take_events():
                if isinstance(event, SessionStarted) and event.restarted:
                    self.restarts += 1
                    m.reset_peer(event.peer)
            for peer, frame in t.take_frames():
                m.receive(peer, frame, now)
            moved = m.take_outgoing()
            for peer, frame in moved:
                t.wrap(peer, frame, now)
            out += t.take_outgoing()
            for event in m.take_events():
                if isinstance(event, Delivered):
                    self.delivered.append((event.peer, event.payload))
                elif isinstance(event, Undelivered):
                    self.undelivered.append(event.payload)
            if not moved:
                return out
        return out


class Wire:
    def __init__(self, *names: str, loss: float, seed: int) -> None:
        self.rand = random.Random(seed)
        self.loss = loss
        self.now = 0.0
        self.nodes = {n: Node(n, 0.0, self.rand) for n in names}
        self.sniffed: list[bytes] = []

    def run(self, until: float) -> None:
        while True:
            in_flight = [(n.name, dst, dg) for n in self.nodes.values()
                         for dst, dg in n.pump(self.now)]
            for src, dst, dg in in_flight:
                self.sniffed.append(dg)
                if self.rand.random() >= self.loss and dst in self.nodes:
                    self.nodes[dst].transport.unwrap(src, dg, self.now)
            if in_flight:
                continue
            deadlines = [d for n in self.nodes.values()
                         for d in (n.messenger.next_deadline(), n.transport.next_deadline())
                         if d is not None]
            if not deadlines or min(deadlines) > until:
                self.now = max(self.now, until)
                return
            self.now = max(self.now, min(deadlines))
            for n in self.nodes.values():
                n.messenger.on_timer(self.now)
                n.transport.on_timer(self.now)


@pytest.mark.parametrize("seed", range(3))
def test_messages_exactly_once_in_order_over_secure_with_20_percent_loss(seed: int) -> None:
    from client.peer.messenger import KIND_PRIVATE

    wire = Wire("alice", "bob", loss=0.2, seed=seed)
    alice, bob = wire.nodes["alice"], wire.nodes["bob"]
    texts = [f"message {i} — сообщение".encode() for i in range(30)]
    texts.insert(15, "🙂".encode() * (64 * 1024 // 4))  # 64 KiB: fragments are sealed too
    for text in texts:
        alice.messenger.send(["bob"], KIND_PRIVATE, text, wire.now)
        bob.messenger.send(["alice"], KIND_PRIVATE, b"echo " + text[:100], wire.now)
    wire.run(until=9.0)
    assert bob.delivered == [("alice", t) for t in texts]
    assert alice.delivered == [("bob", b"echo " + t[:100]) for t in texts]
    assert alice.undelivered == [] and bob.undelivered == []
    for dg in wire.sniffed:
        assert b"message" not in dg and b"alice" not in dg and "🙂".encode() not in dg


def test_messenger_over_secure_survives_a_restart() -> None:
    from client.peer.messenger import KIND_ROOM

    wire = Wire("alice", "bob", loss=0.0, seed=7)
    alice = wire.nodes["alice"]
    alice.messenger.send(["bob"], KIND_ROOM, b"before", wire.now)
    wire.run(until=1.0)
    assert wire.nodes["bob"].delivered == [("alice", b"before")]
    wire.nodes["bob"] = Node("bob", wire.now, wire.rand)  # bob restarts, same key
    alice.messenger.send(["bob"], KIND_ROOM, b"after", wire.now)
    wire.run(until=9.0)
    assert wire.nodes["bob"].delivered == [("alice", b"after")]
    assert alice.restarts == 1 and alice.undelivered == []
    wire.nodes["bob"].messenger.send(["alice"], KIND_ROOM, b"hello again", wire.now)
    wire.run(until=12.0)
    assert alice.delivered == [("bob", b"hello again")]


def test_fast_aead_matches_nacl_bindings() -> None:
    from client.peer.sealed import Aead as _Aead

    aead = _Aead()
    rand = random.Random(3)
    for size in (0, 1, 64, 1165, 1200):
        plain, ad = rand.randbytes(size), rand.randbytes(19)
        nonce, key = rand.randbytes(12), rand.randbytes(32)
        sealed = aead.seal(plain, ad, nonce, key)
        assert sealed == _Aead._seal_bindings(plain, ad, nonce, key)
        assert aead.open(sealed, ad, nonce, key) == plain
        assert _Aead._open_bindings(sealed, ad, nonce, key) == plain
        for bad in (sealed[:-1] + bytes([sealed[-1] ^ 1]), sealed[:15], sealed + b"\0"):
            assert aead.open(bad, ad, nonce, key) is None
            assert _Aead._open_bindings(bad, ad, nonce, key) is None
        assert aead.open(sealed, ad[:-1], nonce, key) is None
    assert aead.open(bytes(2401), b"", bytes(12), bytes(32)) is None  # larger than the buffer
    with pytest.raises(ValueError):
        aead.seal(bytes(1201), b"", bytes(12), bytes(32))


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.sampled_from([b"\xc1\x01\x01", b"\xc1\x01\x02", b"\xc1\x01\x03",
                                           b"\xc1\x01\x20", b"\xc1\x01\x10"]),
                          st.binary(max_size=100)), max_size=12))  # never a valid message
def test_garbage_during_a_handshake_changes_nothing(garbage: list[tuple[bytes, bytes]]) -> None:
    net = Net("alice", "bob")
    junk = iter(garbage)

    def inject(src: str, dst: str, dg: bytes) -> bool:
        for _ in range(2):
            item = next(junk, None)
            if item is not None:
                net.t[dst].unwrap(src, item[0] + item[1], net.now)
        return True

    net.filter = inject
    net.send("alice", "bob", b"through the noise")
    net.run(until=1.0)
    assert net.frames["bob"] == [("alice", b"through the noise")]
    assert sessions(net, "alice", "bob")
    assert all(tr.stats["internal error"] == 0 for tr in net.t.values())


def test_over_real_udp_through_a_sniffing_proxy() -> None:
    """Two transports on 127.0.0.1 talk only through a relay that records every datagram."""
    import select
    import socket
    import time

    socks = {name: socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for name in
             ("alice", "bob", "proxy_a", "proxy_b")}
    try:
        for s in socks.values():
            s.bind(("127.0.0.1", 0))
        addr = {name: s.getsockname() for name, s in socks.items()}
        alice = SecureTransport(key_of("alice"), "alice", PinStore(), now=time.monotonic())
        bob = SecureTransport(key_of("bob"), "bob", PinStore(), now=time.monotonic())
        # alice reaches "bob" at proxy_a; bob reaches "alice" at proxy_b
        ends = {"alice": (alice, "bob", addr["proxy_a"]), "bob": (bob, "alice", addr["proxy_b"])}
        relay = {"proxy_a": ("proxy_b", addr["bob"]), "proxy_b": ("proxy_a", addr["alice"])}
        sniffed: list[bytes] = []
        secret = "ключ под ковриком 🔑".encode()
        alice.wrap("bob", secret, time.monotonic())
        got: list[tuple[str, bytes]] = []
        deadline = time.monotonic() + 5.0
        while not got and time.monotonic() < deadline:
            for name, (t, _peer, dest) in ends.items():
                for _p, dg in t.take_outgoing():
                    socks[name].sendto(dg, dest)
                d = t.next_deadline()
                if d is not None and d <= time.monotonic():
                    t.on_timer(time.monotonic())
            ready, _, _ = select.select(list(socks.values()), [], [], 0.05)
            for s in ready:
                name = next(n for n, x in socks.items() if x is s)
                data, _src = s.recvfrom(2048)
                if name in relay:
                    sniffed.append(data)
                    out, dest = relay[name]
                    socks[out].sendto(data, dest)
                else:
                    t, peer, _dest = ends[name]
                    t.unwrap(peer, data, time.monotonic())
                    got += bob.take_frames()
        assert got == [("alice", secret)]
        assert len(sniffed) >= 4
        for dg in sniffed:
            for needle in (secret, "ключ".encode(), b"alice", b"bob"):
                assert needle not in dg
    finally:
        for s in socks.values():
            s.close()


def test_ensure_session_opens_a_session_without_a_frame() -> None:
    net = Net("alice", "bob")
    assert net.t["alice"].fingerprint("bob") is None
    assert not net.t["alice"].ensure_session("bob", net.now)
    assert not net.t["alice"].ensure_session("bob", net.now)  # one handshake, not two
    assert len(net.t["alice"].take_outgoing()) == 1  # that HS_INIT is lost
    net.run(until=0.5)  # retransmitted
    assert net.t["alice"].ensure_session("bob", net.now)
    assert net.t["alice"].fingerprint("bob") == fingerprint(bytes(key_of("bob").verify_key))
    assert net.t["bob"].fingerprint("alice") == fingerprint(bytes(key_of("alice").verify_key))
    assert net.frames["alice"] == [] and net.frames["bob"] == []
    net.run(until=2.0)  # confirmed: no handshake timers left running
    assert net.t["alice"].next_deadline() is None and net.t["bob"].next_deadline() is None


def test_garbage_from_a_roster_member_is_never_shown_as_unreachable() -> None:
    """Issue 12 item 5: mallory (on the roster, never answering a handshake) sends SEALED
    datagrams of no session and a stray HS_FINISH. Alice starts handshakes of her own (she may
    be the one who lost the session); their failure is logged, not shown, since nobody wrote
    to mallory. A message alice then sends to mallory does get the notice."""
    net = Net("alice")
    sealed = bytes([MAGIC, VERSION, SEALED]) + bytes(range(8)) + bytes(sw.MIN_SEALED_LEN)
    finish = bytes([MAGIC, VERSION, HS_FINISH]) + bytes(200)
    for t in range(0, 60, 5):
        net.run(until=float(t))
        net.t["alice"].unwrap("mallory", sealed, net.now)
        net.t["alice"].unwrap("mallory", finish, net.now)
    net.run(until=80.0)
    assert any(dg[2] == 0x01 for dg in net.sniffed)  # alice did try: HS_INITs to mallory
    assert net.events["alice"] == []
    net.send("alice", "mallory", b"hello?")  # now a message of ours: the failure is shown
    net.run(until=95.0)
    assert net.events["alice"] == [PeerUnreachable("mallory", "no answer to the secure handshake")]


def test_ensure_session_respects_the_holdoff_after_a_failure() -> None:
    net = Net("alice", "bob")
    net.filter = lambda src, dst, dg: False
    net.t["alice"].ensure_session("bob", net.now)
    net.run(until=10.5)
    assert net.events["alice"] == [PeerUnreachable("bob", "no answer to the secure handshake")]
    sent = len(net.sniffed)
    assert not net.t["alice"].ensure_session("bob", net.now)
    net.flush()
    assert len(net.sniffed) == sent  # during the holdoff: nothing sent


_ESTABLISHED = established("alice", "bob")  # one handshake for every example below


@settings(max_examples=200, deadline=None)
@given(st.lists(st.binary(min_size=1, max_size=MAX_FRAME), min_size=1, max_size=6))
def test_frames_round_trip_through_a_session(frames: list[bytes]) -> None:
    alice, bob = _ESTABLISHED.t["alice"], _ESTABLISHED.t["bob"]
    for frame in frames:
        alice.wrap("bob", frame, 0.0)
    datagrams = alice.take_outgoing()
    assert [peer for peer, _ in datagrams] == ["bob"] * len(frames)
    for _, datagram in datagrams:
        assert all(frame not in datagram for frame in frames if len(frame) >= 8)  # sealed
        bob.unwrap("alice", datagram, 0.0)
    assert bob.take_frames() == [("alice", frame) for frame in frames]
    assert bob.take_outgoing() == [] and bob.stats["internal error"] == 0


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=1300))
def test_arbitrary_bytes_in_the_live_session_never_raise(data: bytes) -> None:
    """Datagrams that carry the live session's id (so reach the replay window and the AEAD)."""
    alice, bob = _ESTABLISHED.t["alice"], _ESTABLISHED.t["bob"]
    alice.wrap("bob", b"x", 0.0)
    [(_, genuine)] = alice.take_outgoing()
    bob.unwrap("alice", genuine[:11] + data, 0.0)
    assert bob.take_frames() == [] and bob.stats["internal error"] == 0
    bob.unwrap("alice", genuine, 0.0)  # the session survived the garbage
    assert bob.take_frames() == [("alice", b"x")]
