"""History that stays, and messages that wait: one peewee SQLite database per user.

``History`` keeps every conversation (channels by channel key, private ones by the other
person's canonical nickname) as the signed lines themselves (``raw``), so backfill re-sends
them verbatim and nobody can alter them on the way. It is the only chat module doing I/O; the
engine uses it from its own thread only (peewee connections are per thread).

* WAL journal; the file (and its ``-wal``/``-shm``) readable by the owner only on POSIX;
  on Windows the per-user data directory is private already.
* Size cap: at most ``max_lines`` lines; the oldest are dropped (checked every 1000 inserts).
* Full-text ``search`` through an FTS5 table when the SQLite library has FTS5, else ``LIKE``.
* ``merge`` (backfill) verifies each line's signature against the author's known key, drops
  and logs bad ones, and skips ids already stored.
* The outbox: our private lines waiting for a RECEIPT, with their state, across restarts.
"""

from __future__ import annotations

import enum
import logging
import os
import sqlite3
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import peewee
from playhouse.sqlite_ext import FTS5Model, RowIDField, SearchField

from client.chat import names, wire
from models import nickname
from models.errors import ProtocolError

log = logging.getLogger(__name__)

HISTORY_FILE = "history.sqlite3"
MAX_LINES = 500_000
_CAP_CHECK_EVERY = 1000
_CAP_SLACK = 0.05  # drop 5 % below the cap at once, so the cap is not enforced per insert


class OutboxState(enum.Enum):
    QUEUED = "queued"
    DELIVERED = "delivered"
    FAILED = "failed"


@dataclass(frozen=True)
class MergeResult:
    added: tuple[wire.SignedLine, ...]
    duplicates: int
    rejected: int


def conversation_of(line: wire.SignedLine, me: str) -> str:
    """The conversation a line belongs to: the channel, or the other person in a private one."""
    if line.is_channel:
        return names.channel_key(line.target)
    other = line.target if _same_nick(line.author, me) else line.author
    return conversation_key(other)


def conversation_key(target: str) -> str:
    """``#channel`` or nickname -> the key history uses (case- and width-folded)."""
    if target.startswith(names.PREFIX):
        return names.channel_key(target)
    return nickname.canonical(target)


def _same_nick(a: str, b: str) -> bool:
    return nickname.same_nickname(a, b)


def fts5_available() -> bool:
    conn = sqlite3.connect(":memory:")
    try:
        conn.execute("CREATE VIRTUAL TABLE t USING fts5(x)")
        return True
    except sqlite3.OperationalError:
        return False
    finally:
        conn.close()


def _models(db: peewee.Database, fts: bool) -> SimpleNamespace:
    """Model classes bound to ``db`` (one set per History, so two users can share a process)."""

    class Base(peewee.Model):
        class Meta:
            database = db

    class StoredLine(Base):
        msg_id = peewee.BlobField(unique=True)
        conversation = peewee.TextField()
        ts_ms = peewee.BigIntegerField()
        text = peewee.TextField()
        raw = peewee.BlobField()

        class Meta:
            table_name = "line"
            indexes = ((("conversation", "ts_ms"), False),)

    class Marker(Base):
        conversation = peewee.TextField(primary_key=True)
        last_read = peewee.IntegerField()  # StoredLine.id

    class Outbox(Base):
        msg_id = peewee.BlobField(unique=True)
        peer = peewee.TextField(index=True)
        raw = peewee.BlobField()
        state = peewee.TextField(index=True)
        created_ms = peewee.BigIntegerField()

    tables: list[type[peewee.Model]] = [StoredLine, Marker, Outbox]
    ns = SimpleNamespace(StoredLine=StoredLine, Marker=Marker, Outbox=Outbox, Index=None)
    if fts:
        class LineIndex(FTS5Model):
            rowid = RowIDField()
            text = SearchField()

            class Meta:
                database = db
                options = {"tokenize": "unicode61 remove_diacritics 2"}

        ns.Index = LineIndex
        tables.append(LineIndex)
    ns.tables = tables
    return ns


def _private_file(path: Path) -> None:
    if os.name != "posix":
        return
    if not path.exists():
        os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
    for p in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
        try:
            if p.exists() and p.stat().st_mode & 0o077:
                os.chmod(p, 0o600)
        except OSError as exc:
            log.warning("cannot make %s private: %s", p, exc)


