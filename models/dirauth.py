"""The directory's MAC extension, sans-IO: key agreement, MACs and counters for both ends.

Why: the design's keyword travels in clear in every PING, so anyone who can see a client's
datagrams (the same Wi-Fi) can forge ``QUIT alice``. With this extension the client and the
server agree on a key at registration (ephemeral X25519, PyNaCl) that a passive sniffer cannot
compute, and every PING/QUIT of the client carries ``#counter.mac``; the server drops, for that
client, every datagram without a valid MAC or with a counter it has already seen.
Design-only clients never send ``x25519=`` and are served exactly as before. Byte-level
definition: docs/PROTOCOL.md, "MAC extension".

Client side (``ClientAuth``), the calls a client makes::

    auth = ClientAuth()
    line = auth.connect(nickname, keyword=None)          # a Connect to send (new or reclaim)
    auth.accept(reply)                                    # the Keyword reply: key derived
    data = auth.seal(Ping(keyword, nickname, digest))     # bytes to send; also Quit(...)
    auth.forget()                                         # on REKEY (server restarted)
    auth.saved() / auth.restore(key, counter)             # with the saved session (crash)

Server side: ``Agreement.answer(client_x25519)`` before registering (a bad key is refused
before anything is reserved), then ``ServerAuth(agreement.key(keyword))`` on the registration;
``auth.check(msg)`` for each PING/QUIT, ``auth.check_proof(...)`` for a reclaim.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
from collections.abc import Callable
from dataclasses import dataclass

import nacl.bindings
import nacl.exceptions

from models.directory_messages import Auth, Connect, Keyword, Ping, Quit
from models.directory_wire import MAX_COUNTER, encode_datagram, mac_input
from models.errors import ProtocolError

KEY_PERSON = b"openlchat-dirkey"  # BLAKE2b personalisations (16 bytes each)
MAC_PERSON = b"openlchat-dirmac"
PROOF_PERSON = b"openlchat-dirprf"
MAC_SIZE = 16

Random = Callable[[int], bytes]


def b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass(frozen=True)
class KeyPair:
    private: bytes
    public: bytes

    @classmethod
    def new(cls, random: Random = os.urandom) -> KeyPair:
        private = random(32)
        return cls(private, nacl.bindings.crypto_scalarmult_base(private))


def _shared(own: KeyPair, peer_public: bytes) -> bytes:
    """X25519; ``ProtocolError`` for a key that gives no shared secret (a low-order point)."""
    try:
        return nacl.bindings.crypto_scalarmult(own.private, peer_public)
    except (nacl.exceptions.CryptoError, nacl.exceptions.RuntimeError, ValueError,
            TypeError):
        raise ProtocolError("BAD_KEY", "unusable x25519 key") from None


def _key(shared: bytes, client_public: bytes, server_public: bytes, keyword: str) -> bytes:
    """K = BLAKE2b-256(key=shared, person=KEY_PERSON, client_public || server_public ||
    keyword)."""
    return hashlib.blake2b(client_public + server_public + keyword.encode("ascii"),
                           key=shared, digest_size=32, person=KEY_PERSON).digest()


def mac(key: bytes, data: bytes, person: bytes = MAC_PERSON) -> str:
    """22 base64url characters: BLAKE2b-128 keyed with ``key``."""
    return b64(hashlib.blake2b(data, key=key, digest_size=MAC_SIZE, person=person).digest())


def proof_input(keyword: str, x25519: str, counter: int) -> bytes:
    """What a reclaim's proof covers: ``RECLAIM keyword x25519 #counter``."""
    return b"RECLAIM %s %s #%d" % (keyword.encode("ascii"), x25519.encode("ascii"), counter)


@dataclass(frozen=True)
class Agreement:
    """The server's half of a key agreement, before the keyword is known."""

    shared: bytes
    client_public: bytes
    server_public: bytes

    @classmethod
    def answer(cls, client_x25519: str, random: Random = os.urandom) -> Agreement:
        """A fresh server key pair against the client's key. Raises ``ProtocolError``."""
        client_public = unb64(client_x25519)
        own = KeyPair.new(random)
        return cls(_shared(own, client_public), client_public, own.public)

    @property
    def x25519(self) -> str:
        """The server's public key, as it goes in ``KEYWORD kw x25519=...``."""
        return b64(self.server_public)

    def key(self, keyword: str) -> bytes:
        return _key(self.shared, self.client_public, self.server_public, keyword)


