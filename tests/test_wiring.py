"""client/wiring.py: the one function both faces build a running client with (real server)."""

from __future__ import annotations

import socket

import pytest

from client import errors, wiring


def test_open_client_plugs_files_in_where_asked(server, tmp_path) -> None:
    client = wiring.open_client(server.address, "alice", config_dir=tmp_path / "a",
                                downloads=tmp_path / "dl")
    try:
        assert client.transfers is not None and client.engine.files is client.transfers
        assert client.transfers.downloads == tmp_path / "dl"
    finally:
        client.engine.close()
    chat_only = wiring.open_client(server.address, "bob", config_dir=tmp_path / "b")
    try:
        assert chat_only.transfers is None and chat_only.engine.files is None
    finally:
        chat_only.engine.close()


def test_a_local_port_in_use_is_a_client_error(server, tmp_path) -> None:
    taken = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    taken.bind(("127.0.0.1", 0))
    try:
        with pytest.raises(wiring.CannotOpenSocket) as info:
            wiring.open_client(server.address, "alice", config_dir=tmp_path,
                               bind=taken.getsockname())
        assert isinstance(info.value, errors.ClientError)
        assert f"127.0.0.1:{taken.getsockname()[1]}" in str(info.value)
    finally:
        taken.close()
