"""The directory's push planner: which REF_ADD / REF_DEL datagrams go to whom, and when.

Pure logic, no sockets and no clock (the time is passed in). ``models.directory`` records
every change here (``record``); the I/O edge drains ``iter_outgoing(now)``.

* Changes wait in a coalescing buffer; a push packs all of them into as few REF_ADD/REF_DEL
  datagrams as possible per recipient (each in its own keyword).
* A bounded change log lets a new client's first PING get the changes it missed since its
  ``REFERENCE?`` (``catch_up``).
* Under churn, removals are spread over ``del_spread`` pushes, after the additions.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Iterator
from dataclasses import dataclass, field

from models.directory_bytes import (
    DEFAULT_PACK_LIMIT,
    body_budget,
    frame_bytes,
    frame_tail,
    list_body,
    pack_bodies,
    pack_items,
)
from models.directory_wire import Entry
from models.registration import Address, Registration


@dataclass
class Change:
    nickname: str
    entry: Entry | None  # None: removed
    at: float = 0.0  # when it happened (``now``), to measure how long the push took
    text: bytes = b""  # the row as encoded on the wire (adds only)


@dataclass
class _DelBatch:
    """Removals going out to ``recipients[:done]`` so far, a slice per push."""

    changes: dict[str, Change]
    recipients: list[Registration]
    done: int = 0


@dataclass
class _Plan:
    """One push: the shared tails, and which add chunk holds which recipient's own row."""

    recipients: list[Registration] = field(default_factory=list)
    tails: list[bytes] = field(default_factory=list)
    chunk_of: dict[str, int] = field(default_factory=dict)
    chunks: list[list[tuple[str, bytes]]] = field(default_factory=list)
    n_del: int = 0
    del_targets: list[Registration] = field(default_factory=list)
    del_tails: list[bytes] = field(default_factory=list)


