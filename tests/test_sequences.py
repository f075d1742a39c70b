"""Shots on the command line: image sequences and movies, --frames, resume after a kill or a damaged frame, and
overlapping farm slices running at once (inference/shots/, inference/command.py)."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from portrait_relight.inference import command
from portrait_relight.inference.errors import RelightInputError
from portrait_relight.inference.io.exr import read_passes
from portrait_relight.inference.io.imageio import linear_to_srgb, srgb_to_linear
from portrait_relight.inference.shots.outputs import frame_complete, frame_paths
from portrait_relight.inference.shots.sources import ImageSequence, Movie, select_frames

REPO_ROOT = Path(__file__).resolve().parent.parent
RELIGHT = REPO_ROOT / "relight"
SIZE = 160  # small plates keep each frame around a second
SHIFTS = [(8, 8), (10, 8), (12, 9), (13, 11), (15, 12)]  # the subject drifts a little from frame to frame


# ------------------------------------------------------------------------------------------------------ helpers
def run_cli(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(RELIGHT), *map(str, args)], capture_output=True, text=True,
                          timeout=600)


def start_cli(*args) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(RELIGHT), *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def relit_frames(stdout: str) -> list[int]:
    """Frames a run's progress lines say it relit ('frame 12 (3/10): 1.23 s')."""
    return [int(line.split()[1]) for line in stdout.splitlines()
            if line.startswith("frame ") and "(" in line.split()[2] and line.endswith(" s") and "failed" not in line]


def skipped_frames(stdout: str) -> list[int]:
    return [int(line.split()[1].rstrip(":")) for line in stdout.splitlines()
            if line.startswith("frame ") and ": skipped (" in line]


def astronaut_frames(count: int) -> list[np.ndarray]:
    from PIL import Image
    from skimage import data

    big = np.asarray(Image.fromarray(data.astronaut()).resize((SIZE + 16, SIZE + 16), Image.LANCZOS))
    return [big[dy : dy + SIZE, dx : dx + SIZE].copy() for dx, dy in SHIFTS[:count]]


def write_sequence(folder: Path, frames: list[np.ndarray], first: int = 1, pattern: str = "shot.{:04d}.png"):
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    for number, pixels in enumerate(frames, first):
        Image.fromarray(pixels).save(folder / pattern.format(number))
    return folder


def write_movie(path: Path, frames: list[np.ndarray], codec: str = "libx264", pix_fmt: str = "yuv420p",
                options: dict | None = None, bt709: bool = False, full_range: bool = False) -> Path:
    """A movie of 8-bit sRGB frames written with PyAV; with `bt709` the Y'CbCr matrix and range are tagged."""
    import av

    height, width = frames[0].shape[:2]
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=24)
        stream.width, stream.height, stream.pix_fmt = width, height, pix_fmt
        stream.options = options or {}
        if bt709:
            stream.codec_context.colorspace = 1  # AVCOL_SPC_BT709
            stream.codec_context.color_range = 2 if full_range else 1  # JPEG (full) / MPEG (limited)
        for pixels in frames:
            frame = av.VideoFrame.from_ndarray(pixels, format="rgb24")
            if bt709:
                frame = frame.reformat(format=pix_fmt, dst_colorspace="ITU709",
                                       dst_color_range="JPEG" if full_range else "MPEG")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def hidden_files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def assert_frames_complete(out: Path, frames, name: str = "shot", padding: int = 4, size=(SIZE, SIZE)):
    for frame in frames:
        assert frame_complete(frame_paths(out, name, padding, frame), size), frame


@pytest.fixture(scope="module")
def hdri(tmp_path_factory) -> Path:
    import OpenEXR

    rng = np.random.default_rng(0)
    rgb = (rng.random((128, 256, 3)) * 2 + 0.1).astype(np.float32)
    path = tmp_path_factory.mktemp("shot_light") / "sky.exr"
    channels = {c: np.ascontiguousarray(rgb[..., i]) for i, c in enumerate("RGB")}
    with OpenEXR.File({"compression": OpenEXR.ZIP_COMPRESSION, "type": OpenEXR.scanlineimage}, channels) as f:
        f.write(str(path))
    return path


@pytest.fixture(scope="module")
def sequence(tmp_path_factory) -> Path:
    """shot.0001.png .. shot.0004.png: the astronaut drifting by a few pixels."""
    return write_sequence(tmp_path_factory.mktemp("sequence"), astronaut_frames(4)) / "shot.####.png"


