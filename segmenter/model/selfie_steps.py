"""The torch steps a selfie-segmentation graph is rebuilt from (see selfie.py, which builds and fuses them).

Each step is one TFLite op, or several fused into one pass; all work on NCHW tensors held
channels-last in memory. The *Kernel steps and the `kernel` modes call the fused NHWC operators
of segmenter.kernels (torch.ops.holocam.*); the others use stock torch ops.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from segmenter.kernels import ACTIVATIONS

class Conv(nn.Module):
    """CONV_2D / DEPTHWISE_CONV_2D with TF padding and fused activation."""

    def __init__(self, conv: nn.Conv2d, pad: tuple[int, int, int, int] | None,
                 activation: Callable[[torch.Tensor], torch.Tensor] | None) -> None:
        super().__init__()
        self.conv = conv
        self.pad = pad  # (left, right, top, bottom) for F.pad when SAME is asymmetric
        self.activation = activation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.pad is not None:
            x = F.pad(x, self.pad)
        x = self.conv(x)
        return self.activation(x) if self.activation is not None else x


class Pointwise(nn.Module):
    """1x1 stride-1 CONV_2D as one matrix product over the channels-last pixels.

    torch's conv dispatch sends channels_last 1x1 convs to a slow im2col path with layout
    copies; on the NHWC view a 1x1 conv is exactly `linear`, which runs as a single GEMM. With
    `kernel`, the fused torch.ops.holocam.pointwise runs instead: bias, activation and (with
    `residual`) a following ADD in the same pass, ~1.6x faster than linear at these widths.
    """

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None,
                 activation: Callable[[torch.Tensor], torch.Tensor] | None, on_vector: bool = False,
                 activation_name: str = "NONE", kernel: bool = False) -> None:
        super().__init__()
        self.on_vector = on_vector   # the input is one pixel (graph shape known when building)
        self.weight = nn.Parameter(weight, requires_grad=False)   # (out, in)
        self.bias = nn.Parameter(bias, requires_grad=False) if bias is not None else None
        self.kernel = kernel and not on_vector and activation_name in ACTIVATIONS
        self.residual = False        # set by _fuse: forward(x, other) returns conv(x) + other
        self.act_code = 0
        if self.kernel:
            self.weight_t = nn.Parameter(weight.t().contiguous(), requires_grad=False)   # (in, out)
            if self.bias is None:
                self.bias = nn.Parameter(torch.zeros(weight.shape[0]), requires_grad=False)
            self.act_code = ACTIVATIONS[activation_name]
            activation = None
        self.activation = activation

    @property
    def has_activation(self) -> bool:
        return self.activation is not None or self.act_code != 0

    def fuse_activation(self, kind: str) -> bool:
        """Take a following RELU / HARD_SWISH into the kernel; False when it must run separately."""
        if not self.kernel or self.act_code != 0 or kind not in ACTIVATIONS:
            return False
        self.act_code = ACTIVATIONS[kind]
        return True

    def forward(self, x: torch.Tensor, residual: torch.Tensor | None = None) -> torch.Tensor:
        if self.kernel:
            return torch.ops.holocam.pointwise(x, self.weight_t, self.bias, residual, self.act_code)
        if self.on_vector:   # squeeze-excite (1x1 pixel): a plain 2-D product, no 4-D views around it
            x = F.linear(x.reshape(x.shape[0], -1), self.weight, self.bias).reshape(x.shape[0], -1, 1, 1)
        else:
            x = F.linear(x.permute(0, 2, 3, 1), self.weight, self.bias).permute(0, 3, 1, 2)
        return self.activation(x) if self.activation is not None else x


class DepthwiseKernel(nn.Module):
    """DEPTHWISE_CONV_2D (multiplier 1, no dilation) as torch.ops.holocam.depthwise.

    TF SAME padding needs no trick here: the kernel clips each window to the input, so only the
    leading padding is passed and the extra trailing row/column of a stride-2 conv is implicit.
    Bias and the fused or following activation run before the one store.
    """

    def __init__(self, weight_1hwc: np.ndarray, bias: np.ndarray | None, stride: int, pad_top: int,
                 pad_left: int, out_size: tuple[int, int], activation_name: str) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.from_numpy(np.ascontiguousarray(weight_1hwc[0], dtype=np.float32)),
                                   requires_grad=False)                   # (kh, kw, C)
        channels = self.weight.shape[2]
        self.bias = nn.Parameter(torch.from_numpy(np.asarray(bias, dtype=np.float32).copy())
                                 if bias is not None else torch.zeros(channels), requires_grad=False)
        self.stride, self.pad_top, self.pad_left = stride, pad_top, pad_left
        self.out_h, self.out_w = out_size
        self.act_code = ACTIVATIONS[activation_name]
        self.add_input = False   # set by _fuse: x + act(conv(x)), the ADD after a stride-1 depthwise

    def fuse_activation(self, kind: str) -> bool:
        if self.act_code != 0 or kind not in ACTIVATIONS:
            return False
        self.act_code = ACTIVATIONS[kind]
        return True

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.ops.holocam.depthwise(x, self.weight, self.bias, self.stride, self.pad_top, self.pad_left,
                                           self.out_h, self.out_w, self.act_code,
                                           x if self.add_input else None)


class FrameConvKernel(nn.Module):
    """The first CONV_2D on the uint8 frame itself (holocam.conv_u8), rgb/255 folded into the weights.

    Replaces the pad, the float conversion and the oneDNN conv of the stock path, with the
    activation in the same pass; TF SAME's trailing padding is the kernel's window clipping.
    """

    def __init__(self, weight_hwio: torch.Tensor, bias: torch.Tensor, stride: int, pad_top: int, pad_left: int,
                 out_size: tuple[int, int], activation_name: str) -> None:
        super().__init__()
        self.weight = nn.Parameter(weight_hwio, requires_grad=False)      # (kh, kw, cin, cout)
        self.bias = nn.Parameter(bias.contiguous(), requires_grad=False)
        self.stride, self.pad_top, self.pad_left = stride, pad_top, pad_left
        self.out_h, self.out_w = out_size
        self.act_code = ACTIVATIONS[activation_name]

    def forward(self, frame: torch.Tensor) -> torch.Tensor:
        return torch.ops.holocam.conv_u8(frame, self.weight, self.bias, self.stride, self.pad_top, self.pad_left,
                                         self.out_h, self.out_w, self.act_code)


class TransposeConv(nn.Module):
    """Convolution2DTransposeBias with kernel == stride (windows never overlap).

    Each output row parity `ky` is a plain matrix product of the input pixels: taps (kx, o) of
    pixel (y, x) land at row y*s+ky, columns x*s+kx, so the NHWC product is already laid out
    as that output row, and stacking the `s` products along the width interleaves the rows.
    torch's ConvTranspose2d (~0.5 ms) and pixel_shuffle on channels-last are far slower here.
    """

    def __init__(self, weight: np.ndarray, bias: np.ndarray, stride: int) -> None:
        super().__init__()
        out_channels, kh, kw, in_channels = weight.shape          # OHWI, kh == kw == stride
        per_row = weight.transpose(1, 2, 0, 3).reshape(kh, kw * out_channels, in_channels)  # [ky][(kx, o)]
        self.weight = nn.Parameter(torch.from_numpy(np.ascontiguousarray(per_row)), requires_grad=False)
        self.bias = nn.Parameter(torch.from_numpy(np.tile(bias, kw)), requires_grad=False)
        self.stride = stride
        self.out_channels = out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, _, h, w = x.shape
        s, o = self.stride, self.out_channels
        pixels = x.permute(0, 2, 3, 1)                                      # NHWC view
        rows = [F.linear(pixels, self.weight[ky], self.bias).reshape(n, h, w * s, o) for ky in range(s)]
        out = torch.cat(rows, dim=2).reshape(n, h * s, w * s, o)
        return out.permute(0, 3, 1, 2)


class Binary(nn.Module):
    """ADD / MUL of two tensors (broadcasting), or of a tensor and a constant."""

    def __init__(self, kind: str, constant: torch.Tensor | None,
                 activation: Callable[[torch.Tensor], torch.Tensor] | None) -> None:
        super().__init__()
        self.is_add = kind == "ADD"
        self.register_buffer("constant", constant)
        self.activation = activation

    def forward(self, a: torch.Tensor, b: torch.Tensor | None = None) -> torch.Tensor:
        other = self.constant if b is None else b
        x = a + other if self.is_add else a * other
        return self.activation(x) if self.activation is not None else x


class Unary(nn.Module):
    def __init__(self, fn: Callable[[torch.Tensor], torch.Tensor]) -> None:
        super().__init__()
        self.fn = fn

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fn(x)


class Mean(nn.Module):
    def __init__(self, dims: tuple[int, ...]) -> None:
        super().__init__()
        self.dims = dims

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=self.dims, keepdim=True)


class Resize(nn.Module):
    """RESIZE_BILINEAR; with `kernel`, an exact 2x half-pixel upsampling runs as holocam.upsample2x
    (~2.5x faster than upsample_bilinear2d on these channels-last maps, same formula)."""

    def __init__(self, size: tuple[int, int], align_corners: bool, kernel: bool = False) -> None:
        super().__init__()
        self.size = size
        self.align_corners = align_corners
        self.kernel = kernel

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.kernel:
            return torch.ops.holocam.upsample2x(x)
        return F.interpolate(x, size=self.size, mode="bilinear", align_corners=self.align_corners)


# Activations a conv's fresh output can take in place (no second activation map).
IN_PLACE_ACTIVATIONS = ("RELU", "HARD_SWISH")


class GatedPointwise(nn.Module):
    """MUL(x, gate) [-> RESIZE_BILINEAR] -> 1x1 CONV_2D with the per-channel gate folded into the weights.

    A squeeze-excite gate scales whole channels, and both the bilinear resize and the 1x1 conv are
    linear per channel, so conv(resize(x * g)) == linear(resize(x), W * g): scaling the (out, in)
    weight costs out*in multiplies instead of H*W*in. Without an activation the conv also runs
    before an upsampling resize (see `upsample_after`).
    """

    def __init__(self, pointwise: Pointwise, resize: "Resize | None", resize_last: bool = False) -> None:
        super().__init__()
        self.pointwise = pointwise
        self.resize = resize
        self.resize_last = resize_last and upsample_after(pointwise, resize)

    def forward(self, x: torch.Tensor, gate: torch.Tensor, residual: torch.Tensor | None = None) -> torch.Tensor:
        if self.resize is not None and not self.resize_last:
            x = self.resize(x)
        if self.pointwise.kernel:
            # residual (set by _fuse, kernels only): conv(x * gate) + residual in the same pass
            weight_t = self.pointwise.weight_t * gate.reshape(-1, 1)
            y = torch.ops.holocam.pointwise(x, weight_t, self.pointwise.bias, residual, self.pointwise.act_code)
            return self.resize(y) if self.resize is not None and self.resize_last else y
        weight = self.pointwise.weight * gate.reshape(1, -1)
        y = F.linear(x.permute(0, 2, 3, 1), weight, self.pointwise.bias).permute(0, 3, 1, 2)
        if self.resize is not None and self.resize_last:
            return self.resize(y)
        return self.pointwise.activation(y) if self.pointwise.activation is not None else y


def upsample_after(pointwise: Pointwise, resize: "Resize | None") -> bool:
    """Whether RESIZE_BILINEAR -> 1x1 CONV_2D can run as conv -> resize (worth it when upsampling).

    A bilinear output pixel is a weighted mean of input pixels (weights sum to 1) and a 1x1 conv
    without activation is affine per pixel, so both orders give the same map; the conv then runs
    on the small map (4x fewer pixels for 2x upsampling), and the resize moves the conv's
    channels, fewer than its input's in these models (figures: docs/model-performance.md).
    """
    return resize is not None and not pointwise.has_activation and not pointwise.on_vector


class PointwiseThenResize(nn.Module):
    """RESIZE_BILINEAR (upsampling) -> 1x1 CONV_2D without activation, run as conv -> resize."""

    def __init__(self, pointwise: Pointwise, resize: "Resize") -> None:
        super().__init__()
        self.pointwise = pointwise
        self.resize = resize

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.resize(self.pointwise(x))


class SqueezeExciteKernel(nn.Module):
    """Global MEAN -> 1x1 CONV_2D [-> RELU] -> 1x1 CONV_2D -> LOGISTIC: the squeeze-excite gate
    (1, C, 1, 1) in one holocam.squeeze_excite call instead of eight small torch ops. Given a second
    map (`forward(x, x2)`), the gate of x + x2: the ADD before the pool is never materialised."""

    def __init__(self, reduce: Pointwise, relu: bool, expand: Pointwise) -> None:
        super().__init__()
        def bias(p: Pointwise) -> torch.Tensor:
            return p.bias.detach() if p.bias is not None else torch.zeros(p.weight.shape[0])
        self.w1 = nn.Parameter(reduce.weight.detach().t().contiguous(), requires_grad=False)   # (C, M)
        self.b1 = nn.Parameter(bias(reduce).contiguous(), requires_grad=False)
        self.w2 = nn.Parameter(expand.weight.detach().t().contiguous(), requires_grad=False)   # (M, C)
        self.b2 = nn.Parameter(bias(expand).contiguous(), requires_grad=False)
        self.act1 = ACTIVATIONS["RELU"] if relu else ACTIVATIONS["NONE"]

    def forward(self, x: torch.Tensor, x2: torch.Tensor | None = None) -> torch.Tensor:
        return torch.ops.holocam.squeeze_excite(x, self.w1, self.b1, self.act1, self.w2, self.b2, x2)


class GatedAdd(nn.Module):
    """MUL(x, gate) -> ADD(that, y) as one addcmul: y + x * gate; with `kernel`, holocam.gated_add
    (the same sums, one pass: aten's broadcasting addcmul took 72 us of a 1.4 ms landscape mask)."""

    def __init__(self, kernel: bool = False) -> None:
        super().__init__()
        self.kernel = kernel

    def forward(self, x: torch.Tensor, gate: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if self.kernel:
            return torch.ops.holocam.gated_add(x, gate, y)
        return torch.addcmul(y, x, gate)


class InPlace(nn.Module):
    """RELU / HARD_SWISH on a tensor nothing else reads: overwrite it instead of allocating."""

    def __init__(self, kind: str) -> None:
        super().__init__()
        self.fn = F.relu_ if kind == "RELU" else F.hardswish
        self.kind = kind

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu_(x) if self.kind == "RELU" else F.hardswish(x, inplace=True)


class TransposeConvSigmoid(nn.Module):
    """Convolution2DTransposeBias (kernel == stride) -> LOGISTIC as one GEMM for all taps.

    The product is taken as weights @ pixels^T: an output only s*s*o (= 4) wide is a slow GEMM
    shape, while the transposed problem is 16384 wide, about 4x faster (figures:
    docs/model-performance.md). One permute copy then interleaves the planar taps (ky, kx) into
    output rows and columns. With the fused kernels (`kernel`) holocam.mask_head does all of it,
    the logistic included, in one pass over the feature map.
    """

    def __init__(self, weight: np.ndarray, bias: np.ndarray, stride: int, kernel: bool = False) -> None:
        super().__init__()
        out_channels, kh, kw, in_channels = weight.shape          # OHWI, kh == kw == stride
        taps = weight.transpose(1, 2, 0, 3).reshape(kh * kw * out_channels, in_channels)  # [(ky, kx, o)]
        self.weight = nn.Parameter(torch.from_numpy(np.ascontiguousarray(taps)), requires_grad=False)
        self.bias = nn.Parameter(torch.from_numpy(np.tile(bias, kh * kw)[:, None].copy()), requires_grad=False)
        # the fused kernel's layout: weights (in, taps), one bias per tap
        self.weight_in_taps = nn.Parameter(self.weight.detach().t().contiguous(), requires_grad=False)
        self.tap_bias = nn.Parameter(self.bias.detach().reshape(-1).contiguous(), requires_grad=False)
        self.stride = stride
        self.out_channels = out_channels
        self.kernel = kernel

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.kernel:
            return torch.ops.holocam.mask_head(x, self.weight_in_taps, self.tap_bias, self.stride)
        n, c, h, w = x.shape
        s, o = self.stride, self.out_channels
        pixels = x.permute(0, 2, 3, 1).reshape(n * h * w, c)               # a view when channels-last
        taps = torch.sigmoid_(torch.addmm(self.bias, self.weight, pixels.t()))   # (s*s*o, n*h*w)
        out = taps.reshape(s, s, o, n, h, w).permute(3, 2, 4, 0, 5, 1)     # n, o, y, ky, x, kx
        return out.reshape(n, o, h * s, w * s)
