"""MediaPipe selfie segmentation (general 256x256, landscape 144x256) as a PyTorch module.

The network is built from the `.tflite` file itself (see `tflite_graph.py`): each TFLite op
becomes a small torch step (`selfie_steps.py`), tensors are kept NCHW (channels_last in memory on
the fast path), and this file builds, fuses and loads the graph of steps.
Details that matter for parity with TFLite (tests/segmenter/test_selfie_parity.py proves them):

- TF "SAME" padding is asymmetric on stride-2 convs (the extra row/column goes after); symmetric
  torch padding gives plausible but wrong masks.
- RESIZE_BILINEAR uses half-pixel centres, which is torch's `align_corners=False`.
- The CUSTOM op Convolution2DTransposeBias is a transposed conv with bias, weights OHWI.
- The graph ends in LOGISTIC: the output is already a probability.

Speed: the fast path is the fused graph (`SelfieNet(fuse=True)`, see `_fuse`) traced and frozen,
channels-last throughout. With the fused NHWC kernels (segmenter/kernels) the depthwise and 1x1
convs, the first conv on the uint8 frame, the 2x upsamplings and the squeeze-excite gates run as
torch.ops.holocam.* ops; `load_selfie` times them against stock ops on the model and keeps the
faster (segmenter/kernels/calibrate.py). What each step bought, and what was tried and dropped:
docs/model-performance.md; current figures: bench/results/model.json and kernels.md.

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

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from segmenter.kernels import ACTIVATIONS
from segmenter.kernels import calibrate as calibration
from segmenter.kernels import load as load_kernels
from segmenter.kernels import setting as kernel_setting

from .base import InputSpec, ModelError, SegmentationModel
from .selfie_steps import (Binary, Conv, DepthwiseKernel, FrameConvKernel, GatedAdd, GatedPointwise,
                           IN_PLACE_ACTIVATIONS, InPlace, Mean, Pointwise, PointwiseThenResize,
                           Resize, SqueezeExciteKernel, TransposeConv, TransposeConvSigmoid, Unary,
                           upsample_after)
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


def _upsamples(graph: TFLiteGraph, resize: OpInfo) -> bool:
    in_shape, out_shape = graph.tensors[resize.inputs[0]].shape, graph.tensors[resize.outputs[0]].shape
    return out_shape[1] >= in_shape[1] and out_shape[2] >= in_shape[2]


def _nchw(array: np.ndarray) -> torch.Tensor:
    """A constant operand in TFLite's NHWC layout, as an NCHW tensor."""
    tensor = torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))
    if tensor.dim() == 4:
        return tensor.permute(0, 3, 1, 2).contiguous()
    if tensor.dim() <= 1:
        return tensor.reshape(1, -1, 1, 1) if tensor.numel() > 1 else tensor.reshape(())
    raise ModelError(f"constant operand of shape {tuple(array.shape)} is not supported")


def _readers(graph: TFLiteGraph) -> dict[int, list[int]]:
    """Tensor index -> positions (in graph.ops) of the ops reading it; -1 for the graph output."""
    readers: dict[int, list[int]] = {}
    for pos, op in enumerate(graph.ops):
        for t in set(op.inputs):
            readers.setdefault(t, []).append(pos)
    for t in graph.outputs:
        readers.setdefault(t, []).append(-1)
    return readers


