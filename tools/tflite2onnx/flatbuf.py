"""Minimal read-only FlatBuffers access plus the few TFLite schema tables the converter needs.

Why hand-written: the converter must not depend on TensorFlow or on generated schema code. FlatBuffers is a
simple format: every table starts with an int32 offset back to its vtable; the vtable lists, per field id,
the byte offset of that field inside the table (0 = absent, use the schema default). Reference fields
(tables, vectors, strings) hold a uint32 offset relative to the field's own position. A union occupies two
field ids: the type tag (uint8) and then the value (a table reference).

Field ids below follow the public TFLite schema (tensorflow/lite/schema/schema.fbs).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

import numpy as np


class Table:
    """A view on one FlatBuffers table inside `buf` starting at byte `pos`."""

    __slots__ = ("buf", "pos", "_vt", "_vt_len")

    def __init__(self, buf: bytes, pos: int):
        self.buf = buf
        self.pos = pos
        (soff,) = struct.unpack_from("<i", buf, pos)
        self._vt = pos - soff
        (self._vt_len,) = struct.unpack_from("<H", buf, self._vt)

    def _field_pos(self, field_id: int) -> int:
        """Absolute byte position of field `field_id`, or 0 when the field is absent."""
        slot = 4 + 2 * field_id
        if slot >= self._vt_len:
            return 0
        (off,) = struct.unpack_from("<H", self.buf, self._vt + slot)
        return self.pos + off if off else 0

    def scalar(self, field_id: int, fmt: str, default=0):
        p = self._field_pos(field_id)
        return struct.unpack_from("<" + fmt, self.buf, p)[0] if p else default

    def _deref(self, field_id: int) -> int:
        p = self._field_pos(field_id)
        if not p:
            return 0
        return p + struct.unpack_from("<I", self.buf, p)[0]

    def table(self, field_id: int) -> "Table | None":
        p = self._deref(field_id)
        return Table(self.buf, p) if p else None

    def string(self, field_id: int) -> str | None:
        p = self._deref(field_id)
        if not p:
            return None
        (n,) = struct.unpack_from("<I", self.buf, p)
        return self.buf[p + 4 : p + 4 + n].decode("utf-8")

    def vector_bytes(self, field_id: int) -> bytes | None:
        p = self._deref(field_id)
        if not p:
            return None
        (n,) = struct.unpack_from("<I", self.buf, p)
        return self.buf[p + 4 : p + 4 + n]

    def vector_scalars(self, field_id: int, fmt: str) -> list:
        p = self._deref(field_id)
        if not p:
            return []
        (n,) = struct.unpack_from("<I", self.buf, p)
        return list(struct.unpack_from("<%d%s" % (n, fmt), self.buf, p + 4))

    def vector_tables(self, field_id: int) -> list["Table"]:
        p = self._deref(field_id)
        if not p:
            return []
        (n,) = struct.unpack_from("<I", self.buf, p)
        out = []
        for i in range(n):
            ep = p + 4 + 4 * i
            out.append(Table(self.buf, ep + struct.unpack_from("<I", self.buf, ep)[0]))
        return out


def root_table(buf: bytes) -> Table:
    (off,) = struct.unpack_from("<I", buf, 0)
    return Table(buf, off)


# TensorType enum -> numpy dtype (only the types that can appear in float models).
TENSOR_TYPES = {
    0: np.float32, 1: np.float16, 2: np.int32, 3: np.uint8, 4: np.int64,
    6: np.bool_, 7: np.int16, 9: np.int8, 10: np.float64,
}


@dataclass
class TfTensor:
    index: int
    name: str
    shape: tuple[int, ...]
    dtype: type
    buffer: int
    data: np.ndarray | None  # constant contents (shape applied), None for activations
    quantized: bool


@dataclass
class TfOperator:
    index: int
    opcode: str  # builtin operator name, or the custom code for CUSTOM ops
    inputs: list[int]  # -1 = optional input not given
    outputs: list[int]
    options: Table | None  # builtin options table (its type is implied by the opcode)
    custom_options: bytes | None


@dataclass
class TfModel:
    tensors: list[TfTensor]
    inputs: list[int]
    outputs: list[int]
    operators: list[TfOperator]
    description: str = ""
    opcodes_used: list[str] = field(default_factory=list)


# BuiltinOperator enum values the converter knows by name (schema.fbs order). Unknown values are reported
# as "BUILTIN_<n>" so a missing converter names the exact op.
BUILTIN_NAMES = {
    0: "ADD", 1: "AVERAGE_POOL_2D", 2: "CONCATENATION", 3: "CONV_2D", 4: "DEPTHWISE_CONV_2D",
    5: "DEPTH_TO_SPACE", 6: "DEQUANTIZE", 9: "FULLY_CONNECTED", 14: "LOGISTIC", 17: "MAX_POOL_2D",
    18: "MUL", 19: "RELU", 20: "RELU_N1_TO_1", 21: "RELU6", 22: "RESHAPE", 23: "RESIZE_BILINEAR",
    25: "SOFTMAX", 28: "TANH", 32: "CUSTOM", 34: "PAD", 39: "TRANSPOSE", 40: "MEAN", 41: "SUB", 42: "DIV",
    43: "SQUEEZE", 45: "STRIDED_SLICE", 53: "CAST", 54: "PRELU", 55: "MAXIMUM", 57: "MINIMUM",
    60: "PADV2", 65: "SLICE", 67: "TRANSPOSE_CONV", 70: "EXPAND_DIMS", 83: "PACK",
    97: "RESIZE_NEAREST_NEIGHBOR", 98: "LEAKY_RELU", 117: "HARD_SWISH",
}


def _opcode_name(code: Table) -> str:
    # Old files only set deprecated_builtin_code (int8, id 0); new ones also set builtin_code (int32, id 3)
    # and clamp the deprecated one to 127 (PLACEHOLDER_FOR_GREATER_OP_CODES). Take the larger value.
    deprecated = code.scalar(0, "b", 0)
    builtin = code.scalar(3, "i", 0)
    value = max(deprecated, builtin)
    if value == 32:
        return code.string(1) or "CUSTOM"
    return BUILTIN_NAMES.get(value, "BUILTIN_%d" % value)


def read_tflite(data: bytes) -> TfModel:
    """Parse a .tflite file (first subgraph only, which is all these models have)."""
    if data[4:8] != b"TFL3":
        raise ValueError("not a TFLite flatbuffer (file identifier %r)" % data[4:8])
    model = root_table(data)
    codes = [_opcode_name(c) for c in model.vector_tables(1)]
    subgraphs = model.vector_tables(2)
    if len(subgraphs) != 1:
        raise ValueError("expected exactly one subgraph, found %d" % len(subgraphs))
    buffers = model.vector_tables(4)
    sg = subgraphs[0]

    tensors = []
    for i, t in enumerate(sg.vector_tables(0)):
        shape = tuple(t.vector_scalars(0, "i"))
        ttype = t.scalar(1, "b", 0)
        if ttype not in TENSOR_TYPES:
            raise ValueError("tensor %d has unsupported TensorType %d" % (i, ttype))
        dtype = TENSOR_TYPES[ttype]
        buf_index = t.scalar(2, "I", 0)
        name = t.string(3) or "tensor_%d" % i
        quant = t.table(4)
        # A quantization table with scales means real integer quantisation, which these float models lack.
        quantized = bool(quant is not None and quant.vector_scalars(2, "f"))
        arr = None
        if buf_index and buf_index < len(buffers):
            raw = buffers[buf_index].vector_bytes(0)
            if raw is None and buffers[buf_index].scalar(1, "Q", 0):
                raise ValueError("tensor %r: buffers stored outside the flatbuffer are not supported" % name)
            if raw:
                arr = np.frombuffer(raw, dtype=dtype).reshape(shape).copy()
        tensors.append(TfTensor(i, name, shape, dtype, buf_index, arr, quantized))

    operators = []
    for i, op in enumerate(sg.vector_tables(3)):
        operators.append(
            TfOperator(
                index=i,
                opcode=codes[op.scalar(0, "I", 0)],
                inputs=op.vector_scalars(1, "i"),
                outputs=op.vector_scalars(2, "i"),
                options=op.table(4),
                custom_options=op.vector_bytes(5),
            )
        )
    used = sorted({o.opcode for o in operators})
    return TfModel(tensors, sg.vector_scalars(1, "i"), sg.vector_scalars(2, "i"), operators,
                   model.string(3) or "", used)
