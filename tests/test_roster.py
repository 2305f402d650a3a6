"""The client roster: REFERENCE / REF_ADD / REF_DEL, reverse lookup, digest, ghosts."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from client.serverlink.roster import PeerRoster
from models.directory_wire import EMPTY_DIGEST, Entry, roster_digest


def expected(*rows):
    return roster_digest(Entry(n, ip, port) for n, ip, port in rows)


def make() -> PeerRoster:
    return PeerRoster("me")


def test_reference_excludes_self_and_indexes_addresses():
    r = make()
    ch = r.replace([("me", "10.0.0.1", 1), ("bob", "10.0.0.2", 2), ("amy", "10.0.0.3", 3)])
    assert sorted(ch.joined) == ["amy", "bob"] and not ch.left
    assert r.nicknames() == ["amy", "bob"]
    assert "me" not in r
    assert r.address_of("bob") == ("10.0.0.2", 2)
    assert r.nickname_at(("10.0.0.3", 3)) == "amy"
    assert r.nickname_at(("10.0.0.9", 3)) is None
    assert r.digest() == expected(("amy", "10.0.0.3", 3), ("bob", "10.0.0.2", 2))


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
    assert r.digest() == EMPTY_DIGEST  # ghosts are not in the digest
    assert r.next_deadline() == 10.0
    assert not r.add([("bob", "h", 1)])  # bob came back: silently confirmed
    assert not r.expire_ghosts(9.0)
    assert r.expire_ghosts(10.0).left == ["cat"]
    assert r.nicknames() == ["bob"]
    assert r.next_deadline() is None
    assert r.digest() == expected(("bob", "h", 1))


def test_two_nicknames_at_one_address_newest_wins_then_falls_back():
    r = make()
    r.add([("old", "h", 1)])
    r.add([("new", "h", 1)])
    assert r.nickname_at(("h", 1)) == "new"
    r.remove(["new"])
    assert r.nickname_at(("h", 1)) == "old"


def test_resolve_is_case_insensitive_and_self_is_never_listed():
    r = PeerRoster("Вася")
    r.add([("вася", "h", 1), ("Bob", "h", 2)])
    assert r.nicknames() == ["Bob"]
    assert r.resolve("bob") == "Bob" and r.resolve("ＢＯＢ") == "Bob"
    assert r.resolve("nobody") is None


ops = st.lists(
    st.one_of(
        st.tuples(st.just("add"), st.sampled_from("abcdme"), st.integers(1, 4)),
        st.tuples(st.just("del"), st.sampled_from("abcdme"), st.just(0)),
        st.tuples(st.just("ref"), st.sets(st.sampled_from("abcd")), st.integers(1, 4)),
        st.tuples(st.just("expire"), st.just(""), st.integers(0, 3)),
    ),
    max_size=40,
)


@given(ops)
def test_indexes_and_digest_stay_consistent(seq):
    r = make()
    for step, (op, nick, port) in enumerate(seq):
        if op == "add":
            r.add([(nick, "h", port)])
        elif op == "del":
            r.remove([nick])
        elif op == "ref":
            r.replace([(n, "h", port) for n in sorted(nick)], grace_until=step + port)
        else:
            r.expire_ghosts(step)
        assert r.digest() == expected(*r.entries())
    assert "me" not in r
    for nick in r.nicknames():
        addr = r.address_of(nick)
        assert addr is not None
        assert r.nickname_at(addr) is not None
    for port in range(1, 5):
        owner = r.nickname_at(("h", port))
        assert owner is None or r.address_of(owner) == ("h", port)
