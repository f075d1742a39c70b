"""Start a run from exported weights: an ONNX file written by harness.export_onnx back into a torch state dict.

Every session of this project starts on a fresh machine: the pose cache and the checkpoints of earlier sessions are
gone, but the shipped ONNX weights are in the repo. Fine-tuning them on newly rendered poses (new identities:
`tools/lightstage.py --poses --start K`) lets what the nets learned carry over from session to session, where
training from scratch would only ever see one session's poses.

torch's exporter keeps the convolutions' parameter names but folds each GroupNorm into an instance normalisation
followed by a Mul (its weight) and an Add (its bias) on anonymous initializers. Those are matched in graph order:
in `nets._block` every GroupNorm directly follows the convolution whose module index is one lower.

Parameters a net added after a file was exported (the model's `fresh_prefixes`, e.g. the U-Net's global context)
keep their initial values, which leave the net's function unchanged: such a run starts from what was shipped.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import torch
from torch import nn

_CONV_WEIGHT = re.compile(r"^(?P<prefix>.+)\.(?P<index>\d+)\.weight$")


def state_from_onnx(path: str | Path, model: nn.Module) -> dict[str, torch.Tensor]:
    """`model`'s state dict filled from the ONNX file's initializers; raises ValueError when they do not cover
    every parameter with the same shapes (another architecture or widths), the model's `fresh_prefixes` apart:
    those the file lacks keep the model's own values."""
    import onnx
    from onnx import numpy_helper

    graph = onnx.load(str(path)).graph
    arrays = {init.name: numpy_helper.to_array(init) for init in graph.initializer}
    found = {name: array for name, array in arrays.items() if not name.startswith("onnx::")}
    norm_module, used = None, set()
    for node in graph.node:
        for name in node.input:
            if name not in arrays or name in used:
                continue
            used.add(name)
            match = _CONV_WEIGHT.match(name)
            if node.op_type == "Conv" and match:
                norm_module = f"{match['prefix']}.{int(match['index']) + 1}"
            elif name.startswith("onnx::") and node.op_type in ("Mul", "Add") and norm_module is not None:
                key = f"{norm_module}.{'weight' if node.op_type == 'Mul' else 'bias'}"
                found[key] = arrays[name].reshape(-1)
    state = model.state_dict()
    fresh = tuple(getattr(model, "fresh_prefixes", ()))
    for key, value in state.items():
        if key not in found and key.startswith(fresh):
            found[key] = value.numpy()
    missing = [key for key, value in state.items() if key not in found or found[key].shape != tuple(value.shape)]
    if missing:
        raise ValueError(f"{path}: no weights of the right shape for {len(missing)} of the model's {len(state)} "
                         f"parameters (first: {missing[0]}); is it this net's ONNX export?")
    return {key: torch.from_numpy(np.array(found[key], np.float32)) for key in state}
