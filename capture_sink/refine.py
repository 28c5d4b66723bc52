"""Mask refinement: from the segmenter's small probability mask to a frame-sized alpha.

Stages, in order (each optional except the final resize):
1. temporal EMA at the model's resolution, held here in the sink so segmenter replicas stay
   stateless (averaging before the upsample equals averaging after it: both are linear);
2. upsample to the working resolution (bilinear, half-pixel centres, as MediaPipe brings its
   mask back to image size);
3. edge-aware refinement guided by the frame: fast guided filter or joint bilateral;
4. threshold/feather: a ramp of width `feather` centred on `threshold`;
5. erode then dilate (rectangular kernels, like the seed's `np.ones((10, 10))`);
6. box blur (the seed's `cv2.blur`);
7. upsample to the frame size (on the virtual camera's path left to the native pass, which scales
   each row as it blends it: capture_sink/scaled_alpha.py).
The guided filter does 2-4 in one: it needs the mask only at its low resolution (taken straight
from the model's), and the ramp is linear in its output, so it is folded into its coefficients;
its one work-size pass writes the thresholded alpha (0.26 ms of 2.1 less at 720p than the stages
one by one, the same edge error: docs/sink-performance.md).

The edge-aware filter runs on the soft probability, *before* the threshold: it moves the
mask's transition onto the frame's edges and the ramp then sharpens it. Filtering the
thresholded mask instead only blurs it (measured: about twice the edge error).

Stages 1-6 run at a working resolution of at most `work_max_side` pixels on the longer side
(640x360 for 720p and 1080p): the model sees 256 pixels, so working at full resolution buys
little but cost. Sizes in the config (dilate, erode, blur, edge radius) are in *frame* pixels
and are scaled to the working resolution, so a preset looks the same at 720p and 1080p.

The output alpha is uint8 (H, W), 255 = person: `capture_sink.composite.Compositor` blends in
uint8, and a float32 alpha would cost a 4x bigger final resize for no visible gain.

The guided filter is the default edge stage: it costs about half the joint bilateral filter's time
and gives the smaller edge error whenever the model's mask is off by a pixel or coarse, which a
real model's mask is (figures: docs/sink-performance.md, from bench/bench_sink.py).
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, replace
from typing import Literal

import cv2
import numpy as np

from capture_sink.native import choice, library
from capture_sink.scaled_alpha import ScaledAlpha

logger = logging.getLogger(__name__)

EdgeMode = Literal["off", "guided", "bilateral"]
EDGE_MODES = ("off", "guided", "bilateral")


class RefineConfigError(ValueError):
    """A refinement setting out of range; the message is one line naming the fix."""


@dataclass(frozen=True)
class RefineConfig:
    """Settings of `MaskRefiner`. Pixel sizes are in frame pixels (scaled to the working size).

    Attributes:
        threshold: probability (0..1) at the centre of the soft ramp.
        feather: width (0..1) of the ramp: 0 cuts hard at `threshold`, 1 with threshold 0.5
            keeps the model's probabilities as they are.
        erode: shrink the person by a square kernel of this many pixels (0 = off).
        dilate: grow the person by a square kernel of this many pixels (0 = off), after erode.
        edge: edge-aware refinement guided by the frame: "guided", "bilateral" or "off".
        edge_radius: window radius of the edge-aware filter, in frame pixels.
        edge_eps: guided filter regularisation on a 0..1 grey guide; smaller snaps harder to edges.
        edge_sigma_color: joint bilateral range sigma on a 0..1 grey guide.
        edge_subsample: the guided filter computes its coefficients this many times smaller than
            the working size (the "fast guided filter"); the bilateral filter runs there too.
        blur: box blur kernel in pixels (0 = off).
        ema_alpha: weight of the newest mask in the temporal average (1 = no smoothing).
        work_max_side: longest side of the working resolution (0 = the frame's own size).
    """

    threshold: float = 0.5
    feather: float = 0.2
    erode: int = 0
    dilate: int = 0
    edge: EdgeMode = "guided"
    edge_radius: int = 12
    edge_eps: float = 1e-3
    edge_sigma_color: float = 0.08
    edge_subsample: int = 2
    blur: int = 0
    ema_alpha: float = 0.6
    work_max_side: int = 640

    def __post_init__(self) -> None:
        verify_refine_config(self)

    def replace(self, **changes: object) -> "RefineConfig":
        """A copy with some settings changed (validated)."""
        return replace(self, **changes)

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


# The allowed range of each bounded setting, in one place: the checks below and the web page's
# sliders (capture_sink/web/control.py) both read it.
FRACTION_RANGES = {"threshold": (0.0, 1.0), "feather": (0.0, 1.0)}
PIXEL_RANGES = {"erode": (0, 256), "dilate": (0, 256), "blur": (0, 256), "edge_radius": (0, 256),
                "work_max_side": (0, 8192)}


def verify_refine_config(config: RefineConfig) -> None:
    """Raise RefineConfigError naming the setting to fix."""
    def need(ok: bool, message: str) -> None:
        if not ok:
            raise RefineConfigError(message)

    for name, (low, high) in FRACTION_RANGES.items():
        value = getattr(config, name)
        need(low <= value <= high, f"refine {name} {value} is out of range: use {low:g}..{high:g}")
    for name, (_, top) in PIXEL_RANGES.items():
        value = getattr(config, name)
        need(isinstance(value, (int, np.integer)) and not isinstance(value, bool) and 0 <= value <= top,
             f"refine {name} {value!r} is invalid: use a whole number of pixels 0..{top}")
    need(config.edge in EDGE_MODES,
         f"refine edge {config.edge!r} is unknown: choose one of {', '.join(EDGE_MODES)}")
    need(0.0 < config.edge_eps <= 1.0, f"refine edge_eps {config.edge_eps} is out of range: use (0, 1]")
    need(0.0 < config.edge_sigma_color <= 1.0,
         f"refine edge_sigma_color {config.edge_sigma_color} is out of range: use (0, 1]")
    need(isinstance(config.edge_subsample, (int, np.integer)) and 1 <= config.edge_subsample <= 8,
         f"refine edge_subsample {config.edge_subsample!r} is invalid: use a whole number 1..8")
    need(0.0 < config.ema_alpha <= 1.0,
         f"refine ema_alpha {config.ema_alpha} is out of range: use (0, 1] (1 = no smoothing)")
    need(config.work_max_side == 0 or config.work_max_side >= 64,
         f"refine work_max_side {config.work_max_side} is too small: use 0 (frame size) or >= 64")


PRESETS: dict[str, RefineConfig] = {
    # Tuned default: fast guided filter against the frame, then a narrow ramp, EMA over time.
    "default": RefineConfig(),
    # The seed's post-processing: probability mask, 10x10 dilate, 30x30 box blur, at full size.
    "seed": RefineConfig(threshold=0.5, feather=1.0, dilate=10, blur=30, edge="off",
                         ema_alpha=1.0, work_max_side=0),
    # Crisper edge for a plain background: harder ramp, tighter filter window.
    "crisp": RefineConfig(feather=0.1, edge_radius=8, ema_alpha=0.7),
    # Calm and soft for noisy low light: more smoothing over time and space.
    "smooth": RefineConfig(feather=0.4, edge_radius=16, blur=7, ema_alpha=0.35),
    # Joint bilateral instead of the guided filter.
    "bilateral": RefineConfig(edge="bilateral"),
    # Nothing but the resizes: what the model says.
    "raw": RefineConfig(feather=1.0, edge="off", ema_alpha=1.0),
}


def preset(name: str) -> RefineConfig:
    """The named preset; RefineConfigError lists the names when `name` is unknown."""
    if name not in PRESETS:
        raise RefineConfigError(f"unknown refine preset {name!r}: choose one of {', '.join(PRESETS)}")
    return PRESETS[name]


def threshold_ramp(threshold: float, feather: float) -> tuple[float, float] | None:
    """(scale, offset) of the threshold/feather ramp on 0..255 values, or None for the identity.

    alpha = saturate(v * scale + offset) rises from 0 at (threshold - feather/2) * 255 to 255 at
    (threshold + feather/2) * 255; feather 0 becomes a one-level step at threshold * 255.
    """
    if feather == 1.0 and threshold == 0.5:
        return None
    if feather == 0.0:
        return 256.0, 255.0 - threshold * 255.0 * 256.0
    scale = 1.0 / feather
    return scale, (0.5 - threshold / feather) * 255.0


class MaskRefiner:
    """Turns model masks into frame-sized alphas; holds the temporal state (EMA) of one stream.

    Buffers are allocated for the first frame size and mask size seen and reused; a different
    size reallocates and restarts the EMA. `refine` returns the refiner's own output buffer:
    consume it before the next call.
    """

    def __init__(self, config: RefineConfig | None = None) -> None:
        self.config = config or RefineConfig()
        self._ramp = threshold_ramp(self.config.threshold, self.config.feather)
        self._frame_size: tuple[int, int] | None = None
        self._ema: np.ndarray | None = None
        self._guide_of: np.ndarray | None = None    # the frame whose guide `prepare` made

    def reset(self) -> None:
        """Forget the temporal average (a scene cut, a new camera)."""
        self._ema = None

    # -- sizes and buffers -------------------------------------------------------------------
    def _allocate(self, width: int, height: int) -> None:
        cfg = self.config
        side = max(width, height)
        scale = 1.0 if cfg.work_max_side == 0 or side <= cfg.work_max_side else cfg.work_max_side / side
        self._scale = scale
        ww, wh = max(1, round(width * scale)), max(1, round(height * scale))
        self._work_size = (ww, wh)
        self._up = np.empty((wh, ww), np.uint8)
        self._tmp = np.empty((wh, ww), np.uint8)
        self._ema = None
        self._mask_shape: tuple[int, ...] | None = None   # the model mask the EMA is held at
        self._out = np.empty((height, width), np.uint8)
        self._erode_kernel = self._kernel(cfg.erode)
        self._dilate_kernel = self._kernel(cfg.dilate)
        self._blur_size = max(1, round(cfg.blur * scale)) if cfg.blur else 0
        if cfg.edge != "off":
            self._guide_small = np.empty((wh, ww, 3), np.uint8)
            self._guide_gray = np.empty((wh, ww), np.uint8)
            sub = cfg.edge_subsample
            self._low_size = (max(1, ww // sub), max(1, wh // sub))
            lw, lh = self._low_size
            radius_low = cfg.edge_radius * scale / sub
            if cfg.edge == "guided":
                self._radius = max(1, round(radius_low))
                self._box = (2 * self._radius + 1,) * 2
                self._eps = float(cfg.edge_eps * 255.0 * 255.0)  # guide and mask are 0..255
                self._g_low = {name: np.empty((lh, lw), np.float32)
                               for name in ("I", "p", "mI", "mp", "II", "Ip", "var", "a", "b", "t")}
                self._gray_low = np.empty((lh, lw), np.uint8)
                self._p_low = np.empty((lh, lw), np.uint8)
                self._a_up = np.empty((wh, ww), np.float32)
                self._b_up = np.empty((wh, ww), np.float32)
            else:
                self._bilateral = _JointBilateral(lw, lh, radius=max(1, round(radius_low)),
                                                  sigma_color=cfg.edge_sigma_color)
                self._bl_guide = np.empty((lh, lw), np.uint8)
                self._bl_mask = np.empty((lh, lw), np.uint8)
        self._frame_size = (width, height)
        self._guide_of = None

    def _kernel(self, pixels: int) -> np.ndarray | None:
        if not pixels:
            return None
        size = max(1, round(pixels * self._scale))
        return np.ones((size, size), np.uint8)

    # -- stages ------------------------------------------------------------------------------
    def _temporal(self, mask_small: np.ndarray) -> np.ndarray:
        """EMA of the model masks, held at the model's resolution in float32.

        Returned as float32 (the average itself) or, without smoothing, the mask as it came.
        Averaging before the upsample equals averaging after it (both are linear) and costs a
        sixth of the pixels at 720p; a mask of another size restarts the average."""
        alpha = self.config.ema_alpha
        if alpha >= 1.0:
            return mask_small
        if self._ema is None or self._mask_shape != mask_small.shape:
            self._ema = mask_small.astype(np.float32)
            self._mask_shape = mask_small.shape
        else:
            cv2.accumulateWeighted(mask_small, self._ema, alpha)
        return self._ema

    def _threshold(self, mask: np.ndarray) -> np.ndarray:
        if self._ramp is None:
            return mask
        scale, offset = self._ramp
        return cv2.addWeighted(mask, scale, mask, 0.0, offset, dst=mask)  # saturating

    def _guided(self, mask_small: np.ndarray, out: np.ndarray) -> np.ndarray:
        """Fast guided filter (He & Sun 2015): coefficients at low resolution, applied at work size.

        The mask goes to the low resolution straight from the model's (its only use here), and the
        threshold ramp is folded into the coefficients: ramp(a I + b) = (s a) I + (s b + o), so the
        one full-size pass left is q = a I + b, saturated to uint8 as it is stored in `out`."""
        g = self._g_low
        lw, lh = self._low_size
        cv2.resize(self._guide_gray, (lw, lh), dst=self._gray_low, interpolation=cv2.INTER_AREA)
        if mask_small.dtype == np.float32:
            cv2.resize(mask_small, (lw, lh), dst=g["p"], interpolation=cv2.INTER_LINEAR)
        else:   # no EMA: the uint8 mask as it came (cv2.resize writes its own type only)
            np.copyto(g["p"], cv2.resize(mask_small, (lw, lh), dst=self._p_low, interpolation=cv2.INTER_LINEAR))
        scale, offset = self._ramp or (1.0, 0.0)
        ww, wh = self._work_size
        mean_a, mean_b = g["II"], g["Ip"]     # the mean coefficients (the planes are free by then)
        ops = library.load()

        def stock_coefficients() -> None:
            self._coefficients_opencv(scale, offset)

        def native_coefficients() -> None:
            ops.guided_coeffs(self._gray_low, g["p"], self._radius, self._eps, scale, offset, mean_a, mean_b)

        # 17 OpenCV calls on 320x180 planes, or one native pass where that is faster here
        if ops is not None and choice.use_native("guided filter coefficients", (lh, lw), ops.isa,
                                                 stock_coefficients, native_coefficients):
            native_coefficients()
        else:
            stock_coefficients()

        def stock() -> np.ndarray:
            cv2.resize(mean_a, (ww, wh), dst=self._a_up, interpolation=cv2.INTER_LINEAR)
            cv2.resize(mean_b, (ww, wh), dst=self._b_up, interpolation=cv2.INTER_LINEAR)
            cv2.multiply(self._a_up, self._guide_gray, dst=self._a_up, dtype=cv2.CV_32F)
            # float -> uint8 with saturation below 0 and above 255, in the add itself
            return cv2.add(self._a_up, self._b_up, dst=out, dtype=cv2.CV_8U)

        # q = a I + b at the guide's size: one native pass at exactly 2x where it is faster here
        if ops is not None and (ww, wh) == (2 * lw, 2 * lh):
            def native() -> np.ndarray:
                ops.guided_apply(mean_a, mean_b, self._guide_gray, out)
                return out
            if choice.use_native("guided filter apply", (wh, ww), ops.isa, stock, native):
                return native()
        return stock()

    def _coefficients_opencv(self, scale: float, offset: float) -> None:
        """mean_a, mean_b (in g["II"], g["Ip"]) from the low-resolution guide and mask, in OpenCV calls."""
        g, box, eps = self._g_low, self._box, self._eps
        np.copyto(g["I"], self._gray_low)
        cv2.boxFilter(g["I"], -1, box, dst=g["mI"], borderType=cv2.BORDER_REFLECT)
        cv2.boxFilter(g["p"], -1, box, dst=g["mp"], borderType=cv2.BORDER_REFLECT)
        cv2.multiply(g["I"], g["I"], dst=g["t"])
        cv2.boxFilter(g["t"], -1, box, dst=g["II"], borderType=cv2.BORDER_REFLECT)
        cv2.multiply(g["I"], g["p"], dst=g["t"])
        cv2.boxFilter(g["t"], -1, box, dst=g["Ip"], borderType=cv2.BORDER_REFLECT)
        cv2.multiply(g["mI"], g["mI"], dst=g["t"])
        cv2.subtract(g["II"], g["t"], dst=g["var"])          # var(I)
        cv2.multiply(g["mI"], g["mp"], dst=g["t"])
        cv2.subtract(g["Ip"], g["t"], dst=g["a"])            # cov(I, p)
        cv2.add(g["var"], eps, dst=g["var"])
        cv2.divide(g["a"], g["var"], dst=g["a"])             # a = cov / (var + eps)
        cv2.multiply(g["a"], g["mI"], dst=g["t"])
        cv2.subtract(g["mp"], g["t"], dst=g["b"])            # b = mean_p - a mean_I
        mean_a, mean_b = g["II"], g["Ip"]                    # free again: the mean coefficients
        cv2.boxFilter(g["a"], -1, box, dst=mean_a, borderType=cv2.BORDER_REFLECT)
        cv2.multiply(mean_a, scale, dst=mean_a)
        cv2.boxFilter(g["b"], -1, box, dst=mean_b, borderType=cv2.BORDER_REFLECT)
        cv2.addWeighted(mean_b, scale, mean_b, 0.0, offset, dst=mean_b)

    def _bilateral_stage(self, mask: np.ndarray) -> np.ndarray:
        lw, lh = self._low_size
        cv2.resize(self._guide_gray, (lw, lh), dst=self._bl_guide, interpolation=cv2.INTER_AREA)
        cv2.resize(mask, (lw, lh), dst=self._bl_mask, interpolation=cv2.INTER_AREA)
        filtered = self._bilateral.filter(self._bl_mask, self._bl_guide)
        ww, wh = self._work_size
        return cv2.resize(filtered, (ww, wh), dst=mask, interpolation=cv2.INTER_LINEAR)

    def prepare(self, frame_bgr: np.ndarray, model_input: np.ndarray | None = None) -> bool:
        """Make the guide of `frame_bgr` now, before its mask comes (`refine` of this frame then uses
        it), and, where the native guide pass can take it in the same read of the frame,
        `model_input` too: every f-th pixel of every f-th row as RGB, the model's input at a whole
        factor f (shared.resize.whole_factor). The frame, just decoded, is read once for both.

        Returns:
            True if `model_input` was written; False leaves it to shared.resize.prepare_input.
        """
        if self.config.edge == "off":
            return False
        _check_frame(frame_bgr)
        height, width = frame_bgr.shape[:2]
        if self._frame_size != (width, height):
            self._allocate(width, height)
        wrote = self._prepare_guide(frame_bgr, model_input)
        self._guide_of = frame_bgr
        return wrote

    def _prepare_guide(self, frame_bgr: np.ndarray, model_input: np.ndarray | None = None) -> bool:
        """The guide at the working size; True if the native pass also wrote `model_input`."""
        ww, wh = self._work_size
        width, height = self._frame_size
        if (ww, wh) == (width, height):
            cv2.cvtColor(frame_bgr, cv2.COLOR_BGR2GRAY, dst=self._guide_gray)
            return False

        def stock() -> None:
            # INTER_LINEAR: INTER_AREA costs 8x more at 1080p (factor 3) and the guide is
            # box-filtered anyway; at exactly 2x both average the same 2x2 pixels.
            cv2.resize(frame_bgr, (ww, wh), dst=self._guide_small, interpolation=cv2.INTER_LINEAR)
            cv2.cvtColor(self._guide_small, cv2.COLOR_BGR2GRAY, dst=self._guide_gray)

        # By a whole factor (2x at 720p, 3x at 1080p) the two passes are one native pass, the
        # same bytes, that reads only the rows it samples.
        ops = library.load()
        k = height // wh
        if ops is not None and k >= 2 and (width, height) == (k * ww, k * wh) and library.accepts(frame_bgr, None, None):
            def native() -> None:
                ops.guide_gray(frame_bgr, self._guide_gray)

            if choice.use_native(f"guide grey {k}x", (height, width), ops.isa, stock, native):
                ops.guide_gray(frame_bgr, self._guide_gray, model_input)
                return model_input is not None
        stock()
        return False

    # -- the verb ----------------------------------------------------------------------------
    def refine(self, mask_small: np.ndarray, frame_bgr: np.ndarray, guide_ready: bool = False,
               scaled: bool = False) -> np.ndarray | ScaledAlpha:
        """Frame-sized alpha for `frame_bgr` from the model's mask.

        Args:
            mask_small: uint8 (h, w) person probability x 255 at model resolution (any size).
            frame_bgr: uint8 (H, W, 3) the frame the alpha is for (the edge-aware guide).
            guide_ready: `prepare` was called with this frame since the last `refine`: its guide is used.
            scaled: the caller takes a ScaledAlpha (capture_sink/scaled_alpha.py): where the last
                step would be the native upsample by a whole factor, the work-size alpha is handed
                out as it is, for the native pass that scales each row itself.
        Returns:
            uint8 (H, W) alpha, 255 = person, or with `scaled` possibly a ScaledAlpha of that
            size; the refiner's own buffers, reused next call.
        """
        if mask_small.dtype != np.uint8 or mask_small.ndim != 2:
            raise ValueError(f"refine needs a uint8 (h, w) mask, got {mask_small.dtype} {mask_small.shape}")
        _check_frame(frame_bgr)
        height, width = frame_bgr.shape[:2]
        if self._frame_size != (width, height):
            self._allocate(width, height)
        cfg = self.config
        smooth = self._temporal(mask_small)
        prepared = guide_ready and self._guide_of is frame_bgr    # by `prepare`, for this very frame
        self._guide_of = None
        if cfg.edge == "guided":
            if not prepared:
                self._prepare_guide(frame_bgr)
            m = self._guided(smooth, self._up)      # the threshold ramp included
        else:
            if smooth.dtype == np.float32:
                smooth = cv2.convertScaleAbs(smooth)   # the average back to uint8 (values >= 0)
            m = cv2.resize(smooth, self._work_size, dst=self._up, interpolation=cv2.INTER_LINEAR)
            if cfg.edge == "bilateral":
                if not prepared:
                    self._prepare_guide(frame_bgr)
                m = self._bilateral_stage(m)
            m = self._threshold(m)
        if self._erode_kernel is not None:
            cv2.erode(m, self._erode_kernel, dst=self._tmp)
            np.copyto(m, self._tmp)
        if self._dilate_kernel is not None:
            cv2.dilate(m, self._dilate_kernel, dst=self._tmp)
            np.copyto(m, self._tmp)
        if self._blur_size > 1:
            cv2.blur(m, (self._blur_size, self._blur_size), dst=self._tmp)
            np.copyto(m, self._tmp)
        if self._work_size == (width, height):
            np.copyto(self._out, m)
            return self._out
        if scaled and self._native_upsample(m):
            return ScaledAlpha(m, height // m.shape[0], self._to_frame_size)
        return self._to_frame_size(m)

    def _native_upsample(self, m: np.ndarray) -> bool:
        """Whether the work-size alpha goes to the frame by a whole factor (2x at 720p, 3x at 1080p)
        through the sink's native upsample here: where it is faster on this CPU than OpenCV's
        1-channel resize (5x here), timed once per size."""
        height, width = self._out.shape
        factor = height // m.shape[0]
        ops = library.load()
        if (ops is None or factor not in library.UPSAMPLE_FACTORS or m.strides[1] != 1
                or (width, height) != (factor * m.shape[1], factor * m.shape[0])):
            return False
        return choice.use_native(f"alpha upsample {factor}x", (height, width), ops.isa,
                                 lambda: self._upsample_opencv(m), lambda: ops.upsample(m, self._out))

    def _upsample_opencv(self, m: np.ndarray) -> np.ndarray:
        height, width = self._out.shape
        return cv2.resize(m, (width, height), dst=self._out, interpolation=cv2.INTER_LINEAR)

    def _to_frame_size(self, m: np.ndarray) -> np.ndarray:
        """The work-size alpha scaled up to the frame (bilinear), natively where that is faster."""
        if self._native_upsample(m):
            library.load().upsample(m, self._out)
            return self._out
        return self._upsample_opencv(m)


def _check_frame(frame_bgr: np.ndarray) -> None:
    if frame_bgr.dtype != np.uint8 or frame_bgr.ndim != 3 or frame_bgr.shape[2] != 3:
        raise ValueError(f"refine needs a uint8 (H, W, 3) frame, got {frame_bgr.dtype} {frame_bgr.shape}")


class _JointBilateral:
    """Separable joint bilateral filter of a uint8 mask guided by a uint8 grey image.

    Two 1-D passes (rows, then columns), each a loop over the 2r+1 kernel taps (not over
    pixels): weight = spatial(d) * range(|I(x+d) - I(x)|), the range term one float LUT lookup.
    Separable bilateral filtering is an approximation of the 2-D filter (Pham & van Vliet 2005);
    at these radii the difference is invisible in a matte.
    """

    def __init__(self, width: int, height: int, *, radius: int, sigma_color: float) -> None:
        self.radius = radius
        sigma_space = max(radius / 2.0, 0.5)
        offsets = np.arange(-radius, radius + 1)
        self._spatial = np.exp(-(offsets ** 2) / (2 * sigma_space ** 2)).astype(np.float32)
        diffs = np.arange(256, dtype=np.float32) / 255.0
        self._range_lut = np.exp(-(diffs ** 2) / (2 * sigma_color ** 2)).astype(np.float32)
        r = radius
        self._guide_pad = np.empty((height + 2 * r, width + 2 * r), np.uint8)
        self._mask_pad = np.empty((height + 2 * r, width + 2 * r), np.float32)
        self._mask_f = np.empty((height, width), np.float32)
        self._diff = np.empty((height, width), np.uint8)
        self._weight = np.empty((height, width), np.float32)
        self._prod = np.empty((height, width), np.float32)
        self._num = np.empty((height, width), np.float32)
        self._den = np.empty((height, width), np.float32)
        self._pass_out = np.empty((height, width), np.float32)
        self._out = np.empty((height, width), np.uint8)

    def _pass(self, mask: np.ndarray, guide: np.ndarray, axis: int) -> np.ndarray:
        r, (h, w) = self.radius, mask.shape
        cv2.copyMakeBorder(guide, r, r, r, r, cv2.BORDER_REPLICATE, dst=self._guide_pad)
        cv2.copyMakeBorder(mask, r, r, r, r, cv2.BORDER_REPLICATE, dst=self._mask_pad)
        self._num.fill(0.0)
        self._den.fill(0.0)
        for i, spatial in enumerate(self._spatial):
            dy, dx = (i, r) if axis == 0 else (r, i)
            g = self._guide_pad[dy:dy + h, dx:dx + w]
            cv2.absdiff(g, guide, dst=self._diff)
            cv2.LUT(self._diff, self._range_lut, dst=self._weight)
            cv2.multiply(self._weight, float(spatial), dst=self._weight)
            cv2.add(self._den, self._weight, dst=self._den)
            cv2.multiply(self._weight, self._mask_pad[dy:dy + h, dx:dx + w], dst=self._prod)
            cv2.add(self._num, self._prod, dst=self._num)
        return cv2.divide(self._num, self._den, dst=self._pass_out)

    def filter(self, mask: np.ndarray, guide: np.ndarray) -> np.ndarray:
        """Filtered uint8 mask (own buffer) of the same size."""
        np.copyto(self._mask_f, mask)
        rows = self._pass(self._mask_f, guide, axis=1)
        # the second pass reads its input only through the padded copy, so in place is safe
        both = self._pass(rows, guide, axis=0)
        return cv2.convertScaleAbs(both, dst=self._out)
