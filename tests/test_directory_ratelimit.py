"""Log lines anyone can cause are budgeted (issue 12 item 4): fake time, no sleeps."""

from __future__ import annotations

import logging

from models.directory import Directory
from models.ratelimit import LogBudget
from tests.conftest import wait_until


def test_budget_logs_the_first_then_summarises_the_window(caplog) -> None:
    logger = logging.getLogger("test.budget")
    budget = LogBudget(logger, {"freed": "freed {n} more registrations that never PINGed in "
                                         "the last {window} s"}, window=10, burst=3)
    with caplog.at_level(logging.INFO, logger="test.budget"):
        for i in range(3115):
            budget.log("freed", 0 + i / 1000, "freed u%d (no PING)", i)
        budget.flush(9.9)  # the window is still open
        assert len(caplog.records) == 3
        budget.flush(10)
    lines = [r.getMessage() for r in caplog.records]
    assert lines == ["freed u0 (no PING)", "freed u1 (no PING)", "freed u2 (no PING)",
                     "freed 3,112 more registrations that never PINGed in the last 10 s"]


def test_a_new_window_logs_again(caplog) -> None:
    logger = logging.getLogger("test.budget2")
    budget = LogBudget(logger, {"join": "... and {n} more joins in the last {window} s"},
                       window=1, burst=1)
    with caplog.at_level(logging.INFO, logger="test.budget2"):
        budget.log("join", 0, "join a")
        budget.log("join", 0.5, "join b")
        budget.log("join", 1.0, "join c")  # new window: the old one is summarised first
    assert [r.getMessage() for r in caplog.records] == [
        "join a", "... and 1 more joins in the last 1 s", "join c"]


def test_directory_squatter_flood_is_summarised(caplog) -> None:
    d = Directory(ping_interval=1, log_window=10)
    with caplog.at_level(logging.INFO, logger="models.directory"):
        for i in range(500):
            d.register(f"s{i}", None, 0)
        assert len(d.expire(1.0)) == 500
        d.expire(11.0)  # the window opened at 1.0
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 21 and lines[0] == "freed s0 (no PING)"
    assert lines[-1] == "freed 480 more registrations that never PINGed in the last 10 s"


def test_server_log_is_not_flooded_by_squatters(server_factory, dir_client) -> None:
    from models import directory_wire as wire

    server = server_factory(ping_interval=0.5, extra_args=("--register-rate", "0",
                                                           "--log-window", "1"))
    for i in range(100):
        assert isinstance(dir_client(server, f"sq{i}").register(), wire.Keyword)
    assert wait_until(lambda: server.wait_for_log(r"freed 80 more registrations that never "
                                                  r"PINGed in the last 1 s", timeout=0.1)
                      is not None, timeout=5)
    freed = [line for line in server.log_lines() if " freed sq" in line]
    assert len(freed) == 20
    registered = [line for line in server.log_lines() if "registered sq" in line]
    assert len(registered) <= 20
