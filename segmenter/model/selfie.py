"""MediaPipe selfie segmentation (general 256x256, landscape 144x256) as a PyTorch module.

The network is built from the `.tflite` file itself (see `tflite_graph.py`): each TFLite op
becomes a small torch step, tensors are kept NCHW (channels_last in memory on the fast path).
Details that matter for parity with TFLite (tests/segmenter/test_selfie_parity.py proves them):

- TF "SAME" padding is asymmetric on stride-2 convs (the extra row/column goes after); symmetric
  torch padding gives plausible but wrong masks.
- RESIZE_BILINEAR uses half-pixel centres, which is torch's `align_corners=False`.
- The CUSTOM op Convolution2DTransposeBias is a transposed conv with bias, weights OHWI.
- The graph ends in LOGISTIC: the output is already a probability.

Speed (bench/bench_model.py): the fast path is the whole uint8 -> probability pipeline traced and
frozen, channels-last from the input permute on; 1x1 convs run as `linear` on the NHWC view, the
transposed conv as two GEMMs, asymmetric padding as a zero kernel tap instead of F.pad, and glibc
keeps freed activation buffers (keep_frame_buffers_in_heap).

Weights: MediaPipe selfie segmentation, Apache-2.0 (fetched by `segmenter.weights`).
"""

from __future__ import annotations

import ctypes
import hashlib
import logging
import os
import platform
import warnings
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from . import ModelError
from .base import InputSpec, SegmentationModel
from .tflite_graph import TRANSPOSE_CONV_BIAS, OpInfo, TFLiteGraph, read_tflite

logger = logging.getLogger(__name__)

SELFIE_SPECS: dict[str, InputSpec] = {
    "selfie": InputSpec(256, 256, "stretch"),
    "selfie-landscape": InputSpec(256, 144, "stretch"),
}

# NHWC axis -> NCHW dim, for reductions written against TFLite's layout.
_NHWC_TO_NCHW = {0: 0, 1: 2, 2: 3, 3: 1, -1: 1, -2: 3, -3: 2, -4: 0}


# glibc mallopt parameters (malloc.h).
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
_malloc_tuned = False


def keep_frame_buffers_in_heap() -> bool:
    """Stop glibc from handing each frame's activation buffers back to the OS.

    By default glibc serves blocks over 128 KB with mmap and unmaps them on free, so every frame
    page-faults megabytes of activations in again: measured 8.1 -> 4.6 ms a frame (general model,
    1 thread). This is MALLOC_MMAP_THRESHOLD_/MALLOC_TRIM_THRESHOLD_ done in process, so it also
    works when the service is started without them. Process-wide and idempotent; returns False
    (and does nothing) on a non-glibc libc or when the user set those variables.
    """
    global _malloc_tuned
    if _malloc_tuned:
        return True
    if platform.libc_ver()[0] != "glibc" or "MALLOC_MMAP_THRESHOLD_" in os.environ \
            or "MALLOC_TRIM_THRESHOLD_" in os.environ:
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    # 64 MB: above any activation of these models; the heap keeps up to 256 MB of freed memory.
    _malloc_tuned = (bool(libc.mallopt(_M_MMAP_THRESHOLD, 64 << 20))
                     and bool(libc.mallopt(_M_TRIM_THRESHOLD, 256 << 20)))
    logger.debug("glibc malloc keeps freed frame buffers: %s", _malloc_tuned)
    return _malloc_tuned


def _activation(name: str, source: str) -> Callable[[torch.Tensor], torch.Tensor] | None:
    if name == "NONE":
        return None
    if name == "RELU":
        return F.relu
    if name == "RELU6":
        return F.relu6
    raise ModelError(f"{source}: fused activation {name} is not supported: use the MediaPipe "
                     f"selfie-segmentation files")


