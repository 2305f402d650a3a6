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

BUDGET = 128  # bulk frames per engine turn


class BulkPath:
    def __init__(self, source: BulkSource, transport: Transport,
                 send_datagrams: Callable[[list[tuple[str, bytes]]], None],
                 budget: int = BUDGET) -> None:
        self.source = source
        self._transport = transport
        self._send = send_datagrams
        self._budget = budget

    def wait(self, now: float, timeout: float) -> float:
        """The engine's select timeout, shortened to when the bulk lane has work."""
        due = self.source.next_deadline(now)
        return timeout if due is None else min(timeout, max(0.0, due - now))

    def run(self, now: float) -> None:
        """After the chat's datagrams: this turn's share of file data."""
        frames = self.source.take_bulk(now, self._budget)
        if not frames:
            return
        wrap = self._transport.wrap
        for peer, frame in frames:
            wrap(peer, frame, now)
        self._send(self._transport.take_outgoing())