# --------------------------------------------------------------------------------------------------- sequences
def test_sequence_pattern(tmp_path):
    pixels = astronaut_frames(1)[0][:8, :8]
    write_sequence(tmp_path, [pixels] * 3, first=9, pattern="plate_v2_{:03d}.png")
    for name in ("plate_v2_7.png", "plate_v2_0008.png", "plate_v2_012.jpg", "other_010.png"):  # not frames of it
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / "plate_v2_1000.png").write_bytes(b"x")  # wider than the padding: still frame 1000
    shot = ImageSequence(tmp_path / "plate_v2_###.png")
    assert (shot.name, shot.padding) == ("plate_v2", 3)
    assert shot.path(9) == tmp_path / "plate_v2_009.png"
    assert shot.available_frames() == [9, 10, 11, 1000]
    assert select_frames(shot, None) == [9, 10, 11, 1000]
    assert select_frames(shot, [10, 11]) == [10, 11]
    with pytest.raises(RelightInputError, match=r"plate_v2_###\.png: frames 12-13 do not exist \(available: "
                                                r"9-11,1000\)"):
        select_frames(shot, [11, 12, 13])
    assert frame_paths(tmp_path, shot.name, shot.padding, 9).exr == tmp_path / "plate_v2.009.exr"
    assert ImageSequence(tmp_path / "####.exr").name == tmp_path.name  # no stem: named after the folder
    with pytest.raises(RelightInputError, match="unsupported image format '.mov'"):
        ImageSequence(tmp_path / "clip.####.mov")


# ---------------------------------------------------------------------------------------------------- movies
@pytest.mark.parametrize("codec, pix_fmt, options, bt709, full_range, tolerance", [
    ("ffv1", "bgr0", {}, False, False, 0.0),  # lossless RGB: exactly the sRGB EOTF of the 8-bit values
    # lossless Y'CbCr: 8-bit Y'CbCr rounding alone moves saturated colours by up to 2 code values
    ("libx264", "yuv444p", {"qp": "0"}, True, False, 2.0),  # BT.709 limited range, as tagged
    ("libx264", "yuv444p", {"qp": "0"}, True, True, 2.0),  # BT.709 full range, as tagged
    ("libx264", "yuv444p", {"qp": "0"}, False, False, 2.0),  # untagged SD: BT.601 limited range
])
def test_movie_frames_are_numbered_from_one_and_linearised(tmp_path, codec, pix_fmt, options, bt709, full_range,
                                                           tolerance):
    rng = np.random.default_rng(1)
    frames = [np.kron(rng.integers(0, 256, (8, 8, 3)), np.ones((8, 8, 1))).astype(np.uint8) for _ in range(4)]
    movie = Movie(write_movie(tmp_path / f"clip.{'mkv' if codec == 'ffv1' else 'mp4'}", frames, codec, pix_fmt,
                              options, bt709, full_range))
    assert (movie.name, movie.frame_size, movie.available_frames()) == ("clip", (64, 64), [1, 2, 3, 4])
    for number in (2, 4, 1, 3):  # out of order: decoding starts again from the start when needed
        linear = movie.read(number)
        assert linear.dtype == np.float32 and linear.shape == (64, 64, 3)
        if tolerance == 0.0:
            np.testing.assert_array_equal(linear, srgb_to_linear(frames[number - 1] / np.float32(255)))
        codes = linear_to_srgb(linear) * 255
        assert np.abs(codes - frames[number - 1]).max() <= tolerance + 1e-3, number
    with pytest.raises(RelightInputError, match=r"clip\.\w+ frame 5: the movie ended after 4 frames"):
        movie.read(5)
    movie.close()
    if bt709:  # the tags matter: the SD matrix or the other range would be far off
        import av

        with av.open(str(movie.path)) as container:
            decoded = next(container.decode(video=0))
            wrong = decoded.to_ndarray(format="rgb24", src_colorspace="ITU601",
                                       src_color_range="MPEG" if full_range else "JPEG")
        assert np.abs(wrong.astype(np.float32) - frames[0]).max() > 10


def test_bad_movies_are_named(tmp_path):
    garbage = tmp_path / "garbage.mp4"
    garbage.write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 4)
    with pytest.raises(RelightInputError, match="garbage.mp4: cannot read movie"):
        Movie(garbage)
    with pytest.raises(RelightInputError, match="missing.mov: file does not exist"):
        Movie(tmp_path / "missing.mov")


