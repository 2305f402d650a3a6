"""Messages that wait, sans-IO: which of our private lines the user must see as waiting,
delivered later or failed. The lines themselves persist in ``History`` (its outbox table);
this only decides the notices, so each private line shows exactly one outcome after "waiting".

Engine use (times in seconds, as everywhere):

* at start: ``restored(history.waiting())`` -> a ``Waiting`` per line still queued;
* ``/msg bob text``: ``line = channels.private(...)``, ``history.queue(line)``,
  ``sent(line, online=bob is online)``;
* Messenger ``Undelivered`` of a chat payload: ``undelivered(payload)``;
* ``ReceiptReceived(peer, ids)``: ``delivered(history.delivered(peer, ids))``;
* daily (or at start): ``failed(history.expire(now_ms, MAX_WAIT_MS))``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from client.chat import events as ev
from client.chat import wire
from models.errors import ProtocolError

log = logging.getLogger(__name__)

MAX_WAIT_MS = 7 * 24 * 3600 * 1000  # a private line not delivered within a week has failed
MAX_SHOWN = 10_000


class Outbox:
    def __init__(self) -> None:
        self._waiting: set[bytes] = set()  # ids shown as "waiting for"

    def restored(self, lines: Iterable[wire.SignedLine]) -> list[ev.ChatEvent]:
        return [self._wait(x) for x in lines if x.msg_id not in self._waiting]

    def sent(self, line: wire.SignedLine, *, online: bool) -> list[ev.ChatEvent]:
        return [] if online else [self._wait(line)]

    def undelivered(self, payload: bytes) -> list[ev.ChatEvent]:
        """Our chat payload was never acknowledged: a private line now waits."""
        try:
            msg = wire.decode(payload)
        except ProtocolError as exc:
            log.warning("undelivered chat payload we cannot read: %s", exc)
            return []
        if not isinstance(msg, wire.Line) or msg.line.is_channel:
            return []
        if msg.line.msg_id in self._waiting:
            return []
        return [self._wait(msg.line)]

    def delivered(self, lines: Iterable[wire.SignedLine]) -> list[ev.ChatEvent]:
        """Lines whose RECEIPT arrived (``History.delivered``): "delivered to" for those shown
        waiting; a line delivered at once needs no notice."""
        out: list[ev.ChatEvent] = []
        for line in lines:
            if line.msg_id in self._waiting:
                self._waiting.discard(line.msg_id)
                out.append(ev.DeliveredLater(line.target, line.text, line.msg_id))
        return out

    def failed(self, lines: Iterable[wire.SignedLine]) -> list[ev.ChatEvent]:
        out: list[ev.ChatEvent] = []
        for line in lines:
            self._waiting.discard(line.msg_id)
            out.append(ev.Failed(line.target, line.text, line.msg_id))
        return out

    def _wait(self, line: wire.SignedLine) -> ev.Waiting:
        if len(self._waiting) >= MAX_SHOWN:
            self._waiting.clear()
        self._waiting.add(line.msg_id)
        return ev.Waiting(line.target, line.text, line.msg_id)
