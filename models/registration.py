"""One client's registration in the directory, and the directory's counters."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from models.directory_wire import Entry

if TYPE_CHECKING:
    from models.dirauth import ServerAuth

Address = tuple[str, int]
StoreOp = tuple[Literal["addr"], str, str, str, int] | tuple[Literal["del"], str, str]


def new_keyword() -> str:
    """24 URL-safe characters, 144 bits from ``secrets``."""
    return secrets.token_urlsafe(18)


@dataclass(eq=False, slots=True)
class Registration:
    nickname: str  # display form, as stored and listed
    key: str  # canonical form: uniqueness and comparisons
    keyword: str
    deadline: float
    addr: Address | None = None  # UDP source of its PINGs; None until the first one
    announced: bool = False
    hash: int = 0  # entry_hash of its listed entry while announced
    since: int | None = None  # directory version of the roster it fetched, until caught up
    kw_prefix: bytes = b""
    text: bytes = b""  # "nickname host port" as it appears in REFERENCE / REF_ADD
    ping_body: bytes = b""  # b"PING nickname": what its PINGs carry after ``len``
    auth: ServerAuth | None = None  # its MAC key and counter once it uses the MAC extension

    def entry(self) -> Entry:
        assert self.addr is not None
        return Entry(self.nickname, self.addr[0], self.addr[1])


@dataclass
class Stats:
    datagrams: int = 0
    pings: int = 0
    quits: int = 0
    pongs: int = 0
    bad_datagrams: int = 0  # framing, length, encoding, unknown command
    unknown_keyword: int = 0
    unknown_replies: int = 0
    unknown_throttled: int = 0
    nick_mismatch: int = 0
    bad_mac: int = 0  # MAC extension: unauthenticated, forged or replayed
    joins: int = 0
    leaves: int = 0
    timeouts: int = 0
    squatters: int = 0
    registrations: int = 0
    reclaims: int = 0
    sent: int = 0

    @property
    def dropped(self) -> int:
        return (self.bad_datagrams + self.unknown_keyword + self.nick_mismatch + self.bad_mac
                - self.unknown_replies)
