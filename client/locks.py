"""Locks between processes that share one config directory (two windows, two users of one
terminal server): ``filelock`` uses ``fcntl.flock`` on POSIX and ``msvcrt.locking`` on Windows,
both released by the operating system when a process dies, so a ``kill -9`` never leaves a
stale lock behind.

- ``locked(path)``: for a read-modify-write of a shared file (pins, the identity key);
- ``hold(path)``: a lock kept for the life of the process (a saved session in use).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import filelock

log = logging.getLogger(__name__)

LOCK_TIMEOUT = 5.0  # a writer holds a lock for one small file write: milliseconds


class LockBusy(OSError):
    """Another process holds the lock (longer than we are willing to wait)."""


def lock_path(path: Path) -> Path:
    """The lock file beside ``path``."""
    return path.with_name(path.name + ".lock")


@contextmanager
def locked(path: Path, timeout: float | None = None) -> Iterator[None]:
    """Hold the lock of ``path`` (its ``.lock`` file) for the ``with`` block.

    Raises ``LockBusy`` after ``timeout`` seconds (``LOCK_TIMEOUT``), ``OSError`` when the lock
    file cannot be made (a read-only directory).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    lock = filelock.FileLock(lock_path(path), thread_local=False)
    try:
        lock.acquire(timeout=LOCK_TIMEOUT if timeout is None else timeout)
    except filelock.Timeout:
        raise LockBusy(f"{path} is locked by another process") from None
    try:
        yield
    finally:
        lock.release()


class Held:
    """A lock kept until ``release()`` (or the process's end, however it ends)."""

    def __init__(self, lock: filelock.FileLock) -> None:
        self._lock = lock

    def release(self) -> None:
        if self._lock.is_locked:
            self._lock.release()


def hold(path: Path) -> Held | None:
    """Take the lock of ``path`` at once and keep it; None if another process holds it.
    A lock that cannot be made at all (read-only directory) counts as held: nobody else can
    take it either, and the caller goes on unlocked, as it did before locks existed."""
    lock = filelock.FileLock(lock_path(path), thread_local=False)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        lock.acquire(timeout=0)
    except filelock.Timeout:
        return None
    except OSError as exc:
        log.warning("cannot lock %s (%s); going on without the lock", path, exc)
    return Held(lock)
