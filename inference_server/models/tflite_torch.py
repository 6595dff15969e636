"""TFLite → PyTorch: the MediaPipe landmark networks shipped in the mediapipe wheel, as batched torch modules.

May import torch, numpy and the flatbuffer schema that ships inside the mediapipe wheel
(``mediapipe/tasks/metadata/schema_py_generated.py``, which needs the ``flatbuffers`` package). Never bpy. Needs no
GPU: a model runs on whatever torch device it is loaded onto, and exports to ONNX (``torch.onnx.export`` with
``dynamo=False``, opset 17, dynamic batch).

How a .tflite file becomes a module:

1. The flatbuffer is unpacked with the schema's object API (subgraph 0 only).
2. Constant tensors are read from their buffers; sparse ones (TFLite ``SparsityParameters``) are decoded by
   :func:`densify`; ``DEQUANTIZE`` (fp16 or int8 weights) and ``DENSIFY`` are folded into float32 constants, and so
   is any other operator whose inputs are all constant.
3. Every remaining operator becomes a small ``nn.Module`` holding its folded weights as buffers. Unknown operators
   fail at load time with :class:`UnsupportedOpError`, naming all of them at once.

Layout rule: inside the model every rank-4 tensor is NCHW (torch's conv layout); tensors of any other rank are kept
exactly as TFLite lays them out. Ops whose meaning depends on axis order (RESHAPE, MEAN, FULLY_CONNECTED, ...) view
their input in the TFLite layout first. The model's input and outputs use the TFLite shapes (NHWC) with a free batch
dimension. The value range of the input is the one the MediaPipe graphs feed (see ``INPUT_RANGE``).
"""
from __future__ import annotations

import dataclasses
import functools
import importlib.util
import pathlib
from collections import Counter
from typing import Any, Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from inference_server import protocol

# The networks of the mediapipe 0.10.21 wheel, relative to mediapipe/modules/.
MODEL_FILES: dict[str, str] = {
    "palm_detection_full": "palm_detection/palm_detection_full.tflite",
    "hand_landmark_full": "hand_landmark/hand_landmark_full.tflite",
    "pose_detection": "pose_detection/pose_detection.tflite",
    "pose_landmark_full": "pose_landmark/pose_landmark_full.tflite",
}

# Input value range each network expects (ImageToTensorCalculator's output_tensor_float_range in MediaPipe's graphs).
INPUT_RANGE: dict[str, tuple[float, float]] = {
    "palm_detection_full": (0.0, 1.0),
    "hand_landmark_full": (0.0, 1.0),
    "pose_detection": (-1.0, 1.0),
    "pose_landmark_full": (0.0, 1.0),
}

_REINSTALL_FIX = ("reinstall MediaPipe: `./reel2rig setup`, or "
                  "`.venv/bin/pip install --no-deps --force-reinstall mediapipe==0.10.21`")

# TFLite enums (schema.fbs) that the op builders switch on.
_SAME, _VALID = 0, 1
_NHWC_TO_NCHW_AXIS = (0, 2, 3, 1)  # where TFLite axis a of a rank-4 tensor lives in our NCHW layout


class UnsupportedOpError(NotImplementedError):
    """The .tflite graph uses an operator (or an operator variant) this converter does not implement."""


# --------------------------------------------------------------------------------------------------------------------
# Public data types

@dataclasses.dataclass(frozen=True)
class TensorInfo:
    """A graph input or output as declared in the .tflite file (NHWC shapes, batch 1)."""
    name: str
    shape: tuple[int, ...]
    dtype: str


@dataclasses.dataclass
class Operand:
    """One operator input as the op builders see it: its TFLite shape and, for a constant, its value."""
    shape: tuple[int, ...]
    const: np.ndarray | None = None


@dataclasses.dataclass
class OpSpec:
    """One TFLite operator, decoupled from the flatbuffer (tests build these by hand)."""
    kind: str                           # builtin operator name, e.g. "CONV_2D"
    options: dict[str, Any]             # the builtin options table, camelCase field names as in the schema
    inputs: list[Operand | None]        # None where an optional input is omitted (tensor index -1)
    outputs: list[tuple[int, ...]]      # output shapes
    where: str = ""                     # "<file> op #<n>" for error messages


@dataclasses.dataclass(frozen=True)
class DimMetadata:
    """One level of a TFLite sparse tensor, in traversal order: DENSE (a size) or SPARSE_CSR (segments, indices)."""
    dense: bool
    dense_size: int = 0
    segments: np.ndarray | None = None  # CSR row pointers into the next level, one more than this level's parents
    indices: np.ndarray | None = None   # coordinate along this dimension of every stored entry


# --------------------------------------------------------------------------------------------------------------------
# Locating models

def _mediapipe_dir() -> pathlib.Path | None:
    """The installed mediapipe package folder, found without importing it."""
    spec = importlib.util.find_spec("mediapipe")
    if spec is None or not spec.submodule_search_locations:
        return None
    return pathlib.Path(list(spec.submodule_search_locations)[0])


def model_path(name: str) -> pathlib.Path:
    """The .tflite file of one of the networks in ``MODEL_FILES`` inside the installed mediapipe package."""
    if name not in MODEL_FILES:
        raise ValueError(f"unknown MediaPipe network {name!r}; known: {', '.join(MODEL_FILES)}")
    root = _mediapipe_dir()
    filename = pathlib.PurePath(MODEL_FILES[name]).name
    if root is None:
        raise protocol.RpcError(protocol.MODEL_MISSING,
                                f"{filename} ships with the mediapipe package, which is not installed",
                                fix=_REINSTALL_FIX)
    path = root / "modules" / MODEL_FILES[name]
    if not path.is_file():
        raise protocol.RpcError(protocol.MODEL_MISSING, f"{path} is missing from the installed mediapipe package",
                                fix=_REINSTALL_FIX)
    return path


