"""Convert a float TFLite model (as parsed by flatbuf.read_tflite) into an ONNX graph.

Layout: TFLite activations are NHWC; ONNX Conv/Pool/Resize want NCHW. Every rank-4 activation is therefore
kept in NCHW inside the graph, and the graph's own inputs/outputs are transposed at the boundary so the
ONNX model keeps TFLite's NHWC contract and tensor names. Ops whose meaning depends on memory order
(RESHAPE, non-4D consumers) get an explicit transpose back to NHWC first; ONNX Runtime folds the pairs away.

Constants (weights, fp16 weights behind DEQUANTIZE) are folded to float32 numpy arrays at conversion time.
"""

from __future__ import annotations

import struct

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from .flatbuf import TfModel, TfOperator

OPSET = 17
IR_VERSION = 8  # opset 17 needs IR >= 8; keeping it low lets older ONNX Runtime builds load the files

NHWC_TO_NCHW = (0, 3, 1, 2)
NCHW_TO_NHWC = (0, 2, 3, 1)
AXIS_NHWC_TO_NCHW = {0: 0, 1: 2, 2: 3, 3: 1}

# ActivationFunctionType enum of the TFLite schema.
ACT_NONE, ACT_RELU, ACT_RELU_N1_TO_1, ACT_RELU6, ACT_TANH = 0, 1, 2, 3, 4
# Padding enum of the TFLite schema (builtin options). The MediaPipe custom op uses TfLitePadding instead,
# where 1 = SAME and 2 = VALID.
PAD_SAME, PAD_VALID = 0, 1

ONNX_DTYPES = {np.float32: TensorProto.FLOAT, np.int32: TensorProto.INT32, np.int64: TensorProto.INT64}


class ConversionError(ValueError):
    pass


class _DefaultOptions:
    """Stands in for an absent builtin options table: every field reads as its schema default."""

    def scalar(self, field_id: int, fmt: str, default=0):
        return default


_DEFAULT_OPTIONS = _DefaultOptions()


