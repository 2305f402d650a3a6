"""The design's ``clients`` table in SQLite, through peewee. Only the server imports this.

Joins and leaves are written; liveness never is (a PING never touches the disk). Every
write runs in ``db.atomic()``, so a crash leaves the table as it was before or after a change,
never half-way. ``Store`` methods block: the server calls them from one worker thread.
"""

from __future__ import annotations

import logging
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


def _explain(exc: BaseException) -> str:
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


class Store:
    def __init__(self, path: Path | str, busy_timeout: float = 1.0) -> None:
        self.path = Path(path)
        self.busy_timeout = busy_timeout

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

    def add(self, nickname: str, keyword: str) -> None:
        """A new registration. Replaces a stale row of the same nickname (memory is the
        authority on uniqueness; a leftover row means its delete was lost)."""
        try:
            with db.atomic():
                Client.replace(nickname=nickname, keyword=keyword, host=None, port=None).execute()
        except (peewee.PeeweeException, sqlite3.Error, OSError) as exc:
            raise StorageError(_explain(exc)) from None

    def apply(self, ops: Iterable[tuple]) -> None:
        """Joins (``("addr", nick, keyword, host, port)``) and leaves (``("del", nick,
        keyword)``) in one transaction: all written or none. The keyword in the condition
        keeps a late leave of an old registration from deleting a newer one's row."""
        ops = list(ops)
        if not ops:
            return
        try:
            with db.atomic():
                for op in ops:
                    if op[0] == "addr":
                        Client.update(host=op[3], port=op[4]).where(
                            (Client.nickname == op[1]) & (Client.keyword == op[2])).execute()
                    elif op[0] == "del":
                        Client.delete().where(
                            (Client.nickname == op[1]) & (Client.keyword == op[2])).execute()
        except (peewee.PeeweeException, sqlite3.Error, OSError) as exc:
            raise StorageError(_explain(exc)) from None

    def rows(self) -> list[Row]:
        query = Client.select().order_by(Client.id)
        return [(r.nickname, r.keyword, r.host, r.port) for r in query]

    def close(self) -> None:
        if not db.is_closed():
            db.close()
