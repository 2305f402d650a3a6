"""Rate limits as pure logic (the caller passes the time): token buckets, and a budget for
log lines that someone outside can trigger, so a flood never floods the log."""

from __future__ import annotations

import logging
from collections import OrderedDict
from dataclasses import dataclass


class TokenBucket:
    """``rate`` tokens/s, at most ``burst`` banked. Pure: the caller passes the time."""

    __slots__ = ("rate", "burst", "tokens", "stamp")

    def __init__(self, rate: float, burst: float, now: float = 0.0) -> None:
        self.rate, self.burst = rate, burst
        self.tokens, self.stamp = burst, now

    def take(self, now: float, cost: float = 1.0) -> bool:
        if now > self.stamp:
            self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
            self.stamp = now
        if self.tokens >= cost:
            self.tokens -= cost
            return True
        return False


class KeyedRateLimiter:
    """One token bucket per key (source IP), at most ``max_keys`` remembered (oldest forgotten)."""

    def __init__(self, rate: float, burst: float, max_keys: int = 4096) -> None:
        self.rate, self.burst, self.max_keys = rate, burst, max_keys
        self._buckets: OrderedDict[str, TokenBucket] = OrderedDict()

    def allow(self, key: str, now: float) -> bool:
        if self.rate <= 0:
            return True  # disabled
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = TokenBucket(self.rate, self.burst, now)
            if len(self._buckets) > self.max_keys:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(key)
        return bucket.take(now)


@dataclass
class _Window:
    start: float
    logged: int = 0
    held: int = 0  # events not logged one by one in this window


class LogBudget:
    """Per-event log lines of one kind each: the first ``burst`` in a ``window`` are logged
    one by one, the rest only counted and summarised in one line when the window ends
    ("freed 3,112 registrations that never PINGed in the last 10 s").

    ``summaries`` maps a kind to its summary, with ``{n}`` (a count) and ``{window}``.
    Call ``log(kind, now, msg, *args)`` per event and ``flush(now)`` now and then (the
    directory does it on every expiry tick)."""

    def __init__(self, logger: logging.Logger, summaries: dict[str, str],
                 window: float = 10.0, burst: int = 20, level: int = logging.INFO) -> None:
        self.logger, self.summaries = logger, summaries
        self.window, self.burst, self.level = window, burst, level
        self._windows: dict[str, _Window] = {}

    def log(self, kind: str, now: float, msg: str, *args: object) -> None:
        if not self.logger.isEnabledFor(self.level):
            return
        w = self._windows.get(kind)
        if w is None or now - w.start >= self.window:
            self._summarise(kind, w)
            w = self._windows[kind] = _Window(now)
        if w.logged < self.burst:
            w.logged += 1
            self.logger.log(self.level, msg, *args)
        else:
            w.held += 1

    def flush(self, now: float) -> None:
        """Summarise and close the windows that have ended."""
        for kind, w in list(self._windows.items()):
            if now - w.start >= self.window:
                self._summarise(kind, w)
                del self._windows[kind]

    def _summarise(self, kind: str, w: _Window | None) -> None:
        if w is not None and w.held:
            text = self.summaries[kind].format(n=f"{w.held:,}", window=f"{self.window:g}")
            self.logger.log(self.level, "%s", text)
