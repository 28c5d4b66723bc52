"""SelfieNet: a MediaPipe selfie-segmentation .tflite graph rebuilt from torch steps.

Each TFLite op becomes a small torch step (selfie_steps.py), or several ops one fused step
(selfie_fusion.py); tensors are kept NCHW (channels_last in memory on the fast path). Details that
matter for parity with TFLite (tests/segmenter/test_selfie_parity.py proves them):

- TF "SAME" padding is asymmetric on stride-2 convs (the extra row/column goes after); symmetric
  torch padding gives plausible but wrong masks.
- RESIZE_BILINEAR uses half-pixel centres, which is torch's `align_corners=False`.
- The CUSTOM op Convolution2DTransposeBias is a transposed conv with bias, weights OHWI.
- The graph ends in LOGISTIC: the output is already a probability.

One job, building the network from the graph, which is why this file is over 300 lines: every
TFLite op kind the models use is translated and checked here.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from segmenter.kernels import ACTIVATIONS

from .base import ModelError
from .selfie_fusion import fuse_at, readers_of
from .selfie_steps import (Binary, Conv, DepthwiseKernel, FrameConvKernel, InPlace, Mean, Pointwise, Resize,
                           TransposeConv, Unary)
from .tflite_graph import TRANSPOSE_CONV_BIAS, OpInfo, TFLiteGraph

# NHWC axis -> NCHW dim, for reductions written against TFLite's layout.
_NHWC_TO_NCHW = {0: 0, 1: 2, 2: 3, 3: 1, -1: 1, -2: 3, -3: 2, -4: 0}


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

    def __init__(self, graph: TFLiteGraph, fuse: bool = False, kernels: bool = False) -> None:
        super().__init__()
        # The fused NHWC kernels (segmenter.kernels) replace depthwise and 1x1 convs; fuse only.
        self.kernels = fuse and kernels
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
        self.step_ops: list[OpInfo] = []
        for op in graph.ops:
            if len(op.outputs) != 1:
                raise ModelError(f"{graph.source}: op {op.kind} #{op.index} has {len(op.outputs)} outputs")
        absorbed: set[int] = set()
        readers = readers_of(graph)
        for pos, op in enumerate(graph.ops):
            if pos in absorbed:
                continue
            fused = fuse_at(self, graph, pos, readers) if fuse else None
            if fused is not None:
                step, inputs, out, taken = fused
                absorbed.update(taken)
            else:
                (step, inputs), out = self._build(graph, op), op.outputs[0]
            self.steps.append(step)
            self.step_inputs.append(inputs)
            self.step_outputs.append(out)
            self.step_ops.append(op)
        # How `prepare` turns uint8 RGB into the network's input: MediaPipe's x / 255, unless the
        # first conv absorbed the scale and wants its trailing SAME padding already in place.
        self.input_divisor: float | None = 255.0
        self.input_pad = (0, 0)   # zero rows after the bottom, columns after the right
        self.input_raw = False    # the first step takes the uint8 NHWC frame (holocam.conv_u8)
        if fuse:
            self._fold_input_conv(graph, readers)
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

    def _fold_input_conv(self, graph: TFLiteGraph, readers: dict[int, list[int]]) -> None:
        """Fold rgb/255 into the first conv's weights and take its padding from `prepare`.

        TF SAME pads a stride-2 conv on an even size only after the last row and column; padding
        the small uint8 frame there (in `prepare`) lets the conv run with its own 3x3 kernel and no
        padding, cheaper than a separate divide and a 4x4 zero-tap kernel (docs/model-performance.md).
        """
        op, step = self.step_ops[0], self.steps[0]
        if op.kind != "CONV_2D" or readers.get(self.input_index) != [0] or not isinstance(step, Conv) \
                or op.options["dilation"] != (1, 1) or step.pad is not None:
            return
        weight = torch.from_numpy(graph.constant(op.inputs[1]).transpose(0, 3, 1, 2).copy()) / 255.0
        _, kh, kw, _ = graph.constant(op.inputs[1]).shape
        stride = op.options["stride"]
        if op.options["padding"] == "SAME":
            top, bottom = _same_padding(self.height, kh, stride[0], 1)
            left, right = _same_padding(self.width, kw, stride[1], 1)
        else:
            top = bottom = left = right = 0
        if step.activation is None:
            kind = "NONE"
        else:
            kind = step.activation.kind if isinstance(step.activation, InPlace) else op.options["activation"]
        if self.kernels and stride[0] == stride[1] and kind in ACTIVATIONS:
            _, out_h, out_w, _ = graph.tensors[op.outputs[0]].shape
            bias = step.conv.bias.detach() if step.conv.bias is not None else torch.zeros(weight.shape[0])
            self.steps[0] = FrameConvKernel(weight.permute(2, 3, 1, 0).contiguous(), bias, stride[0], top, left,
                                             (out_h, out_w), kind)
            self.input_divisor, self.input_raw = None, True
            return
        if top or left:
            return
        conv = nn.Conv2d(weight.shape[1], weight.shape[0], (kh, kw), stride=stride, bias=step.conv.bias is not None)
        with torch.no_grad():
            conv.weight.copy_(weight)
            if step.conv.bias is not None:
                conv.bias.copy_(step.conv.bias)
        self.steps[0] = Conv(conv, None, step.activation)
        self.input_divisor, self.input_pad = None, (bottom, right)

    def prepare(self, rgb: torch.Tensor) -> torch.Tensor:
        """uint8 (1, H, W, 3) RGB -> this network's input (float, NCHW view of channels-last memory).

        With the fused kernels the first conv reads the uint8 frame itself: it goes in unchanged.
        """
        if self.input_raw:
            return rgb
        if self.input_pad != (0, 0):
            rgb = F.pad(rgb, (0, 0, 0, self.input_pad[1], 0, self.input_pad[0]))
        # permute of an NHWC tensor is a channels_last NCHW view: no copy, and the convs run
        # channels-last from the first layer on. x/255 as in MediaPipe (and the parity tests).
        x = rgb.permute(0, 3, 1, 2).float()
        return x / self.input_divisor if self.input_divisor is not None else x

    def _check_dataflow(self, graph: TFLiteGraph) -> None:
        ready = {self.input_index}
        for op, inputs, out in zip(self.step_ops, self.step_inputs, self.step_outputs):
            missing = [t for t in inputs if t not in ready]
            if missing:
                raise ModelError(f"{graph.source}: op {op.kind} #{op.index} reads tensor {missing[0]} "
                                 f"before it is computed: the file is corrupt")
            ready.add(out)
        if self.output_index not in ready:
            raise ModelError(f"{graph.source}: no op computes the output tensor: the file is corrupt")

    def _check_shapes(self, graph: TFLiteGraph) -> None:
        """Run zeros through every step once: each output must have the graph's (NHWC) shape."""
        values = {self.input_index: self.prepare(torch.zeros((1, self.height, self.width, 3), dtype=torch.uint8))}
        with torch.inference_mode():
            for step, op, inputs, out in zip(self.steps, self.step_ops, self.step_inputs, self.step_outputs):
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
                return Binary(kind, _nchw(graph.constant(constant)), act), [activation_input]
            return Binary(kind, None, act), [a, b]
        if kind == "RELU":
            return Unary(F.relu), [first]
        if kind == "RELU6":
            return Unary(F.relu6), [first]
        if kind == "HARD_SWISH":
            return Unary(F.hardswish), [first]
        if kind == "LOGISTIC":
            return Unary(torch.sigmoid), [first]
        if kind == "MEAN":
            axes = tuple(int(a) for a in np.atleast_1d(graph.constant(op.inputs[1])))
            if not op.options.get("keep_dims") or len(in_shape) != 4:
                raise ModelError(f"{source}: MEAN #{op.index} without keep_dims on 4-D input "
                                 f"is not supported")
            return Mean(tuple(sorted(_NHWC_TO_NCHW[a] for a in axes))), [first]
        if kind == "AVERAGE_POOL_2D":
            # Only global pooling (one window covering the input, no padding) occurs in these models.
            fh, fw = op.options["filter"]
            if (fh, fw) != (in_shape[1], in_shape[2]) or tuple(out_shape[1:3]) != (1, 1):
                raise ModelError(f"{source}: AVERAGE_POOL_2D #{op.index} is not a global pooling: "
                                 f"not supported")
            if op.options["activation"] != "NONE":
                raise ModelError(f"{source}: AVERAGE_POOL_2D with a fused activation is not supported")
            return Mean((2, 3)), [first]
        if kind == "RESIZE_BILINEAR":
            if op.options["half_pixel_centers"] == op.options["align_corners"]:
                raise ModelError(f"{source}: RESIZE_BILINEAR #{op.index} with align_corners="
                                 f"{op.options['align_corners']} and half_pixel_centers="
                                 f"{op.options['half_pixel_centers']} has no torch equivalent")
            doubles = (out_shape[1], out_shape[2]) == (2 * in_shape[1], 2 * in_shape[2])
            return Resize((out_shape[1], out_shape[2]), op.options["align_corners"],
                           kernel=self.kernels and doubles and not op.options["align_corners"]), [first]
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
            return Pointwise(torch.from_numpy(np.ascontiguousarray(torch_weight[:, :, 0, 0])),
                              torch.from_numpy(bias) if bias is not None else None, activation,
                              on_vector=(in_h, in_w) == (1, 1), activation_name=opts["activation"],
                              kernel=self.kernels)
        if self.kernels and op.kind == "DEPTHWISE_CONV_2D" and opts["depth_multiplier"] == 1 \
                and dilation == (1, 1) and stride[0] == stride[1]:
            _, out_h, out_w, _ = graph.tensors[op.outputs[0]].shape
            return DepthwiseKernel(weight, bias, stride[0], top, left, (out_h, out_w), opts["activation"])
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
        return Conv(conv, pad, activation)

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
        return TransposeConv(weight, bias, sh)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        values: dict[int, torch.Tensor] = {self.input_index: x}
        for step, inputs, out, release in zip(self.steps, self.step_inputs, self.step_outputs,
                                              self.release_after):
            values[out] = step(*[values[t] for t in inputs])
            for t in release:
                del values[t]
        return values[self.output_index]
