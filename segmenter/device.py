"""Where the segmenter computes: `--device auto|cpu|cuda[:N]`, and the model path for a GPU.

    python -m segmenter serve --device auto      # CUDA when torch sees a GPU, else the CPU
    python -m segmenter serve --device cuda:1    # the second GPU; fails in one line if there is none

The CPU keeps its own fastest path (segmenter.model: traced graph and fused NHWC kernels, which
are CPU code). Any other device runs `DeviceSelfie`: the same SelfieNet with stock torch ops,
moved to the device, frames batched when several wait, fp16 where it keeps the masks' parity
with fp32 (`HALF_PARITY_IOU` on test photos, checked at start-up on that very device). That
path is device-agnostic: the tests run it on the CPU against the CPU model.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Sequence

import numpy as np

from .model import ModelError
from .model.base import InputSpec, SegmentationModel

logger = logging.getLogger(__name__)

DEVICE_CHOICES = "auto, cpu, cuda or cuda:N"
HALF_PARITY_IOU = 0.999        # fp16 is used only if every check image keeps this IoU with fp32
MASK_THRESHOLD = 128           # mask value from which a pixel counts as person (for IoU)
CUDA_WHEELS = "pip install torch --index-url https://download.pytorch.org/whl/cu128"


class DeviceError(ModelError):
    """A device that cannot be used here; one line that names the fix."""


def parse_device(text: str) -> tuple[str, int | None]:
    """ "auto" / "cpu" / "cuda" / "cuda:N" -> (kind, index); DeviceError for anything else."""
    match = re.fullmatch(r"(auto|cpu|cuda)(?::(\d+))?", text.strip().lower())
    if not match or (match[2] is not None and match[1] != "cuda"):
        raise DeviceError(f"--device {text!r}: use {DEVICE_CHOICES}")
    return match[1], int(match[2]) if match[2] is not None else None


def resolve_device(text: str):
    """The torch.device for `--device text`; DeviceError naming the fix when CUDA cannot be used."""
    import torch

    kind, index = parse_device(text)
    if kind == "cpu":
        return torch.device("cpu")
    if kind == "auto":
        return torch.device("cuda", 0) if torch.cuda.is_available() else torch.device("cpu")
    if torch.version.cuda is None:
        raise DeviceError(f"--device {text}: this torch ({torch.__version__}) is a CPU-only build: install a CUDA "
                          f"build ({CUDA_WHEELS}), or use the GPU image (docker-compose.gpu.yml), or --device cpu")
    if not torch.cuda.is_available():
        raise DeviceError(f"--device {text}: torch {torch.__version__} was built for CUDA {torch.version.cuda} but "
                          f"sees no GPU: install the NVIDIA driver (nvidia-smi must list the GPU); in Docker use "
                          f"docker-compose.gpu.yml (NVIDIA Container Toolkit); or --device cpu")
    count = torch.cuda.device_count()
    if index is not None and index >= count:
        raise DeviceError(f"--device {text}: this machine has {count} GPU(s): use cuda:0 .. cuda:{count - 1}")
    return torch.device("cuda", index or 0)


def describe(device, half: bool = False) -> str:
    """What the hello says: "cpu", "cuda:0 fp16", ..."""
    name = str(device) if device.type != "cuda" else f"cuda:{device.index or 0}"
    return f"{name} fp16" if half else name


def mask_iou(a: np.ndarray, b: np.ndarray, threshold: int = MASK_THRESHOLD) -> float:
    """Intersection over union of the person areas of two uint8 masks (1.0 when both are empty)."""
    pa, pb = a >= threshold, b >= threshold
    union = np.logical_or(pa, pb).sum()
    return 1.0 if union == 0 else float(np.logical_and(pa, pb).sum() / union)


class DeviceSelfie(SegmentationModel):
    """The selfie net with stock torch ops on any torch device; `segment_batch` runs several frames at once.

    Args:
        net: a SelfieNet built without the fused kernels (those are CPU code).
        key: the model name ("selfie" / "selfie-landscape").
        device: a torch.device.
        half: compute in float16 (inputs and weights); probabilities come back as float32.
    """

    def __init__(self, net, key: str, device, half: bool = False) -> None:
        import torch

        if getattr(net, "kernels", False):
            raise ModelError("DeviceSelfie needs a SelfieNet built with kernels=False (the fused kernels are CPU code)")
        self.KEY = key
        self.device, self.half = device, half
        self.dtype = torch.float16 if half else torch.float32
        self.net = net.eval().to(device=device, dtype=self.dtype, memory_format=torch.channels_last)
        self._spec = InputSpec(net.width, net.height, "stretch")

    @property
    def input_spec(self) -> InputSpec:
        return self._spec

    @property
    def device_name(self) -> str:
        return describe(self.device, self.half)

    def _check(self, rgb: np.ndarray) -> None:
        shape = (self._spec.height, self._spec.width, 3)
        if rgb.shape != shape or rgb.dtype != np.uint8:
            raise ModelError(f"{self.KEY} takes uint8 RGB of shape {shape}, got {rgb.dtype} {rgb.shape}: "
                             f"prepare frames with shared.resize.prepare_input")

    def segment_batch(self, frames: Sequence[np.ndarray]) -> list[np.ndarray]:
        """uint8 masks = round(probability * 255), one per frame, computed in one pass."""
        import torch

        for rgb in frames:
            self._check(rgb)
        batch = torch.from_numpy(np.stack(frames))
        with torch.inference_mode():
            x = self.net.prepare(batch.to(self.device, non_blocking=True)).to(self.dtype)
            masks = (self.net(x)[:, 0].float() * 255.0).round_().clamp_(0, 255).to(torch.uint8)
            out = masks.cpu().numpy()
        return list(out)

    def segment(self, rgb: np.ndarray) -> np.ndarray:
        return self.segment_batch([rgb])[0]


def check_images(spec: InputSpec) -> list[np.ndarray]:
    """Photos with people at model size, for the fp16 parity check (packaged test photos; else none)."""
    import cv2

    from shared.resize import prepare_input

    images = []
    try:
        import skimage.data
        images += [skimage.data.astronaut(), np.dstack([skimage.data.camera()] * 3)]
    except ImportError:
        pass
    demo = Path(__file__).resolve().parents[1] / "capture_sink" / "assets" / "demo_person.jpg"
    if demo.is_file():
        bgr = cv2.imread(str(demo))
        if bgr is not None:
            images.append(bgr[..., ::-1])
    return [prepare_input(np.ascontiguousarray(im), spec) for im in images]


def half_keeps_parity(full: DeviceSelfie, half: DeviceSelfie, images: Sequence[np.ndarray]) -> tuple[bool, float]:
    """(ok, worst IoU) of fp16 masks against fp32 masks on `images` (False when there are none)."""
    if not images:
        return False, 0.0
    worst = min(mask_iou(a, b) for a, b in zip(full.segment_batch(images), half.segment_batch(images)))
    return worst >= HALF_PARITY_IOU, worst


def load_device_model(name: str, device, *, weights=None, cache_dir=None, precision: str = "auto"):
    """The selfie model on `device` (selfie-auto: both, by_aspect.py); precision "auto" picks fp16 on
    CUDA where it keeps parity, else fp32."""
    from .model import by_aspect

    if name == by_aspect.KEY:
        by_aspect.check_no_weights(weights)
        return by_aspect.pair(*(load_device_model(part, device, cache_dir=cache_dir, precision=precision)
                                for part in (by_aspect.SQUARE, by_aspect.WIDE)))
    if name not in ("selfie", "selfie-landscape"):
        raise DeviceError(f"--model {name} runs on the CPU only here: use --model selfie-auto, selfie or "
                          f"selfie-landscape on a GPU, or --device cpu")
    if precision not in ("auto", "fp32", "fp16"):
        raise DeviceError(f"--precision {precision!r}: use auto, fp32 or fp16")
    from .model.selfie_net import SelfieNet
    from .model.tflite_graph import read_tflite
    from .weights import weights_path

    path = weights if weights is not None else weights_path(name, cache_dir)
    graph = read_tflite(path)
    full = DeviceSelfie(SelfieNet(graph, fuse=False, kernels=False), name, device)
    want_half = precision == "fp16" or (precision == "auto" and device.type == "cuda")
    if not want_half:
        return full
    half = DeviceSelfie(SelfieNet(graph, fuse=False, kernels=False), name, device, half=True)
    ok, worst = half_keeps_parity(full, half, check_images(full.input_spec))
    if ok or precision == "fp16":
        logger.info("I: %s on %s in fp16 (mask IoU with fp32 >= %.4f on the check photos)", name, device, worst)
        return half
    logger.info("I: %s on %s stays fp32: fp16 masks reach IoU %.4f < %.3f with fp32", name, device, worst,
                HALF_PARITY_IOU)
    return full
