"""Check a folder of user ONNX models against the written model contracts (inference/models/CONTRACTS.md).

A user model replaces the bundled model of the same file name, so it must keep that model's contract: one float32
input of the contract's static shape (NHWC; the face models also accept an NCHW re-export, which face.py
transposes for), and the same number of float32 outputs, in the same order, with the same shapes. Output names are
free. Each model is loaded through OnnxModel (the one session class) and run once on zeros, so a model whose
declared shapes lie is caught too. Problems raise RelightInputError naming the file, in one line.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..errors import RelightInputError
from .registry import MODELS, ModelContract, model_names
from .session import OnnxModel

CONTRACTS_DOC = "inference/models/CONTRACTS.md"


FLOAT_TENSOR = "tensor(float)"


def _shape(shape) -> str:
    return "(" + ", ".join(str(d) for d in shape) + ")"


def _nchw(shape: tuple[int, ...]) -> tuple[int, ...]:
    n, h, w, c = shape
    return (n, c, h, w)


def _check_input_shape(path: Path, name: str, shape: tuple, contract: ModelContract) -> None:
    """Fixed dimensions must match; the contract's named (dynamic) dimensions must be dynamic in the model too."""
    expected = contract.input_shape
    dynamic = any(isinstance(d, str) for d in expected)
    layout = "NCHW, dynamic height and width" if dynamic else "NHWC"
    if not dynamic and any(not isinstance(d, int) for d in shape):
        raise RelightInputError(path, f"input '{name}' has a dynamic shape {_shape(shape)}; the contract "
                                      f"needs the static {_shape(expected)} ({layout}, {CONTRACTS_DOC})")
    allowed = [expected] + ([_nchw(expected)] if contract.accepts_nchw else [])
    fits = any(len(shape) == len(option) and all(
        (isinstance(want, str) and not isinstance(got, int)) or got == want for got, want in zip(shape, option))
        for option in allowed)
    if not fits:
        raise RelightInputError(path, f"input '{name}' has shape {_shape(shape)}; the contract needs "
                                      f"{_shape(expected)} ({layout}, {CONTRACTS_DOC})")


def check_model(path: str | os.PathLike, name: str | None = None) -> None:
    """Raise RelightInputError(path, problem) unless the model at `path` keeps the contract of `name` (default:
    its file stem)."""
    path = Path(path)
    name = name or path.stem
    spec = MODELS.get(name)
    if spec is None:
        raise RelightInputError(path, f"'{name}' is not a model name of the contract (expected one of: "
                                      f"{model_names()})")
    contract = spec.contract
    model = OnnxModel(path, threads=1, provider="cpu")  # raises RelightInputError naming the file when unreadable
    inputs = model.session.get_inputs()
    if len(inputs) != 1:
        raise RelightInputError(path, f"has {len(inputs)} inputs; the contract has one, {_shape(contract.input_shape)}")
    tensor = inputs[0]
    shape = tuple(tensor.shape)
    _check_input_shape(path, tensor.name, shape, contract)
    if tensor.type != FLOAT_TENSOR:
        raise RelightInputError(path, f"input '{tensor.name}' is {tensor.type}; the contract needs float32")
    outputs = model.session.get_outputs()
    if len(outputs) != len(contract.output_shapes):
        raise RelightInputError(path, f"has {len(outputs)} outputs; the contract has {len(contract.output_shapes)}: "
                                      f"{', '.join(_shape(s) for s in contract.output_shapes)}")
    for output in outputs:
        if output.type != FLOAT_TENSOR:
            raise RelightInputError(path, f"output '{output.name}' is {output.type}; the contract needs float32")
    try:
        results = model.run(np.zeros(contract.probe(shape), np.float32))
    except Exception as exc:  # onnxruntime raises several unrelated types when a graph fails to run
        problem = " ".join(str(exc).split())
        raise RelightInputError(path, f"fails to run on a contract-sized input ({exc.__class__.__name__}: "
                                      f"{problem[:300]})") from exc
    for index, (output, expected) in enumerate(zip(model.outputs, contract.output_shapes)):
        expected = contract.probe(expected)
        got = tuple(results[output].shape)
        if got != expected:
            raise RelightInputError(path, f"output {index} '{output}' has shape {_shape(got)}; the contract needs "
                                          f"{_shape(expected)} ({CONTRACTS_DOC})")


_checked: dict[tuple, tuple[str, ...]] = {}


def check_models_dir(folder: str | os.PathLike) -> tuple[str, ...]:
    """Check every *.onnx in a user models folder; returns the model names it overrides.

    Raises RelightInputError naming the folder (missing, or holding no models) or the first bad file. Results are
    remembered per file state, so checking again before each job costs nothing until a file changes."""
    folder = Path(folder)
    if not folder.is_dir():
        raise RelightInputError(folder, "models folder does not exist")
    files = sorted(p for p in folder.iterdir() if p.suffix == ".onnx" and p.is_file())
    if not files:
        raise RelightInputError(folder, f"no .onnx models in this folder (names as in {CONTRACTS_DOC}: "
                                        f"{model_names()})")
    key = tuple((str(p), p.stat().st_mtime_ns, p.stat().st_size) for p in files)
    if key not in _checked:
        for path in files:
            check_model(path)
        _checked[key] = tuple(p.stem for p in files)
    return _checked[key]
