"""Faults while writing: a write that fails part-way (the kernel refuses to grow the file, as on a full disk) and
a process killed with SIGKILL in the middle of writing its EXR. Either way no file is left under a frame's own
name half-written, the error is one line naming the file, and the next run completes the frame.

The write failure is real, not mocked: the command runs under RLIMIT_FSIZE, so the kernel fails the write that
crosses the limit (EFBIG, "File too large") exactly as it fails one on a full disk (ENOSPC).
"""

from __future__ import annotations

import os
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from test_cli import assert_input_error

from portrait_relight.inference.io.exr import exr_chunks_intact, read_passes

REPO_ROOT = Path(__file__).resolve().parent.parent
RELIGHT = REPO_ROOT / "relight"


def command(plate: Path, out: Path, hdri: Path, *extra) -> list[str]:
    return [sys.executable, str(RELIGHT), str(plate), "--out", str(out), "--hdri", str(hdri), *map(str, extra)]


def run_with_file_size_limit(args: list[str], limit_bytes: int) -> subprocess.CompletedProcess:
    def limit() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # the write fails with EFBIG instead of killing the process
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit_bytes, limit_bytes))

    return subprocess.run(args, capture_output=True, text=True, timeout=300, preexec_fn=limit)


def listing(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


@pytest.fixture(scope="module")
def inputs(tmp_path_factory, shared_dir):
    from PIL import Image
    from skimage import data

    root = tmp_path_factory.mktemp("faults")
    plate = root / "astronaut.png"
    Image.fromarray(data.astronaut()).resize((384, 384), Image.LANCZOS).save(plate)
    for n in (1, 2):
        Image.fromarray(np.roll(data.astronaut(), 3 * n, axis=1)).resize((384, 384), Image.LANCZOS).save(
            root / f"shot.000{n}.png")
    return {"plate": plate, "sequence": root / "shot.####.png", "hdri": shared_dir / "data" / "hdri" /
            "lebombo_1k.hdr"}


@pytest.fixture(scope="module")
def sizes(inputs, tmp_path_factory) -> dict[str, int]:
    """Sizes of the complete preview and EXR of the plate, to place the limit inside one or the other."""
    out = tmp_path_factory.mktemp("reference")
    done = subprocess.run(command(inputs["plate"], out, inputs["hdri"]), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return {"preview": (out / "astronaut_preview.png").stat().st_size, "exr": (out / "astronaut.exr").stat().st_size}


@pytest.mark.parametrize("failing", ["preview", "exr"])
def test_a_write_that_fails_midway_leaves_nothing_and_says_which_file(inputs, sizes, tmp_path, failing):
    out = tmp_path / "out"
    out.mkdir()
    # The preview is written first, then the EXR: a limit inside the preview fails it; one above the preview but
    # inside the EXR lets the preview through and fails the EXR, whose failure must take the preview away too.
    limit = sizes["preview"] // 2 if failing == "preview" else (sizes["preview"] + sizes["exr"] // 2)
    if failing == "exr":
        assert sizes["preview"] < limit < sizes["exr"]
    done = run_with_file_size_limit(command(inputs["plate"], out, inputs["hdri"]), limit)
    target = out / ("astronaut_preview.png" if failing == "preview" else "astronaut.exr")
    assert_input_error(done, target, "File too large", "nothing was written")
    assert listing(out) == []  # no temp file, no preview without its EXR

    again = subprocess.run(command(inputs["plate"], out, inputs["hdri"]), capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    assert listing(out) == ["astronaut.exr", "astronaut_preview.png"]


def test_a_shot_frame_whose_write_fails_is_named_and_redone_next_run(inputs, sizes, tmp_path):
    out = tmp_path / "out"
    done = run_with_file_size_limit(command(inputs["sequence"], out, inputs["hdri"], "--frames", "1-2"),
                                    sizes["preview"] + sizes["exr"] // 2)
    assert done.returncode == 1, done.stdout + done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 2 and "Traceback" not in done.stderr  # one line per failed frame
    for n, line in zip((1, 2), lines):
        assert line.startswith(f"{out / f'shot.000{n}.exr'}: cannot write the EXR (File too large)"), line
    assert listing(out) == []

    again = subprocess.run(command(inputs["sequence"], out, inputs["hdri"], "--frames", "1-2"), capture_output=True,
                           text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    assert listing(out) == ["shot.0001.exr", "shot.0001_preview.png", "shot.0002.exr", "shot.0002_preview.png"]


def test_sigkill_while_the_exr_is_written_leaves_no_partial_frame(inputs, tmp_path):
    """Kill the process the moment its EXR temp file appears (it is being written), then run again."""
    out = tmp_path / "out"
    out.mkdir()
    killed_while_writing = False
    for _attempt in range(3):  # the temp file lives ~0.1 s: retry if the poll missed it
        process = subprocess.Popen(command(inputs["plate"], out, inputs["hdri"]), stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 120
        while process.poll() is None and time.monotonic() < deadline:
            if any(name.endswith(".tmp.exr") for name in os.listdir(out)):
                process.send_signal(signal.SIGKILL)
                killed_while_writing = True
                break
            time.sleep(0.0005)
        process.wait(timeout=60)
        if killed_while_writing:
            break
        for name in listing(out):  # it finished first: start over
            (out / name).unlink()
    assert killed_while_writing, "the EXR's temp file was never seen: could not kill during the write"
    names = listing(out)
    # No EXR under its own name (its presence marks the frame complete); only hidden temp files, and the preview,
    # which is written before the EXR and replaced by the next run.
    assert "astronaut.exr" not in names, names
    assert all(n.startswith(".") or n == "astronaut_preview.png" for n in names), names
    assert any(n.endswith(".tmp.exr") for n in names)  # the kill did land during the write

    again = subprocess.run(command(inputs["plate"], out, inputs["hdri"]), capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    assert listing(out) == ["astronaut.exr", "astronaut_preview.png"]  # the killed run's temp files cleaned up
    assert exr_chunks_intact(out / "astronaut.exr")
    assert read_passes(out / "astronaut.exr")["composite"].shape == (384, 384, 3)
