"""Load libholocam_frame.so, pick the build for this CPU and call its passes on NumPy arrays.

`load()` returns None (and logs why, once) when the passes are switched off or the library is
missing and cannot be built; the callers then keep their OpenCV path. Environment:
    HOLOCAM_SINK_NATIVE=0      never use the native passes; =1 always (no timing against OpenCV)
    HOLOCAM_SINK_NATIVE_ISA    force a build: avx512, avx2, sse4 or generic (benchmarks compare them)
"""

from __future__ import annotations

import ctypes
import logging
import os
import threading
from pathlib import Path

import numpy as np

from capture_sink.scaled_alpha import ScaledAlpha
from shared.native_build import LEVEL_FLAGS, best_build, cpu_flags, cpu_runs

from . import build as native_build

logger = logging.getLogger(__name__)

ENABLE_ENV = "HOLOCAM_SINK_NATIVE"
ISA_ENV = "HOLOCAM_SINK_NATIVE_ISA"
MAX_WIDTH = 8192   # frame_passes.h: the passes refuse wider frames (their row buffers are sized by width)

_c_u8 = ctypes.c_void_p
_c_ssize = ctypes.c_ssize_t
_c_int = ctypes.c_int


class NativeError(RuntimeError):
    """A bad native-pass setting or call; the message is one line naming the fix."""


def builds() -> list[str]:
    """The builds the library holds on this machine type, widest first."""
    return [name for name, _ in native_build.variants(native_build.LEVELS)]


def best_isa(flags: set[str] | None = None) -> str:
    """The widest build this CPU runs."""
    return best_build(flags, native_build.LEVELS)


def mode() -> str:
    """"off", "on" (forced) or "auto" (time against OpenCV first), from HOLOCAM_SINK_NATIVE."""
    value = os.environ.get(ENABLE_ENV, "").strip()
    if value in ("", "auto"):
        return "auto"
    if value in ("0", "1"):
        return "off" if value == "0" else "on"
    raise NativeError(f"{ENABLE_ENV}={value!r} is invalid: use 0 (OpenCV only), 1 (native always) or unset (auto)")


UPSAMPLE_FACTORS = (2, 3, 4)   # hc_upsample's whole factors


