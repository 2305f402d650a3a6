"""The saved session (reclaim after a crash): same server and nickname only, never raises."""

from __future__ import annotations

from client.serverlink.session import SESSION_FILE, SavedSession

KW = "k" * 24


def test_saved_keyword_comes_back_for_the_same_server_and_nickname(tmp_path) -> None:
    SavedSession(tmp_path, ("h", 1)).save("Alice", KW)
    assert SavedSession(tmp_path, ("h", 1)).load("alice") == KW  # the directory's canonical form
    assert SavedSession(tmp_path, ("h", 2)).load("alice") is None
    assert SavedSession(tmp_path, ("h", 1)).load("bob") is None


def test_a_damaged_or_missing_file_means_no_session(tmp_path) -> None:
    session = SavedSession(tmp_path, ("h", 1))
    assert session.load("alice") is None
    (tmp_path / SESSION_FILE).write_text("{not json")
    assert session.load("alice") is None
    (tmp_path / SESSION_FILE).write_text('{"server": "h:1", "nickname": "alice", "keyword": 7}')
    assert session.load("alice") is None


def test_saving_where_nothing_can_be_written_only_logs(tmp_path, caplog) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    SavedSession(blocker / "sub", ("h", 1)).save("alice", KW)  # a file where the dir should be
    assert "cannot save the session" in caplog.text