def _same_padding(size: int, kernel: int, stride: int, dilation: int) -> tuple[int, int]:
    """TF "SAME": output ceil(size/stride); any odd extra padding goes after, not before."""
    out = -(-size // stride)
    total = max((out - 1) * stride + (kernel - 1) * dilation + 1 - size, 0)
    return total // 2, total - total // 2


class _Conv(nn.Module):
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


class _Pointwise(nn.Module):
    """1x1 stride-1 CONV_2D as one matrix product over the channels-last pixels.

    torch's conv dispatch sends channels_last 1x1 convs to a slow im2col path with layout
    copies; on the NHWC view a 1x1 conv is exactly `linear`, which runs as a single GEMM.
    """

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None,
                 activation: Callable[[torch.Tensor], torch.Tensor] | None) -> None:
        super().__init__()
        self.weight = nn.Parameter(weight, requires_grad=False)   # (out, in)
        self.bias = nn.Parameter(bias, requires_grad=False) if bias is not None else None
        self.activation = activation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.linear(x.permute(0, 2, 3, 1), self.weight, self.bias).permute(0, 3, 1, 2)
        return self.activation(x) if self.activation is not None else x


class _TransposeConv(nn.Module):
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


class _Binary(nn.Module):
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


class _Unary(nn.Module):
    def __init__(self, fn: Callable[[torch.Tensor], torch.Tensor]) -> None:
        super().__init__()
        self.fn = fn

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fn(x)


class _Mean(nn.Module):
    def __init__(self, dims: tuple[int, ...]) -> None:
        super().__init__()
        self.dims = dims

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=self.dims, keepdim=True)


class _Resize(nn.Module):
    def __init__(self, size: tuple[int, int], align_corners: bool) -> None:
        super().__init__()
        self.size = size
        self.align_corners = align_corners

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.interpolate(x, size=self.size, mode="bilinear", align_corners=self.align_corners)


def _nchw(array: np.ndarray) -> torch.Tensor:
    """A constant operand in TFLite's NHWC layout, as an NCHW tensor."""
    tensor = torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))
    if tensor.dim() == 4:
        return tensor.permute(0, 3, 1, 2).contiguous()
    if tensor.dim() <= 1:
        return tensor.reshape(1, -1, 1, 1) if tensor.numel() > 1 else tensor.reshape(())
    raise ModelError(f"constant operand of shape {tuple(array.shape)} is not supported")


