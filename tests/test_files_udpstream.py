"""The UDP file stream (client/files/udpstream.py, udpwire.py), sans-IO with fake time: bytes
arrive in order and once through loss, reordering and duplication; LEDBAT fills a bottleneck
while keeping its queue near the target; a hostile peer cannot make us hold more than we
advertised; the codec never raises anything but ProtocolError."""

from __future__ import annotations

import contextlib
import heapq
import os
import random

from hypothesis import given, settings
from hypothesis import strategies as st

from client.files import udpwire as uw
from client.files.udpstream import Stream, StreamSettings
from models.errors import ProtocolError


class Link:
    """One direction: a bottleneck of ``rate`` bytes/s with a queue, then ``delay`` seconds;
    ``fate(i)`` says what happens to the i-th frame: "ok", "drop" or "dup"."""

    def __init__(self, rate: float, delay: float, fate=lambda i: "ok", jitter: float = 0.0,
                 rng: random.Random | None = None) -> None:
        self.rate, self.delay, self.fate, self.jitter = rate, delay, fate, jitter
        self.rng = rng or random.Random(1)
        self.busy = 0.0
        self.n = 0
        self.queue_delays: list[float] = []

    def send(self, frame: bytes, now: float, events: list, dest: int) -> None:
        i, self.n = self.n, self.n + 1
        what = self.fate(i)
        if what == "drop":
            return
        start = max(now, self.busy)
        self.queue_delays.append(start - now)
        self.busy = start + len(frame) / self.rate
        for k in range(2 if what == "dup" else 1):
            at = self.busy + self.delay + self.rng.random() * self.jitter + k * 0.001
            heapq.heappush(events, (at, id(frame) + k, dest, frame))


def run(data: bytes, ab: Link, ba: Link, *, cfg: StreamSettings | None = None,
        until: float = 120.0, read_chunk: int = 1 << 16):
    """Send ``data`` from a to b over the links; (what b read, end time, a, b)."""
    a, b = Stream(7, 0.0, cfg), Stream(7, 0.0, cfg)
    ends = (a, b)
    links = (ab, ba)
    events: list = []
    got = bytearray()
    pos = 0
    now = 0.0
    buf = memoryview(bytearray(read_chunk))
    while now < until:
        if pos < len(data):
            pos += a.write(memoryview(data)[pos:pos + (1 << 18)])
        if pos == len(data):
            a.close_write()
        while (n := b.read_into(buf)):
            got += buf[:n]
        for i, s in enumerate(ends):
            for frame in s.poll(now, 64):
                links[i].send(frame, now, events, 1 - i)
        if b.eof and a.flushed() and not b.readable():
            return bytes(got), now, a, b
        if a.error or b.error:
            raise AssertionError(f"stream broke: {a.error} / {b.error}")
        due = [d for s in ends if (d := s.next_deadline(now)) is not None]
        if events:
            due.append(events[0][0])
        if not due:
            raise AssertionError("stalled: nothing to do and not done")
        now = max(now, min(due))
        while events and events[0][0] <= now:
            _at, _k, dest, frame = heapq.heappop(events)
            ends[dest].receive(uw.decode(frame), now)
    raise AssertionError(f"not done by {until}: got {len(got)} of {len(data)}")


def test_a_file_arrives_whole_and_in_order_over_a_clean_link() -> None:
    data = os.urandom(3 << 20)
    got, end, a, b = run(data, Link(50e6, 0.005), Link(50e6, 0.005))
    assert got == data and b.eof and a.flushed()
    assert end < 1.0  # 3 MiB at 50 MB/s with 10 ms RTT: slow start included


def test_lost_segments_are_sent_again() -> None:
    rng = random.Random(5)
    data = os.urandom(1 << 20)
    lossy = Link(20e6, 0.01, fate=lambda i: "drop" if rng.random() < 0.05 else "ok")
    back = Link(20e6, 0.01, fate=lambda i: "drop" if rng.random() < 0.05 else "ok")
    got, _end, _a, _b = run(data, lossy, back)
    assert got == data


