"""Read a `.tflite` file into a plain description of its graph: tensors, ops, constant weights.

The `tflite` package gives flatbuffer accessors; this module turns them into small frozen
dataclasses so the PyTorch builder (`selfie.py`) never touches flatbuffers. Along the way:

- fp16 constants behind DEQUANTIZE ops are folded into fp32 constants (fp16 -> fp32 is exact),
  and those DEQUANTIZE ops disappear from the op list;
- builtin options are decoded into dicts with readable values ("SAME", "RELU", ...);
- the CUSTOM op `Convolution2DTransposeBias` (MediaPipe's) gets its options decoded from the raw
  12-byte struct {int32 padding, stride_w, stride_h}, padding in TfLitePadding's C enum.

Anything unreadable raises ModelError with one line that says what to do.
"""

from __future__ import annotations

import logging
import os
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .base import ModelError

logger = logging.getLogger(__name__)

TRANSPOSE_CONV_BIAS = "Convolution2DTransposeBias"

_TENSOR_DTYPES: dict[str, np.dtype] = {
    "FLOAT32": np.dtype("<f4"), "FLOAT16": np.dtype("<f2"), "FLOAT64": np.dtype("<f8"),
    "INT32": np.dtype("<i4"), "INT64": np.dtype("<i8"), "INT16": np.dtype("<i2"),
    "INT8": np.dtype("i1"), "UINT8": np.dtype("u1"), "BOOL": np.dtype("?"),
}
# TfLitePadding in the C API (custom options use it): 0 unknown, 1 SAME, 2 VALID.
_C_PADDING = {1: "SAME", 2: "VALID"}


@dataclass(frozen=True)
class TensorInfo:
    """One tensor of the graph. `data` is set for constants (fp16 already widened to fp32)."""

    index: int
    name: str
    shape: tuple[int, ...]
    dtype: np.dtype
    data: np.ndarray | None = field(default=None, compare=False, repr=False)

    @property
    def is_constant(self) -> bool:
        return self.data is not None


@dataclass(frozen=True)
class OpInfo:
    """One op: `kind` is the builtin name (e.g. "CONV_2D") or the custom op's code."""

    index: int
    kind: str
    inputs: tuple[int, ...]   # tensor indices; -1 marks an omitted optional input
    outputs: tuple[int, ...]
    options: dict[str, Any]
    custom: bool = False


@dataclass(frozen=True)
class TFLiteGraph:
    """The single subgraph of a .tflite model, in execution order."""

    source: str
    tensors: tuple[TensorInfo, ...]
    ops: tuple[OpInfo, ...]
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]

    def constant(self, index: int) -> np.ndarray:
        """Value of a constant tensor; raises ModelError if the tensor is computed at run time."""
        data = self.tensors[index].data
        if data is None:
            raise ModelError(f"{self.source}: tensor {self.tensors[index].name!r} is expected to be a "
                             f"constant but is computed at run time: this is not a supported model file")
        return data


def _enum_names(enum_class: type) -> dict[int, str]:
    return {value: name for name, value in vars(enum_class).items()
            if not name.startswith("_") and isinstance(value, int)}


