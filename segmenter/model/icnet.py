"""icnet-resnet18: the seed's model, ICNet with a ResNet18 backbone, for users who have its checkpoint.

    python -m segmenter mask photo.jpg -o mask.png --model icnet-resnet18 --weights ICNet_ResNet18.pth

The network, its state_dict names and its inference recipe follow Human-Segmentation-PyTorch
(thuyngch, MIT), whose authors distribute `ICNet_ResNet18.pth`: the frame's longer side is scaled
to 320 (the sink does that, `InputSpec(320, 320, "fit")`), zero padding split evenly makes it a
320x320 square, pixels go /255 then ImageNet mean/std, the logits are cropped back to the
unpadded area, and softmax channel 1 is the person probability. The result is a uint8 mask like
the selfie models', so the sink cannot tell the difference.

Checkpoints load with `strict=True` (reading them: checkpoint.py): a file that does not match is
one error naming the keys.
Architecture after thuyngch/Human-Segmentation-PyTorch (MIT), models/ICNet.py.
"""

from __future__ import annotations

import copy
import logging
import os
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from .base import MODELS, InputSpec, ModelError, SegmentationModel
from .checkpoint import check_state_dict, first_line, read_state_dict
from .resnet_backbone import ResNet18Backbone

logger = logging.getLogger(__name__)

INPUT_SIZE = 320                     # the seed's input: longer side 320, padded to a square
NUM_CLASSES = 2                      # background, person
PERSON_CHANNEL = 1
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
PYRAMID_BINS = (1, 2, 3, 6)          # pyramid pooling grid sizes
BRANCH_CHANNELS = 128                # width of both cascade feature fusion outputs


