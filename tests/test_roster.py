"""The client roster: REFERENCE / REF_ADD / REF_DEL, reverse lookup, digest, ghosts."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from client.roster import Roster


def fake_digest(entries):
    return "|".join(sorted(f"{n}@{ip}:{port}" for n, ip, port in entries))


def make() -> Roster:
    return Roster("me", digest=fake_digest)


def test_reference_excludes_self_and_indexes_addresses():
    r = make()
    ch = r.replace([("me", "10.0.0.1", 1), ("bob", "10.0.0.2", 2), ("amy", "10.0.0.3", 3)])
    assert sorted(ch.joined) == ["amy", "bob"] and not ch.left
    assert r.nicknames() == ["amy", "bob"]
    assert "me" not in r
    assert r.address_of("bob") == ("10.0.0.2", 2)
    assert r.nickname_at(("10.0.0.3", 3)) == "amy"
    assert r.nickname_at(("10.0.0.9", 3)) is None
    assert r.digest() == "amy@10.0.0.3:3|bob@10.0.0.2:2"


def test_ref_add_of_known_nickname_is_a_move_not_a_join():
    r = make()
    r.add([("bob", "h", 1)])
    ch = r.add([("bob", "h", 2)])
    assert ch.moved == ["bob"] and not ch.joined
    assert r.nickname_at(("h", 1)) is None
    assert r.nickname_at(("h", 2)) == "bob"
    assert not r.add([("bob", "h", 2)])  # same address again: nothing


def test_ref_del_and_unknown_del():
    r = make()
    r.add([("bob", "h", 1), ("cat", "h", 2)])
    ch = r.remove(["bob", "nobody"])
    assert ch.left == ["bob"]
    assert r.nicknames() == ["cat"]
    assert r.nickname_at(("h", 1)) is None


def test_replace_without_grace_reports_leaves():
    r = make()
    r.add([("bob", "h", 1), ("cat", "h", 2)])
    ch = r.replace([("cat", "h", 2), ("dan", "h", 3)])
    assert ch.left == ["bob"] and ch.joined == ["dan"] and not ch.moved


def test_ghosts_stay_reachable_then_leave_unless_they_return():
    r = make()
    r.add([("bob", "h", 1), ("cat", "h", 2)])
    ch = r.replace([], grace_until=10.0)
    assert not ch
    assert r.nicknames() == ["bob", "cat"]  # still listed and reachable
    assert r.nickname_at(("h", 1)) == "bob"
    assert r.digest() == ""  # ghosts are not in the digest
    assert r.next_deadline() == 10.0
    assert not r.add([("bob", "h", 1)])  # bob came back: silently confirmed
    assert not r.expire_ghosts(9.0)
    assert r.expire_ghosts(10.0).left == ["cat"]
    assert r.nicknames() == ["bob"]
    assert r.next_deadline() is None
    assert r.digest() == "bob@h:1"


def test_two_nicknames_at_one_address_newest_wins_then_falls_back():
    r = make()
    r.add([("old", "h", 1)])
    r.add([("new", "h", 1)])
    assert r.nickname_at(("h", 1)) == "new"
    r.remove(["new"])
    assert r.nickname_at(("h", 1)) == "old"


def test_digest_recomputed_only_after_change():
    calls = []

    def digest(entries):
        calls.append(1)
        return str(len(list(entries)))

    r = Roster("me", digest=digest)
    r.add([("a", "h", 1)])
    assert r.digest() == "1" and r.digest() == "1"
    assert len(calls) == 1
    r.add([("b", "h", 2)])
    assert r.digest() == "2" and len(calls) == 2


def test_default_digest_is_the_codecs():
    from models.directory_wire import roster_digest

    r = Roster("me")
    r.add([("bob", "127.0.0.1", 5000), ("cat", "127.0.0.1", 5001)])
    assert r.digest() == roster_digest(r.entries())


ops = st.lists(
    st.one_of(
        st.tuples(st.just("add"), st.sampled_from("abcdme"), st.integers(1, 4)),
        st.tuples(st.just("del"), st.sampled_from("abcdme"), st.just(0)),
    ),
    max_size=40,
)


@given(ops)
def test_indexes_stay_consistent(seq):
    r = make()
    for op, nick, port in seq:
        if op == "add":
            r.add([(nick, "h", port)])
        else:
            r.remove([nick])
    assert "me" not in r
    for nick in r.nicknames():
        addr = r.address_of(nick)
        assert addr is not None
        assert r.nickname_at(addr) is not None
    for port in range(1, 5):
        owner = r.nickname_at(("h", port))
        assert owner is None or r.address_of(owner) == ("h", port)
