"""The hologram look of the seed, vectorised.

Recipe from Benjamin Elder, "Open Source Virtual Background" (CC BY 4.0):
1. tint: `cv2.applyColorMap(frame, COLORMAP_WINTER)` (OpenCV maps the frame's grey level);
2. bands: every row with `y % (band_length + band_gap) < band_length` is multiplied by its own
   factor drawn from U(0.1, 0.3), fresh each frame, and truncated to uint8;
3. ghosting: `g = 0.2*holo + 0.8*shift(holo, +5, +5)` then `g = 0.4*g + 0.6*shift(holo, -5, -5)`,
   where shift rolls both axes and zero-fills what wrapped around;
4. result: `0.5*frame + 0.6*g`, saturating (cv2.addWeighted).

Differences from the seed, all for speed: the tint is a LUT on the grey image applied only to
the colour channels the map does not leave at zero (WINTER's red is always 0, and its green is
the grey level itself, so a copy); the shifts are
views into one zero-padded buffer instead of rolled copies; the row loop is one strided NumPy
multiply over all banded rows. Results match the seed's formulas within +-2 levels.
"""

from __future__ import annotations

import logging

import cv2
import numpy as np

from capture_sink.effects import Effect, EffectError
from capture_sink.frame_pool import FramePool
from capture_sink.native import choice, library
from capture_sink.scaled_alpha import ScaledAlpha, pass_alpha

# The ghost as weights of the three shifted copies of the banded tint, in the final image:
# 0.6 * (0.4 * (0.2 holo + 0.8 ahead) + 0.6 behind); the frame's own weight 0.5 is in frame_ops.c.
GHOST_WEIGHTS = (0.6 * 0.4 * 0.8, 0.6 * 0.4 * 0.2, 0.6 * 0.6)   # (y-s, x-s), (y, x), (y+s, x+s)

logger = logging.getLogger(__name__)

COLORMAPS = {name[len("COLORMAP_"):].lower(): getattr(cv2, name)
             for name in dir(cv2) if name.startswith("COLORMAP_")}


def colormap_lut(name: str) -> np.ndarray:
    """The (256, 3) BGR table OpenCV uses for colormap `name` on a grey level."""
    if name not in COLORMAPS:
        raise EffectError(f"unknown colormap {name!r}: choose one of {', '.join(sorted(COLORMAPS))}")
    ramp = np.arange(256, dtype=np.uint8).reshape(1, 256)
    return cv2.applyColorMap(cv2.cvtColor(ramp, cv2.COLOR_GRAY2BGR), COLORMAPS[name])[0]