# ------------------------------------------------------------------------------------ one-line errors, in-process
@pytest.mark.parametrize("plate, extra, code, fragments", [
    ("SEQ/none.####.png", (), 1, ["none.####.png", "no frames match"]),
    ("SEQ/shot.####.png", ("--frames", "3-6"), 1, ["shot.####.png", "frames 5-6 do not exist", "available: 1-4"]),
    ("SEQ/shot.####.png", ("--frames", "2-x"), 2, ["--frames '2-x'", "'2-x' is not a frame number"]),
    ("SEQ/shot.0001.png", ("--frames", "1"), 2, ["--frames needs an image sequence", "shot.0001.png"]),
    ("SEQ/shot.##.png", (), 1, ["shot.##.png", "no frames match"]),  # other padding: other files
    ("MISSING/shot.####.png", (), 1, ["shot.####.png", "folder does not exist"]),
])
def test_bad_shots_fail_with_one_line(sequence, hdri, tmp_path, capsys, plate, extra, code, fragments):
    plate = plate.replace("SEQ", str(sequence.parent)).replace("MISSING", str(tmp_path / "missing"))
    out = tmp_path / "out"
    assert command.main([plate, "--out", str(out), "--hdri", str(hdri), *extra]) == code
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1, lines
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    assert not out.exists()


def test_output_may_not_overwrite_an_exr_sequence(tmp_path, hdri, capsys):
    import OpenEXR

    channels = {c: np.ones((8, 8), np.float32) for c in "RGB"}
    with OpenEXR.File({"type": OpenEXR.scanlineimage}, channels) as f:
        f.write(str(tmp_path / "shot.0001.exr"))
    assert command.main([str(tmp_path / "shot.####.exr"), "--out", str(tmp_path), "--hdri", str(hdri)]) == 1
    assert "would overwrite the input frames 1" in capsys.readouterr().err


# ------------------------------------------------------------------------------------------------ end to end
def test_image_sequence_end_to_end_with_a_failed_frame(tmp_path, hdri):
    frames = astronaut_frames(3)
    folder = write_sequence(tmp_path / "plates", frames)
    broken = folder / "shot.0004.png"
    broken.write_bytes((folder / "shot.0003.png").read_bytes()[:500])  # truncated: this frame fails, not the run
    out = tmp_path / "out"
    done = run_cli(folder / "shot.####.png", "--out", out, "--hdri", hdri)
    assert done.returncode == 1, (done.stdout, done.stderr)
    assert relit_frames(done.stdout) == [1, 2, 3]
    assert "frame 4 (4/4): failed" in done.stdout
    assert "4 frame(s): 3 relit, 0 skipped, 1 failed" in done.stdout and "failed frames: 4" in done.stdout
    errors = done.stderr.strip().splitlines()
    assert len(errors) == 1 and errors[0].startswith(f"{broken}: cannot read image"), done.stderr
    assert sorted(p.name for p in out.iterdir()) == [f"shot.000{n}{s}" for n in (1, 2, 3)
                                                     for s in (".exr", "_preview.png")]
    assert_frames_complete(out, [1, 2, 3])
    by_frame = [read_passes(out / f"shot.000{n}.exr") for n in (1, 2, 3)]
    # every frame is its own plate: the subject drifts right, so does its matte
    columns = [np.argmax(p["alpha"].sum(axis=0) > 1) for p in by_frame]
    assert np.abs(by_frame[0]["alpha"] - by_frame[2]["alpha"]).max() > 0.5 and columns[0] >= columns[2], columns

    # a frame of the sequence relit alone (the single-image contract) gives the same passes
    single = tmp_path / "single"
    assert run_cli(folder / "shot.0002.png", "--out", single, "--hdri", hdri).returncode == 0
    alone = read_passes(single / "shot.0002.exr")
    for name, pixels in by_frame[1].items():
        np.testing.assert_allclose(pixels, alone[name], atol=1e-3, err_msg=name)


def test_movie_end_to_end(tmp_path, hdri):
    movie = write_movie(tmp_path / "clip.mp4", astronaut_frames(4), options={"crf": "16"})
    out = tmp_path / "out"
    done = run_cli(movie, "--out", out, "--hdri", hdri, "--frames", "2-3")
    assert done.returncode == 0, done.stderr
    assert relit_frames(done.stdout) == [2, 3] and "frame 2 (1/2)" in done.stdout
    assert "2 frame(s): 2 relit, 0 skipped, 0 failed" in done.stdout
    assert sorted(p.name for p in out.iterdir()) == ["clip.0002.exr", "clip.0002_preview.png", "clip.0003.exr",
                                                     "clip.0003_preview.png"]
    assert_frames_complete(out, [2, 3], name="clip")
    passes = read_passes(out / "clip.0002.exr")
    assert passes["alpha"].max() > 0.9 and np.isfinite(passes["relit"]).all()
    again = run_cli(movie, "--out", out, "--hdri", hdri, "--frames", "1-4")  # a wider slice: only new frames
    assert again.returncode == 0, again.stderr
    assert relit_frames(again.stdout) == [1, 4] and skipped_frames(again.stdout) == [2, 3]


