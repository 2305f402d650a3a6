"""The client's view of the directory: who is online and at which UDP address.

Sans-IO and single-threaded (the engine thread owns it). It applies the server's REFERENCE
(a full snapshot), REF_ADD and REF_DEL, never lists ourselves, answers "which nickname lives at
this address" for incoming peer datagrams, and keeps the digest the extended PING carries
(``models.directory_wire.roster_digest`` of everyone but us), kept incrementally: the digest
is the XOR of per-row hashes, so each change XORs one row in or out.

Nicknames are kept in the display form the directory lists; ``resolve`` finds one from what a
user typed (case-insensitive, width-folded: the directory's canonical form).

Ghosts: after the server restarted on an empty database, everyone registers again one by one,
so a fresh REFERENCE misses peers who are about to come back. ``replace(..., grace_until=t)``
keeps such peers as *ghosts* — still reachable, still listed, but not in the digest — and only
reports them as left if they have not reappeared by ``t`` (``expire_ghosts(now)``). That is what
keeps a server restart free of leave/join noise.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field

from models.directory_wire import Entry as WireEntry
from models.directory_wire import entry_hash, format_digest
from models.errors import ProtocolError
from models.nickname import canonical

log = logging.getLogger(__name__)

Address = tuple[str, int]
Entry = tuple[str, str, int]  # (nickname, ip, port) as the directory lists it

MAX_ENTRIES = 100_000  # a directory larger than this is a bug or an attack; ignore the excess


def _key(nickname: str) -> str:
    try:
        return canonical(nickname)
    except ProtocolError:
        return nickname  # the directory listed something odd; compare it as is


def _hash(nick: str, address: Address) -> int:
    return entry_hash(WireEntry(nick, address[0], address[1]))


@dataclass
class Changes:
    """What one update did, for the engine to turn into UI events."""

    joined: list[str] = field(default_factory=list)
    left: list[str] = field(default_factory=list)
    moved: list[str] = field(default_factory=list)  # same nickname, new address

    def __bool__(self) -> bool:
        return bool(self.joined or self.left or self.moved)


class PeerRoster:
    def __init__(self, me: str) -> None:
        self.me = me
        self._me_key = _key(me)
        self._keys: dict[str, str] = {}  # canonical key -> nickname
        self._addr: dict[str, Address] = {}  # nickname -> address (confirmed and ghosts)
        self._by_addr: dict[Address, list[str]] = {}  # usually one nickname per address
        self._ghosts: dict[str, float] = {}  # nickname -> time it is reported left
        self._acc = 0  # XOR of the confirmed rows' hashes

    def rename_me(self, me: str) -> None:
        """Our own nickname changed (``/nick``): never list it as a peer."""
        self.me, self._me_key = me, _key(me)

    # -- queries ---------------------------------------------------------------------------
    def nicknames(self) -> list[str]:
        return sorted(self._addr)

    def __contains__(self, nickname: object) -> bool:
        return nickname in self._addr

    def __len__(self) -> int:
        return len(self._addr)

    def resolve(self, typed: str) -> str | None:
        """The listed nickname matching what a user typed (case-insensitive), or None."""
        if typed in self._addr:
            return typed
        return self._keys.get(_key(typed))

    def address_of(self, nickname: str) -> Address | None:
        return self._addr.get(nickname)

    def nickname_at(self, address: Address) -> str | None:
        nicks = self._by_addr.get(address)
        # Two nicknames at one address: the newer claim wins (the older one is stale and
        # will be REF_DEL'd or repaired).
        return nicks[-1] if nicks else None

    def entries(self) -> list[Entry]:
        """The confirmed entries (ghosts excluded), as the directory would list them."""
        return [(n, a[0], a[1]) for n, a in self._addr.items() if n not in self._ghosts]

    def digest(self) -> str:
        return format_digest(self._acc)

    def next_deadline(self) -> float | None:
        return min(self._ghosts.values(), default=None)

    # -- updates ---------------------------------------------------------------------------
    def add(self, entries: Iterable[Entry]) -> Changes:
        """REF_ADD: new peers join; a nickname we already list just moves (address update)."""
        changes = Changes()
        for nick, ip, port in entries:
            if nick == self.me or _key(nick) == self._me_key:
                continue
            old = self._addr.get(nick)
            if nick in self._ghosts:
                del self._ghosts[nick]  # back in the directory: count it in the digest again
                self._acc ^= _hash(nick, old)
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
            if nick != self.me and _key(nick) != self._me_key and len(fresh) < MAX_ENTRIES:
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
                self._acc ^= _hash(nick, self._addr[nick])
        changes_add = self.add((n, a[0], a[1]) for n, a in fresh.items())
        changes.joined, changes.moved = changes_add.joined, changes_add.moved
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
        self._keys.clear()
        self._acc = 0

    # -- internals -------------------------------------------------------------------------
    def _set(self, nick: str, address: Address) -> None:
        """List a confirmed (non-ghost) nickname at ``address``."""
        old = self._addr.get(nick)
        if old is not None:
            self._unindex(nick, old)
            self._acc ^= _hash(nick, old)
        self._addr[nick] = address
        self._keys[_key(nick)] = nick
        self._by_addr.setdefault(address, []).append(nick)
        self._acc ^= _hash(nick, address)

    def _drop(self, nick: str) -> None:
        address = self._addr.pop(nick)
        self._unindex(nick, address)
        if self._keys.get(_key(nick)) == nick:
            del self._keys[_key(nick)]
        if self._ghosts.pop(nick, None) is None:
            self._acc ^= _hash(nick, address)

    def _unindex(self, nick: str, address: Address) -> None:
        nicks = self._by_addr.get(address)
        if nicks and nick in nicks:
            nicks.remove(nick)
            if not nicks:
                del self._by_addr[address]
