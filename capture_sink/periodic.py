"""A check that runs now and then every few seconds on its own thread: the watchers' one loop.

Used by the viewer watch (on-demand segmenting) and the background hot reload. A check that
raises is logged and the loop goes on: a watcher must survive surprises, and say what failed.
"""

from __future__ import annotations

import logging
import threading
from typing import Callable

logger = logging.getLogger(__name__)

JOIN_SLACK_S = 2.0


class Periodic:
    """Calls `check` once in `start`, then every `interval_s` (sooner after `wake`) until `stop`.

    Args:
        check: the work; its exceptions are logged as "E: <what> failed".
        interval_s: seconds between two checks.
        name: the thread's name.
        what: the check, for the log line.
    """

    def __init__(self, check: Callable[[], object], *, interval_s: float, name: str, what: str) -> None:
        self.check = check
        self.interval_s = interval_s
        self.name = name
        self.what = what
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self.check()
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self._thread.start()

    def wake(self) -> None:
        """Run the next check now instead of at the end of the interval."""
        self._wake.set()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=self.interval_s + JOIN_SLACK_S)

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.interval_s)
            self._wake.clear()
            if self._stop.is_set():
                break
            try:
                self.check()
            except Exception:
                logger.exception("E: %s failed", self.what)
