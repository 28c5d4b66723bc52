"""On demand: segment only while someone watches the virtual camera or the web preview.

Who watches /dev/videoN is found the way `fuser` finds it: by scanning /proc/*/fd for other
processes that hold the device open for reading (O_RDONLY or O_RDWR, read from /proc/PID/fdinfo;
our own writer's O_WRONLY handle and our own pid never count). A scan costs about 2 ms for 75
processes and runs once a second on the `ViewerWatch` thread, never on the frame path. While
nobody watches, `SinkApp.set_segmenting(False)` stops sending frames to the segmenters (the
outputs keep writing, so browsers still list the camera); the first viewer turns it back on at
the next check. Viewers come and go in bursts (Chrome opens every camera for a moment while it
lists them), so segmenting stops only after `grace_s` without any viewer.

Limitations:
- Processes of other users are invisible without root (their /proc/PID/fd cannot be read).
- In a container the host's processes are invisible: Zoom or Chrome on the host reading the
  device would never be seen. So in a container mode "auto" keeps segmenting on, and the web
  page/API toggle or `--segmenting on|off` decides (see `effective_mode`).
- Outputs whose audience cannot be counted (a video file, a preview window) also keep "auto"
  segmenting on: a recording must not freeze its mask.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Protocol

from .config import SEGMENTING_MODES, ConfigError
from .periodic import Periodic

logger = logging.getLogger(__name__)

CHECK_INTERVAL_S = 1.0
GRACE_S = 3.0
_O_ACCMODE = 0o3
_O_WRONLY = 0o1


class SegmentingTarget(Protocol):
    """What `ViewerWatch` drives: a `SinkApp` (`segmenting` is read, `set_segmenting` queues)."""

    segmenting: bool

    def set_segmenting(self, active: bool) -> None: ...


@dataclass(frozen=True)
class Viewers:
    """One check: processes reading the device, and other viewers (web preview clients)."""

    device_pids: tuple[int, ...] = ()
    preview: int = 0

    @property
    def total(self) -> int:
        return len(self.device_pids) + self.preview


def running_in_container(root: Path = Path("/")) -> bool:
    """True inside Docker/Podman, where the host's processes (the real viewers) are invisible."""
    return (root / ".dockerenv").exists() or (root / "run" / ".containerenv").exists()


def device_readers(device: str | os.PathLike, *, exclude_pids: frozenset[int] | None = None,
                   proc: Path = Path("/proc")) -> list[int]:
    """Pids of processes that hold `device` open for reading (O_RDONLY or O_RDWR), sorted.

    Args:
        device: the device path; compared with each fd's link target after resolving symlinks.
        exclude_pids: pids never counted (default: this process).
        proc: the proc filesystem to scan.
    """
    target = os.path.realpath(device)
    excluded = frozenset({os.getpid()}) if exclude_pids is None else exclude_pids
    readers: set[int] = set()
    try:
        entries = list(os.scandir(proc))
    except OSError as exc:
        logger.warning("W: cannot scan %s for viewers: %s", proc, exc)
        return []
    for entry in entries:
        if not entry.name.isdigit():
            continue
        pid = int(entry.name)
        if pid in excluded:
            continue
        fd_dir = f"{entry.path}/fd"
        try:
            fds = os.listdir(fd_dir)
        except OSError:  # gone, a kernel thread, or another user's process
            continue
        for fd in fds:
            try:
                if os.readlink(f"{fd_dir}/{fd}") != target:
                    continue
            except OSError:
                continue
            if _opened_for_reading(f"{entry.path}/fdinfo/{fd}"):
                readers.add(pid)
                break
    return sorted(readers)


def _opened_for_reading(fdinfo: str) -> bool:
    try:
        with open(fdinfo) as f:
            for line in f:
                if line.startswith("flags:"):
                    return int(line.split()[1], 8) & _O_ACCMODE != _O_WRONLY
    except (OSError, ValueError, IndexError):
        return False  # closed meanwhile
    return False


COUNTABLE_OUTPUTS = ("v4l2", "null")   # outputs whose viewers are counted (v4l2) or that have none


def effective_mode(mode: str, *, in_container: bool, uncounted: bool = False) -> str:
    """The mode `ViewerWatch` runs: "auto" becomes "on" where viewers cannot be counted."""
    if mode not in SEGMENTING_MODES:
        raise ConfigError(f"segmenting mode {mode!r}: choose one of {', '.join(SEGMENTING_MODES)}")
    return "on" if mode == "auto" and (in_container or uncounted) else mode


