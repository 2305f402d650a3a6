"""The directory protocol's messages, one frozen dataclass each (both channels); the codec
that spells them is ``models.directory_wire``, which re-exports them all."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Auth:
    """MAC extension: ``#counter.mac`` -- a counter that only grows, and the 16-byte MAC
    (22 base64url characters) of what precedes it (see ``models.dirauth``)."""

    counter: int
    mac: str


@dataclass(frozen=True, slots=True)
class Entry:
    """One directory row as it travels: display nickname, UDP address."""

    nickname: str
    host: str
    port: int


# TCP, client -> server
@dataclass(frozen=True, slots=True)
class Connect:
    nickname: str
    keyword: str | None = None  # extension: reclaim a registration by proving its keyword
    x25519: str | None = None  # MAC extension: the client's ephemeral public key (base64url)
    proof: Auth | None = None  # MAC extension: a reclaim's proof under the current MAC key


@dataclass(frozen=True, slots=True)
class ReferenceRequest:
    pass


@dataclass(frozen=True, slots=True)
class ChannelSwitch:
    pass


@dataclass(frozen=True, slots=True)
class InfoRequest:
    pass


# TCP, server -> client
@dataclass(frozen=True, slots=True)
class Keyword:
    keyword: str
    x25519: str | None = None  # MAC extension: the server's ephemeral public key


@dataclass(frozen=True, slots=True)
class Reference:
    entries: tuple[Entry, ...]


@dataclass(frozen=True, slots=True)
class Info:
    ping_interval: float
    nickname: str | None = None


@dataclass(frozen=True, slots=True)
class Error:
    code: str
    text: str


# UDP, client -> server
@dataclass(frozen=True, slots=True)
class Ping:
    keyword: str
    nickname: str
    digest: str | None = None  # extension: ask for a PONG
    auth: Auth | None = None  # MAC extension


@dataclass(frozen=True, slots=True)
class Quit:
    keyword: str
    nickname: str
    auth: Auth | None = None  # MAC extension


# UDP, server -> client
@dataclass(frozen=True, slots=True)
class RefAdd:
    keyword: str
    entries: tuple[Entry, ...]


@dataclass(frozen=True, slots=True)
class RefDel:
    keyword: str
    nicknames: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Pong:
    keyword: str
    digest: str


@dataclass(frozen=True, slots=True)
class Unknown:
    keyword: str


@dataclass(frozen=True, slots=True)
class Rekey:
    keyword: str


Request = Connect | ReferenceRequest | ChannelSwitch | InfoRequest
Reply = Keyword | Reference | Info | Error
Datagram = Ping | Quit | RefAdd | RefDel | Pong | Unknown | Rekey
