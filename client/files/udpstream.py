"""A reliable, congestion-controlled byte stream over datagrams, sans-IO: the file data of a
transfer on the UDP path (frames: ``client.files.udpwire``).

Both ends of a stream are a ``Stream``: bytes written on one side come out, in order and once,
of ``read_into`` on the other, then the end (FIN). No sockets, threads or clocks: frames in
with ``receive(segment, now)``, frames out of ``poll(now, budget)``, ``next_deadline()`` for
the timers. Its owner serializes the calls.

Sending: segments are numbered 0, 1, 2, ...; the receiver acknowledges the next one it expects
plus up to 16 ranges it holds beyond (SACK). A segment is lost when three later ones arrived
(or at the retransmission timeout) and is sent again. The window is the smallest of the
congestion window and what the receiver advertises.

Congestion control is LEDBAT (RFC 6817) measured on the round trip as LEDBAT++ does: every
acknowledgement gives an RTT sample (the echoed timestamp); the queueing delay is that sample
minus the lowest seen lately (the base delay). Below ``target`` the window grows, above it
shrinks, so a transfer fills the link but keeps the queue at the bottleneck (where the chat's
datagrams wait too) near ``target``. Slow start doubles the window per round trip until the
delay passes half the target; a loss halves the window once per round trip; a timeout drops it
to the minimum.

Memory is flat, whatever the file size: at most ``send_buffer`` bytes written but not sent,
``max_window`` segments in flight, and on the receiving side at most ``max_window`` segments
held or unread. A segment beyond what we advertised is dropped, so a hostile peer cannot make
us hold more.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

from client.files import udpwire as uw

DUPTHRESH = 3


@dataclass
class StreamSettings:
    mss: int = uw.MAX_PAYLOAD
    max_window: int = 1024          # segments: receive buffer, and cap of the congestion window
    send_buffer: int = 1 << 20      # bytes written and not yet sent
    init_cwnd: float = 8.0
    min_cwnd: float = 2.0
    target: float = 0.05            # LEDBAT target queueing delay, seconds
    gain: float = 1.0
    rto_init: float = 0.5
    rto_min: float = 0.1
    rto_max: float = 2.0
    ack_every: int = 8              # segments in order before an acknowledgement goes out
    ack_delay: float = 0.005        # ... or this long after the first of them
    dead_after: float = 15.0        # nothing acknowledged this long while waiting: peer gone
    base_bucket: float = 60.0       # base delay: minimum over ``base_buckets`` of this length
    base_buckets: int = 10


class BaseDelay:
    """The lowest RTT over the last few buckets (RFC 6817 section 3.4.2: a route change may
    raise the true base; an old minimum then ages out)."""

    def __init__(self, bucket: float, buckets: int) -> None:
        self._bucket = bucket
        self._mins: deque[tuple[float, float]] = deque(maxlen=buckets)

    def update(self, rtt: float, now: float) -> float:
        if self._mins and now - self._mins[-1][0] < self._bucket:
            start, low = self._mins[-1]
            if rtt < low:
                self._mins[-1] = (start, rtt)
        else:
            self._mins.append((now, rtt))
        return min(m for _s, m in self._mins)


class _Out:
    __slots__ = ("payload", "fin", "sent_at", "lost")

    def __init__(self, payload: bytes, fin: bool, now: float) -> None:
        self.payload = payload
        self.fin = fin
        self.sent_at = now
        self.lost = False


class Stream:
    """One end of one stream. ``error`` (a reason in words) once it broke; ``eof`` once the
    other side's FIN was read up to."""

    def __init__(self, sid: int, now: float, settings: StreamSettings | None = None) -> None:
        self.sid = sid
        self.cfg = cfg = settings or StreamSettings()
        self.error: str | None = None
        self.reset_by_peer = False
        self._reset_out = False
        # sending
        self._unsent: deque[bytes] = deque()
        self._unsent_off = 0
        self._unsent_len = 0
        self._fin_wanted = False
        self._fin_seq: int | None = None
        self._snd_nxt = 0
        self._snd_una = 0
        self._inflight: dict[int, _Out] = {}
        self._lost: deque[int] = deque()
        self._limit = cfg.init_cwnd  # the peer's window: seqs below this may be sent
        self._limit_ack = 0
        self.cwnd = cfg.init_cwnd
        self._slow_start = True
        self._recovery = -1
        self._flight_max = 0
        self._srtt: float | None = None
        self._rttvar = 0.0
        self._rto = cfg.rto_init
        self._backoff = 1
        self._rto_at = math.inf
        self._last_heard = now
        self._base = BaseDelay(cfg.base_bucket, cfg.base_buckets)
        self.qdelay = 0.0
        self._prefix: bytes | None = None
        self.stats = {"sent": 0, "resent": 0, "losses": 0, "timeouts": 0}
        # receiving
        self._rcv_nxt = 0
        self._ooo: dict[int, tuple[bytes, bool]] = {}
        self._ready: deque[bytes] = deque()
        self._ready_off = 0
        self._ready_len = 0
        self.eof = False
        self._echo = 0
        self._ack_now = False
        self._ack_due = math.inf
        self._unacked_rx = 0
        self._adv_last = cfg.max_window
        self.dropped = 0

    # ---- the writer's side -------------------------------------------------------------------

    def writable(self) -> int:
        return 0 if self._fin_wanted else max(0, self.cfg.send_buffer - self._unsent_len)

    def write(self, data: bytes | memoryview) -> int:
        """Take as much of ``data`` as the send buffer has room for; how much."""
        n = min(len(data), self.writable())
        if n:
            self._unsent.append(bytes(data[:n]))
            self._unsent_len += n
        return n

    def close_write(self) -> None:
        """No more bytes: a FIN follows the last of them."""
        self._fin_wanted = True

    def abort(self) -> None:
        """Break the stream now; the next ``poll`` tells the peer (RESET)."""
        if self.error is None:
            self.error = "closed"
            self._reset_out = True

    def flushed(self) -> bool:
        """Everything written, and the FIN, acknowledged."""
        return self._fin_seq is not None and self._snd_una > self._fin_seq

    # ---- the reader's side -------------------------------------------------------------------

    def readable(self) -> int:
        return self._ready_len

    def owes_ack(self) -> bool:
        """An acknowledgement (e.g. a window update after a read) should go out now."""
        return self._ack_now

    def read_into(self, view: memoryview) -> int:
        got = 0
        want = len(view)
        while got < want and self._ready:
            chunk = self._ready[0]
            take = min(want - got, len(chunk) - self._ready_off)
            view[got:got + take] = memoryview(chunk)[self._ready_off:self._ready_off + take]
            got += take
            self._ready_off += take
            if self._ready_off == len(chunk):
                self._ready.popleft()
                self._ready_off = 0
        self._ready_len -= got
        # a window we had nearly closed opens again: say so, or the sender waits for a probe
        if got and self._adv_last < self.cfg.max_window // 2 <= self._window():
            self._ack_now = True
        return got

    # ---- frames in ---------------------------------------------------------------------------

    def receive(self, seg: uw.Segment, now: float) -> None:
        if self.error is not None:
            return
        if seg.flags & uw.FLAG_RESET:
            self.error = "the peer closed the stream"
            self.reset_by_peer = True
            return
        self._last_heard = now
        self._on_ack(seg, now)
        if seg.has_seq:
            self._on_data(seg, now)
        if seg.flags & uw.FLAG_PROBE:
            self._ack_now = True

    def _on_ack(self, seg: uw.Segment, now: float) -> None:
        ack = seg.ack
        if ack > self._snd_nxt:
            self.dropped += 1  # acknowledges what we never sent: ignore the whole ack
            return
        newly = 0
        inflight = self._inflight
        if ack > self._snd_una:
            for seq in range(self._snd_una, ack):
                if inflight.pop(seq, None) is not None:
                    newly += 1
            self._snd_una = ack
        highest = -1
        for first, end in seg.sacks:
            first, end = max(first, ack), min(end, self._snd_nxt)
            for seq in range(first, end):
                if inflight.pop(seq, None) is not None:
                    newly += 1
            highest = max(highest, end - 1)
        if ack >= self._limit_ack:
            self._limit_ack = ack
            self._limit = ack + min(seg.window, self.cfg.max_window)
        if highest >= 0:
            self._detect_losses(highest)
        if newly:
            self._backoff = 1
            self._rto_at = now + self._rto if inflight or self._has_new() else math.inf
            if seg.echo:
                rtt = ((int(now * 1e6) - seg.echo) % uw.U32) / 1e6
                if rtt < 60.0:
                    self._on_rtt(rtt, now)
            self._grow(newly)

    def _detect_losses(self, highest: int) -> None:
        for seq, out in self._inflight.items():
            if seq > highest - DUPTHRESH:
                break
            if not out.lost:
                out.lost = True
                self._lost.append(seq)
                self._congestion(seq)

    def _congestion(self, seq: int) -> None:
        """A loss: halve the window, once per round trip (the recovery point)."""
        self.stats["losses"] += 1
        if seq >= self._recovery:
            self.cwnd = max(self.cfg.min_cwnd, self.cwnd / 2)
            self._slow_start = False
            self._recovery = self._snd_nxt

    def _on_rtt(self, rtt: float, now: float) -> None:
        cfg = self.cfg
        if self._srtt is None:
            self._srtt, self._rttvar = rtt, rtt / 2
        else:
            self._rttvar = 0.75 * self._rttvar + 0.25 * abs(self._srtt - rtt)
            self._srtt = 0.875 * self._srtt + 0.125 * rtt
        self._rto = min(cfg.rto_max, max(cfg.rto_min, self._srtt + 4 * self._rttvar))
        self.qdelay = rtt - self._base.update(rtt, now)

    def _grow(self, acked: int) -> None:
        cfg = self.cfg
        if self._slow_start and self.qdelay > cfg.target / 2:
            self._slow_start = False
        if self._slow_start:
            cwnd = self.cwnd + acked
        else:
            off_target = (cfg.target - self.qdelay) / cfg.target
            # LEDBAT++: above the target the window shrinks at most by half per round trip
            cwnd = self.cwnd + max(cfg.gain * off_target * acked / self.cwnd, -acked / 2)
        # not beyond what we actually used (a slow reader must not inflate the window)
        cap = min(float(cfg.max_window), self._flight_max + 2 * cfg.init_cwnd)
        self.cwnd = max(cfg.min_cwnd, min(cwnd, cap))

    def _on_data(self, seg: uw.Segment, now: float) -> None:
        seq = seg.seq
        self._echo = seg.ts
        nxt = self._rcv_nxt
        if seq < nxt or self.eof:
            self._ack_now = True  # a repeat: our acknowledgement was lost
            return
        if seq >= nxt + self._window():
            self.dropped += 1  # beyond what we advertised: never held
            self._ack_now = True
            return
        fin = bool(seg.flags & uw.FLAG_FIN)
        if seq != nxt:
            self._ooo.setdefault(seq, (seg.payload, fin))
            self._ack_now = True  # out of order: tell the sender at once (fast retransmit)
            return
        had_holes = bool(self._ooo)
        self._deliver(seg.payload, fin)
        nxt += 1
        while nxt in self._ooo and not self.eof:
            self._deliver(*self._ooo.pop(nxt))
            nxt += 1
        self._rcv_nxt = nxt
        if self.eof:
            self._ooo.clear()
        self._unacked_rx += 1
        if had_holes or fin or self._unacked_rx >= self.cfg.ack_every:
            self._ack_now = True
        elif self._ack_due == math.inf:
            self._ack_due = now + self.cfg.ack_delay

    def _deliver(self, payload: bytes, fin: bool) -> None:
        if payload:
            self._ready.append(payload)
            self._ready_len += len(payload)
        if fin:
            self.eof = True

    def _window(self) -> int:
        """Segments we accept from ``_rcv_nxt`` on: the buffer less what waits to be read."""
        return max(0, self.cfg.max_window - -(-self._ready_len // self.cfg.mss))

    # ---- frames out --------------------------------------------------------------------------

    def poll(self, now: float, budget: int) -> list[bytes]:
        """Frames to send now (at most ``budget``): repeats of lost segments first, then new
        ones as the windows allow, and an acknowledgement if one is owed."""
        if self.error is not None:
            if self._reset_out:
                self._reset_out = False
                return [uw.encode(uw.Segment(self.sid, uw.FLAG_RESET))]
            return []
        self._timers(now)
        if self.error is not None:
            return []
        out: list[bytes] = []
        inflight = self._inflight
        self._prefix = None     # the DATA header of this poll: the same for all its segments
        pipe = len(inflight) - len(self._lost)
        probe = False
        while len(out) < budget:
            if self._lost and pipe < self.cwnd:
                seq = self._lost.popleft()
                o = inflight.get(seq)
                if o is None:
                    continue
                o.lost = False
                o.sent_at = now
                self.stats["resent"] += 1
                out.append(self._segment(now, seq, o))
            elif pipe < self.cwnd and self._snd_nxt < self._limit and self._has_new():
                seq = self._snd_nxt
                o = self._next_segment(now)
                inflight[seq] = o
                self._snd_nxt += 1
                self.stats["sent"] += 1
                out.append(self._segment(now, seq, o))
            else:
                probe = (not inflight and self._has_new() and self._snd_nxt >= self._limit
                         and now >= self._rto_at)
                break
            pipe += 1
        if out or probe:
            self._flight_max = max(self._flight_max, pipe)
            if self._rto_at == math.inf or probe:
                if probe:
                    self._backoff = min(self._backoff * 2, 64)
                self._rto_at = now + self._interval()
        if probe or (self._ack_now or now >= self._ack_due) and not out:
            flags = uw.FLAG_PROBE if probe else 0
            out.append(uw.encode(self._header(now, flags, uw.MAX_SACKS)))
        if out:
            self._ack_now, self._ack_due, self._unacked_rx = False, math.inf, 0
            self._adv_last = self._window()
        return out

    def _has_new(self) -> bool:
        return self._unsent_len > 0 or self._fin_wanted and self._fin_seq is None

    def _next_segment(self, now: float) -> _Out:
        if not self._unsent_len:
            self._fin_seq = self._snd_nxt
            return _Out(b"", True, now)
        mss = self.cfg.mss
        first = self._unsent[0]
        off = self._unsent_off
        if len(first) - off >= mss:
            payload = first[off:off + mss]
            off += mss
        else:
            parts = []
            need = mss
            while need and self._unsent:
                first = self._unsent[0]
                piece = first[off:off + need]
                parts.append(piece)
                need -= len(piece)
                off += len(piece)
                if off == len(first):
                    self._unsent.popleft()
                    off = 0
            payload = b"".join(parts)
        if self._unsent and off == len(self._unsent[0]):
            self._unsent.popleft()
            off = 0
        self._unsent_off = off
        self._unsent_len -= len(payload)
        return _Out(payload, False, now)

    def _header(self, now: float, flags: int, max_sacks: int, seq: int = 0,
                payload: bytes = b"") -> uw.Segment:
        return uw.Segment(self.sid, flags, int(now * 1e6) % uw.U32, self._echo, self._rcv_nxt,
                          self._window(), self._sacks(max_sacks), seq, payload)

    def _segment(self, now: float, seq: int, o: _Out) -> bytes:
        if o.fin or self._ooo:
            flags = uw.FLAG_FIN if o.fin else uw.FLAG_DATA
            return uw.encode(self._header(now, flags, uw.DATA_SACKS, seq, o.payload))
        prefix = self._prefix
        if prefix is None:
            prefix = self._prefix = uw.data_prefix(self.sid, int(now * 1e6) % uw.U32,
                                                   self._echo, self._rcv_nxt, self._window())
        return prefix + uw.SEQ.pack(seq) + o.payload

    def _sacks(self, limit: int) -> tuple[tuple[int, int], ...]:
        if not self._ooo:
            return ()
        ranges: list[tuple[int, int]] = []
        for seq in sorted(self._ooo):
            if ranges and ranges[-1][1] == seq:
                ranges[-1] = (ranges[-1][0], seq + 1)
            elif len(ranges) == limit:
                break
            else:
                ranges.append((seq, seq + 1))
        return tuple(ranges)

    # ---- timers ------------------------------------------------------------------------------

    def _waiting(self) -> bool:
        return bool(self._inflight) or self._has_new()

    def _timers(self, now: float) -> None:
        if self._waiting() and now - self._last_heard >= self.cfg.dead_after:
            self.error = "the peer stopped responding"
            return
        if self._inflight and now >= self._rto_at:
            # timeout: everything in flight counts as lost; the window starts over
            self.stats["timeouts"] += 1
            for seq, o in self._inflight.items():
                if not o.lost:
                    o.lost = True
                    self._lost.append(seq)
            self.cwnd = self.cfg.min_cwnd
            self._slow_start = False
            self._recovery = self._snd_nxt
            self._backoff = min(self._backoff * 2, 64)
            self._rto_at = now + self._interval()

    def _interval(self) -> float:
        """The retransmission (or window probe) timeout, backed off; a few tries always fit
        in ``dead_after``, so an answering peer is never taken for gone."""
        return min(self._rto * self._backoff, self.cfg.dead_after / 4)

    def next_deadline(self, now: float) -> float | None:
        """When ``poll`` has something to do; ``now`` if it has at once; None: nothing."""
        if self.error is not None:
            return now if self._reset_out else None
        if self._ack_now:
            return now
        pipe = len(self._inflight) - len(self._lost)
        if pipe < self.cwnd and (self._lost or self._snd_nxt < self._limit and self._has_new()):
            return now
        best = self._ack_due
        if self._inflight or self._has_new():
            best = min(best, self._rto_at, self._last_heard + self.cfg.dead_after)
        return None if best == math.inf else best
