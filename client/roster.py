"""The client's view of the directory: who is online and at which UDP address.

Sans-IO and single-threaded (the engine thread owns it). It applies the server's REFERENCE
(a full snapshot), REF_ADD and REF_DEL, never lists ourselves, answers "which nickname lives at
this address" for incoming peer datagrams, and keeps the digest the extended PING carries
(``models.directory_wire.roster_digest`` of everyone but us), recomputed only after a change.

Ghosts: after the server restarted on an empty database, everyone registers again one by one,
so a fresh REFERENCE misses peers who are about to come back. ``replace(..., grace_until=t)``
keeps such peers as *ghosts* — still reachable, still listed, but not in the digest — and only
reports them as left if they have not reappeared by ``t`` (``expire_ghosts(now)``). That is what
keeps a server restart free of leave/join noise.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

log = logging.getLogger(__name__)

Address = tuple[str, int]
Entry = tuple[str, str, int]  # (nickname, ip, port) as the directory lists it

MAX_ENTRIES = 100_000  # a directory larger than this is a bug or an attack; ignore the excess


def _default_digest(entries: Iterable[Entry]) -> str:
    from models.directory_wire import roster_digest

    return roster_digest(list(entries))


@dataclass
class Changes:
    """What one update did, for the engine to turn into UI events."""

    joined: list[str] = field(default_factory=list)
    left: list[str] = field(default_factory=list)
    moved: list[str] = field(default_factory=list)  # same nickname, new address

    def __bool__(self) -> bool:
        return bool(self.joined or self.left or self.moved)


class Roster:
    def __init__(self, me: str, *, digest: Callable[[Iterable[Entry]], str] | None = None) -> None:
        self.me = me
        self._addr: dict[str, Address] = {}  # nickname -> address (confirmed and ghosts)
        self._by_addr: dict[Address, list[str]] = {}  # usually one nickname per address
        self._ghosts: dict[str, float] = {}  # nickname -> time it is reported left
        self._digest_fn = digest or _default_digest
        self._digest: str | None = None

    # -- queries ---------------------------------------------------------------------------
    def nicknames(self) -> list[str]:
        return sorted(self._addr)

    def __contains__(self, nickname: object) -> bool:
        return nickname in self._addr

    def __len__(self) -> int:
        return len(self._addr)

    def address_of(self, nickname: str) -> Address | None:
        return self._addr.get(nickname)

    def nickname_at(self, address: Address) -> str | None:
        nicks = self._by_addr.get((address[0], address[1]))
        # Two nicknames at one address: the newer claim wins (the older one is stale and
        # will be REF_DEL'd or repaired).
        return nicks[-1] if nicks else None

    def is_ghost(self, nickname: str) -> bool:
        return nickname in self._ghosts

    def entries(self) -> list[Entry]:
        """The confirmed entries (ghosts excluded), as the directory would list them."""
        return [(n, a[0], a[1]) for n, a in self._addr.items() if n not in self._ghosts]

    def digest(self) -> str:
        if self._digest is None:
            self._digest = self._digest_fn(self.entries())
        return self._digest

    def next_deadline(self) -> float | None:
        return min(self._ghosts.values(), default=None)

    # -- updates ---------------------------------------------------------------------------
    def add(self, entries: Iterable[Entry]) -> Changes:
        """REF_ADD: new peers join; a nickname we already list just moves (address update)."""
        changes = Changes()
        for nick, ip, port in entries:
            if nick == self.me:
                continue
            self._ghosts.pop(nick, None)
            self._digest = None
            old = self._addr.get(nick)
            if old == (ip, port):
                continue
            if old is None and len(self._addr) >= MAX_ENTRIES:
                log.warning("roster full (%d entries); ignoring %s", MAX_ENTRIES, nick)
                continue
            self._set(nick, (ip, port))
            (changes.moved if old is not None else changes.joined).append(nick)
        return changes

    def remove(self, nicknames: Iterable[str]) -> Changes:
        """REF_DEL: these peers left."""
        changes = Changes()
        for nick in nicknames:
            if nick in self._addr:
                self._drop(nick)
                changes.left.append(nick)
        return changes

    def replace(self, entries: Iterable[Entry], *, grace_until: float | None = None) -> Changes:
        """REFERENCE: the full directory. Without ``grace_until``, missing peers leave at once;
        with it they become ghosts until then (see the module docstring)."""
        fresh: dict[str, Address] = {}
        for nick, ip, port in entries:
            if nick != self.me and len(fresh) < MAX_ENTRIES:
                fresh[nick] = (ip, port)
        changes = Changes()
        for nick in list(self._addr):
            if nick in fresh:
                continue
            if grace_until is None:
                self._drop(nick)
                changes.left.append(nick)
            elif nick not in self._ghosts:
                self._ghosts[nick] = grace_until
                self._digest = None
        changes_add = self.add((n, a[0], a[1]) for n, a in fresh.items())
        changes.joined, changes.moved = changes_add.joined, changes_add.moved
        self._digest = None
        return changes

    def expire_ghosts(self, now: float) -> Changes:
        """Ghosts that did not come back by their time are reported left."""
        changes = Changes()
        for nick, until in list(self._ghosts.items()):
            if until <= now:
                self._drop(nick)
                changes.left.append(nick)
        return changes

    def clear(self) -> None:
        self._addr.clear()
        self._by_addr.clear()
        self._ghosts.clear()
        self._digest = None

    # -- internals -------------------------------------------------------------------------
    def _set(self, nick: str, address: Address) -> None:
        old = self._addr.get(nick)
        if old is not None:
            self._unindex(nick, old)
        self._addr[nick] = address
        self._by_addr.setdefault(address, []).append(nick)
        self._digest = None

    def _drop(self, nick: str) -> None:
        self._unindex(nick, self._addr.pop(nick))
        self._ghosts.pop(nick, None)
        self._digest = None

    def _unindex(self, nick: str, address: Address) -> None:
        nicks = self._by_addr.get(address)
        if nicks and nick in nicks:
            nicks.remove(nick)
            if not nicks:
                del self._by_addr[address]
