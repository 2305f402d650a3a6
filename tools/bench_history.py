"""How fast history shows a conversation: the last 500 of 100,000 stored lines.

Run from the repository root::

    python tools/bench_history.py [--lines 100000] [--last 500] [--rounds 20] [--dir DIR]

It fills a fresh history database (a temporary directory unless ``--dir``) with signed lines
round-robin over 10 channels (10,000 lines each), then times
``History.last(conversation, N)`` (the query plus decoding N signed lines) on a warm database
and on a freshly opened one, and prints the medians in milliseconds. Target (issue 11):
<= 100 ms for the last 500 of 100k lines.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import nacl.signing

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from client.chat import history, wire  # noqa: E402

CHANNELS = 10


def fill(h: history.History, total: int) -> None:
    """``total`` lines, round-robin over #c0..#c9 (10 % of them in each), 5,000 per commit."""
    key = nacl.signing.SigningKey(b"\x07" * 32)
    batch: list[wire.SignedLine] = []
    for i in range(total):
        batch.append(wire.sign_line(key, author="alice", target=f"#c{i % CHANNELS}",
                                    kind=wire.Kind.MESSAGE, ts_ms=1_700_000_000_000 + i,
                                    text=f"line {i} of the benchmark, some words to index"))
        if len(batch) == 5000:
            h._insert(batch)
            batch = []
    h._insert(batch)


def timed(fn, rounds: int) -> float:  # type: ignore[no-untyped-def]
    samples = []
    for _ in range(rounds):
        start = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - start) * 1000)
    return statistics.median(samples)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=100_000, help="lines stored (%(default)s)")
    parser.add_argument("--last", type=int, default=500, help="lines loaded (%(default)s)")
    parser.add_argument("--rounds", type=int, default=20, help="timed loads (%(default)s)")
    parser.add_argument("--dir", type=Path, default=None, help="where the database goes "
                        "(default: a temporary directory)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        where = args.dir or Path(tmp)
        h = history.History.in_dir(where, "bob", max_lines=args.lines * 2)
        start = time.perf_counter()
        fill(h, args.lines)
        print(f"stored {args.lines} lines in {time.perf_counter() - start:.1f} s "
              f"(FTS5: {h.fts})")
        assert len(h.last("#c3", args.last)) == min(args.last, args.lines // CHANNELS)
        warm = timed(lambda: h.last("#c3", args.last), args.rounds)
        h.close()

        def cold() -> None:
            fresh = history.History.in_dir(where, "bob", max_lines=args.lines * 2)
            fresh.last("#c5", args.last)
            fresh.close()

        cold_ms = timed(cold, max(3, args.rounds // 4))
        search = history.History.in_dir(where, "bob", max_lines=args.lines * 2)
        search_ms = timed(lambda: search.search("benchmark words"), 5)
        search.close()
    print(f"last {args.last} of {args.lines}: {warm:.1f} ms median (warm), "
          f"{cold_ms:.1f} ms (open + load); /search 50 hits: {search_ms:.1f} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