def read_tflite(path: str | os.PathLike) -> TFLiteGraph:
    """Parse `path` into a TFLiteGraph.

    Raises:
        ModelError: the file is missing, is not a TFLite model, or is truncated/corrupt.
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ModelError(f"cannot read the model file {path} ({exc.strerror}): pass a readable .tflite "
                         f"file, or run `make weights` for the cached ones") from exc
    # Every TFLite flatbuffer carries the file identifier "TFL3" at bytes 4..8.
    if len(raw) < 8 or raw[4:8] != b"TFL3":
        raise ModelError(f"{path} is not a TFLite model (no TFL3 identifier): pass a .tflite file "
                         f"(`make weights` caches MediaPipe's)")
    try:
        graph = _parse(raw, str(path))
    except ModelError:
        raise
    except Exception as exc:  # flatbuffers raises anything from IndexError to struct.error on bad bytes
        raise ModelError(f"{path} is a corrupt TFLite model ({type(exc).__name__}: {exc}): pass an intact "
                         f".tflite file (`make weights` caches MediaPipe's)") from exc
    logger.debug("read %s: %d ops, %d tensors", path, len(graph.ops), len(graph.tensors))
    return graph


def _parse(raw: bytes, source: str) -> TFLiteGraph:
    import tflite  # pure-Python flatbuffer accessors; only needed while loading

    model = tflite.Model.GetRootAs(raw, 0)
    if model.SubgraphsLength() != 1:
        raise ModelError(f"{source} has {model.SubgraphsLength()} subgraphs; only single-graph models "
                         f"are supported: use the MediaPipe selfie-segmentation files")
    subgraph = model.Subgraphs(0)
    type_names = _enum_names(tflite.TensorType)
    op_names = _enum_names(tflite.BuiltinOperator)

    tensors: list[TensorInfo] = []
    for i in range(subgraph.TensorsLength()):
        tensor = subgraph.Tensors(i)
        type_name = type_names.get(tensor.Type(), str(tensor.Type()))
        dtype = _TENSOR_DTYPES.get(type_name, np.dtype("V1"))
        shape = tuple(int(d) for d in tensor.ShapeAsNumpy()) if not tensor.ShapeIsNone() else ()
        data = _buffer_array(model, raw, tensor.Buffer(), dtype, shape, source, tensor.Name())
        tensors.append(TensorInfo(i, (tensor.Name() or b"").decode("utf-8", "replace"), shape, dtype, data))

    ops: list[OpInfo] = []
    for i in range(subgraph.OperatorsLength()):
        op = subgraph.Operators(i)
        code = model.OperatorCodes(op.OpcodeIndex())
        # Old files store the code in the deprecated int8 field; new ones in the int32 field.
        builtin = max(code.BuiltinCode(), code.DeprecatedBuiltinCode())
        kind = op_names.get(builtin, f"BUILTIN_{builtin}")
        inputs = tuple(int(t) for t in op.InputsAsNumpy()) if op.InputsLength() else ()
        outputs = tuple(int(t) for t in op.OutputsAsNumpy()) if op.OutputsLength() else ()
        if kind == "CUSTOM":
            custom_code = (code.CustomCode() or b"").decode("utf-8", "replace")
            raw_options = op.CustomOptionsAsNumpy().tobytes() if op.CustomOptionsLength() else b""
            ops.append(OpInfo(i, custom_code, inputs, outputs,
                              _custom_options(custom_code, raw_options, source), custom=True))
        else:
            ops.append(OpInfo(i, kind, inputs, outputs, _builtin_options(tflite, kind, op)))

    graph_inputs = tuple(int(t) for t in subgraph.InputsAsNumpy())
    graph_outputs = tuple(int(t) for t in subgraph.OutputsAsNumpy())
    referenced = [t for op in ops for t in op.inputs + op.outputs] + list(graph_inputs + graph_outputs)
    if any(not -1 <= t < len(tensors) for t in referenced):
        raise ModelError(f"{source} refers to tensors that do not exist: the file is corrupt: pass an "
                         f"intact .tflite file")
    tensors, ops = _fold_dequantize(tensors, ops)
    return TFLiteGraph(source, tuple(tensors), tuple(ops), graph_inputs, graph_outputs)


def _buffer_array(model: Any, raw: bytes, buffer_index: int, dtype: np.dtype, shape: tuple[int, ...],
                  source: str, name: bytes | None) -> np.ndarray | None:
    """The constant stored in buffer `buffer_index`, or None (buffer 0 / empty = computed tensor)."""
    if buffer_index <= 0:
        return None
    buffer = model.Buffers(buffer_index)
    if buffer.Offset() > 1:  # large models keep data after the flatbuffer, addressed by offset
        data = raw[buffer.Offset():buffer.Offset() + buffer.Size()]
    elif buffer.DataLength():
        data = buffer.DataAsNumpy().tobytes()
    else:
        return None
    count = int(np.prod(shape)) if shape else 1
    if dtype.kind == "V" or len(data) != count * dtype.itemsize:
        raise ModelError(f"{source}: constant {(name or b'').decode('utf-8', 'replace')!r} holds "
                         f"{len(data)} bytes for shape {shape}: the file is corrupt: pass an intact "
                         f".tflite file")
    return np.frombuffer(data, dtype=dtype).reshape(shape).copy()


def _builtin_options(tflite: Any, kind: str, op: Any) -> dict[str, Any]:
    table = op.BuiltinOptions()
    paddings = _enum_names(tflite.Padding)
    activations = _enum_names(tflite.ActivationFunctionType)

    def read(options_class: type) -> Any:
        options = options_class()
        if table is not None:
            options.Init(table.Bytes, table.Pos)
        return options

    if kind == "CONV_2D":
        o = read(tflite.Conv2DOptions)
        return {"padding": paddings[o.Padding()], "stride": (o.StrideH(), o.StrideW()),
                "dilation": (o.DilationHFactor(), o.DilationWFactor()),
                "activation": activations[o.FusedActivationFunction()]}
    if kind == "DEPTHWISE_CONV_2D":
        o = read(tflite.DepthwiseConv2DOptions)
        return {"padding": paddings[o.Padding()], "stride": (o.StrideH(), o.StrideW()),
                "dilation": (o.DilationHFactor(), o.DilationWFactor()),
                "depth_multiplier": o.DepthMultiplier(),
                "activation": activations[o.FusedActivationFunction()]}
    if kind in ("AVERAGE_POOL_2D", "MAX_POOL_2D"):
        o = read(tflite.Pool2DOptions)
        return {"padding": paddings[o.Padding()], "stride": (o.StrideH(), o.StrideW()),
                "filter": (o.FilterHeight(), o.FilterWidth()),
                "activation": activations[o.FusedActivationFunction()]}
    if kind in ("ADD", "MUL", "SUB"):
        o = read({"ADD": tflite.AddOptions, "MUL": tflite.MulOptions, "SUB": tflite.SubOptions}[kind])
        return {"activation": activations[o.FusedActivationFunction()]}
    if kind == "RESIZE_BILINEAR":
        o = read(tflite.ResizeBilinearOptions)
        return {"align_corners": bool(o.AlignCorners()), "half_pixel_centers": bool(o.HalfPixelCenters())}
    if kind == "MEAN":
        return {"keep_dims": bool(read(tflite.ReducerOptions).KeepDims())}
    return {}


def _custom_options(code: str, raw_options: bytes, source: str) -> dict[str, Any]:
    if code != TRANSPOSE_CONV_BIAS:
        return {"raw": raw_options}
    # MediaPipe writes a bare C struct (not a flexbuffer): {TfLitePadding, stride_width, stride_height}.
    if len(raw_options) != 12:
        raise ModelError(f"{source}: {code} options are {len(raw_options)} bytes, expected 12: the file is "
                         f"corrupt: pass an intact .tflite file")
    padding, stride_w, stride_h = struct.unpack("<iii", raw_options)
    if padding not in _C_PADDING or stride_w < 1 or stride_h < 1:
        raise ModelError(f"{source}: {code} options {{padding={padding}, stride={stride_w}x{stride_h}}} are "
                         f"invalid: the file is corrupt: pass an intact .tflite file")
    return {"padding": _C_PADDING[padding], "stride": (stride_h, stride_w)}


def _fold_dequantize(tensors: list[TensorInfo], ops: list[OpInfo]) -> tuple[list[TensorInfo], list[OpInfo]]:
    """Replace DEQUANTIZE(const fp16) by an fp32 constant; fp16 -> fp32 is exact."""
    kept: list[OpInfo] = []
    for op in ops:
        if op.kind == "DEQUANTIZE" and len(op.inputs) == 1 and len(op.outputs) == 1:
            source = tensors[op.inputs[0]]
            if source.data is not None and source.dtype == np.float16:
                out = tensors[op.outputs[0]]
                tensors[out.index] = TensorInfo(out.index, out.name, out.shape, np.dtype("<f4"),
                                                source.data.astype(np.float32))
                continue
        kept.append(op)
    return tensors, kept
