"""Backfill, sans-IO: what a member missed in a channel, asked of members that are online.

Asking (``want``): on ``/join`` or when we come back online, for each of our channels, ask up to
``ASK_PEERS`` online members for the lines since the newest one we hold (at most ``WINDOW_MS``
back, at most ``LIMIT`` lines). Only answers to a request of ours, from a peer we asked, for
that channel, within ``TIMEOUT`` and ``LIMIT`` lines per peer are accepted (``accept``): a peer
cannot push history on us. The engine merges accepted lines with ``History.merge`` (signature
checks, duplicates skipped by message id) and shows the added ones as history.

Answering (``answer``): only to a current member of the channel we are in, at most once per
``ANSWER_EVERY`` seconds per peer and channel, the last ``LIMIT`` lines of the last
``WINDOW_MS``, verbatim (signed by their authors), cut into payloads of at most
``wire.MAX_PAYLOAD`` bytes; the last one has ``last=1``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from client.chat import names, wire
from client.chat.events import Send
from client.chat.names import peer_key as _pk

log = logging.getLogger(__name__)

LIMIT = wire.MAX_BACKFILL  # 200 lines
WINDOW_MS = 24 * 3600 * 1000
ASK_PEERS = 2
TIMEOUT = 10.0
ANSWER_EVERY = 10.0
_MAX_ANSWERED = 4096  # (peer, channel) answer times remembered

Lookup = Callable[[str, int, int], list[wire.SignedLine]]  # (channel key, since_ms, limit)


@dataclass
class _Ask:
    deadline: float
    since_ms: int
    budget: dict[str, int] = field(default_factory=dict)  # peer -> lines it may still send
    asked: set[str] = field(default_factory=set)  # every peer asked (budget empties)
    until_ms: int = 0  # when we asked: later lines reach us live (we are a member by then)


class Backfill:
    def __init__(self) -> None:
        self._asks: dict[str, _Ask] = {}  # channel key -> our open request
        self._answered: dict[tuple[str, str], float] = {}

    def want(self, channel: str, members: list[str], newest_ts_ms: int | None,
             now: float) -> list[Send]:
        """Ask online ``members`` of ``channel`` for what we missed since ``newest_ts_ms``."""
        display, key = names.normalize(channel)
        peers = members[:ASK_PEERS]
        if not peers:
            return []
        now_ms = int(now * 1000)
        # a line stamped in the future (a peer's clock, or a lie) must not stop backfill
        newest = min(newest_ts_ms, now_ms) if newest_ts_ms is not None else -1
        since = max(newest + 1, now_ms - WINDOW_MS, 0)
        self._asks[key] = _Ask(now + TIMEOUT, since, {_pk(p): LIMIT for p in peers},
                               {_pk(p) for p in peers}, now_ms)
        return [Send(tuple(peers), wire.encode(wire.BackfillRequest(display, since, LIMIT)))]

    def also(self, channel: str, member: str, now: float) -> list[Send]:
        """A member we learn of while our request is open: ask it too, up to ``ASK_PEERS``
        in all (at start the first member's state often arrives alone)."""
        display, key = names.normalize(channel)
        ask = self._asks.get(key)
        pkey = _pk(member)
        if ask is None or now > ask.deadline or len(ask.asked) >= ASK_PEERS \
                or pkey in ask.asked:
            return []
        ask.asked.add(pkey)
        ask.budget[pkey] = LIMIT
        request = wire.BackfillRequest(display, ask.since_ms, LIMIT)
        return [Send((member,), wire.encode(request))]

    def answer(self, peer: str, request: wire.BackfillRequest, *, is_member: bool, now: float,
               lookup: Lookup) -> list[Send]:
        """Our answer to ``peer``'s request; ``is_member``: ``peer`` is in the channel and so
        are we (``Channels``). Nothing for a refused or too frequent request."""
        key = names.channel_key(request.channel)
        if not is_member:
            log.info("backfill of %s refused to %s: not both members", request.channel, peer)
            return []
        last = self._answered.get((_pk(peer), key))
        if last is not None and now - last < ANSWER_EVERY:
            log.info("backfill of %s to %s: asked again too soon", request.channel, peer)
            return []
        if len(self._answered) >= _MAX_ANSWERED:
            self._answered.clear()
        self._answered[(_pk(peer), key)] = now
        since = max(request.since_ms, int(now * 1000) - WINDOW_MS)
        lines = lookup(key, since, min(request.limit, LIMIT))
        return [Send((peer,), payload) for payload in pack(request.channel, lines)]

    def accept(self, peer: str, channel: str, last: bool, lines: tuple[wire.SignedLine, ...],
               now: float) -> list[wire.SignedLine]:
        """The lines of a BACKFILL we may merge (unverified yet: ``History.merge`` checks)."""
        key = names.channel_key(channel)
        ask = self._asks.get(key)
        pkey = _pk(peer)
        if ask is None or now > ask.deadline or pkey not in ask.budget:
            log.warning("unasked backfill of %s from %s dropped", channel, peer)
            return []
        ok = [x for x in lines if x.is_channel and names.channel_key(x.target) == key
              and x.kind != wire.Kind.TOPIC and x.ts_ms >= ask.since_ms]
        if len(ok) != len(lines):
            log.warning("backfill from %s: %d line(s) outside the request dropped", peer,
                        len(lines) - len(ok))
        # a line written after we asked reaches us live, maybe later than this answer (a slow
        # or lossy path): taken from here it would be shown as history and the live one never
        ok = [x for x in ok if x.ts_ms <= ask.until_ms]
        ok = ok[:ask.budget[pkey]]
        ask.budget[pkey] -= len(ok)
        if last or ask.budget[pkey] <= 0:
            del ask.budget[pkey]
            # with fewer than ASK_PEERS asked, the request stays open for a member learned
            # later (``also``) until its deadline
            if not ask.budget and len(ask.asked) >= ASK_PEERS:
                del self._asks[key]
        return ok

    def on_timer(self, now: float) -> None:
        for key in [k for k, a in self._asks.items() if now > a.deadline]:
            del self._asks[key]

    def next_deadline(self) -> float | None:
        return min((a.deadline for a in self._asks.values()), default=None)


def pack(channel: str, lines: list[wire.SignedLine]) -> list[bytes]:
    """BACKFILL payloads holding ``lines`` in order, each within ``wire.MAX_PAYLOAD``."""
    budget = wire.MAX_PAYLOAD - 2 - 1 - len(channel.encode("utf-8")) - 1 - 2
    out: list[bytes] = []
    chunk: list[wire.SignedLine] = []
    used = 0
    for line in lines:
        size = 2 + len(wire.encode_line(line))
        if chunk and used + size > budget:
            out.append(wire.encode(wire.Backfill(channel, False, tuple(chunk))))
            chunk, used = [], 0
        chunk.append(line)
        used += size
    out.append(wire.encode(wire.Backfill(channel, True, tuple(chunk))))
    return out
