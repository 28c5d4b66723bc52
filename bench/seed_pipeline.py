"""The seed's whole frame loop, one process, as the baseline of bench/bench_pipeline.py.

The seed (Benjamin Elder's "Open Source Virtual Background", CC BY 4.0, plus a
Human-Segmentation-PyTorch ICNet-ResNet18 at 320) did every step in one synchronous loop:

    frame -> ICNet mask (longer side 320, padded square) -> resize to frame, dilate 10x10,
    blur 30x30 in float64 -> hologram with a Python row loop -> float64 compositing ->
    BGR -> RGB -> YUYV (pyfakewebcam's per-row packing) -> write

The image steps are bench/seed_reference.py's, written from the blog's formulas. The model is `ICNetSegmentation.random(seed=0, fast=True)`: the real architecture and
cost with random weights (the authors' checkpoint cannot be shipped), and with batch norm folded
into the convolutions, which the seed did not do: the baseline is, if anything, a little faster
than the seed was. torch keeps its default thread count, as the seed did.
"""

from __future__ import annotations

import logging
import time

import numpy as np

from bench.seed_reference import seed_composite, seed_hologram, seed_output, seed_refine
from segmenter.model.icnet import ICNetSegmentation
from shared.resize import prepare_input

logger = logging.getLogger(__name__)

STAGES = ("mask", "refine", "hologram", "composite", "output")


class SeedPipeline:
    """One frame through the seed's loop: `process(frame_bgr)` returns the YUYV frame it would write.

    `samples[stage]` collects per-frame milliseconds of each stage (see STAGES) when `record` is on;
    `effect` "none" skips the hologram (the frame itself is composited), as holocam's `--effect none`.
    """

    def __init__(self, width: int, height: int, background_bgr: np.ndarray, effect: str = "hologram") -> None:
        if background_bgr.shape != (height, width, 3):
            raise ValueError(f"background must be {width}x{height} BGR, got {background_bgr.shape}: "
                             f"scale it with capture_sink.capture.scale_to_fill")
        self.width, self.height = width, height
        self.background = background_bgr
        self.effect = effect            # "hologram" or "none" (the plain frame over the background)
        self.model = ICNetSegmentation.random(seed=0, fast=True)
        self.spec = self.model.input_spec
        self.record = True
        self.samples: dict[str, list[float]] = {name: [] for name in STAGES}

    def _timed(self, name: str, started: float) -> float:
        now = time.perf_counter()
        if self.record:
            self.samples[name].append((now - started) * 1e3)
        return now

    def process(self, frame_bgr: np.ndarray) -> np.ndarray:
        t = time.perf_counter()
        mask_small = self.model.segment(prepare_input(frame_bgr, self.spec, bgr=True))
        t = self._timed("mask", t)
        mask = seed_refine(mask_small, self.width, self.height)
        t = self._timed("refine", t)
        # the seed's hologram and compositing write into the frame: work on the loop's own copy
        foreground = seed_hologram(frame_bgr.copy()) if self.effect == "hologram" else frame_bgr.copy()
        t = self._timed("hologram", t)
        out = seed_composite(foreground, self.background, mask)
        t = self._timed("composite", t)
        yuyv = seed_output(out)
        self._timed("output", t)
        return yuyv
