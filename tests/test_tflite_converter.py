"""Tests for tools/tflite2onnx: the flatbuffer reader, and every converted MediaPipe model against real TFLite.

The reference outputs come from the real TFLite interpreter (ai-edge-litert) running in the separate
`.venv-tflite` (it needs numpy 2; Blender's bpy needs numpy < 2), called by subprocess. If that venv is
missing or fails, the tests FAIL: a converter check without its reference proves nothing.
Override the interpreter with PORTRAIT_RELIGHT_TFLITE_PYTHON.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import build_models  # tools/ is on the test path (pytest.ini)
import flatbuffers
import numpy as np
import onnxruntime as ort
import pytest
import tflite2onnx
from tflite2onnx.converter import same_padding

from portrait_relight.inference.models.registry import MEDIAPIPE_VERSION, ModelContract, ModelSpec, WheelMember

REPO = Path(__file__).resolve().parents[1]

RUNNER = REPO / "tools" / "tflite2onnx" / "reference_runner.py"
# BlazePose is not shipped (no stage uses it), but its graph exercises converter paths the shipped models do not.
CONVERTER_ONLY = [ModelSpec(
    "pose_landmark_full", "converter test only",
    WheelMember("mediapipe", MEDIAPIPE_VERSION, "mediapipe/modules/pose_landmark/pose_landmark_full.tflite"),
    "e9a5c5cb17f736fafd4c2ec1da3b3d331d6edbe8a0d32395855aeb2cdfd64b9f",
    ModelContract((1, 256, 256, 3), ((1, 195), (1, 1), (1, 256, 256, 1), (1, 64, 64, 39), (1, 117))), "Apache-2.0")]
CONVERTED = build_models.WHEEL_MODELS + CONVERTER_ONLY
# Input value range each model expects (see inference/models/CONTRACTS.md).
INPUT_RANGE = {"selfie_segmentation": (0.0, 1.0), "pose_landmark_full": (0.0, 1.0),
               "face_landmark": (0.0, 1.0), "face_detection_short_range": (-1.0, 1.0)}
# Crop (rows, cols) of the astronaut photo per model: the face models see the face, the others the whole photo.
PHOTO_CROP = {"face_landmark": (slice(40, 220), slice(150, 330))}
REL_TOL = 1e-3  # max abs error allowed, relative to the reference output's range (at least 1)


def reference_python() -> Path:
    override = os.environ.get("PORTRAIT_RELIGHT_TFLITE_PYTHON")
    if override:
        return Path(override)
    venv = REPO / ".venv-tflite"
    return venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


@pytest.fixture(scope="session")
def tflite_files(tmp_path_factory) -> dict[str, Path]:
    """The pinned .tflite files, read from the cached (or freshly downloaded) mediapipe wheel."""
    wheel = build_models.find_wheel(build_models.default_cache_dir())
    blobs = build_models.read_members(wheel, CONVERTED)
    folder = tmp_path_factory.mktemp("tflite")
    paths = {}
    for name, data in blobs.items():
        paths[name] = folder / (name + ".tflite")
        paths[name].write_bytes(data)
    return paths


def model_inputs(name: str, shape) -> dict[str, np.ndarray]:
    from PIL import Image
    from skimage import data

    _, h, w, _ = shape
    lo, hi = INPUT_RANGE[name]
    photo = data.astronaut()[PHOTO_CROP.get(name, (slice(None), slice(None)))]
    # MediaPipe feeds the sRGB-encoded 8-bit values, scaled linearly to the model's range.
    photo = np.asarray(Image.fromarray(photo).resize((w, h), Image.BILINEAR), np.float32) / 255.0
    rng = np.random.default_rng(1234)
    unit = {"photo": photo[None], "random": rng.random((1, h, w, 3), dtype=np.float32)}
    return {k: (lo + (hi - lo) * v).astype(np.float32) for k, v in unit.items()}


def run_reference(tflite: Path, cases: dict[str, np.ndarray], out_dir: Path) -> str:
    python = reference_python()
    if not python.exists():
        pytest.fail("TFLite reference interpreter missing: %s (create it with `make tflite-venv`)" % python)
    np.savez(out_dir / "inputs.npz", **cases)
    proc = subprocess.run([str(python), str(RUNNER), str(tflite), str(out_dir / "inputs.npz"), str(out_dir)],
                          capture_output=True, text=True)
    if proc.returncode != 0 or not (out_dir / "ok.txt").exists():
        pytest.fail("TFLite reference run failed (rc %d):\n%s" % (proc.returncode, proc.stderr[-3000:]))
    return (out_dir / "resolver.txt").read_text().strip()


@pytest.mark.parametrize("name", [s.name for s in CONVERTED])
def test_converted_model_matches_tflite(name, tflite_files, tmp_path):
    data = tflite_files[name].read_bytes()
    onnx_model = tflite2onnx.tflite_to_onnx(data, graph_name=name)
    session = ort.InferenceSession(onnx_model.SerializeToString(), providers=["CPUExecutionProvider"])
    (inp,) = session.get_inputs()
    tf_model = tflite2onnx.read_tflite(data)
    # The contract: TFLite's NHWC shapes and tensor names on both sides of the graph.
    assert inp.name == tf_model.tensors[tf_model.inputs[0]].name
    assert tuple(inp.shape) == tf_model.tensors[tf_model.inputs[0]].shape
    assert [o.name for o in session.get_outputs()] == [tf_model.tensors[i].name for i in tf_model.outputs]

    cases = model_inputs(name, inp.shape)
    resolver = run_reference(tflite_files[name], cases, tmp_path)
    failures = []
    for case, x in cases.items():
        got = session.run(None, {inp.name: x})
        for out, value in zip(session.get_outputs(), got):
            ref = np.load(tmp_path / ("%s__%s.npy" % (case, out.name)))
            assert value.shape == ref.shape, (case, out.name)
            err = float(np.abs(value - ref).max())
            scale = max(float(np.ptp(ref)), 1.0)
            print("%s[%s] %s: max abs err %.3g, ref range [%.4g, %.4g], tflite resolver %s"
                  % (name, case, out.name, err, ref.min(), ref.max(), resolver))
            if not err <= REL_TOL * scale:
                failures.append("%s %s: max abs err %.3g > %.3g" % (case, out.name, err, REL_TOL * scale))
    assert not failures, failures


def test_face_landmark_sees_the_astronaut_face(tflite_files):
    """Sanity check of the written contract on a real face: high presence logit, landmarks inside the crop."""
    onnx_model = tflite2onnx.tflite_to_onnx(tflite_files["face_landmark"].read_bytes())
    session = ort.InferenceSession(onnx_model.SerializeToString(), providers=["CPUExecutionProvider"])
    x = model_inputs("face_landmark", (1, 192, 192, 3))["photo"]
    landmarks, presence = session.run(["conv2d_21", "conv2d_31"], {"input_1": x})
    xyz = landmarks.reshape(468, 3)
    assert presence.item() > 5.0  # a logit: sigmoid(5) > 0.99
    assert xyz[:, :2].min() > 0 and xyz[:, :2].max() < 192


# ---- flatbuffer reader ---------------------------------------------------------------------------------

def test_reader_knows_selfie_segmentation(tflite_files):
    m = tflite2onnx.read_tflite(tflite_files["selfie_segmentation"].read_bytes())
    counts = {}
    for op in m.operators:
        counts[op.opcode] = counts.get(op.opcode, 0) + 1
    assert counts == {"DEQUANTIZE": 110, "CONV_2D": 43, "HARD_SWISH": 11, "RELU": 22, "DEPTHWISE_CONV_2D": 11,
                      "AVERAGE_POOL_2D": 10, "LOGISTIC": 11, "MUL": 10, "ADD": 14, "RESIZE_BILINEAR": 3,
                      "Convolution2DTransposeBias": 1}
    (i,), (o,) = m.inputs, m.outputs
    assert (m.tensors[i].name, m.tensors[i].shape, m.tensors[i].dtype) == ("input_1", (1, 256, 256, 3), np.float32)
    assert (m.tensors[o].name, m.tensors[o].shape) == ("activation_10", (1, 256, 256, 1))
    (tconv,) = [op for op in m.operators if op.opcode == "Convolution2DTransposeBias"]
    assert np.frombuffer(tconv.custom_options[:12], "<i4").tolist() == [1, 2, 2]  # SAME, stride 2x2
    assert m.tensors[tconv.inputs[1]].shape == (1, 2, 2, 16)  # OHWI


def test_same_padding_puts_the_odd_pixel_last():
    assert same_padding(7, 3, 2) == (1, 1)
    assert same_padding(8, 3, 2) == (0, 1)
    assert same_padding(256, 2, 2) == (0, 0)
    assert same_padding(5, 5, 1) == (2, 2)


def _build_tiny_tflite(w_conv: np.ndarray, b_conv: np.ndarray, w_dw: np.ndarray, out_len: int) -> bytes:
    """A handmade TFLite flatbuffer: input (1,5,7,2) -> DEQUANTIZE(fp16 weights) -> CONV_2D 3x3/2 SAME + RELU6
    -> DEPTHWISE_CONV_2D 3x3/1 SAME, multiplier 2 -> RESHAPE (1, out_len). Field ids per schema.fbs."""
    b = flatbuffers.Builder(1024)

    def vec_i32(values):
        b.StartVector(4, len(values), 4)
        for v in reversed(values):
            b.PrependInt32(v)
        return b.EndVector()

    def vec_offsets(offsets):
        b.StartVector(4, len(offsets), 4)
        for off in reversed(offsets):
            b.PrependUOffsetTRelative(off)
        return b.EndVector()

    def buffer(raw: bytes | None):
        data = b.CreateByteVector(raw) if raw else None
        b.StartObject(1)
        if data:
            b.PrependUOffsetTRelativeSlot(0, data, 0)
        return b.EndObject()

    def tensor(shape, ttype, buf, name):
        name_off, shape_off = b.CreateString(name), vec_i32(shape)
        b.StartObject(4)
        b.PrependUOffsetTRelativeSlot(0, shape_off, 0)
        b.PrependInt8Slot(1, ttype, 0)
        b.PrependUint32Slot(2, buf, 0)
        b.PrependUOffsetTRelativeSlot(3, name_off, 0)
        return b.EndObject()

    def options(fields):  # fields: list of (slot, struct kind, value)
        b.StartObject(max(f[0] for f in fields) + 1)
        for slot, kind, value in fields:
            if kind == "b":  # defaults outside every value used, so each field is really written
                b.PrependInt8Slot(slot, value, -128)
            else:
                b.PrependInt32Slot(slot, value, -(2 ** 31))
        return b.EndObject()

    def operator(opcode_index, ins, outs, opts=None, opts_type=0):
        ins_off, outs_off = vec_i32(ins), vec_i32(outs)
        b.StartObject(5)
        b.PrependUint32Slot(0, opcode_index, 0xFFFFFFFF)
        b.PrependUOffsetTRelativeSlot(1, ins_off, 0)
        b.PrependUOffsetTRelativeSlot(2, outs_off, 0)
        if opts is not None:
            b.PrependUint8Slot(3, opts_type, 0)
            b.PrependUOffsetTRelativeSlot(4, opts, 0)
        return b.EndObject()

    def opcode(code):  # new-style file: deprecated code 0 (ADD) is overridden by builtin_code
        b.StartObject(4)
        b.PrependInt8Slot(0, min(code, 127), -1)
        b.PrependInt32Slot(3, code, -1)
        return b.EndObject()

    bufs = [buffer(None), buffer(w_conv.astype(np.float16).tobytes()), buffer(b_conv.tobytes()),
            buffer(w_dw.tobytes())]
    c_mid = w_conv.shape[0]
    tensors = [tensor([1, 5, 7, 2], 0, 0, "image"), tensor(list(w_conv.shape), 1, 1, "w_fp16"),
               tensor(list(w_conv.shape), 0, 0, "w"), tensor([c_mid], 0, 2, "bias"),
               tensor([1, 3, 4, c_mid], 0, 0, "conv"), tensor(list(w_dw.shape), 0, 3, "w_dw"),
               tensor([1, 3, 4, 2 * c_mid], 0, 0, "dw"), tensor([1, out_len], 0, 0, "flat")]
    ops = [operator(0, [1], [2]),
           operator(1, [0, 2, 3], [4], options([(0, "b", 0), (1, "i", 2), (2, "i", 2), (3, "b", 3)]), 1),
           operator(2, [4, 5, -1], [6], options([(0, "b", 0), (1, "i", 1), (2, "i", 1), (3, "i", 2)]), 2),
           operator(3, [6], [7])]
    codes = [opcode(6), opcode(3), opcode(4), opcode(22)]
    t_vec, o_vec = vec_offsets(tensors), vec_offsets(ops)
    in_vec, out_vec = vec_i32([0]), vec_i32([7])
    b.StartObject(4)
    b.PrependUOffsetTRelativeSlot(0, t_vec, 0)
    b.PrependUOffsetTRelativeSlot(1, in_vec, 0)
    b.PrependUOffsetTRelativeSlot(2, out_vec, 0)
    b.PrependUOffsetTRelativeSlot(3, o_vec, 0)
    subgraph = b.EndObject()
    codes_vec, sg_vec, buf_vec = vec_offsets(codes), vec_offsets([subgraph]), vec_offsets(bufs)
    b.StartObject(5)
    b.PrependUint32Slot(0, 3, 0)
    b.PrependUOffsetTRelativeSlot(1, codes_vec, 0)
    b.PrependUOffsetTRelativeSlot(2, sg_vec, 0)
    b.PrependUOffsetTRelativeSlot(4, buf_vec, 0)
    b.Finish(b.EndObject(), file_identifier=b"TFL3")
    return bytes(b.Output())


def _conv_nhwc_same(x, w, stride, bias=None, depthwise_mult=0):
    """Direct-loop NHWC convolution with TF 'SAME' padding (written independently of the converter)."""
    _, h, wd, c = x.shape
    kh, kw = w.shape[1], w.shape[2]
    oh, ow = -(-h // stride), -(-wd // stride)
    pad_h = max((oh - 1) * stride + kh - h, 0)
    pad_w = max((ow - 1) * stride + kw - wd, 0)
    xp = np.pad(x, ((0, 0), (pad_h // 2, pad_h - pad_h // 2), (pad_w // 2, pad_w - pad_w // 2), (0, 0)))
    n_out = w.shape[3] if depthwise_mult else w.shape[0]
    y = np.zeros((1, oh, ow, n_out), np.float64)
    for i in range(oh):
        for j in range(ow):
            patch = xp[0, i * stride:i * stride + kh, j * stride:j * stride + kw, :]
            if depthwise_mult:
                y[0, i, j] = np.einsum("hwc,hwcm->cm", patch, w[0].reshape(kh, kw, c, depthwise_mult)).ravel()
            else:
                y[0, i, j] = np.einsum("hwc,ohwc->o", patch, w)
    return y + (0 if bias is None else bias)


def test_handmade_model_converts_exactly():
    rng = np.random.default_rng(7)
    w_conv = rng.normal(size=(3, 3, 3, 2)).astype(np.float32)  # OHWI
    b_conv = rng.normal(size=3).astype(np.float32)
    w_dw = rng.normal(size=(1, 3, 3, 6)).astype(np.float32)  # 1, kh, kw, C * multiplier
    data = _build_tiny_tflite(w_conv, b_conv, w_dw, out_len=3 * 4 * 6)

    m = tflite2onnx.read_tflite(data)
    assert [op.opcode for op in m.operators] == ["DEQUANTIZE", "CONV_2D", "DEPTHWISE_CONV_2D", "RESHAPE"]
    assert m.tensors[1].dtype == np.float16 and m.tensors[1].data.shape == (3, 3, 3, 2)
    assert m.operators[2].inputs == [4, 5, -1]

    x = rng.normal(size=(1, 5, 7, 2)).astype(np.float32)
    w16 = w_conv.astype(np.float16).astype(np.float64)  # what DEQUANTIZE of the fp16 buffer yields
    expected = np.clip(_conv_nhwc_same(x, w16, 2, b_conv), 0, 6)
    expected = _conv_nhwc_same(expected, w_dw.astype(np.float64), 1, depthwise_mult=2).reshape(1, -1)

    session = ort.InferenceSession(tflite2onnx.tflite_to_onnx(data).SerializeToString(),
                                   providers=["CPUExecutionProvider"])
    (got,) = session.run(["flat"], {"image": x})
    np.testing.assert_allclose(got, expected, atol=1e-4)


def test_unknown_op_is_refused():
    m = tflite2onnx.read_tflite(_build_tiny_tflite(np.ones((1, 3, 3, 2), np.float32), np.zeros(1, np.float32),
                                                   np.ones((1, 3, 3, 2), np.float32), 24))
    m.operators[3].opcode = "BUILTIN_999"
    with pytest.raises(tflite2onnx.ConversionError, match="BUILTIN_999"):
        tflite2onnx.convert(m)
