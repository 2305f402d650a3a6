"""The client API's exceptions: one root, one class per thing a face must say in plain words.

Every error the engine (and the parts it wires) raises to a caller derives from ``ClientError``;
each face turns them into words in one place (``client.wording``). Bugs stay ordinary exceptions.
"""

from __future__ import annotations


class ClientError(Exception):
    """Root of every error the client API raises to a face."""


class RegistrationError(ClientError):
    """The directory refused or garbled our registration; ``code`` is the server's error code."""

    def __init__(self, code: str, text: str) -> None:
        super().__init__(f"{code} {text}".strip())
        self.code = code
        self.text = text


class ServerUnreachable(ClientError):
    """The directory server cannot be reached (resolve, connect, timeout, closed)."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.text = text


class UnknownPeer(ClientError, ValueError):
    """The nickname is not (or no longer) online."""


class MessageTooLarge(ClientError, ValueError):
    """A message or control payload is over the protocol's size limit."""


# The engine's own states are also RuntimeErrors: what the faces caught before the hierarchy.
class EngineClosed(ClientError, RuntimeError):
    """The engine was closed (or never started); the call cannot be carried out."""


class EngineNotResponding(ClientError, RuntimeError):
    """The engine thread did not answer a call in time."""


class FilesUnavailable(ClientError, RuntimeError):
    """File transfer is switched off or not wired into this engine."""


class IdentityError(ClientError):
    """The identity key file cannot be read or is damaged."""
