"""Frame <-> model geometry: the resizes on both ends of the segmenter.

`prepare_input` turns a camera frame into the model's input; `mask_to_frame` brings the model's
mask back to frame size. The sink's frame path uses `prepare_input` (capture_sink.app); the
segmenter's own tools use both (`python -m segmenter mask`, segmenter.mask_image, and the device
check in segmenter.device), so a mask made offline matches one made in the pipeline. The size
rule itself is `shared.geometry.InputSpec.input_size`. Both copy what the models' own pipelines
do, because masks change measurably with the resampling rule (see tests/shared/test_resize.py;
the timings and errors behind each choice are in docs/resize.md):

- "stretch" (MediaPipe selfie models): MediaPipe warps the frame onto the model grid with
  `src = dst * W / w` (corner-aligned, no half-pixel offset), bilinear, edges replicated, rounded
  to uint8. `cv2.warpAffine` with that matrix does exactly this, with sample positions in
  floating point. `cv2.remap` with cached fixed-point maps would be faster but rounds positions
  to 1/32 pixel, which moves sharp edges by several grey levels, so it is not used.
- "aspect" (selfie-auto): the same stretch, onto 256x144 for frames of 3:2 or wider (the
  landscape model) and onto 256x256 otherwise (the general model).
- "fit" (ICNet): the longer side goes to max(spec.width, spec.height), aspect kept, sizes
  truncated, `cv2.resize` INTER_LINEAR, as in Human-Segmentation-PyTorch's own preprocessing
  (INTER_AREA would antialias better, but costs more and is not what the weights saw).
- back to the frame: plain `cv2.resize` INTER_LINEAR (half-pixel centres), as MediaPipe does.
"""
from __future__ import annotations

import logging

import cv2
import numpy as np

from .geometry import RESIZE_MODES, InputSpec

logger = logging.getLogger(__name__)

_WARP_FLAGS = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP


class ResizeError(ValueError):
    """A frame or mask the resizers cannot take; one line that names the fix."""


def _check_frame(frame: np.ndarray) -> np.ndarray:
    if not isinstance(frame, np.ndarray) or frame.dtype != np.uint8:
        raise ResizeError(f"frames must be uint8 numpy arrays, got "
                          f"{getattr(frame, 'dtype', type(frame).__name__)}: convert with .astype(np.uint8)")
    if frame.ndim == 2:  # grey: the models want 3 channels
        return cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR)
    if frame.ndim != 3 or frame.shape[2] != 3 or frame.shape[0] < 1 or frame.shape[1] < 1:
        raise ResizeError(f"frames must be (height, width, 3) uint8, got shape {frame.shape}: "
                          f"convert alpha or grey images to 3 channels first")
    if frame.strides[2] != 1 or frame.strides[1] != 3:  # e.g. a channel-reversed view: OpenCV needs packed
        frame = np.ascontiguousarray(frame)
    return frame


def stretch_matrix(width: int, height: int, out_width: int, out_height: int) -> np.ndarray:
    """The inverse map dst -> src of MediaPipe's stretch: src = dst * (W / w), corner-aligned."""
    return np.array([[width / out_width, 0.0, 0.0],
                     [0.0, height / out_height, 0.0]], dtype=np.float64)


def whole_factor(width: int, height: int, spec: InputSpec) -> int | None:
    """f when the model's input is a stretch of this frame by the same whole factor f both ways
    (1280x720 -> 256x144: 5): then `prepare_input` gives every f-th pixel of every f-th row, which
    the sink's guide pass can take in the same read of the frame (capture_sink/refine.py); else None."""
    if spec.resize not in ("stretch", "aspect"):
        return None
    w, h = spec.input_size(width, height)
    f = width // w
    return f if f >= 1 and (width, height) == (f * w, f * h) else None


def prepare_input(frame: np.ndarray, spec: InputSpec, bgr: bool = True,
                  out: np.ndarray | None = None) -> np.ndarray:
    """Resize a frame to a model's input and give it in RGB.

    Args:
        frame: uint8 (H, W, 3) image (grey (H, W) is accepted and made 3-channel).
        spec: the model's `InputSpec` (width, height, resize "stretch" | "fit" | "aspect").
        bgr: True if `frame` is BGR (OpenCV's order, the sink's convention); False if already RGB.
        out: optional preallocated uint8 array of the result's shape, written in place (saves an
            allocation per frame on the frame path).
    Returns:
        uint8 RGB (h, w, 3): exactly (spec.height, spec.width) for "stretch"; for "fit", the
        longer side is max(spec.width, spec.height) and the aspect is the frame's; for "aspect",
        spec.wide_size for frames of 3:2 or wider, else (spec.height, spec.width).
    """
    frame = _check_frame(frame)
    height, width = frame.shape[:2]
    if spec.resize not in RESIZE_MODES:
        raise ResizeError(f"unknown resize mode {spec.resize!r}: use one of {', '.join(RESIZE_MODES)}")
    size = spec.input_size(width, height)
    if out is not None and (out.shape != (size[1], size[0], 3) or out.dtype != np.uint8):
        raise ResizeError(f"out must be uint8 of shape {(size[1], size[0], 3)}, got {out.dtype} {out.shape}")
    if spec.resize in ("stretch", "aspect") and width % size[0] == 0 and height % size[1] == 0:
        # Whole-number factors (1280x720 -> 256x144): every sample lands on a source pixel, so the
        # stretch is exactly a subsample, which INTER_NEAREST does (its rule is src = dst * W / w);
        # 2x faster than the warp and it reads half the rows of a frame not yet in this core's cache.
        resized = cv2.resize(frame, size, dst=out, interpolation=cv2.INTER_NEAREST)
    elif spec.resize in ("stretch", "aspect"):
        resized = cv2.warpAffine(frame, stretch_matrix(width, height, *size), size, dst=out,
                                 flags=_WARP_FLAGS, borderMode=cv2.BORDER_REPLICATE)
    else:
        resized = cv2.resize(frame, size, dst=out, interpolation=cv2.INTER_LINEAR)
    if bgr:
        # In place on the small image: a per-pixel channel swap is safe with src == dst.
        resized = cv2.cvtColor(resized, cv2.COLOR_BGR2RGB, dst=resized)
    return resized


def mask_to_frame(mask: np.ndarray, width: int, height: int, out: np.ndarray | None = None) -> np.ndarray:
    """A model mask brought back to frame size: uint8 (height, width), bilinear, half-pixel centres.

    Args:
        mask: uint8 (h, w) mask from `SegmentationModel.segment` (or (h, w, 1)).
        width, height: the frame's size.
        out: optional preallocated uint8 (height, width) array, written in place.
    """
    if not isinstance(mask, np.ndarray) or mask.dtype != np.uint8:
        raise ResizeError(f"masks must be uint8 numpy arrays, got "
                          f"{getattr(mask, 'dtype', type(mask).__name__)}")
    if mask.ndim == 3 and mask.shape[2] == 1:
        mask = mask[:, :, 0]
    if mask.ndim != 2 or mask.size == 0:
        raise ResizeError(f"masks must be (height, width) uint8, got shape {mask.shape}")
    if width < 1 or height < 1:
        raise ResizeError(f"frame size must be positive, got {width}x{height}")
    if out is not None and (out.shape != (height, width) or out.dtype != np.uint8):
        raise ResizeError(f"out must be uint8 of shape {(height, width)}, got {out.dtype} {out.shape}")
    if mask.shape == (height, width):
        if out is None:
            return mask.copy()
        np.copyto(out, mask)
        return out
    return cv2.resize(mask, (width, height), dst=out, interpolation=cv2.INTER_LINEAR)
