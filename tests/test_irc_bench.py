"""Smoke test of tools/bench_irc.py at a tiny scale: it runs, and no line is lost through the
gateway (the full-scale figures are in the README)."""

from __future__ import annotations

import subprocess
import sys

from tests.netns import REPO, client_env


def test_bench_irc_smoke():
    out = subprocess.run(
        [sys.executable, str(REPO / "tools" / "bench_irc.py"), "--count", "5", "--gap", "0.05",
         "--rate", "500", "--seconds", "0.5"],
        cwd=REPO, env=client_env(), capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr[-3000:]
    assert "| 500 lines/s for 0.5 s: stored / sent, lost | 250 / 250, 0 " in out.stdout
