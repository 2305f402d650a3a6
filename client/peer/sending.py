"""The Messenger's sending half: per-peer send streams, the window, retransmission, deadlines.

Sans-IO like the Messenger (``client.peer.messenger`` explains the protocol): a message is cut
into DATA frames, at most ``SEND_WINDOW`` in flight per peer, retransmitted on a timeout from
``client.peer.rto``, resent early when a later frame is acknowledged (RACK lite), and given up
at its deadline (``Undelivered``; the peer is told to move on with a SKIP).
"""

from __future__ import annotations

import heapq
import itertools
import logging
import random
from collections import Counter, deque
from collections.abc import Iterable

from client.peer.outcomes import Acked, Event, Undelivered
from client.peer.rto import BACKOFF, REORDER_MIN, RtoState
from models import frames
from models.frames import DATA, MAX_CHUNK

log = logging.getLogger(__name__)

# bound once: the per-recipient hot path (fan-out) uses it for every frame
_DATA_HEAD_PACK = frames.DATA_HEAD.pack

SEND_WINDOW = 128  # frames in flight per peer (must stay <= frames.MAX_LAG)
MAX_QUEUED_FRAMES = 4096  # frames waiting for the window, per peer
MAX_PEERS = 1024  # peers with send state


def tails(kind: int, msg_id: int, payload: bytes) -> list[bytes]:
    """The per-fragment DATA tails of a message, the same for every recipient."""
    count = max(1, -(-len(payload) // MAX_CHUNK))
    return [frames.data_tail(kind, msg_id, i, count, payload[i * MAX_CHUNK:(i + 1) * MAX_CHUNK])
            for i in range(count)]


class _OutMsg:
    """One ``send``: its payload (for ``Undelivered``) and the peers that still owe an ack."""

    __slots__ = ("msg_id", "kind", "payload", "deadline", "parts")

    def __init__(self, msg_id: int, kind: int, payload: bytes, deadline: float) -> None:
        self.msg_id = msg_id
        self.kind = kind
        self.payload = payload
        self.deadline = deadline
        self.parts: dict[str, _Part] = {}


class _Part:
    """The frames of one message in one peer's stream."""

    __slots__ = ("msg", "first", "count", "unacked", "dead")

    def __init__(self, msg: _OutMsg, first: int, count: int) -> None:
        self.msg = msg
        self.first = first
        self.count = count
        self.unacked = count
        self.dead = False


class _OutFrame:
    __slots__ = ("seq", "tail", "part", "tx", "sent", "timeout", "due")

    def __init__(self, seq: int, tail: bytes, part: _Part, tx: int = 0, sent: float = 0.0,
                 timeout: float = 0.0, due: float = 0.0) -> None:
        self.seq = seq
        self.tail = tail
        self.part = part
        self.tx = tx  # transmissions so far (0: still queued)
        self.sent = sent
        self.timeout = timeout
        self.due = due


class _SendStream(RtoState):
    __slots__ = ("epoch", "next_seq", "base", "inflight", "queue", "timer_due", "skip_to",
                 "skip_timeout", "skip_due", "skip_until", "live")

    def __init__(self, peer: str, epoch: int) -> None:
        super().__init__(peer)
        self.epoch = epoch
        self.next_seq = 0
        self.base = 0  # oldest seq still wanted: min(first in flight, first queued, next_seq)
        self.inflight: dict[int, _OutFrame] = {}  # in seq order
        self.queue: deque[_OutFrame] = deque()
        self.timer_due: float | None = None  # the one armed heap entry of this stream
        self.skip_to: int | None = None  # a SKIP to this base is unacknowledged
        self.skip_timeout = 0.0
        self.skip_due = 0.0
        self.skip_until = 0.0
        self.live = True

    def idle(self) -> bool:
        return not self.inflight and not self.queue and self.skip_to is None

    def advance_base(self) -> None:
        queue = self.queue
        while queue and queue[0].part.dead:
            queue.popleft()
        limit = queue[0].seq if queue else self.next_seq
        inflight = self.inflight
        if not inflight:
            self.base = limit
            return
        base = self.base
        while base < limit and base not in inflight:
            base += 1
        self.base = base

    def enqueue(self, msg: _OutMsg, msg_tails: list[bytes]) -> _Part:
        part = _Part(msg, self.next_seq, len(msg_tails))
        seq = self.next_seq
        queue = self.queue
        for tail in msg_tails:
            queue.append(_OutFrame(seq, tail, part))
            seq += 1
        self.next_seq = seq
        return part

    def live_parts(self) -> list[_Part]:
        parts: dict[int, _Part] = {}
        for f in itertools.chain(self.inflight.values(), self.queue):
            if not f.part.dead and id(f.part) not in parts:
                parts[id(f.part)] = f.part
        return sorted(parts.values(), key=lambda p: p.first)


class _Bucket:
    """The streams armed at one due time. Entries go stale when a stream's ``timer_due``
    changes (acknowledged, re-armed); ``pos`` skips the stale ones at the front, so checking
    the heap's head costs O(1) amortised however the streams' ACKs arrive."""

    __slots__ = ("streams", "pos")

    def __init__(self) -> None:
        self.streams: list[_SendStream] = []
        self.pos = 0


class Sender:
    """Every peer's send stream. ``out`` collects (peer, frame) pairs; ``events`` and
    ``counters`` are shared with the receiving half (the Messenger hands them in)."""

    def __init__(self, *, deadline: float, rng: random.Random, events: list[Event],
                 counters: Counter[str]) -> None:
        self._deadline = deadline
        self._rng = rng
        self._next_msg_id = rng.randrange(1, frames.MSG_ID_LIMIT)
        self._send: dict[str, _SendStream] = {}
        self._msgs: dict[int, _OutMsg] = {}
        self._deadlines: list[tuple[float, int]] = []  # (deadline, msg_id), lazily cleaned
        # retransmission timers: a heap of (due, tiebreak, bucket), one bucket (list of streams)
        # per distinct due time, so a room message to N peers arms one heap entry, not N;
        # an entry is stale for a stream whose timer_due has changed since (checked when due)
        self._timers: list[tuple[float, int, _Bucket]] = []
        self._buckets: dict[float, _Bucket] = {}  # due -> its bucket in the heap
        self._tiebreak = itertools.count()
        self.out: list[tuple[str, bytes]] = []
        self._events = events
        self.counters = counters

    def send(self, peers: Iterable[str], kind: int, payload: bytes, now: float) -> int:
        """Queue ``payload`` (checked by the caller) for every peer; returns its msg_id."""
        msg_id = self._next_msg_id
        self._next_msg_id = msg_id % (frames.MSG_ID_LIMIT - 1) + 1
        msg_tails = tails(kind, msg_id, payload)
        count = len(msg_tails)
        msg = _OutMsg(msg_id, kind, payload, now + self._deadline)
        parts = msg.parts
        streams = self._send
        out = self.out
        pack = _DATA_HEAD_PACK
        buckets = self._buckets
        tail = msg_tails[0]
        for peer in dict.fromkeys(peers):
            stream = streams.get(peer) or self._new_stream(peer)
            if stream is None or len(stream.queue) + count > MAX_QUEUED_FRAMES:
                log.info("not sending message %d to %s: too much pending", msg_id, peer)
                self.counters["refused_pending"] += 1
                self._events.append(Undelivered(peer, msg_id, kind, payload))
                continue
            inflight = stream.inflight
            seq = stream.next_seq
            if count > 1 or stream.queue or (inflight and seq >= stream.base + SEND_WINDOW):
                parts[peer] = stream.enqueue(msg, msg_tails)
                self._pump(stream, now)
                continue
            # the fan-out fast path (one fragment, window open): what enqueue + _pump do
            if not inflight:
                stream.base = seq
            part = parts[peer] = _Part(msg, seq, 1)
            rto = stream.rto
            due = now + rto
            inflight[seq] = _OutFrame(seq, tail, part, 1, now, rto, due)
            stream.next_seq = seq + 1
            out.append((peer, pack(DATA, stream.epoch, seq, seq - stream.base) + tail))
            timer_due = stream.timer_due
            if timer_due is None or due < timer_due:
                stream.timer_due = due
                bucket = buckets.get(due)
                if bucket is None:
                    bucket = buckets[due] = _Bucket()
                    heapq.heappush(self._timers, (due, next(self._tiebreak), bucket))
                bucket.streams.append(stream)
        if msg.parts:
            self._msgs[msg_id] = msg
            heapq.heappush(self._deadlines, (msg.deadline, msg_id))
        return msg_id

    def on_timer(self, now: float) -> None:
        """Give up expired messages, then retransmit whatever is due."""
        deadlines = self._deadlines
        while deadlines and deadlines[0][0] <= now:
            deadline, msg_id = heapq.heappop(deadlines)
            msg = self._msgs.get(msg_id)
            if msg is not None and msg.deadline == deadline:
                del self._msgs[msg_id]
                self._expire(msg, now)
        timers = self._timers
        while timers and timers[0][0] <= now:
            due, _, bucket = heapq.heappop(timers)
            if self._buckets.get(due) is bucket:
                del self._buckets[due]
            for stream in bucket.streams[bucket.pos:]:
                if stream.live and stream.timer_due == due:
                    stream.timer_due = None
                    self._retransmit(stream, now)

    def next_deadline(self) -> float | None:
        """The earliest time ``on_timer`` has work to do, or None."""
        timers = self._timers
        while timers:
            due, _, bucket = timers[0]
            streams, pos = bucket.streams, bucket.pos
            end = len(streams)
            while pos < end and not (streams[pos].timer_due == due and streams[pos].live):
                pos += 1
            bucket.pos = pos
            if pos < end:
                break  # a stream is still armed at this time
            heapq.heappop(timers)
            if self._buckets.get(due) is bucket:
                del self._buckets[due]
        deadlines = self._deadlines
        while deadlines and deadlines[0][1] not in self._msgs:
            heapq.heappop(deadlines)
        best = timers[0][0] if timers else None
        if deadlines and (best is None or deadlines[0][0] < best):
            best = deadlines[0][0]
        return best

    def forget(self, peer: str) -> None:
        """The peer left: everything pending for it becomes ``Undelivered``."""
        stream = self._send.pop(peer, None)
        if stream is None:
            return
        stream.live = False
        for part in stream.live_parts():
            part.dead = True
            msg = part.msg
            msg.parts.pop(peer, None)
            if not msg.parts:
                self._msgs.pop(msg.msg_id, None)
            self._events.append(Undelivered(peer, part.msg.msg_id, part.msg.kind,
                                            part.msg.payload))

    def restart(self, peer: str, now: float) -> None:
        """A fresh stream (new epoch) to ``peer`` carrying, whole, every message it has not
        acknowledged yet."""
        old = self._send.pop(peer, None)
        if old is None:
            return
        old.live = False
        stream = self._new_stream(peer)
        assert stream is not None  # we just freed its slot
        stream.take_timing(old)
        for part in old.live_parts():
            msg = part.msg
            msg.parts[peer] = stream.enqueue(msg, tails(msg.kind, msg.msg_id, msg.payload))
        log.info("stream to %s restarted with %d pending frames", peer, len(stream.queue))
        self._pump(stream, now)

    def on_ack(self, peer: str, epoch: int, cum: int, ranges: tuple[tuple[int, int], ...],
               now: float) -> None:
        stream = self._send.get(peer)
        if stream is None or epoch != stream.epoch:
            self.counters["stale_ack"] += 1
            return
        queue = stream.queue
        sent_limit = queue[0].seq if queue else stream.next_seq
        if cum > sent_limit:
            cum = sent_limit
        inflight = stream.inflight
        if inflight:
            pop = inflight.pop
            base = stream.base
            if ranges:
                acked = [pop(seq, None) for seq in range(base, cum)]
                for start, end in ranges:
                    if start >= sent_limit:
                        break
                    acked.extend(pop(seq, None) for seq in range(max(start, cum),
                                                                 min(end, sent_limit)))
            elif cum == base + 1:  # the usual ACK: one more frame
                acked = (pop(base, None),)
            else:
                acked = [pop(seq, None) for seq in range(base, cum)]
            newest = -1.0  # send time of the newest cleanly (tx == 1) acknowledged frame
            highest = -1
            retransmitted = False  # an acknowledged frame had been sent more than once
            for f in acked:
                if f is None:
                    continue
                if f.tx != 1:
                    retransmitted = True
                elif f.sent > newest:
                    newest = f.sent
                    highest = f.seq if f.seq > highest else highest
                part = f.part
                part.unacked -= 1
                if part.unacked == 0:  # the whole message is acknowledged by this peer
                    msg = part.msg
                    parts = msg.parts
                    if parts.pop(peer, None) is not None:
                        if not parts:
                            self._msgs.pop(msg.msg_id, None)
                        self._events.append(Acked(peer, msg.msg_id))
            if newest >= 0.0:
                stream.ambiguous = 0
                stream.rtt_sample(now - newest)
                if inflight and highest > next(iter(inflight)):
                    self._resend_lost(stream, newest, highest, now)
            elif retransmitted:
                stream.ambiguous_ack()
        if stream.skip_to is not None and cum >= stream.skip_to:
            stream.skip_to = None
        if not inflight:
            if stream.skip_to is None:
                stream.timer_due = None  # nothing left to time: the heap entry goes stale
            if not queue:
                stream.base = stream.next_seq
                return
        stream.advance_base()
        if queue:
            self._pump(stream, now)

    # ----------------------------------------------------------------------------- internals

    def _new_stream(self, peer: str) -> _SendStream | None:
        if len(self._send) >= MAX_PEERS and not self._evict():
            return None
        stream = _SendStream(peer, self._rng.getrandbits(64))
        self._send[peer] = stream
        return stream

    def _evict(self) -> bool:
        """Make room in a full table by dropping the oldest idle stream."""
        for peer, stream in self._send.items():
            if stream.idle():
                del self._send[peer]
                stream.live = False
                log.info("evicted idle state of %s", peer)
                return True
        return False

    def _pump(self, stream: _SendStream, now: float) -> None:
        """Send queued frames while the window allows."""
        queue = stream.queue
        while queue and queue[0].part.dead:
            queue.popleft()
        if not queue:
            return
        if not stream.inflight:
            stream.base = queue[0].seq
        base = stream.base
        limit = base + SEND_WINDOW
        inflight = stream.inflight
        out = self.out
        peer, epoch, rto = stream.peer, stream.epoch, stream.rto
        pack = _DATA_HEAD_PACK
        due = now + rto
        while queue and queue[0].seq < limit:
            f = queue.popleft()
            if f.part.dead:
                continue
            inflight[f.seq] = f
            f.tx = 1
            f.sent = now
            f.timeout = rto
            f.due = due
            out.append((peer, pack(DATA, epoch, f.seq, f.seq - base) + f.tail))
        if stream.timer_due is None or due < stream.timer_due:
            self._arm(stream, due)

    def _arm(self, stream: _SendStream, due: float) -> None:
        stream.timer_due = due
        bucket = self._buckets.get(due)
        if bucket is None:
            bucket = self._buckets[due] = _Bucket()
            heapq.heappush(self._timers, (due, next(self._tiebreak), bucket))
        bucket.streams.append(stream)

    def _retransmit(self, stream: _SendStream, now: float) -> None:
        """The stream's timer fired: resend every due frame (and an unacked SKIP), re-arm."""
        nxt: float | None = None
        base = stream.base
        cap = stream.cap
        pack = _DATA_HEAD_PACK
        for f in stream.inflight.values():
            if f.due <= now:
                f.tx += 1
                timeout = f.timeout * BACKOFF
                f.timeout = timeout = cap if timeout > cap else timeout
                f.sent = now
                f.due = now + timeout
                # Karn: new frames keep some backoff until a clean RTT sample (up to ``carry``)
                if timeout > stream.rto:
                    stream.rto = timeout if timeout < stream.carry else stream.carry
                self.out.append((stream.peer, pack(DATA, stream.epoch, f.seq,
                                                   f.seq - base) + f.tail))
                self.counters["retransmits"] += 1
            if nxt is None or f.due < nxt:
                nxt = f.due
        if stream.skip_to is not None:
            if now >= stream.skip_until:
                stream.skip_to = None
            else:
                if stream.skip_due <= now:
                    self.out.append((stream.peer, frames.SKIP_FRAME.pack(
                        frames.SKIP, stream.epoch, stream.skip_to)))
                    stream.skip_due = now + stream.skip_timeout
                    stream.skip_timeout = min(stream.cap, stream.skip_timeout * BACKOFF)
                if nxt is None or stream.skip_due < nxt:
                    nxt = stream.skip_due
        if nxt is not None:
            self._arm(stream, nxt)

    def _resend_lost(self, stream: _SendStream, newest: float, highest: int, now: float) -> None:
        """Frames below ``highest`` sent well before ``newest`` (the send time of a frame just
        acknowledged) were lost, not delayed: resend them now instead of waiting for their timer,
        and without backing off, since the peer is evidently answering (RACK, RFC 8985, lite)."""
        cutoff = newest - max(REORDER_MIN, (stream.srtt or 0.0) / 4)
        base = stream.base
        pack = _DATA_HEAD_PACK
        for seq, f in stream.inflight.items():
            if seq >= highest:
                break
            if f.sent <= cutoff:
                f.tx += 1
                f.sent = now
                f.due = now + f.timeout
                self.out.append((stream.peer, pack(DATA, stream.epoch, seq, seq - base)
                                 + f.tail))
                self.counters["fast_retransmits"] += 1

    def _expire(self, msg: _OutMsg, now: float) -> None:
        for peer, part in msg.parts.items():
            log.debug("message %d not acknowledged by %s before its deadline", msg.msg_id, peer)
            self._events.append(Undelivered(peer, msg.msg_id, msg.kind, msg.payload))
            stream = self._send.get(peer)
            if stream is None:
                continue
            old_base = stream.base
            self._drop_part(stream, part)
            stream.advance_base()
            if stream.base > old_base:
                # the recipient may hold later frames waiting for these; tell it to move on
                stream.skip_to = stream.base
                stream.skip_timeout = stream.rto
                stream.skip_due = now
                stream.skip_until = now + self._deadline
                self._arm(stream, now)
        msg.parts.clear()

    @staticmethod
    def _drop_part(stream: _SendStream, part: _Part) -> None:
        """Forget a part's frames (in flight now; queued ones lazily, via ``dead``)."""
        part.dead = True
        pop = stream.inflight.pop
        for seq in range(part.first, part.first + part.count):
            pop(seq, None)
