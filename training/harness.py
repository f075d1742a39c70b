"""The one training loop every net uses: fixed seeds, a time or step budget, resumable checkpoints, validation on
fixed batches, loss curves as a PNG, and ONNX export with a dynamic spatial size.

A run lives in one folder: `checkpoint.pt` (model, optimiser, step, random states, history; written through a temp
file and a rename, so a killed run resumes from its last checkpoint), `history.json` and `curves.png`. Running
the same command again continues where it stopped; `minutes` is the budget of that call, and each call's learning
rate follows a cosine from the configured rate down to a fraction of it over that budget (its minutes, or its
remaining steps).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np
import torch
from torch import nn

Batch = tuple[torch.Tensor, torch.Tensor, torch.Tensor]  # inputs (B, C, H, W), targets, masks (B, 1, H, W)


class Task(Protocol):
    """What a net's training module provides (training/geometry.py is one)."""

    name: str

    def make_model(self) -> nn.Module: ...

    def train_batches(self, rng: np.random.Generator, batch_size: int) -> Iterator[Batch]: ...

    def validation_batches(self) -> list[Batch]: ...

    def loss(self, output: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor: ...

    def training_loss(self, output: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """What the optimiser minimises on a training batch: `loss`, plus whatever terms the task's training
        batches carry (validation is always scored by `loss` alone)."""
        ...

    def metric(self, output: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> float: ...


@dataclass
class RunConfig:
    batch_size: int = 8
    learning_rate: float = 1e-3
    seed: int = 0
    validate_every: int = 50  # steps; also when checkpoints are written
    threads: int = 2
    final_lr_fraction: float = 0.1  # the learning rate falls along a cosine to this fraction by the call's end


@dataclass
class History:
    steps: list[int] = field(default_factory=list)  # validation points
    train_loss: list[float] = field(default_factory=list)  # mean training loss since the previous point
    val_loss: list[float] = field(default_factory=list)
    val_metric: list[float] = field(default_factory=list)
    seconds: float = 0.0  # training wall time over all calls
    samples: int = 0
    initialised_from: str = ""  # the ONNX file (and its sha256 prefix) a warm-started run began from


def _save_atomic(state: dict, path: Path) -> None:
    temp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    torch.save(state, temp)
    os.replace(temp, path)


def validate(task: Task, model: nn.Module, batches: list[Batch]) -> tuple[float, float]:
    model.eval()
    with torch.no_grad():
        results = [(float(task.loss(model(x), y, m)), task.metric(model(x), y, m)) for x, y, m in batches]
    model.train()
    return float(np.mean([r[0] for r in results])), float(np.mean([r[1] for r in results]))


def train(task: Task, out_dir: Path, config: RunConfig = RunConfig(), minutes: float | None = None,
          steps: int | None = None, log=print, init: Path | None = None) -> tuple[nn.Module, History]:
    """Train until `steps` (total, over all calls) or `minutes` (this call) is reached, whichever comes first;
    resumes from out_dir/checkpoint.pt when present, else starts from the weights of the ONNX file `init` (an
    earlier export of this net, training/warm_start.py) when given."""
    if minutes is None and steps is None:
        raise ValueError("give a time budget (minutes) or a step count")
    torch.set_num_threads(config.threads)
    out_dir.mkdir(parents=True, exist_ok=True)
    checkpoint = out_dir / "checkpoint.pt"
    torch.manual_seed(config.seed)
    model = task.make_model()
    optimiser = torch.optim.Adam(model.parameters(), lr=config.learning_rate)
    rng = np.random.default_rng(config.seed)
    history, step = History(), 0
    if checkpoint.is_file():
        state = torch.load(checkpoint, weights_only=False)
        model.load_state_dict(state["model"])
        optimiser.load_state_dict(state["optimiser"])
        rng.bit_generator.state = state["numpy_rng"]
        torch.set_rng_state(state["torch_rng"])
        history, step = History(**state["history"]), state["step"]
        log(f"{task.name}: resuming at step {step}")
    elif init is not None:
        from .warm_start import state_from_onnx

        model.load_state_dict(state_from_onnx(init, model))
        digest = hashlib.sha256(Path(init).read_bytes()).hexdigest()
        history.initialised_from = f"{Path(init).name} sha256 {digest[:12]}"
        log(f"{task.name}: starting from the weights of {init}")
    validation = task.validation_batches()
    batches = task.train_batches(rng, config.batch_size)
    call_start, first_step = time.monotonic(), step
    deadline = call_start + 60.0 * minutes if minutes is not None else math.inf
    started, losses = time.monotonic(), []
    model.train()
    while (steps is None or step < steps) and time.monotonic() < deadline:
        done = max((time.monotonic() - call_start) / (deadline - call_start) if minutes is not None else 0.0,
                   (step - first_step) / max(steps - first_step, 1) if steps is not None else 0.0)
        floor = config.final_lr_fraction
        for group in optimiser.param_groups:
            group["lr"] = config.learning_rate * (floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * done)))
        inputs, targets, masks = next(batches)
        loss = task.training_loss(model(inputs), targets, masks)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        losses.append(loss.item())
        step += 1
        history.samples += len(inputs)
        if step % config.validate_every == 0 or step == steps:
            val_loss, val_metric = validate(task, model, validation)
            history.steps.append(step)
            history.train_loss.append(float(np.mean(losses)))
            history.val_loss.append(val_loss)
            history.val_metric.append(val_metric)
            history.seconds += time.monotonic() - started
            started, losses = time.monotonic(), []
            _save_atomic({"model": model.state_dict(), "optimiser": optimiser.state_dict(), "step": step,
                          "numpy_rng": rng.bit_generator.state, "torch_rng": torch.get_rng_state(),
                          "history": history.__dict__}, checkpoint)
            (out_dir / "history.json").write_text(json.dumps(history.__dict__, indent=1))
            write_curves(history, out_dir / "curves.png", task.name)
            log(f"{task.name}: step {step}  train {history.train_loss[-1]:.4f}  val {val_loss:.4f}  "
                f"metric {val_metric:.3f}  ({history.samples / max(history.seconds, 1e-9):.1f} samples/s)")
    return model, history


def write_curves(history: History, path: Path, title: str) -> None:
    """Train and validation loss against steps (log scale) as a small PNG, drawn with Pillow."""
    from PIL import Image, ImageDraw

    width, height, pad = 640, 360, 40
    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)
    draw.text((pad, 8), f"{title}: train (blue) and validation (red) loss, log scale", fill="black")
    series = [(history.train_loss, (40, 90, 200)), (history.val_loss, (200, 50, 40))]
    values = [v for s, _ in series for v in s if v > 0]
    if len(history.steps) >= 1 and values:
        low, high = math.log10(min(values)), math.log10(max(values))
        high = high if high > low else low + 1.0
        last = max(history.steps[-1], 1)

        def point(step: int, value: float) -> tuple[float, float]:
            x = pad + (width - 2 * pad) * step / last
            y = height - pad - (height - 2 * pad) * (math.log10(max(value, 1e-12)) - low) / (high - low)
            return x, y

        for values_, colour in series:
            points = [point(s, v) for s, v in zip(history.steps, values_)]
            if len(points) > 1:
                draw.line(points, fill=colour, width=2)
            for x, y in points:
                draw.ellipse((x - 2, y - 2, x + 2, y + 2), fill=colour)
        draw.text((pad, height - pad + 8), f"step 0 .. {last}   loss {10 ** low:.3g} .. {10 ** high:.3g}",
                  fill="black")
    draw.rectangle((pad, pad, width - pad, height - pad), outline=(160, 160, 160))
    image.save(path)


def export_onnx(model: nn.Module, path: Path, in_channels: int, metadata: dict[str, str], size: int = 128) -> Path:
    """The model as ONNX (opset 17, float32, batch 1) with a dynamic spatial size, input `input`, output `output`
    (the registry's contract); `metadata` goes into the model's metadata_props (the model card's facts)."""
    import onnx

    model.eval()
    example = torch.zeros(1, in_channels, size, size)
    temp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    torch.onnx.export(model, (example,), str(temp), dynamo=False, opset_version=17, input_names=["input"],
                      output_names=["output"],
                      dynamic_axes={"input": {2: "height", 3: "width"}, "output": {2: "height", 3: "width"}})
    exported = onnx.load(str(temp))
    for key, value in metadata.items():
        exported.metadata_props.add(key=key, value=str(value))
    onnx.checker.check_model(exported)
    onnx.save(exported, str(temp))
    os.replace(temp, path)
    return path