def _upsample(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    # the repo resamples with align_corners=True everywhere; the trained weights expect it
    return F.interpolate(x, size=size, mode="bilinear", align_corners=True)


class ConvBNReLU(nn.Module):
    """Convolution without bias, batch norm, ReLU; state_dict names `conv.*`, `bn.*`."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1,
                 padding: int = 0) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride=stride, padding=padding, bias=False)
        self.bn = nn.BatchNorm2d(out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn(self.conv(x)), inplace=True)


def _pyramid_pool(x: torch.Tensor) -> torch.Tensor:
    """Add the average-pooled context at each PYRAMID_BINS grid, upsampled back, to x (no weights)."""
    size = (x.shape[-2], x.shape[-1])
    out = x
    for bins in PYRAMID_BINS:
        out = out + _upsample(F.adaptive_avg_pool2d(x, bins), size)
    return out


class CascadeFeatureFusion(nn.Module):
    """Fuses a coarse branch into a finer one: upsample, dilated 3x3 on coarse + 1x1 on fine, ReLU.

    `conv_low_cls` is the auxiliary classifier the repo trains with; inference never runs it, but
    the checkpoint holds its weights, so it exists for `strict=True` loading.
    """

    def __init__(self, low_channels: int, high_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv_low = nn.Sequential(OrderedDict([
            ("conv", nn.Conv2d(low_channels, out_channels, kernel_size=3, padding=2, dilation=2, bias=False)),
            ("bn", nn.BatchNorm2d(out_channels)),
        ]))
        self.conv_high = nn.Sequential(OrderedDict([
            ("conv", nn.Conv2d(high_channels, out_channels, kernel_size=1, bias=False)),
            ("bn", nn.BatchNorm2d(out_channels)),
        ]))
        self.conv_low_cls = nn.Conv2d(out_channels, NUM_CLASSES, kernel_size=1, bias=False)

    def forward(self, low: torch.Tensor, high: torch.Tensor) -> torch.Tensor:
        low = _upsample(low, (high.shape[-2], high.shape[-1]))
        return F.relu(self.conv_low(low) + self.conv_high(high), inplace=True)


class ICNet(nn.Module):
    """ICNet-ResNet18 for inference: (N, 3, H, W) normalised RGB -> (N, 2, H, W) logits.

    Three branches: full resolution through three strided convs (1/8), half resolution through
    the backbone's stem..layer2 (1/16 of the input), quarter resolution through layer3/layer4
    plus pyramid pooling (1/16 too, but from a halved copy). Cascade fusion merges them, a 1x1
    classifier runs at 1/4 and bilinear upsampling brings the logits to the input size.
    H and W must be multiples of 8 for the logits to come out at exactly H x W (320 is).
    """

    def __init__(self) -> None:
        super().__init__()
        self.conv_sub1 = nn.Sequential(OrderedDict([
            ("conv1", ConvBNReLU(3, 32, kernel_size=3, stride=2, padding=1)),
            ("conv2", ConvBNReLU(32, 32, kernel_size=3, stride=2, padding=1)),
            ("conv3", ConvBNReLU(32, 64, kernel_size=3, stride=2, padding=1)),
        ]))
        self.backbone = ResNet18Backbone()
        stage5 = self.backbone.out_channels
        self.conv_sub4_reduce = ConvBNReLU(stage5, stage5 // 4, kernel_size=1)
        self.cff_24 = CascadeFeatureFusion(stage5 // 4, 128, BRANCH_CHANNELS)
        self.cff_12 = CascadeFeatureFusion(BRANCH_CHANNELS, 64, BRANCH_CHANNELS)
        self.conv_cls = nn.Conv2d(BRANCH_CHANNELS, NUM_CLASSES, kernel_size=1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        height, width = x.shape[-2], x.shape[-1]
        sub1 = self.conv_sub1(x)
        sub2 = self.backbone.forward_to_layer2(_upsample(x, (height // 2, width // 2)))
        sub4 = _upsample(sub2, (sub2.shape[-2] // 2, sub2.shape[-1] // 2))
        sub4 = self.conv_sub4_reduce(_pyramid_pool(self.backbone.forward_layer3_4(sub4)))
        fused = self.cff_12(self.cff_24(sub4, sub2), sub1)
        fused = _upsample(fused, (fused.shape[-2] * 2, fused.shape[-1] * 2))
        return _upsample(self.conv_cls(fused), (height, width))


class _PersonMask(nn.Module):
    """Logits -> uint8 person mask over the whole square; the crop happens on the result.

    Softmax is per pixel, so cropping before or after it is the same; and softmax channel 1 of
    two classes is exactly sigmoid(l1 - l0), which is cheaper and does not overflow.
    """

    def __init__(self, network: nn.Module) -> None:
        super().__init__()
        self.network = network

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = self.network(x)
        person = torch.sigmoid(logits[:, PERSON_CHANNEL] - logits[:, 1 - PERSON_CHANNEL])
        return torch.round(person * 255.0).to(torch.uint8)


def pad_offsets(height: int, width: int, size: int = INPUT_SIZE) -> tuple[int, int]:
    """(top, left) zero padding that centres an image in a size x size square.

    The padding is split evenly; an odd pixel goes to the bottom or right, as the repo does.
    """
    return (size - height) // 2, (size - width) // 2


class ICNetSegmentation(SegmentationModel):
    """ICNet-ResNet18 person masks at 320 (longer side), with the seed repo's padding recipe.

    Not thread-safe: `segment` reuses one preallocated input buffer; use one instance per thread.
    """

    KEY = "icnet-resnet18"

    def __init__(self, network: nn.Module, *, fast: bool = True) -> None:
        """Wrap a network mapping (1, 3, 320, 320) normalised RGB to (1, 2, 320, 320) logits.

        Args:
            network: an `ICNet` with its weights loaded (any module of that signature works).
            fast: run `fast_copy(network)` (batch norm folded into the convolutions, cheaper
                max pool); False runs `network` itself (benchmarks, debugging).
        """
        self.network = network.eval()
        self.fast = fast
        # one preallocated NCHW input, shared with torch (a channels_last input measured slower)
        self._input = np.zeros((1, 3, INPUT_SIZE, INPUT_SIZE), np.float32)
        self._input_tensor = torch.from_numpy(self._input)
        std = np.asarray(IMAGENET_STD, np.float32)[:, None, None]
        self._scale = 1.0 / (255.0 * std)                        # x/255 then /std in one multiply
        self._offset = -np.asarray(IMAGENET_MEAN, np.float32)[:, None, None] / std
        self._padded_shape: tuple[int, int] | None = None         # geometry the padding was written for
        self._runner = _PersonMask(fast_copy(self.network) if fast else self.network).eval()

    @classmethod
    def random(cls, seed: int = 0, *, fast: bool = True) -> ICNetSegmentation:
        """An ICNet with seeded random weights: real architecture and cost, meaningless masks.

        For benchmarks and tests, since the authors' checkpoint cannot be shipped here.
        """
        return cls(random_icnet(seed), fast=fast)

    @property
    def input_spec(self) -> InputSpec:
        return InputSpec(INPUT_SIZE, INPUT_SIZE, "fit")

    def segment(self, rgb: np.ndarray) -> np.ndarray:
        """Person mask of an RGB uint8 (h, w, 3) frame with max(h, w) == 320; uint8 (h, w)."""
        height, width = _check_frame(rgb)
        top, left = pad_offsets(height, width)
        if self._padded_shape != (height, width):
            # zero pixels after normalisation, written only when the geometry changes
            self._input[...] = self._offset
            self._padded_shape = (height, width)
        content = self._input[0, :, top:top + height, left:left + width]
        np.multiply(rgb.transpose(2, 0, 1), self._scale, out=content)
        content += self._offset
        with torch.inference_mode():
            mask = self._runner(self._input_tensor)
        return mask[0, top:top + height, left:left + width].numpy().copy()


def _check_frame(rgb: Any) -> tuple[int, int]:
    ok = (isinstance(rgb, np.ndarray) and rgb.dtype == np.uint8 and rgb.ndim == 3 and rgb.shape[2] == 3
          and max(rgb.shape[:2]) == INPUT_SIZE and min(rgb.shape[:2]) >= 1)
    if not ok:
        got = f"{rgb.dtype} {rgb.shape}" if isinstance(rgb, np.ndarray) else type(rgb).__name__
        raise ModelError(f"icnet-resnet18 takes RGB uint8 (h, w, 3) with max(h, w) == {INPUT_SIZE}, "
                           f"got {got}: prepare frames with shared.resize.prepare_input(frame, model.input_spec)")
    return rgb.shape[0], rgb.shape[1]


class _MaxPool2x2(nn.Module):
    """2x2 stride-2 max pooling as the max of four strided views: same values, and on CPU about
    10x faster than max_pool2d on NCHW tensors (docs/model-performance.md)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        height, width = x.shape[-2] // 2 * 2, x.shape[-1] // 2 * 2  # floor, as max_pool2d does
        x = x[..., :height, :width]
        return torch.maximum(torch.maximum(x[..., 0::2, 0::2], x[..., 0::2, 1::2]),
                             torch.maximum(x[..., 1::2, 0::2], x[..., 1::2, 1::2]))


# (convolution, batch norm) attribute pairs where the norm directly follows the convolution
_CONV_BN_PAIRS = (("conv", "bn"), ("conv1", "bn1"), ("conv2", "bn2"), ("0", "1"))


def fast_copy(network: nn.Module) -> nn.Module:
    """An inference copy of network: batch norm folded into the convolutions, cheaper 2x2 max pool.

    Plain eager PyTorch on purpose: torch.jit is deprecated in torch 2.13, and a traced+frozen
    module measured no faster than this on ICNet (its time is in the convolutions).
    """
    fast = copy.deepcopy(network).eval()
    for module in list(fast.modules()):
        for conv_name, bn_name in _CONV_BN_PAIRS:
            conv, bn = module._modules.get(conv_name), module._modules.get(bn_name)
            if isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d):
                module._modules[conv_name] = fuse_conv_bn_eval(conv, bn)
                module._modules[bn_name] = nn.Identity()
        for name, child in module.named_children():
            if isinstance(child, nn.MaxPool2d) and _is_plain_2x2(child):
                module._modules[name] = _MaxPool2x2()
    return fast


