"""The user's long-term identity key (Ed25519) and fingerprints people can read aloud.

The key is made on first run and kept in the config directory as ``identity.key``, readable by
the owner only. It signs handshakes; it never encrypts anything itself, so stealing it later
does not decrypt recorded traffic (session keys are ephemeral, see client/peer/handshake.py).
"""

from __future__ import annotations

import base64
import logging
import os
import stat
from pathlib import Path

import nacl.encoding
import nacl.hash
import nacl.signing

from client.config import write_atomically
from client.errors import IdentityError
from client.locks import locked

log = logging.getLogger(__name__)

__all__ = ["IDENTITY_FILE", "IdentityError", "fingerprint", "identity_path", "load_or_create",
           "own_fingerprint"]

IDENTITY_FILE = "identity.key"
_HEADER = "openlchat-identity-v1"
_FP_PERSON = b"OLChat-fp-v1"
_FP_BYTES = 20  # 160 bits: 32 base32 characters


def identity_path(config_dir: Path) -> Path:
    return Path(config_dir) / IDENTITY_FILE


def load_or_create(config_dir: Path) -> nacl.signing.SigningKey:
    """This user's identity key: loaded from ``config_dir``, or made and saved on first run.

    A damaged file raises IdentityError instead of being replaced: a new key would make every
    peer see a key change for us. Clients sharing the config directory may start together:
    the lock makes the second one load the key the first one made, never make its own.
    """
    path = identity_path(config_dir)
    try:
        if not path.exists():
            with locked(path):
                if not path.exists():
                    return _create(path)
        text = path.read_text(encoding="ascii")
    except (OSError, UnicodeDecodeError) as exc:
        raise IdentityError(f"cannot read or create identity key {path}: {exc}") from exc
    key = _parse(text, path)
    _tighten_permissions(path)
    return key


def _create(path: Path) -> nacl.signing.SigningKey:
    key = nacl.signing.SigningKey.generate()
    data = f"{_HEADER}\n{bytes(key).hex()}\n".encode("ascii")
    write_atomically(path, data, private=True)
    log.info("created identity key %s, fingerprint %s", path, own_fingerprint(key))
    return key


def _parse(text: str, path: Path) -> nacl.signing.SigningKey:
    lines = text.split()
    if len(lines) != 2 or lines[0] != _HEADER:
        raise IdentityError(f"identity key {path} is not an OpenLChat identity file")
    try:
        seed = bytes.fromhex(lines[1])
    except ValueError as exc:
        raise IdentityError(f"identity key {path} is damaged: {exc}") from exc
    if len(seed) != 32:
        raise IdentityError(f"identity key {path} is damaged: seed of {len(seed)} bytes")
    return nacl.signing.SigningKey(seed)


def _tighten_permissions(path: Path) -> None:
    # On POSIX a key readable by others is repaired, loudly; Windows profiles are private already.
    if os.name != "posix":
        return
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
        if mode & 0o077:
            os.chmod(path, 0o600)
            log.warning("identity key %s was readable by others (mode %o); now 0600", path, mode)
    except OSError as exc:
        log.warning("cannot check permissions of %s: %s", path, exc)


def fingerprint(public_key: bytes) -> str:
    """A short, human-comparable name of an Ed25519 public key.

    BLAKE2b-160 of the key in base32 (letters A-Z and digits 2-7, no 0/1/8/9 to confuse with
    O/I/B/g), eight groups of four: ``ABCD EFGH IJKL MNOP QRST UVWX YZ23 4567``.
    """
    digest = nacl.hash.blake2b(bytes(public_key), digest_size=_FP_BYTES, person=_FP_PERSON,
                               encoder=nacl.encoding.RawEncoder)
    text = base64.b32encode(digest).decode("ascii")
    return " ".join(text[i:i + 4] for i in range(0, len(text), 4))


def own_fingerprint(key: nacl.signing.SigningKey) -> str:
    return fingerprint(bytes(key.verify_key))
