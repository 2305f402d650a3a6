"""The per-peer path manager (client/reach/paths.py), with fake time: 0, 1, 2 ..."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from client.reach.paths import (
    Keepalive,
    NoPath,
    PathChosen,
    PathConfig,
    PathInfo,
    PathKind,
    PathLost,
    PathManager,
    Probe,
)

LAN, DIRECT = PathKind.LAN, PathKind.DIRECT
PUB = ("198.51.100.7", 40001)
HOME = ("192.168.1.20", 7700)
CFG = PathConfig(first_retry=1.0, max_retry=4.0, probe_attempts=3, path_timeout=5.0,
                 keepalive_interval=25.0, active_window=60.0)


def probes(step) -> list[tuple[str, tuple[str, int]]]:
    return [(s.peer, s.addr) for s in step.sends if isinstance(s, Probe)]


def test_new_candidate_is_probed_at_once_then_with_backoff_then_no_path() -> None:
    m = PathManager(CFG)
    m.add_candidate("bob", PUB, DIRECT, 0)
    assert probes(m.poll(0)) == [("bob", PUB)]
    assert m.next_deadline() == 1
    assert m.poll(0.5).sends == []
    assert probes(m.poll(1)) == [("bob", PUB)]
    assert m.next_deadline() == 3
    assert probes(m.poll(3)) == [("bob", PUB)]
    step = m.poll(7)  # third probe had its 4 s to be answered
    assert step.sends == [] and step.events == [NoPath("bob")]
    assert m.poll(8).events == [] and m.next_deadline() is None
    assert m.path_of("bob") is None


def test_candidates_probed_in_parallel_first_answer_wins_then_lan_replaces_it() -> None:
    m = PathManager(CFG)
    m.add_candidate("bob", PUB, DIRECT, 0)
    m.add_candidate("bob", HOME, LAN, 0)
    assert sorted(probes(m.poll(0))) == sorted([("bob", PUB), ("bob", HOME)])
    m.heard("bob", PUB, 0.5)
    assert m.poll(0.5).events == [PathChosen("bob", DIRECT, PUB, 0.5)]
    assert m.path_of("bob") == PathInfo(DIRECT, PUB, 0.5)
    assert probes(m.poll(1)) == [("bob", HOME)]  # LAN could still be better: keep probing it
    m.heard("bob", HOME, 1.25)
    assert m.poll(1.25).events == [PathChosen("bob", LAN, HOME, 0.25)]
    assert m.path_of("bob") == PathInfo(LAN, HOME, 0.25)
    assert m.next_deadline() is None  # both answered: no more probes


def test_worse_kind_answering_later_does_not_replace() -> None:
    m = PathManager(CFG)
    m.add_candidate("bob", HOME, LAN, 0)
    m.add_candidate("bob", PUB, DIRECT, 0)
    m.poll(0)
    m.heard("bob", HOME, 1)
    m.heard("bob", PUB, 1)
    assert m.poll(1).events == [PathChosen("bob", LAN, HOME, 1.0)]


def test_same_kind_switches_only_for_a_clearly_lower_rtt() -> None:
    m = PathManager(CFG)
    a, b, c = ("203.0.113.1", 1), ("203.0.113.2", 2), ("203.0.113.3", 3)
    for addr in (a, b, c):
        m.add_candidate("bob", addr, DIRECT, 0)
    m.poll(0)
    m.heard("bob", a, 0, rtt=1.0)
    m.heard("bob", b, 0, rtt=0.8)   # not below 70%: stay
    m.heard("bob", c, 0, rtt=0.5)   # clearly better: switch
    assert m.poll(0).events == [PathChosen("bob", DIRECT, a, 1.0),
                                PathChosen("bob", DIRECT, c, 0.5)]


def test_rtt_is_smoothed() -> None:
    m = PathManager(CFG)
    m.add_candidate("bob", PUB, DIRECT, 0)
    m.poll(0)
    m.heard("bob", PUB, 0, rtt=1.0)
    m.heard("bob", PUB, 1, rtt=2.0)
    assert m.path_of("bob") == PathInfo(DIRECT, PUB, 1.125)


def test_silent_path_is_lost_and_every_candidate_probed_again() -> None:
    m = PathManager(CFG)
    m.add_candidate("bob", PUB, DIRECT, 0)
    m.poll(0)
    m.heard("bob", PUB, 1)
    m.poll(1)
    m.sent("bob", 2)
    m.heard("bob", PUB, 3)       # answered: the clock restarts at the next send
    m.sent("bob", 4)
    assert m.next_deadline() == 9
    assert m.poll(8.5).events == []
    step = m.poll(9)
    assert step.events == [PathLost("bob", PUB)]
    assert m.path_of("bob") is None
    assert probes(step) == [("bob", PUB)]  # probed again in the same step
    m.heard("bob", PUB, 9.5)
    assert m.poll(9.5).events == [PathChosen("bob", DIRECT, PUB, 0.9375)]  # 1.0 then 0.5


def test_keepalive_only_behind_nat_only_while_talking_and_not_after_real_traffic() -> None:
    m = PathManager(CFG)
    m.add_candidate("bob", PUB, DIRECT, 0)
    m.poll(0)
    m.heard("bob", PUB, 1)
    m.poll(1)
    assert m.poll(100).sends == []      # not behind NAT: nothing
    m.set_behind_nat(True)
    m.sent("bob", 100)
    m.heard("bob", PUB, 100)
    assert m.next_deadline() == 125
    assert m.poll(124).sends == []
    assert m.poll(125).sends == [Keepalive("bob", PUB)]
    m.heard("bob", PUB, 130, user=False)  # its keepalive: not a conversation
    assert m.poll(150).sends == [Keepalive("bob", PUB)]
    # last user traffic at 100, window 60: a keepalive at 175 would be past it
    assert m.next_deadline() is None
    assert m.poll(200).sends == []


def test_accepts_only_known_candidates() -> None:
    m = PathManager(CFG)
    m.add_candidate("bob", PUB, DIRECT, 0)
    assert m.accepts("bob", PUB)
    assert not m.accepts("bob", HOME)
    assert not m.accepts("carol", PUB)
    assert m.peers_at(PUB) == {"bob"}
    m.heard("bob", HOME, 1)     # not a candidate: ignored
    assert m.path_of("bob") is None
    m.forget("bob")
    assert not m.accepts("bob", PUB) and m.peers_at(PUB) == frozenset()


def test_removing_the_chosen_candidate_loses_the_path() -> None:
    m = PathManager(CFG)
    m.add_candidate("bob", PUB, DIRECT, 0)
    m.add_candidate("bob", HOME, LAN, 0)
    m.poll(0)
    m.heard("bob", HOME, 0.5)
    m.poll(0.5)
    m.remove_candidate("bob", HOME, LAN, 1)
    step = m.poll(1)
    assert step.events == [PathLost("bob", HOME)]
    assert probes(step) == [("bob", PUB)]


def test_candidates_are_bounded_and_readding_does_not_restart_probes() -> None:
    m = PathManager(PathConfig(max_candidates=2))
    assert m.add_candidate("bob", ("10.0.0.1", 1), LAN, 0)
    assert m.add_candidate("bob", ("10.0.0.2", 1), LAN, 0)
    assert not m.add_candidate("bob", ("10.0.0.3", 1), LAN, 0)
    assert len(m.candidates("bob")) == 2
    m.poll(0)
    m.add_candidate("bob", ("10.0.0.1", 1), LAN, 0.1)  # a LAN re-announcement
    assert m.poll(0.1).sends == []


def test_reprobe_after_no_path() -> None:
    m = PathManager(CFG)
    m.add_candidate("bob", PUB, DIRECT, 0)
    for t in (0, 1, 3, 7):
        m.poll(t)
    m.reprobe("bob", 10)
    assert probes(m.poll(10)) == [("bob", PUB)]


def test_an_address_named_by_two_sources_keeps_the_better_kind_until_withdrawn() -> None:
    m = PathManager(CFG)
    m.add_candidate("bob", HOME, DIRECT, 0)   # the directory lists its LAN address (no NAT)
    m.add_candidate("bob", HOME, LAN, 0)      # and LAN discovery hears it
    m.poll(0)
    m.heard("bob", HOME, 0.5)
    assert m.poll(0.5).events == [PathChosen("bob", LAN, HOME, 0.5)]
    m.add_candidate("bob", HOME, DIRECT, 1)   # a REF_ADD again: no downgrade, no probe
    assert m.poll(1).sends == [] and m.path_of("bob").kind is LAN
    m.remove_candidate("bob", HOME, LAN, 2)   # LAN entry expired: still a DIRECT candidate
    assert m.path_of("bob") == PathInfo(DIRECT, HOME, 0.5)
    m.remove_candidate("bob", HOME, DIRECT, 3)
    assert m.poll(3).events == [PathLost("bob", HOME)]


def test_silent_better_candidates_are_retried_while_talking() -> None:
    cfg = PathConfig(first_retry=1.0, probe_attempts=1, upgrade_interval=30, active_window=60)
    m = PathManager(cfg)
    m.add_candidate("bob", HOME, LAN, 0)
    m.add_candidate("bob", PUB, DIRECT, 0)
    m.poll(0)
    m.heard("bob", PUB, 0.5)                  # only the public path answers
    m.poll(0.5)
    m.poll(1)                                 # the LAN candidate's one probe had its wait
    assert m.next_deadline() == 30.5
    assert probes(m.poll(30.5)) == [("bob", HOME)]
    m.heard("bob", HOME, 30.75)
    assert m.poll(30.75).events == [PathChosen("bob", LAN, HOME, 0.25)]
    assert m.next_deadline() is None          # the best kind now: nothing to upgrade


def test_no_upgrade_probes_when_not_talking() -> None:
    cfg = PathConfig(first_retry=1.0, probe_attempts=1, upgrade_interval=30, active_window=20)
    m = PathManager(cfg)
    m.add_candidate("bob", HOME, LAN, 0)
    m.add_candidate("bob", PUB, DIRECT, 0)
    m.poll(0)
    m.heard("bob", PUB, 0.5)
    m.poll(1)
    assert m.next_deadline() is None
    assert m.poll(100).sends == []


class FakeNat:
    """Two hosts behind address-dependent filtering NATs: a datagram from X reaches Y only
    if Y already sent to X (its mapping is open toward X)."""

    def __init__(self) -> None:
        self.opened: set[tuple[str, str]] = set()

    def send(self, src: str, dst: str) -> bool:
        self.opened.add((src, dst))
        return (dst, src) in self.opened


def test_coordinated_punching_both_sides_get_a_path() -> None:
    nat = FakeNat()
    alice, bob = PathManager(CFG), PathManager(CFG)
    a_pub, b_pub = ("192.0.2.1", 1000), ("192.0.2.2", 2000)
    # both learn of each other at once (REF_ADD to bob, REFERENCE to alice) but bob a bit later
    alice.add_candidate("bob", b_pub, DIRECT, 0)
    first = alice.poll(0)
    assert not nat.send("alice", "bob")  # alice's first probe is dropped by bob's router
    assert probes(first) == [("bob", b_pub)]
    bob.add_candidate("alice", a_pub, DIRECT, 0.5)
    assert probes(bob.poll(0.5)) == [("alice", a_pub)]
    assert nat.send("bob", "alice")      # alice's router has the mapping: it gets through
    # alice authenticates bob's probe (the handshake) and answers on the same path
    alice.heard("bob", b_pub, 0.5)
    assert nat.send("alice", "bob")
    bob.heard("alice", a_pub, 0.6)
    assert alice.path_of("bob").addr == b_pub
    assert bob.path_of("alice").addr == a_pub


ops = st.lists(st.tuples(
    st.sampled_from(["add", "remove", "heard", "sent", "reprobe", "nat", "forget"]),
    st.sampled_from(["bob", "carol"]),
    st.sampled_from([PUB, HOME, ("10.9.9.9", 9)]),
    st.sampled_from(list(PathKind)),
    st.floats(min_value=0, max_value=30, allow_nan=False)), max_size=40)


@settings(max_examples=150, deadline=None)
@given(ops)
def test_deadline_never_in_the_past_after_poll(seq) -> None:
    m = PathManager(CFG)
    now = 0.0
    for op, peer, addr, kind, dt in seq:
        now += dt
        if op == "add":
            m.add_candidate(peer, addr, kind, now)
        elif op == "remove":
            m.remove_candidate(peer, addr, kind, now)
        elif op == "heard":
            m.heard(peer, addr, now)
        elif op == "sent":
            m.sent(peer, now)
        elif op == "reprobe":
            m.reprobe(peer, now)
        elif op == "nat":
            m.set_behind_nat(not m.behind_nat)
        else:
            m.forget(peer)
        m.poll(now)
        deadline = m.next_deadline()
        assert deadline is None or deadline > now
        for p in ("bob", "carol"):
            info = m.path_of(p)
            assert info is None or m.accepts(p, info.addr)


def test_keepalive_cost_at_200_peers() -> None:
    """200 peers we talk with, behind NAT, nothing else sent: one keepalive per peer per
    interval -- 8 datagrams/s at the 25 s default; and none once the conversation is over."""
    m = PathManager(PathConfig(), behind_nat=True)
    for i in range(200):
        addr = (f"203.0.113.{i % 250 + 1}", 40000 + i)
        m.add_candidate(f"p{i}", addr, DIRECT, 0)
    m.poll(0)
    for i in range(200):
        m.heard(f"p{i}", (f"203.0.113.{i % 250 + 1}", 40000 + i), 0.1)
    sent = 0
    t = 1.0
    while t <= 100:
        sent += sum(isinstance(s, Keepalive) for s in m.poll(t).sends)
        t += 1.0
    assert sent / 100 == 200 * 4 / 100   # 4 keepalives each in 100 s: 8/s
    late = 0
    while t <= 400:
        late += sum(isinstance(s, Keepalive) for s in m.poll(t).sends)
        t += 1.0
    assert late == 0  # active_window (120 s) is over