def _resolve(name_or_path: str | pathlib.Path) -> pathlib.Path:
    if isinstance(name_or_path, str) and name_or_path in MODEL_FILES:
        return model_path(name_or_path)
    path = pathlib.Path(name_or_path)
    if not path.is_file():
        raise protocol.RpcError(protocol.MODEL_MISSING, f"{path}: no such TFLite file",
                                fix=f"pass one of {', '.join(MODEL_FILES)} or the path of an existing .tflite file")
    return path.resolve()


# --------------------------------------------------------------------------------------------------------------------
# Sparse tensors (TFLite SparsityParameters)

def densify(values: np.ndarray, shape: Sequence[int], traversal_order: Sequence[int], block_map: Sequence[int],
            dims: Sequence[DimMetadata]) -> np.ndarray:
    """Decode a TFLite sparse tensor into a dense array of ``shape``.

    The format: the n original dimensions are extended by k block dimensions (``block_map[b]`` is the original
    dimension that block dimension n+b subdivides, so original index = outer * block_size + inner). The n+k
    dimensions are stored in ``traversal_order``, one ``dims`` entry per level. Walking the levels keeps, for every
    partial coordinate path, its position in the current level's storage:
      DENSE of size s:   children of position p are p*s + i for i < s;
      SPARSE_CSR:        children of position p are j in [segments[p], segments[p+1]), with coordinate indices[j].
    The positions after the last level index ``values``.
    """
    n, k = len(shape), len(block_map)
    if len(traversal_order) != n + k or len(dims) != n + k:
        raise ValueError(f"sparse tensor: {len(dims)} dim_metadata / {len(traversal_order)} traversal entries "
                         f"for {n} dimensions and {k} blocks")
    pos = np.zeros(1, np.int64)
    coords = np.zeros((1, 0), np.int64)  # (paths, levels so far): coordinate per level
    for meta in dims:
        if meta.dense:
            size = int(meta.dense_size)
            parent = np.repeat(np.arange(len(pos)), size)
            child = np.tile(np.arange(size, dtype=np.int64), len(pos))
            pos = pos[parent] * size + child
        else:
            seg = np.asarray(meta.segments, np.int64)
            start, count = seg[pos], seg[pos + 1] - seg[pos]
            parent = np.repeat(np.arange(len(pos)), count)
            first = np.repeat(np.cumsum(count) - count, count)  # where each parent's children start in the output
            pos = start[parent] + (np.arange(int(count.sum()), dtype=np.int64) - first)
            child = np.asarray(meta.indices, np.int64)[pos]
        coords = np.concatenate([coords[parent], child[:, None]], axis=1)
    if len(pos) and pos.max() >= len(values):
        raise ValueError(f"sparse tensor: index {pos.max()} beyond its {len(values)} stored values")
    expanded = np.empty_like(coords)
    expanded[:, list(traversal_order)] = coords      # column l holds expanded dimension traversal_order[l]
    index = expanded[:, :n].copy()
    for b, d in enumerate(block_map):                # fold each block dimension back into its original dimension
        block = int(dims[list(traversal_order).index(n + b)].dense_size)
        index[:, d] = index[:, d] * block + expanded[:, n + b]
    dense = np.zeros(tuple(shape), dtype=values.dtype)
    dense[tuple(index.T)] = values[pos]
    return dense


def _dim_metadata(sparsity: Any) -> tuple[list[int], list[int], list[DimMetadata]]:
    """Schema SparsityParametersT → (traversal order, block map, per-level metadata)."""
    dims = []
    for dm in sparsity.dimMetadata or []:
        if dm.format == 0:
            dims.append(DimMetadata(dense=True, dense_size=int(dm.denseSize)))
        else:  # SPARSE_CSR; the index vectors are Int32Vector / Uint16Vector / Uint8Vector unions
            dims.append(DimMetadata(dense=False, segments=np.asarray(dm.arraySegments.values, np.int64),
                                    indices=np.asarray(dm.arrayIndices.values, np.int64)))
    order = [int(v) for v in (sparsity.traversalOrder if sparsity.traversalOrder is not None else [])]
    blocks = [int(v) for v in (sparsity.blockMap if sparsity.blockMap is not None else [])]
    return order, blocks, dims


# --------------------------------------------------------------------------------------------------------------------
# Reading the flatbuffer

def _schema() -> Any:
    try:
        from mediapipe.tasks.metadata import schema_py_generated
    except ImportError as exc:
        raise protocol.RpcError(protocol.MODEL_MISSING,
                                f"the TFLite schema ships with the mediapipe package, which cannot be imported: {exc}",
                                fix=_REINSTALL_FIX) from exc
    return schema_py_generated


def _enum_names(enum_class: type) -> dict[int, str]:
    return {v: k for k, v in vars(enum_class).items() if not k.startswith("_") and isinstance(v, int)}


_NUMPY_DTYPES = {"FLOAT32": np.float32, "FLOAT16": np.float16, "FLOAT64": np.float64, "INT32": np.int32,
                 "INT64": np.int64, "INT16": np.int16, "INT8": np.int8, "UINT8": np.uint8, "BOOL": np.bool_}


