"""`python -m segmenter mask`: the full-resolution mask of one image, for users to check results.

The image goes through exactly the path a sink uses: `prepare_input` to the model's input size,
`model.segment`, then `mask_to_frame` back to the image's own size.
"""

from __future__ import annotations

import argparse
import logging
import re
from pathlib import Path

import cv2
import numpy as np

from shared.resize import mask_to_frame, prepare_input

from .model import SegmentationModel, create_model

logger = logging.getLogger(__name__)

_HEX_COLOUR = re.compile(r"^#?([0-9a-fA-F]{6})$")


class MaskImageError(RuntimeError):
    """A bad input or output file for `segmenter mask`; one line naming the fix."""


def read_image(path: str | Path) -> np.ndarray:
    """BGR uint8 image; grey and alpha images are converted to 3 channels."""
    path = Path(path)
    if not path.is_file():
        raise MaskImageError(f"{path} does not exist: give the path of an image file")
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise MaskImageError(f"{path} is not an image OpenCV can read: use a PNG or JPEG file")
    return image


def full_resolution_mask(model: SegmentationModel, image_bgr: np.ndarray) -> np.ndarray:
    """uint8 person mask of the image, at the image's own size."""
    height, width = image_bgr.shape[:2]
    small = prepare_input(image_bgr, model.input_spec, bgr=True)
    return mask_to_frame(model.segment(small), width, height)


def _background(spec: str, width: int, height: int) -> np.ndarray:
    match = _HEX_COLOUR.match(spec)
    if match:
        rgb = bytes.fromhex(match.group(1))
        return np.full((height, width, 3), (rgb[2], rgb[1], rgb[0]), np.uint8)
    image = read_image(spec)
    return cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)


def composite(image_bgr: np.ndarray, mask: np.ndarray, background_bgr: np.ndarray) -> np.ndarray:
    alpha = mask.astype(np.float32)[..., None] * (1.0 / 255.0)
    out = image_bgr.astype(np.float32) * alpha + background_bgr.astype(np.float32) * (1.0 - alpha)
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


def _write(path: str, image: np.ndarray) -> None:
    try:
        ok = cv2.imwrite(path, image)
    except cv2.error as exc:
        raise MaskImageError(f"cannot write {path} ({exc.msg.strip() or 'unknown format'}): "
                             f"use a .png or .jpg name in a writable folder") from exc
    if not ok:
        raise MaskImageError(f"cannot write {path}: use a .png or .jpg name in a writable folder")


def run_mask(args: argparse.Namespace) -> int:
    image = read_image(args.image)
    if Path(args.output).suffix.lower() not in (".png", ".bmp", ".tif", ".tiff", ".pgm"):
        raise MaskImageError(f"-o {args.output}: masks must be lossless, use a .png name")
    model = create_model(args.model, weights=args.weights, cache_dir=args.cache_dir, threads=args.threads)
    mask = full_resolution_mask(model, image)
    _write(args.output, mask)
    logger.info("wrote %s (%dx%d, person %.1f%%)", args.output, mask.shape[1], mask.shape[0],
                100.0 * float(np.count_nonzero(mask >= 128)) / mask.size)
    if args.composite:
        background = _background(args.background, image.shape[1], image.shape[0])
        _write(args.composite, composite(image, mask, background))
        logger.info("wrote %s", args.composite)
    return 0