def same_padding(in_size: int, kernel: int, stride: int, dilation: int = 1) -> tuple[int, int]:
    """TensorFlow 'SAME' padding for one spatial axis as (before, after).

    TF puts the odd pixel at the end (bottom/right); ONNX's auto_pad=SAME_UPPER would agree, but explicit
    pads keep the graph independent of any runtime's auto_pad interpretation.
    """
    out = -(-in_size // stride)
    eff_k = (kernel - 1) * dilation + 1
    total = max((out - 1) * stride + eff_k - in_size, 0)
    return total // 2, total - total // 2


class Converter:
    def __init__(self, model: TfModel, graph_name: str):
        self.m = model
        self.graph_name = graph_name
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self.consts: dict[int, np.ndarray] = {}  # folded constant tensors by TFLite index
        self.names: dict[int, str] = {}  # ONNX value name of each produced activation
        self.nchw: set[int] = set()  # activations stored as NCHW (all rank-4 ones)
        self._nhwc_cache: dict[int, str] = {}
        self._used_names: set[str] = set()
        for t in model.tensors:
            if t.data is not None:
                if t.quantized:
                    raise ConversionError("tensor %r is integer-quantised; only float models are supported" % t.name)
                self.consts[t.index] = t.data

    # ---- naming and constants -------------------------------------------------------------------------
    def unique(self, base: str) -> str:
        name, k = base, 1
        while name in self._used_names:
            name, k = "%s__%d" % (base, k), k + 1
        self._used_names.add(name)
        return name

    def initializer(self, array: np.ndarray, base: str) -> str:
        name = self.unique(base)
        self.initializers.append(numpy_helper.from_array(np.ascontiguousarray(array), name))
        return name

    def node(self, op_type: str, inputs: list[str], base: str, **attrs) -> str:
        out = self.unique(base)
        self.nodes.append(helper.make_node(op_type, inputs, [out], name=out, **attrs))
        return out

    def const(self, idx: int) -> np.ndarray:
        if idx not in self.consts:
            raise ConversionError("tensor %r must be a constant" % self.m.tensors[idx].name)
        return self.consts[idx]

    def shape(self, idx: int) -> tuple[int, ...]:
        return self.m.tensors[idx].shape

    # ---- reading op inputs in a chosen layout ---------------------------------------------------------
    def nchw_input(self, idx: int) -> str:
        """A rank-4 operand in NCHW, or any operand broadcast-compatible with NCHW (for elementwise ops)."""
        if idx in self.consts:
            c = self.consts[idx].astype(np.float32) if self.consts[idx].dtype == np.float16 else self.consts[idx]
            if c.ndim > 4:
                raise ConversionError("constant of rank %d in a 4-D op" % c.ndim)
            # numpy broadcasting aligns trailing axes, so pad to rank 4 first, then move C in front of H, W.
            c = c.reshape((1,) * (4 - c.ndim) + c.shape).transpose(NHWC_TO_NCHW)
            return self.initializer(c, self.m.tensors[idx].name)
        if idx in self.nchw:
            return self.names[idx]
        raise ConversionError("activation %r of rank %d used where NCHW is needed"
                              % (self.m.tensors[idx].name, len(self.shape(idx))))

    def plain_input(self, idx: int) -> str:
        """An operand in TFLite's own (NHWC) element order."""
        if idx in self.consts:
            c = self.consts[idx]
            c = c.astype(np.float32) if c.dtype == np.float16 else c
            return self.initializer(c, self.m.tensors[idx].name)
        if idx in self.nchw:
            if idx not in self._nhwc_cache:
                self._nhwc_cache[idx] = self.node("Transpose", [self.names[idx]], self.names[idx] + "__nhwc",
                                                  perm=list(NCHW_TO_NHWC))
            return self._nhwc_cache[idx]
        return self.names[idx]

    # ---- writing op outputs ---------------------------------------------------------------------------
    def set_output(self, idx: int, onnx_name: str, nchw: bool):
        self.names[idx] = onnx_name
        if nchw:
            self.nchw.add(idx)

    def out_base(self, op: TfOperator, k: int = 0) -> str:
        return self.m.tensors[op.outputs[k]].name

    def activation(self, x: str, act: int, base: str) -> str:
        if act == ACT_NONE:
            return x
        if act == ACT_RELU:
            return self.node("Relu", [x], base + "__relu")
        if act == ACT_RELU6:
            return self.node("Clip", [x, self._scalar(0.0), self._scalar(6.0)], base + "__relu6")
        if act == ACT_RELU_N1_TO_1:
            return self.node("Clip", [x, self._scalar(-1.0), self._scalar(1.0)], base + "__relu1")
        if act == ACT_TANH:
            return self.node("Tanh", [x], base + "__tanh")
        raise ConversionError("unsupported fused activation %d" % act)

    def _scalar(self, v: float) -> str:
        return self.initializer(np.array(v, np.float32), "scalar_%g" % v)

    # ---- the graph ------------------------------------------------------------------------------------
    def run(self) -> onnx.ModelProto:
        m = self.m
        graph_inputs, graph_outputs = [], []
        # Graph outputs keep TFLite's names: reserve them first so no internal value can take them.
        output_names = [m.tensors[idx].name for idx in m.outputs]
        if len(set(output_names)) != len(output_names):
            raise ConversionError("duplicate graph output names %r" % output_names)
        self._used_names.update(output_names)
        for idx in m.inputs:
            t = m.tensors[idx]
            name = self.unique(t.name)
            graph_inputs.append(helper.make_tensor_value_info(name, ONNX_DTYPES[t.dtype], list(t.shape)))
            if len(t.shape) == 4:
                self.set_output(idx, self.node("Transpose", [name], name + "__nchw", perm=list(NHWC_TO_NCHW)), True)
            else:
                self.set_output(idx, name, False)

        for op in m.operators:
            if op.options is None:
                op.options = _DEFAULT_OPTIONS
            fn = getattr(self, "op_" + op.opcode, None)
            if fn is None:
                raise ConversionError("no converter for TFLite op %s (operator %d)" % (op.opcode, op.index))
            fn(op)

        for idx, out_name in zip(m.outputs, output_names):
            t = m.tensors[idx]
            src = self.plain_input(idx)
            self.nodes.append(helper.make_node("Identity", [src], [out_name], name=out_name + "__out"))
            graph_outputs.append(helper.make_tensor_value_info(out_name, ONNX_DTYPES[t.dtype], list(t.shape)))

        graph = helper.make_graph(self.nodes, self.graph_name, graph_inputs, graph_outputs, self.initializers)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                                  producer_name="portrait_relight.tflite2onnx")
        model.ir_version = IR_VERSION
        return model

    # ---- op converters (names match the TFLite opcode names) ------------------------------------------
    def op_DEQUANTIZE(self, op: TfOperator):
        src = self.const(op.inputs[0])
        if src.dtype != np.float16:
            raise ConversionError("DEQUANTIZE of %s is not supported (only fp16 weights)" % src.dtype)
        self.consts[op.outputs[0]] = src.astype(np.float32)

    def _conv_common(self, op: TfOperator, weight: np.ndarray, stride_hw, dil_hw, padding, group: int, act: int):
        x_idx = op.inputs[0]
        _, in_h, in_w, _ = self.shape(x_idx)
        kh, kw = weight.shape[2], weight.shape[3]
        if padding == PAD_SAME:
            pt, pb = same_padding(in_h, kh, stride_hw[0], dil_hw[0])
            pl, pr = same_padding(in_w, kw, stride_hw[1], dil_hw[1])
        else:
            pt = pb = pl = pr = 0
        base = self.out_base(op)
        inputs = [self.nchw_input(x_idx), self.initializer(weight, base + "__w")]
        if len(op.inputs) > 2 and op.inputs[2] >= 0:
            inputs.append(self.initializer(self.const(op.inputs[2]).astype(np.float32), base + "__b"))
        y = self.node("Conv", inputs, base + "__conv", kernel_shape=[kh, kw], strides=list(stride_hw),
                      dilations=list(dil_hw), pads=[pt, pl, pb, pr], group=group)
        self.set_output(op.outputs[0], self.activation(y, act, base), True)

    def op_CONV_2D(self, op: TfOperator):
        o = op.options
        padding, sw, sh, act = o.scalar(0, "b"), o.scalar(1, "i", 1), o.scalar(2, "i", 1), o.scalar(3, "b")
        dw, dh = o.scalar(4, "i", 1), o.scalar(5, "i", 1)
        w = self.const(op.inputs[1]).astype(np.float32)  # OHWI
        group = self.shape(op.inputs[0])[3] // w.shape[3]
        self._conv_common(op, w.transpose(0, 3, 1, 2), (sh, sw), (dh, dw), padding, group, act)

    def op_DEPTHWISE_CONV_2D(self, op: TfOperator):
        o = op.options
        padding, sw, sh = o.scalar(0, "b"), o.scalar(1, "i", 1), o.scalar(2, "i", 1)
        act, dw, dh = o.scalar(4, "b"), o.scalar(5, "i", 1), o.scalar(6, "i", 1)
        w = self.const(op.inputs[1]).astype(np.float32)  # (1, kh, kw, C_in * multiplier)
        c_in = self.shape(op.inputs[0])[3]
        # ONNX grouped conv with group = C_in: weight (C_out, 1, kh, kw); output channel k reads input k // mult,
        # which is TFLite's depthwise channel order too.
        self._conv_common(op, w.transpose(3, 0, 1, 2), (sh, sw), (dh, dw), padding, c_in, act)

    def op_Convolution2DTransposeBias(self, op: TfOperator):
        # MediaPipe custom op: transposed conv + bias. custom_options is a raw TfLiteTransposeConvParams struct:
        # int32 padding (TfLitePadding: 1 = SAME, 2 = VALID), int32 stride_width, int32 stride_height.
        padding, sw, sh = struct.unpack_from("<3i", op.custom_options, 0)
        w = self.const(op.inputs[1]).astype(np.float32)  # (C_out, kh, kw, C_in)
        _, in_h, in_w, _ = self.shape(op.inputs[0])
        _, out_h, out_w, _ = self.shape(op.outputs[0])
        kh, kw = w.shape[1], w.shape[2]
        pads = []
        for in_s, out_s, k, s in ((in_h, out_h, kh, sh), (in_w, out_w, kw, sw)):
            if padding not in (1, 2):
                raise ConversionError("Convolution2DTransposeBias: unknown padding %d" % padding)
            total = (in_s - 1) * s + k - out_s  # full transposed-conv extent minus the size TFLite produces
            if total < 0:
                raise ConversionError("Convolution2DTransposeBias: output larger than the full extent")
            pads.append((total // 2, total - total // 2))
        base = self.out_base(op)
        inputs = [self.nchw_input(op.inputs[0]),
                  self.initializer(w.transpose(3, 0, 1, 2), base + "__w"),  # ONNX wants (C_in, C_out, kh, kw)
                  self.initializer(self.const(op.inputs[2]).astype(np.float32), base + "__b")]
        y = self.node("ConvTranspose", inputs, base + "__convT", kernel_shape=[kh, kw], strides=[sh, sw],
                      pads=[pads[0][0], pads[1][0], pads[0][1], pads[1][1]])
        self.set_output(op.outputs[0], y, True)

    def _pool(self, op: TfOperator, onnx_op: str):
        o = op.options
        padding, sw, sh = o.scalar(0, "b"), o.scalar(1, "i", 1), o.scalar(2, "i", 1)
        fw, fh, act = o.scalar(3, "i", 1), o.scalar(4, "i", 1), o.scalar(5, "b")
        _, in_h, in_w, _ = self.shape(op.inputs[0])
        if padding == PAD_SAME:
            pt, pb = same_padding(in_h, fh, sh)
            pl, pr = same_padding(in_w, fw, sw)
        else:
            pt = pb = pl = pr = 0
        base = self.out_base(op)
        attrs = dict(kernel_shape=[fh, fw], strides=[sh, sw], pads=[pt, pl, pb, pr])
        if onnx_op == "AveragePool":
            attrs["count_include_pad"] = 0  # TFLite averages over the valid pixels only
        y = self.node(onnx_op, [self.nchw_input(op.inputs[0])], base + "__pool", **attrs)
        self.set_output(op.outputs[0], self.activation(y, act, base), True)

    def op_MAX_POOL_2D(self, op):
        self._pool(op, "MaxPool")

    def op_AVERAGE_POOL_2D(self, op):
        self._pool(op, "AveragePool")

    def _binary(self, op: TfOperator, onnx_op: str, act: int):
        base = self.out_base(op)
        if len(self.shape(op.outputs[0])) == 4:
            a, b = self.nchw_input(op.inputs[0]), self.nchw_input(op.inputs[1])
            y = self.node(onnx_op, [a, b], base + "__" + onnx_op.lower())
            self.set_output(op.outputs[0], self.activation(y, act, base), True)
        else:
            a, b = self.plain_input(op.inputs[0]), self.plain_input(op.inputs[1])
            y = self.node(onnx_op, [a, b], base + "__" + onnx_op.lower())
            self.set_output(op.outputs[0], self.activation(y, act, base), False)

    def op_ADD(self, op):
        self._binary(op, "Add", op.options.scalar(0, "b"))

    def op_MUL(self, op):
        self._binary(op, "Mul", op.options.scalar(0, "b"))

    def op_SUB(self, op):
        self._binary(op, "Sub", op.options.scalar(0, "b"))

    def _unary(self, op: TfOperator, onnx_op: str, **attrs):
        base = self.out_base(op)
        is4 = op.inputs[0] in self.nchw
        x = self.names[op.inputs[0]] if is4 else self.plain_input(op.inputs[0])
        self.set_output(op.outputs[0], self.node(onnx_op, [x], base + "__" + onnx_op.lower(), **attrs), is4)

    def op_RELU(self, op):
        self._unary(op, "Relu")

    def op_LOGISTIC(self, op):
        self._unary(op, "Sigmoid")

    def op_TANH(self, op):
        self._unary(op, "Tanh")

    def op_HARD_SWISH(self, op):
        # ONNX HardSwish(x) = x * max(0, min(1, x/6 + 1/2)) = x * relu6(x + 3) / 6, TFLite's definition.
        self._unary(op, "HardSwish")

    def op_RELU6(self, op):
        is4 = op.inputs[0] in self.nchw
        x = self.names[op.inputs[0]] if is4 else self.plain_input(op.inputs[0])
        self.set_output(op.outputs[0], self.activation(x, ACT_RELU6, self.out_base(op)), is4)

    def op_PRELU(self, op: TfOperator):
        base = self.out_base(op)
        if op.inputs[0] in self.nchw:
            # relu(x) - slope * relu(-x) equals PRelu exactly (one rounding, same as slope * x) and runs about
            # twice as fast in ONNX Runtime's CPU provider, whose PRelu with a per-channel slope cannot stay in
            # its blocked NCHWc layout (measured on face_landmark: 3.2 ms -> 1.5 ms).
            x, slope = self.names[op.inputs[0]], self.nchw_input(op.inputs[1])
            pos = self.node("Relu", [x], base + "__pos")
            neg = self.node("Relu", [self.node("Neg", [x], base + "__negx")], base + "__neg")
            scaled = self.node("Mul", [neg, slope], base + "__scaled")
            self.set_output(op.outputs[0], self.node("Sub", [pos, scaled], base + "__prelu"), True)
        else:
            x, slope = self.plain_input(op.inputs[0]), self.plain_input(op.inputs[1])
            self.set_output(op.outputs[0], self.node("PRelu", [x, slope], base + "__prelu"), False)

    def op_PAD(self, op: TfOperator):
        pads = self.const(op.inputs[1]).astype(np.int64)  # (rank, 2): before/after per NHWC axis
        base = self.out_base(op)
        if op.inputs[0] in self.nchw:
            pads = pads[list(NHWC_TO_NCHW)]
            x = self.names[op.inputs[0]]
        else:
            x = self.plain_input(op.inputs[0])
        onnx_pads = self.initializer(np.concatenate([pads[:, 0], pads[:, 1]]), base + "__pads")
        self.set_output(op.outputs[0], self.node("Pad", [x, onnx_pads], base + "__pad", mode="constant"),
                        op.inputs[0] in self.nchw)

    def op_RESHAPE(self, op: TfOperator):
        # Reshape reorders nothing but re-reads memory, so it must see TFLite's NHWC element order.
        base = self.out_base(op)
        out_shape = self.shape(op.outputs[0])
        shape = self.initializer(np.array(out_shape, np.int64), base + "__shape")
        y = self.node("Reshape", [self.plain_input(op.inputs[0]), shape], base + "__reshape")
        if len(out_shape) == 4:
            y = self.node("Transpose", [y], base + "__nchw", perm=list(NHWC_TO_NCHW))
        self.set_output(op.outputs[0], y, len(out_shape) == 4)

    def op_CONCATENATION(self, op: TfOperator):
        o = op.options
        axis, act = o.scalar(0, "i", 0), o.scalar(1, "b")
        rank = len(self.shape(op.outputs[0]))
        axis %= rank
        base = self.out_base(op)
        if rank == 4:
            xs, axis = [self.nchw_input(i) for i in op.inputs], AXIS_NHWC_TO_NCHW[axis]
        else:
            xs = [self.plain_input(i) for i in op.inputs]
        y = self.node("Concat", xs, base + "__concat", axis=axis)
        self.set_output(op.outputs[0], self.activation(y, act, base), rank == 4)

    def op_RESIZE_BILINEAR(self, op: TfOperator):
        o = op.options
        align_corners = bool(o.scalar(2, "B", 0))
        half_pixel = bool(o.scalar(3, "B", 0))
        if align_corners:
            mode = "align_corners"
        elif half_pixel:
            # TF: src = (dst + 0.5) * in/out - 0.5, then clamp to the edge: ONNX "half_pixel" does the same.
            mode = "half_pixel"
        else:
            mode = "asymmetric"
        _, out_h, out_w, _ = self.shape(op.outputs[0])
        n, _, _, c = self.shape(op.inputs[0])
        base = self.out_base(op)
        sizes = self.initializer(np.array([n, c, out_h, out_w], np.int64), base + "__sizes")
        y = self.node("Resize", [self.nchw_input(op.inputs[0]), "", "", sizes], base + "__resize",
                      mode="linear", coordinate_transformation_mode=mode)
        self.set_output(op.outputs[0], y, True)


def convert(model: TfModel, graph_name: str = "tflite") -> onnx.ModelProto:
    return Converter(model, graph_name).run()
