"""Reliable, ordered, exactly-once messages between peers, sans-IO (frames in ``models.frames``).

The engine feeds the ``Messenger`` frames that arrived (``receive``), the time (``on_timer`` at
``next_deadline()``), and the application's messages (``send``); it takes back frames to send
(``take_outgoing``) and events (``take_events``). Nothing here touches a socket or a clock.

How it works, per direction between two peers (a *stream*):
- a message is cut into fragments of at most ``MAX_CHUNK`` bytes, each one DATA frame with the
  next ``seq``; a room message to N peers is N independent streams sharing the fragment bytes;
- at most ``SEND_WINDOW`` frames beyond the oldest unacknowledged one are in flight, the rest wait;
- the recipient acknowledges every burst of DATA with one ACK (cumulative + selective ranges),
  delivers fragments in seq order, buffers out-of-order ones in a bounded window, drops duplicates;
- unacknowledged frames are retransmitted after an adaptive timeout (RFC 6298 SRTT/RTTVAR, Karn's
  rule, floor ``RTO_MIN``) backed off by ``BACKOFF`` per retransmission up to a cap relative to
  the path (``CAP_FACTOR`` x the clean RTO, within ``CAP_FLOOR``..``RTO_MAX``); new frames start
  at the clean RTO, and ACKs that only ever acknowledge retransmissions raise it (a slower path);
- a message not acknowledged by ``deadline`` seconds after ``send`` is given up for that peer
  (``Undelivered``); the recipient learns from the ``lag``/SKIP that it should stop waiting for it.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import random
from collections import Counter, deque
from collections.abc import Iterable
from dataclasses import dataclass

from models import frames
from models.errors import ProtocolError
from models.frames import ACK, DATA, KIND_CONTROL, KIND_PRIVATE, KIND_ROOM, KINDS, MAX_CHUNK

log = logging.getLogger(__name__)

# bound once: the per-recipient hot paths (fan-out, ACKs) use them for every frame
_DATA_HEAD_PACK = frames.DATA_HEAD.pack
_ACK_HEAD_UNPACK = frames.ACK_HEAD.unpack
_ACK_HEAD_SIZE = frames.ACK_HEAD.size

__all__ = [
    "KIND_CONTROL", "KIND_PRIVATE", "KIND_ROOM", "MAX_MESSAGE", "Acked", "Delivered",
    "MessageTooLarge", "Messenger", "Undelivered",
]

MAX_MESSAGE = 64 * 1024

RTO_INITIAL = 0.1  # before any RTT sample: short, LAN first; Karn's backoff fixes a slow path
RTO_MIN = 0.02  # floor: loopback RTTs are ~0.1 ms but a busy engine loop can stall a few ms
RTO_MAX = 2.0
BACKOFF = 1.5  # < 2 keeps the tail short under random loss: 20, 30, 45, 68, 101 ms, ...
# Backoff is bounded relative to the path: at most CAP_FACTOR times the RTO of the last clean RTT
# sample, but never below CAP_FLOOR (so a jittery path still backs off) nor above RTO_MAX. A LAN
# then retransmits at least every 250 ms under loss instead of every 2 s; a 300 ms path keeps 2 s.
CAP_FLOOR = 0.25
CAP_FACTOR = 4.0
# Karn's carried backoff: new frames start at most CARRY_FACTOR times the clean RTO, not at the
# backed-off timeout of an unlucky frame: under 20% random loss carrying it (even 2x) doubled
# the p99 time for a room message to reach 200 peers (simulated: 0.26 s -> 0.4 s, 2 s before
# the cap). Each frame still backs off on its own.
CARRY_FACTOR = 1.0
# What Karn's carry protects against is handled here instead: an RTT that jumped above the cap
# would never give a clean sample (every frame retransmitted before its ACK comes). After this
# many ACKs in a row that acknowledge only retransmitted frames, the clean RTO (so the cap and
# the carry) is doubled, until a clean sample sets it again. Under 20% loss both ways 6 in a row
# happens to ~0.2% of messages (0.36**6), and costs little then.
AMBIGUOUS_LIMIT = 6
CLOCK_GRANULARITY = 0.001
REORDER_MIN = 0.001  # a frame acknowledged this much later than an older unacked one: loss

SEND_WINDOW = 128  # frames in flight per peer (must stay <= frames.MAX_LAG)
RECV_WINDOW = 256  # out-of-order frames accepted per peer (>= SEND_WINDOW)
MAX_QUEUED_FRAMES = 4096  # frames waiting for the window, per peer
MAX_PEERS = 1024  # peers with send (or receive) state
MAX_HELD_BYTES = 32 * 1024 * 1024  # out-of-order + reassembly bytes, all peers together
OLD_EPOCHS = 4  # replaced streams remembered per peer, so their late frames cannot reset ours


class MessageTooLarge(ValueError):
    """The payload exceeds ``MAX_MESSAGE`` bytes; nothing was queued."""


@dataclass(frozen=True)
class Delivered:
    peer: str
    kind: int
    payload: bytes
    msg_id: int


@dataclass(frozen=True)
class Undelivered:
    peer: str
    msg_id: int
    kind: int
    payload: bytes


@dataclass(frozen=True)
class Acked:
    peer: str
    msg_id: int


Event = Delivered | Undelivered | Acked


def _tails(kind: int, msg_id: int, payload: bytes) -> list[bytes]:
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


class _SendStream:
    __slots__ = ("peer", "epoch", "next_seq", "base", "inflight", "queue", "srtt", "rttvar",
                 "rto", "base_rto", "cap", "carry", "ambiguous", "timer_due", "skip_to",
                 "skip_timeout", "skip_due", "skip_until", "live")

    def __init__(self, peer: str, epoch: int) -> None:
        self.peer = peer
        self.epoch = epoch
        self.next_seq = 0
        self.base = 0  # oldest seq still wanted: min(first in flight, first queued, next_seq)
        self.inflight: dict[int, _OutFrame] = {}  # in seq order
        self.queue: deque[_OutFrame] = deque()
        self.srtt: float | None = None
        self.rttvar = 0.0
        self.rto = RTO_INITIAL  # for new frames: base_rto, or a carried backoff up to ``carry``
        self.base_rto = RTO_INITIAL  # from the last clean sample (doubled by ambiguous ACKs)
        self.cap = RTO_MAX  # no frame's timeout backs off beyond this
        self.carry = RTO_MAX  # nor does the RTO of new frames
        self.ambiguous = 0  # ACKs in a row that acknowledged only retransmitted frames
        _set_base(self, RTO_INITIAL)
        self.timer_due: float | None = None  # the one armed heap entry of this stream
        self.skip_to: int | None = None  # a SKIP to this base is unacknowledged
        self.skip_timeout = 0.0
        self.skip_due = 0.0
        self.skip_until = 0.0
        self.live = True


def _set_base(stream: _SendStream, base_rto: float) -> None:
    """The clean RTO changed: derive the backoff cap and the carry limit from it."""
    stream.base_rto = base_rto
    stream.cap = min(RTO_MAX, max(CAP_FLOOR, CAP_FACTOR * base_rto))
    stream.carry = min(stream.cap, CARRY_FACTOR * base_rto)


class _Bucket:
    """The streams armed at one due time. Entries go stale when a stream's ``timer_due``
    changes (acknowledged, re-armed); ``pos`` skips the stale ones at the front, so checking
    the heap's head costs O(1) amortised however the streams' ACKs arrive."""

    __slots__ = ("streams", "pos")

    def __init__(self) -> None:
        self.streams: list[_SendStream] = []
        self.pos = 0


class _RecvStream:
    __slots__ = ("epoch", "expected", "buffer", "old", "asm", "asm_kind", "asm_msg",
                 "asm_count", "asm_bytes")

    def __init__(self) -> None:
        self.epoch: int | None = None
        self.expected = 0  # next seq to deliver
        self.buffer: dict[int, frames.Data] = {}  # out of order, expected < seq < +RECV_WINDOW
        self.old: deque[int] = deque(maxlen=OLD_EPOCHS)
        self.asm: list[bytes] | None = None  # fragments of the message being reassembled
        self.asm_kind = 0
        self.asm_msg = 0
        self.asm_count = 0
        self.asm_bytes = 0


class Messenger:
    """Sans-IO reliable messaging with every peer; see the module docstring."""

    def __init__(self, *, now: float, deadline: float = 10.0,
                 rng: random.Random | None = None) -> None:
        self._now = now
        self._deadline = deadline
        self._rng = rng if rng is not None else random.Random()
        self._next_msg_id = self._rng.randrange(1, frames.MSG_ID_LIMIT)
        self._send: dict[str, _SendStream] = {}
        self._recv: dict[str, _RecvStream] = {}
        self._msgs: dict[int, _OutMsg] = {}
        self._deadlines: list[tuple[float, int]] = []  # (deadline, msg_id), lazily cleaned
        # retransmission timers: a heap of (due, tiebreak, bucket), one bucket (list of streams)
        # per distinct due time, so a room message to N peers arms one heap entry, not N;
        # an entry is stale for a stream whose timer_due has changed since (checked when due)
        self._timers: list[tuple[float, int, _Bucket]] = []
        self._buckets: dict[float, _Bucket] = {}  # due -> its bucket in the heap
        self._tiebreak = itertools.count()
        self._acks: dict[str, None] = {}  # peers owed an ACK, in arrival order
        self._out: list[tuple[str, bytes]] = []
        self._events: list[Event] = []
        self._held = 0  # bytes in receive buffers and reassembly, all peers
        self.counters: Counter[str] = Counter()  # dropped/duplicate/retransmitted, for logs/tests

    # ----------------------------------------------------------------- the public interface

    def send(self, peers: Iterable[str], kind: int, payload: bytes, now: float) -> int:
        """Queue ``payload`` for every peer; returns the msg_id used in the events."""
        if kind not in KINDS:
            raise ValueError(f"unknown message kind {kind}")
        payload = bytes(payload)
        if len(payload) > MAX_MESSAGE:
            raise MessageTooLarge(f"message of {len(payload)} bytes exceeds {MAX_MESSAGE}")
        self._now = now
        msg_id = self._next_msg_id
        self._next_msg_id = msg_id % (frames.MSG_ID_LIMIT - 1) + 1
        tails = _tails(kind, msg_id, payload)
        count = len(tails)
        msg = _OutMsg(msg_id, kind, payload, now + self._deadline)
        parts = msg.parts
        streams = self._send
        out = self._out
        pack = _DATA_HEAD_PACK
        buckets = self._buckets
        tail = tails[0]
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
                parts[peer] = self._enqueue(stream, msg, tails)
                self._pump(stream, now)
                continue
            # the fan-out fast path (one fragment, window open): what _enqueue + _pump do
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

    def receive(self, peer: str, frame: bytes, now: float) -> None:
        """Handle one frame from an authenticated peer. Never raises."""
        self._now = now
        if len(frame) == _ACK_HEAD_SIZE and frame[0] == ACK:
            # the common ACK (no ranges), parsed here without an Ack object; the same checks
            # as frames.decode: a fixed-size header whose range count must be 0
            _, epoch, cum, n = _ACK_HEAD_UNPACK(frame)
            if n == 0:
                try:
                    self._on_ack(peer, epoch, cum, (), now)
                except Exception:  # our own bug: see below
                    self.counters["internal_error"] += 1
                    log.exception("internal error handling a frame from %s", peer)
                return
        try:
            decoded = frames.decode(frame)
        except ProtocolError as exc:
            self.counters["malformed"] += 1
            log.debug("dropped malformed frame from %s: %s", peer, exc)
            return
        try:
            if type(decoded) is frames.Ack:
                self._on_ack(peer, decoded.epoch, decoded.cum, decoded.ranges, now)
            elif type(decoded) is frames.Data:
                self._on_data(peer, decoded)
            else:
                self._on_skip(peer, decoded)
        except Exception:  # our own bug: loud in the log, but one peer's frame must not kill us
            self.counters["internal_error"] += 1
            log.exception("internal error handling a frame from %s", peer)

    def on_timer(self, now: float) -> None:
        """Give up expired messages, then retransmit whatever is due."""
        self._now = now
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

    def take_outgoing(self) -> list[tuple[str, bytes]]:
        """Frames to send, ACKs first (one per peer that sent us DATA since the last call)."""
        out = self._out
        if self._acks:
            acks = [(peer, self._ack_frame(st)) for peer in self._acks
                    if (st := self._recv.get(peer)) is not None and st.epoch is not None]
            self._acks.clear()
            out = acks + out
        self._out = []
        return out

    def take_events(self) -> list[Event]:
        events, self._events = self._events, []
        return events

    def forget_peer(self, peer: str, now: float) -> None:
        """The peer left: everything pending for it becomes ``Undelivered``; its state goes."""
        self._now = now
        stream = self._send.pop(peer, None)
        if stream is not None:
            stream.live = False
            for part in self._live_parts(stream):
                part.dead = True
                msg = part.msg
                msg.parts.pop(peer, None)
                if not msg.parts:
                    self._msgs.pop(msg.msg_id, None)
                self._events.append(Undelivered(peer, part.msg.msg_id, part.msg.kind,
                                                part.msg.payload))
        self._drop_recv(peer)

    def reset_peer(self, peer: str) -> None:
        """The peer's session restarted: fresh receive state, and a fresh send stream (new epoch)
        into which every message it has not acknowledged yet is queued again, whole."""
        self._drop_recv(peer)
        old = self._send.pop(peer, None)
        if old is None:
            return
        old.live = False
        stream = self._new_stream(peer)
        assert stream is not None  # we just freed its slot
        stream.srtt, stream.rttvar, stream.rto = old.srtt, old.rttvar, old.rto
        _set_base(stream, old.base_rto)
        for part in self._live_parts(old):
            msg = part.msg
            msg.parts[peer] = self._enqueue(stream, msg, _tails(msg.kind, msg.msg_id, msg.payload))
        log.info("stream to %s restarted with %d pending frames", peer, len(stream.queue))
        self._pump(stream, self._now)

    # ----------------------------------------------------------------------------- sending

    def _new_stream(self, peer: str) -> _SendStream | None:
        if len(self._send) >= MAX_PEERS and not self._evict(self._send, self._idle_send):
            return None
        stream = _SendStream(peer, self._rng.getrandbits(64))
        self._send[peer] = stream
        return stream

    @staticmethod
    def _enqueue(stream: _SendStream, msg: _OutMsg, tails: list[bytes]) -> _Part:
        part = _Part(msg, stream.next_seq, len(tails))
        seq = stream.next_seq
        queue = stream.queue
        for tail in tails:
            queue.append(_OutFrame(seq, tail, part))
            seq += 1
        stream.next_seq = seq
        return part

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
        out = self._out
        peer, epoch, rto = stream.peer, stream.epoch, stream.rto
        pack = frames.DATA_HEAD.pack
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
        pack = frames.DATA_HEAD.pack
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
                self._out.append((stream.peer, pack(DATA, stream.epoch, f.seq,
                                                    f.seq - base) + f.tail))
                self.counters["retransmits"] += 1
            if nxt is None or f.due < nxt:
                nxt = f.due
        if stream.skip_to is not None:
            if now >= stream.skip_until:
                stream.skip_to = None
            else:
                if stream.skip_due <= now:
                    self._out.append((stream.peer, frames.SKIP_FRAME.pack(
                        frames.SKIP, stream.epoch, stream.skip_to)))
                    stream.skip_due = now + stream.skip_timeout
                    stream.skip_timeout = min(stream.cap, stream.skip_timeout * BACKOFF)
                if nxt is None or stream.skip_due < nxt:
                    nxt = stream.skip_due
        if nxt is not None:
            self._arm(stream, nxt)

    def _on_ack(self, peer: str, epoch: int, cum: int, ranges: tuple[tuple[int, int], ...],
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
                self._rtt_sample(stream, now - newest)
                if inflight and highest > next(iter(inflight)):
                    self._resend_lost(stream, newest, highest, now)
            elif retransmitted:
                self._ambiguous_ack(stream)
        if stream.skip_to is not None and cum >= stream.skip_to:
            stream.skip_to = None
        if not inflight:
            if stream.skip_to is None:
                stream.timer_due = None  # nothing left to time: the heap entry goes stale
            if not queue:
                stream.base = stream.next_seq
                return
        self._advance_base(stream)
        if queue:
            self._pump(stream, now)

    def _resend_lost(self, stream: _SendStream, newest: float, highest: int, now: float) -> None:
        """Frames below ``highest`` sent well before ``newest`` (the send time of a frame just
        acknowledged) were lost, not delayed: resend them now instead of waiting for their timer,
        and without backing off, since the peer is evidently answering (RACK, RFC 8985, lite)."""
        cutoff = newest - max(REORDER_MIN, (stream.srtt or 0.0) / 4)
        base = stream.base
        pack = frames.DATA_HEAD.pack
        for seq, f in stream.inflight.items():
            if seq >= highest:
                break
            if f.sent <= cutoff:
                f.tx += 1
                f.sent = now
                f.due = now + f.timeout
                self._out.append((stream.peer, pack(DATA, stream.epoch, seq, seq - base)
                                  + f.tail))
                self.counters["fast_retransmits"] += 1

    @staticmethod
    def _rtt_sample(stream: _SendStream, rtt: float) -> None:
        """RFC 6298 section 2."""
        srtt = stream.srtt
        if srtt is None:
            srtt = rtt
            rttvar = rtt / 2
        else:
            rttvar = 0.75 * stream.rttvar + 0.25 * abs(srtt - rtt)
            srtt = 0.875 * srtt + 0.125 * rtt
        stream.srtt = srtt
        stream.rttvar = rttvar
        var = 4 * rttvar
        rto = srtt + (var if var > CLOCK_GRANULARITY else CLOCK_GRANULARITY)
        rto = RTO_MIN if rto < RTO_MIN else RTO_MAX if rto > RTO_MAX else rto
        stream.rto = rto
        if rto != stream.base_rto:
            _set_base(stream, rto)

    @staticmethod
    def _ambiguous_ack(stream: _SendStream) -> None:
        """An ACK that gives no RTT sample (Karn). A few in a row: the path may have become
        slower than the cap, so no frame ever gets through before its retransmission; double
        the clean RTO (and so the cap and the carry) until a clean sample says otherwise."""
        stream.ambiguous += 1
        if stream.ambiguous >= AMBIGUOUS_LIMIT and stream.base_rto < RTO_MAX:
            stream.ambiguous = 0
            _set_base(stream, min(RTO_MAX, 2 * stream.base_rto))
            stream.rto = max(stream.rto, stream.carry)
            log.debug("stream to %s: RTT unknown after retransmissions, RTO base %.3f s",
                      stream.peer, stream.base_rto)

    @staticmethod
    def _advance_base(stream: _SendStream) -> None:
        queue = stream.queue
        while queue and queue[0].part.dead:
            queue.popleft()
        limit = queue[0].seq if queue else stream.next_seq
        inflight = stream.inflight
        if not inflight:
            stream.base = limit
            return
        base = stream.base
        while base < limit and base not in inflight:
            base += 1
        stream.base = base

    def _expire(self, msg: _OutMsg, now: float) -> None:
        for peer, part in msg.parts.items():
            log.debug("message %d not acknowledged by %s before its deadline", msg.msg_id, peer)
            self._events.append(Undelivered(peer, msg.msg_id, msg.kind, msg.payload))
            stream = self._send.get(peer)
            if stream is None:
                continue
            old_base = stream.base
            self._drop_part(peer, part)
            self._advance_base(stream)
            if stream.base > old_base:
                # the recipient may hold later frames waiting for these; tell it to move on
                stream.skip_to = stream.base
                stream.skip_timeout = stream.rto
                stream.skip_due = now
                stream.skip_until = now + self._deadline
                self._arm(stream, now)
        msg.parts.clear()

    def _drop_part(self, peer: str, part: _Part) -> None:
        """Forget a part's frames (in flight now; queued ones lazily, via ``dead``)."""
        part.dead = True
        stream = self._send.get(peer)
        if stream is not None:
            pop = stream.inflight.pop
            for seq in range(part.first, part.first + part.count):
                pop(seq, None)

    @staticmethod
    def _live_parts(stream: _SendStream) -> list[_Part]:
        parts: dict[int, _Part] = {}
        for f in itertools.chain(stream.inflight.values(), stream.queue):
            if not f.part.dead and id(f.part) not in parts:
                parts[id(f.part)] = f.part
        return sorted(parts.values(), key=lambda p: p.first)

    # --------------------------------------------------------------------------- receiving

    def _recv_stream(self, peer: str, epoch: int, base: int) -> _RecvStream | None:
        """The receive state for ``epoch`` of ``peer``; None if that epoch was replaced."""
        st = self._recv.get(peer)
        if st is None:
            if len(self._recv) >= MAX_PEERS and not self._evict(self._recv, self._idle_recv):
                self.counters["too_many_peers"] += 1
                log.warning("no room for receive state of %s", peer)
                return None
            st = self._recv[peer] = _RecvStream()
        if st.epoch == epoch:
            return st
        if epoch in st.old:
            self.counters["old_epoch"] += 1
            return None
        if st.epoch is not None:
            log.info("%s restarted its stream (epoch %016x)", peer, epoch)
            st.old.append(st.epoch)
        self._clear_recv(st)
        st.epoch = epoch
        st.expected = base
        return st

    def _on_data(self, peer: str, d: frames.Data) -> None:
        st = self._recv_stream(peer, d.epoch, d.seq - d.lag)
        if st is None:
            return
        self._acks[peer] = None
        seq = d.seq
        if seq - d.lag > st.expected:
            self._skip_to(peer, st, seq - d.lag)
        if seq < st.expected or seq in st.buffer:
            self.counters["duplicate"] += 1
            return
        if seq >= st.expected + RECV_WINDOW:
            self.counters["beyond_window"] += 1
            return
        if seq == st.expected:
            if self._consume(peer, st, d, fresh=True):
                st.expected = seq + 1
                self._drain(peer, st)
            return
        if self._held + len(d.chunk) > MAX_HELD_BYTES:
            self.counters["held_cap"] += 1
            return
        st.buffer[seq] = d
        self._held += len(d.chunk)

    def _on_skip(self, peer: str, s: frames.Skip) -> None:
        st = self._recv_stream(peer, s.epoch, s.base)
        if st is None:
            return
        self._acks[peer] = None
        if s.base > st.expected:
            self._skip_to(peer, st, s.base)

    def _skip_to(self, peer: str, st: _RecvStream, base: int) -> None:
        """The sender no longer wants anything below ``base``: deliver what we hold, skip holes."""
        for seq in sorted(k for k in st.buffer if k < base):
            d = st.buffer.pop(seq)
            self._held -= len(d.chunk)
            if seq != st.expected:
                self._abort_asm(st)
            self._consume(peer, st, d, fresh=False)
            st.expected = seq + 1
        if st.expected < base:
            self._abort_asm(st)
            st.expected = base
        self._drain(peer, st)

    def _drain(self, peer: str, st: _RecvStream) -> None:
        buffer = st.buffer
        while st.expected in buffer:
            d = buffer.pop(st.expected)
            self._held -= len(d.chunk)
            self._consume(peer, st, d, fresh=False)
            st.expected += 1

    def _consume(self, peer: str, st: _RecvStream, d: frames.Data, *, fresh: bool) -> bool:
        """Take the next in-order frame into reassembly. False (frame not taken, not to be
        acknowledged) only when ``fresh`` and holding it would break ``MAX_HELD_BYTES``."""
        if d.index == 0:
            if st.asm is not None:
                self._abort_asm(st)
            if d.count == 1:
                self._events.append(Delivered(peer, d.kind, d.chunk, d.msg_id))
                return True
            if fresh and self._held + len(d.chunk) > MAX_HELD_BYTES:
                self.counters["held_cap"] += 1
                return False
            st.asm = [d.chunk]
            st.asm_kind, st.asm_msg, st.asm_count = d.kind, d.msg_id, d.count
            st.asm_bytes = len(d.chunk)
            self._held += len(d.chunk)
            return True
        if (st.asm is None or d.index != len(st.asm) or d.count != st.asm_count
                or d.msg_id != st.asm_msg or d.kind != st.asm_kind):
            self.counters["bad_fragment"] += 1
            log.debug("dropped out-of-place fragment %d/%d from %s", d.index, d.count, peer)
            self._abort_asm(st)
            return True
        if fresh and self._held + len(d.chunk) > MAX_HELD_BYTES:
            self.counters["held_cap"] += 1
            return False
        st.asm.append(d.chunk)
        st.asm_bytes += len(d.chunk)
        self._held += len(d.chunk)
        if st.asm_bytes > MAX_MESSAGE:
            self.counters["too_large"] += 1
            log.debug("dropped oversized message from %s", peer)
            self._abort_asm(st)
        elif len(st.asm) == st.asm_count:
            self._events.append(Delivered(peer, st.asm_kind, b"".join(st.asm), st.asm_msg))
            self._held -= st.asm_bytes
            st.asm = None
            st.asm_bytes = 0
        return True

    def _abort_asm(self, st: _RecvStream) -> None:
        if st.asm is not None:
            self.counters["broken_message"] += 1
            self._held -= st.asm_bytes
            st.asm = None
            st.asm_bytes = 0

    def _ack_frame(self, st: _RecvStream) -> bytes:
        cum = st.expected
        ranges: list[tuple[int, int]] = []
        if st.buffer:
            for seq in sorted(st.buffer):
                if ranges and ranges[-1][1] == seq:
                    ranges[-1] = (ranges[-1][0], seq + 1)
                elif len(ranges) < frames.MAX_RANGES:
                    ranges.append((seq, seq + 1))
                else:
                    break
        return frames.encode_ack(st.epoch, cum, ranges)

    def _clear_recv(self, st: _RecvStream) -> None:
        self._abort_asm(st)
        for d in st.buffer.values():
            self._held -= len(d.chunk)
        st.buffer.clear()

    def _drop_recv(self, peer: str) -> None:
        st = self._recv.pop(peer, None)
        if st is not None:
            self._clear_recv(st)
        self._acks.pop(peer, None)

    # ------------------------------------------------------------------------------- caps

    @staticmethod
    def _idle_send(stream: _SendStream) -> bool:
        return not stream.inflight and not stream.queue and stream.skip_to is None

    @staticmethod
    def _idle_recv(st: _RecvStream) -> bool:
        return not st.buffer and st.asm is None

    def _evict(self, table: dict, idle) -> bool:
        """Make room in a full per-peer table by dropping the oldest idle entry."""
        for peer, state in table.items():
            if idle(state):
                del table[peer]
                if isinstance(state, _SendStream):
                    state.live = False
                log.info("evicted idle state of %s", peer)
                return True
        return False