class FrameOps:
    """The native passes of one build, called with NumPy arrays (checked before the call)."""

    def __init__(self, lib: ctypes.CDLL, isa: str, path: Path) -> None:
        self.isa, self.path = isa, path
        self._hologram = getattr(lib, f"hc_hologram_composite_{isa}")
        self._hologram.argtypes = [_c_u8, _c_ssize, _c_int, _c_int, _c_u8, _c_int, _c_u8,
                                   _c_u8, _c_ssize, _c_u8, _c_ssize, _c_int, _c_u8, _c_ssize, _c_int, _c_u8, _c_ssize,
                                   _c_u8]
        self._composite = getattr(lib, f"hc_composite_{isa}")
        self._composite.argtypes = [_c_u8, _c_ssize, _c_int, _c_int, _c_u8, _c_ssize, _c_u8, _c_ssize, _c_int,
                                    _c_u8, _c_ssize, _c_int, _c_u8, _c_ssize, _c_u8]
        self._upsample = getattr(lib, f"hc_upsample_{isa}")
        self._upsample.argtypes = [_c_u8, _c_ssize, _c_int, _c_int, _c_int, _c_u8, _c_ssize]
        self._guided_apply = getattr(lib, f"hc_guided_apply_{isa}")
        self._guided_apply.argtypes = [_c_u8, _c_u8, _c_ssize, _c_int, _c_int, _c_u8, _c_ssize, _c_u8, _c_ssize]
        self._bgr_to_yuyv = getattr(lib, f"hc_bgr_to_yuyv_{isa}")
        self._bgr_to_yuyv.argtypes = [_c_u8, _c_ssize, _c_int, _c_int, _c_u8, _c_ssize]
        self._guide_gray = getattr(lib, f"hc_guide_gray_{isa}")
        self._guide_gray.argtypes = [_c_u8, _c_ssize, _c_int, _c_int, _c_int, _c_u8, _c_ssize, _c_u8, _c_ssize, _c_int]
        self._guided_coeffs = getattr(lib, f"hc_guided_coeffs_{isa}")
        self._guided_coeffs.argtypes = [_c_u8, _c_ssize, _c_u8, _c_ssize, _c_int, _c_int, _c_int, ctypes.c_float,
                                        ctypes.c_float, ctypes.c_float, _c_u8, _c_u8]
        for fn in (self._hologram, self._composite, self._upsample, self._guided_apply, self._bgr_to_yuyv,
                   self._guide_gray, self._guided_coeffs):
            fn.restype = ctypes.c_int

    def hologram_composite(self, frame: np.ndarray, lut: np.ndarray, shift: int, weights: np.ndarray,
                           bg: np.ndarray | None, alpha: np.ndarray | None, out: np.ndarray,
                           bg_yuyv: np.ndarray | None = None, spans: np.ndarray | None = None) -> None:
        """out = hologram(frame) over bg through alpha (see frame_ops.c); bg None: the hologram alone.
        `out` is BGR (H, W, 3) or YUYV (H, W, 2): the pass writes the form it is given; with a YUYV
        out, `bg_yuyv` may be `bg` as YUYV (`bgr_to_yuyv`), copied where the mask is 0. `spans`
        (int32 (H, 2), with `bg_yuyv` only): `out` is a reused frame that holds `bg_yuyv` outside
        the columns [spans[y, 0], spans[y, 1]) of each row; only the changes are written, and
        `spans` is updated (capture_sink/frame_pool.py). `alpha` is frame-sized or at 1/k of the
        frame (k = 2..4): then each row is scaled up in the pass, as `upsample` scales it."""
        h, w = _bgr(frame, "frame")
        yuyv = _bgr_or_yuyv(out, (h, w))
        if lut.shape != (256, 3) or lut.dtype != np.uint8 or not lut.flags.c_contiguous:
            raise ValueError("hologram_composite needs a C-contiguous uint8 (256, 3) lut")
        if weights.shape != (h, 3) or weights.dtype != np.uint16 or not weights.flags.c_contiguous:
            raise ValueError(f"hologram_composite needs C-contiguous uint16 weights of shape ({h}, 3)")
        if shift < 0:
            raise ValueError(f"hologram shift {shift} is negative")
        if bg is None:
            if bg_yuyv is not None:
                raise ValueError("hologram_composite takes a YUYV background only with its BGR one")
            bg_ptr = alpha_ptr = None
            bg_stride = alpha_stride = 0
            k = 1
        else:
            _bgr(bg, "bg", (h, w))
            k = _alpha_factor(alpha, (h, w))
            bg_ptr, bg_stride, alpha_ptr, alpha_stride = _ptr(bg), bg.strides[0], _ptr(alpha), alpha.strides[0]
        y_ptr, y_stride = _yuyv_background(bg_yuyv, yuyv, (h, w))
        _check(self._hologram(_ptr(frame), frame.strides[0], h, w, _ptr(lut), shift, _ptr(weights),
                              bg_ptr, bg_stride, alpha_ptr, alpha_stride, k, _ptr(out), out.strides[0], yuyv,
                              y_ptr, y_stride, _spans(spans, bg_yuyv, (h, w))))

    def composite(self, fg: np.ndarray, bg: np.ndarray, alpha: np.ndarray, out: np.ndarray,
                  bg_yuyv: np.ndarray | None = None, spans: np.ndarray | None = None) -> None:
        """out = fg over bg through alpha, exactly rounded; `out` BGR (H, W, 3) or YUYV (H, W, 2),
        with `alpha`, `bg_yuyv` and `spans` as in `hologram_composite`."""
        h, w = _bgr(fg, "fg")
        _bgr(bg, "bg", (h, w))
        k = _alpha_factor(alpha, (h, w))
        yuyv = _bgr_or_yuyv(out, (h, w))
        y_ptr, y_stride = _yuyv_background(bg_yuyv, yuyv, (h, w))
        _check(self._composite(_ptr(fg), fg.strides[0], h, w, _ptr(bg), bg.strides[0], _ptr(alpha),
                               alpha.strides[0], k, _ptr(out), out.strides[0], yuyv, y_ptr, y_stride,
                               _spans(spans, bg_yuyv, (h, w))))

    def upsample(self, src: np.ndarray, out: np.ndarray) -> None:
        """out = src scaled up by the whole factor (2, 3 or 4) that `out` is larger, bilinear
        (OpenCV's INTER_LINEAR; exactly rounded at 2x, within a level at 3x and 4x)."""
        h, w = src.shape[:2] if src.ndim == 2 else (0, 0)
        _gray(src, "src", (h, w))
        k = out.shape[0] // h if out.ndim == 2 and h else 0
        if k not in UPSAMPLE_FACTORS:
            raise ValueError(f"upsample scales by 2, 3 or 4: out {out.shape} is not that multiple of src {src.shape}")
        _gray(out, "out", (k * h, k * w))
        if w > MAX_WIDTH:
            raise ValueError(f"src is {w} pixels wide: the native passes take at most {MAX_WIDTH}")
        _check(self._upsample(_ptr(src), src.strides[0], h, w, k, _ptr(out), out.strides[0]))


    def guided_apply(self, a: np.ndarray, b: np.ndarray, guide: np.ndarray, out: np.ndarray) -> None:
        """out = up2(a) * guide + up2(b), saturated (the guided filter's last step, see refine_ops.c)."""
        if a.dtype != np.float32 or a.ndim != 2 or a.strides[1] != 4 or b.shape != a.shape \
                or b.dtype != np.float32 or b.strides != a.strides:
            raise ValueError(f"guided_apply needs two float32 (h, w) arrays of one layout, got {a.dtype} "
                             f"{a.shape} and {b.dtype} {b.shape}")
        h, w = a.shape
        if w > MAX_WIDTH:
            raise ValueError(f"a is {w} pixels wide: the native passes take at most {MAX_WIDTH}")
        _gray(guide, "guide", (2 * h, 2 * w))
        _gray(out, "out", (2 * h, 2 * w))
        _check(self._guided_apply(_ptr(a), _ptr(b), a.strides[0] // 4, h, w, _ptr(guide), guide.strides[0],
                                  _ptr(out), out.strides[0]))


    def guide_gray(self, frame: np.ndarray, out: np.ndarray, sample: np.ndarray | None = None) -> None:
        """out = grey of `frame` scaled down by the whole factor k (>= 2) that it is smaller, as
        cv2.resize INTER_LINEAR then cv2.cvtColor BGR2GRAY compute it (exactly, see refine_ops.c).
        With `sample` (uint8 (h, w, 3), a whole fraction 1/f of the frame), also every f-th pixel of
        every f-th row into it as RGB, in the same read of the frame: the model's input as
        shared.resize.prepare_input makes it at a whole factor."""
        h, w = _bgr(frame, "frame")
        k = h // out.shape[0] if out.ndim == 2 and out.shape[0] else 0
        if k < 2 or out.shape != (h // k, w // k) or (h, w) != (k * out.shape[0], k * out.shape[1]):
            raise ValueError(f"guide_gray scales down by a whole factor >= 2: out {out.shape} is not that "
                             f"fraction of the frame's {(h, w)}")
        _gray(out, "out", out.shape)
        sample_ptr, sample_stride, f = None, 0, 0
        if sample is not None:
            f = h // sample.shape[0] if sample.ndim == 3 and sample.shape[0] else 0
            if f < 1 or (h, w) != (f * sample.shape[0], f * sample.shape[1]):
                raise ValueError(f"guide_gray samples by a whole factor: sample {sample.shape} is not that "
                                 f"fraction of the frame's {(h, w)}")
            _bgr(sample, "sample")     # packed 3-byte pixels (RGB here)
            sample_ptr, sample_stride = _ptr(sample), sample.strides[0]
        _check(self._guide_gray(_ptr(frame), frame.strides[0], h, w, k, _ptr(out), out.strides[0],
                                sample_ptr, sample_stride, f))

    def guided_coeffs(self, guide: np.ndarray, p: np.ndarray, radius: int, eps: float, scale: float,
                      offset: float, mean_a: np.ndarray, mean_b: np.ndarray) -> None:
        """The fast guided filter's mean coefficients at its low resolution, the threshold ramp
        (scale, offset) folded in (see refine_ops.c): box windows of 2 radius + 1, borders reflected."""
        if guide.ndim != 2:
            raise ValueError(f"guided_coeffs needs a uint8 (h, w) guide, got {guide.dtype} {guide.shape}")
        h, w = guide.shape
        _gray(guide, "guide", (h, w))
        if w > MAX_WIDTH:
            raise ValueError(f"guide is {w} pixels wide: the native passes take at most {MAX_WIDTH}")
        for name, a in (("p", p), ("mean_a", mean_a), ("mean_b", mean_b)):
            if a.dtype != np.float32 or a.shape != (h, w) or a.strides != p.strides or a.strides[1] != 4:
                raise ValueError(f"guided_coeffs needs float32 ({h}, {w}) arrays of one layout, {name} is "
                                 f"{a.dtype} {a.shape}")
        if not 0 <= radius <= 1024:
            raise ValueError(f"guided filter radius {radius} is out of range: use 0..1024")
        _check(self._guided_coeffs(_ptr(guide), guide.strides[0], _ptr(p), p.strides[0] // 4, h, w, radius,
                                   eps, scale, offset, _ptr(mean_a), _ptr(mean_b)))

    def bgr_to_yuyv(self, frame: np.ndarray, out: np.ndarray) -> None:
        """out (H, W, 2) = frame (H, W, 3) as YUYV, BT.601 limited range, pair-averaged chroma."""
        h, w = _bgr(frame, "frame")
        if w % 2:
            raise ValueError(f"YUYV needs an even width, got {w}")
        if out.dtype != np.uint8 or out.shape != (h, w, 2) or out.strides[1:] != (2, 1):
            raise ValueError(f"out must be a uint8 ({h}, {w}, 2) array with packed rows, got {out.dtype} {out.shape}")
        _check(self._bgr_to_yuyv(_ptr(frame), frame.strides[0], h, w, _ptr(out), out.strides[0]))


def _check(status: int) -> None:
    if status == -2:
        raise ValueError("spans must hold even columns 0 <= start <= end <= width in each row: "
                         "pass the spans the frame pool keeps for that frame")
    if status != 0:
        raise MemoryError("the native frame pass could not allocate its row buffers")


def _ptr(array: np.ndarray) -> int:
    return array.__array_interface__["data"][0]


def _bgr(array: np.ndarray, name: str, shape: tuple[int, int] | None = None) -> tuple[int, int]:
    """(H, W) of a uint8 (H, W, 3) array whose rows are packed pixels (any row stride)."""
    if array.dtype != np.uint8 or array.ndim != 3 or array.shape[2] != 3 or array.strides[1:] != (3, 1):
        raise ValueError(f"{name} must be a uint8 (H, W, 3) array with packed rows, got {array.dtype} {array.shape}")
    h, w = array.shape[:2]
    if shape is not None and (h, w) != shape:
        raise ValueError(f"{name} is {w}x{h}, expected {shape[1]}x{shape[0]}")
    if w > MAX_WIDTH:
        raise ValueError(f"{name} is {w} pixels wide: the native passes take at most {MAX_WIDTH}")
    return h, w


def _packed_yuyv(array: np.ndarray, shape: tuple[int, int]) -> bool:
    """Whether `array` is a uint8 YUYV (H, W, 2) frame of `shape` with packed rows (any row stride)."""
    return array.dtype == np.uint8 and array.shape == (*shape, 2) and array.strides[1:] == (2, 1)


def _bgr_or_yuyv(out: np.ndarray, shape: tuple[int, int]) -> int:
    """1 if `out` is a YUYV (H, W, 2) frame of an even width, 0 if it is BGR (H, W, 3); else ValueError."""
    if out.ndim == 3 and out.shape[2] == 2:
        if not _packed_yuyv(out, shape) or shape[1] % 2:
            raise ValueError(f"a YUYV out must be a uint8 {(*shape, 2)} array with packed rows and an even "
                             f"width, got {out.dtype} {out.shape}")
        return 1
    _bgr(out, "out", shape)
    return 0


def _yuyv_background(bg_yuyv: np.ndarray | None, yuyv_out: int, shape: tuple[int, int]) -> tuple[int | None, int]:
    """(pointer, row stride) of a YUYV background for a pass writing YUYV; (None, 0) without one."""
    if bg_yuyv is None:
        return None, 0
    if not yuyv_out:
        raise ValueError("a YUYV background needs a YUYV out: the pass copies it into the output")
    if not _packed_yuyv(bg_yuyv, shape):
        raise ValueError(f"bg_yuyv must be a uint8 {(*shape, 2)} array with packed rows, got "
                         f"{bg_yuyv.dtype} {bg_yuyv.shape}")
    return _ptr(bg_yuyv), bg_yuyv.strides[0]


def _spans(spans: np.ndarray | None, bg_yuyv: np.ndarray | None, shape: tuple[int, int]) -> int | None:
    """The pointer of a reused frame's spans (int32 (H, 2), even columns within the row), or None."""
    if spans is None:
        return None
    if bg_yuyv is None:
        raise ValueError("spans mark what differs from bg_yuyv: pass them with bg_yuyv only")
    if spans.dtype != np.int32 or spans.shape != (shape[0], 2) or not spans.flags.c_contiguous \
            or not spans.flags.writeable:
        raise ValueError(f"spans must be a writeable C-contiguous int32 ({shape[0]}, 2) array, got "
                         f"{spans.dtype} {spans.shape}")
    return _ptr(spans)   # their values are checked by the pass (-2: see _check)


def _alpha_factor(alpha: np.ndarray | None, shape: tuple[int, int]) -> int:
    """1 for a frame-sized alpha; k for one at 1/k of the frame (k = 2..4, the refiner's working
    size: the pass scales each row up as `upsample` does); else ValueError."""
    if alpha is not None and alpha.ndim == 2 and alpha.shape[0] and alpha.shape != shape:
        k = shape[0] // alpha.shape[0]
        if k in UPSAMPLE_FACTORS and shape == (k * alpha.shape[0], k * alpha.shape[1]):
            _gray(alpha, "alpha", alpha.shape)
            return k
    _gray(alpha, "alpha", shape)
    return 1


def _gray(array: np.ndarray | None, name: str, shape: tuple[int, int]) -> None:
    if array is None or array.dtype != np.uint8 or array.shape != shape or array.strides[1] != 1:
        got = "None" if array is None else f"{array.dtype} {array.shape}"
        raise ValueError(f"{name} must be a uint8 {shape} array with packed rows, got {got}")


_loaded: FrameOps | None = None
_load_done = False
_load_lock = threading.Lock()


def load() -> FrameOps | None:
    """The native passes for this CPU, or None (switched off, or no library and no compiler)."""
    global _loaded, _load_done
    with _load_lock:
        if not _load_done:
            _loaded, _load_done = _load(), True
        return _loaded


def _load() -> FrameOps | None:
    if mode() == "off":
        logger.info("native frame passes off (%s=0): OpenCV only", ENABLE_ENV)
        return None
    isa = os.environ.get(ISA_ENV, "").strip() or best_isa()
    known = builds()
    if isa not in known:
        raise NativeError(f"{ISA_ENV}={isa!r} is not a build of this machine: choose one of {', '.join(known)}")
    if not cpu_runs(isa):
        raise NativeError(f"{ISA_ENV}={isa} needs CPU flags this CPU lacks "
                          f"({', '.join(sorted(LEVEL_FLAGS[isa] - cpu_flags()))}): unset it")
    try:
        path = native_build.build()     # a no-op when the cache has it
        ops = FrameOps(ctypes.CDLL(str(path)), isa, path)
    except (native_build.NativeBuildError, OSError) as exc:
        if mode() == "on":
            raise NativeError(f"{ENABLE_ENV}=1 but the native frame passes cannot load: {exc}") from exc
        logger.warning("native frame passes unavailable, OpenCV only: %s", exc)
        return None
    logger.info("native frame passes loaded (%s build, %s)", isa, path)
    return ops


def accepts(frame: np.ndarray, background: np.ndarray | None, alpha: np.ndarray | ScaledAlpha | None) -> bool:
    """Whether the native passes take these buffers as they are (else the caller uses OpenCV)."""
    def packed_bgr(a) -> bool:
        return (isinstance(a, np.ndarray) and a.dtype == np.uint8 and a.ndim == 3 and a.shape[2] == 3
                and a.strides[1:] == (3, 1) and a.shape[:2] == frame.shape[:2])
    if not packed_bgr(frame) or frame.shape[1] > MAX_WIDTH:
        return False
    if background is None:
        return True
    if isinstance(alpha, ScaledAlpha):      # the pass scales each row up itself
        small = alpha.small
        return (packed_bgr(background) and alpha.factor in UPSAMPLE_FACTORS and alpha.shape == frame.shape[:2]
                and small.dtype == np.uint8 and small.ndim == 2 and small.strides[1] == 1)
    return (packed_bgr(background) and isinstance(alpha, np.ndarray) and alpha.dtype == np.uint8
            and alpha.shape == frame.shape[:2] and alpha.strides[1] == 1)


def build_for(isa: str) -> FrameOps:
    """The passes of one named build (tests and benchmarks compare builds on one CPU)."""
    if isa not in builds():
        raise NativeError(f"no native build {isa!r} on this machine type: choose one of {', '.join(builds())}")
    path = native_build.build()
    return FrameOps(ctypes.CDLL(str(path)), isa, path)


def runnable_isas() -> list[str]:
    """The builds this CPU can run, widest first."""
    flags = cpu_flags()
    return [isa for isa in builds() if cpu_runs(isa, flags)]


def forget() -> None:
    """Load again on the next `load()` (tests that change the environment)."""
    global _loaded, _load_done
    with _load_lock:
        _loaded, _load_done = None, False
