"""An independent reference for the sink's YUV conversions: float BT.601 limited range, chroma
averaged over the pixels it covers (tests/capture_sink/test_outputs_v4l2.py, test_native.py)."""

from __future__ import annotations

import numpy as np


def reference_ycbcr(bgr: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    b, g, r = (bgr[..., i].astype(np.float64) for i in range(3))
    y = 16 + (65.481 * r + 128.553 * g + 24.966 * b) / 255
    cb = 128 + (-37.797 * r - 74.203 * g + 112.0 * b) / 255
    cr = 128 + (112.0 * r - 93.786 * g - 18.214 * b) / 255
    return y, cb, cr


def reference_yuyv(bgr: np.ndarray) -> np.ndarray:
    y, cb, cr = reference_ycbcr(bgr)
    out = np.empty((bgr.shape[0], bgr.shape[1] * 2))
    out[:, 0::2] = y
    out[:, 1::4] = (cb[:, 0::2] + cb[:, 1::2]) / 2
    out[:, 3::4] = (cr[:, 0::2] + cr[:, 1::2]) / 2
    return out.reshape(-1)


def reference_i420(bgr: np.ndarray) -> np.ndarray:
    y, cb, cr = reference_ycbcr(bgr)

    def quarter(c: np.ndarray) -> np.ndarray:
        return (c[0::2, 0::2] + c[0::2, 1::2] + c[1::2, 0::2] + c[1::2, 1::2]) / 4

    return np.concatenate([y.reshape(-1), quarter(cb).reshape(-1), quarter(cr).reshape(-1)])
