"""The one place that creates ONNX Runtime sessions.

Owns the execution-provider choice and thread count, and reads input/output names and shapes from the model,
so a user's own ONNX file that follows the same contract (inference/models/CONTRACTS.md) drops in. Models are
named by their registry entry (models/registry.py); the stages load them with `load_model(spec, settings)`.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np

from ..errors import RelightInputError
from ..settings import PROVIDERS, RelightSettings
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


# The `provider` setting -> onnxruntime's provider. Which ones a zip offers depends on its onnxruntime build:
# CUDA needs onnxruntime-gpu (not bundled), DirectML is in the Windows zip (onnxruntime-directml) and Core ML in
# the macOS zips. 'auto' takes CUDA when offered, else the CPU; DirectML and Core ML run only when chosen.
GPU_PROVIDERS = {"cuda": "CUDAExecutionProvider", "directml": "DmlExecutionProvider",
                 "coreml": "CoreMLExecutionProvider"}
PROVIDER_LABELS = {"cuda": "CUDA", "directml": "DirectML", "coreml": "Core ML"}
_warned: set[str] = set()


def warn_once(message: str) -> None:
    """One stderr line per distinct message (a shot would repeat it for every model and frame)."""
    if message not in _warned:
        _warned.add(message)
        print(f"Portrait Relight: {message}", file=sys.stderr, flush=True)


def offered_gpu_providers() -> list[str]:
    """The GPU `provider` settings this onnxruntime build offers, e.g. ['coreml'] on a Mac."""
    import onnxruntime as ort

    have = ort.get_available_providers()
    return [setting for setting, name in GPU_PROVIDERS.items() if name in have]


def available_providers(provider: str = "auto") -> list[str]:
    """onnxruntime providers for the `provider` setting, in order; the CPU always comes last as the fallback."""
    if provider not in PROVIDERS:
        raise RelightInputError(None, f"unknown execution provider '{provider}' (use {', '.join(PROVIDERS)})")
    wanted = "cuda" if provider == "auto" else provider
    if wanted in offered_gpu_providers():
        return [GPU_PROVIDERS[wanted], "CPUExecutionProvider"]
    if provider in GPU_PROVIDERS:
        import onnxruntime as ort

        warn_once(f"this onnxruntime ({ort.__version__}) has no {PROVIDER_LABELS[provider]} execution provider; "
                  "running on the CPU")
    return ["CPUExecutionProvider"]


def _label(ort_provider: str) -> str:
    return next(PROVIDER_LABELS[k] for k, v in GPU_PROVIDERS.items() if v == ort_provider)


class OnnxModel:
    """A loaded ONNX model: `run(**inputs)` or `run(array)` -> {output name: array}."""

    _cache: dict[tuple, "OnnxModel"] = {}

    def __init__(self, path: str | os.PathLike, threads: int = 0, provider: str = "auto"):
        import onnxruntime as ort

        self.path = Path(path)
        options = ort.SessionOptions()
        options.intra_op_num_threads = int(threads)
        options.log_severity_level = 3
        providers = available_providers(provider)
        if providers[0] == GPU_PROVIDERS["directml"]:  # DirectML runs neither memory patterns nor parallel nodes
            options.enable_mem_pattern = False
            options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        try:
            self.session = self._session(providers, options)
        except RelightInputError as exc:
            if len(providers) == 1:
                raise
            self.session = self._session(["CPUExecutionProvider"], options)  # fails too if the model is at fault
            warn_once(f"the {_label(providers[0])} execution provider failed on {self.path.name} ({exc}); "
                      "running it on the CPU")
        else:
            if providers[0] not in self.session.get_providers():
                warn_once(f"the {_label(providers[0])} execution provider did not load for {self.path.name}; "
                          "running it on the CPU")
        self.inputs = {i.name: i for i in self.session.get_inputs()}
        self.outputs = [o.name for o in self.session.get_outputs()]
        self.input_names = list(self.inputs)

    def _session(self, providers: list[str], options):
        import onnxruntime as ort

        try:
            return ort.InferenceSession(str(self.path), sess_options=options, providers=providers)
        except Exception as exc:  # onnxruntime raises several unrelated types for unreadable models
            raise RelightInputError(self.path, f"not a usable ONNX model ({exc.__class__.__name__}: {exc})") from exc

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
