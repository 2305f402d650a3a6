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
* Every change goes to the push planner (``models.directory_push``): a coalescing buffer
  (``take_outgoing`` packs all buffered changes into as few REF_ADD/REF_DEL datagrams as
  possible per recipient) and a bounded change log, so a new client's first PING gets the
  changes it missed since its ``REFERENCE?``.
* Log lines anyone can cause (join, leave, freed, moved) go through a ``LogBudget``.
* The roster digest is kept incrementally (XOR of entry hashes), so a PONG costs O(1).
"""

from __future__ import annotations

import ipaddress
import logging
import re
import secrets
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

from models import nickname as nick_rules
from models.dirauth import ServerAuth
from models.directory_bytes import (
    entry_text,
    format_digest,
    ping_body,
    pong_datagram,
    reference_line,
    text_hash,
)
from models.directory_push import Change, PushPlanner
from models.directory_wire import (
    DEFAULT_PACK_LIMIT,
    Auth,
    Entry,
    Ping,
    ProtocolError,
    Quit,
    Rekey,
    Unknown,
    decode_datagram,
    encode_datagram,
    is_keyword,
)
from models.ratelimit import KeyedRateLimiter, LogBudget, TokenBucket
from models.registration import Address, Registration, Stats, StoreOp, new_keyword

__all__ = ["Directory", "KeyedRateLimiter", "Refused", "Registration", "Stats", "StoreOp",
           "TokenBucket", "new_keyword"]

log = logging.getLogger(__name__)

_DIGEST_TAIL = re.compile(rb"[0-9a-f]{16}")  # matched from after "PING nick "
_AUTH_TAIL = re.compile(rb"(0|[1-9][0-9]{0,18})\.[A-Za-z0-9_-]{22}")  # after " #"

# per-event lines anyone can cause by registering: the first few per window, then a count
_LOG_SUMMARIES = {
    "join": "... and {n} more joins in the last {window} s",
    "moved": "... and {n} more clients moved in the last {window} s",
    "leave": "... and {n} more leaves in the last {window} s",
    "freed": "freed {n} more registrations that never PINGed in the last {window} s",
}


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


class Refused(ProtocolError):
    """A request the directory will not honour; becomes ``ERROR CODE text``."""


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
    log_window: float = 10.0  # seconds: per-event log lines beyond a few are summarised
    make_keyword: Callable[[], str] = new_keyword
    stats: Stats = field(default_factory=Stats)

    def __post_init__(self) -> None:
        self.by_key: dict[str, Registration] = {}
        self.by_keyword: dict[str, Registration] = {}
        self._by_kw_bytes: dict[bytes, Registration] = {}  # the same, for the PING fast path
        # deadline order = insertion order, so expiry pops from the front in O(1) per client
        self._live: OrderedDict[str, Registration] = OrderedDict()
        self._unconfirmed: OrderedDict[str, Registration] = OrderedDict()
        self._digest = 0
        self._ref_cache: tuple[int, bytes] | None = None
        self.push = PushPlanner(self._live, self.by_key, self.log_size, self.pack_limit,
                                self.del_spread)
        self.log_budget = LogBudget(log, _LOG_SUMMARIES, window=self.log_window)
        self._store_ops: list[StoreOp] = []
        self._unknown_bucket = TokenBucket(self.unknown_rate, self.unknown_burst)
        self.timeout = self.liveness_factor * self.ping_interval
        self.squat_timeout = self.squat_factor * self.ping_interval

    # ------------------------------------------------------------ queries

    def __len__(self) -> int:
        return len(self.by_key)

    @property
    def version(self) -> int:
        """Bumped by every change: a fetched roster's version, for its catch-up."""
        return self.push.version

    @property
    def batch_times(self) -> list[float]:
        return self.push.batch_times

    @property
    def batch_del_times(self) -> list[float]:
        return self.push.batch_del_times

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
            return reference_line([r.text for r in self._live.values()
                                   if r.announced and r is not reg])
        if self._ref_cache is None or self._ref_cache[0] != self.version:
            line = reference_line([r.text for r in self._live.values() if r.announced])
            self._ref_cache = (self.version, line)
        return self._ref_cache[1]

    def has_work(self) -> bool:
        """Something to send (``take_outgoing``) or to write (``take_store_ops``)."""
        return bool(self._store_ops) or self.push.has_work()

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
            reg.ping_body = ping_body(display)
            self._by_kw_bytes[reg.kw_prefix] = reg
            self.by_key[key] = reg
            self.by_keyword[keyword] = reg
            if isinstance(host, str) and _is_ip(host) and type(port) is int and 0 < port < 65536:
                reg.addr = (host, port)
                reg.announced = True
                reg.text = entry_text(display, host, port)
                reg.hash = text_hash(reg.text)
                self._digest ^= reg.hash
                self._ref_cache = None
                reg.deadline = now + self.timeout
                self._live[keyword] = reg
            else:
                reg.deadline = now + self.squat_timeout
                self._unconfirmed[keyword] = reg
            count += 1
        return count

    # ------------------------------------------------------------ TCP: registration

    def register(self, raw_nickname: str, keyword: str | None, now: float,
                 x25519: str | None = None, proof: Auth | None = None
                 ) -> tuple[Registration, bool]:
        """``CONNECT nickname [keyword]`` -> ``(registration, reclaimed)``. Raises ``Refused``.

        A new registration is reserved at once (so of two racers exactly one wins) but not
        announced until its first PING. With the right keyword, an existing registration is
        reclaimed: same keyword, liveness refreshed, nothing announced. A registration using
        the MAC extension is reclaimed only with a new key (``x25519``) and a ``proof`` made
        with its current key: its keyword alone, seen by any sniffer, is not enough.
        """
        try:
            display, key = nick_rules.normalize(raw_nickname)
        except ProtocolError as exc:
            raise Refused("BAD_NICK", exc.text) from None
        reg = self.by_key.get(key)
        if reg is not None:
            if keyword is None or not secrets.compare_digest(keyword, reg.keyword):
                raise Refused("NICK_TAKEN", f"nickname {display} is taken")
            if reg.auth is not None and (
                    x25519 is None or not reg.auth.check_proof(reg.keyword, x25519, proof)):
                self.stats.bad_mac += 1
                raise Refused("AUTH_REQUIRED", "this registration uses the MAC extension: "
                                               "reclaim it with x25519= and proof=")
            self._touch(reg, now)
            self.stats.reclaims += 1
            return reg, True
        new_kw = self.make_keyword()
        while new_kw in self.by_keyword:  # never with secrets; cheap insurance for tests
            new_kw = self.make_keyword()
        reg = Registration(display, key, new_kw, now + self.squat_timeout)
        reg.kw_prefix = new_kw.encode("ascii")
        reg.ping_body = ping_body(display)
        self._by_kw_bytes[reg.kw_prefix] = reg
        self.by_key[key] = reg
        self.by_keyword[new_kw] = reg
        self._unconfirmed[new_kw] = reg
        self.stats.registrations += 1
        return reg, False

    def set_auth(self, reg: Registration, auth: ServerAuth) -> None:
        """From now on only MACed PINGs/QUITs with fresh counters count for ``reg``."""
        reg.auth = auth

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
            if reg is not None and reg.auth is not None:
                reply = self._authed_ping(reg, parts, addr, now)
                if reply is not False:
                    return reply  # type: ignore[return-value]
            elif reg is not None:
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

    def _authed_ping(self, reg: Registration, parts: list[bytes], addr: Address, now: float
                     ) -> bytes | None | bool:
        """The fast path for a MACed PING with the exact nickname: checked on the raw bytes,
        no decoding. False: not that shape, take the full decoder (same outcome)."""
        body = parts[2]
        i = body.rfind(b" #")
        if i < 0 or parts[1] != b"%d" % len(body):
            return False
        m = _AUTH_TAIL.fullmatch(body, i + 2)
        plain, n = reg.ping_body, len(reg.ping_body)
        if m is None or not (i == n or (i == n + 17 and body[n] == 0x20
                                         and _DIGEST_TAIL.fullmatch(body, n + 1, i))):
            return False
        if not body.startswith(plain):
            return False
        self.stats.pings += 1
        dot = m.end(1)
        assert reg.auth is not None
        if not reg.auth.check_raw(b"%s %s" % (parts[0], body[:dot]), int(m.group(1)),
                                  body[dot + 1:]):
            self.stats.bad_mac += 1
            return None
        return self._on_ping(reg, i != n, addr, now)

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

    def _verified(self, reg: Registration, msg: Ping | Quit) -> bool:
        """With the MAC extension in use, only a valid MAC with a fresh counter counts."""
        if reg.auth is None or reg.auth.check(msg):
            return True
        self.stats.bad_mac += 1
        return False

    def _small_reply(self, reply: bytes, size: int, now: float) -> bytes | None:
        """UNKNOWN / REKEY: never larger than what provoked it, and globally rate-limited,
        so the server is no reflector."""
        if len(reply) <= size and self._unknown_bucket.take(now):
            self.stats.unknown_replies += 1
            return reply
        self.stats.unknown_throttled += 1
        return None

    def ping(self, msg: Ping, addr: Address, size: int, now: float) -> bytes | None:
        """A PING of ``size`` bytes from ``addr``: liveness, address, PONG or UNKNOWN reply."""
        self.stats.pings += 1
        reg = self._authentic(msg.keyword, msg.nickname)
        if reg is None:
            if msg.keyword in self.by_keyword:
                return None  # known keyword, wrong nickname: silently dropped
            return self._small_reply(encode_datagram(Unknown(msg.keyword)), size, now)
        if not self._verified(reg, msg):
            return None
        reply = self._on_ping(reg, msg.digest is not None, addr, now)
        if msg.auth is not None and reg.auth is None:  # we lost its key (a restart)
            return self._small_reply(encode_datagram(Rekey(msg.keyword)), size, now)
        return reply

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
            self.push.catch_up(reg)
        if not pong:
            return None
        self.stats.pongs += 1
        return pong_datagram(reg.kw_prefix, self._digest ^ reg.hash)

    def quit(self, msg: Quit, now: float) -> Registration | None:
        self.stats.quits += 1
        reg = self._authentic(msg.keyword, msg.nickname)
        if reg is None or not self._verified(reg, msg):
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
        self.log_budget.flush(now)
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
        reg.text = entry_text(entry.nickname, entry.host, entry.port)
        reg.hash = text_hash(reg.text)
        self._digest ^= reg.hash
        self.push.record(reg.key, Change(reg.nickname, entry, now, reg.text))
        self._store_ops.append(("addr", reg.nickname, reg.keyword, entry.host, entry.port))
        if first:
            self.stats.joins += 1
            self.log_budget.log("join", now, "join %s %s:%d", reg.nickname, entry.host,
                                entry.port)
        else:
            self.log_budget.log("moved", now, "moved %s %s:%d", reg.nickname, entry.host,
                                entry.port)

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
            self.push.record(reg.key, Change(reg.nickname, None, now))
            self.stats.leaves += 1
            if reason == "timeout":
                self.stats.timeouts += 1
            self.log_budget.log("leave", now, "leave %s (%s)", reg.nickname, reason)
        else:
            if reason == "no PING":
                self.stats.squatters += 1
            self.log_budget.log("freed", now, "freed %s (%s)", reg.nickname, reason)

    def take_store_ops(self) -> list[StoreOp]:
        ops, self._store_ops = self._store_ops, []
        return ops

    def take_outgoing(self) -> list[tuple[Address, bytes]]:
        """Every datagram to send now: catch-ups, then the coalesced broadcast of all changes
        buffered since the last call, packed per recipient (each in its own keyword)."""
        return list(self.iter_outgoing())

    def iter_outgoing(self, now: float | None = None) -> Iterator[tuple[Address, bytes]]:
        """``take_outgoing`` built lazily; see ``PushPlanner.iter_outgoing``."""
        return self.push.iter_outgoing(now)
