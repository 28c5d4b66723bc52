"""The seed's image stages, written from the formulas of its source, as the benchmarks' baseline.

The seed followed Benjamin Elder's "Open Source Virtual Background" (CC BY 4.0): dilate 10x10 +
blur 30x30 on the float mask, the hologram with its Python row loop, compositing in float64, and
pyfakewebcam's BGR->RGB->YUV + per-row YUYV packing. bench_sink times them stage by stage against
the sink's; seed_pipeline strings them into the seed's whole loop.
"""

from __future__ import annotations

import cv2
import numpy as np


def seed_refine(mask_small: np.ndarray, width: int, height: int) -> np.ndarray:
    """Upsample the model's probability mask, dilate 10x10, box blur 30x30 in float64."""
    mask = cv2.resize(mask_small, (width, height)).astype(np.float32) / 255.0
    mask = cv2.dilate(mask, np.ones((10, 10), np.uint8), iterations=1)
    return cv2.blur(mask.astype(float), (30, 30))


def _seed_shift(img: np.ndarray, dx: int, dy: int) -> np.ndarray:
    img = np.roll(img, dy, axis=0)
    img = np.roll(img, dx, axis=1)
    if dy > 0:
        img[:dy, :] = 0
    elif dy < 0:
        img[dy:, :] = 0
    if dx > 0:
        img[:, :dx] = 0
    elif dx < 0:
        img[:, dx:] = 0
    return img


def seed_hologram(img: np.ndarray) -> np.ndarray:
    holo = cv2.applyColorMap(img, cv2.COLORMAP_WINTER)
    band_length, band_gap = 2, 3
    for y in range(holo.shape[0]):
        if y % (band_length + band_gap) < band_length:
            holo[y, :, :] = holo[y, :, :] * np.random.uniform(0.1, 0.3)
    holo_blur = cv2.addWeighted(holo, 0.2, _seed_shift(holo.copy(), 5, 5), 0.8, 0)
    holo_blur = cv2.addWeighted(holo_blur, 0.4, _seed_shift(holo.copy(), -5, -5), 0.6, 0)
    return cv2.addWeighted(img, 0.5, holo_blur, 0.6, 0)


def seed_composite(frame: np.ndarray, background: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The blog's loop over channels in float64, writing into the (effect's) frame."""
    inv_mask = 1 - mask
    for c in range(frame.shape[2]):
        frame[:, :, c] = frame[:, :, c] * mask + background[:, :, c] * inv_mask
    return frame


def seed_output(frame_bgr: np.ndarray) -> np.ndarray:
    """BGR -> RGB for pyfakewebcam, then its OpenCV path: RGB2YUV and a per-row YUYV pack."""
    rgb = cv2.cvtColor(frame_bgr, cv2.COLOR_BGR2RGB)
    yuv = cv2.cvtColor(rgb, cv2.COLOR_RGB2YUV)
    height, width = yuv.shape[:2]
    buffer = np.zeros((height, 2 * width), dtype=np.uint8)
    y, u, v = yuv[..., 0], yuv[..., 1], yuv[..., 2]
    for i in range(height):
        buffer[i, ::2] = y[i, :]
        buffer[i, 1::4] = u[i, ::2]
        buffer[i, 3::4] = v[i, ::2]
    return buffer
