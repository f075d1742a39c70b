"""A small TFLite -> ONNX converter for the float MediaPipe models Portrait Relight uses.

    from tools.tflite2onnx import tflite_to_onnx
    onnx_model = tflite_to_onnx(open("model.tflite", "rb").read())

Only the ops those models contain are implemented (see converter.Converter.op_*); anything else raises
ConversionError naming the op, rather than producing a wrong graph.
"""

from __future__ import annotations

import onnx

from .converter import OPSET, ConversionError, convert
from .flatbuf import TfModel, read_tflite

__all__ = ["OPSET", "ConversionError", "TfModel", "convert", "read_tflite", "tflite_to_onnx"]


def tflite_to_onnx(data: bytes, graph_name: str = "tflite") -> onnx.ModelProto:
    """Parse TFLite flatbuffer bytes and return a checked ONNX model (NHWC inputs/outputs, TFLite names)."""
    model = convert(read_tflite(data), graph_name)
    onnx.checker.check_model(model, full_check=True)
    return model
