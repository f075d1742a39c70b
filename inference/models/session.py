"""The one place that creates ONNX Runtime sessions.

Owns the execution-provider choice and thread count, and reads input/output names and shapes from the model,
so a user's own ONNX file that follows the same contract (inference/models/CONTRACTS.md) drops in. Models are
named by their registry entry (models/registry.py); the stages load them with `load_model(spec, settings)`.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..errors import RelightInputError
from ..settings import RelightSettings
from .registry import MODELS, ModelSpec, model_names

BUNDLED_MODELS_DIR = Path(__file__).resolve().parent


def resolve_model(name: str, models_dir: str | os.PathLike | None = None) -> Path:
    """Path of `<name>.onnx` in the user's folder if it has one, else the bundled model."""
    if name not in MODELS:
        raise RelightInputError(None, f"'{name}' is not a registered model ({model_names()})")
    candidates = []
    if models_dir:
        candidates.append(Path(models_dir) / f"{name}.onnx")
    candidates.append(BUNDLED_MODELS_DIR / f"{name}.onnx")
    for path in candidates:
        if path.is_file():
            return path
    raise RelightInputError(
        candidates[0], f"model '{name}' not found (run `make models` to build the bundled models)"
    )


def available_providers(provider: str = "auto") -> list[str]:
    """Execution providers for `provider` in {'auto', 'cpu', 'cuda'}; CPU is always the fallback."""
    import onnxruntime as ort

    have = ort.get_available_providers()
    if provider not in ("auto", "cpu", "cuda"):
        raise RelightInputError(None, f"unknown execution provider '{provider}' (use auto, cpu or cuda)")
    chosen = []
    if provider in ("auto", "cuda") and "CUDAExecutionProvider" in have:
        chosen.append("CUDAExecutionProvider")
    chosen.append("CPUExecutionProvider")
    return chosen


class OnnxModel:
    """A loaded ONNX model: `run(**inputs)` or `run(array)` -> {output name: array}."""

    _cache: dict[tuple, "OnnxModel"] = {}

    def __init__(self, path: str | os.PathLike, threads: int = 0, provider: str = "auto"):
        import onnxruntime as ort

        self.path = Path(path)
        options = ort.SessionOptions()
        options.intra_op_num_threads = int(threads)
        options.log_severity_level = 3
        try:
            self.session = ort.InferenceSession(
                str(self.path), sess_options=options, providers=available_providers(provider)
            )
        except Exception as exc:  # onnxruntime raises several unrelated types for unreadable models
            raise RelightInputError(self.path, f"not a usable ONNX model ({exc.__class__.__name__}: {exc})") from exc
        self.inputs = {i.name: i for i in self.session.get_inputs()}
        self.outputs = [o.name for o in self.session.get_outputs()]
        self.input_names = list(self.inputs)

    @classmethod
    def load(cls, name: str, models_dir=None, threads: int = 0, provider: str = "auto") -> "OnnxModel":
        """Cached load of a named model (see resolve_model)."""
        path = resolve_model(name, models_dir)
        key = (str(path), path.stat().st_mtime_ns, int(threads), provider)
        model = cls._cache.get(key)
        if model is None:
            model = cls._cache[key] = cls(path, threads, provider)
        return model

    def input_shape(self, index: int = 0) -> list:
        return list(self.inputs[self.input_names[index]].shape)

    def run(self, *arrays: np.ndarray, **named: np.ndarray) -> dict[str, np.ndarray]:
        feeds = dict(zip(self.input_names, arrays))
        feeds.update(named)
        feeds = {k: np.ascontiguousarray(v, np.float32) for k, v in feeds.items()}
        return dict(zip(self.outputs, self.session.run(self.outputs, feeds)))


def load_model(spec: ModelSpec, settings: RelightSettings) -> OnnxModel:
    """The registered model `spec` (the user's replacement when settings.models_dir has one), cached."""
    return OnnxModel.load(spec.name, settings.models_dir, settings.threads, settings.provider)
