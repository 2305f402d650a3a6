"""MergedRoster (sans-IO): the directory's peers and the LAN's as one roster, without
duplicates and without leave/join noise when a source appears, goes, or repeats a peer."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from client.reach.merged import MergedRoster
from client.serverlink.roster import Changes, PeerRoster


def test_lan_mode_then_a_directory_appears_without_noise() -> None:
    m = MergedRoster("alice")
    assert m.lan_add("bob", ("10.0.0.2", 5000)).joined == ["bob"]
    assert m.lan_add("carol", ("10.0.0.3", 5000)).joined == ["carol"]
    assert m.lan_add("alice", ("10.0.0.9", 1)) == Changes()        # ourselves: never listed
    d = PeerRoster("alice")
    d.replace([("bob", "203.0.113.1", 4000), ("dave", "198.51.100.4", 4000)])
    changes = m.set_directory(d)
    assert changes.joined == ["dave"] and changes.left == [] and changes.moved == ["bob"]
    assert m.nicknames() == ["bob", "carol", "dave"]                # one bob
    assert m.address_of("bob") == ("203.0.113.1", 4000)             # the directory's first
    assert m.directory_address("carol") is None and m.address_of("carol") == ("10.0.0.3", 5000)
    # bob leaves the directory but is still on the LAN: not a leave
    assert m.from_directory(d.remove(["bob"])) == Changes(moved=["bob"])
    # carol's beacon stops: she leaves; dave leaves the directory: he leaves
    assert m.lan_remove(["carol"]).left == ["carol"]
    assert m.from_directory(d.remove(["dave"])).left == ["dave"]
    assert m.nicknames() == ["bob"]


def test_a_lan_peer_already_in_the_directory_is_not_a_join() -> None:
    m = MergedRoster("alice")
    d = PeerRoster("alice")
    d.replace([("bob", "203.0.113.1", 4000)])
    m.set_directory(d)
    assert m.lan_add("bob", ("10.0.0.2", 5000)) == Changes(moved=["bob"])
    assert m.lan_remove(["bob"]) == Changes(moved=["bob"])
    assert m.from_directory(d.add([("bob", "203.0.113.1", 4000)])) == Changes()
    assert m.resolve("BOB") == "bob" and "bob" in m and len(m) == 1


names = st.sampled_from(["bob", "carol", "dave", "erin"])
ops = st.lists(st.tuples(st.sampled_from(["lan+", "lan-", "dir+", "dir-"]), names), max_size=30)


@given(ops)
def test_events_replay_to_the_same_roster(seq: list[tuple[str, str]]) -> None:
    """Whatever the order of the sources, applying the reported joins and leaves to a plain set
    gives exactly the merged roster: no duplicates, nothing lost, no spurious events."""
    m = MergedRoster("alice")
    d = PeerRoster("alice")
    m.set_directory(d)
    shown: set[str] = set()
    for op, nick in seq:
        if op == "lan+":
            ch = m.lan_add(nick, ("10.0.0.2", 5000))
        elif op == "lan-":
            ch = m.lan_remove([nick])
        elif op == "dir+":
            ch = m.from_directory(d.add([(nick, "203.0.113.1", 4000)]))
        else:
            ch = m.from_directory(d.remove([nick]))
        assert not set(ch.joined) & shown and set(ch.left) <= shown
        shown |= set(ch.joined)
        shown -= set(ch.left)
        assert shown == set(m.nicknames())
