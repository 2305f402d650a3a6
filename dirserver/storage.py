"""The database side: one thread touches SQLite, so writes stay in order and a slow or
locked database never stalls the UDP loop or a registration beyond its own wait."""

from __future__ import annotations

import logging
import math
import time

import gevent
from gevent.event import AsyncResult, Event
from gevent.threadpool import ThreadPool

from models.registration import StoreOp
from models.store import StorageError, Store

log = logging.getLogger("openlchat.server")

STORAGE_LOG_EVERY = 5.0  # seconds between storage warnings: once per spell, not per failure


class StorageWriter:
    """Group commit: everything waiting (new registrations, joins, leaves) goes to the
    database thread as one transaction; the flusher and the UDP loop never wait for it."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.pool = ThreadPool(1)  # the one thread that touches SQLite: writes stay in order
        self.wake = Event()
        self.failures = 0
        self._ops: list[StoreOp] = []  # joins/leaves waiting for the database thread
        self._adds: list[tuple[str, str, AsyncResult]] = []  # registrations waiting for it
        self._last_log = -math.inf

    def start(self) -> list[gevent.Greenlet]:
        return [gevent.spawn(self._write_loop)]

    def add_ops(self, ops: list[StoreOp]) -> None:
        self._ops.extend(ops)
        self.wake.set()

    def register(self, nickname: str, keyword: str) -> Exception | None:
        """Write a new registration (waits for its transaction); the error, if it failed."""
        done: AsyncResult = AsyncResult()
        self._adds.append((nickname, keyword, done))
        self.wake.set()
        return done.get()

    def stop(self, more_ops: list[StoreOp]) -> None:
        """Write what is pending; close the database (after the loop greenlet is killed)."""
        ops = self._ops + more_ops
        if ops:
            self.pool.apply(self._apply_ops, (ops,))
        self.pool.apply(self._close_store)
        self.pool.kill()

    def _write_loop(self) -> None:
        while True:
            self.wake.wait()
            self.wake.clear()
            ops, self._ops = self._ops, []
            adds, self._adds = self._adds, []
            if not (ops or adds):
                continue
            rows = [(nick, kw) for nick, kw, _ in adds]
            exc = self.pool.apply(self._write, (rows, ops))
            for _, _, done in adds:
                done.set(exc)

    # These run in the database thread. They never raise: gevent would print a traceback.

    def _write(self, rows: list[tuple[str, str]], ops: list[StoreOp]) -> Exception | None:
        try:
            self.store.write(rows, ops)
        except StorageError as exc:
            if ops:
                self.failed(f"{len(ops)} join/leave writes lost: {exc}")
            return exc
        except Exception as exc:  # our bug: loud, but registrations only get an ERROR
            log.exception("writing %d registrations, %d joins/leaves failed", len(rows), len(ops))
            return exc
        return None

    def _apply_ops(self, ops: list[StoreOp]) -> None:
        try:
            self.store.apply(ops)
        except StorageError as exc:
            self.failed(f"{len(ops)} join/leave writes lost: {exc}")
        except Exception:
            log.exception("writing %d joins/leaves failed", len(ops))

    def _close_store(self) -> None:
        try:
            self.store.close()
        except Exception:  # closing is best effort; the data is committed already
            log.debug("closing the database failed", exc_info=True)

    def failed(self, text: str) -> None:
        self.failures += 1
        now = time.monotonic()
        if now - self._last_log > STORAGE_LOG_EVERY:  # once per 5 s, not once per failure
            self._last_log = now
            log.warning("storage: %s", text)