@dataclasses.dataclass
class _Graph:
    """Subgraph 0 of a .tflite file with its constants decoded (sparse ones densified)."""
    tensor_names: list[str]
    tensor_shapes: list[tuple[int, ...]]
    tensor_dtypes: list[str]
    consts: dict[int, np.ndarray]
    quant: dict[int, Any]                                       # QuantizationParametersT per tensor (or None)
    ops: list[tuple[str, dict[str, Any], list[int], list[int]]]  # (kind, options, input ids, output ids)
    inputs: list[int]
    outputs: list[int]


def _read_buffer(raw: bytes, buffer: Any) -> bytes:
    data = buffer.data
    if data is not None and len(data):
        return np.asarray(data, np.uint8).tobytes()
    offset, size = int(getattr(buffer, "offset", 0) or 0), int(getattr(buffer, "size", 0) or 0)
    return raw[offset:offset + size] if offset > 1 and size else b""


def _parse(path: pathlib.Path) -> _Graph:
    s = _schema()
    raw = path.read_bytes()
    model = s.ModelT.InitFromPackedBuf(raw, 0)
    if not model.subgraphs:
        raise ValueError(f"{path.name}: no subgraph")
    graph = model.subgraphs[0]
    type_names, op_names = _enum_names(s.TensorType), _enum_names(s.BuiltinOperator)

    names, shapes, dtypes, consts, quant = [], [], [], {}, {}
    for i, t in enumerate(graph.tensors):
        shape = tuple(int(d) for d in (t.shape if t.shape is not None else []))
        dtype = type_names.get(t.type, str(t.type))
        names.append(t.name.decode() if isinstance(t.name, bytes) else str(t.name))
        shapes.append(shape)
        dtypes.append(dtype)
        quant[i] = t.quantization
        data = _read_buffer(raw, model.buffers[t.buffer]) if t.buffer < len(model.buffers) else b""
        if not data:
            continue
        if dtype not in _NUMPY_DTYPES:
            raise UnsupportedOpError(f"{path.name}: constant tensor {names[-1]!r} has type {dtype}")
        values = np.frombuffer(data, dtype=np.dtype(_NUMPY_DTYPES[dtype]).newbyteorder("<")).copy()
        if t.sparsity is not None:
            consts[i] = densify(values, shape, *_dim_metadata(t.sparsity))
        else:
            consts[i] = values.reshape(shape)

    ops = []
    for op in graph.operators:
        code = model.operatorCodes[op.opcodeIndex]
        kind = op_names.get(max(code.builtinCode, code.deprecatedBuiltinCode), str(code.builtinCode))
        if kind == "CUSTOM":
            kind = f"CUSTOM:{(code.customCode or b'').decode(errors='replace')}"
        options = dict(vars(op.builtinOptions)) if op.builtinOptions is not None else {}
        ops.append((kind, options, [int(v) for v in op.inputs], [int(v) for v in op.outputs]))
    return _Graph(names, shapes, dtypes, consts, quant, ops, [int(v) for v in graph.inputs],
                  [int(v) for v in graph.outputs])


# --------------------------------------------------------------------------------------------------------------------
# Constant-only operators, folded in numpy

def _dequantize(value: np.ndarray, quant: Any) -> np.ndarray:
    """fp16 → fp32 as is; int8/uint8/int16 → (q - zero_point) * scale, per tensor or per ``quantizedDimension``."""
    if np.issubdtype(value.dtype, np.floating):
        return value.astype(np.float32)
    if quant is None or quant.scale is None:
        raise UnsupportedOpError(f"DEQUANTIZE of a {value.dtype} tensor without quantization parameters")
    scale = np.asarray(quant.scale, np.float32)
    zero = np.asarray(quant.zeroPoint if quant.zeroPoint is not None else np.zeros_like(scale), np.float32)
    if scale.size > 1:  # per-axis: broadcast along the quantized dimension
        shape = [1] * value.ndim
        shape[int(quant.quantizedDimension)] = scale.size
        scale, zero = scale.reshape(shape), zero.reshape(shape)
    return ((value.astype(np.float32) - zero) * scale).astype(np.float32)


# --------------------------------------------------------------------------------------------------------------------
# Layout and maths helpers