class SelfieNet(nn.Module):
    """A TFLite graph (as read by `read_tflite`) rebuilt from torch ops.

    Input: float32 (1, 3, H, W) RGB in [0, 1]. Output: float32 (1, 1, H, W) person probability.
    """

    def __init__(self, graph: TFLiteGraph) -> None:
        super().__init__()
        if len(graph.inputs) != 1 or len(graph.outputs) != 1:
            raise ModelError(f"{graph.source}: expected one input and one output, got "
                             f"{len(graph.inputs)} and {len(graph.outputs)}: use the MediaPipe "
                             f"selfie-segmentation files")
        in_shape = graph.tensors[graph.inputs[0]].shape
        if len(in_shape) != 4 or in_shape[0] != 1 or in_shape[3] != 3:
            raise ModelError(f"{graph.source}: input shape {in_shape} is not (1, H, W, 3): use the "
                             f"MediaPipe selfie-segmentation files")
        self.height, self.width = in_shape[1], in_shape[2]
        self.input_index = graph.inputs[0]
        self.output_index = graph.outputs[0]
        self.steps = nn.ModuleList()
        self.step_inputs: list[list[int]] = []
        self.step_outputs: list[int] = []
        for op in graph.ops:
            step, inputs = self._build(graph, op)
            if len(op.outputs) != 1:
                raise ModelError(f"{graph.source}: op {op.kind} #{op.index} has {len(op.outputs)} outputs")
            self.steps.append(step)
            self.step_inputs.append(inputs)
            self.step_outputs.append(op.outputs[0])
        self._check_dataflow(graph)
        self._check_shapes(graph)
        # Tensors whose last reader is step i, freed after it so eager runs keep memory low.
        last_use: dict[int, int] = {}
        for i, inputs in enumerate(self.step_inputs):
            for t in inputs:
                last_use[t] = i
        self.release_after: list[list[int]] = [[] for _ in self.steps]
        for t, i in last_use.items():
            if t != self.output_index:
                self.release_after[i].append(t)

    def _check_dataflow(self, graph: TFLiteGraph) -> None:
        ready = {self.input_index}
        for op, inputs, out in zip(graph.ops, self.step_inputs, self.step_outputs):
            missing = [t for t in inputs if t not in ready]
            if missing:
                raise ModelError(f"{graph.source}: op {op.kind} #{op.index} reads tensor {missing[0]} "
                                 f"before it is computed: the file is corrupt")
            ready.add(out)
        if self.output_index not in ready:
            raise ModelError(f"{graph.source}: no op computes the output tensor: the file is corrupt")

    def _check_shapes(self, graph: TFLiteGraph) -> None:
        """Run zeros through every step once: each output must have the graph's (NHWC) shape."""
        values: dict[int, torch.Tensor] = {self.input_index: torch.zeros(1, 3, self.height, self.width)}
        with torch.inference_mode():
            for step, op, inputs, out in zip(self.steps, graph.ops, self.step_inputs, self.step_outputs):
                values[out] = step(*[values[t] for t in inputs])
                n, c, h, w = values[out].shape
                expected = graph.tensors[out].shape
                if (n, h, w, c) != tuple(expected):
                    raise ModelError(f"{graph.source}: op {op.kind} #{op.index} gives shape {(n, h, w, c)} "
                                     f"but the graph says {tuple(expected)}: not a supported model file")

    def _build(self, graph: TFLiteGraph, op: OpInfo) -> tuple[nn.Module, list[int]]:
        source = graph.source
        kind = op.kind
        first = op.inputs[0]
        in_shape = graph.tensors[first].shape
        out_shape = graph.tensors[op.outputs[0]].shape
        if kind in ("CONV_2D", "DEPTHWISE_CONV_2D"):
            return self._conv(graph, op), [first]
        if kind == TRANSPOSE_CONV_BIAS:
            return self._transpose_conv(graph, op), [first]
        if kind in ("ADD", "MUL"):
            act = _activation(op.options["activation"], source)
            a, b = op.inputs[:2]
            const_a, const_b = graph.tensors[a].is_constant, graph.tensors[b].is_constant
            if const_a and const_b:
                raise ModelError(f"{source}: {kind} #{op.index} of two constants is not supported")
            if const_b or const_a:
                activation_input, constant = (a, b) if const_b else (b, a)
                return _Binary(kind, _nchw(graph.constant(constant)), act), [activation_input]
            return _Binary(kind, None, act), [a, b]
        if kind == "RELU":
            return _Unary(F.relu), [first]
        if kind == "RELU6":
            return _Unary(F.relu6), [first]
        if kind == "HARD_SWISH":
            return _Unary(F.hardswish), [first]
        if kind == "LOGISTIC":
            return _Unary(torch.sigmoid), [first]
        if kind == "MEAN":
            axes = tuple(int(a) for a in np.atleast_1d(graph.constant(op.inputs[1])))
            if not op.options.get("keep_dims") or len(in_shape) != 4:
                raise ModelError(f"{source}: MEAN #{op.index} without keep_dims on 4-D input "
                                 f"is not supported")
            return _Mean(tuple(sorted(_NHWC_TO_NCHW[a] for a in axes))), [first]
        if kind == "AVERAGE_POOL_2D":
            # Only global pooling (one window covering the input, no padding) occurs in these models.
            fh, fw = op.options["filter"]
            if (fh, fw) != (in_shape[1], in_shape[2]) or tuple(out_shape[1:3]) != (1, 1):
                raise ModelError(f"{source}: AVERAGE_POOL_2D #{op.index} is not a global pooling: "
                                 f"not supported")
            if op.options["activation"] != "NONE":
                raise ModelError(f"{source}: AVERAGE_POOL_2D with a fused activation is not supported")
            return _Mean((2, 3)), [first]
        if kind == "RESIZE_BILINEAR":
            if op.options["half_pixel_centers"] == op.options["align_corners"]:
                raise ModelError(f"{source}: RESIZE_BILINEAR #{op.index} with align_corners="
                                 f"{op.options['align_corners']} and half_pixel_centers="
                                 f"{op.options['half_pixel_centers']} has no torch equivalent")
            return _Resize((out_shape[1], out_shape[2]), op.options["align_corners"]), [first]
        raise ModelError(f"{source}: op {kind} is not supported by the PyTorch port: use the MediaPipe "
                         f"selfie-segmentation files")

    def _conv(self, graph: TFLiteGraph, op: OpInfo) -> nn.Module:
        opts = op.options
        weight = graph.constant(op.inputs[1])
        bias = graph.constant(op.inputs[2]) if len(op.inputs) > 2 and op.inputs[2] >= 0 else None
        in_channels = graph.tensors[op.inputs[0]].shape[3]
        _, in_h, in_w, _ = graph.tensors[op.inputs[0]].shape
        if op.kind == "CONV_2D":
            out_channels, kh, kw, w_in = weight.shape  # OHWI
            if w_in != in_channels:
                raise ModelError(f"{graph.source}: CONV_2D #{op.index} weights {weight.shape} do not match "
                                 f"{in_channels} input channels: the file is corrupt")
            groups = 1
            torch_weight = weight.transpose(0, 3, 1, 2)          # OHWI -> OIHW
        else:
            _, kh, kw, out_channels = weight.shape              # 1HW(C*multiplier)
            if out_channels != in_channels * opts["depth_multiplier"]:
                raise ModelError(f"{graph.source}: DEPTHWISE_CONV_2D #{op.index} weights {weight.shape} "
                                 f"do not match {in_channels} input channels: the file is corrupt")
            groups = in_channels
            torch_weight = weight.transpose(3, 0, 1, 2)          # 1HWC -> C1HW
        stride, dilation = opts["stride"], opts["dilation"]
        if opts["padding"] == "SAME":
            top, bottom = _same_padding(in_h, kh, stride[0], dilation[0])
            left, right = _same_padding(in_w, kw, stride[1], dilation[1])
        else:
            top = bottom = left = right = 0
        activation = _activation(opts["activation"], graph.source)
        if (kh, kw) == (1, 1) and stride == (1, 1) and groups == 1 and not (top or bottom or left or right):
            return _Pointwise(torch.from_numpy(np.ascontiguousarray(torch_weight[:, :, 0, 0])),
                              torch.from_numpy(bias) if bias is not None else None, activation)
        # TF puts the odd extra padding after. Instead of copying the input through F.pad (slow on
        # channels-last), prepend a zero tap to the kernel on that axis and pad symmetrically by
        # the larger amount: windows shift back by one pixel whose weight is zero, so they cover
        # exactly TF's pixels, and the output count is the same (see _same_padding).
        if dilation == (1, 1):
            if bottom == top + 1:
                torch_weight = np.pad(torch_weight, ((0, 0), (0, 0), (1, 0), (0, 0)))
                kh, top = kh + 1, bottom
            if right == left + 1:
                torch_weight = np.pad(torch_weight, ((0, 0), (0, 0), (0, 0), (1, 0)))
                kw, left = kw + 1, right
        symmetric = top == bottom and left == right
        conv = nn.Conv2d(in_channels, out_channels, (kh, kw), stride=stride, dilation=dilation,
                         groups=groups, bias=bias is not None,
                         padding=(top, left) if symmetric else 0)
        with torch.no_grad():
            conv.weight.copy_(torch.from_numpy(np.ascontiguousarray(torch_weight)))
            if bias is not None:
                conv.bias.copy_(torch.from_numpy(bias))
        pad = None if symmetric else (left, right, top, bottom)
        return _Conv(conv, pad, activation)

    def _transpose_conv(self, graph: TFLiteGraph, op: OpInfo) -> nn.Module:
        weight = graph.constant(op.inputs[1])                    # OHWI
        bias = graph.constant(op.inputs[2])
        out_channels, kh, kw, in_channels = weight.shape
        _, in_h, in_w, c = graph.tensors[op.inputs[0]].shape
        _, out_h, out_w, _ = graph.tensors[op.outputs[0]].shape
        if c != in_channels or bias.shape != (out_channels,):
            raise ModelError(f"{graph.source}: {op.kind} #{op.index} weights {weight.shape} do not match "
                             f"its input: the file is corrupt")
        sh, sw = op.options["stride"]
        # With kernel == stride and output == input * stride, TF's SAME/VALID padding crops nothing.
        if not (kh == kw == sh == sw and (out_h, out_w) == (in_h * sh, in_w * sw)):
            raise ModelError(f"{graph.source}: {op.kind} #{op.index} with kernel {kh}x{kw}, stride "
                             f"{sh}x{sw} and output {out_h}x{out_w} is not supported")
        return _TransposeConv(weight, bias, sh)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        values: dict[int, torch.Tensor] = {self.input_index: x}
        for step, inputs, out, release in zip(self.steps, self.step_inputs, self.step_outputs,
                                              self.release_after):
            values[out] = step(*[values[t] for t in inputs])
            for t in release:
                del values[t]
        return values[self.output_index]


