"""The chat service (channels + backfill + outbox + history) as the engine will drive it:
several users on an in-memory mesh, real history files, fake time, restarts."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import nacl.signing

from client.chat import history, lines, wire
from client.chat.service import ChatService

KEYS = {n: nacl.signing.SigningKey(bytes([i + 1]) * 32)
        for i, n in enumerate(["alice", "bob", "carol", "mallory"])}
T0 = 1_700_000_000.0


def key_of(nick: str) -> bytes | None:
    key = KEYS.get(nick.lower())
    return bytes(key.verify_key) if key else None


class World:
    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.users: dict[str, ChatService] = {}
        self.shown: dict[str, list[str]] = {}
        self.wire_log: list[tuple[str, str, wire.Message]] = []

    def start(self, nick: str, now: float, channels: list[str] | None = None) -> ChatService:
        h = history.History(self.tmp / f"{nick}.sqlite3", nick)
        svc = ChatService(nick, KEYS[nick], key_of, h)
        self.users[nick] = svc
        self.shown.setdefault(nick, [])
        svc.start(channels or [], now)
        for other, peer in self.users.items():
            if other != nick:
                peer.peer_online(nick, now)
                svc.peer_online(other, now)
        self.pump(now)
        return svc

    def stop(self, nick: str, now: float) -> None:
        svc = self.users.pop(nick)
        svc.history.close()
        for peer in self.users.values():
            peer.peer_gone(nick, now)
        self.pump(now)

    def pump(self, now: float) -> None:
        moved = True
        while moved:
            moved = False
            for name, svc in list(self.users.items()):
                for send in svc.take_sends():
                    for to in send.peers:
                        self.wire_log.append((name, to, wire.decode(send.payload)))
                        if to in self.users:
                            moved = True
                            self.users[to].on_control(name, send.payload, now)
                        else:
                            svc.on_undelivered(to, send.payload, now)
                for event in svc.take_events():
                    text = lines.format_chat_event(event)
                    if text is not None:
                        self.shown[name].append(text)

    def take(self, nick: str) -> list[str]:
        out, self.shown[nick] = self.shown[nick], []
        return out


def test_channels_with_disjoint_members_and_topic(tmp_path: Path) -> None:
    w = World(tmp_path)
    alice, bob, carol = (w.start(n, T0) for n in ("alice", "bob", "carol"))
    alice.join("#games", T0 + 1)
    bob.join("#games", T0 + 1)
    w.pump(T0 + 1)
    w.wire_log.clear()
    for n in w.shown:
        w.take(n)
    alice.say("#games", "gg", T0 + 2)
    bob.say(None, "hi room?", T0 + 2)  # bob's current channel is #games now
    alice.say("#room", "to everyone", T0 + 2)
    alice.set_topic("#games", "chess at 5", T0 + 2)
    w.pump(T0 + 2)
    assert w.take("bob") == ["[#games] <alice> gg", "<alice> to everyone",
                             "-!- #games topic: chess at 5 (set by alice)"]
    assert w.take("carol") == ["<alice> to everyone"]
    lines_to_carol = [m for (_, to, m) in w.wire_log if to == "carol" and isinstance(m, wire.Line)]
    assert all(m.line.target == "#room" for m in lines_to_carol)
    assert w.take("alice") == ["-!- #games topic: chess at 5 (set by alice)",
                               "[#games] <bob> hi room?"]


def test_late_joiner_backfill_and_restart_with_history(tmp_path: Path) -> None:
    w = World(tmp_path)
    alice, bob = w.start("alice", T0), w.start("bob", T0)
    alice.join("#games", T0)
    bob.join("#games", T0)
    for i in range(5):
        alice.say("#games", f"line {i}", T0 + i)
    w.pump(T0 + 5)
    carol = w.start("carol", T0 + 10)
    carol.join("#games", T0 + 10)
    w.pump(T0 + 10)
    shown = w.take("carol")
    assert [x for x in shown if x.startswith("(history)")] == [
        f"(history) [#games] <alice> line {i}" for i in range(5)]
    assert len(carol.recent("#games", 50)) == 5
    # restart: carol's channels and history come back
    w.stop("carol", T0 + 20)
    carol = w.start("carol", T0 + 30, ["#room", "#games"])
    shown = w.take("carol")
    assert "-!- carol joined #games" not in shown  # rejoined silently, as #room at start
    assert carol.channels.joined() == ["#room", "#games"]
    assert sum(x.startswith("(history) [#games] <alice> line") for x in shown) == 5


def test_forged_backfill_line_rejected(tmp_path: Path) -> None:
    w = World(tmp_path)
    mallory = w.start("mallory", T0)
    mallory.join("#g", T0)
    forged = wire.sign_line(KEYS["mallory"], author="alice", target="#g",
                            kind=wire.Kind.MESSAGE, text="I owe mallory 100", ts_ms=int(T0 * 1000))
    mallory.history.add(forged)  # a forged line in mallory's history
    mallory.say("#g", "real line", T0 + 1)
    w.pump(T0 + 1)
    bob = w.start("bob", T0 + 5)
    bob.join("#g", T0 + 5)
    w.pump(T0 + 5)
    shown = w.take("bob")
    assert "(history) [#g] <mallory> real line" in shown
    assert not [x for x in shown if "owe" in x]
    assert [x.text for x in bob.recent("#g", 10)] == ["real line"]


def test_private_message_waits_for_offline_peer_across_restarts(tmp_path: Path) -> None:
    w = World(tmp_path)
    alice = w.start("alice", T0)
    alice.message("bob", "see you tomorrow", T0)
    w.pump(T0)
    assert w.take("alice") == ["-!- waiting for bob: see you tomorrow"]
    w.stop("alice", T0 + 1)
    alice = w.start("alice", T0 + 2)  # alice restarts: still waiting
    assert w.take("alice") == ["-!- waiting for bob: see you tomorrow"]
    w.start("bob", T0 + 3)
    assert "*alice* see you tomorrow" in w.take("bob")
    assert w.take("alice") == ["-!- delivered to bob: see you tomorrow"]
    assert alice.history.waiting() == []
    # bob restarts; nothing is delivered twice
    w.stop("bob", T0 + 4)
    w.start("bob", T0 + 5)
    assert not [x for x in w.take("bob") if "see you" in x]


def test_away_auto_reply_and_rename(tmp_path: Path) -> None:
    w = World(tmp_path)
    alice, bob = w.start("alice", T0), w.start("bob", T0)
    w.take("alice")
    bob.set_away("lunch", T0 + 1)
    w.pump(T0 + 1)
    assert w.take("alice") == ["-!- bob is away: lunch"]
    alice.message("bob", "hi", T0 + 2)
    alice.message("bob", "hello?", T0 + 2)
    w.pump(T0 + 2)
    assert w.take("alice") == ["-!- bob is away: lunch"]  # once
    bob.rename("robert", T0 + 3)
    w.pump(T0 + 3)
    assert w.take("alice") == ["-!- bob is now known as robert"]
    assert alice.channels.names("#room") == ["alice", "robert"]


def late_user(w: World, nick: str, keys: Callable[[str], bytes | None],
              now: float) -> ChatService:
    """A user in #ops who has met nobody yet (the test introduces it peer by peer)."""
    svc = ChatService(nick, KEYS[nick], keys, history.History(w.tmp / f"{nick}.sqlite3", nick))
    w.users[nick], w.shown[nick] = svc, []
    svc.start(["#ops"], now)
    return svc