def same_padding(size: int, kernel: int, stride: int, dilation: int = 1) -> tuple[int, int]:
    """TF 'SAME' padding (before, after) along one axis.

    out = ceil(size / stride); the receptive field of the last output must end inside the padded input, so
    total = max((out - 1) * stride + (kernel - 1) * dilation + 1 - size, 0); TF puts the odd pixel *after*:
    before = total // 2, after = total - before.
    """
    effective = (kernel - 1) * dilation + 1
    out = -(-size // stride)
    total = max((out - 1) * stride + effective - size, 0)
    return total // 2, total - total // 2


def _padding_2d(code: int, hw: Sequence[int], kernel: Sequence[int], stride: Sequence[int],
                dilation: Sequence[int] = (1, 1)) -> tuple[int, int, int, int]:
    """(top, bottom, left, right) for a TFLite Padding enum value."""
    if code == _VALID:
        return 0, 0, 0, 0
    if code != _SAME:
        raise UnsupportedOpError(f"padding type {code}")
    top, bottom = same_padding(hw[0], kernel[0], stride[0], dilation[0])
    left, right = same_padding(hw[1], kernel[1], stride[1], dilation[1])
    return top, bottom, left, right


def _to_tfl(x: torch.Tensor) -> torch.Tensor:
    """Runtime layout → TFLite layout (NCHW → NHWC for rank 4)."""
    return x.permute(0, 2, 3, 1) if x.dim() == 4 else x


def _from_tfl(x: torch.Tensor) -> torch.Tensor:
    """TFLite layout → runtime layout (NHWC → NCHW for rank 4)."""
    return x.permute(0, 3, 1, 2) if x.dim() == 4 else x


def _const_to_runtime(value: np.ndarray, rank: int) -> torch.Tensor:
    """A constant in TFLite layout, broadcast-aligned to ``rank`` (leading 1s) and put into runtime layout."""
    arr = np.asarray(value)
    if np.issubdtype(arr.dtype, np.floating):
        arr = arr.astype(np.float32)
    arr = arr.reshape((1,) * (rank - arr.ndim) + arr.shape) if arr.ndim < rank else arr
    return _from_tfl(torch.from_numpy(np.ascontiguousarray(arr)))


def _activation(code: int, where: str) -> int:
    if code not in (0, 1, 2, 3, 4):
        raise UnsupportedOpError(f"{where}: fused activation {code}")
    return code


def _activate(x: torch.Tensor, code: int) -> torch.Tensor:
    """TFLite fused activations (NONE, RELU, RELU_N1_TO_1, RELU6, TANH), in place: ``x`` is always an op's fresh
    result that nothing else has read yet."""
    if code == 1:
        return F.relu_(x)
    if code == 2:
        return F.hardtanh_(x, -1.0, 1.0)
    if code == 3:
        return F.hardtanh_(x, 0.0, 6.0)
    if code == 4:
        return x.tanh_()
    return x


def _need_const(spec: OpSpec, i: int, what: str) -> np.ndarray:
    operand = spec.inputs[i] if i < len(spec.inputs) else None
    if operand is None or operand.const is None:
        raise UnsupportedOpError(f"{spec.where}: {spec.kind} with a computed {what} (only constants are supported)")
    return operand.const


def _optional_const(spec: OpSpec, i: int, what: str) -> np.ndarray | None:
    """An optional constant input (a bias): None where the file omits it."""
    if i >= len(spec.inputs) or spec.inputs[i] is None:
        return None
    return _need_const(spec, i, what)


def _float_buffer(value: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(value, dtype=np.float32))


def _check_batch_free(spec: OpSpec) -> None:
    """The batch dimension stays free only if every tensor keeps batch 1 in dimension 0."""
    for shape in spec.outputs:
        if len(shape) and shape[0] != 1:
            raise UnsupportedOpError(f"{spec.where}: {spec.kind} output {shape} does not keep batch in dimension 0")


# --------------------------------------------------------------------------------------------------------------------
# Operator modules. Each takes its runtime operands (``operands``: which OpSpec inputs those are) in runtime layout.

class _Op(nn.Module):
    operands: tuple[int, ...] = (0,)


class _Conv(_Op):
    """CONV_2D / DEPTHWISE_CONV_2D: cross-correlation in NCHW with TF padding folded in front when asymmetric."""
    weight: torch.Tensor
    bias: torch.Tensor | None
    pad: tuple[int, int, int, int]

    def __init__(self, weight: np.ndarray, bias: np.ndarray | None, stride: tuple[int, int],
                 dilation: tuple[int, int], groups: int, pad: tuple[int, int, int, int], act: int):
        super().__init__()
        self.register_buffer("weight", _float_buffer(weight))
        self.register_buffer("bias", _float_buffer(bias) if bias is not None else None)
        self.stride, self.dilation, self.groups, self.act = stride, dilation, groups, act
        self.set_padding(pad)

    def set_padding(self, pad: tuple[int, int, int, int]) -> None:
        """Zero padding (top, bottom, left, right): the conv's own when symmetric, else an F.pad in front."""
        top, bottom, left, right = pad
        self.pad = pad
        symmetric = top == bottom and left == right
        self.conv_padding = (top, left) if symmetric else (0, 0)
        self.pre_pad = None if symmetric else (left, right, top, bottom)  # F.pad order: last dim first

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.pre_pad is not None:
            x = F.pad(x, self.pre_pad)
        y = F.conv2d(x, self.weight, self.bias, self.stride, self.conv_padding, self.dilation, self.groups)
        return _activate(y, self.act)


def _build_conv(spec: OpSpec) -> _Op:
    o = spec.options
    weight = _need_const(spec, 1, "filter").astype(np.float32)
    bias = _optional_const(spec, 2, "bias")
    in_shape = spec.inputs[0].shape                     # NHWC
    if spec.kind == "CONV_2D":
        weight = weight.transpose(0, 3, 1, 2)           # OHWI → OIHW
        groups = in_shape[3] // weight.shape[1]         # TFLite grouped conv: filter input depth divides input depth
    else:
        weight = weight.transpose(3, 0, 1, 2)           # [1, KH, KW, C*M] → [C*M, 1, KH, KW]; out c*M+m ← in c
        groups = in_shape[3]
    stride = (int(o["strideH"]), int(o["strideW"]))
    dilation = (int(o.get("dilationHFactor", 1) or 1), int(o.get("dilationWFactor", 1) or 1))
    pad = _padding_2d(o["padding"], in_shape[1:3], weight.shape[2:], stride, dilation)
    return _Conv(weight, bias, stride, dilation, groups, pad, _activation(o.get("fusedActivationFunction", 0),
                                                                          spec.where))


class _FullyConnected(_Op):
    """y = x W^T + b over the last TFLite axis; without keep_num_dims the leading axes flatten into one."""
    weight: torch.Tensor
    bias: torch.Tensor | None

    def __init__(self, weight: np.ndarray, bias: np.ndarray | None, keep_dims: bool, out_rank: int, act: int):
        super().__init__()
        self.register_buffer("weight", _float_buffer(weight))
        self.register_buffer("bias", _float_buffer(bias) if bias is not None else None)
        self.keep_dims, self.out_rank, self.act = keep_dims, out_rank, act

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        xt = _to_tfl(x)
        y = F.linear(xt.reshape(-1, self.weight.shape[1]), self.weight, self.bias)
        if self.keep_dims:
            y = y.reshape(*xt.shape[:-1], self.weight.shape[0])
        y = _activate(y, self.act)
        return _from_tfl(y) if self.out_rank == 4 else y


def _build_fully_connected(spec: OpSpec) -> _Op:
    o = spec.options
    if o.get("weightsFormat", 0) != 0:
        raise UnsupportedOpError(f"{spec.where}: FULLY_CONNECTED weights format {o['weightsFormat']}")
    weight = _need_const(spec, 1, "weight matrix")
    bias = _optional_const(spec, 2, "bias")
    return _FullyConnected(weight, bias, bool(o.get("keepNumDims", False)), len(spec.outputs[0]),
                           _activation(o.get("fusedActivationFunction", 0), spec.where))


class _Binary(_Op):
    """ADD / SUB / MUL / DIV with numpy broadcasting; a lower-rank operand of a rank-4 op is aligned first."""
    operands = (0, 1)
    _FNS: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
        "ADD": torch.add, "SUB": torch.sub, "MUL": torch.mul, "DIV": torch.div}

    def __init__(self, kind: str, ranks: tuple[int, int], out_rank: int, act: int):
        super().__init__()
        self.kind, self.ranks, self.out_rank, self.act = kind, ranks, out_rank, act

    def _align(self, x: torch.Tensor, rank: int) -> torch.Tensor:
        if self.out_rank == 4 and rank < 4:  # broadcast against NHWC, so pad leading 1s and move C to dim 1
            return x.reshape((1,) * (4 - rank) + tuple(x.shape)).permute(0, 3, 1, 2)
        return x

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        y = self._FNS[self.kind](self._align(a, self.ranks[0]), self._align(b, self.ranks[1]))
        return _activate(y, self.act)


