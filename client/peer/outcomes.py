"""What the Messenger reports to the engine about messages, and how large one may be."""

from __future__ import annotations

from dataclasses import dataclass

MAX_MESSAGE = 64 * 1024


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
