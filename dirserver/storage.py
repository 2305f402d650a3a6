"""The database side: one thread touches SQLite, so writes stay in order and a slow or
locked database never stalls the UDP loop or a registration beyond its own wait."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Iterable

import gevent
from gevent.event import AsyncResult, Event
from gevent.threadpool import ThreadPool

from models.registration import StoreOp
from models.store import Leaves, StorageError, Store

log = logging.getLogger("openlchat.server")

STORAGE_LOG_EVERY = 5.0  # seconds between storage warnings: once per spell, not per failure
MAX_PENDING = 100_000  # nicknames with an unwritten change kept for retrying
RETRY_FIRST = 0.05  # seconds before the first retry of failed writes; doubles up to
RETRY_MAX = 5.0


class StorageWriter:
    """Group commit: everything waiting (new registrations, joins, leaves) goes to the
    database thread as one transaction; the flusher and the UDP loop never wait for it.

    Joins and leaves that could not be written (database locked, disk full) are kept, one per
    nickname (the last state wins), and retried with backoff until the table matches the
    directory again; the leaves among them are also kept in ``<db>.leaves`` so that a restart
    meanwhile (even ``kill -9``) neither loads nor lists a row this run removed."""

    def __init__(self, store: Store, leaves: Leaves | None = None,
                 pending: Iterable[StoreOp] = ()) -> None:
        self.store = store
        self.leaves = leaves
        self.pool = ThreadPool(1)  # the one thread that touches SQLite: writes stay in order
        self.wake = Event()
        self.failures = 0
        self.dropped = 0  # unwritten changes forgotten beyond MAX_PENDING
        self._ops: list[StoreOp] = []  # joins/leaves waiting for the database thread
        self._adds: list[tuple[str, str, AsyncResult]] = []  # registrations waiting for it
        self._pending: dict[str, StoreOp] = {}  # nickname -> its last change not written
        self._retry_in = 0.0  # backoff while failing; 0: the last write worked
        self._next_try = 0.0
        self._last_log = -math.inf
        self._queue(list(pending))

    @property
    def pending(self) -> int:
        return len(self._pending) + len(self._ops)

    def start(self) -> list[gevent.Greenlet]:
        self.wake.set()  # leaves left over by the previous run
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
        self._queue(self._ops + more_ops)
        self._ops = []
        if self._pending:
            exc = self.pool.apply(self._write, ([], list(self._pending.values())))
            if exc is None:
                self._pending.clear()
            else:
                log.warning("storage: %d changes not written at stop: %s",
                            len(self._pending), exc)
            self._save_leaves()
        self.pool.apply(self._close_store)
        self.pool.kill()

    def _queue(self, ops: list[StoreOp]) -> None:
        pending = self._pending
        for op in ops:
            pending.pop(op[1], None)  # keep the order of last changes
            pending[op[1]] = op
        while len(pending) > MAX_PENDING:
            del pending[next(iter(pending))]
            self.dropped += 1

    def _write_loop(self) -> None:
        while True:
            if self._pending and not self._adds:
                self.wake.wait(max(0.0, self._next_try - time.monotonic()))
            else:
                self.wake.wait()
            self.wake.clear()
            self._queue(self._ops)
            self._ops = []
            adds, self._adds = self._adds, []
            if not adds and not (self._pending and time.monotonic() >= self._next_try):
                continue  # failing: the joins/leaves wait for the retry (registrations don't)
            rows = [(nick, kw) for nick, kw, _ in adds]
            exc = self.pool.apply(self._write, (rows, list(self._pending.values())))
            if exc is None:
                if self._retry_in:
                    log.warning("storage: working again; the table matches the directory")
                self._pending.clear()
                self._retry_in = 0.0
            else:
                self._retry_in = min(max(2 * self._retry_in, RETRY_FIRST), RETRY_MAX)
                self._next_try = time.monotonic() + self._retry_in
            self._save_leaves()
            for _, _, done in adds:
                done.set(exc)

    def _save_leaves(self) -> None:
        if self.leaves is None:
            return
        gone = [(op[1], op[2]) for op in self._pending.values() if op[0] == "del"]
        if not self.leaves.save(gone):
            self.failed(f"{self.leaves.path} cannot hold all {len(gone)} unwritten leaves")

    # These run in the database thread. They never raise: gevent would print a traceback.

    def _write(self, rows: list[tuple[str, str]], ops: list[StoreOp]) -> Exception | None:
        try:
            self.store.write(rows, ops)
        except StorageError as exc:
            if ops:
                self.failed(f"{len(ops)} join/leave writes waiting, retried in "
                            f"{min(max(2 * self._retry_in, RETRY_FIRST), RETRY_MAX):g} s: {exc}")
            return exc
        except Exception as exc:  # our bug: loud, but registrations only get an ERROR
            log.exception("writing %d registrations, %d joins/leaves failed", len(rows), len(ops))
            return exc
        return None

    def _close_store(self) -> None:
        try:
            self.store.close()
        except Exception:  # closing is best effort; the data is committed already
            log.debug("closing the database failed", exc_info=True)
        if self.leaves is not None:
            self.leaves.close()

    def failed(self, text: str) -> None:
        self.failures += 1
        now = time.monotonic()
        if now - self._last_log > STORAGE_LOG_EVERY:  # once per 5 s, not once per failure
            self._last_log = now
            log.warning("storage: %s", text)
