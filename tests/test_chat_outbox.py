"""Messages that wait (client/chat/outbox.py + the History outbox), across a restart."""

from __future__ import annotations

from pathlib import Path

import nacl.signing

from client.chat import events as ev
from client.chat import history, wire
from client.chat.outbox import MAX_WAIT_MS, Outbox

BOB = nacl.signing.SigningKey(b"\x02" * 32)


def private(text: str, to: str = "alice", ts: int = 1000) -> wire.SignedLine:
    return wire.sign_line(BOB, author="bob", target=to, kind=wire.Kind.MESSAGE, text=text,
                          ts_ms=ts)


def test_offline_line_waits_then_is_delivered_after_restart(tmp_path: Path) -> None:
    h, box = history.History.in_dir(tmp_path, "bob"), Outbox()
    x = private("see you")
    h.queue(x)
    assert box.sent(x, online=False) == [ev.Waiting("alice", "see you", x.msg_id)]
    h.close()
    # restart: the line is still waiting and is shown so
    h, box = history.History.in_dir(tmp_path, "bob"), Outbox()
    assert box.restored(h.waiting()) == [ev.Waiting("alice", "see you", x.msg_id)]
    assert box.delivered(h.delivered("alice", [x.msg_id])) == [
        ev.DeliveredLater("alice", "see you", x.msg_id)]
    assert box.delivered(h.delivered("alice", [x.msg_id])) == []
    h.close()


def test_delivered_at_once_needs_no_notice(tmp_path: Path) -> None:
    box = Outbox()
    x = private("hi")
    assert box.sent(x, online=True) == []
    assert box.delivered([x]) == []


def test_undelivered_payload_makes_a_private_line_wait() -> None:
    box = Outbox()
    x = private("hi")
    payload = wire.encode(wire.Line(x))
    assert box.undelivered(payload) == [ev.Waiting("alice", "hi", x.msg_id)]
    assert box.undelivered(payload) == []  # once
    channel = wire.sign_line(BOB, author="bob", target="#g", kind=wire.Kind.MESSAGE, text="c",
                             ts_ms=0)
    assert box.undelivered(wire.encode(wire.Line(channel))) == []
    assert box.undelivered(wire.encode(wire.Join("#g"))) == []
    assert box.undelivered(b"C\xff") == []


def test_expired_lines_fail(tmp_path: Path) -> None:
    h, box = history.History.in_dir(tmp_path, "bob"), Outbox()
    x = private("old", ts=0)
    h.queue(x)
    box.sent(x, online=False)
    assert box.failed(h.expire(MAX_WAIT_MS + 1, MAX_WAIT_MS)) == [
        ev.Failed("alice", "old", x.msg_id)]
    assert h.state_of(x.msg_id) is history.OutboxState.FAILED
    h.close()
