"""The one ONNX session class: bundled vs user models, providers, and clear errors for unusable models."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from portrait_relight.inference import onnx_session
from portrait_relight.inference.errors import RelightInputError
from portrait_relight.inference.onnx_session import OnnxModel, resolve_model


def test_user_folder_overrides_bundled_model(tmp_path):
    bundled = resolve_model("selfie_segmentation")
    assert bundled.parent == onnx_session.BUNDLED_MODELS_DIR
    shutil.copy(bundled, tmp_path / "selfie_segmentation.onnx")
    assert resolve_model("selfie_segmentation", tmp_path) == tmp_path / "selfie_segmentation.onnx"
    assert resolve_model("face_landmark", tmp_path) == onnx_session.BUNDLED_MODELS_DIR / "face_landmark.onnx"
    user = OnnxModel.load("selfie_segmentation", tmp_path, threads=1, provider="cpu")
    reference = OnnxModel.load("selfie_segmentation")
    batch = np.random.default_rng(0).random((1, 256, 256, 3), np.float32)
    # names and shapes come from the model file itself, not from code
    assert user.input_names == ["input_1"] and user.input_shape() == [1, 256, 256, 3]
    a, b = user.run(batch), reference.run(batch)
    assert list(a) == list(b) and np.array_equal(next(iter(a.values())), next(iter(b.values())))


def test_broken_and_missing_models_are_named(tmp_path):
    (tmp_path / "face_landmark.onnx").write_bytes(b"definitely not protobuf")
    with pytest.raises(RelightInputError) as info:
        OnnxModel.load("face_landmark", tmp_path)
    assert str(info.value).startswith(str(tmp_path / "face_landmark.onnx")) and "not a usable ONNX model" in str(
        info.value)
    with pytest.raises(RelightInputError, match="model 'no_such_model' not found"):
        resolve_model("no_such_model", tmp_path)


def test_providers_fall_back_to_cpu():
    assert onnx_session.available_providers("cpu") == ["CPUExecutionProvider"]
    assert onnx_session.available_providers("auto")[-1] == "CPUExecutionProvider"
    with pytest.raises(RelightInputError, match="unknown execution provider"):
        onnx_session.available_providers("tpu")
