"""The design's ``clients`` table in SQLite, through peewee. Only the server imports this.

Joins and leaves are written; liveness never is (a PING never touches the disk). Every
write runs in ``db.atomic()``, so a crash leaves the table as it was before or after a change,
never half-way. ``Store`` methods block: the server calls them from one worker thread.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import shutil
import sqlite3
from collections.abc import Callable, Iterable
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


# Leaves whose delete is not written yet (storage failing), kept beside the database so a
# restart never lists a row the previous run had removed. The file is written full-size when
# the server starts, so it can be rewritten in place on a full disk.
LEAVES_SIZE = 4096  # one page: ~80 leaves; more is logged (they are retried all the same)
_FULL_MARKERS = ("disk is full", "database or disk is full", "no space left")


def free_bytes(path: Path) -> int | None:
    try:
        return shutil.disk_usage(path).free
    except OSError:
        return None


def explain(exc: BaseException, path: Path) -> str:
    """One line; "disk full (N bytes free at DIR)" whatever SQLite or the OS said about it
    (SQLite rolls a failed write back itself, so a rollback afterwards reports "cannot
    rollback - no transaction is active" instead of the cause)."""
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    full = (isinstance(exc, OSError) and exc.errno == errno.ENOSPC) or any(
        m in text.lower() for m in _FULL_MARKERS)
    if full or "cannot rollback" in text:
        folder = path.parent if path.parent != Path("") else Path(".")
        free = free_bytes(folder)
        if full or (free is not None and free < 256 << 10):
            shown = "?" if free is None else f"{free:,}"
            return f"disk full ({shown} bytes free at {folder})"
    return text


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
        with contextlib.suppress(OSError):  # only shown to a second server; a full disk is
            os.ftruncate(fd, 0)              # reported by open() in one clear line
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
            # proves we can take the write lock; writes a page only for a new database
            self._transaction(lambda cur: cur.execute(CREATE_SQL), "IMMEDIATE")
            columns = tuple(r[1] for r in db.execute_sql("PRAGMA table_info(clients)"))
            if columns != COLUMNS:
                raise StorageError(f"table clients has columns {columns}, expected {COLUMNS}")
            rows = self.rows()
        except (peewee.PeeweeException, sqlite3.Error, OSError) as exc:
            db.close()
            raise StorageError(explain(exc, self.path)) from None
        return rows

    def write(self, new_rows: list[tuple[str, str]], ops: Iterable[tuple]) -> None:
        """Group commit: joins/leaves (``apply``) and new registrations ``(nickname, keyword)``
        in one transaction, so a burst of registrations costs one commit."""

        def body(cursor: sqlite3.Cursor) -> None:
            self._apply(cursor, ops)
            if new_rows:
                # prepared statement, many rows: a tenth of the per-row cost of the
                # query builder, and this is the registration hot path
                cursor.executemany(_REPLACE_SQL, new_rows)

        self._transaction(body)

    def apply(self, ops: Iterable[tuple]) -> None:
        """Joins (``("addr", nick, keyword, host, port)``) and leaves (``("del", nick,
        keyword)``) in one transaction: all written or none. The keyword in the condition
        keeps a late leave of an old registration from deleting a newer one's row."""
        self._transaction(lambda cursor: self._apply(cursor, ops))

    def _transaction(self, body: Callable[[sqlite3.Cursor], object], mode: str = "") -> None:
        """``body`` in one transaction. Raises ``StorageError`` with the real cause: never
        the "cannot rollback" of a transaction SQLite already rolled back."""
        try:
            conn = db.connection()
            cursor = conn.cursor()
            cursor.execute(f"BEGIN {mode}")
            try:
                body(cursor)
                cursor.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    with contextlib.suppress(sqlite3.Error):
                        conn.execute("ROLLBACK")
                raise
        except (peewee.PeeweeException, sqlite3.Error, OSError) as exc:
            raise StorageError(explain(exc, self.path)) from None

    @staticmethod
    def _apply(cursor: sqlite3.Cursor, ops: Iterable[tuple]) -> None:
        for op in ops:
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


class Leaves:
    """``<db>.leaves``: the removals not yet written to the database, as ``nickname keyword``
    lines, so the next run neither loads nor lists them. Fixed size, written in place."""

    def __init__(self, db_path: Path) -> None:
        self.path = db_path.with_name(db_path.name + ".leaves")
        self._fd: int | None = None
        self._dirty = False

    def open(self) -> list[tuple[str, str]]:
        """The removals a previous run left unwritten; makes the file full-size. Raises
        ``StorageError`` (a disk too full even for this)."""
        try:
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            data = os.pread(self._fd, LEAVES_SIZE, 0)
            if len(data) < LEAVES_SIZE:
                self._write_all(data.ljust(LEAVES_SIZE, b"\0"))
        except OSError as exc:
            raise StorageError(explain(exc, self.path)) from None
        out = []
        for line in data.split(b"\0", 1)[0].decode("utf-8", "replace").splitlines():
            nick, _, keyword = line.rpartition(" ")
            if nick and keyword:
                out.append((nick, keyword))
        self._dirty = bool(out)
        return out

    def save(self, leaves: list[tuple[str, str]]) -> bool:
        """Replace the list (as much as fits); False if some did not fit or writing failed."""
        if self._fd is None or (not leaves and not self._dirty):
            return True
        data = b"".join(f"{n} {k}\n".encode() for n, k in leaves)
        fits = len(data) < LEAVES_SIZE
        if not fits:
            data = data[:data.rfind(b"\n", 0, LEAVES_SIZE - 1) + 1]
        try:
            self._write_all(data.ljust(LEAVES_SIZE, b"\0"))
        except OSError:
            return False
        self._dirty = bool(data)
        return fits

    def _write_all(self, data: bytes) -> None:
        assert self._fd is not None
        done = 0
        while done < len(data):  # a full disk gives a short write, not always ENOSPC
            n = os.pwrite(self._fd, data[done:], done)
            if n <= 0:
                raise OSError(errno.ENOSPC, "No space left on device")
            done += n

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
