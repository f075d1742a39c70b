"""The one ONNX session class: bundled vs user models, providers, and clear errors for unusable models."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from portrait_relight.inference.errors import RelightInputError
from portrait_relight.inference.models import session as onnx_session
from portrait_relight.inference.models.session import OnnxModel, resolve_model


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


def test_broken_and_missing_models_are_named(tmp_path, monkeypatch):
    (tmp_path / "face_landmark.onnx").write_bytes(b"definitely not protobuf")
    with pytest.raises(RelightInputError) as info:
        OnnxModel.load("face_landmark", tmp_path)
    assert str(info.value).startswith(str(tmp_path / "face_landmark.onnx")) and "not a usable ONNX model" in str(
        info.value)
    with pytest.raises(RelightInputError, match="'no_such_model' is not a registered model"):
        resolve_model("no_such_model", tmp_path)
    monkeypatch.setattr(onnx_session, "BUNDLED_MODELS_DIR", tmp_path / "unbuilt")
    with pytest.raises(RelightInputError, match="model 'selfie_segmentation' not found .*make models"):
        resolve_model("selfie_segmentation", tmp_path)


def test_providers_fall_back_to_cpu():
    assert onnx_session.available_providers("cpu") == ["CPUExecutionProvider"]
    assert onnx_session.available_providers("auto")[-1] == "CPUExecutionProvider"
    with pytest.raises(RelightInputError, match="unknown execution provider"):
        onnx_session.available_providers("tpu")


def _cpu_reference_and_input():
    model = OnnxModel(resolve_model("selfie_segmentation"), provider="cpu")
    batch = np.random.default_rng(1).random((1, 256, 256, 3), np.float32)
    return model, batch


@pytest.mark.parametrize("provider", ["cuda", "directml", "coreml"])
def test_a_gpu_provider_this_onnxruntime_lacks_runs_on_the_cpu_with_one_message(provider, monkeypatch, capsys):
    import onnxruntime

    if onnx_session.GPU_PROVIDERS[provider] in onnxruntime.get_available_providers():
        pytest.fail(f"this test machine's onnxruntime offers {provider}; the test expects the CPU build")
    monkeypatch.setattr(onnx_session, "_warned", set())
    reference, batch = _cpu_reference_and_input()
    for _ in range(2):
        model = OnnxModel(resolve_model("selfie_segmentation"), provider=provider)
        assert model.session.get_providers() == ["CPUExecutionProvider"]
        np.testing.assert_array_equal(next(iter(model.run(batch).values())),
                                      next(iter(reference.run(batch).values())))
    lines = capsys.readouterr().err.splitlines()
    assert lines == [f"Portrait Relight: this onnxruntime ({onnxruntime.__version__}) has no "
                     f"{onnx_session.PROVIDER_LABELS[provider]} execution provider; running on the CPU"]


def test_a_gpu_provider_that_does_not_load_falls_back_to_the_cpu(monkeypatch, capsys):
    """onnxruntime lists CUDA but cannot start it (the driver or cuDNN missing): it silently runs on the CPU, and
    we say so once. When creating the session raises instead, the CPU session replaces it, also with one line."""
    import onnxruntime

    monkeypatch.setattr(onnx_session, "_warned", set())
    reference, batch = _cpu_reference_and_input()
    monkeypatch.setattr(onnxruntime, "get_available_providers",
                        lambda: ["CUDAExecutionProvider", "CPUExecutionProvider"])
    model = OnnxModel(resolve_model("selfie_segmentation"), provider="auto")
    assert model.session.get_providers() == ["CPUExecutionProvider"]  # onnxruntime's CPU build ignored CUDA
    assert capsys.readouterr().err.strip() == ("Portrait Relight: the CUDA execution provider did not load for "
                                               "selfie_segmentation.onnx; running it on the CPU")

    real_session = onnxruntime.InferenceSession

    def session_failing_on_gpu(path, sess_options=None, providers=()):
        if providers != ["CPUExecutionProvider"]:
            raise RuntimeError("CUDA failure 35: CUDA driver version is insufficient")
        return real_session(path, sess_options=sess_options, providers=providers)

    monkeypatch.setattr(onnxruntime, "InferenceSession", session_failing_on_gpu)
    model = OnnxModel(resolve_model("selfie_segmentation"), provider="cuda")
    np.testing.assert_array_equal(next(iter(model.run(batch).values())), next(iter(reference.run(batch).values())))
    message = capsys.readouterr().err.strip()
    assert message.startswith("Portrait Relight: the CUDA execution provider failed on selfie_segmentation.onnx (")
    assert "driver version is insufficient" in message and message.endswith("running it on the CPU")


def test_written_contracts_agree_with_the_registry():
    """Every registered model has a section in CONTRACTS.md whose shape table lists exactly its contract's input
    and output shapes, in order; no section describes a model the registry does not have."""
    import re

    from portrait_relight.inference.models.registry import MODELS, WheelMember

    text = (onnx_session.BUNDLED_MODELS_DIR / "CONTRACTS.md").read_text()
    sections = dict(re.findall(r"^## (\w+)\.onnx[^\n]*\n(.*?)(?=^## |\Z)", text, flags=re.M | re.S))
    assert set(sections) == set(MODELS)
    for name, spec in MODELS.items():
        rows = re.findall(r"^\| (in|out) \| `[^`]+` \| \(([\w, ]+)\) \|", sections[name], flags=re.M)
        shapes = [(kind, tuple(int(d) if d.strip().isdigit() else d.strip() for d in dims.split(",")))
                  for kind, dims in rows]
        expected = [("in", spec.contract.input_shape)] + [("out", s) for s in spec.contract.output_shapes]
        assert shapes == expected, name
        where = spec.source.member if isinstance(spec.source, WheelMember) else spec.source.describe()
        assert where in sections[name], name


def test_committed_nets_match_their_registry_checksums():
    """Our own trained nets are committed files: the registry's SHA-256 pins exactly those weights."""
    import hashlib

    from portrait_relight.inference.models.registry import MODELS, CommittedOnnx

    committed = [spec for spec in MODELS.values() if isinstance(spec.source, CommittedOnnx)]
    assert committed
    for spec in committed:
        data = (onnx_session.BUNDLED_MODELS_DIR / spec.file_name).read_bytes()
        assert hashlib.sha256(data).hexdigest() == spec.sha256, spec.name