class ServerAuth:
    """One registration's key and the highest counter seen (replays are refused)."""

    __slots__ = ("key", "last")

    def __init__(self, key: bytes) -> None:
        self.key = key
        self.last = 0

    def _fresh(self, auth: Auth, data: bytes, person: bytes) -> bool:
        if auth.counter <= self.last:
            return False  # a replay, or older than one already accepted
        if not hmac.compare_digest(mac(self.key, data, person), auth.mac):
            return False
        self.last = auth.counter
        return True

    def check_raw(self, signed: bytes, counter: int, tag: bytes) -> bool:
        """The fast path's check: ``signed`` is the datagram's ``keyword SP body`` up to the
        counter (its ``len`` left out), exactly what ``mac_input`` spells."""
        if counter <= self.last:
            return False
        if not hmac.compare_digest(mac(self.key, signed).encode("ascii"), tag):
            return False
        self.last = counter
        return True

    def check(self, msg: Ping | Quit) -> bool:
        """A PING or QUIT carrying a valid MAC and a new counter (which is then used up)."""
        if msg.auth is None:
            return False
        return self._fresh(msg.auth, mac_input(msg.keyword, msg, msg.auth.counter),
                           MAC_PERSON)

    def check_proof(self, keyword: str, x25519: str, proof: Auth | None) -> bool:
        return proof is not None and self._fresh(
            proof, proof_input(keyword, x25519, proof.counter), PROOF_PERSON)


class ClientAuth:
    """The client's half: a fresh key pair per registration, the agreed key, the counter."""

    def __init__(self, random: Random = os.urandom) -> None:
        self._random = random
        self._pair: KeyPair | None = None  # offered in the CONNECT waiting for its reply
        self.key: bytes | None = None  # agreed; None before the first KEYWORD or after forget()
        self.counter = 0

    @property
    def active(self) -> bool:
        return self.key is not None

    def _next(self) -> int:
        if self.counter >= MAX_COUNTER:
            raise ValueError("counter exhausted: register again")
        self.counter += 1
        return self.counter

    def connect(self, nickname: str, keyword: str | None = None) -> Connect:
        """The CONNECT to send: a new key pair; with a keyword and a current key, the proof
        that lets the server replace the key (a reclaim)."""
        self._pair = KeyPair.new(self._random)
        x25519 = b64(self._pair.public)
        proof = None
        if keyword is not None and self.key is not None:
            counter = self._next()
            proof = Auth(counter, mac(self.key, proof_input(keyword, x25519, counter),
                                      PROOF_PERSON))
        return Connect(nickname, keyword, x25519, proof)

    def accept(self, reply: Keyword) -> bool:
        """The server's KEYWORD: derive the key. False (extension not in use: send plain
        datagrams) if the server did not answer with its key."""
        pair, self._pair = self._pair, None
        if pair is None or reply.x25519 is None:
            self.key = None
            return False
        try:
            server_public = unb64(reply.x25519)
            self.key = _key(_shared(pair, server_public), pair.public, server_public,
                            reply.keyword)
        except ProtocolError:
            self.key = None
            return False
        self.counter = 0
        return True

    def seal(self, msg: Ping | Quit) -> bytes:
        """The datagram for ``msg`` with ``#counter.mac`` (plain if no key was agreed)."""
        if self.key is None:
            return encode_datagram(msg)
        counter = self._next()
        tag = mac(self.key, mac_input(msg.keyword, msg, counter))
        if isinstance(msg, Ping):
            return encode_datagram(Ping(msg.keyword, msg.nickname, msg.digest,
                                        Auth(counter, tag)))
        return encode_datagram(Quit(msg.keyword, msg.nickname, Auth(counter, tag)))

    def seal_body(self, keyword: str, body: bytes) -> bytes:
        """An extension request (``models/reach_wire``: WHERE?, PROBE?, NUDGE) as a datagram,
        with ``#counter.mac`` over ``keyword SP body SP #counter`` exactly as a PING's (the same
        counter sequence); plain if no key was agreed."""
        if self.key is not None:
            counter = self._next()
            tag = mac(self.key, b"%s %s #%d" % (keyword.encode("ascii"), body, counter))
            body = b"%s #%d.%s" % (body, counter, tag.encode("ascii"))
        return b"%s %d %s" % (keyword.encode("ascii"), len(body), body)

    def saved(self) -> tuple[str, int] | None:
        """What a saved session keeps so a restarted client can reclaim: (key, counter)."""
        return None if self.key is None else (b64(self.key), self.counter)

    def restore(self, key: str, counter: int, margin: int = 1 << 20) -> None:
        """Back from a saved session. The counter jumps ``margin`` ahead: datagrams sent after
        the session was saved used counters the server has seen, and it only wants larger."""
        self.key = unb64(key)
        self.counter = min(counter + margin, MAX_COUNTER - 1)

    def forget(self) -> None:
        """REKEY: the server lost our key (it restarted); the next CONNECT starts afresh."""
        self.key = None
        self.counter = 0
