"""One roster from two sources: the directory's and the LAN's (sans-IO, engine thread).

The directory roster (``client.serverlink.roster.PeerRoster``, owned by the server channel,
which keeps its digest) appears when we register and may never appear at all (no server:
LAN mode). LAN peers are kept here in a second ``PeerRoster`` (nickname -> LAN address). The
engine, the peer link and the reach link see only this merged view:

* a nickname listed by both is one entry (no duplicate), reached at whatever path the path
  manager picks; ``address_of`` prefers the directory's address (the "public" one);
* a nickname that comes from the second source is not a join, and one that leaves one source
  while the other still lists it is not a leave: ``from_directory`` / ``from_lan`` turn a
  source's ``Changes`` into the merged ones, so no leave/join noise when a server appears,
  goes, or a LAN peer's beacon stops while the directory still lists it.

Who is who on the LAN is decided by the identity key (``client.reachlink``): one key per
nickname; a second key announcing a listed nickname is a clash, reported, never merged.
"""

from __future__ import annotations

from collections.abc import Iterable

from client.serverlink.roster import Address, Changes, PeerRoster


class MergedRoster:
    def __init__(self, me: str) -> None:
        self.me = me
        self.directory: PeerRoster | None = None
        self.lan = PeerRoster(me)

    # -- the PeerRoster queries the other layers use ---------------------------------------
    def nicknames(self) -> list[str]:
        if self.directory is None:
            return self.lan.nicknames()
        return sorted({*self.directory.nicknames(), *self.lan.nicknames()})

    def __contains__(self, nickname: object) -> bool:
        return (self.directory is not None and nickname in self.directory) or nickname in self.lan

    def __len__(self) -> int:
        return len(self.nicknames())

    def resolve(self, typed: str) -> str | None:
        if self.directory is not None:
            found = self.directory.resolve(typed)
            if found is not None:
                return found
        return self.lan.resolve(typed)

    def address_of(self, nickname: str) -> Address | None:
        if self.directory is not None:
            addr = self.directory.address_of(nickname)
            if addr is not None:
                return addr
        return self.lan.address_of(nickname)

    def directory_address(self, nickname: str) -> Address | None:
        return None if self.directory is None else self.directory.address_of(nickname)

    def rename_me(self, new: str) -> None:
        """``/nick``: we are ``new`` now (the directory's roster is renamed by its channel)."""
        self.me = new
        self.lan.rename_me(new)

    # -- sources ---------------------------------------------------------------------------
    def set_directory(self, roster: PeerRoster | None) -> Changes:
        """A directory roster appears (registered) or goes (None): the merged difference."""
        before = set(self.nicknames())
        old = set(self.directory.nicknames()) if self.directory is not None else set()
        self.directory = roster
        if roster is not None:
            self.me = roster.me
        new = set(roster.nicknames()) if roster is not None else set()
        after = set(self.nicknames())
        # listed before and after, but the directory's word about them changed: moved
        return Changes(joined=sorted(after - before), left=sorted(before - after),
                       moved=sorted(before & after & (old ^ new)))

    def from_directory(self, changes: Changes) -> Changes:
        """The directory's own changes, seen through the merge."""
        lan = self.lan
        return Changes(joined=[n for n in changes.joined if n not in lan],
                       left=[n for n in changes.left if n not in lan],
                       moved=[*changes.moved, *(n for n in changes.joined if n in lan),
                              *(n for n in changes.left if n in lan)])

    def lan_add(self, nickname: str, addr: Address) -> Changes:
        changes = self.lan.add([(nickname, addr[0], addr[1])])
        in_dir = self.directory is not None and nickname in self.directory
        if in_dir and changes.joined:
            return Changes(moved=changes.joined)
        return changes

    def lan_remove(self, nicknames: Iterable[str]) -> Changes:
        changes = self.lan.remove(nicknames)
        directory = self.directory
        if directory is None:
            return changes
        return Changes(left=[n for n in changes.left if n not in directory],
                       moved=[n for n in changes.left if n in directory])