class Hologram(Effect):
    """Blue-tinted, banded, ghosted foreground (the seed's hologram).

    Options:
        seed: seed of the NumPy Generator that draws the band factors (None: unpredictable).
        band_length, band_gap: banded rows per period and unbanded rows between them.
        gain_low, gain_high: range of the per-row band factor.
        shift: ghost offset in pixels (both axes, both directions).
        colormap: OpenCV colormap name of the tint.
    """

    KEY = "hologram"

    def __init__(self, *, seed: int | None = None, band_length: int = 2, band_gap: int = 3,
                 gain_low: float = 0.1, gain_high: float = 0.3, shift: int = 5,
                 colormap: str = "winter") -> None:
        if band_length < 0 or band_gap < 0 or band_length + band_gap < 1:
            raise EffectError(f"hologram bands {band_length}/{band_gap} are invalid: use "
                              f"band_length >= 0 and band_gap >= 0 with a positive sum")
        if not 0.0 <= gain_low <= gain_high <= 1.0:
            raise EffectError(f"hologram gains {gain_low}..{gain_high} are invalid: use "
                              f"0 <= gain_low <= gain_high <= 1")
        if shift < 0:
            raise EffectError(f"hologram shift {shift} is negative: use a shift >= 0 pixels")
        self.band_length, self.band_gap = int(band_length), int(band_gap)
        self.gain_low, self.gain_high = float(gain_low), float(gain_high)
        self.shift = int(shift)
        self.rng = np.random.default_rng(seed)
        lut = colormap_lut(colormap)
        self._full_lut = lut
        # Channels the map never lights (WINTER's red) stay zero in the ghost: skip their work.
        self._channels = [c for c in range(3) if lut[:, c].any()]
        self._luts = [np.ascontiguousarray(lut[:, c]) for c in self._channels]
        # A channel equal to the grey level (WINTER's green) is a copy, not a LUT pass.
        self._identity = [bool(np.array_equal(t, np.arange(256))) for t in self._luts]
        self._shape: tuple[int, int] | None = None
        self.last_gains: np.ndarray = np.empty(0, np.float32)  # the factors of the last frame

    def _allocate(self, height: int, width: int) -> None:
        s, k = self.shift, len(self._channels)
        self._gray = np.empty((height, width), np.uint8)
        # One zero-padded plane per lit channel: holo sits in the middle, and the two shifted
        # copies are just views offset by +-shift; the zero border is the seed's zero fill.
        self._padded = np.zeros((k, height + 2 * s, width + 2 * s), np.uint8)
        self._holo = [p[s:s + height, s:s + width] for p in self._padded]
        self._ahead = [p[:height, :width] for p in self._padded]          # shift(holo, +s, +s)
        self._behind = [p[2 * s:, 2 * s:][:height, :width] for p in self._padded]  # shift(-s, -s)
        self._ghost_tmp = np.empty((height, width), np.uint8)
        self._zero = np.zeros((height, width), np.uint8)
        self._ghost_planes = [self._zero] * 3
        self._ghost_own = [np.empty((height, width), np.uint8) for _ in self._channels]
        for c, plane in zip(self._channels, self._ghost_own):
            self._ghost_planes[c] = plane
        self._ghost = np.empty((height, width, 3), np.uint8)
        self._out = np.empty((height, width, 3), np.uint8)

        period, length = self.band_length + self.band_gap, self.band_length
        self._full_periods = height // period
        tail_rows = height - self._full_periods * period
        self._tail_length = min(length, tail_rows)
        n_band_rows = self._full_periods * length + self._tail_length
        self._gains = np.empty(n_band_rows, np.float32)
        self._gain_tmp = np.empty((self._full_periods, length, width), np.float32)
        self._tail_tmp = np.empty((self._tail_length, width), np.float32)
        self._banded_rows = np.flatnonzero(np.arange(height) % period < length) if length else np.empty(0, np.intp)
        self._native_ready = False   # the fused pass's LUT and weights made (on first use)
        self._shape = (height, width)

    def _scale_bands(self, plane: np.ndarray) -> None:
        """Multiply every banded row by its factor, truncating like the seed's uint8 store."""
        period, length, width = self.band_length + self.band_gap, self.band_length, plane.shape[1]
        main_rows = self._full_periods * period
        n_main = self._full_periods * length
        if n_main:
            bands = plane[:main_rows].reshape(self._full_periods, period, width)[:, :length]
            gains = self._gains[:n_main].reshape(self._full_periods, length, 1)
            np.multiply(bands, gains, out=self._gain_tmp)
            np.copyto(bands, self._gain_tmp, casting="unsafe")
        if self._tail_length:
            tail = plane[main_rows:main_rows + self._tail_length]
            np.multiply(tail, self._gains[n_main:, None], out=self._tail_tmp)
            np.copyto(tail, self._tail_tmp, casting="unsafe")

    def _prepare(self, frame_bgr: np.ndarray) -> None:
        height, width = frame_bgr.shape[:2]
        if self._shape != (height, width):
            self._allocate(height, width)
        # One factor per banded row, drawn in row order (as the seed's loop draws them).
        self._gains[:] = self.rng.uniform(self.gain_low, self.gain_high, self._gains.size)
        self.last_gains = self._gains

    def apply(self, frame_bgr: np.ndarray) -> np.ndarray:
        self._prepare(frame_bgr)
        return self._apply_opencv(frame_bgr)

    def _apply_opencv(self, frame_bgr: np.ndarray) -> np.ndarray:
        cv2.cvtColor(frame_bgr, cv2.COLOR_BGR2GRAY, dst=self._gray)
        for lut, identity, holo, ahead, behind, ghost in zip(
                self._luts, self._identity, self._holo, self._ahead, self._behind, self._ghost_own):
            if identity:
                np.copyto(holo, self._gray)
            else:
                cv2.LUT(self._gray, lut, dst=holo)
            self._scale_bands(holo)
            cv2.addWeighted(holo, 0.2, ahead, 0.8, 0.0, dst=self._ghost_tmp)
            cv2.addWeighted(self._ghost_tmp, 0.4, behind, 0.6, 0.0, dst=ghost)
        cv2.merge(self._ghost_planes, dst=self._ghost)
        return cv2.addWeighted(frame_bgr, 0.5, self._ghost, 0.6, 0.0, dst=self._out)

    @property
    def fuses_composite(self) -> bool:
        ops = library.load()
        return ops is not None and self._shape is not None and choice.chosen("hologram+composite", self._shape, ops.isa)

    def composite(self, frame_bgr: np.ndarray, background: np.ndarray, alpha: np.ndarray | ScaledAlpha,
                  compositor, yuyv: bool = False, background_yuyv: np.ndarray | None = None) -> np.ndarray:
        """The hologram over the background in one native pass where that is faster on this CPU.

        The fused pass reads the frame, the tint and the background once and writes each output
        byte once, instead of the eleven full-frame OpenCV passes of `apply` + the compositor;
        with `yuyv` (every output takes YUYV) it writes YUYV where that beats converting after,
        copying `background_yuyv` (a still background as YUYV) where the mask is 0.
        """
        ops = library.load()
        if ops is None or not library.accepts(frame_bgr, background, alpha):
            return compositor.composite(self.apply(frame_bgr), background, alpha, yuyv=yuyv,
                                        background_yuyv=background_yuyv)
        self._prepare(frame_bgr)
        small = pass_alpha(alpha)      # a ScaledAlpha: the pass scales each row up itself

        def stock() -> np.ndarray:
            return compositor.composite(self._apply_opencv(frame_bgr), background, alpha, yuyv=yuyv,
                                        background_yuyv=background_yuyv)

        def native(channels: int = 3) -> np.ndarray:
            return self._native_composite(ops, frame_bgr, background, small, channels,
                                          background_yuyv if channels == 2 else None, compositor.frames)

        if choice.use_native("hologram+composite", self._shape, ops.isa, stock, native):
            if yuyv and compositor.yuyv_pays("hologram+composite", self._shape, ops.isa, native,
                                             lambda: native(2)):
                return native(2)
            return native()
        return stock()

    def _native_composite(self, ops, frame_bgr: np.ndarray, background: np.ndarray | None,
                          alpha: np.ndarray | None, channels: int = 3,
                          background_yuyv: np.ndarray | None = None, frames: FramePool | None = None) -> np.ndarray:
        """The fused pass into a read-only frame: BGR (channels 3) or YUYV (channels 2, with the
        background's YUYV copied where the mask is 0 when it is given, into a frame of `frames`
        that already holds most of it, when that is given)."""
        height, width = self._shape
        s = self.shift
        if not self._native_ready:
            self._native_lut = np.ascontiguousarray(self._full_lut)
            self._native_ready = True
            self._weights = np.empty((height, 3), np.uint16)
            self._row_gain = np.ones(height + 2 * s, np.float32)   # the tint's gain per row, 0 outside
            self._row_gain[:s] = 0.0
            self._row_gain[s + height:] = 0.0
        gain = self._row_gain
        gain[s + self._banded_rows] = self._gains
        # Output row y reads the tint's rows y - s, y, y + s, which sit at gain[y], [y + s], [y + 2s].
        rows = np.stack([gain[offset:offset + height] * weight
                         for weight, offset in zip(GHOST_WEIGHTS, (0, s, 2 * s))], axis=1)
        self._weights[:] = np.minimum(np.rint(rows * 65536.0), 65535.0)
        gain[s + self._banded_rows] = 1.0
        # A frame nobody holds, handed out read-only: the writers keep it without a copy
        # (capture_sink/steady_writer.py); glibc reuses the freed frames, so this costs no page faults.
        spans = None
        if frames is not None and background_yuyv is not None:
            out, spans = frames.take(background_yuyv)
        else:
            out = np.empty((height, width, channels), np.uint8)
        ops.hologram_composite(frame_bgr, self._native_lut, s, self._weights, background, alpha, out,
                               background_yuyv, spans)
        out.flags.writeable = False
        return out
