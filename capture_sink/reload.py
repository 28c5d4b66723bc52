"""Hot reload: a background image or video file changed on disk is picked up without a restart.

`BackgroundWatcher` polls the current background's file once every `interval_s` (one `os.stat`:
cheaper and more portable than inotify, and it follows the file through editors that replace it
by rename). A change is applied once the file has stopped changing for one poll, so a file still
being written is not read half-way; then `app.set_background(spec)` builds the background again
and the frame loop swaps it in between two frames. A file that became unreadable (deleted, or
saved broken) keeps the previous picture and logs one warning per change.

Whoever sets a new background calls `note(spec)` first (the web API does), so the watcher knows
which version of the file was loaded even if it changes before the next poll; a background set
without a note is taken as loaded from the file as the watcher first sees it.
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path
from typing import Protocol

from .backgrounds import BackgroundError, parse_colour
from .periodic import Periodic

logger = logging.getLogger(__name__)

POLL_INTERVAL_S = 0.5
_BUILT_IN = ("default", "holodeck", "none", "green")


class BackgroundTarget(Protocol):
    """What `BackgroundWatcher` drives: a SinkApp (`config.background` is read)."""

    config: object

    def set_background(self, spec: str) -> None: ...


Signature = tuple[int, int, int]   # (st_mtime_ns, st_size, st_ino)


def background_file(spec: str) -> Path | None:
    """The file behind a background spec, or None for built-in ones (colours, blur, default, ...)."""
    text = str(spec).strip()
    word = text.lower()
    if word in _BUILT_IN or word == "blur" or word.startswith("blur:"):
        return None
    try:
        if parse_colour(text) is not None:
            return None
    except BackgroundError:
        return None
    return Path(text).expanduser()


def file_signature(path: Path) -> Signature | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size, st.st_ino)


class BackgroundWatcher:
    """Re-applies the background when its file changes.

    Args:
        app: the SinkApp (reads `app.config.background`, calls `app.set_background`).
        interval_s: polling period; a change shows up within about two periods.
    """

    def __init__(self, app: BackgroundTarget, *, interval_s: float = POLL_INTERVAL_S) -> None:
        self.app = app
        self.interval_s = interval_s
        self.reloads = 0
        self._spec: str | None = None
        self._loaded: Signature | None = None     # what the running background was built from
        self._seen: Signature | None = None       # what the last poll saw
        self._warned: object = None                # the change last warned about (no repeats)
        self._noted: tuple[str, Signature | None] | None = None
        self._lock = threading.Lock()
        self._periodic = Periodic(self.poll, interval_s=interval_s, name="holocam-reload",
                                  what="background reload check")

    def start(self) -> "BackgroundWatcher":
        self._periodic.start()
        return self

    def stop(self) -> None:
        self._periodic.stop()

    def note(self, spec: str) -> None:
        """Call just before `app.set_background(spec)`: the file as it is now is what gets loaded."""
        path = background_file(spec)
        with self._lock:
            self._noted = (str(spec), file_signature(path) if path else None)

    def poll(self) -> bool:
        """One look at the file; returns True if it asked the app to reload the background."""
        spec = str(self.app.config.background)
        path = background_file(spec)
        if spec != self._spec:   # a new background (API, page): the version loaded is the baseline
            with self._lock:
                noted, self._noted = self._noted, None
            now = file_signature(path) if path else None
            self._spec = spec
            self._loaded = noted[1] if noted is not None and noted[0] == spec else now
            self._seen = now
            self._warned = None
            return False
        if path is None:
            return False
        now = file_signature(path)
        settled = now == self._seen
        self._seen = now
        if now == self._loaded or not settled:
            return False
        if now is None:
            if self._warned != "missing":
                logger.warning("W: background %s is gone: keeping the picture loaded before; put the file back "
                               "or choose another background", path)
                self._warned = "missing"
            return False
        try:
            self.app.set_background(spec)
        except BackgroundError as exc:
            if self._warned != now:
                logger.warning("W: background %s changed but cannot be used (%s): keeping the previous one", path, exc)
                self._warned = now
            return False
        self._loaded = now
        self._warned = None
        self.reloads += 1
        logger.info("I: background %s changed on disk: reloaded", path)
        return True