def _is_plain_2x2(pool: nn.MaxPool2d) -> bool:
    return (_pair(pool.kernel_size) == (2, 2) and _pair(pool.stride) == (2, 2) and _pair(pool.padding) == (0, 0)
            and _pair(pool.dilation) == (1, 1) and not pool.ceil_mode and not pool.return_indices)


def _pair(value: int | tuple[int, ...]) -> tuple[int, ...]:
    return tuple(value) if isinstance(value, tuple) else (value, value)


def random_icnet(seed: int = 0) -> ICNet:
    """ICNet with seeded random weights that behave like trained ones numerically.

    Convolutions get the repo's He init. Plain random batch-norm statistics let activations grow
    layer by layer until every mask is 0 or 255, so the statistics are measured instead, on a
    smooth random image (as training would have left them), and the classifier is scaled to
    logits of a few units there: masks of real photos then vary across the frame.
    """
    generator = torch.Generator().manual_seed(seed)
    network = ICNet()
    with torch.no_grad():
        for module in network.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu", generator=generator)
            elif isinstance(module, nn.BatchNorm2d):
                module.weight.uniform_(0.5, 1.5, generator=generator)
                module.bias.normal_(0.0, 0.1, generator=generator)
        coarse = torch.randn(1, 3, INPUT_SIZE // 16, INPUT_SIZE // 16, generator=generator)
        image = F.interpolate(coarse, size=(INPUT_SIZE, INPUT_SIZE), mode="bilinear", align_corners=False)
        norms = [m for m in network.modules() if isinstance(m, nn.BatchNorm2d)]
        for norm in norms:
            norm.reset_running_stats()
            norm.momentum = None  # cumulative average: one pass sets the statistics exactly
        network.train()(image)
        for norm in norms:
            norm.momentum = 0.1
        logits = network.eval()(image)
        network.conv_cls.weight.mul_(2.0 / float((logits[:, 1] - logits[:, 0]).std()))
    return network


@MODELS.register(ICNetSegmentation.KEY)
def load_icnet(name: str = ICNetSegmentation.KEY, *, weights: str | os.PathLike | None = None,
               cache_dir: str | os.PathLike | None = None, fast: bool = True) -> ICNetSegmentation:
    """The icnet-resnet18 model with the user's checkpoint, loaded with `strict=True`.

    Args:
        name: "icnet-resnet18" (the registry passes it; there is one ICNet model).
        weights: `ICNet_ResNet18.pth` from Human-Segmentation-PyTorch (its trainer's checkpoint
            dict with a 'state_dict' entry), or a plain state_dict of the same network.
        cache_dir: unused: the checkpoint is the user's own file, never in the weights cache.
        fast: the fast inference copy (see `fast_copy`); False keeps the eager module.
    Raises:
        ModelError: no file given, unreadable/corrupt file, or weights that do not match.
    """
    if weights is None:
        raise ModelError("icnet-resnet18 needs --weights PATH to your ICNet_ResNet18.pth")
    path = Path(weights)
    state_dict = read_state_dict(path)
    network = ICNet()
    check_state_dict(network, state_dict, path)
    try:
        network.load_state_dict(state_dict, strict=True)
    except RuntimeError as exc:  # e.g. a dtype that cannot be copied; the check above covers names and shapes
        raise ModelError(f"{path} does not load into icnet-resnet18: {first_line(exc)}") from None
    logger.info("loaded icnet-resnet18 weights from %s (%d tensors)", path, len(state_dict))
    return ICNetSegmentation(network, fast=fast)