class ProbabilityPipeline(nn.Module):
    """uint8 NHWC RGB -> (H, W) person probability: the whole model path in one traced graph."""

    def __init__(self, net: SelfieNet) -> None:
        super().__init__()
        self.net = net

    def forward(self, rgb: torch.Tensor) -> torch.Tensor:
        # permute of an NHWC tensor is a channels_last NCHW view: no copy, and the convs run
        # channels-last from the first layer on. x/255 as in MediaPipe (and the parity tests).
        x = rgb.permute(0, 3, 1, 2).float() / 255.0
        return self.net(x)[0, 0]


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
            prob = self._forward(rgb)
            # The graph's output tensor is ours alone: scale and round it in place.
            return prob.mul_(255.0).round_().to(torch.uint8).numpy()


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()  # the files are ~250 KB


def load_selfie(name: str, weights: str | os.PathLike | None = None,
                cache_dir: str | os.PathLike | None = None, fast: bool = True) -> SelfieSegmentation:
    """Build `selfie` or `selfie-landscape` from its .tflite file.

    Args:
        name: "selfie" (256x256) or "selfie-landscape" (256 wide, 144 high).
        weights: a .tflite file; defaults to the verified file in the weights cache.
        cache_dir: the weights cache (see segmenter.weights.cache_dir).
        fast: traced + frozen graph; False keeps the eager module.
    """
    if name not in SELFIE_SPECS:
        raise ModelError(f"unknown selfie model {name!r}: choose one of {', '.join(SELFIE_SPECS)}")
    from segmenter.weights import WEIGHTS, weights_path
    if weights is None:
        weights = weights_path(name, cache_dir)  # verified; raises WeightsError naming `make weights`
    keep_frame_buffers_in_heap()
    graph = read_tflite(weights)
    net = SelfieNet(graph)
    expected = SELFIE_SPECS[name]
    if (net.width, net.height) != (expected.width, expected.height):
        raise ModelError(f"{Path(weights)} takes {net.width}x{net.height} input but {name} is "
                         f"{expected.width}x{expected.height}: pass the {name} weights file")
    if _sha256(Path(weights)) != WEIGHTS[name].sha256:
        logger.warning("%s is not MediaPipe's %s file (sha256 differs): the parity tests do not "
                       "cover it", weights, name)
    logger.info("loaded %s from %s (%d ops, %s path)", name, weights, len(graph.ops),
                "traced" if fast else "eager")
    return SelfieSegmentation(net, name, fast=fast)
