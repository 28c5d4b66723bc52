"""Graph fusion for the selfie models: chains of TFLite ops built as one torch step.

`fuse_at` looks at one op of the graph and, when it and the ops after it form a pattern a single
step computes (a conv and its activation, a conv and its residual add, the squeeze-excite gate,
an upsampling before a 1x1 conv, the final transposed conv and sigmoid), returns that step. The
steps themselves are in selfie_steps.py; SelfieNet (selfie_net.py) calls this while it builds.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable

from torch import nn

from segmenter.kernels import ACTIVATIONS
from segmenter.kernels import load as load_kernels

from .selfie_steps import (DepthwiseKernel, GatedAdd, GatedPointwise, IN_PLACE_ACTIVATIONS, InPlace, Mean,
                           Pointwise, PointwiseThenResize, SqueezeExciteKernel, TransposeConvSigmoid,
                           upsample_after)
from .tflite_graph import TRANSPOSE_CONV_BIAS, OpInfo, TFLiteGraph

MASK_HEAD_BUILDS = ("avx512", "avx2")   # kernel builds whose mask head beats torch's (measured)

if TYPE_CHECKING:
    from .selfie_net import SelfieNet


def readers_of(graph: TFLiteGraph) -> dict[int, list[int]]:
    """Tensor index -> positions (in graph.ops) of the ops reading it; -1 for the graph output."""
    readers: dict[int, list[int]] = {}
    for pos, op in enumerate(graph.ops):
        for t in set(op.inputs):
            readers.setdefault(t, []).append(pos)
    for t in graph.outputs:
        readers.setdefault(t, []).append(-1)
    return readers


def _upsamples(graph: TFLiteGraph, resize: OpInfo) -> bool:
    in_shape, out_shape = graph.tensors[resize.inputs[0]].shape, graph.tensors[resize.outputs[0]].shape
    return out_shape[1] >= in_shape[1] and out_shape[2] >= in_shape[2]


def fuse_at(net: "SelfieNet", graph: TFLiteGraph, pos: int,
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
    if net.kernels and op.kind == "ADD" and op.options["activation"] == "NONE" and after is not None \
            and after.kind in ("MEAN", "AVERAGE_POOL_2D"):
        # The decoder's skip ADD read only by a squeeze-excite pool: the gate kernel sums the two maps.
        first, second = op.inputs[:2]
        conv_pos = only_reader(after.outputs[0])
        if conv_pos is not None and graph.ops[conv_pos].kind == "CONV_2D" and first != second \
                and not graph.tensors[first].is_constant and not graph.tensors[second].is_constant \
                and computed_before(first) and computed_before(second) \
                and tuple(graph.tensors[first].shape) == tuple(graph.tensors[second].shape) \
                == tuple(graph.tensors[op.outputs[0]].shape):
            squeeze = _squeeze_excite(net, graph, after, conv_pos, only_reader)
            if squeeze is not None:
                step, _, gate, absorbed = squeeze
                return step, [first, second], gate, [nxt] + absorbed
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
        # holocam.mask_head pays on the vector builds only: the SSE2 one runs it slower than torch's
        # GEMM (2.64 vs 2.58 ms a landscape mask; avx2 1.17 vs 1.20, avx512 1.13 vs 1.19).
        kernel = net.kernels and load_kernels() in MASK_HEAD_BUILDS
        return (TransposeConvSigmoid(weight, bias, plain.stride, kernel=kernel), [op.inputs[0]],
                after.outputs[0], [nxt])
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
                return GatedAdd(kernel=net.kernels), [x, gate, other], after.outputs[0], [nxt]
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
