"""Add-on preferences: registration, what reaches RelightSettings, and the user models folder checked against the
model contracts (a good copy of a bundled model passes; garbage or a wrong-shaped model is named in one line)."""

from __future__ import annotations

import os
import shutil

import numpy as np
import pytest

bpy = pytest.importorskip("bpy")

from portrait_relight.inference.errors import RelightInputError  # noqa: E402
from portrait_relight.inference.models import contracts as model_contracts  # noqa: E402
from portrait_relight.inference.models.registry import MODELS  # noqa: E402
from portrait_relight.inference.models.session import BUNDLED_MODELS_DIR  # noqa: E402
from portrait_relight.operators import preferences  # noqa: E402


@pytest.fixture
def prefs():
    """The preferences registered and the add-on entry present, as when Blender enables the extension."""
    preferences.register()
    addons = bpy.context.preferences.addons
    entry = addons.new()
    entry.module = preferences.ADDON_ID
    try:
        yield addons[preferences.ADDON_ID].preferences
    finally:
        addons.remove(entry)
        preferences.unregister()


def onnx_model(path, input_shape, output_shapes):
    """A tiny float32 ONNX model: each output is a ReduceMean of the input reshaped to the declared shape."""
    import onnx
    from onnx import TensorProto, helper

    nodes, outputs, inits = [], [], []
    for index, shape in enumerate(output_shapes):
        size = int(np.prod(shape))
        inits.append(helper.make_tensor(f"shape{index}", TensorProto.INT64, [len(shape)], list(shape)))
        inits.append(helper.make_tensor(f"slice{index}", TensorProto.INT64, [1], [size]))
        nodes.append(helper.make_node("Reshape", ["x", "flat"], [f"f{index}"]))
        nodes.append(helper.make_node("Slice", [f"f{index}", "zero", f"slice{index}"], [f"s{index}"]))
        nodes.append(helper.make_node("Reshape", [f"s{index}", f"shape{index}"], [f"y{index}"]))
        outputs.append(helper.make_tensor_value_info(f"y{index}", TensorProto.FLOAT, list(shape)))
    inits.append(helper.make_tensor("flat", TensorProto.INT64, [1], [-1]))
    inits.append(helper.make_tensor("zero", TensorProto.INT64, [1], [0]))
    graph = helper.make_graph(nodes, "contract_test",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(input_shape))], outputs,
                              inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def test_preferences_register_and_carry_settings(prefs, tmp_path):
    assert preferences.addon_preferences(bpy.context) == prefs
    assert prefs.bl_rna.identifier == "PortraitRelightPreferences"
    assert preferences.ADDON_ID == "portrait_relight"  # the package root, as Blender names the add-on
    settings = preferences.settings_from_preferences(bpy.context, 33.0)
    assert (settings.fov_deg, settings.threads, settings.provider, settings.models_dir) == (33.0, 0, "cpu", None)

    shutil.copy(BUNDLED_MODELS_DIR / "selfie_segmentation.onnx", tmp_path / "selfie_segmentation.onnx")
    prefs.threads = 3
    prefs.models_dir = str(tmp_path)
    settings = preferences.settings_from_preferences(bpy.context, 40.0)
    assert (settings.threads, settings.provider, settings.models_dir) == (3, "cpu", os.path.normpath(tmp_path))


def test_provider_menu_lists_the_gpu_providers_onnxruntime_offers(prefs, monkeypatch):
    import onnxruntime

    real = onnxruntime.get_available_providers()
    offered = {"CUDAExecutionProvider": "CUDA", "DmlExecutionProvider": "DIRECTML",
               "CoreMLExecutionProvider": "COREML"}
    names = [item[0] for item in preferences._provider_items(prefs, bpy.context)]
    assert names == ["CPU", *(offered[p] for p in offered if p in real)]

    # What the Windows zip's onnxruntime-directml and the macOS zips' onnxruntime report.
    for have, menu in ((["DmlExecutionProvider", "CPUExecutionProvider"], ["CPU", "DIRECTML"]),
                       (["CoreMLExecutionProvider", "CPUExecutionProvider"], ["CPU", "COREML"])):
        monkeypatch.setattr(onnxruntime, "get_available_providers", lambda have=have: have)
        preferences.offered_gpu_providers.cache_clear()
        assert [item[0] for item in preferences._provider_items(prefs, bpy.context)] == menu
        prefs.provider = menu[1]
        assert preferences.settings_from_preferences(bpy.context, 40.0).provider == menu[1].lower()
    # Core ML chosen before, not offered now (the .blend's preferences moved to another machine): the CPU.
    monkeypatch.setattr(onnxruntime, "get_available_providers", lambda: ["CPUExecutionProvider"])
    preferences.offered_gpu_providers.cache_clear()
    assert preferences.settings_from_preferences(bpy.context, 40.0).provider == "cpu"
    preferences.offered_gpu_providers.cache_clear()


