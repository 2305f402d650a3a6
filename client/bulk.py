"""The bulk lane of the UDP send path: file data, always behind the chat.

The engine thread sends each turn's chat datagrams first (``PeerLink.pump``), then asks the
file layer's ``BulkSource`` for at most ``budget`` frames, has the transport seal them and
sends them. A turn is short (a few hundred microseconds), so a message typed during a transfer
waits at most one batch on our side; at the bottleneck, the streams' LEDBAT congestion control
keeps the queue the chat shares near its target delay.
"""

from __future__ import annotations

from collections.abc import Callable

from client.contracts import BulkSource, Transport
from client.peerlink import PeerLink

BUDGET = 128  # bulk frames per engine turn


class BulkPath:
    """Idle until ``attach``: the engine holds one from the start."""

    def __init__(self, budget: int = BUDGET) -> None:
        self.source: BulkSource | None = None
        self._transport: Transport | None = None
        self._send: Callable[[list[tuple[str, bytes]]], None] = lambda out: None
        self._budget = budget

    def attach(self, source: BulkSource, peers: PeerLink, transport: Transport,
               send_datagrams: Callable[[list[tuple[str, bytes]]], None]) -> None:
        """File transfer is plugged in: its stream frames from ``peers`` go to ``source``,
        and what ``source`` gives goes out sealed by ``transport``."""
        self._transport, self._send = transport, send_datagrams
        self.source = source
        peers.bulk = source.on_frame

    def wait(self, now: float, timeout: float) -> float:
        """The engine's select timeout, shortened to when the bulk lane has work."""
        due = None if self.source is None else self.source.next_deadline(now)
        return timeout if due is None else min(timeout, max(0.0, due - now))

    def run(self, now: float) -> None:
        """After the chat's datagrams: this turn's share of file data."""
        if self.source is None or self._transport is None:
            return
        frames = self.source.take_bulk(now, self._budget)
        if not frames:
            return
        wrap = self._transport.wrap
        for peer, frame in frames:
            wrap(peer, frame, now)
        self._send(self._transport.take_outgoing())
