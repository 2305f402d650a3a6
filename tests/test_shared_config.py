"""Issue 12 item 3: clients sharing one config directory (two windows, two users of one terminal
server) never overwrite each other's saved session, pins or identity key, and the restart
after a ``kill -9`` reclaims the nickname at once."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import filelock
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from client.locks import lock_path
from client.peer.pins import PinStore
from client.serverlink.session import SavedSession
from tests.netns import ClientProc

ROOT = Path(__file__).resolve().parent.parent
KW_A, KW_B = "a" * 24, "b" * 24


def test_one_saved_session_per_nickname_and_server(tmp_path: Path) -> None:
    SavedSession(tmp_path, ("h", 1)).save("alice", KW_A)
    SavedSession(tmp_path, ("h", 1)).save("bob", KW_B)  # used to replace alice's
    SavedSession(tmp_path, ("h", 2)).save("alice", KW_B)
    assert SavedSession(tmp_path, ("h", 1)).load("Alice") == KW_A
    assert SavedSession(tmp_path, ("h", 1)).load("bob") == KW_B
    assert SavedSession(tmp_path, ("h", 2)).load("alice") == KW_B


def test_a_session_in_use_is_neither_reused_nor_overwritten(tmp_path: Path) -> None:
    first = SavedSession(tmp_path, ("h", 1))
    assert first.claim("alice") is None
    first.save("alice", KW_A, ("k" * 43, 5))
    second = SavedSession(tmp_path, ("h", 1))
    assert second.claim("alice") is None  # the first client still runs: register afresh
    second.save("alice", KW_B)  # ... and never clobber the first one's keyword
    assert second.claim("bob") is None
    first.release()  # the first client ended (or died: the OS drops the lock)
    third = SavedSession(tmp_path, ("h", 1))
    saved = third.claim("alice")
    assert saved is not None and saved.keyword == KW_A and saved.mac == ("k" * 43, 5)
    third.release()
    second.release()


def test_the_session_file_of_earlier_versions_is_still_read(tmp_path: Path) -> None:
    (tmp_path / "session.json").write_text(
        f'{{"server": "h:1", "nickname": "alice", "keyword": "{KW_A}"}}')
    assert SavedSession(tmp_path, ("h", 1)).load("alice") == KW_A


def _run_together(tmp_path: Path, script: str, n: int = 2) -> list[str]:
    """Run ``script`` in ``n`` processes released at the same moment; their stdout."""
    go = tmp_path / "go"
    prelude = textwrap.dedent(f"""
        import sys, time
        from pathlib import Path
        sys.path.insert(0, {str(ROOT)!r})
        while not Path({str(go)!r}).exists():
            time.sleep(0.001)
        """)
    procs = [subprocess.Popen([sys.executable, "-c", prelude + textwrap.dedent(script), str(i)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for i in range(n)]
    time.sleep(0.5)  # all imported and waiting
    go.touch()
    outs = []
    for p in procs:
        out, err = p.communicate(timeout=60)
        assert p.returncode == 0, err
        outs.append(out)
    return outs


def test_concurrent_pin_writes_from_two_processes_lose_nothing(tmp_path: Path) -> None:
    config = tmp_path / "config"
    _run_together(tmp_path, f"""
        from client.peer.pins import PinStore
        me = sys.argv[1]
        pins = PinStore.in_dir(Path({str(config)!r}))
        for i in range(60):
            pins.pin(f"peer{{me}}x{{i}}", bytes([int(me) + 1]) * 32)
        """)
    pins = PinStore.in_dir(config)
    assert len(pins) == 120
    assert pins.check("peer0x59", b"\x01" * 32) == "same"
    assert pins.check("peer1x0", b"\x02" * 32) == "same"


def test_clients_starting_together_share_one_identity_key(tmp_path: Path) -> None:
    config = tmp_path / "config"
    outs = _run_together(tmp_path, f"""
        from client.peer import identity
        for i in range(40):
            print(identity.own_fingerprint(identity.load_or_create(Path({str(config)!r}) / str(i))))
        """)
    assert outs[0] == outs[1]
    assert len(set(outs[0].splitlines())) == 40


@pytest.mark.parametrize("server", [{"ping_interval": 10.0}], indirect=True)
def test_killed_client_sharing_a_config_folder_reclaims_its_nickname(server, tmp_path: Path
                                                                      ) -> None:
    shared = tmp_path / "shared"
    made: list[ClientProc] = []

    def start(nick: str) -> ClientProc:
        c = ClientProc(server.address, nick, shared)
        made.append(c)
        c.expect(r"-!- registered as .*", timeout=15)
        return c

    try:
        alice = start("alice")
        bob = start("bob")  # saved its own session in the same folder
        alice.expect("-!- bob joined")
        alice.proc.kill()  # SIGKILL: no QUIT; the server keeps alice listed for 15 s
        alice.proc.wait(5)
        alice2 = start("alice")  # was NICK_TAKEN: bob's session had replaced alice's
        alice2.send("back already")
        bob.expect("<alice> back already")
        assert not [x for x in bob.seen if x.endswith("alice left")], bob.seen
    finally:
        for c in made:
            c.kill()


def test_pins_not_saved_while_another_process_holds_the_lock_are_saved_later(
        tmp_path: Path, monkeypatch, caplog) -> None:
    monkeypatch.setattr("client.locks.LOCK_TIMEOUT", 0.05)
    pins = PinStore.in_dir(tmp_path)
    other = filelock.FileLock(lock_path(pins.path), thread_local=False)
    other.acquire()
    try:
        pins.pin("alice", b"\x01" * 32)  # the other writer is slow: not written yet
    finally:
        other.release()
    assert "cannot save pinned keys" in caplog.text and pins.dirty
    assert len(PinStore.in_dir(tmp_path)) == 0
    pins.pin("bob", b"\x02" * 32)
    assert PinStore.in_dir(tmp_path).nicknames() == ["alice", "bob"]


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner,
                                                                max_size=4), max_leaves=10)


@settings(max_examples=100, deadline=None)
@given(st.dictionaries(st.sampled_from(["server", "nickname", "keyword", "mac_key",
                                        "mac_counter", "other"]), json_values, max_size=6))
def test_any_session_file_loads_as_a_session_or_none(tmp_path_factory, data) -> None:
    folder = tmp_path_factory.mktemp("s")
    session = SavedSession(folder, ("h", 1))
    path = session.path_for("alice")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))
    saved = session.load_saved("alice")
    assert saved is None or (isinstance(saved.keyword, str) and (
        saved.mac is None or (isinstance(saved.mac[0], str) and saved.mac[1] >= 0)))
