"""The secure handshake's messages and key schedule (SIGMA-I style), sans-IO.

Layouts in ``models.secure_wire``, byte-exact in docs/PROTOCOL.md section 7::

    i -> r  HS_INIT    hs_id, e_i                       (padded: no amplification)
    r -> i  HS_RESP    hs_id, e_r, AEAD_k_resp(pk_r, Sig_r(th, pk_r))
    i -> r  HS_FINISH  hs_id, AEAD_k_fin(pk_i, Sig_i(th, pk_r, pk_i))
    r -> i  SEALED     empty frame = "session confirmed" (then both send frames freely)

    th      = BLAKE2b-256(transcript(hs_id, e_i, e_r, nick_i, nick_r))
    prk     = BLAKE2b-256(key=th, X25519(e, E))
    k_x     = BLAKE2b-256(key=prk, label [|| th2]),  th2 = BLAKE2b-256(th || pk_r || pk_i)

``Handshaker`` makes and checks these messages; which of them a peer may send when (the state
machine: retransmission, simultaneous open, caps) is ``client.peer.secure``'s.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import nacl.signing
from nacl.bindings import (
    crypto_aead_chacha20poly1305_ietf_decrypt,
    crypto_aead_chacha20poly1305_ietf_encrypt,
    crypto_generichash_blake2b_salt_personal,
    crypto_scalarmult,
    crypto_scalarmult_base,
    crypto_sign_open,
)

from client.peer.sealed import CRYPTO_ERRORS, Session
from models import secure_wire as sw
from models.errors import ProtocolError
from models.nickname import canonical

_ZERO_NONCE = bytes(12)


def _hash(data: bytes, person: bytes, key: bytes = b"") -> bytes:
    return crypto_generichash_blake2b_salt_personal(data, digest_size=32, key=key, person=person)


def kdf(key: bytes, label: bytes, context: bytes = b"") -> bytes:
    return _hash(label + context, b"OLChat-kdf-v1", key)


def _nick_id(nick: str) -> str:
    """The nickname as bound into handshakes: its canonical form, so "Bob" and "bob" agree."""
    try:
        return canonical(nick)
    except ProtocolError:
        return nick


def _new_session(prk: bytes, th: bytes, pk_i: bytes, pk_r: bytes, hs_id: bytes,
                 initiator: bool) -> Session:
    th2 = _hash(th + pk_r + pk_i, b"OLChat-th2-v1")
    k_i2r, k_r2i = kdf(prk, b"i2r", th2), kdf(prk, b"r2i", th2)
    sid = kdf(prk, b"sid", th2)[:sw.SESSION_ID_LEN]
    export = kdf(prk, b"export", th2)
    send_key, recv_key = (k_i2r, k_r2i) if initiator else (k_r2i, k_i2r)
    return Session(sid, send_key, recv_key, export, pk_r if initiator else pk_i, hs_id,
                   initiator)


@dataclass
class Initiator:
    hs_id: bytes
    e_priv: bytes
    e_pub: bytes
    datagram: bytes
    deadline: float
    next_send: float
    rto: float


@dataclass
class HalfOpen:
    """Responder side: HS_RESP sent, waiting for HS_FINISH."""

    hs_id: bytes
    th: bytes
    prk: bytes
    k_fin: bytes
    resp: bytes
    expires: float
    early: list[bytes] = field(default_factory=list)  # SEALED that overtook HS_FINISH


class Handshaker:
    """Our side of every handshake: ephemeral keys, transcripts, proofs, the new Session.

    ``drop(reason, peer)`` counts a rejected message: "bad ephemeral key", "handshake
    decryption failed", "bad handshake signature".
    """

    def __init__(self, identity: nacl.signing.SigningKey, my_nick: str,
                 rng: Callable[[int], bytes], drop: Callable[[str, str], None]) -> None:
        self._identity = identity
        self.my_key = bytes(identity.verify_key)
        self.my_nick = my_nick
        self._rng = rng
        self._drop = drop

    def initiate(self, now: float, timeout: float, rto: float) -> Initiator:
        """A new HS_INIT (in ``datagram``), to send now and again every ``rto`` (backed off)."""
        hs_id = self._rng(sw.HS_ID_LEN)
        e_priv = self._rng(32)
        e_pub = crypto_scalarmult_base(e_priv)
        datagram = sw.HsInit(hs_id, e_pub).encode()
        return Initiator(hs_id, e_priv, e_pub, datagram, deadline=now + timeout,
                         next_send=now + rto, rto=rto)

    def respond(self, peer: str, msg: sw.HsInit, expires: float) -> HalfOpen | None:
        """Answer ``peer``'s HS_INIT: the HS_RESP (in ``resp``) and what HS_FINISH needs."""
        e_priv = self._rng(32)
        e_pub = crypto_scalarmult_base(e_priv)
        try:
            dh = crypto_scalarmult(e_priv, msg.ephemeral)
        except CRYPTO_ERRORS:
            self._drop("bad ephemeral key", peer)
            return None
        th = _hash(sw.transcript(msg.hs_id, msg.ephemeral, e_pub, _nick_id(peer),
                                 _nick_id(self.my_nick)),
                   b"OLChat-th-v1")
        prk = _hash(dh, b"OLChat-prk-v1", th)
        signature = self._identity.sign(sw.resp_signed(th, self.my_key)).signature
        proof = sw.Proof(self.my_key, signature).encode()
        header = sw.HsResp(msg.hs_id, e_pub, bytes(sw.SEALED_PROOF_LEN)).header()
        sealed = crypto_aead_chacha20poly1305_ietf_encrypt(proof, header, _ZERO_NONCE,
                                                           kdf(prk, b"hs resp"))
        return HalfOpen(msg.hs_id, th, prk, kdf(prk, b"hs finish"), header + sealed,
                        expires=expires)

    def complete(self, peer: str, ini: Initiator, msg: sw.HsResp) -> Session | None:
        """Check ``peer``'s HS_RESP to our ``ini``: the initiator's Session, its HS_FINISH in
        ``finish`` (timers not set), or None."""
        try:
            dh = crypto_scalarmult(ini.e_priv, msg.ephemeral)
        except CRYPTO_ERRORS:
            self._drop("bad ephemeral key", peer)
            return None
        th = _hash(sw.transcript(msg.hs_id, ini.e_pub, msg.ephemeral, _nick_id(self.my_nick),
                                 _nick_id(peer)),
                   b"OLChat-th-v1")
        prk = _hash(dh, b"OLChat-prk-v1", th)
        proof = self._open_proof(msg.sealed_proof, msg.header(), kdf(prk, b"hs resp"), peer)
        if proof is None or not self._verify(proof, sw.resp_signed(th, proof.identity), peer):
            return None
        signature = self._identity.sign(sw.init_signed(th, proof.identity, self.my_key)).signature
        header = sw.HsFinish(msg.hs_id, bytes(sw.SEALED_PROOF_LEN)).header()
        sealed = crypto_aead_chacha20poly1305_ietf_encrypt(
            sw.Proof(self.my_key, signature).encode(), header, _ZERO_NONCE,
            kdf(prk, b"hs finish"))
        session = _new_session(prk, th, self.my_key, proof.identity, msg.hs_id, initiator=True)
        session.finish = header + sealed
        return session

    def accept(self, peer: str, ho: HalfOpen, msg: sw.HsFinish) -> Session | None:
        """Check ``peer``'s HS_FINISH to our ``ho``: the responder's Session, or None."""
        proof = self._open_proof(msg.sealed_proof, msg.header(), ho.k_fin, peer)
        if proof is None or not self._verify(
                proof, sw.init_signed(ho.th, self.my_key, proof.identity), peer):
            return None
        return _new_session(ho.prk, ho.th, proof.identity, self.my_key, msg.hs_id,
                            initiator=False)

    def _open_proof(self, sealed: bytes, ad: bytes, key: bytes, peer: str) -> sw.Proof | None:
        try:
            return sw.Proof.decode(
                crypto_aead_chacha20poly1305_ietf_decrypt(sealed, ad, _ZERO_NONCE, key))
        except CRYPTO_ERRORS:
            self._drop("handshake decryption failed", peer)
            return None

    def _verify(self, proof: sw.Proof, signed: bytes, peer: str) -> bool:
        try:
            crypto_sign_open(proof.signature + signed, proof.identity)
        except CRYPTO_ERRORS:
            self._drop("bad handshake signature", peer)
            return False
        return True


def session_export(session: Session, label: bytes) -> bytes:
    """32 bytes both ends derive from ``session`` for ``label`` (e.g. file transfer)."""
    return kdf(session.export, b"export:", bytes(label))
