"""MediaPipe selfie segmentation (general 256x256, landscape 144x256): loading and running it.

`load_selfie` reads the `.tflite` file, builds `SelfieNet` from it (selfie_net.py, fused by
selfie_fusion.py) and wraps it in `SelfieSegmentation`, the model the worker serves.

Speed: the fast path is the fused graph (`SelfieNet(fuse=True)`) traced and frozen, channels-last
throughout. With the fused NHWC kernels (segmenter/kernels) the depthwise and 1x1 convs, the first
conv on the uint8 frame, the 2x upsamplings and the squeeze-excite gates run as
torch.ops.holocam.* ops; `load_selfie` times them against stock ops on the model and keeps the
faster (segmenter/kernels/calibrate.py). What each step bought, and what was tried and dropped:
docs/model-performance.md; current figures: bench/results/model.json and kernels.md.

Weights: MediaPipe selfie segmentation, Apache-2.0 (fetched by `segmenter.weights`).
"""

from __future__ import annotations

import hashlib
import logging
import os
import warnings
from pathlib import Path
from typing import Callable

import cv2
import numpy as np
import torch
from torch import nn

from segmenter.kernels import calibrate as calibration
from segmenter.kernels import load as load_kernels
from segmenter.kernels import setting as kernel_setting
from segmenter.malloc_tuning import keep_frame_buffers_in_heap

from .base import MODELS, InputSpec, ModelError, SegmentationModel
from .selfie_net import SelfieNet
from .tflite_graph import read_tflite

logger = logging.getLogger(__name__)

SELFIE_SPECS: dict[str, InputSpec] = {
    "selfie": InputSpec(256, 256, "stretch"),
    "selfie-landscape": InputSpec(256, 144, "stretch"),
}


class ProbabilityPipeline(nn.Module):
    """uint8 NHWC RGB -> (H, W) person probability: the whole model path in one traced graph."""

    def __init__(self, net: SelfieNet) -> None:
        super().__init__()
        self.net = net

    def forward(self, rgb: torch.Tensor) -> torch.Tensor:
        return self.net(self.net.prepare(rgb))[0, 0]