@dataclass
class WatchState:
    """What the page and the API show about on-demand segmenting."""

    mode: str
    viewers: Viewers = field(default_factory=Viewers)
    checked_at: float = 0.0
    last_seen_at: float = 0.0


class ViewerWatch:
    """Checks for viewers every `interval_s` and turns segmenting on and off (mode "auto").

    Args:
        app: the SinkApp (or anything with `segmenting` and `set_segmenting`).
        devices: virtual camera devices whose readers count as viewers (none: only the preview).
        preview_viewers: how many web preview streams are open right now.
        mode: "auto" (viewers decide), "on" (always segment) or "off" (never).
        outputs: the app's outputs; any but COUNTABLE_OUTPUTS makes "auto" act as "on".
        in_container: treat "auto" as "on" (the host's viewers are invisible; default: detected).
        interval_s, grace_s: check period; how long without viewers before segmenting stops.
    """

    def __init__(self, app: SegmentingTarget, *, devices: list[str], preview_viewers: Callable[[], int] | None = None,
                 mode: str = "auto", outputs: list[str] | None = None, in_container: bool | None = None,
                 interval_s: float = CHECK_INTERVAL_S, grace_s: float = GRACE_S) -> None:
        self.app = app
        self.devices = list(devices)
        self.preview_viewers = preview_viewers or (lambda: 0)
        self.in_container = running_in_container() if in_container is None else in_container
        self.uncounted = sorted(set(outputs or []) - set(COUNTABLE_OUTPUTS))
        self.interval_s = interval_s
        self.grace_s = grace_s
        self._lock = threading.Lock()
        self.state = WatchState(mode=self._checked_mode(mode), last_seen_at=time.monotonic())
        self._periodic = Periodic(self.check, interval_s=interval_s, name="holocam-viewers", what="viewer check")
        if mode == "auto" and self.in_container:
            logger.info("I: on-demand segmenting is off in a container (host viewers are invisible): "
                        "use the web page or --segmenting on|off")
        elif mode == "auto" and self.uncounted:
            logger.info("I: on-demand segmenting is off: nobody can count who watches output %s",
                        ", ".join(self.uncounted))

    def _checked_mode(self, mode: str) -> str:
        effective_mode(mode, in_container=False)  # validates
        return mode

    def _effective(self, mode: str) -> str:
        return effective_mode(mode, in_container=self.in_container, uncounted=bool(self.uncounted))

    @property
    def mode(self) -> str:
        return self.state.mode

    def set_mode(self, mode: str) -> None:
        """Switch between "auto", "on" and "off"; applied at once (not at the next check)."""
        with self._lock:
            self.state.mode = self._checked_mode(mode)
            self.state.last_seen_at = time.monotonic()  # a fresh grace period for "auto"
        self._periodic.wake()

    def start(self) -> "ViewerWatch":
        self._periodic.start()
        return self

    def stop(self) -> None:
        self._periodic.stop()

    def snapshot(self) -> dict:
        """Mode, what it means here, and the last count of viewers (for the page and the API)."""
        with self._lock:
            s = self.state
            return {"mode": s.mode, "effective_mode": self._effective(s.mode),
                    "in_container": self.in_container, "uncounted_outputs": list(self.uncounted),
                    "device_readers": list(s.viewers.device_pids),
                    "preview_viewers": s.viewers.preview, "viewers": s.viewers.total,
                    "segmenting": bool(self.app.segmenting)}

    def count(self) -> Viewers:
        pids: set[int] = set()
        for device in self.devices:
            pids.update(device_readers(device))
        return Viewers(device_pids=tuple(sorted(pids)), preview=int(self.preview_viewers()))

    def check(self, now: float | None = None) -> bool:
        """One check: count viewers and set segmenting; returns whether segmenting is wanted."""
        now = time.monotonic() if now is None else now
        viewers = self.count()
        with self._lock:
            state = self.state
            state.viewers, state.checked_at = viewers, now
            if viewers.total:
                state.last_seen_at = now
            mode = self._effective(state.mode)
            if mode == "auto":
                wanted = bool(viewers.total) or now - state.last_seen_at < self.grace_s
            else:
                wanted = mode == "on"
        if wanted != bool(self.app.segmenting):
            logger.info("I: %s segmenting (%s)", "resuming" if wanted else "pausing",
                        f"viewers: {viewers.total}" if mode == "auto" else f"mode {mode}")
            self.app.set_segmenting(wanted)
        return wanted