class PushPlanner:
    def __init__(self, live: OrderedDict[str, Registration], by_key: dict[str, Registration],
                 log_size: int = 4096, pack_limit: int = DEFAULT_PACK_LIMIT,
                 del_spread: int = 0) -> None:
        self._live = live  # the directory's own tables, read only here
        self._by_key = by_key
        self.pack_limit = pack_limit
        self.del_spread = del_spread
        self.version = 0
        self._log: deque[tuple[int, str, Change]] = deque(maxlen=log_size)
        # when the additions / removals of the last broadcast happened (push latency stats)
        self.batch_times: list[float] = []
        self.batch_del_times: list[float] = []
        self._pending: dict[str, Change] = {}
        self._del_batch: _DelBatch | None = None  # removals going out a slice per push
        # catch-ups: the address is looked up when sent, in case the client moved meanwhile
        self._outgoing: list[tuple[Registration, bytes]] = []

    def has_work(self) -> bool:
        return bool(self._pending or self._outgoing or self._del_batch)

    def _current(self, reg: Registration) -> bool:
        return reg.addr is not None and self._by_key.get(reg.key) is reg

    def record(self, key: str, change: Change) -> None:
        self.version += 1
        self._log.append((self.version, key, change))
        self._pending.pop(key, None)  # keep buffer order = order of last change
        self._pending[key] = change
        if self._del_batch is not None:
            # back (or changed) before its removal reached everyone: the rest are not told
            # of the removal, only of this change (those told already get this one after it)
            self._del_batch.changes.pop(key, None)

    def catch_up(self, reg: Registration) -> None:
        """Send ``reg`` what changed since the roster it fetched (or everything, if too old)."""
        since, reg.since = reg.since, None
        assert since is not None and reg.addr is not None
        if since >= self.version:
            return
        oldest = self._log[0][0] if self._log else self.version + 1
        # the full roster when the log no longer reaches back, or when it is the cheaper one
        if since + 1 < oldest or self.version - since > 64 + 2 * len(self._live):
            adds = [r.text for r in self._live.values() if r.announced and r is not reg]
            dels: list[bytes] = []
        else:
            net: dict[str, Change] = {}
            pending = self._pending
            for version, key, change in reversed(self._log):
                if version <= since:
                    break
                if key != reg.key:
                    net.setdefault(key, change)
            # changes not pushed yet reach it with the next push (it is listed now)
            changes = [c for k, c in net.items() if pending.get(k) is not c]
            adds = [c.text for c in changes if c.entry is not None]
            dels = [c.nickname.encode() for c in changes if c.entry is None]
        for body in (pack_bodies(b"REF_DEL", dels, self.pack_limit)
                     + pack_bodies(b"REF_ADD", adds, self.pack_limit)):
            self._outgoing.append((reg, frame_bytes(reg.kw_prefix, body)))

    def iter_outgoing(self, now: float | None = None) -> Iterator[tuple[Address, bytes]]:
        """Every datagram to send now: catch-ups, then the coalesced broadcast of all changes
        buffered since the last call, packed per recipient (each in its own keyword). The work
        is taken now (later changes go to the next call) but each recipient's frames are made
        as they are consumed, so a broadcast to 10,000 clients never sits in memory at once.

        With ``now`` and ``del_spread`` = N > 0, removals travel apart from additions while
        additions are going: a batch of removals reaches 1/N of the recipients per push, after
        the REF_ADDs, so a push under churn costs each recipient about one datagram and never
        twice as much as the one before (a departed peer is harmless to list for a moment; a
        new one is news). Removals that come meanwhile wait for the next batch. Without
        additions to send, the rest of a batch goes at once; so does a lone removal."""
        direct, self._outgoing = self._outgoing, []
        changes, self._pending = self._pending, {}
        plan = _Plan()
        self._plan_removals(changes, now, plan)
        if changes:
            self._plan_changes(changes, plan)
        return self._broadcast(direct, plan)

    def _plan_removals(self, changes: dict[str, Change], now: float | None, plan: _Plan
                       ) -> None:
        """Take this push's share of a batch of removals out of ``changes`` (in place)."""
        batch = self._del_batch
        step = 0
        if now is not None and self.del_spread > 0:
            dels = {k: c for k, c in changes.items() if c.entry is None}
            if dels:
                for k in dels:
                    del changes[k]
                if batch is None:
                    batch = self._del_batch = _DelBatch(dels, list(self._live.values()))
                else:
                    self._pending.update(dels)  # the next batch
            if batch is not None:
                left = len(batch.recipients) - batch.done
                step = -(-len(batch.recipients) // self.del_spread) if changes else left
                batch.done += step
        elif batch is not None:  # everything now: the rest of the batch goes to everyone
            for k, c in batch.changes.items():
                changes.setdefault(k, c)
            batch = self._del_batch = None
        if batch is None:
            return
        plan.del_targets = batch.recipients[batch.done - step:batch.done]
        items = [c.nickname.encode() for c in batch.changes.values()]
        plan.del_tails = [frame_tail(b) for b in pack_bodies(b"REF_DEL", items, self.pack_limit)]
        if batch.done >= len(batch.recipients) or not batch.changes:
            self.batch_del_times += [c.at for c in batch.changes.values()]
            self._del_batch = None

    def _plan_changes(self, changes: dict[str, Change], plan: _Plan) -> None:
        self.batch_times = [c.at for c in changes.values() if c.entry is not None]
        self.batch_del_times += [c.at for c in changes.values() if c.entry is None]
        add_keys = [k for k, c in changes.items() if c.entry is not None]
        add_items = [changes[k].text for k in add_keys]
        del_items = [c.nickname.encode() for c in changes.values() if c.entry is None]
        del_bodies = pack_bodies(b"REF_DEL", del_items, self.pack_limit)
        add_chunks = pack_items(b"REF_ADD", add_items, body_budget(self.pack_limit))
        # which add body carries which key, so a changed recipient can be sent its own
        # rows minus itself by repacking just that one chunk
        start = 0
        for i, chunk in enumerate(add_chunks):
            keys = add_keys[start:start + len(chunk)]
            plan.chunks.append(list(zip(keys, chunk, strict=True)))
            for k in keys:
                plan.chunk_of[k] = len(del_bodies) + i
            start += len(chunk)
        add_bodies = [list_body(b"REF_ADD", chunk) for chunk in add_chunks]
        plan.tails = [frame_tail(b) for b in del_bodies + add_bodies]
        plan.n_del = len(del_bodies)
        plan.recipients = list(self._live.values())  # snapshot: a new client gets its catch-up

    def _broadcast(self, direct: list[tuple[Registration, bytes]], plan: _Plan
                   ) -> Iterator[tuple[Address, bytes]]:
        for reg, data in direct:
            if self._current(reg):
                yield reg.addr, data  # type: ignore[misc]
        # REF_ADDs to everyone first, then REF_DELs: a push to thousands takes milliseconds and
        # a new client is the news that matters (peers can talk to it). A batch holds at most
        # one change per nickname, so this order never reorders a nickname's own changes.
        tails, n_del, chunk_of = plan.tails, plan.n_del, plan.chunk_of
        for i in [*range(n_del, len(tails)), *range(n_del)]:
            tail = tails[i]
            for reg in plan.recipients:
                addr = reg.addr
                if addr is None:
                    continue
                if reg.key in chunk_of and chunk_of[reg.key] == i:
                    # its own row is in this chunk: the rest of the chunk, repacked
                    rest = [item for key, item in plan.chunks[i - n_del] if key != reg.key]
                    for body in pack_bodies(b"REF_ADD", rest, self.pack_limit):
                        yield addr, frame_bytes(reg.kw_prefix, body)
                    continue
                yield addr, reg.kw_prefix + tail
        # this push's share of a batch of removals (``del_spread``), after the rest
        for reg in plan.del_targets:
            if self._current(reg):
                for tail in plan.del_tails:
                    yield reg.addr, reg.kw_prefix + tail  # type: ignore[misc]
