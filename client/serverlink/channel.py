"""The server channel, sans-IO: what we say to the directory over UDP and what we make of its
answers. The engine feeds it datagrams from the server's address and the clock; it hands back
datagrams for the server, events (roster changes, server lost/back, registered again) and
requests to register over TCP again, which the engine runs in a worker and answers with
``on_registered``. No sockets, threads or clocks here (docs/PROTOCOL.md section 5).

- A PING (with our roster digest) every ping_interval/3; one still unanswered after
  ping_interval/RETRY_DIVISOR is repeated at once.
- Two PONGs in a row with another digest than ours -> re-fetch the roster (lost pushes).
- No PONG for LOST_AFTER ping intervals -> ``ServerLost``; keep PINGing, reclaim over TCP with
  backoff; the first PONG or successful reclaim -> ``ServerBack``.
- ``UNKNOWN`` or a reclaim answering with a new keyword -> registered again (``Reregistered``);
  peers missing from the fresh roster stay listed as ghosts for a while.
- MAC extension (``models.dirauth``; optional): when the registration agreed a key, every PING
  and QUIT carries ``#counter.mac``, so a sniffer cannot forge our QUIT; every registration
  again offers a new key and proves the current one (a reclaim needs that proof). ``REKEY``
  (the server restarted and lost our key) -> reclaim at once, at most once per ping interval.
  A server that refuses ``x25519=`` is spoken to in the design's plain messages from then on.
  ``SaveSession`` asks the engine to save the keyword and the MAC key and counter.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from client import events as ev
from client.errors import RegistrationError
from client.serverlink.roster import Changes, PeerRoster
from models import directory_wire as wire
from models.dirauth import ClientAuth
from models.errors import ProtocolError

log = logging.getLogger(__name__)

PINGS_PER_INTERVAL = 3
# A PING still unanswered after ping_interval/RETRY_DIVISOR is repeated at once (and so on): under
# 20% loss each way a PING/PONG round trip fails 36% of the time, and a server that is there must
# not be declared lost by chance (0.36**14 ~ 1e-6 in the 2/3 interval before it would be).
RETRY_DIVISOR = 20
LOST_AFTER = 1.0  # ping intervals without a PONG before the server counts as lost
RECLAIM_BACKOFF_MAX = 60.0
GHOST_GRACE = 3.0  # ping intervals a peer missing after a re-registration stays listed
# ping intervals a peer missing from a re-fetched roster stays listed: a server restarted on its
# database may not have had the peer's address on disk yet and lists it again at its next PING
REFETCH_GRACE = 1.0
BAD_DIGESTS_BEFORE_REFETCH = 2
TRANSIENT_CODES = ("THROTTLED", "STORAGE")  # refusals that only mean "try again later"
# the saved session's MAC counter is refreshed this often: a restarted client jumps its counter
# ahead by ClientAuth.restore's margin (2**20), which must cover what was sent since the save
SAVE_EVERY = 1 << 16


@dataclass(frozen=True)
class Enrollment:
    """What a registration over TCP (first, reclaim, re-fetch) gave us; what the channel
    starts from and is handed back by ``on_registered``."""

    keyword: str
    nickname: str  # as the directory knows us (display form)
    ping_interval: float
    roster: tuple[tuple[str, str, int], ...]  # (nickname, ip, port), may include ourselves
    reclaimed: bool  # the server gave our old keyword back
    extended: bool  # the server speaks the extensions (INFO?, PONG)
    x25519: str | None = None  # MAC extension: the server's key in its KEYWORD reply
    plain_only: bool = False  # the server refused our x25519= (a design-only server)


@dataclass(frozen=True)
class RegisterAgain:
    """Ask the engine to run ``register(server, nickname, keyword=keyword, timeout=timeout)``
    off its thread and hand the outcome to ``on_registered``. ``reason``: refetch (our keyword:
    the roster only), reregister (the server forgot us) or reclaim (the server was lost)."""

    reason: str
    nickname: str
    keyword: str
    timeout: float
    offer: wire.Connect | None = None  # MAC extension: the CONNECT to try first (new key, proof)


@dataclass(frozen=True)
class RosterChanged:
    changes: Changes


@dataclass(frozen=True)
class SaveSession:
    """The keyword or the MAC key or counter moved on: save the session (``mac_state()``)."""


ChannelEvent = (ev.ServerLost | ev.ServerBack | ev.Reregistered | ev.Fatal | RosterChanged
                | RegisterAgain | SaveSession)


class ServerChannel:
    """Our UDP conversation with the directory, from a first registration on."""

    def __init__(self, first: Enrollment, now: float, auth: ClientAuth | None = None) -> None:
        """``auth``: the MAC extension's state after the first registration (its key agreed,
        or not if the server did not answer with its own); None: never offer it."""
        self._auth = auth
        self._offer_mac = auth is not None and not first.plain_only
        self._saved_counter = 0
        self._next_rekey = now
        self.roster = PeerRoster(first.nickname)
        self.keyword = ""
        self.nickname = first.nickname
        self.ping_interval = 10.0
        self.extended = True
        self._adopt(first)
        self.roster.replace(first.roster)
        self.online = True
        self._next_ping = now
        self._last_ping = 0.0
        self._last_pong = now
        self._bad_digests = 0
        self._next_reclaim: float | None = None
        self._reclaim_backoff = 1.0
        self._asking: RegisterAgain | None = None  # a registration under way (one at a time)
        self._quit_sent = False
        self._outgoing: list[bytes] = []
        self._events: list[ChannelEvent] = []

    # -- outputs ---------------------------------------------------------------------------
    def take_outgoing(self) -> list[bytes]:
        """Datagrams for the server's address."""
        out, self._outgoing = self._outgoing, []
        return out

    def take_events(self) -> list[ChannelEvent]:
        """What happened, in order: UI events, roster changes, registration requests."""
        got, self._events = self._events, []
        return got

    def next_deadline(self) -> float:
        deadlines = [self._next_ping]
        for d in (self._ping_retry_due(), self.roster.next_deadline(), self._next_reclaim):
            if d is not None:
                deadlines.append(d)
        if self.online and self.extended:
            deadlines.append(self._last_pong + LOST_AFTER * self.ping_interval)
        return min(deadlines)

    # -- inputs ----------------------------------------------------------------------------
    def on_datagram(self, data: bytes, now: float) -> str | None:
        """A datagram from the server's address; returns why it was dropped, or None."""
        try:
            msg = wire.decode_datagram(data)
        except ProtocolError as exc:
            return exc.text
        if msg.keyword != self.keyword:
            return "server datagram with a foreign keyword"
        handler = self._handlers.get(type(msg))
        if handler is None:
            return f"unexpected {type(msg).__name__}"
        handler(self, msg, now)
        return None

    def on_timer(self, now: float) -> None:
        self._changed(self.roster.expire_ghosts(now))
        retry = self._ping_retry_due()
        if now >= self._next_ping:
            self._send_ping(now)
            step = self.ping_interval / PINGS_PER_INTERVAL
            self._next_ping = max(self._next_ping + step, now + step / 2)
        elif retry is not None and now >= retry:
            self._send_ping(now)
        if self.online and self.extended and \
                now - self._last_pong > LOST_AFTER * self.ping_interval:
            self.online = False
            self._reclaim_backoff = self.ping_interval
            self._next_reclaim = now + self._reclaim_backoff
            log.warning("server lost: no PONG for %.1f s", now - self._last_pong)
            self._events.append(ev.ServerLost("no answer from the server"))
        if self._next_reclaim is not None and now >= self._next_reclaim:
            self._next_reclaim = None
            self._ask("reclaim")

    def on_registered(self, request: RegisterAgain, result: Enrollment | Exception,
                      now: float, agreed: wire.Keyword | None = None) -> None:
        """The outcome of a ``RegisterAgain``: an ``Enrollment`` or the exception it raised.
        ``agreed``: the KEYWORD reply, if one came before the exchange failed (the server
        holds the key it agreed from then on: ours must follow)."""
        if request is self._asking:
            self._asking = None
        reason = request.reason
        if isinstance(result, Exception):
            if agreed is not None and agreed.keyword == self.keyword == request.keyword:
                self._accept_key(request, agreed)
            if isinstance(result, RegistrationError) and result.code not in TRANSIENT_CODES:
                log.warning("%s refused: %s", reason, result)
                if reason == "reregister" or result.code == "NICK_TAKEN":
                    self._events.append(ev.Fatal(f"could not register again: {result.text}"))
            else:
                log.info("%s failed: %s", reason, result)
            self._schedule_reclaim(now)
            return
        if request.keyword != self.keyword:
            return  # stale result
        self._accept_key(request, result)
        self._reclaim_backoff = 1.0
        self._next_reclaim = None
        if result.keyword == self.keyword:
            changes = self.roster.replace(
                result.roster, grace_until=now + REFETCH_GRACE * self.ping_interval)
        else:
            self._adopt(result)
            log.info("registered again with a new keyword")
            self._events.append(ev.Reregistered())
            # everyone re-registers one by one: keep the missing as ghosts for a while
            changes = self.roster.replace(
                result.roster, grace_until=now + GHOST_GRACE * self.ping_interval)
        self._last_pong = now
        self._server_is_back()
        self._bad_digests = 0
        self._changed(changes)
        self._send_ping(now)  # our first PING after CHANNEL_SWITCH: the server learns our address

    def quit(self) -> None:
        """Say goodbye (twice: it is UDP); once."""
        if self.keyword and not self._quit_sent:
            self._quit_sent = True
            for _ in range(2):
                self._send(wire.Quit(self.keyword, self.nickname))

    def extension_datagram(self, body: bytes) -> bytes:
        """One of our extension requests (``client/reachlink``: WHERE?, PROBE?, NUDGE; ``body``
        = ``COMMAND args``) framed with our keyword, MACed like a PING while the MAC extension
        is in use."""
        auth = self._auth
        if auth is None or not auth.active:
            return b"%s %d %s" % (self.keyword.encode("ascii"), len(body), body)
        data = auth.seal_body(self.keyword, body)
        if auth.counter - self._saved_counter >= SAVE_EVERY:
            self._save_session()
        return data

    def moved(self, reg: Enrollment, auth: ClientAuth | None, now: float) -> None:
        """``/nick``: the registration under the new nickname (made over TCP by the engine,
        with its own MAC state ``auth``) replaces ours, which we leave with QUIT. Peers heard
        of the rename from our own session first, so they show a rename rather than a leave
        and a join."""
        old = self.nickname
        for _ in range(2):
            self._send(wire.Quit(self.keyword, old))  # sealed with the old registration's key
        self._auth = auth
        self._offer_mac = auth is not None and not reg.plain_only
        self._saved_counter = 0
        self._adopt(reg)
        self.roster.rename_me(reg.nickname)
        self._changed(self.roster.replace(e for e in reg.roster if e[0] != old))
        self._send_ping(now)  # the server learns the new registration's address

    def mac_state(self) -> tuple[str, int] | None:
        """What the saved session keeps of the MAC extension: (key, counter), or None."""
        return None if self._auth is None else self._auth.saved()

    # -- internals -------------------------------------------------------------------------
    def _adopt(self, reg: Enrollment) -> None:
        self.keyword = reg.keyword
        self.nickname = reg.nickname
        self.ping_interval = max(0.05, reg.ping_interval)
        self.extended = reg.extended

    def _ping_retry_due(self) -> float | None:
        """When to repeat an unanswered PING (None: nothing unanswered, or the server is
        already known to be lost and PINGs go at the normal pace)."""
        if not (self.online and self.extended and self._last_pong < self._last_ping):
            return None
        return self._last_ping + self.ping_interval / RETRY_DIVISOR

    def _send_ping(self, now: float) -> None:
        self._last_ping = now
        digest = self.roster.digest() if self.extended else None
        self._send(wire.Ping(self.keyword, self.nickname, digest))

    def _send(self, msg: wire.Ping | wire.Quit) -> None:
        auth = self._auth
        try:
            if auth is None or not auth.active:
                self._outgoing.append(wire.encode_datagram(msg))
                return
            self._outgoing.append(auth.seal(msg))
        except ValueError as exc:  # never in practice: a bad nickname, 2**63 counters
            log.error("cannot encode %s: %s", type(msg).__name__, exc)
            return
        if auth.counter - self._saved_counter >= SAVE_EVERY:
            self._save_session()

    def _save_session(self) -> None:
        if self._auth is not None:
            self._saved_counter = self._auth.counter
        self._events.append(SaveSession())

    def _changed(self, changes: Changes) -> None:
        if changes:
            self._events.append(RosterChanged(changes))

    def _ask(self, reason: str) -> None:
        if self._asking is not None:
            return  # one at a time; its outcome decides what comes next
        offer = None
        if self._offer_mac and self._auth is not None:
            # a new key, and the proof that we hold the current one (the server ignores it
            # if it lost our key): a forged REKEY then costs a key change, not our nickname
            offer = self._auth.connect(self.nickname, self.keyword)
        self._asking = RegisterAgain(reason, self.nickname, self.keyword,
                                     max(2.0, self.ping_interval), offer)
        self._events.append(self._asking)

    def _accept_key(self, request: RegisterAgain, result: Enrollment | wire.Keyword) -> None:
        """The outcome of a registration that offered a key: use the agreed one, or none."""
        if self._auth is None or request.offer is None:
            return
        if isinstance(result, Enrollment) and result.plain_only:
            self._offer_mac = False
            log.info("the server does not speak the MAC extension: plain PINGs from now on")
        was = self._auth.key
        self._auth.accept(wire.Keyword(result.keyword, result.x25519))
        if self._auth.key != was:
            self._save_session()

    def _server_is_back(self) -> None:
        if not self.online:
            self.online = True
            self._next_reclaim = None
            log.info("server back")
            self._events.append(ev.ServerBack())

    def _schedule_reclaim(self, now: float) -> None:
        if self.online:
            return  # PONGs flow; the next mismatch or UNKNOWN will try again
        self._next_reclaim = now + self._reclaim_backoff
        self._reclaim_backoff = min(RECLAIM_BACKOFF_MAX, self._reclaim_backoff * 2)

    def _on_pong(self, msg: wire.Pong, now: float) -> None:
        self._last_pong = now
        self._server_is_back()
        if msg.digest == self.roster.digest():
            self._bad_digests = 0
            return
        self._bad_digests += 1
        if self._bad_digests >= BAD_DIGESTS_BEFORE_REFETCH:
            self._bad_digests = 0
            log.info("roster digest differs from the server's twice: re-fetching")
            self._ask("refetch")

    def _on_unknown(self, msg: wire.Unknown, now: float) -> None:
        log.info("the server does not know our keyword: registering again")
        self._ask("reregister")

    def _on_ref_add(self, msg: wire.RefAdd, now: float) -> None:
        self._changed(self.roster.add((e.nickname, e.host, e.port) for e in msg.entries))

    def _on_ref_del(self, msg: wire.RefDel, now: float) -> None:
        self._changed(self.roster.remove(msg.nicknames))

    def _on_rekey(self, msg: wire.Rekey, now: float) -> None:
        # anyone who saw our keyword can send this: it only ever makes us reclaim with a proof
        if self._auth is None or not self._auth.active or now < self._next_rekey:
            return
        self._next_rekey = now + self.ping_interval
        log.info("the server has no MAC key for us (it restarted): agreeing a new one")
        self._ask("rekey")

    _handlers: dict[type, Callable[[ServerChannel, Any, float], None]] = {
        wire.Pong: _on_pong,
        wire.Unknown: _on_unknown,
        wire.RefAdd: _on_ref_add,
        wire.RefDel: _on_ref_del,
        wire.Rekey: _on_rekey,
    }
