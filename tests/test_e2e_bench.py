"""Smoke test of tools/bench_peer.py at a tiny scale: it runs, and under loss every message
arrives exactly once and in order (the full-scale figures are in the README)."""

from __future__ import annotations

import subprocess
import sys

from tests.netns import REPO, client_env


def test_bench_peer_smoke():
    out = subprocess.run(
        [sys.executable, str(REPO / "tools" / "bench_peer.py"), "--peers", "4", "--workers", "1",
         "--one", "5", "--room", "3", "--loss-room", "3", "--burst", "20", "--mode", "both"],
        cwd=REPO, env=client_env(), capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-3000:]
    rows = {line.split("|")[1].strip(): [c.strip() for c in line.split("|")[2:-1]]
            for line in out.stdout.splitlines() if line.startswith("| ")}
    assert rows["metric"] == ["plain", "encrypted"]
    # 5 one-to-one + 3 room messages to 4 peers under loss, in each mode
    assert rows["20% loss both ways: delivered / sent, duplicates, out of order"] == [
        "17 / 17, 0, 0", "17 / 17, 0, 0"]
    # kernel arrival timestamps (Linux): a figure, not n/a, next to the processed one
    if sys.platform == "linux":
        for label in ("one-to-one, arrived at the peer's socket (kernel) p50 / p99 ms",
                      "room to 4, arrived at all 4 peers' sockets (kernel) p50 / p99 ms",
                      "20% loss both ways: room, arrived at all (kernel) p50 / p99 ms"):
            assert all(cell != "n/a" and float(cell.split(" / ")[1]) >= 0
                       for cell in rows[label]), (label, rows[label])
