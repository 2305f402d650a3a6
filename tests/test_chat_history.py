"""History and the outbox (client/chat/history.py) on temporary database files."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import nacl.signing
import pytest

from client.chat import history, wire

ALICE = nacl.signing.SigningKey(b"\x01" * 32)
BOB = nacl.signing.SigningKey(b"\x02" * 32)
MALLORY = nacl.signing.SigningKey(b"\x03" * 32)
PINS = {"alice": bytes(ALICE.verify_key), "bob": bytes(BOB.verify_key)}


def line(text: str, target: str = "#g", author: str = "alice", ts: int = 0,
         key: nacl.signing.SigningKey = ALICE) -> wire.SignedLine:
    return wire.sign_line(key, author=author, target=target, kind=wire.Kind.MESSAGE, text=text,
                          ts_ms=ts)


@pytest.fixture
def h(tmp_path: Path) -> history.History:
    store = history.History.in_dir(tmp_path, "bob")
    yield store
    store.close()


def test_add_last_and_dedupe(h: history.History) -> None:
    lines = [line(f"m{i}", ts=i) for i in range(10)]
    for x in lines:
        assert h.add(x)
    assert not h.add(lines[3])
    assert h.last("#g", 3) == lines[-3:]
    assert h.last("#G", 3) == []  # keys come from conversation_key
    assert h.last(history.conversation_key("#G"), 3) == lines[-3:]


def test_survives_reopen_and_is_private(tmp_path: Path) -> None:
    first = history.History.in_dir(tmp_path, "bob")
    x = line("kept")
    first.add(x)
    first.close()
    again = history.History.in_dir(tmp_path, "bob")
    assert again.last("#g", 10) == [x]
    again.close()
    if os.name == "posix":
        for p in tmp_path.iterdir():
            assert p.stat().st_mode & 0o077 == 0, p


def test_private_conversations_keyed_by_the_other_person(h: history.History) -> None:
    mine = wire.sign_line(BOB, author="bob", target="Alice", kind=wire.Kind.MESSAGE, text="hi",
                          ts_ms=1)
    theirs = line("hello", target="bob", ts=2)
    h.add(mine)
    h.add(theirs)
    assert h.last("alice", 10) == [mine, theirs]


def test_merge_verifies_and_skips_duplicates(h: history.History,
                                             caplog: pytest.LogCaptureFixture) -> None:
    good = [line(f"m{i}", ts=i) for i in range(5)]
    h.add(good[0])
    forged = line("forged", ts=9, key=MALLORY)  # says alice, signed by mallory
    unknown = line("who?", author="carol", ts=9, key=MALLORY)
    with caplog.at_level(logging.WARNING):
        result = h.merge([*good, good[1], forged, unknown], PINS.get)
    assert result.added == tuple(good[1:])
    assert result.duplicates == 1 and result.rejected == 2
    assert "not the author's key" in caplog.text and "author's key unknown" in caplog.text
    assert [x.text for x in h.last("#g", 10)] == ["m0", "m1", "m2", "m3", "m4"]


def test_backfilled_old_lines_sort_by_time(h: history.History) -> None:
    h.add(line("new", ts=100))
    h.merge([line("old", ts=50)], PINS.get)
    assert [x.text for x in h.last("#g", 10)] == ["old", "new"]
    assert [x.text for x in h.since("#g", 60, 10)] == ["new"]
    assert h.newest_ts("#g") == 100
    assert h.newest_ts("#none") is None


def test_search(h: history.History) -> None:
    h.add(line("the quick brown fox", ts=1))
    h.add(line("lazy dog", ts=2, target="#other"))
    h.add(line('a "quoted" AND word', ts=3))
    assert [x.text for x in h.search("quick fox")] == ["the quick brown fox"]
    assert [x.text for x in h.search("DOG")] == ["lazy dog"]
    assert [x.text for x in h.search('"quoted" AND')] == ['a "quoted" AND word']
    assert h.search("   ") == []
    assert h.search("absent") == []


def test_forget(h: history.History) -> None:
    h.add(line("a"))
    h.add(line("b", target="#other"))
    assert h.forget("#g") == 1
    assert h.last("#g", 5) == [] and len(h.last("#other", 5)) == 1
    assert h.search("a") == []
    h.forget()
    assert h.conversations() == []


def test_size_cap_drops_oldest(tmp_path: Path) -> None:
    h = history.History.in_dir(tmp_path, "bob", max_lines=100)
    lines = [line(f"m{i}", ts=i) for i in range(150)]
    h._insert(lines)
    assert h.enforce_cap() == 55  # down to 95 % of the cap
    kept = h.last("#g", 1000)
    assert kept == lines[55:]
    assert h.search("m10") == []
    h.close()


def test_unread_marker(h: history.History) -> None:
    h.add(line("a", ts=1))
    h.add(line("b", ts=2))
    assert h.unread("#g") == 2
    h.mark_read("#g")
    h.add(line("c", ts=3))
    assert h.unread("#g") == 1


def test_outbox_survives_restart_and_receipts_only_from_the_recipient(tmp_path: Path) -> None:
    h = history.History.in_dir(tmp_path, "bob")
    x = wire.sign_line(BOB, author="bob", target="alice", kind=wire.Kind.MESSAGE, text="later",
                       ts_ms=1000)
    y = wire.sign_line(BOB, author="bob", target="carol", kind=wire.Kind.MESSAGE, text="c",
                       ts_ms=1000)
    h.queue(x)
    h.queue(y)
    h.queue(x)  # twice: still one entry
    h.close()
    h = history.History.in_dir(tmp_path, "bob")
    assert h.waiting("Alice") == [x]
    assert h.state_of(x.msg_id) is history.OutboxState.QUEUED
    assert h.delivered("carol", [x.msg_id]) == []  # carol cannot confirm alice's line
    assert h.delivered("alice", [x.msg_id]) == [x]
    assert h.delivered("alice", [x.msg_id]) == []  # once
    assert h.state_of(x.msg_id) is history.OutboxState.DELIVERED
    assert h.expire(now_ms=10_000, max_age_ms=5_000) == [y]
    assert h.state_of(y.msg_id) is history.OutboxState.FAILED
    assert h.waiting() == []
    assert h.last("alice", 5) == [x]
    h.close()


def test_damaged_row_is_skipped(h: history.History) -> None:
    h.add(line("ok", ts=1))
    h.db.execute_sql("INSERT INTO line (msg_id, conversation, ts_ms, text, raw) "
                     "VALUES (x'00', '#g', 5, 'x', x'0102')")
    assert [x.text for x in h.last("#g", 5)] == ["ok"]


def test_fts5_detected() -> None:
    assert isinstance(history.fts5_available(), bool)
