"""A moving background behind a shot (inference/shots/background.py): each plate frame goes over its own
background frame, the light estimated from the background is one for the whole shot (no flicker, the same in
every farm chunk), and a background that does not cover the plate fails before any frame with one line."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from test_sequences import SIZE, astronaut_frames, run_cli, write_sequence

from portrait_relight.inference.io.exr import read_passes
from portrait_relight.inference.io.imageio import srgb_to_linear
from portrait_relight.inference.shots.background import LIGHT_FRAMES, MovingBackground
from portrait_relight.inference.shots.sources import ImageSequence


def backgrounds(count: int, seed: int = 0) -> list[np.ndarray]:
    """8-bit frames of a warm-left, cool-right gradient drifting sideways, with fresh sensor noise each frame."""
    rng = np.random.default_rng(seed)
    x = np.linspace(0.0, 1.0, SIZE)[None, :, None]
    frames = []
    for k in range(count):
        ramp = np.clip(x + 0.03 * k, 0.0, 1.0)
        colour = (1.0 - ramp) * np.array([0.9, 0.6, 0.3]) + ramp * np.array([0.3, 0.5, 0.9])
        image = np.broadcast_to(colour, (SIZE, SIZE, 3)) + rng.normal(0.0, 0.02, (SIZE, SIZE, 3))
        frames.append(np.round(np.clip(image, 0.0, 1.0) * 255).astype(np.uint8))
    return frames


@pytest.fixture(scope="module")
def shot(tmp_path_factory) -> tuple[Path, Path, list[np.ndarray]]:
    """A still plate held for 4 frames (1-4) and a 6-frame moving background numbered from 101."""
    folder = tmp_path_factory.mktemp("moving")
    still = astronaut_frames(1)[0]
    write_sequence(folder / "plate", [still] * 4)
    behind = backgrounds(6)
    write_sequence(folder / "bg", behind, first=101, pattern="bg.{:04d}.png")
    return folder / "plate" / "shot.####.png", folder / "bg" / "bg.####.png", behind


def test_each_frame_goes_over_its_own_background_under_one_light(shot, tmp_path):
    plate, background, behind = shot
    done = run_cli(plate, "--out", tmp_path / "all", "--background", background)
    assert done.returncode == 0, done.stderr
    chunk = run_cli(plate, "--out", tmp_path / "chunk", "--background", background, "--frames", "3-4")
    assert chunk.returncode == 0, chunk.stderr
    passes = [read_passes(tmp_path / "all" / f"shot.{frame:04d}.exr") for frame in range(1, 5)]
    for k, frame_passes in enumerate(passes):
        outside = frame_passes["alpha"] < 1e-6
        expected = srgb_to_linear(behind[k].astype(np.float32) / 255.0)  # plate frame 1 + k over bg 101 + k
        np.testing.assert_allclose(frame_passes["composite"][..., :3][outside], expected[outside], rtol=2e-3,
                                   atol=2e-3)
        assert np.abs(frame_passes["composite"][..., :3][outside]
                      - srgb_to_linear(behind[k + 1].astype(np.float32) / 255.0)[outside]).mean() > 1e-3
    # one light for the shot: the still plate relights identically on every frame, and in the farm chunk too
    for frame_passes in passes[1:]:
        np.testing.assert_array_equal(frame_passes["relit"], passes[0]["relit"])
    np.testing.assert_array_equal(read_passes(tmp_path / "chunk" / "shot.0003.exr")["relit"], passes[2]["relit"])


def test_a_background_that_does_not_cover_the_plate_fails_before_any_frame(shot, tmp_path):
    plate, _, behind = shot
    short = tmp_path / "short"
    write_sequence(short, behind[:2], first=101, pattern="bg.{:04d}.png")
    done = run_cli(plate, "--out", tmp_path / "out", "--background", short / "bg.####.png")
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "bg.####.png" in lines[0] and "103-104" in lines[0], lines
    assert not list((tmp_path / "out").glob("*.exr")) if (tmp_path / "out").exists() else True


def test_a_single_plate_with_a_moving_background_is_refused(shot, tmp_path):
    _, background, _ = shot
    single = tmp_path / "plate.png"
    from PIL import Image

    Image.fromarray(astronaut_frames(1)[0]).save(single)
    done = run_cli(single, "--out", tmp_path / "out", "--background", background)
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "bg.####.png" in lines[0] and "plate sequence or movie" in lines[0], lines


def test_the_light_plate_is_the_mean_of_frames_spread_over_the_whole_background(tmp_path):
    behind = backgrounds(20, seed=1)
    write_sequence(tmp_path, behind, first=5, pattern="bg.{:04d}.png")
    moving = MovingBackground(ImageSequence(tmp_path / "bg.####.png"), plate_first=1)
    picks = np.unique(np.linspace(0, 19, LIGHT_FRAMES).round()).astype(int)
    assert picks[0] == 0 and picks[-1] == 19 and len(picks) == LIGHT_FRAMES
    expected = np.mean([srgb_to_linear(behind[p].astype(np.float32) / 255.0) for p in picks], axis=0)
    np.testing.assert_allclose(moving.light_plate(), expected, atol=1e-5)
    assert moving.frame_for(1) == 5 and moving.frame_for(7) == 11
    np.testing.assert_allclose(moving.read(3), srgb_to_linear(behind[2].astype(np.float32) / 255.0), atol=1e-6)
