"""YUYV output frames over a still background, reused once nothing else holds them.

With a still background (an image, a colour, the holodeck) most of each YUYV output frame is that
background's YUYV, the same bytes every frame: the fused passes used to copy all of it into a
fresh frame (1.8 MB at 720p, ~0.4 CPU ms of the hologram frame on an AVX2 Zen 3, perf). A reused
frame already holds it, so the passes write only the columns the person covers now or covered
when that frame was last made (`spans`, capture_sink/native/frame_ops.c).

A frame is reused only when nothing but the pool refers to it. The writers, the page's preview and
the app keep output frames by reference (handed out read-only, capture_sink/steady_writer.py), so a
frame any of them still holds is never written again: CPython's reference count says so, and a
view or a buffer export of the frame counts as a reference too.
"""

from __future__ import annotations

import sys

import numpy as np

MAX_FRAMES = 4   # in use at once: the frame being made, the one a writer writes, one pending, a spare


def _refcount_tells() -> bool:
    """Whether sys.getrefcount sees a reference held elsewhere (CPython); else frames are never reused."""
    entry = [np.empty(1, np.uint8)]
    alone = sys.getrefcount(entry[0]) == 2
    held = entry[0]
    seen = sys.getrefcount(entry[0]) == 3
    del held
    return alone and seen


class FramePool:
    """Hands out YUYV frames for the passes over one still background's YUYV, with their spans."""

    def __init__(self) -> None:
        self._entries: list[list[np.ndarray]] = []   # [frame, spans] each
        self._background: np.ndarray | None = None
        self._reuse = _refcount_tells()
        self.reused = 0     # frames handed out again (for tests and the bench)
        self.made = 0       # frames allocated

    def take(self, background_yuyv: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """A writeable frame of `background_yuyv`'s shape and its spans: the frame holds
        `background_yuyv` outside the columns [spans[y, 0], spans[y, 1]) of each row y, and the pass
        that fills it updates them. Spans None: a fresh frame the pass writes whole (the pool is
        full of frames still held elsewhere)."""
        if self._background is not background_yuyv:
            self._entries.clear()            # another background: what the frames hold is stale
            self._background = background_yuyv
        for entry in self._entries:
            # 2: the entry's reference and getrefcount's argument; more: a writer, the app, a view
            if sys.getrefcount(entry[0]) == 2:
                entry[0].flags.writeable = True
                self.reused += 1
                return entry[0], entry[1]
        self.made += 1
        if not self._reuse or len(self._entries) >= MAX_FRAMES:
            return np.empty(background_yuyv.shape, np.uint8), None
        frame = background_yuyv.copy()       # made once per entry: the background itself, no spans
        spans = np.zeros((frame.shape[0], 2), np.int32)
        self._entries.append([frame, spans])
        return frame, spans