def _fuse(net: "SelfieNet", graph: TFLiteGraph, pos: int,
          readers: dict[int, list[int]]) -> tuple[nn.Module, list[int], int, list[int]] | None:
    """One fused step starting at graph.ops[pos], or None to build the op alone.

    Returns (step, input tensors, output tensor, positions of the later ops it absorbed). An op is
    absorbed only when it is the single reader of the tensor before it, so no other op needs the
    intermediate tensor the fused step never materialises.
    """
    op = graph.ops[pos]

    def only_reader(tensor: int) -> int | None:
        positions = readers.get(tensor, [])
        return positions[0] if len(positions) == 1 and positions[0] > pos else None

    def computed_before(tensor: int) -> bool:
        return tensor in graph.inputs or any(tensor in e.outputs for e in graph.ops[:pos])

    nxt = only_reader(op.outputs[0])
    after = graph.ops[nxt] if nxt is not None else None
    if net.kernels and op.kind in ("MEAN", "AVERAGE_POOL_2D") and after is not None and after.kind == "CONV_2D":
        squeeze = _squeeze_excite(net, graph, op, nxt, only_reader)
        if squeeze is not None:
            return squeeze
    if op.kind == "DEPTHWISE_CONV_2D" and op.options["activation"] == "NONE" and after is not None \
            and after.kind in IN_PLACE_ACTIVATIONS:
        add_pos = only_reader(after.outputs[0])
        add = graph.ops[add_pos] if add_pos is not None else None
        step = net._conv(graph, op)
        if isinstance(step, DepthwiseKernel) and add is not None and add.kind == "ADD" \
                and add.options["activation"] == "NONE" and sorted(add.inputs[:2]) == sorted((op.inputs[0], after.outputs[0])) \
                and tuple(graph.tensors[op.inputs[0]].shape) == tuple(graph.tensors[add.outputs[0]].shape):
            step.fuse_activation(after.kind)
            step.add_input = True     # x + act(depthwise(x)) in one pass
            return step, [op.inputs[0]], add.outputs[0], [nxt, add_pos]
    if op.kind in ("CONV_2D", "DEPTHWISE_CONV_2D") and op.options["activation"] == "NONE" \
            and after is not None and after.kind in IN_PLACE_ACTIVATIONS:
        step = net._conv(graph, op)
        if not (hasattr(step, "fuse_activation") and step.fuse_activation(after.kind)):
            step.activation = InPlace(after.kind)   # the conv's output is fresh: overwrite it
        return step, [op.inputs[0]], after.outputs[0], [nxt]
    if op.kind == "CONV_2D" and op.options["activation"] == "NONE" and after is not None and after.kind == "ADD" \
            and after.options["activation"] in ACTIVATIONS:
        # conv(x) + other in one kernel pass (the residual add of an inverted-residual block).
        step = net._conv(graph, op)
        other = after.inputs[1] if after.inputs[0] == op.outputs[0] else after.inputs[0]
        if isinstance(step, Pointwise) and step.kernel and other != op.outputs[0] \
                and not graph.tensors[other].is_constant and computed_before(other) \
                and tuple(graph.tensors[other].shape) == tuple(graph.tensors[after.outputs[0]].shape):
            step.residual = True
            step.fuse_activation(after.options["activation"])
            return step, [op.inputs[0], other], after.outputs[0], [nxt]
    if op.kind in IN_PLACE_ACTIVATIONS and op.inputs[0] not in graph.inputs and readers.get(op.inputs[0]) == [pos]:
        return InPlace(op.kind), [op.inputs[0]], op.outputs[0], []
    if op.kind == TRANSPOSE_CONV_BIAS and after is not None and after.kind == "LOGISTIC":
        plain = net._transpose_conv(graph, op)   # validates the op
        weight, bias = graph.constant(op.inputs[1]), graph.constant(op.inputs[2])
        return TransposeConvSigmoid(weight, bias, plain.stride), [op.inputs[0]], after.outputs[0], [nxt]
    if op.kind == "RESIZE_BILINEAR" and after is not None and after.kind == "CONV_2D":
        resize, _ = net._build(graph, op)      # validates the resize
        step = net._conv(graph, after)
        if isinstance(step, Pointwise) and upsample_after(step, resize) and _upsamples(graph, op):
            return PointwiseThenResize(step, resize), [op.inputs[0]], after.outputs[0], [nxt]
    if op.kind == "MUL" and op.options["activation"] == "NONE" and after is not None:
        a, b = op.inputs[:2]
        shape_a, shape_b = graph.tensors[a].shape, graph.tensors[b].shape
        if graph.tensors[a].is_constant or graph.tensors[b].is_constant or len(shape_a) != 4:
            return None
        if tuple(shape_b[1:3]) == (1, 1) and tuple(shape_a[1:3]) != (1, 1):
            x, gate = a, b
        elif tuple(shape_a[1:3]) == (1, 1) and tuple(shape_b[1:3]) != (1, 1):
            x, gate = b, a
        else:
            return None
        resize, conv_pos = None, nxt
        if after.kind == "RESIZE_BILINEAR":
            conv_pos = only_reader(after.outputs[0])
            if conv_pos is None:
                return None
            resize, _ = net._build(graph, after)
        conv_op = graph.ops[conv_pos]
        if conv_op.kind == "CONV_2D":
            step = net._conv(graph, conv_op)
            if isinstance(step, Pointwise):
                upsampling = _upsamples(graph, after) if resize is not None else False
                absorbed = [nxt] + ([conv_pos] if resize is not None else [])
                gated = GatedPointwise(step, resize, resize_last=upsampling)
                add_pos = only_reader(conv_op.outputs[0])
                add = graph.ops[add_pos] if add_pos is not None else None
                if resize is None and step.kernel and not step.has_activation and add is not None \
                        and add.kind == "ADD" and add.options["activation"] in ACTIVATIONS:
                    # conv(x * gate) + other in one kernel pass (the squeeze-excite block's residual).
                    other = add.inputs[1] if add.inputs[0] == conv_op.outputs[0] else add.inputs[0]
                    if other != conv_op.outputs[0] and not graph.tensors[other].is_constant \
                            and computed_before(other) \
                            and tuple(graph.tensors[other].shape) == tuple(graph.tensors[add.outputs[0]].shape):
                        step.residual = True
                        step.fuse_activation(add.options["activation"])
                        return gated, [x, gate, other], add.outputs[0], absorbed + [add_pos]
                return gated, [x, gate], conv_op.outputs[0], absorbed
            return None
        if after.kind == "ADD" and after.options["activation"] == "NONE":
            other = after.inputs[1] if after.inputs[0] == op.outputs[0] else after.inputs[0]
            if other != op.outputs[0] and not graph.tensors[other].is_constant and computed_before(other) \
                    and tuple(graph.tensors[other].shape) == tuple(graph.tensors[after.outputs[0]].shape):
                return GatedAdd(), [x, gate, other], after.outputs[0], [nxt]
    return None