class History:
    """One user's stored conversations and outbox (a SQLite file through peewee)."""

    def __init__(self, path: Path, me: str, *, max_lines: int = MAX_LINES) -> None:
        self.path = Path(path)
        self.me = me
        self.max_lines = max_lines
        self.path.parent.mkdir(parents=True, exist_ok=True)
        _private_file(self.path)
        self.db = peewee.SqliteDatabase(str(self.path), pragmas={
            "journal_mode": "wal", "synchronous": "normal", "foreign_keys": 1,
            "cache_size": -8000})
        self.db.connect()
        self.fts = fts5_available()
        self._m = _models(self.db, self.fts)
        self.db.create_tables(self._m.tables)
        _private_file(self.path)
        self._inserts = 0

    @classmethod
    def in_dir(cls, directory: Path, me: str, **kw: int) -> History:
        return cls(Path(directory) / HISTORY_FILE, me, **kw)

    def close(self) -> None:
        self.db.close()

    # --- lines -----------------------------------------------------------------------------
    def add(self, line: wire.SignedLine) -> bool:
        """Store a line already verified (ours, or a live one ``Channels`` checked). False if
        its id was stored before (show it only when True)."""
        return bool(self._insert([line]))

    def merge(self, lines: Iterable[wire.SignedLine],
              key_of: Callable[[str], bytes | None]) -> MergeResult:
        """Backfill: keep lines whose signature verifies under the author's known key, skip
        ids already stored; a bad line is dropped and logged."""
        good: list[wire.SignedLine] = []
        rejected = 0
        seen: set[bytes] = set()
        for line in lines:
            verdict = wire.verify_line(line, key_of(line.author))
            if verdict is not wire.Verdict.OK:
                rejected += 1
                log.warning("dropping a history line by %s (%s): %s", line.author,
                            line.msg_id.hex(), verdict.value)
            elif line.msg_id not in seen:
                seen.add(line.msg_id)
                good.append(line)
        added = self._insert(good)
        return MergeResult(tuple(added), len(good) - len(added), rejected)

    def _insert(self, lines: list[wire.SignedLine]) -> list[wire.SignedLine]:
        m = self._m
        if not lines:
            return []
        added = []
        with self.db.atomic():
            known = {bytes(r.msg_id) for r in m.StoredLine.select(m.StoredLine.msg_id).where(
                m.StoredLine.msg_id.in_([x.msg_id for x in lines]))}
            for line in lines:
                if line.msg_id in known:
                    continue
                known.add(line.msg_id)
                row_id = m.StoredLine.insert(
                    msg_id=line.msg_id, conversation=conversation_of(line, self.me),
                    ts_ms=line.ts_ms, text=line.text, raw=wire.encode_line(line)).execute()
                if m.Index is not None:
                    m.Index.insert(rowid=row_id, text=line.text).execute()
                added.append(line)
        self._inserts += len(added)
        if self._inserts >= _CAP_CHECK_EVERY:
            self._inserts = 0
            self.enforce_cap()
        return added

    def enforce_cap(self) -> int:
        """Drop the oldest lines beyond ``max_lines``; the number dropped."""
        m = self._m
        count = m.StoredLine.select().count()
        if count <= self.max_lines:
            return 0
        drop = count - int(self.max_lines * (1 - _CAP_SLACK))
        with self.db.atomic():
            ids = m.StoredLine.select(m.StoredLine.id).order_by(m.StoredLine.id).limit(drop)
            edge = max(r.id for r in ids)
            if m.Index is not None:
                m.Index.delete().where(m.Index.rowid <= edge).execute()
            m.StoredLine.delete().where(m.StoredLine.id <= edge).execute()
        log.info("history over %d lines: dropped the oldest %d", self.max_lines, drop)
        return drop

    def last(self, conversation: str, n: int) -> list[wire.SignedLine]:
        """The last ``n`` lines of a conversation (key from ``conversation_key``), oldest first."""
        m = self._m
        rows = (m.StoredLine.select(m.StoredLine.raw)
                .where(m.StoredLine.conversation == conversation)
                .order_by(m.StoredLine.ts_ms.desc(), m.StoredLine.id.desc()).limit(n)
                .tuples())
        return self._decode(reversed(list(rows)))

    def since(self, conversation: str, since_ms: int, limit: int) -> list[wire.SignedLine]:
        """The last ``limit`` lines with ``ts_ms >= since_ms``, oldest first (backfill)."""
        m = self._m
        rows = (m.StoredLine.select(m.StoredLine.raw)
                .where((m.StoredLine.conversation == conversation)
                       & (m.StoredLine.ts_ms >= since_ms))
                .order_by(m.StoredLine.ts_ms.desc(), m.StoredLine.id.desc()).limit(limit)
                .tuples())
        return self._decode(reversed(list(rows)))

    def newest_ts(self, conversation: str) -> int | None:
        m = self._m
        return (m.StoredLine.select(peewee.fn.MAX(m.StoredLine.ts_ms))
                .where(m.StoredLine.conversation == conversation).scalar())

    def search(self, text: str, limit: int = 50) -> list[wire.SignedLine]:
        """Lines containing every word of ``text``, newest first."""
        m = self._m
        words = text.split()
        if not words:
            return []
        query = m.StoredLine.select(m.StoredLine.raw)
        if m.Index is not None:
            fts_query = " ".join('"' + w.replace('"', '""') + '"' for w in words)
            query = query.join(m.Index, on=(m.StoredLine.id == m.Index.rowid)).where(
                m.Index.match(fts_query))
        else:
            for word in words:
                query = query.where(m.StoredLine.text.contains(word))
        rows = query.order_by(m.StoredLine.ts_ms.desc()).limit(limit).tuples()
        return self._decode(list(rows))

    def forget(self, conversation: str | None = None) -> int:
        """"Forget history": one conversation, or everything (outbox entries stay)."""
        m = self._m
        with self.db.atomic():
            where = (m.StoredLine.conversation == conversation) if conversation else True
            if m.Index is not None:
                ids = m.StoredLine.select(m.StoredLine.id).where(where)
                m.Index.delete().where(m.Index.rowid.in_(ids)).execute()
            gone = m.StoredLine.delete().where(where).execute()
            mark = (m.Marker.conversation == conversation) if conversation else True
            m.Marker.delete().where(mark).execute()
        if conversation is None:
            self.db.execute_sql("VACUUM")
        return gone

    def conversations(self) -> list[str]:
        m = self._m
        return [r[0] for r in m.StoredLine.select(m.StoredLine.conversation).distinct().tuples()]

    # --- last-read markers -----------------------------------------------------------------
    def mark_read(self, conversation: str) -> None:
        """Everything stored in ``conversation`` so far has been seen."""
        m = self._m
        top = (m.StoredLine.select(peewee.fn.MAX(m.StoredLine.id))
               .where(m.StoredLine.conversation == conversation).scalar())
        if top is not None:
            m.Marker.replace(conversation=conversation, last_read=top).execute()

    def unread(self, conversation: str) -> int:
        """Lines stored after the marker: the new ones (where the GUI draws its line)."""
        m = self._m
        marker = m.Marker.get_or_none(m.Marker.conversation == conversation)
        after = marker.last_read if marker else 0
        return (m.StoredLine.select().where((m.StoredLine.conversation == conversation)
                                            & (m.StoredLine.id > after)).count())

    # --- the outbox ------------------------------------------------------------------------
    def queue(self, line: wire.SignedLine) -> None:
        """Keep our private line until its RECEIPT arrives (also stores it in history)."""
        self.add(line)
        self._m.Outbox.insert(msg_id=line.msg_id, peer=conversation_key(line.target),
                              raw=wire.encode_line(line), state=OutboxState.QUEUED.value,
                              created_ms=line.ts_ms).on_conflict_ignore().execute()

    def waiting(self, peer: str | None = None) -> list[wire.SignedLine]:
        """Queued lines (to ``peer``, or to anyone), oldest first: send them when it is back."""
        m = self._m
        query = m.Outbox.select(m.Outbox.raw).where(m.Outbox.state == OutboxState.QUEUED.value)
        if peer is not None:
            query = query.where(m.Outbox.peer == conversation_key(peer))
        return self._decode(query.order_by(m.Outbox.id).tuples())

    def delivered(self, peer: str, msg_ids: Iterable[bytes]) -> list[wire.SignedLine]:
        """A RECEIPT from ``peer``: the queued lines it names (only its own) become delivered;
        returns those that changed state (to show "delivered to bob")."""
        return self._set_state(peer, list(msg_ids), OutboxState.DELIVERED)

    def failed(self, peer: str, msg_ids: Iterable[bytes]) -> list[wire.SignedLine]:
        return self._set_state(peer, list(msg_ids), OutboxState.FAILED)

    def expire(self, now_ms: int, max_age_ms: int) -> list[wire.SignedLine]:
        """Queued lines older than ``max_age_ms`` become failed; returns them."""
        m = self._m
        old = list(m.Outbox.select(m.Outbox.raw).where(
            (m.Outbox.state == OutboxState.QUEUED.value)
            & (m.Outbox.created_ms < now_ms - max_age_ms)).tuples())
        lines = self._decode(old)
        m.Outbox.update(state=OutboxState.FAILED.value).where(
            m.Outbox.msg_id.in_([x.msg_id for x in lines])).execute()
        return lines

    def state_of(self, msg_id: bytes) -> OutboxState | None:
        row = self._m.Outbox.get_or_none(self._m.Outbox.msg_id == msg_id)
        return OutboxState(row.state) if row else None

    def _set_state(self, peer: str, ids: list[bytes], state: OutboxState
                   ) -> list[wire.SignedLine]:
        m = self._m
        where = ((m.Outbox.msg_id.in_(ids)) & (m.Outbox.peer == conversation_key(peer))
                 & (m.Outbox.state == OutboxState.QUEUED.value))
        with self.db.atomic():
            rows = list(m.Outbox.select(m.Outbox.raw).where(where).tuples())
            m.Outbox.update(state=state.value).where(where).execute()
        return self._decode(rows)

    @staticmethod
    def _decode(rows: Iterable[tuple[bytes]]) -> list[wire.SignedLine]:
        out = []
        for (raw,) in rows:
            try:
                out.append(wire.decode_line(bytes(raw)))
            except ProtocolError as exc:  # a damaged row: skip it, never fail the whole load
                log.warning("skipping a damaged history row: %s", exc)
        return out
