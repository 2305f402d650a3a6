"""A send stream's retransmission timeout: RFC 6298 SRTT/RTTVAR, Karn's rule, bounded backoff.

See ``client.peer.messenger`` for how the Messenger uses it; the constants are tuned there.
"""

from __future__ import annotations

import logging

log = logging.getLogger(__name__)

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


class RtoState:
    """The timing state of one send stream (a base class: the stream's slots hold it)."""

    __slots__ = ("peer", "srtt", "rttvar", "rto", "base_rto", "cap", "carry", "ambiguous")

    def __init__(self, peer: str) -> None:
        self.peer = peer
        self.srtt: float | None = None
        self.rttvar = 0.0
        self.rto = RTO_INITIAL  # for new frames: base_rto, or a carried backoff up to ``carry``
        self.base_rto = RTO_INITIAL  # from the last clean sample (doubled by ambiguous ACKs)
        self.cap = RTO_MAX  # no frame's timeout backs off beyond this
        self.carry = RTO_MAX  # nor does the RTO of new frames
        self.ambiguous = 0  # ACKs in a row that acknowledged only retransmitted frames
        self.set_base(RTO_INITIAL)

    def set_base(self, base_rto: float) -> None:
        """The clean RTO changed: derive the backoff cap and the carry limit from it."""
        self.base_rto = base_rto
        self.cap = min(RTO_MAX, max(CAP_FLOOR, CAP_FACTOR * base_rto))
        self.carry = min(self.cap, CARRY_FACTOR * base_rto)

    def take_timing(self, old: RtoState) -> None:
        """Continue from ``old``'s estimates (a restarted stream to the same peer)."""
        self.srtt, self.rttvar, self.rto = old.srtt, old.rttvar, old.rto
        self.set_base(old.base_rto)

    def rtt_sample(self, rtt: float) -> None:
        """RFC 6298 section 2."""
        srtt = self.srtt
        if srtt is None:
            srtt = rtt
            rttvar = rtt / 2
        else:
            rttvar = 0.75 * self.rttvar + 0.25 * abs(srtt - rtt)
            srtt = 0.875 * srtt + 0.125 * rtt
        self.srtt = srtt
        self.rttvar = rttvar
        var = 4 * rttvar
        rto = srtt + (var if var > CLOCK_GRANULARITY else CLOCK_GRANULARITY)
        rto = RTO_MIN if rto < RTO_MIN else RTO_MAX if rto > RTO_MAX else rto
        self.rto = rto
        if rto != self.base_rto:
            self.set_base(rto)

    def ambiguous_ack(self) -> None:
        """An ACK that gives no RTT sample (Karn). A few in a row: the path may have become
        slower than the cap, so no frame ever gets through before its retransmission; double
        the clean RTO (and so the cap and the carry) until a clean sample says otherwise."""
        self.ambiguous += 1
        if self.ambiguous >= AMBIGUOUS_LIMIT and self.base_rto < RTO_MAX:
            self.ambiguous = 0
            self.set_base(min(RTO_MAX, 2 * self.base_rto))
            self.rto = max(self.rto, self.carry)
            log.debug("stream to %s: RTT unknown after retransmissions, RTO base %.3f s",
                      self.peer, self.base_rto)