def _squeeze_excite(net: "SelfieNet", graph: TFLiteGraph, pool_op: OpInfo, conv_pos: int,
                    only_reader: Callable[[int], int | None]) -> tuple[nn.Module, list[int], int, list[int]] | None:
    """global pool -> CONV_2D [-> RELU] -> CONV_2D -> LOGISTIC on the pooled vector as one
    SqueezeExciteKernel, when the chain is exactly that (each op the single reader of the last)."""
    pool, _ = net._build(graph, pool_op)          # validates: global pooling only
    first = graph.ops[conv_pos]
    chain, relu = [conv_pos], first.options["activation"] == "RELU"
    pos = only_reader(first.outputs[0])
    if first.options["activation"] == "NONE" and pos is not None and graph.ops[pos].kind == "RELU":
        chain.append(pos)
        relu = True
        pos = only_reader(graph.ops[pos].outputs[0])
    if first.options["activation"] not in ("NONE", "RELU") or pos is None:
        return None
    second = graph.ops[pos]
    sigmoid_pos = only_reader(second.outputs[0]) if second.kind == "CONV_2D" else None
    if sigmoid_pos is None or second.options["activation"] != "NONE" or graph.ops[sigmoid_pos].kind != "LOGISTIC":
        return None
    reduce, expand = net._conv(graph, first), net._conv(graph, second)
    if not (isinstance(pool, Mean) and pool.dims == (2, 3) and isinstance(reduce, Pointwise) and reduce.on_vector
            and isinstance(expand, Pointwise) and expand.on_vector):
        return None
    return (SqueezeExciteKernel(reduce, relu, expand), [pool_op.inputs[0]], graph.ops[sigmoid_pos].outputs[0],
            chain + [pos, sigmoid_pos])


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
        readers = _readers(graph)
        for pos, op in enumerate(graph.ops):
            if pos in absorbed:
                continue
            fused = _fuse(self, graph, pos, readers) if fuse else None
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
        padding, measured 447 -> 294 us (divide, 4x4 zero-tap kernel) for the general model.
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
