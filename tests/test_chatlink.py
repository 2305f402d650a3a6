"""``engine.chat`` (client/chatlink.py): it is the ``ChatApi`` every face drives, its data
directory, and its fallback without crypto (today's room and private messages)."""

from __future__ import annotations

import inspect
import queue
import time
from pathlib import Path

import pytest

from client import config
from client import events as ev
from client.chat import commands
from client.chat.api import ChatApi
from client.chatlink import ChatLink
from client.engine import Engine


def test_chatlink_implements_every_chat_api_method_with_its_signature() -> None:
    for name, member in inspect.getmembers(ChatApi, inspect.isfunction):
        if name.startswith("_"):
            continue
        ours = getattr(ChatLink, name)
        assert list(inspect.signature(ours).parameters) == list(
            inspect.signature(member).parameters), name
    assert isinstance(ChatLink.nickname, property)


def test_data_dir_precedence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENLCHAT_DATA_DIR", raising=False)
    assert config.data_dir(tmp_path / "a", beside=tmp_path / "c") == tmp_path / "a"
    assert config.data_dir(beside=tmp_path / "c") == tmp_path / "c"
    monkeypatch.setenv("OPENLCHAT_DATA_DIR", str(tmp_path / "env"))
    assert config.data_dir(beside=tmp_path / "c") == tmp_path / "env"
    assert config.data_dir(tmp_path / "a") == tmp_path / "a"
    assert (tmp_path / "env").is_dir()


@pytest.mark.parametrize("server", [{"ping_interval": 0.5}], indirect=True)
def test_without_crypto_plain_text_and_msg_are_todays_messages(server, tmp_path: Path) -> None:
    a = Engine(server.address, "alice", config_dir=tmp_path / "a", encrypted=False)
    b = Engine(server.address, "bob", config_dir=tmp_path / "b", encrypted=False)
    try:
        a.start()
        b.start()
        end = time.monotonic() + 5
        while "bob" not in a.roster():
            assert time.monotonic() < end
            time.sleep(0.02)
        assert commands.run_line("hello", a.chat) == commands.Reply()
        assert commands.run_line("/msg BOB psst", a.chat) == commands.Reply()
        reply = commands.run_line("/join #games", a.chat)
        assert reply.notices and "encrypted" in reply.notices[0]
        assert commands.run_line("/msg nobody hi", a.chat).notices == (
            "no such nick: nobody is not online",)
        got = set()
        while len(got) < 2:
            e = b.events.get(timeout=5)
            if isinstance(e, ev.RoomMessage | ev.PrivateMessage):
                got.add((type(e).__name__, e.text))
        assert got == {("RoomMessage", "hello"), ("PrivateMessage", "psst")}
        with pytest.raises(queue.Empty):
            while True:  # nothing else chat-like reaches bob
                e = b.events.get(timeout=0.2)
                assert not isinstance(e, ev.RoomMessage | ev.PrivateMessage)
    finally:
        a.close()
        b.close()