def _build_binary(spec: OpSpec) -> _Op:
    ranks = (len(spec.inputs[0].shape), len(spec.inputs[1].shape))
    return _Binary(spec.kind, ranks, len(spec.outputs[0]),
                   _activation(spec.options.get("fusedActivationFunction", 0), spec.where))


class _PRelu(_Op):
    """y = x if x >= 0 else alpha * x (alpha broadcast against the input)."""
    alpha: torch.Tensor

    def __init__(self, alpha: torch.Tensor, per_channel: bool):
        super().__init__()
        self.register_buffer("alpha", alpha)
        self.per_channel = per_channel

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.per_channel:  # one slope per channel: torch's PReLU (ONNX PRelu)
            return F.prelu(x, self.alpha)
        return torch.where(x >= 0, x, x * self.alpha)


def _build_prelu(spec: OpSpec) -> _Op:
    alpha = _need_const(spec, 1, "alpha").astype(np.float32)
    rank = len(spec.inputs[0].shape)
    aligned = alpha.reshape((1,) * (rank - alpha.ndim) + alpha.shape)
    channels = spec.inputs[0].shape[-1]
    if rank == 4 and all(d == 1 for d in aligned.shape[:-1]) and aligned.shape[-1] in (1, channels):
        return _PRelu(torch.from_numpy(np.broadcast_to(aligned.reshape(-1), (channels,)).copy()), True)
    return _PRelu(_const_to_runtime(alpha, rank), False)


class _Pad(_Op):
    """PAD / PADV2 with a constant value; ``pads`` is F.pad's list (last runtime dimension first)."""

    def __init__(self, pads: list[int], value: float):
        super().__init__()
        self.pads, self.value = pads, value

    def spatial_zero_pad(self) -> tuple[int, int, int, int] | None:
        """(top, bottom, left, right) when this pads only H and W of a rank-4 tensor with zeros, else None."""
        if self.value != 0.0 or len(self.pads) != 8 or any(self.pads[4:]):
            return None
        left, right, top, bottom = self.pads[:4]
        return top, bottom, left, right

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.pad(x, self.pads, value=self.value)


def _build_pad(spec: OpSpec) -> _Op:
    pads = np.asarray(_need_const(spec, 1, "padding"), np.int64).reshape(-1, 2)
    if pads[0].any():
        raise UnsupportedOpError(f"{spec.where}: PAD of the batch dimension")
    if len(pads) == 4:
        pads = pads[list((0, 3, 1, 2))]  # NHWC rows → NCHW rows
    value = 0.0
    if spec.kind == "PADV2" and len(spec.inputs) > 2 and spec.inputs[2] is not None:
        value = float(np.asarray(_need_const(spec, 2, "pad value")).reshape(-1)[0])
    return _Pad([int(v) for row in pads[::-1] for v in row], value)


