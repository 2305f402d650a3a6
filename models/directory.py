"""The directory as pure logic: who is registered, who is online, what to tell whom.

No sockets, no clock, no disk: every call that depends on time takes ``now`` (monotonic
seconds); what must be sent or written is queued here and drained by the I/O edge
(``server.py``): ``take_outgoing()`` gives ``(addr, datagram)`` pairs, ``take_store_ops()``
gives the joins/leaves to write. The same code runs in unit tests with times 0, 1, 2.

Life of a registration::

    register() --(first valid PING: address known)--> announced --(QUIT | silence)--> removed
        \\--(no PING within 1 x ping_interval: squatting)--> removed

* A registration that never PINGs is freed after ``ping_interval`` (``squat_factor``).
* An announced one silent for ``liveness_factor`` x ``ping_interval`` (1.5) is removed.
* Every change goes into a coalescing buffer (``take_outgoing`` packs all buffered changes into
  as few REF_ADD/REF_DEL datagrams as possible per recipient) and into a bounded change log, so
  a new client's first PING gets the changes it missed since its ``REFERENCE?``.
* The roster digest is kept incrementally (XOR of entry hashes), so a PONG costs O(1).
"""

from __future__ import annotations

import ipaddress
import logging
import re
import secrets
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Literal

from models import nickname as nick_rules
from models.directory_wire import (
    DEFAULT_PACK_LIMIT,
    Entry,
    Ping,
    ProtocolError,
    Quit,
    Unknown,
    decode_datagram,
    encode_datagram,
    entry_hash,
    format_digest,
    is_keyword,
    pack_bodies,
)

log = logging.getLogger(__name__)

_DIGEST_TAIL = re.compile(rb"[0-9a-f]{16}")  # matched from after "PING nick "

Address = tuple[str, int]
StoreOp = tuple[Literal["addr"], str, str, str, int] | tuple[Literal["del"], str, str]


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def new_keyword() -> str:
    """24 URL-safe characters, 144 bits from ``secrets``."""
    return secrets.token_urlsafe(18)


@dataclass(eq=False, slots=True)
class Registration:
    nickname: str  # display form, as stored and listed
    key: str  # canonical form: uniqueness and comparisons
    keyword: str
    deadline: float
    addr: Address | None = None  # UDP source of its PINGs; None until the first one
    announced: bool = False
    hash: int = 0  # entry_hash of its listed entry while announced
    since: int | None = None  # directory version of the roster it fetched, until caught up
    kw_prefix: bytes = b""
    text: bytes = b""  # "nickname host port" as it appears in REFERENCE / REF_ADD
    ping_body: bytes = b""  # b"PING nickname": what its PINGs carry after ``len``

    def entry(self) -> Entry:
        assert self.addr is not None
        return Entry(self.nickname, self.addr[0], self.addr[1])


@dataclass
class Stats:
    datagrams: int = 0
    pings: int = 0
    quits: int = 0
    pongs: int = 0
    bad_datagrams: int = 0  # framing, length, encoding, unknown command
    unknown_keyword: int = 0
    unknown_replies: int = 0
    unknown_throttled: int = 0
    nick_mismatch: int = 0
    joins: int = 0
    leaves: int = 0
    timeouts: int = 0
    squatters: int = 0
    registrations: int = 0
    reclaims: int = 0
    sent: int = 0

    @property
    def dropped(self) -> int:
        return (self.bad_datagrams + self.unknown_keyword + self.nick_mismatch
                - self.unknown_replies)


class TokenBucket:
    """``rate`` tokens/s, at most ``burst`` banked. Pure: the caller passes the time."""

    __slots__ = ("rate", "burst", "tokens", "stamp")

    def __init__(self, rate: float, burst: float, now: float = 0.0) -> None:
        self.rate, self.burst = rate, burst
        self.tokens, self.stamp = burst, now

    def take(self, now: float, cost: float = 1.0) -> bool:
        if now > self.stamp:
            self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
            self.stamp = now
        if self.tokens >= cost:
            self.tokens -= cost
            return True
        return False