def _trace_fast(pipeline: ProbabilityPipeline, example: torch.Tensor) -> torch.jit.ScriptModule:
    """Trace + freeze. torch 2.13 marks torch.jit deprecated; it is still the fastest CPU path
    measured here (bench/bench_model.py), so silence exactly that warning."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"`torch\.jit\.", category=DeprecationWarning)
        with torch.no_grad():
            traced = torch.jit.trace(pipeline, example, check_trace=False)
            frozen = torch.jit.freeze(traced.eval())
    return frozen


class SelfieSegmentation(SegmentationModel):
    """MediaPipe's selfie segmentation on the CPU; `segment` takes RGB at model size.

    One caller at a time: frames are copied into a single reused input buffer.
    """

    KEY = "selfie"

    def __init__(self, net: SelfieNet, key: str, fast: bool = True) -> None:
        self.KEY = key
        self.net = net.eval()
        self._spec = InputSpec(net.width, net.height, "stretch")
        self.fast = fast
        self._input = torch.zeros((1, net.height, net.width, 3), dtype=torch.uint8)
        self._input_np = self._input.numpy()[0]  # shares memory: segment copies frames into it
        pipeline = ProbabilityPipeline(self.net).eval()
        self._run: Callable[[torch.Tensor], torch.Tensor] = (
            _trace_fast(pipeline, self._input) if fast else pipeline)
        with torch.inference_mode():
            for _ in range(2):  # the JIT profiles and optimises on its first runs
                self._run(self._input)

    @property
    def input_spec(self) -> InputSpec:
        return self._spec

    def _forward(self, rgb: np.ndarray) -> torch.Tensor:
        if rgb.shape != self._input_np.shape or rgb.dtype != np.uint8:
            raise ModelError(f"{self.KEY} takes uint8 RGB of shape {self._input_np.shape}, got "
                             f"{rgb.dtype} {rgb.shape}: prepare frames with shared.resize.prepare_input")
        np.copyto(self._input_np, rgb)
        return self._run(self._input)

    def probabilities(self, rgb: np.ndarray) -> np.ndarray:
        """float32 (h, w) person probability of an RGB uint8 (h, w, 3) frame at model size.

        The same graph as `segment` (traced or eager), before rounding to uint8; the model input
        is rgb / 255 in float32, as MediaPipe feeds TFLite.
        """
        with torch.inference_mode():
            return self._forward(rgb).numpy().copy()

    def segment(self, rgb: np.ndarray) -> np.ndarray:
        """uint8 person mask (h, w) = round(probability * 255) of an RGB uint8 (h, w, 3) frame."""
        with torch.inference_mode():
            prob = self._forward(rgb).numpy()
        # One OpenCV pass (x * 255, round half to even as torch.round, saturate): ~8 us against
        # ~60 us for torch's mul_ / round_ / to(uint8) at 256x256.
        return cv2.convertScaleAbs(prob, alpha=255.0)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()  # the files are ~250 KB


def load_selfie(name: str, weights: str | os.PathLike | None = None,
                cache_dir: str | os.PathLike | None = None, fast: bool = True,
                kernels: bool | None = None) -> SelfieSegmentation:
    """Build `selfie` or `selfie-landscape` from its .tflite file.

    Args:
        name: "selfie" (256x256) or "selfie-landscape" (256 wide, 144 high).
        weights: a .tflite file; defaults to the verified file in the weights cache.
        cache_dir: the weights cache (see segmenter.weights.cache_dir).
        fast: traced + frozen graph; False keeps the eager module.
        kernels: use the fused NHWC kernels on the fast path; None: when they load (see
            segmenter.kernels and HOLOCAM_KERNELS), False: stock torch ops only.
    """
    if name not in SELFIE_SPECS:
        raise ModelError(f"unknown selfie model {name!r}: choose one of {', '.join(SELFIE_SPECS)}")
    from segmenter.weights import WEIGHTS, weights_path
    if weights is None:
        weights = weights_path(name, cache_dir)  # verified; raises WeightsError naming `make weights`
    keep_frame_buffers_in_heap()
    graph = read_tflite(weights)
    calibrate = False
    if kernels is None:
        kernels = fast and load_kernels(cache_dir) is not None
        calibrate = kernels and kernel_setting() == "auto"
    elif kernels and load_kernels(cache_dir) is None:
        raise ModelError("the fused kernels were asked for but do not load: see the warning above, "
                         "or leave kernels unset")
    net = SelfieNet(graph, fuse=fast, kernels=kernels)
    expected = SELFIE_SPECS[name]
    if (net.width, net.height) != (expected.width, expected.height):
        raise ModelError(f"{Path(weights)} takes {net.width}x{net.height} input but {name} is "
                         f"{expected.width}x{expected.height}: pass the {name} weights file")
    if _sha256(Path(weights)) != WEIGHTS[name].sha256:
        logger.warning("%s is not MediaPipe's %s file (sha256 differs): the parity tests do not "
                       "cover it", weights, name)
    model = SelfieSegmentation(net, name, fast=fast)
    if calibrate:
        model = _faster_of(model, lambda: SelfieSegmentation(SelfieNet(graph, fuse=True, kernels=False), name),
                           weights, cache_dir)
    logger.info("loaded %s from %s (%d ops, %s path%s)", name, weights, len(graph.ops),
                "traced" if fast else "eager", ", fused kernels" if model.net.kernels else "")
    return model


def _faster_of(fused: SelfieSegmentation, build_stock: Callable[[], SelfieSegmentation],
               weights: str | os.PathLike, cache_dir: str | os.PathLike | None) -> SelfieSegmentation:
    """Whichever of fused kernels and stock ops runs this model faster on this CPU: timed on the
    first start, read from the calibration cache afterwards (the stock model is then not built)."""
    isa = load_kernels(cache_dir) or "none"
    threads = torch.get_num_threads()
    key = calibration.cache_key(fused.KEY, weights, isa, threads)
    choice = calibration.cached(key, cache_dir)
    stock: SelfieSegmentation | None = None
    if choice is None:
        stock = build_stock()
        spec = fused.input_spec
        frame = np.random.default_rng(0).integers(0, 256, (spec.height, spec.width, 3), dtype=np.uint8)
        choice = calibration.decide(*calibration.time_interleaved(lambda: fused.segment(frame),
                                                                  lambda: stock.segment(frame)))
        calibration.store(key, choice, cache_dir)
    logger.info("%s on %s (%s build, %d thread(s)): %s", fused.KEY, calibration.cpu_model(), isa, threads,
                choice.describe())
    if choice.use_fused:
        return fused
    return stock if stock is not None else build_stock()


for _name in SELFIE_SPECS:
    MODELS.add(_name, load_selfie)
