"""The design's ``clients`` table in SQLite, through peewee. Only the server imports this.

Joins and leaves are written; liveness never is (a PING never touches the disk). Every
write runs in ``db.atomic()``, so a crash leaves the table as it was before or after a change,
never half-way. ``Store`` methods block: the server calls them from one worker thread.
"""

from __future__ import annotations

import logging
import os
import sqlite3
from collections.abc import Iterable
from pathlib import Path

import peewee

log = logging.getLogger(__name__)

db = peewee.SqliteDatabase(None)

# Exactly the design's table (original-protocol.ru.txt).
CREATE_SQL = (
    "CREATE TABLE IF NOT EXISTS clients ("
    "id INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL, "
    "nickname CHAR(24), keyword CHAR(24), host TEXT, port INTEGER, UNIQUE(nickname))"
)
COLUMNS = ("id", "nickname", "keyword", "host", "port")

Row = tuple[str, str, str | None, int | None]

_REPLACE_SQL = ("INSERT OR REPLACE INTO clients (nickname, keyword, host, port) "
                "VALUES (?, ?, NULL, NULL)")
_ADDR_SQL = "UPDATE clients SET host = ?, port = ? WHERE nickname = ? AND keyword = ?"
_DEL_SQL = "DELETE FROM clients WHERE nickname = ? AND keyword = ?"


class Client(peewee.Model):
    id = peewee.AutoField()
    nickname = peewee.FixedCharField(max_length=24, unique=True, null=True)
    keyword = peewee.FixedCharField(max_length=24, null=True)
    host = peewee.TextField(null=True)
    port = peewee.IntegerField(null=True)

    class Meta:
        database = db
        table_name = "clients"


class StorageError(Exception):
    """The database cannot be used; ``str()`` is a one-line explanation."""


def _lock_exclusively(fd: int) -> None:
    """A non-blocking exclusive lock on an open file; OSError if another process holds it."""
    if os.name == "nt":
        import msvcrt

        msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
    else:
        import fcntl

        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)


def _explain(exc: BaseException) -> str:
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


class Store:
    def __init__(self, path: Path | str, busy_timeout: float = 1.0) -> None:
        self.path = Path(path)
        self.busy_timeout = busy_timeout
        self._lock_file: int | None = None

    def claim(self) -> None:
        """Take the database for this process, for as long as it lives.

        A second server on the same file would expire every client it never hears from and
        delete their rows under the first one. SQLite's own locks are per transaction, so a
        lock on ``<db>.lock`` guards the whole run; the OS drops it when the process dies
        (even by SIGKILL), so a restart after a crash is never refused. Raises ``StorageError``.
        """
        lock_path = self.path.with_name(self.path.name + ".lock")
        try:
            fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise StorageError(f"cannot open {lock_path}: {exc.strerror or exc}") from None
        try:
            _lock_exclusively(fd)
        except OSError:
            try:  # Windows forbids reading a locked range
                holder = os.read(fd, 32).decode("ascii", "replace").strip() or "?"
            except OSError:
                holder = "?"
            os.close(fd)
            raise StorageError(f"in use by another server (pid {holder})") from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._lock_file = fd

    def open(self) -> list[Row]:
        """Open (creating if missing), check the schema and that we can write; all rows.

        Raises ``StorageError`` for a corrupt, unreadable, locked or foreign database.
        """
        if self.path.is_dir():
            raise StorageError(f"{self.path} is a directory")
        db.init(
            str(self.path),
            timeout=self.busy_timeout,
            pragmas={"journal_mode": "wal", "synchronous": "normal",
                     "busy_timeout": int(self.busy_timeout * 1000)},
        )
        try:
            db.connect(reuse_if_open=True)
            db.execute_sql("PRAGMA quick_check")
            with db.atomic("IMMEDIATE"):  # proves we can take the write lock
                db.execute_sql(CREATE_SQL)
            columns = tuple(r[1] for r in db.execute_sql("PRAGMA table_info(clients)"))
            if columns != COLUMNS:
                raise StorageError(f"table clients has columns {columns}, expected {COLUMNS}")
            rows = self.rows()
        except (peewee.PeeweeException, sqlite3.Error, OSError) as exc:
            db.close()
            raise StorageError(_explain(exc)) from None
        return rows

    def write(self, new_rows: list[tuple[str, str]], ops: Iterable[tuple]) -> None:
        """Group commit: joins/leaves (``apply``) and new registrations ``(nickname, keyword)``
        in one transaction, so a burst of registrations costs one commit."""
        try:
            with db.atomic():
                self._apply(ops)
                if new_rows:
                    # prepared statement, many rows: a tenth of the per-row cost of the
                    # query builder, and this is the registration hot path
                    db.cursor().executemany(_REPLACE_SQL, new_rows)
        except (peewee.PeeweeException, sqlite3.Error, OSError) as exc:
            raise StorageError(_explain(exc)) from None

    def apply(self, ops: Iterable[tuple]) -> None:
        """Joins (``("addr", nick, keyword, host, port)``) and leaves (``("del", nick,
        keyword)``) in one transaction: all written or none. The keyword in the condition
        keeps a late leave of an old registration from deleting a newer one's row."""
        try:
            with db.atomic():
                self._apply(ops)
        except (peewee.PeeweeException, sqlite3.Error, OSError) as exc:
            raise StorageError(_explain(exc)) from None

    @staticmethod
    def _apply(ops: Iterable[tuple]) -> None:
        cursor = None
        for op in ops:
            cursor = cursor or db.cursor()
            if op[0] == "addr":
                cursor.execute(_ADDR_SQL, (op[3], op[4], op[1], op[2]))
            elif op[0] == "del":
                cursor.execute(_DEL_SQL, (op[1], op[2]))

    def rows(self) -> list[Row]:
        query = Client.select().order_by(Client.id)
        return [(r.nickname, r.keyword, r.host, r.port) for r in query]

    def close(self) -> None:
        if not db.is_closed():
            db.close()