class KeyedRateLimiter:
    """One token bucket per key (source IP), at most ``max_keys`` remembered (oldest forgotten)."""

    def __init__(self, rate: float, burst: float, max_keys: int = 4096) -> None:
        self.rate, self.burst, self.max_keys = rate, burst, max_keys
        self._buckets: OrderedDict[str, TokenBucket] = OrderedDict()

    def allow(self, key: str, now: float) -> bool:
        if self.rate <= 0:
            return True  # disabled
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = TokenBucket(self.rate, self.burst, now)
            if len(self._buckets) > self.max_keys:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(key)
        return bucket.take(now)


class Refused(ProtocolError):
    """A request the directory will not honour; becomes ``ERROR CODE text``."""


@dataclass
class _Change:
    nickname: str
    entry: Entry | None  # None: removed
    at: float = 0.0  # when it happened (``now``), to measure how long the push took
    text: bytes = b""  # the row as encoded on the wire (adds only)


@dataclass
class _DelBatch:
    """Removals going out to ``recipients[:done]`` so far, a slice per push."""

    changes: dict[str, _Change]
    recipients: list[Registration]
    done: int = 0


@dataclass
class Directory:
    ping_interval: float
    liveness_factor: float = 1.5
    squat_factor: float = 1.0
    log_size: int = 4096
    pack_limit: int = DEFAULT_PACK_LIMIT
    unknown_rate: float = 50.0  # UNKNOWN replies per second, whole server
    unknown_burst: float = 50.0
    del_spread: int = 0  # pushes a batch of removals is spread over, under churn (0: off)
    make_keyword: Callable[[], str] = new_keyword
    stats: Stats = field(default_factory=Stats)

    def __post_init__(self) -> None:
        self.by_key: dict[str, Registration] = {}
        self.by_keyword: dict[str, Registration] = {}
        self._by_kw_bytes: dict[bytes, Registration] = {}  # the same, for the PING fast path
        # deadline order = insertion order, so expiry pops from the front in O(1) per client
        self._live: OrderedDict[str, Registration] = OrderedDict()
        self._unconfirmed: OrderedDict[str, Registration] = OrderedDict()
        self.version = 0
        self._log: deque[tuple[int, str, _Change]] = deque(maxlen=self.log_size)
        self._digest = 0
        self._ref_cache: tuple[int, bytes] | None = None
        # when the additions / removals of the last broadcast happened (push latency stats)
        self.batch_times: list[float] = []
        self.batch_del_times: list[float] = []
        self._pending: dict[str, _Change] = {}
        self._del_batch: _DelBatch | None = None  # removals going out a slice per push
        # catch-ups: the address is looked up when sent, in case the client moved meanwhile
        self._outgoing: list[tuple[Registration, bytes]] = []
        self._store_ops: list[StoreOp] = []
        self._unknown_bucket = TokenBucket(self.unknown_rate, self.unknown_burst)
        self.timeout = self.liveness_factor * self.ping_interval
        self.squat_timeout = self.squat_factor * self.ping_interval

    # ------------------------------------------------------------ queries

    def __len__(self) -> int:
        return len(self.by_key)

    @property
    def online(self) -> int:
        return len(self._live)

    def digest_for(self, reg: Registration | None) -> str:
        """Digest of the roster ``reg`` should hold: every announced client but itself."""
        return format_digest(self._digest ^ (reg.hash if reg is not None else 0))

    def reference(self, reg: Registration | None, now: float) -> tuple[Entry, ...]:
        """The announced clients (but ``reg``); remembers the version for ``reg``'s catch-up."""
        if reg is not None and self.by_key.get(reg.key) is reg:
            reg.since = self.version
        return tuple(r.entry() for r in self._live.values() if r.announced and r is not reg)

    def reference_line(self, reg: Registration | None, now: float) -> bytes:
        """``reference()`` encoded as the ``REFERENCE n ...\n`` line, built from each row's
        cached text (and reused while nothing changes): with 10,000 online, a registration
        must not cost 10,000 encodings."""
        if reg is not None and self.by_key.get(reg.key) is reg:
            reg.since = self.version
        if reg is not None and reg.announced:  # a reclaim: everyone but itself
            texts = [r.text for r in self._live.values() if r.announced and r is not reg]
            return b"REFERENCE %d %s\n" % (len(texts), b" ".join(texts)) if texts \
                else b"REFERENCE 0\n"
        if self._ref_cache is None or self._ref_cache[0] != self.version:
            texts = [r.text for r in self._live.values() if r.announced]
            line = b"REFERENCE %d %s\n" % (len(texts), b" ".join(texts)) if texts \
                else b"REFERENCE 0\n"
            self._ref_cache = (self.version, line)
        return self._ref_cache[1]

    def has_work(self) -> bool:
        """Something to send (``take_outgoing``) or to write (``take_store_ops``)."""
        return bool(self._pending or self._outgoing or self._store_ops or self._del_batch)

    # ------------------------------------------------------------ start-up

    def load(self, rows: Iterable[tuple[str, str, str | None, int | None]], now: float) -> int:
        """Rows ``(nickname, keyword, host, port)`` from storage; each gets a fresh deadline.

        Rows with an address are listed at once (their owners are presumably still PINGing);
        the rest wait for a first PING like a new registration. Invalid or duplicate rows are
        skipped and queued for deletion. Returns how many were loaded.
        """
        count = 0
        for nickname, keyword, host, port in rows:
            try:
                display, key = nick_rules.normalize(nickname)
            except ProtocolError:
                display = key = ""
            if (not key or display != nickname or key in self.by_key
                    or not is_keyword(keyword) or keyword in self.by_keyword):
                log.warning("dropping unusable stored row for %r", nickname)
                self._store_ops.append(("del", nickname, keyword))
                continue
            reg = Registration(display, key, keyword, 0.0)
            reg.kw_prefix = keyword.encode("ascii")
            reg.ping_body = b"PING " + display.encode()
            self._by_kw_bytes[reg.kw_prefix] = reg
            self.by_key[key] = reg
            self.by_keyword[keyword] = reg
            if isinstance(host, str) and _is_ip(host) and type(port) is int and 0 < port < 65536:
                reg.addr = (host, port)
                reg.announced = True
                reg.hash = entry_hash(reg.entry())
                reg.text = f"{display} {host} {port}".encode()
                self._digest ^= reg.hash
                self.version += 1  # the cached REFERENCE line is stale
                reg.deadline = now + self.timeout
                self._live[keyword] = reg
            else:
                reg.deadline = now + self.squat_timeout
                self._unconfirmed[keyword] = reg
            count += 1
        return count

    # ------------------------------------------------------------ TCP: registration

    def register(self, raw_nickname: str, keyword: str | None, now: float
                 ) -> tuple[Registration, bool]:
        """``CONNECT nickname [keyword]`` -> ``(registration, reclaimed)``. Raises ``Refused``.

        A new registration is reserved at once (so of two racers exactly one wins) but not
        announced until its first PING. With the right keyword, an existing registration is
        reclaimed: same keyword, liveness refreshed, nothing announced.
        """
        try:
            display, key = nick_rules.normalize(raw_nickname)
        except ProtocolError as exc:
            raise Refused("BAD_NICK", exc.text) from None
        reg = self.by_key.get(key)
        if reg is not None:
            if keyword is None or not secrets.compare_digest(keyword, reg.keyword):
                raise Refused("NICK_TAKEN", f"nickname {display} is taken")
            self._touch(reg, now)
            self.stats.reclaims += 1
            return reg, True
        new_kw = self.make_keyword()
        while new_kw in self.by_keyword:  # never with secrets; cheap insurance for tests
            new_kw = self.make_keyword()
        reg = Registration(display, key, new_kw, now + self.squat_timeout)
        reg.kw_prefix = new_kw.encode("ascii")
        reg.ping_body = b"PING " + display.encode()
        self._by_kw_bytes[reg.kw_prefix] = reg
        self.by_key[key] = reg
        self.by_keyword[new_kw] = reg
        self._unconfirmed[new_kw] = reg
        self.stats.registrations += 1
        return reg, False

    def cancel(self, reg: Registration) -> None:
        """Undo a registration whose storage write failed (nothing was announced)."""
        if self.by_key.get(reg.key) is reg and not reg.announced:
            self._drop(reg)

    def _touch(self, reg: Registration, now: float) -> None:
        if reg.announced:
            reg.deadline = now + self.timeout
            self._live.move_to_end(reg.keyword)
        else:
            reg.deadline = now + self.squat_timeout
            self._unconfirmed.move_to_end(reg.keyword)

    # ------------------------------------------------------------ UDP

    def on_datagram(self, data: bytes, addr: Address, now: float) -> bytes | None:
        """Handle one datagram from ``addr``; returns the immediate reply, if any.

        Only PING and QUIT are accepted from clients; everything else is counted and dropped.
        """
        self.stats.datagrams += 1
        # Fast path for what nearly every datagram is: a PING with a known keyword and the
        # exact nickname. Anything else takes the full decoder below, same outcome.
        parts = data.split(b" ", 2)
        if len(parts) == 3:
            reg = self._by_kw_bytes.get(parts[0])
            if reg is not None:
                body = parts[2]
                plain = reg.ping_body
                if body.startswith(plain) and parts[1] == b"%d" % len(body):
                    if len(body) == len(plain):
                        self.stats.pings += 1
                        return self._on_ping(reg, False, addr, now)
                    if body[len(plain)] == 0x20 and _DIGEST_TAIL.fullmatch(body, len(plain) + 1):
                        self.stats.pings += 1
                        return self._on_ping(reg, True, addr, now)
        try:
            msg = decode_datagram(data)
        except ProtocolError:
            self.stats.bad_datagrams += 1
            return None
        kind = type(msg)
        if kind is Ping:
            return self.ping(msg, addr, len(data), now)  # type: ignore[arg-type]
        if kind is Quit:
            self.quit(msg, now)  # type: ignore[arg-type]
            return None
        self.stats.bad_datagrams += 1  # server -> client messages are not accepted here
        return None

    def _authentic(self, keyword: str, nickname: str) -> Registration | None:
        reg = self.by_keyword.get(keyword)
        if reg is None:
            self.stats.unknown_keyword += 1
            return None
        if nickname != reg.nickname:
            try:
                same = nick_rules.canonical(nickname) == reg.key
            except ProtocolError:
                same = False
            if not same:
                self.stats.nick_mismatch += 1
                return None
        return reg

    def ping(self, msg: Ping, addr: Address, size: int, now: float) -> bytes | None:
        """A PING of ``size`` bytes from ``addr``: liveness, address, PONG or UNKNOWN reply."""
        self.stats.pings += 1
        reg = self._authentic(msg.keyword, msg.nickname)
        if reg is None:
            if msg.keyword in self.by_keyword:
                return None  # known keyword, wrong nickname: silently dropped
            reply = encode_datagram(Unknown(msg.keyword))
            # never larger than what provoked it, and globally rate-limited: no reflector
            if len(reply) <= size and self._unknown_bucket.take(now):
                self.stats.unknown_replies += 1
                return reply
            self.stats.unknown_throttled += 1
            return None
        return self._on_ping(reg, msg.digest is not None, addr, now)

    def _on_ping(self, reg: Registration, pong: bool, addr: Address, now: float
                 ) -> bytes | None:
        """An authentic PING: liveness, address, catch-up; the PONG if asked for."""
        if not reg.announced:
            self._unconfirmed.pop(reg.keyword, None)
            self._live[reg.keyword] = reg
            reg.deadline = now + self.timeout
            self._set_address(reg, addr, now)
        else:
            reg.deadline = now + self.timeout
            self._live.move_to_end(reg.keyword)
            if addr != reg.addr and (addr[0], addr[1]) != reg.addr:  # IPv6 gives 4-tuples
                self._set_address(reg, addr, now)
        if reg.since is not None:
            self._catch_up(reg)
        if not pong:
            return None
        self.stats.pongs += 1
        # == encode_datagram(Pong(keyword, digest)); "PONG " + 16 hex digits is always 21 bytes
        return b"%s 21 PONG %016x" % (reg.kw_prefix, self._digest ^ reg.hash)

    def quit(self, msg: Quit, now: float) -> Registration | None:
        self.stats.quits += 1
        reg = self._authentic(msg.keyword, msg.nickname)
        if reg is None:
            return None
        self._remove(reg, "quit", now)
        return reg

    # ------------------------------------------------------------ time

    def expire(self, now: float) -> list[tuple[Registration, str]]:
        """Remove the silent ones; returns ``(registration, reason)`` for each."""
        gone: list[tuple[Registration, str]] = []
        for table, reason in ((self._unconfirmed, "no PING"), (self._live, "timeout")):
            while table:
                reg = next(iter(table.values()))
                if reg.deadline > now:
                    break
                self._remove(reg, reason, now)
                gone.append((reg, reason))
        return gone

    def next_deadline(self) -> float | None:
        heads = [next(iter(t.values())).deadline for t in (self._unconfirmed, self._live) if t]
        return min(heads, default=None)

    # ------------------------------------------------------------ changes

    def _set_address(self, reg: Registration, addr: Address, now: float) -> None:
        first = not reg.announced
        if reg.announced:
            self._digest ^= reg.hash
        reg.addr = (addr[0], addr[1])
        reg.announced = True
        entry = reg.entry()
        reg.text = f"{entry.nickname} {entry.host} {entry.port}".encode()
        reg.hash = entry_hash(entry)
        self._digest ^= reg.hash
        self._record(reg.key, _Change(reg.nickname, entry, now, reg.text))
        self._store_ops.append(("addr", reg.nickname, reg.keyword, entry.host, entry.port))
        if first:
            self.stats.joins += 1
            log.info("join %s %s:%d", reg.nickname, entry.host, entry.port)
        else:
            log.info("moved %s %s:%d", reg.nickname, entry.host, entry.port)

    def _drop(self, reg: Registration) -> None:
        del self.by_key[reg.key]
        del self.by_keyword[reg.keyword]
        del self._by_kw_bytes[reg.kw_prefix]
        self._live.pop(reg.keyword, None)
        self._unconfirmed.pop(reg.keyword, None)

    def _remove(self, reg: Registration, reason: str, now: float) -> None:
        self._drop(reg)
        self._store_ops.append(("del", reg.nickname, reg.keyword))
        if reg.announced:
            self._digest ^= reg.hash
            reg.announced = False
            self._record(reg.key, _Change(reg.nickname, None, now))
            self.stats.leaves += 1
            if reason == "timeout":
                self.stats.timeouts += 1
            log.info("leave %s (%s)", reg.nickname, reason)
        else:
            if reason == "no PING":
                self.stats.squatters += 1
            log.info("freed %s (%s)", reg.nickname, reason)

    def _record(self, key: str, change: _Change) -> None:
        self.version += 1
        self._log.append((self.version, key, change))
        self._pending.pop(key, None)  # keep buffer order = order of last change
        self._pending[key] = change
        if self._del_batch is not None:
            # back (or changed) before its removal reached everyone: the rest are not told
            # of the removal, only of this change (those told already get this one after it)
            self._del_batch.changes.pop(key, None)

    def _catch_up(self, reg: Registration) -> None:
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
            net: dict[str, _Change] = {}
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
            self._outgoing.append((reg, self._frame(reg, body)))

    @staticmethod
    def _frame(reg: Registration, body: bytes) -> bytes:
        return b"%s %d %s" % (reg.kw_prefix, len(body), body)

    def take_store_ops(self) -> list[StoreOp]:
        ops, self._store_ops = self._store_ops, []
        return ops

    def take_outgoing(self) -> list[tuple[Address, bytes]]:
        """Every datagram to send now: catch-ups, then the coalesced broadcast of all changes
        buffered since the last call, packed per recipient (each in its own keyword)."""
        return list(self.iter_outgoing())

    def iter_outgoing(self, now: float | None = None) -> Iterator[tuple[Address, bytes]]:
        """``take_outgoing`` built lazily: the work is taken now (later changes go to the next
        call) but each recipient's frames are made as they are consumed, so a broadcast to
        10,000 clients never sits in memory at once.

        With ``now`` and ``del_spread`` = N > 0, removals travel apart from additions while
        additions are going: a batch of removals reaches 1/N of the recipients per push, after
        the REF_ADDs, so a push under churn costs each recipient about one datagram and never
        twice as much as the one before (a departed peer is harmless to list for a moment; a
        new one is news). Removals that come meanwhile wait for the next batch. Without
        additions to send, the rest of a batch goes at once; so does a lone removal."""
        direct, self._outgoing = self._outgoing, []
        changes, self._pending = self._pending, {}
        batch = self._del_batch
        if now is not None and self.del_spread > 0:
            dels = {k: c for k, c in changes.items() if c.entry is None}
            if dels:
                changes = {k: c for k, c in changes.items() if c.entry is not None}
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
        del_targets: list[Registration] = []
        del_tails: list[bytes] = []
        if batch is not None:
            del_targets = batch.recipients[batch.done - step:batch.done]
            items = [c.nickname.encode() for c in batch.changes.values()]
            del_tails = [b" %d %s" % (len(b), b) for b in pack_bodies(b"REF_DEL", items,
                                                                       self.pack_limit)]
            if batch.done >= len(batch.recipients) or not batch.changes:
                self.batch_del_times += [c.at for c in batch.changes.values()]
                self._del_batch = None
        if not changes:
            return self._broadcast(direct, [], [], {}, [], 0, del_targets, del_tails)
        self.batch_times = [c.at for c in changes.values() if c.entry is not None]
        self.batch_del_times += [c.at for c in changes.values() if c.entry is None]
        add_keys = [k for k, c in changes.items() if c.entry is not None]
        add_items = [changes[k].text for k in add_keys]
        del_items = [c.nickname.encode() for c in changes.values() if c.entry is None]
        del_bodies = pack_bodies(b"REF_DEL", del_items, self.pack_limit)
        add_bodies = pack_bodies(b"REF_ADD", add_items, self.pack_limit)
        # which add body carries which key, so a changed recipient can be sent its own
        # rows minus itself by repacking just that one chunk
        chunk_of: dict[str, int] = {}
        chunks: list[list[tuple[str, bytes]]] = []
        start = 0
        for i, body in enumerate(add_bodies):
            n = int(body.split(b" ", 2)[1])
            chunks.append(list(zip(add_keys[start:start + n], add_items[start:start + n],
                                   strict=True)))
            for k in add_keys[start:start + n]:
                chunk_of[k] = len(del_bodies) + i
            start += n
        tails = [b" %d %s" % (len(b), b) for b in del_bodies + add_bodies]
        recipients = list(self._live.values())  # snapshot: a new client gets its catch-up
        return self._broadcast(direct, recipients, tails, chunk_of, chunks, len(del_bodies),
                               del_targets, del_tails)

    def _broadcast(self, direct: list[tuple[Registration, bytes]], recipients: list[Registration],
                   tails: list[bytes], chunk_of: dict[str, int],
                   chunks: list[list[tuple[str, bytes]]],
                   n_del: int, del_targets: list[Registration] = [],  # noqa: B006
                   del_tails: list[bytes] = []) -> Iterator[tuple[Address, bytes]]:  # noqa: B006
        for reg, data in direct:
            if reg.addr is not None and self.by_key.get(reg.key) is reg:
                yield reg.addr, data
        # REF_ADDs to everyone first, then REF_DELs: a push to thousands takes milliseconds and
        # a new client is the news that matters (peers can talk to it). A batch holds at most
        # one change per nickname, so this order never reorders a nickname's own changes.
        for i in [*range(n_del, len(tails)), *range(n_del)]:
            tail = tails[i]
            for reg in recipients:
                addr = reg.addr
                if addr is None:
                    continue
                if reg.key in chunk_of and chunk_of[reg.key] == i:
                    # its own row is in this chunk: the rest of the chunk, repacked
                    rest = [item for key, item in chunks[i - n_del] if key != reg.key]
                    for body in pack_bodies(b"REF_ADD", rest, self.pack_limit):
                        yield addr, self._frame(reg, body)
                    continue
                yield addr, reg.kw_prefix + tail
        # this push's share of a batch of removals (``del_spread``), after the rest
        for reg in del_targets:
            if reg.addr is not None and self.by_key.get(reg.key) is reg:
                for tail in del_tails:
                    yield reg.addr, reg.kw_prefix + tail
