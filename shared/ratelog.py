"""A log for warnings that peers or frames can repeat many times a second."""

from __future__ import annotations

import logging
import time

MAX_KEYS = 1000   # keys can come from peers: the table never grows beyond this


class RateLimitedLog:
    """Logs a repeated warning at most once per `interval_s` per key, with a count of the rest."""

    def __init__(self, log: logging.Logger, interval_s: float = 5.0) -> None:
        self._log = log
        self._interval_s = interval_s
        self._next: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}

    def warning(self, key: str, message: str, *args: object) -> None:
        self._emit(logging.WARNING, key, message, *args)

    def error(self, key: str, message: str, *args: object) -> None:
        self._emit(logging.ERROR, key, message, *args)

    def _emit(self, level: int, key: str, message: str, *args: object) -> None:
        now = time.monotonic()
        if now < self._next.get(key, 0.0):
            self._suppressed[key] = self._suppressed.get(key, 0) + 1
            return
        if len(self._next) > MAX_KEYS:
            self._next.clear()
            self._suppressed.clear()
        skipped = self._suppressed.pop(key, 0)
        self._next[key] = now + self._interval_s
        if skipped:
            message += f" (+{skipped} more like this)"
        self._log.log(level, message, *args)
