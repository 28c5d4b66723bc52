"""Each native build against the OpenCV path it replaces, on this CPU, on real frames.

Used by `python -m capture_sink.native --time` and bench/bench_native.py. Times are medians of
interleaved runs (OpenCV, native, OpenCV, ...) in one process, so the ratio holds on a noisy
machine even where the milliseconds do not.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from capture_sink.composite import Compositor
from capture_sink.effects import create_effect

from . import choice, library

DEMO = Path(__file__).resolve().parent.parent / "assets" / "demo_person.jpg"
SIZES = {"720p": (720, 1280), "1080p": (1080, 1920)}


def scene(height: int, width: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A real photo as the frame, a smooth background, and a person-shaped soft alpha."""
    frame = cv2.resize(cv2.imread(str(DEMO)), (width, height), interpolation=cv2.INTER_AREA)
    background = cv2.GaussianBlur(frame[:, ::-1].copy(), (0, 0), 9)
    alpha = np.zeros((height, width), np.uint8)
    cv2.ellipse(alpha, (width // 2, height), (width // 4, int(height * 0.8)), 0, 0, 360, 255, -1)
    return frame, background, cv2.GaussianBlur(alpha, (0, 0), 4)


def time_builds(isas: list[str], rounds: int = 30) -> list[dict]:
    """One row per (build, size, pass): OpenCV ms, native ms, speed-up, largest pixel difference."""
    rows = []
    cv2.setNumThreads(1)     # as the sink runs OpenCV (capture_sink/app.py)
    for isa in isas:
        ops = library.build_for(isa)
        for label, (h, w) in SIZES.items():
            frame, background, alpha = scene(h, w)
            effect, compositor = create_effect("hologram", seed=0), Compositor()
            effect._prepare(frame)
            stock_ms, native_ms = choice.time_both(
                lambda: compositor._composite_opencv_fresh(effect._apply_opencv(frame), background, alpha),
                lambda: effect._native_composite(ops, frame, background, alpha), rounds)
            expected = compositor._composite_opencv_fresh(effect._apply_opencv(frame), background, alpha).astype(int)
            diff = int(np.abs(expected - effect._native_composite(ops, frame, background, alpha)).max())
            rows.append(_row(isa, label, "hologram+composite", stock_ms, native_ms, diff))
            foreground, out = effect._apply_opencv(frame).copy(), np.empty_like(frame)
            stock_ms, native_ms = choice.time_both(
                lambda: compositor._composite_opencv_fresh(foreground, background, alpha),
                lambda: ops.composite(foreground, background, alpha, out), rounds)
            diff = int(np.abs(compositor._composite_opencv_fresh(foreground, background, alpha).astype(int) - out).max())
            rows.append(_row(isa, label, "composite", stock_ms, native_ms, diff))
            # the refiner's alpha at its work size (640x360) to the frame: 2x at 720p, 3x at 1080p
            work = cv2.resize(alpha, (640, 360), interpolation=cv2.INTER_AREA)
            full = np.empty_like(alpha)
            stock_ms, native_ms = choice.time_both(
                lambda: cv2.resize(work, (w, h), interpolation=cv2.INTER_LINEAR),
                lambda: ops.upsample(work, full), rounds)
            diff = int(np.abs(cv2.resize(work, (w, h), interpolation=cv2.INTER_LINEAR).astype(int) - full).max())
            rows.append(_row(isa, label, f"alpha upsample {h // 360}x", stock_ms, native_ms, diff))
            yuyv, yuyv_cv = np.empty((h, w, 2), np.uint8), np.empty((h, w, 2), np.uint8)
            stock_ms, native_ms = choice.time_both(
                lambda: cv2.cvtColor(frame, cv2.COLOR_BGR2YUV_YUY2, yuyv_cv),
                lambda: ops.bgr_to_yuyv(frame, yuyv), rounds)
            diff = int(np.abs(cv2.cvtColor(frame, cv2.COLOR_BGR2YUV_YUY2).astype(int) - yuyv).max())
            rows.append(_row(isa, label, "BGR to YUYV", stock_ms, native_ms, diff))
            # the refiner's guide: the frame's grey at its work size (640x360)
            k = h // 360
            small, gray, guide = np.empty((360, 640, 3), np.uint8), np.empty((360, 640), np.uint8), np.empty((360, 640), np.uint8)
            stock_ms, native_ms = choice.time_both(
                lambda: cv2.cvtColor(cv2.resize(frame, (640, 360), dst=small, interpolation=cv2.INTER_LINEAR),
                                     cv2.COLOR_BGR2GRAY, dst=gray),
                lambda: ops.guide_gray(frame, guide), rounds)
            rows.append(_row(isa, label, f"guide grey {k}x", stock_ms, native_ms, int(np.abs(gray.astype(int) - guide).max())))
        rows.append(_guided_apply_row(ops, isa, rounds))
        rows.append(_guided_coefficients_row(ops, isa, rounds))
    return rows


def _guided_coefficients_row(ops, isa: str, rounds: int) -> dict:
    """The refiner's guided-filter coefficients at 320x180 from a real frame and a soft mask: its
    17 OpenCV calls against the native pass; the difference is in the alpha they give."""
    from capture_sink.refine import MaskRefiner

    frame, _, alpha = scene(720, 1280)
    refiner = MaskRefiner()
    refiner.refine(cv2.resize(alpha, (256, 144), interpolation=cv2.INTER_AREA), frame)   # sizes, guide, p
    g = refiner._g_low
    scale, offset = refiner._ramp or (1.0, 0.0)
    mean_a, mean_b = np.empty_like(g["II"]), np.empty_like(g["Ip"])
    stock_ms, native_ms = choice.time_both(
        lambda: refiner._coefficients_opencv(scale, offset),
        lambda: ops.guided_coeffs(refiner._gray_low, g["p"], refiner._radius, refiner._eps, scale, offset,
                                  mean_a, mean_b), rounds)
    refiner._coefficients_opencv(scale, offset)
    stock_alpha, native_alpha = np.empty((360, 640), np.uint8), np.empty((360, 640), np.uint8)
    ops.guided_apply(g["II"], g["Ip"], refiner._guide_gray, stock_alpha)
    ops.guided_apply(mean_a, mean_b, refiner._guide_gray, native_alpha)
    diff = int(np.abs(stock_alpha.astype(int) - native_alpha).max())
    return _row(isa, "work 320x180", "guided filter coefficients", stock_ms, native_ms, diff)


def _guided_apply_row(ops, isa: str, rounds: int) -> dict:
    """The refiner's guided-filter coefficients (320x180) applied at its work size (640x360), the
    same at every frame size: OpenCV's two float resizes, multiply and add against the native pass."""
    frame, _, _ = scene(360, 640)
    guide = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
    small = cv2.resize(guide, (320, 180), interpolation=cv2.INTER_AREA).astype(np.float32)
    a = np.ascontiguousarray(cv2.GaussianBlur(small, (0, 0), 3) / 255.0 * 1.5, dtype=np.float32)
    b = np.ascontiguousarray(-a * small * 0.5, dtype=np.float32)
    a_up, b_up, stock_out, native_out = (np.empty((360, 640), np.float32), np.empty((360, 640), np.float32),
                                         np.empty_like(guide), np.empty_like(guide))

    def stock() -> np.ndarray:
        cv2.resize(a, (640, 360), dst=a_up, interpolation=cv2.INTER_LINEAR)
        cv2.resize(b, (640, 360), dst=b_up, interpolation=cv2.INTER_LINEAR)
        cv2.multiply(a_up, guide, dst=a_up, dtype=cv2.CV_32F)
        return cv2.add(a_up, b_up, dst=stock_out, dtype=cv2.CV_8U)

    stock_ms, native_ms = choice.time_both(stock, lambda: ops.guided_apply(a, b, guide, native_out), rounds)
    diff = int(np.abs(stock().astype(int) - native_out).max())
    return _row(isa, "work 640x360", "guided filter apply", stock_ms, native_ms, diff)


def _row(isa: str, size: str, op: str, stock_ms: float, native_ms: float, diff: int) -> dict:
    return {"build": isa, "size": size, "pass": op, "opencv_ms": round(stock_ms, 3),
            "native_ms": round(native_ms, 3), "speedup": round(stock_ms / native_ms, 2),
            "max_diff": diff, "chosen": choice.decide(stock_ms, native_ms)}