def test_killed_and_damaged_frames_are_redone_identically(sequence, hdri, tmp_path):
    reference, out = tmp_path / "reference", tmp_path / "out"
    done = run_cli(sequence, "--out", reference, "--hdri", hdri, "--frames", "1-3")
    assert done.returncode == 0 and relit_frames(done.stdout) == [1, 2, 3], done.stderr
    expected = {n: read_passes(reference / f"shot.000{n}.exr") for n in (1, 2, 3)}

    def assert_like_reference():
        assert_frames_complete(out, [1, 2, 3])
        for n in (1, 2, 3):
            passes = read_passes(out / f"shot.000{n}.exr")
            for name in expected[n]:
                np.testing.assert_array_equal(passes[name], expected[n][name], err_msg=f"frame {n} {name}")
        assert hidden_files(out) == []  # no temp or lock files left behind

    # killed (SIGKILL: no clean-up at all) once frame 1 is done
    process = start_cli(sequence, "--out", out, "--hdri", hdri, "--frames", "1-3")
    for line in process.stdout:
        if line.startswith("frame 1 "):
            break
    process.send_signal(signal.SIGKILL)
    process.communicate(timeout=60)
    assert (out / "shot.0001.exr").exists() and not (out / "shot.0003.exr").exists()
    resumed = run_cli(sequence, "--out", out, "--hdri", hdri, "--frames", "1-3")
    assert resumed.returncode == 0, resumed.stderr
    assert 1 in skipped_frames(resumed.stdout) and 3 in relit_frames(resumed.stdout)
    assert sorted(relit_frames(resumed.stdout) + skipped_frames(resumed.stdout)) == [1, 2, 3]
    assert_like_reference()

    # a damaged EXR (truncated) is redone; complete frames are not touched
    mtimes = {n: (out / f"shot.000{n}.exr").stat().st_mtime_ns for n in (1, 2, 3)}
    damaged = out / "shot.0002.exr"
    damaged.write_bytes(damaged.read_bytes()[: damaged.stat().st_size * 2 // 3])
    time.sleep(0.01)
    repaired = run_cli(sequence, "--out", out, "--hdri", hdri, "--frames", "1-3")
    assert repaired.returncode == 0, repaired.stderr
    assert relit_frames(repaired.stdout) == [2] and skipped_frames(repaired.stdout) == [1, 3]
    assert repaired.stderr == ""  # checking the damaged file prints nothing (OpenEXR would)
    assert (out / "shot.0001.exr").stat().st_mtime_ns == mtimes[1]
    assert (out / "shot.0003.exr").stat().st_mtime_ns == mtimes[3]
    assert_like_reference()


def test_overlapping_slices_run_at_once(sequence, hdri, tmp_path):
    out = tmp_path / "out"
    slices = ["1-3", "2-4"]
    processes = [start_cli(sequence, "--out", out, "--hdri", hdri, "--frames", s) for s in slices]
    outputs = [p.communicate(timeout=600) for p in processes]
    results = [(p.returncode, stdout, stderr) for p, (stdout, stderr) in zip(processes, outputs)]
    for code, stdout, stderr in results:
        assert code == 0, (stdout, stderr)
    relit = [relit_frames(stdout) for _, stdout, _ in results]
    assert sorted(relit[0] + relit[1]) == [1, 2, 3, 4], relit  # every frame relit exactly once
    for frames, (_, stdout, _) in zip(([1, 2, 3], [2, 3, 4]), results):  # each process accounts for its slice
        assert sorted(relit_frames(stdout) + skipped_frames(stdout)) == frames, stdout
    assert sorted(p.name for p in out.iterdir()) == [f"shot.000{n}{s}" for n in (1, 2, 3, 4)
                                                     for s in (".exr", "_preview.png")]
    assert_frames_complete(out, [1, 2, 3, 4])


def test_camera_size_comes_from_the_first_readable_frame(tmp_path):
    write_sequence(tmp_path, [np.zeros((6, 10, 3), np.uint8)] * 2, first=2)
    (tmp_path / "shot.0001.png").write_bytes(b"broken")
    shot = ImageSequence(tmp_path / "shot.####.png")
    assert command._first_frame_shape(shot, [1, 2, 3]) == (6, 10)  # --world-blend's camera FOV needs the frame size
    with pytest.raises(RelightInputError, match="shot.0001.png: cannot read image"):
        command._first_frame_shape(shot, [1])