def test_cache_folder(prefs, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    # Not installed as an extension here, so the cache falls back to the user cache folder.
    assert preferences.cache_folder(prefs) == tmp_path / "xdg" / "portrait_relight"
    prefs.cache_dir = str(tmp_path / "cache")
    assert preferences.cache_folder(prefs) == tmp_path / "cache"


def test_bundled_models_keep_the_written_contracts():
    for name in MODELS:
        model_contracts.check_model(BUNDLED_MODELS_DIR / f"{name}.onnx")


def test_good_user_models_folder_passes(tmp_path):
    shutil.copy(BUNDLED_MODELS_DIR / "face_landmark.onnx", tmp_path / "face_landmark.onnx")
    # An NCHW re-export of a face model is accepted: face.py transposes for it.
    onnx_model(tmp_path / "face_detection_short_range.onnx", (1, 3, 128, 128), [(1, 896, 16), (1, 896, 1)])
    assert model_contracts.check_models_dir(tmp_path) == ("face_detection_short_range", "face_landmark")
    ok, message = preferences.check_models(str(tmp_path))
    assert ok and "2 model(s)" in message


@pytest.mark.parametrize("case, problem", [
    ("garbage", "not a usable ONNX model"),
    ("nchw_segmentation", "input 'x' has shape (1, 3, 256, 256); the contract needs (1, 256, 256, 3)"),
    ("missing_output", "has 1 outputs; the contract has 2"),
    ("wrong_output", "output 1 'y1' has shape (1, 896, 2); the contract needs (1, 896, 1)"),
    ("unknown_name", "is not a model name of the contract"),
])
def test_broken_user_model_is_named_in_one_line(prefs, tmp_path, case, problem):
    folder = tmp_path / "models"
    folder.mkdir()
    shutil.copy(BUNDLED_MODELS_DIR / "face_landmark.onnx", folder / "face_landmark.onnx")  # a good one beside it
    if case == "garbage":
        bad = folder / "selfie_segmentation.onnx"
        bad.write_bytes(b"\x08\x01garbage, not a protobuf model")
    elif case == "nchw_segmentation":
        bad = onnx_model(folder / "selfie_segmentation.onnx", (1, 3, 256, 256), [(1, 256, 256, 1)])
    elif case == "missing_output":
        bad = onnx_model(folder / "face_detection_short_range.onnx", (1, 128, 128, 3), [(1, 896, 16)])
    elif case == "wrong_output":
        bad = onnx_model(folder / "face_detection_short_range.onnx", (1, 128, 128, 3), [(1, 896, 16), (1, 896, 2)])
    else:
        bad = folder / "my_segmenter.onnx"
        shutil.copy(BUNDLED_MODELS_DIR / "selfie_segmentation.onnx", bad)

    with pytest.raises(RelightInputError) as info:
        model_contracts.check_models_dir(folder)
    message = str(info.value)
    assert message.startswith(f"{bad}: ") and problem in message and "\n" not in message, message

    prefs.models_dir = str(folder)  # the update callback checks it; the operators refuse to start with it
    ok, status = preferences._models_status[os.path.normpath(folder)]
    assert not ok and status == message
    with pytest.raises(RelightInputError) as info:
        preferences.settings_from_preferences(bpy.context, 40.0)
    assert str(info.value) == message


def test_missing_or_empty_models_folder(tmp_path):
    with pytest.raises(RelightInputError, match="models folder does not exist"):
        model_contracts.check_models_dir(tmp_path / "nope")
    with pytest.raises(RelightInputError, match="no .onnx models"):
        model_contracts.check_models_dir(tmp_path)
