"""Backfill (client/chat/backfill.py) with fake time, merged into real history files."""

from __future__ import annotations

import time
from pathlib import Path

import nacl.signing

from client.chat import backfill as bf
from client.chat import history, wire

ALICE = nacl.signing.SigningKey(b"\x01" * 32)
MALLORY = nacl.signing.SigningKey(b"\x03" * 32)
PINS = {"alice": bytes(ALICE.verify_key)}
NOW = 1_700_000_000.0  # seconds; lines are stamped in ms


def line(i: int, ts_ms: int, text: str | None = None, target: str = "#g",
         key: nacl.signing.SigningKey = ALICE) -> wire.SignedLine:
    return wire.sign_line(key, author="alice", target=target, kind=wire.Kind.MESSAGE,
                          text=text or f"m{i}", ts_ms=ts_ms)


def test_want_asks_two_members_since_newest_within_a_day() -> None:
    b = bf.Backfill()
    assert b.want("#g", [], None, NOW) == []
    (send,) = b.want("#G", ["bob", "carol", "dave"], None, NOW)
    assert send.peers == ("bob", "carol")
    req = wire.decode(send.payload)
    assert req == wire.BackfillRequest("#G", int(NOW * 1000) - bf.WINDOW_MS, 200)
    (send,) = b.want("#g", ["bob"], int(NOW * 1000) - 5, NOW)
    assert wire.decode(send.payload).since_ms == int(NOW * 1000) - 4
    assert b.next_deadline() == NOW + bf.TIMEOUT
    (send,) = b.want("#g", ["bob"], int(NOW * 1000) + 10**9, NOW)  # a line from the future
    assert wire.decode(send.payload).since_ms == int(NOW * 1000) + 1


def test_answer_bounds_members_rate_and_chunks() -> None:
    b = bf.Backfill()
    asked: list[tuple[str, int, int]] = []
    stored = [line(i, int(NOW * 1000) - 1000 + i, "x" * 3000) for i in range(20)]

    def lookup(key: str, since: int, limit: int) -> list[wire.SignedLine]:
        asked.append((key, since, limit))
        return stored[-limit:]

    req = wire.BackfillRequest("#G", 0, 200)
    assert b.answer("mallory", req, is_member=False, now=NOW, lookup=lookup) == []
    sends = b.answer("carol", req, is_member=True, now=NOW, lookup=lookup)
    assert asked == [("#g", int(NOW * 1000) - bf.WINDOW_MS, 200)]
    msgs = [wire.decode(s.payload) for s in sends]
    assert len(msgs) > 1 and all(len(s.payload) <= wire.MAX_PAYLOAD for s in sends)
    assert [m.last for m in msgs] == [False] * (len(msgs) - 1) + [True]
    assert [x for m in msgs for x in m.lines] == stored
    assert b.answer("carol", req, is_member=True, now=NOW + 1, lookup=lookup) == []
    assert b.answer("carol", req, is_member=True, now=NOW + bf.ANSWER_EVERY, lookup=lookup)
    empty = b.answer("dave", req, is_member=True, now=NOW, lookup=lambda *a: [])
    assert [wire.decode(s.payload) for s in empty] == [wire.Backfill("#G", True, ())]


def test_accept_only_what_was_asked() -> None:
    b = bf.Backfill()
    b.want("#g", ["bob"], None, NOW)
    since = int(NOW * 1000) - bf.WINDOW_MS
    good = line(1, since + 10)
    other_channel = line(2, since + 10, target="#other")
    too_old = line(3, since - 1)
    assert b.accept("carol", "#g", True, (good,), NOW) == []  # not asked
    assert b.accept("bob", "#other", True, (good,), NOW) == []  # not that channel
    assert b.accept("bob", "#g", False, (good, other_channel, too_old), NOW) == [good]
    assert b.accept("bob", "#g", True, (good,), NOW) == [good]
    assert b.accept("bob", "#g", True, (good,), NOW) == []  # done after last=1


def test_accept_budget_and_timeout() -> None:
    b = bf.Backfill()
    b.want("#g", ["bob"], None, NOW)
    lines = tuple(line(i, int(NOW * 1000)) for i in range(150))
    assert len(b.accept("bob", "#g", False, lines, NOW)) == 150
    assert len(b.accept("bob", "#g", False, lines, NOW)) == 50  # 200 per peer in all
    assert b.accept("bob", "#g", False, lines, NOW) == []
    b.want("#g", ["bob"], None, NOW)
    b.on_timer(NOW + bf.TIMEOUT + 1)
    assert b.accept("bob", "#g", True, lines[:1], NOW + bf.TIMEOUT + 1) == []
    assert b.next_deadline() is None


def test_late_joiner_gets_200_lines_and_a_forged_one_is_rejected(tmp_path: Path) -> None:
    """Member bob answers newcomer carol from his history; carol merges into hers."""
    bob_h = history.History(tmp_path / "bob.sqlite3", "bob")
    carol_h = history.History(tmp_path / "carol.sqlite3", "carol")
    now_ms = int(NOW * 1000)
    lines = [line(i, now_ms - 200 + i) for i in range(199)]
    forged = line(999, now_ms - 1, "forged", key=MALLORY)
    bob_h._insert([*lines, forged])
    carol, bob = bf.Backfill(), bf.Backfill()
    start = time.perf_counter()
    (ask,) = carol.want("#g", ["bob"], carol_h.newest_ts("#g"), NOW)
    req = wire.decode(ask.payload)
    answers = bob.answer("carol", req, is_member=True, now=NOW, lookup=bob_h.since)
    added: list[wire.SignedLine] = []
    rejected = 0
    for s in answers:
        msg = wire.decode(s.payload)
        got = carol.accept("bob", msg.channel, msg.last, msg.lines, NOW)
        result = carol_h.merge(got, PINS.get)
        added += result.added
        rejected += result.rejected
    elapsed = time.perf_counter() - start
    assert added == lines and rejected == 1
    assert elapsed < 1.0, f"backfill of 200 lines took {elapsed:.2f} s"
    # asking again later brings nothing twice
    (ask,) = carol.want("#g", ["bob"], carol_h.newest_ts("#g"), NOW + 20)
    again = bob.answer("carol", wire.decode(ask.payload), is_member=True, now=NOW + 20,
                       lookup=bob_h.since)
    msg = wire.decode(again[0].payload)
    assert carol_h.merge(carol.accept("bob", "#g", True, msg.lines, NOW + 20),
                         PINS.get).added == ()
    bob_h.close()
    carol_h.close()


def test_a_line_written_after_the_request_comes_live_not_from_backfill() -> None:
    """On a slow path the member's answer can hold a line that is still on its way to us
    live; taken from backfill it would show as history and the live one never."""
    b = bf.Backfill()
    b.want("#g", ["bob"], None, NOW)
    before, after = line(1, int(NOW * 1000) - 5), line(2, int(NOW * 1000) + 5)
    assert b.accept("bob", "#g", True, (before, after), NOW + 1) == [before]