class _Pool(_Op):
    """MAX_POOL_2D / AVERAGE_POOL_2D. TF's SAME average divides by the number of *real* pixels in each window."""
    count: torch.Tensor | None

    def __init__(self, kind: str, kernel: tuple[int, int], stride: tuple[int, int], pad: tuple[int, int, int, int],
                 count: np.ndarray | None, act: int):
        super().__init__()
        self.kind, self.kernel, self.stride, self.act = kind, kernel, stride, act
        top, bottom, left, right = pad
        self.pre_pad = (left, right, top, bottom) if any(pad) else None
        self.register_buffer("count", _float_buffer(count) if count is not None else None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.kind == "MAX_POOL_2D":
            if self.pre_pad is not None:
                x = F.pad(x, self.pre_pad, value=float("-inf"))
            y = F.max_pool2d(x, self.kernel, self.stride)
        else:
            if self.pre_pad is not None:
                x = F.pad(x, self.pre_pad)
            y = F.avg_pool2d(x, self.kernel, self.stride)
            if self.count is not None:  # window mean over kh*kw → mean over the pixels inside the image
                y = y * (self.kernel[0] * self.kernel[1]) / self.count
        return _activate(y, self.act)


def _build_pool(spec: OpSpec) -> _Op:
    o = spec.options
    kernel, stride = (int(o["filterHeight"]), int(o["filterWidth"])), (int(o["strideH"]), int(o["strideW"]))
    hw = spec.inputs[0].shape[1:3]
    pad = _padding_2d(o["padding"], hw, kernel, stride)
    count = None
    if spec.kind == "AVERAGE_POOL_2D" and any(pad):
        inside = np.pad(np.ones(hw, np.float32), ((pad[0], pad[1]), (pad[2], pad[3])))
        out_h, out_w = spec.outputs[0][1:3]
        count = np.array([[inside[i * stride[0]:i * stride[0] + kernel[0], j * stride[1]:j * stride[1] + kernel[1]]
                           .sum() for j in range(out_w)] for i in range(out_h)], np.float32)[None, None]
    return _Pool(spec.kind, kernel, stride, pad, count, _activation(o.get("fusedActivationFunction", 0), spec.where))


def resize_table(in_size: int, out_size: int, align_corners: bool, half_pixel: bool
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """TF bilinear sampling along one axis: (lower index, upper index, weight of upper) per output pixel.

    src = (dst + 0.5) * scale - 0.5 with half-pixel centres, else dst * scale; scale = (in - 1) / (out - 1) with
    align_corners, else in / out. lower = max(floor(src), 0), upper = min(ceil(src), in - 1), weight = src - floor(src).
    """
    scale = (in_size - 1) / (out_size - 1) if align_corners and out_size > 1 else in_size / out_size
    dst = np.arange(out_size, dtype=np.float64)
    src = (dst + 0.5) * scale - 0.5 if half_pixel else dst * scale
    floor = np.floor(src)
    lower = np.clip(floor, 0, in_size - 1).astype(np.int64)
    upper = np.clip(np.ceil(src), 0, in_size - 1).astype(np.int64)
    return lower, upper, (src - floor).astype(np.float32)


class _ResizeBilinear(_Op):
    """RESIZE_BILINEAR. Half-pixel and align-corners modes are torch's bilinear modes exactly; TF's legacy mode
    (neither flag) samples through precomputed index/weight tables."""

    def __init__(self, size: tuple[int, int], align_corners: bool, half_pixel: bool, in_hw: tuple[int, int]):
        super().__init__()
        self.size, self.align_corners = size, align_corners
        self.legacy = not align_corners and not half_pixel
        if self.legacy:
            for axis, (n_in, n_out) in enumerate(zip(in_hw, size)):
                lower, upper, weight = resize_table(n_in, n_out, False, False)
                self.register_buffer(f"lower{axis}", torch.from_numpy(lower))
                self.register_buffer(f"upper{axis}", torch.from_numpy(upper))
                self.register_buffer(f"weight{axis}", torch.from_numpy(weight))

    def _lerp(self, x: torch.Tensor, axis: int) -> torch.Tensor:
        dim = 2 + axis
        lower = x.index_select(dim, getattr(self, f"lower{axis}"))
        upper = x.index_select(dim, getattr(self, f"upper{axis}"))
        weight = getattr(self, f"weight{axis}").reshape((-1, 1) if axis == 0 else (-1,))
        return lower + (upper - lower) * weight

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.legacy:
            return self._lerp(self._lerp(x, 0), 1)
        return F.interpolate(x, size=self.size, mode="bilinear", align_corners=self.align_corners)


def _build_resize(spec: OpSpec) -> _Op:
    size = tuple(int(v) for v in np.asarray(_need_const(spec, 1, "size")).reshape(-1))
    align, half = bool(spec.options.get("alignCorners")), bool(spec.options.get("halfPixelCenters"))
    if align and half:
        raise UnsupportedOpError(f"{spec.where}: RESIZE_BILINEAR with both align_corners and half_pixel_centers")
    return _ResizeBilinear((size[0], size[1]), align, half, tuple(spec.inputs[0].shape[1:3]))


class _DepthToSpace(_Op):
    """TF DEPTH_TO_SPACE (DCR order): out[b, h*s+i, w*s+j, c] = in[b, h, w, (i*s + j)*C + c]."""

    def __init__(self, block: int):
        super().__init__()
        self.block = block

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        s = self.block
        y = x.reshape(n, s, s, c // (s * s), h, w)          # channel index = (i*s + j)*C + c
        y = y.permute(0, 3, 4, 1, 5, 2)                     # → (n, C, h, i, w, j)
        return y.reshape(n, c // (s * s), h * s, w * s)


def _build_depth_to_space(spec: OpSpec) -> _Op:
    return _DepthToSpace(int(spec.options["blockSize"]))


class _Reshape(_Op):
    """RESHAPE to the declared output shape with the batch dimension left free (-1), in TFLite layout."""

    def __init__(self, target: tuple[int, ...]):
        super().__init__()
        self.target = target

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _from_tfl(_to_tfl(x).reshape(self.target))


def _build_reshape(spec: OpSpec) -> _Op:
    _check_batch_free(spec)
    out = spec.outputs[0]
    if not out:
        raise UnsupportedOpError(f"{spec.where}: RESHAPE to a scalar")
    return _Reshape((-1, *out[1:]))


class _Concat(_Op):
    """CONCATENATION along a TFLite axis (mapped to NCHW for rank 4)."""

    def __init__(self, n_inputs: int, axis: int, act: int):
        super().__init__()
        self.operands = tuple(range(n_inputs))
        self.axis, self.act = axis, act

    def forward(self, *xs: torch.Tensor) -> torch.Tensor:
        return _activate(torch.cat(xs, dim=self.axis), self.act)


def _build_concat(spec: OpSpec) -> _Op:
    rank = len(spec.outputs[0])
    axis = int(spec.options.get("axis", 0)) % rank
    if axis == 0:
        raise UnsupportedOpError(f"{spec.where}: CONCATENATION along the batch dimension")
    return _Concat(len(spec.inputs), _NHWC_TO_NCHW_AXIS[axis] if rank == 4 else axis,
                   _activation(spec.options.get("fusedActivationFunction", 0), spec.where))


class _Mean(_Op):
    """MEAN over constant TFLite axes (computed in TFLite layout so the kept axes stay in TFLite order)."""

    def __init__(self, axes: tuple[int, ...], keep_dims: bool):
        super().__init__()
        self.axes, self.keep_dims = axes, keep_dims

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _from_tfl(_to_tfl(x).mean(dim=self.axes, keepdim=self.keep_dims))


def _build_mean(spec: OpSpec) -> _Op:
    rank = len(spec.inputs[0].shape)
    axes = tuple(sorted({int(a) % rank for a in np.asarray(_need_const(spec, 1, "axes")).reshape(-1)}))
    if 0 in axes:
        raise UnsupportedOpError(f"{spec.where}: MEAN over the batch dimension")
    return _Mean(axes, bool(spec.options.get("keepDims", False)))


class _Unary(_Op):
    """Elementwise LOGISTIC / RELU / RELU6 / TANH (layout-free)."""
    _FNS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
        "LOGISTIC": torch.sigmoid, "RELU": F.relu, "RELU6": lambda x: F.hardtanh(x, 0.0, 6.0), "TANH": torch.tanh}

    def __init__(self, kind: str):
        super().__init__()
        self.kind = kind

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._FNS[self.kind](x)


_BUILDERS: dict[str, Callable[[OpSpec], _Op]] = {
    "CONV_2D": _build_conv, "DEPTHWISE_CONV_2D": _build_conv, "FULLY_CONNECTED": _build_fully_connected,
    "ADD": _build_binary, "SUB": _build_binary, "MUL": _build_binary, "DIV": _build_binary,
    "PRELU": _build_prelu, "PAD": _build_pad, "PADV2": _build_pad,
    "MAX_POOL_2D": _build_pool, "AVERAGE_POOL_2D": _build_pool, "RESIZE_BILINEAR": _build_resize,
    "DEPTH_TO_SPACE": _build_depth_to_space, "RESHAPE": _build_reshape, "CONCATENATION": _build_concat,
    "MEAN": _build_mean, **{k: (lambda spec: _Unary(spec.kind)) for k in _Unary._FNS},
}
_FOLDED_ONLY = ("DEQUANTIZE", "DENSIFY")  # constant-only ops, evaluated in numpy at load time
SUPPORTED_OPS: tuple[str, ...] = tuple(sorted((*_BUILDERS, *_FOLDED_ONLY)))


def build_op(spec: OpSpec) -> _Op:
    """The torch module for one operator; :class:`UnsupportedOpError` for an operator without a builder."""
    builder = _BUILDERS.get(spec.kind)
    if builder is None:
        raise UnsupportedOpError(f"{spec.where}: operator {spec.kind} is not supported "
                                 f"(supported: {', '.join(SUPPORTED_OPS)})")
    return builder(spec)


# --------------------------------------------------------------------------------------------------------------------
# The model

@dataclasses.dataclass
class _Step:
    module: _Op
    inputs: list[int]    # tensor ids of the runtime operands
    outputs: list[int]
    release: list[int]   # tensor ids no later step (or output) needs


class TFLiteModel(nn.Module):
    """One .tflite graph as a torch module.

    forward(x): x is (B, H, W, C) float in the value range the TFLite input expects; returns the outputs in the
    TFLite output order with the TFLite shapes but batch B. Weights are buffers: ``.to(device, dtype)`` moves them.
    """

    def __init__(self, path: str | pathlib.Path):
        super().__init__()
        self.path = pathlib.Path(path)
        graph = _parse(self.path)
        if len(graph.inputs) != 1:
            raise UnsupportedOpError(f"{self.path.name}: {len(graph.inputs)} graph inputs (one is supported)")
        self.inputs = [self._info(graph, i) for i in graph.inputs]
        self.outputs = [self._info(graph, i) for i in graph.outputs]
        self.op_counts: dict[str, int] = dict(Counter(kind for kind, *_ in graph.ops))
        unknown = sorted({kind for kind, *_ in graph.ops if kind not in SUPPORTED_OPS})
        if unknown:
            raise UnsupportedOpError(f"{self.path.name}: operator(s) {', '.join(unknown)} not supported "
                                     f"(supported: {', '.join(SUPPORTED_OPS)})")
        self._input_id, self._output_ids = graph.inputs[0], list(graph.outputs)
        self._output_ranks = [len(graph.tensor_shapes[i]) for i in graph.outputs]
        steps = self._fuse_pads(self._build_steps(graph))
        self._const_ids = self._register_constants(graph, steps)
        self._steps_modules = nn.ModuleList(step.module for step in steps)
        self._steps = steps
        self._plan_release()

    @staticmethod
    def _info(graph: _Graph, i: int) -> TensorInfo:
        return TensorInfo(graph.tensor_names[i], graph.tensor_shapes[i], graph.tensor_dtypes[i].lower())

    def _build_steps(self, graph: _Graph) -> list[_Step]:
        """Fold constant-only ops into ``graph.consts``; turn the rest into steps."""
        steps = []
        for n, (kind, options, ins, outs) in enumerate(graph.ops):
            where = f"{self.path.name} op #{n}"
            if kind in _FOLDED_ONLY:
                if ins[0] not in graph.consts:
                    raise UnsupportedOpError(f"{where}: {kind} of a computed tensor")
                value = graph.consts[ins[0]]  # DENSIFY: already decoded at parse time
                graph.consts[outs[0]] = _dequantize(value, graph.quant[ins[0]]) if kind == "DEQUANTIZE" else value
                continue
            spec = OpSpec(kind, options,
                          [Operand(graph.tensor_shapes[i], graph.consts.get(i)) if i >= 0 else None for i in ins],
                          [graph.tensor_shapes[i] for i in outs], where)
            module = build_op(spec)
            operand_ids = [ins[k] for k in module.operands]
            if all(i in graph.consts for i in operand_ids):
                self._fold(module, graph, operand_ids, outs)
            else:
                steps.append(_Step(module, operand_ids, list(outs), []))
        return steps

    def _fuse_pads(self, steps: list[_Step]) -> list[_Step]:
        """A spatial zero PAD read only by one conv becomes part of that conv's padding (saves a copy)."""
        readers = Counter(i for step in steps for i in step.inputs)
        conv_of = {step.inputs[0]: step for step in steps if isinstance(step.module, _Conv)}
        kept = []
        for step in steps:
            out = step.outputs[0]
            pad = step.module.spatial_zero_pad() if isinstance(step.module, _Pad) else None
            conv = conv_of.get(out)
            if pad is None or conv is None or readers[out] != 1 or out in self._output_ids:
                kept.append(step)
                continue
            module = conv.module
            assert isinstance(module, _Conv)
            top, bottom, left, right = (a + b for a, b in zip(module.pad, pad))
            module.set_padding((top, bottom, left, right))
            conv.inputs[0] = step.inputs[0]
        return kept

    @staticmethod
    def _fold(module: _Op, graph: _Graph, operand_ids: list[int], outs: list[int]) -> None:
        with torch.no_grad():
            args = [_const_to_runtime(graph.consts[i], graph.consts[i].ndim) for i in operand_ids]
            result = module(*args)
        for i, value in zip(outs, result if isinstance(result, tuple) else (result,)):
            graph.consts[i] = _to_tfl(value).numpy().copy()

    def _register_constants(self, graph: _Graph, steps: list[_Step]) -> dict[int, str]:
        """Constants that runtime steps (or the outputs) read as operands become buffers in runtime layout."""
        needed = {i for step in steps for i in step.inputs} | set(self._output_ids)
        names = {}
        for i in sorted(needed & set(graph.consts)):
            names[i] = f"const_{i}"
            self.register_buffer(names[i], _const_to_runtime(graph.consts[i], graph.consts[i].ndim))
        return names

    def _plan_release(self) -> None:
        """Drop each intermediate right after its last reader, so peak memory stays near the widest layer."""
        last_use: dict[int, int] = {}
        for n, step in enumerate(self._steps):
            for i in step.inputs:
                last_use[i] = n
        for i, n in last_use.items():
            if i not in self._output_ids and i not in self._const_ids:
                self._steps[n].release.append(i)

    @property
    def dtype(self) -> torch.dtype:
        for buffer in self.buffers():
            if buffer.is_floating_point():
                return buffer.dtype
        return torch.float32

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        expected = self.inputs[0].shape[1:]
        if not torch.jit.is_tracing() and (x.dim() != 4 or tuple(x.shape[1:]) != tuple(expected)):
            raise ValueError(f"{self.path.name} expects input (B, {', '.join(map(str, expected))}), "
                             f"got {tuple(x.shape)}")
        if x.dtype != self.dtype:
            x = x.to(self.dtype)
        env: dict[int, torch.Tensor] = {i: getattr(self, name) for i, name in self._const_ids.items()}
        env[self._input_id] = x.permute(0, 3, 1, 2)  # NHWC → NCHW (a channels-last view, no copy)
        for step in self._steps:
            result = step.module(*[env[i] for i in step.inputs])
            for i, value in zip(step.outputs, result if isinstance(result, tuple) else (result,)):
                env[i] = value
            for i in step.release:
                del env[i]
        return tuple(_to_tfl(env[i]).contiguous() if rank == 4 else env[i]
                     for i, rank in zip(self._output_ids, self._output_ranks))


# --------------------------------------------------------------------------------------------------------------------
# Loading

@functools.lru_cache(maxsize=16)
def _load_cached(path: str, device: str, dtype: torch.dtype) -> TFLiteModel:
    model = TFLiteModel(path).to(device=device, dtype=dtype).eval()
    model.requires_grad_(False)
    return model


def load_tflite(name_or_path: str | pathlib.Path, device: str | torch.device = "cpu",
                dtype: torch.dtype = torch.float32) -> TFLiteModel:
    """A network by ``MODEL_FILES`` name or .tflite path, on ``device`` in ``dtype``.

    Cached per (path, device, dtype): callers share one instance, in eval mode — do not modify it.
    """
    return _load_cached(str(_resolve(name_or_path)), str(torch.device(device)), dtype)
