"""The dilated ResNet18 that Human-Segmentation-PyTorch's ICNet uses as its backbone.

Module names follow that repository (`conv1`, `bn1`, `layer1..4`, `downsample.0/.1`), so a checkpoint
trained there loads here with `strict=True`. Two details differ from torchvision's ResNet18 and
change every output, so they are kept: the stem's max-pool is 2x2 stride 2 (not 3x3 padded), and
the network runs at output stride 8 with "multi-grid" dilations (layer3: 2, 4; layer4: 4, 8)
instead of striding layer3 and layer4. It has no classifier head.
Architecture after thuyngch/Human-Segmentation-PyTorch (MIT), models/backbonds/ResNet.py.
"""

from __future__ import annotations

import logging

import torch
from torch import nn

logger = logging.getLogger(__name__)

# ResNet18: two basic blocks per stage; stage widths 64, 128, 256, 512.
BLOCKS_PER_STAGE = (2, 2, 2, 2)
STEM_CHANNELS = 64
# Output stride 8: only layer2 strides; layer3/layer4 dilate instead to keep resolution.
STAGE_STRIDES = (1, 2, 1, 1)
STAGE_DILATIONS = (1, 1, 2, 4)


def _conv3x3(in_channels: int, out_channels: int, stride: int = 1, dilation: int = 1) -> nn.Conv2d:
    # padding = dilation keeps the spatial size at stride 1
    return nn.Conv2d(in_channels, out_channels, kernel_size=3, stride=stride, padding=dilation,
                     dilation=dilation, bias=False)


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with a residual connection (projected when the shape changes)."""

    def __init__(self, in_channels: int, channels: int, stride: int = 1, dilation: int = 1,
                 downsample: nn.Module | None = None) -> None:
        super().__init__()
        self.conv1 = _conv3x3(in_channels, channels, stride, dilation)
        self.bn1 = nn.BatchNorm2d(channels)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = _conv3x3(channels, channels, dilation=dilation)
        self.bn2 = nn.BatchNorm2d(channels)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        residual = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + residual)


def _make_stage(in_channels: int, channels: int, blocks: int, stride: int, dilation: int) -> nn.Sequential:
    downsample = None
    if stride != 1 or in_channels != channels:
        # unnamed Sequential on purpose: the checkpoint calls these downsample.0 and downsample.1
        downsample = nn.Sequential(
            nn.Conv2d(in_channels, channels, kernel_size=1, stride=stride, bias=False),
            nn.BatchNorm2d(channels),
        )
    # multi-grid: a dilated stage doubles the dilation from one block to the next
    dilations = [dilation * 2 ** i for i in range(blocks)] if dilation != 1 else [1] * blocks
    layers = [BasicBlock(in_channels, channels, stride, dilations[0], downsample)]
    layers += [BasicBlock(channels, channels, dilation=d) for d in dilations[1:]]
    return nn.Sequential(*layers)


class ResNet18Backbone(nn.Module):
    """ResNet18 at output stride 8, split where ICNet taps it.

    ICNet runs the stem to layer2 on the half-resolution image (`forward_to_layer2`, 1/8 of its
    input) and layer3 + layer4 on a further halved copy of that (`forward_layer3_4`).
    """

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, STEM_CHANNELS, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(STEM_CHANNELS)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=2, stride=2)
        in_channels = STEM_CHANNELS
        stages = []
        for i, (blocks, stride, dilation) in enumerate(zip(BLOCKS_PER_STAGE, STAGE_STRIDES, STAGE_DILATIONS)):
            channels = STEM_CHANNELS * 2 ** i
            stages.append(_make_stage(in_channels, channels, blocks, stride, dilation))
            in_channels = channels
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.out_channels = in_channels  # 512

    def forward_to_layer2(self, x: torch.Tensor) -> torch.Tensor:
        """Stem, layer1 and layer2: 128 channels at 1/8 of x's size."""
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        return self.layer2(self.layer1(x))

    def forward_layer3_4(self, x: torch.Tensor) -> torch.Tensor:
        """layer3 and layer4 (dilated, no striding): 512 channels at x's size."""
        return self.layer4(self.layer3(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_layer3_4(self.forward_to_layer2(x))