def test_backfilled_lines_wait_for_their_authors_key(tmp_path: Path) -> None:
    """A late joiner may get a member's backfill before it met the lines' author: the lines
    wait (bounded) until the author's key is known, then are verified and shown."""
    known = {"bob", "carol"}

    def partial_key_of(nick: str) -> bytes | None:
        return key_of(nick) if nick.lower() in known else None

    w = World(tmp_path)
    alice, bob = w.start("alice", T0), w.start("bob", T0)
    alice.join("#ops", T0 + 1)
    bob.join("#ops", T0 + 1)
    w.pump(T0 + 1)
    alice.say("#ops", "from alice", T0 + 2)
    w.pump(T0 + 2)
    carol = late_user(w, "carol", partial_key_of, T0 + 3)
    carol.peer_online("bob", T0 + 3)  # carol meets bob first; alice not yet
    bob.peer_online("carol", T0 + 3)
    w.pump(T0 + 3)
    assert not [x for x in w.take("carol") if "from alice" in x]
    known.add("alice")  # the session with alice is up: any payload from her says so
    alice.peer_online("carol", T0 + 4)
    carol.peer_online("alice", T0 + 4)
    w.pump(T0 + 4)
    assert "(history) [#ops] <alice> from alice" in w.take("carol")


def test_a_member_learned_after_the_request_is_asked_too(tmp_path: Path) -> None:
    w = World(tmp_path)
    alice, bob = w.start("alice", T0), w.start("bob", T0)
    for svc in (alice, bob):
        svc.join("#ops", T0 + 1)
    w.pump(T0 + 1)
    bob.say("#ops", "bob was here", T0 + 2)
    w.pump(T0 + 2)
    carol = late_user(w, "carol", key_of, T0 + 3)
    for other in ("alice", "bob"):  # alice's state arrives alone first
        carol.peer_online(other, T0 + 3)
        w.users[other].peer_online("carol", T0 + 3)
        w.pump(T0 + 3)
    asked = {to for frm, to, m in w.wire_log if frm == "carol"
             and isinstance(m, wire.BackfillRequest)}
    assert asked == {"alice", "bob"}
    assert w.take("carol").count("(history) [#ops] <bob> bob was here") == 1