def test_ledbat_fills_the_bottleneck_and_keeps_its_queue_near_the_target() -> None:
    rate = 2.5e6  # 20 Mbit/s
    data = os.urandom(8 << 20)
    ab = Link(rate, 0.01)
    got, end, a, _b = run(data, ab, Link(50e6, 0.01))
    assert got == data
    assert len(data) / end >= 0.8 * rate
    late = ab.queue_delays[len(ab.queue_delays) // 2:]  # after slow start
    assert max(late) <= 2.5 * a.cfg.target


def test_a_timeout_recovers_a_burst_loss_and_a_lost_fin() -> None:
    data = os.urandom(200_000)
    drops = set(range(20, 60)) | {181}   # a burst, then (about) the FIN

    got, _end, _a, b = run(data, Link(10e6, 0.01, fate=lambda i: "drop" if i in drops else "ok"),
                           Link(10e6, 0.01))
    assert got == data and b.eof


@settings(max_examples=40, deadline=None)
@given(st.lists(st.sampled_from(["ok", "ok", "ok", "drop", "dup"]), min_size=1, max_size=80),
       st.lists(st.sampled_from(["ok", "ok", "drop", "dup"]), min_size=1, max_size=40),
       st.integers(0, 60_000), st.integers(0, 2**32))
def test_any_loss_and_duplication_pattern_delivers_the_bytes_exactly(fwd, back, size,
                                                                       seed) -> None:
    data = random.Random(seed).randbytes(size)
    rng = random.Random(seed)
    ab = Link(5e6, 0.01, fate=lambda i: fwd[i % len(fwd)], jitter=0.02, rng=rng)
    ba = Link(5e6, 0.01, fate=lambda i: back[i % len(back)], jitter=0.02, rng=rng)
    if "ok" not in fwd or "ok" not in back:
        return
    got, _end, _a, _b = run(data, ab, ba, until=600.0)
    assert got == data


def test_a_hostile_peer_cannot_make_us_hold_more_than_the_window() -> None:
    cfg = StreamSettings(max_window=64)
    s = Stream(1, 0.0, cfg)
    for seq in range(0, 10_000, 3):   # far beyond the window, and never read
        s.receive(uw.Segment(1, uw.FLAG_DATA, seq=seq, payload=bytes(uw.MAX_PAYLOAD)), 0.0)
    for seq in range(1, 10_000):
        s.receive(uw.Segment(1, uw.FLAG_DATA, seq=seq, payload=bytes(uw.MAX_PAYLOAD)), 0.0)
    held = s.readable() + len(s._ooo) * uw.MAX_PAYLOAD
    assert held <= 64 * uw.MAX_PAYLOAD
    assert s.dropped > 0
    # acknowledging what we never sent changes nothing
    s.receive(uw.Segment(1, 0, ack=10**9, window=10**6), 0.0)
    assert s.cwnd == cfg.init_cwnd


def test_the_writer_is_held_at_the_send_buffer() -> None:
    s = Stream(1, 0.0, StreamSettings(send_buffer=100_000))
    assert s.write(bytes(150_000)) == 100_000
    assert s.write(b"x") == 0
    assert len(s.poll(0.0, 1000)) == 8    # the initial window, no more before any ack


def test_reset_and_silence_break_the_stream() -> None:
    a, b = Stream(3, 0.0), Stream(3, 0.0)
    a.abort()
    (frame,) = a.poll(0.0, 10)
    b.receive(uw.decode(frame), 0.0)
    assert b.error and b.reset_by_peer
    c = Stream(4, 0.0, StreamSettings(dead_after=5.0))
    c.write(b"hello")
    assert c.poll(0.0, 10)
    t = 0.0
    while c.error is None and t < 10:
        t = c.next_deadline(t) or t + 1
        c.poll(t, 10)
    assert c.error == "the peer stopped responding" and 5.0 <= t < 6.0


def test_a_closed_window_is_probed_and_reopened() -> None:
    cfg = StreamSettings(max_window=8)
    data = os.urandom(50_000)
    a, b = Stream(1, 0.0, cfg), Stream(1, 0.0, cfg)
    a.write(data)
    a.close_write()
    now = 0.0
    got = bytearray()
    buf = memoryview(bytearray(4096))
    for step in range(2000):
        for frame in a.poll(now, 64):
            b.receive(uw.decode(frame), now)
        for frame in b.poll(now, 64):
            a.receive(uw.decode(frame), now)
        if step % 50 == 49:     # a slow reader
            while (n := b.read_into(buf)):
                got += buf[:n]
        if b.eof and not b.readable():
            break
        due = [d for s in (a, b) if (d := s.next_deadline(now)) is not None]
        now = max(now + 0.001, min(due, default=now + 0.01))
    assert bytes(got) == data


@given(st.binary(max_size=1300))
def test_decoding_arbitrary_bytes_raises_only_protocol_error(data: bytes) -> None:
    with contextlib.suppress(ProtocolError):
        uw.decode(data)
    with contextlib.suppress(ProtocolError):
        uw.decode(bytes([uw.STREAM]) + data)


@given(st.integers(0, 2**64 - 1), st.sampled_from([0, uw.FLAG_DATA, uw.FLAG_FIN,
                                                   uw.FLAG_PROBE, uw.FLAG_DATA | uw.FLAG_PROBE]),
       st.integers(0, 2**32 - 1), st.integers(0, 2**32 - 1), st.integers(0, 2**40),
       st.integers(0, 2**32 - 1), st.lists(st.tuples(st.integers(1, 1000), st.integers(1, 99)),
                                           max_size=2),
       st.integers(0, 2**63), st.binary(max_size=uw.MAX_PAYLOAD))
def test_segments_round_trip(sid, flags, ts, echo, ack, window, ranges, seq, payload) -> None:
    sacks = tuple((ack + off, ack + off + n) for off, n in ranges)
    has_seq = bool(flags & (uw.FLAG_DATA | uw.FLAG_FIN))
    seg = uw.Segment(sid, flags, ts, echo, ack, window, sacks, seq if has_seq else 0,
                     payload if flags & uw.FLAG_DATA else b"")
    frame = uw.encode(seg)
    assert len(frame) <= 1165
    assert uw.decode(frame) == seg


@given(st.integers(0, 2**64 - 1), st.integers(0, 2**32 - 1), st.integers(0, 2**32 - 1),
       st.integers(0, 2**63), st.integers(0, 2**32 - 1), st.integers(0, 2**63),
       st.binary(max_size=uw.MAX_PAYLOAD))
def test_the_hot_path_encodes_what_encode_does(sid, ts, echo, ack, window, seq, payload) -> None:
    fast = uw.data_prefix(sid, ts, echo, ack, window) + uw.SEQ.pack(seq) + payload
    assert fast == uw.encode(uw.Segment(sid, uw.FLAG_DATA, ts, echo, ack, window, (), seq,
                                        payload))
