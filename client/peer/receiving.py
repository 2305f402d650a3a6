"""The Messenger's receiving half: in-order delivery, reassembly, duplicates, ACKs to send.

Sans-IO (``client.peer.messenger`` explains the protocol): fragments are delivered in seq order,
out-of-order ones are buffered in a bounded window, duplicates dropped; every peer that sent
DATA (or a SKIP) since the last ``take_acks`` gets one ACK, cumulative plus selective ranges.
"""

from __future__ import annotations

import logging
from collections import Counter, deque

from client.peer.outcomes import MAX_MESSAGE, Delivered, Event
from models import frames

log = logging.getLogger(__name__)

RECV_WINDOW = 256  # out-of-order frames accepted per peer (>= sending.SEND_WINDOW)
MAX_PEERS = 1024  # peers with receive state
MAX_HELD_BYTES = 32 * 1024 * 1024  # out-of-order + reassembly bytes, all peers together
OLD_EPOCHS = 4  # replaced streams remembered per peer, so their late frames cannot reset ours


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

    def idle(self) -> bool:
        return not self.buffer and self.asm is None

    def ack_frame(self) -> bytes:
        cum = self.expected
        ranges: list[tuple[int, int]] = []
        if self.buffer:
            for seq in sorted(self.buffer):
                if ranges and ranges[-1][1] == seq:
                    ranges[-1] = (ranges[-1][0], seq + 1)
                elif len(ranges) < frames.MAX_RANGES:
                    ranges.append((seq, seq + 1))
                else:
                    break
        return frames.encode_ack(self.epoch, cum, ranges)


class Receiver:
    """Every peer's receive stream. ``held``: bytes buffered or in reassembly, all peers."""

    def __init__(self, *, events: list[Event], counters: Counter[str]) -> None:
        self._recv: dict[str, _RecvStream] = {}
        self._acks: dict[str, None] = {}  # peers owed an ACK, in arrival order
        self._events = events
        self.counters = counters
        self.held = 0

    def take_acks(self) -> list[tuple[str, bytes]]:
        """One ACK for each peer that sent DATA or SKIP since the last call."""
        if not self._acks:
            return []
        acks = [(peer, st.ack_frame()) for peer in self._acks
                if (st := self._recv.get(peer)) is not None and st.epoch is not None]
        self._acks.clear()
        return acks

    def drop(self, peer: str) -> None:
        st = self._recv.pop(peer, None)
        if st is not None:
            self._clear(st)
        self._acks.pop(peer, None)

    def on_data(self, peer: str, d: frames.Data) -> None:
        st = self._stream(peer, d.epoch, d.seq - d.lag)
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
        if self.held + len(d.chunk) > MAX_HELD_BYTES:
            self.counters["held_cap"] += 1
            return
        st.buffer[seq] = d
        self.held += len(d.chunk)

    def on_skip(self, peer: str, s: frames.Skip) -> None:
        st = self._stream(peer, s.epoch, s.base)
        if st is None:
            return
        self._acks[peer] = None
        if s.base > st.expected:
            self._skip_to(peer, st, s.base)

    # ----------------------------------------------------------------------------- internals

    def _stream(self, peer: str, epoch: int, base: int) -> _RecvStream | None:
        """The receive state for ``epoch`` of ``peer``; None if that epoch was replaced."""
        st = self._recv.get(peer)
        if st is None:
            if len(self._recv) >= MAX_PEERS and not self._evict():
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
        self._clear(st)
        st.epoch = epoch
        st.expected = base
        return st

    def _evict(self) -> bool:
        """Make room in a full table by dropping the oldest idle stream."""
        for peer, st in self._recv.items():
            if st.idle():
                del self._recv[peer]
                log.info("evicted idle state of %s", peer)
                return True
        return False

    def _skip_to(self, peer: str, st: _RecvStream, base: int) -> None:
        """The sender no longer wants anything below ``base``: deliver what we hold, skip holes."""
        for seq in sorted(k for k in st.buffer if k < base):
            d = st.buffer.pop(seq)
            self.held -= len(d.chunk)
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
            self.held -= len(d.chunk)
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
            if fresh and self.held + len(d.chunk) > MAX_HELD_BYTES:
                self.counters["held_cap"] += 1
                return False
            st.asm = [d.chunk]
            st.asm_kind, st.asm_msg, st.asm_count = d.kind, d.msg_id, d.count
            st.asm_bytes = len(d.chunk)
            self.held += len(d.chunk)
            return True
        if (st.asm is None or d.index != len(st.asm) or d.count != st.asm_count
                or d.msg_id != st.asm_msg or d.kind != st.asm_kind):
            self.counters["bad_fragment"] += 1
            log.debug("dropped out-of-place fragment %d/%d from %s", d.index, d.count, peer)
            self._abort_asm(st)
            return True
        if fresh and self.held + len(d.chunk) > MAX_HELD_BYTES:
            self.counters["held_cap"] += 1
            return False
        st.asm.append(d.chunk)
        st.asm_bytes += len(d.chunk)
        self.held += len(d.chunk)
        if st.asm_bytes > MAX_MESSAGE:
            self.counters["too_large"] += 1
            log.debug("dropped oversized message from %s", peer)
            self._abort_asm(st)
        elif len(st.asm) == st.asm_count:
            self._events.append(Delivered(peer, st.asm_kind, b"".join(st.asm), st.asm_msg))
            self.held -= st.asm_bytes
            st.asm = None
            st.asm_bytes = 0
        return True

    def _abort_asm(self, st: _RecvStream) -> None:
        if st.asm is not None:
            self.counters["broken_message"] += 1
            self.held -= st.asm_bytes
            st.asm = None
            st.asm_bytes = 0

    def _clear(self, st: _RecvStream) -> None:
        self._abort_asm(st)
        for d in st.buffer.values():
            self.held -= len(d.chunk)
        st.buffer.clear()