def test_a_new_peer_is_in_room_until_its_state_says_otherwise(tmp_path: Path) -> None:
    """A #room message right after a peer appeared reaches it, before its STATE arrives."""
    h = history.History(tmp_path / "alice.sqlite3", "alice")
    alice = ChatService("alice", KEYS["alice"], key_of, h)
    alice.start([], T0)
    alice.peer_online("bob", T0)
    alice.take_sends()
    alice.say(None, "hi", T0)
    assert [s.peers for s in alice.take_sends()] == [("bob",)]
    state = wire.encode(wire.State(False, "", ("#games",)))
    alice.on_control("bob", state, T0)
    alice.say(None, "only me now", T0)
    assert alice.take_sends() == []


def test_a_waiting_line_is_sent_again_while_its_peer_stays_online(tmp_path: Path) -> None:
    from client.chat.service import RESEND_EVERY

    w = World(tmp_path)
    alice = w.start("alice", T0)
    w.start("bob", T0)
    line = alice.message("bob", "lost on the way", T0 + 1)
    alice.take_sends()  # the network lost it; the Messenger gave up:
    alice.on_undelivered("bob", wire.encode(wire.Line(line)), T0 + 11)
    w.pump(T0 + 11)
    assert w.take("alice") == ["-!- waiting for bob: lost on the way"]
    alice.on_timer(T0 + RESEND_EVERY + 1)
    w.pump(T0 + RESEND_EVERY + 1)
    assert w.take("bob") == ["*alice* lost on the way"]
    assert w.take("alice") == ["-!- delivered to bob: lost on the way"]
    alice.on_timer(T0 + 2 * RESEND_EVERY + 2)
    w.pump(T0 + 2 * RESEND_EVERY + 2)
    assert w.take("bob") == []


def test_a_rename_to_a_nickname_online_is_refused(tmp_path: Path) -> None:
    w = World(tmp_path)
    w.start("mallory", T0)
    alice = w.start("alice", T0)
    w.start("bob", T0)
    w.take("alice")
    alice.on_control("mallory", wire.encode(wire.Rename("bob")), T0 + 1)
    w.pump(T0 + 1)
    assert w.take("alice") == []
    assert alice.channels.is_online("mallory") and alice.channels.is_online("bob")
