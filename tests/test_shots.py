"""The shot package without Blender: --frames lists and the one frame-number parser, frame completeness and locks,
Blender's timeline arithmetic as plain numbers, and the one shot loop's cancel and failure paths (cancelling is
never a frame failure and leaves only complete frames)."""

from __future__ import annotations

import numpy as np
import pytest

from portrait_relight.inference.errors import Cancelled
from portrait_relight.inference.io.exr import exr_chunks_intact, write_passes
from portrait_relight.inference.io.imageio import srgb_to_linear
from portrait_relight.inference.lighting.environment import Environment
from portrait_relight.inference.shots.frames import (
    consecutive_frames,
    format_frames,
    frame_file,
    parse_frames,
    sequence_frames,
    split_frame_number,
    split_pattern,
)
from portrait_relight.inference.shots.outputs import (
    FrameLock,
    FramePaths,
    frame_complete,
    frame_paths,
    pass_file,
    pass_file_source,
)
from portrait_relight.inference.shots.runner import ShotFrame, relight_frames
from portrait_relight.inference.shots.timeline import clip_frame, image_user_frame, visible_source_frames


# ------------------------------------------------------------------------------------------------ --frames parser
@pytest.mark.parametrize("text, frames", [
    ("7", [7]), ("1-4", [1, 2, 3, 4]), ("0-0", [0]), ("1,5,9-12", [1, 5, 9, 10, 11, 12]),
    (" 3 - 5 , 1 ", [1, 3, 4, 5]), ("4-6,5-8", [4, 5, 6, 7, 8]), ("0010-0012", [10, 11, 12]),
])
def test_parse_frames(text, frames):
    assert parse_frames(text) == frames
    assert parse_frames(format_frames(frames)) == frames


@pytest.mark.parametrize("text, fragment", [
    ("", "empty"), ("  ", "empty"), ("5-3", "ends before it starts"), ("1-x", "'1-x' is not a frame number"),
    ("1,,3", "'' is not"), ("-3", "'-3' is not"), ("1.5", "'1.5'"), ("2-", "'2-'"), ("1-2-3", "'1-2-3'"),
    ("0-99999999", "more than"),
])
def test_parse_frames_errors(text, fragment):
    with pytest.raises(ValueError, match="^--frames") as info:
        parse_frames(text)
    assert fragment in str(info.value) and "\n" not in str(info.value)


def test_format_frames():
    assert format_frames([1, 2, 3, 5, 7, 8, 12]) == "1-3,5,7-8,12"
    assert format_frames([3, 1, 2, 2]) == "1-3"


# ------------------------------------------------------------------------------------ frame numbers in names
@pytest.mark.parametrize("name, head, number, padding, tail", [
    ("shot.0007.exr", "shot.", 7, 4, ".exr"),
    ("plate_012.png", "plate_", 12, 3, ".png"),
    ("take2_shot.0010.exr", "take2_shot.", 10, 4, ".exr"),  # the last run of digits is the frame number
    ("shot.0002_composite.exr", "shot.", 2, 4, "_composite.exr"),  # a pass file keeps its frame number
    ("clip.0003.mp4", "clip.", 3, 4, ".mp4"),  # digits in the extension do not count
    ("0042.tif", "", 42, 4, ".tif"),
])
def test_split_frame_number(name, head, number, padding, tail):
    numbered = split_frame_number(name)
    assert (numbered.head, numbered.number, numbered.padding, numbered.tail) == (head, number, padding, tail)
    assert numbered.with_number(number) == name
    assert numbered.matches(name) == number


def test_names_without_a_frame_number():
    assert split_frame_number("plate.png") is None
    assert split_pattern("shot.0001.png") is None
    with pytest.raises(ValueError, match="plate.png has no frame number"):
        frame_file("/x/plate.png", 3)


def test_padding_and_wider_numbers_follow_blender():
    numbered = split_pattern("shot.####_v2.exr")  # the last run of # is the frame number, digits after it stay
    assert (numbered.head, numbered.padding, numbered.tail) == ("shot.", 4, "_v2.exr")
    assert numbered.with_number(7) == "shot.0007_v2.exr" and numbered.with_number(12345) == "shot.12345_v2.exr"
    assert numbered.matches("shot.0007_v2.exr") == 7 and numbered.matches("shot.12345_v2.exr") == 12345
    for other in ("shot.007_v2.exr", "shot.00007_v2.exr", "shot.0007_v3.exr", "shot._v2.exr", "shot.00a7_v2.exr"):
        assert numbered.matches(other) is None, other
    assert str(frame_file("/x/plate_012.png", 9)) == "/x/plate_009.png"


def test_sequence_frames_and_consecutive_runs(tmp_path):
    for name in ("shot.0007.exr", "shot.0008.exr", "shot.0010.exr", "shot.0008_composite.exr", "shot.08.exr",
                 "other.0009.exr"):
        (tmp_path / name).write_bytes(b"")
    frames = sequence_frames(tmp_path / "shot.0008.exr")
    assert [(n, p.name) for n, p in frames] == [(7, "shot.0007.exr"), (8, "shot.0008.exr"), (10, "shot.0010.exr")]
    assert sequence_frames(tmp_path / "other.0009.exr") == [(0, tmp_path / "other.0009.exr")]  # no siblings
    files = [tmp_path / "shot.0007.exr", tmp_path / "shot.0008.exr"]
    assert consecutive_frames(files) == [(7, files[0]), (8, files[1])]
    assert consecutive_frames([files[0], tmp_path / "shot.0010.exr"]) is None  # a gap
    assert consecutive_frames(files[::-1]) is None  # out of order


def test_pass_files_name_their_pass_and_lead_back_to_the_frame(tmp_path):
    frame = tmp_path / "shot.0002.exr"
    for name in ("composite", "relit", "albedo"):
        assert pass_file(frame, name).name == f"shot.0002_{name}.exr"
        assert pass_file_source(pass_file(frame, name)) == frame
    assert pass_file_source(frame) is None and pass_file_source(tmp_path / "plate_final.exr") is None


# ------------------------------------------------------------------------------------------ completeness, locks
def test_frame_complete_detects_damaged_outputs(tmp_path):
    rng = np.random.default_rng(2)
    passes = {"alpha": rng.random((20, 24)), "foreground": rng.random((20, 24, 3)), "normal": rng.random((20, 24, 3)),
              "albedo": rng.random((20, 24, 3)), "diffuse": rng.random((20, 24, 3)),
              "specular": rng.random((20, 24, 3)), "relit": rng.random((20, 24, 4)),
              "composite": rng.random((20, 24, 3))}
    paths = frame_paths(tmp_path, "shot", 4, 1)
    write_passes(paths.exr, passes)
    paths.preview.write_bytes(b"png")
    assert exr_chunks_intact(paths.exr) and frame_complete(paths, (20, 24))
    assert not frame_complete(paths, (24, 20))  # another size: the source changed
    whole = paths.exr.read_bytes()
    for cut in (len(whole) - 1, len(whole) // 2, 400, 3):
        paths.exr.write_bytes(whole[:cut])
        assert not exr_chunks_intact(paths.exr) and not frame_complete(paths, (20, 24)), cut
    paths.exr.write_bytes(whole)
    paths.preview.unlink()
    assert not frame_complete(paths, (20, 24))
    paths.preview.write_bytes(b"png")
    write_passes(paths.exr, {k: v for k, v in passes.items() if k != "specular"})
    assert not frame_complete(paths, (20, 24))


def test_frame_lock_is_exclusive_and_leaves_no_file(tmp_path):
    first, second = FrameLock(tmp_path / ".shot.0001.lock"), FrameLock(tmp_path / ".shot.0001.lock")
    assert first.acquire(blocking=False)
    assert not second.acquire(blocking=False)
    first.release()
    assert not (tmp_path / ".shot.0001.lock").exists()
    assert second.acquire(blocking=False)
    second.release()
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------------------------------- timeline arithmetic
@pytest.mark.parametrize("current, start, offset, duration, cyclic, shown", [
    (1, 1, 0, 10, False, 1), (5, 1, 0, 10, False, 5), (20, 1, 0, 10, False, 10),  # holds the last frame
    (0, 1, 0, 10, False, 0), (-3, 1, 0, 10, False, 0),  # before the start: frame 0 (clamped)
    (12, 10, 100, 5, False, 103),  # offset shifts the file numbers
    (6, 1, 0, 5, True, 1), (10, 1, 0, 5, True, 5), (11, 1, 0, 5, True, 1),  # cyclic wraps
    (3, 1, 0, 0, False, 0),  # no duration: nothing to show
])
def test_image_user_frame(current, start, offset, duration, cyclic, shown):
    assert image_user_frame(current, start, offset, duration, cyclic) == shown


def test_clip_frame_counts_from_one():
    assert clip_frame(1, 1, 0) == 1 and clip_frame(10, 5, 0) == 6 and clip_frame(10, 5, 3) == 9


def test_visible_source_frames_hold_and_reverse():
    # content starts at 3 with source frame 2 (hold offset), 4 frames long, shown 1..9: holds before and after
    pairs = visible_source_frames(3.0, 1, 10, 2, 4)
    assert pairs == [(1, 2), (2, 2), (3, 2), (4, 3), (5, 4), (6, 5), (7, 5), (8, 5), (9, 5)]
    assert visible_source_frames(3.0, 3, 7, 2, 4, reverse=True) == [(3, 5), (4, 4), (5, 3), (6, 2)]
    assert visible_source_frames(1.0, 5, 5, 0, 3) == []


# ------------------------------------------------------------------------------------------ the loop's cancel
def small_plate() -> np.ndarray:
    from PIL import Image
    from skimage import data

    pixels = np.asarray(Image.fromarray(data.astronaut()).resize((96, 96), Image.LANCZOS))
    return srgb_to_linear(pixels.astype(np.float32) / 255.0)


def shot(tmp_path, count: int = 3) -> list[ShotFrame]:
    plate = small_plate()
    return [ShotFrame(n, FramePaths.for_stem(tmp_path, f"plate.{n:04d}"), f"plate.{n:04d}.png", lambda: plate)
            for n in range(1, count + 1)]


def grey_light() -> Environment:
    return Environment.centred(np.full((16, 32, 3), 0.8, np.float32))


@pytest.mark.parametrize("how", ["returns False", "raises Cancelled"])
def test_cancel_inside_a_frame_stops_the_shot_without_a_failure(tmp_path, how):
    """The callback asks to stop after frame 2's matting: frame 1 is complete, nothing of frame 2 is left (no EXR,
    preview, temp or lock file), frame 3 never started, and no frame is reported as failed."""
    events, stages = [], []

    def progress(stage: str, fraction: float):
        stages.append((stage, fraction))
        if stage == "frame 2/3 matting":
            if how == "raises Cancelled":
                raise Cancelled("stop")
            return False
        return True

    with pytest.raises(Cancelled):
        relight_frames(shot(tmp_path), tmp_path, grey_light(), report=events.append, progress=progress)
    assert [(e.frame, e.status) for e in events] == [(1, "relit")]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["plate.0001.exr", "plate.0001_preview.png"]
    fractions = [f for _, f in stages]
    assert fractions == sorted(fractions) and 1 / 3 < fractions[-1] < 2 / 3  # progress runs over the whole shot


def test_cancel_between_frames_and_resume(tmp_path):
    """Stopping before frame 2 reads its plate, then running again: frame 1 is skipped, 2 and 3 relit."""
    frames = shot(tmp_path)
    with pytest.raises(Cancelled):
        relight_frames(frames, tmp_path, grey_light(), progress=lambda stage, _: stage != "frame 2/3 reading")
    summary = relight_frames(frames, tmp_path, grey_light())
    assert (summary.skipped, summary.relit, summary.failed) == ([1], [2, 3], {})
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no lock or temp files


def test_a_failing_frame_is_reported_and_the_others_go_on(tmp_path):
    frames = shot(tmp_path)

    def unreadable():
        raise OSError(5, "Input/output error", "plate.0002.png")

    frames[1] = ShotFrame(2, frames[1].paths, frames[1].label, unreadable)
    summary = relight_frames(frames, tmp_path, grey_light())
    assert summary.relit == [1, 3] and list(summary.failed) == [2]
    assert summary.failed[2] == "plate.0002.png: Input/output error"
    assert summary.failure_line(3).startswith("plate.0002.png: Input/output error (1 of 3 frames failed: 2;")


def test_writes_overlap_the_next_frame_and_their_failures_are_reported_in_order(tmp_path, monkeypatch):
    """A frame's files are written on the writer thread while the next frame is relit; a write that fails marks
    its own frame failed (no EXR under its name), the shot goes on, reports stay in frame order, no lock is left."""
    import threading
    import time

    from portrait_relight.inference import pipeline

    log = []
    real_relight, real_write = pipeline.relight_frame, pipeline.write_frame

    def relight_frame(plate, label, *args):
        log.append(("relight starts", label, time.perf_counter()))
        return real_relight(plate, label, *args)

    def write_frame(plate, result, label, exr, preview):
        log.append(("write on", threading.current_thread().name, label))
        time.sleep(0.3)  # long enough for the next frame's relight to start meanwhile
        if label == "plate.0002.png":
            raise OSError(28, "No space left on device", str(exr))
        real_write(plate, result, label, exr, preview)
        log.append(("write ends", label, time.perf_counter()))

    monkeypatch.setattr(pipeline, "relight_frame", relight_frame)
    monkeypatch.setattr(pipeline, "write_frame", write_frame)
    events = []
    summary = relight_frames(shot(tmp_path), tmp_path, grey_light(), report=events.append)
    assert [(e.frame, e.status) for e in events] == [(1, "relit"), (2, "failed"), (3, "relit")]
    assert summary.relit == [1, 3] and list(summary.failed) == [2]
    assert "No space left on device" in summary.failed[2]
    writers = {entry[1] for entry in log if entry[0] == "write on"}
    assert len(writers) == 1 and writers.pop().startswith("portrait-relight-writer")
    starts = {entry[1]: entry[2] for entry in log if entry[0] == "relight starts"}
    ends = {entry[1]: entry[2] for entry in log if entry[0] == "write ends"}
    assert starts["plate.0002.png"] < ends["plate.0001.png"]  # frame 2 was relit while frame 1 was written
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "plate.0001.exr", "plate.0001_preview.png", "plate.0003.exr", "plate.0003_preview.png"]


def test_big_frames_are_written_in_line(tmp_path, monkeypatch):
    """Above OVERLAP_MAX_PIXELS (memory: two frames' passes at once) the write runs on the loop's own thread."""
    import threading

    from portrait_relight.inference import pipeline
    from portrait_relight.inference.shots import runner

    threads = []
    real_write = pipeline.write_frame

    def write_frame(*args):
        threads.append(threading.current_thread())
        return real_write(*args)

    monkeypatch.setattr(pipeline, "write_frame", write_frame)
    monkeypatch.setattr(runner, "OVERLAP_MAX_PIXELS", 96 * 96 - 1)
    summary = relight_frames(shot(tmp_path, 2), tmp_path, grey_light())
    assert summary.relit == [1, 2] and threads == [threading.main_thread()] * 2


def test_plates_are_read_on_one_thread_the_next_while_this_one_is_relit(tmp_path, monkeypatch):
    import threading
    import time

    from portrait_relight.inference import pipeline

    log = []
    plate = small_plate()

    def reader(n):
        def read():
            log.append(("read", n, threading.current_thread().name, time.perf_counter()))
            return plate
        return read

    real_relight = pipeline.relight_frame

    def relight_frame(*args):
        result = real_relight(*args)
        log.append(("relit", args[1], None, time.perf_counter()))
        return result

    monkeypatch.setattr(pipeline, "relight_frame", relight_frame)
    frames = [ShotFrame(n, FramePaths.for_stem(tmp_path, f"plate.{n:04d}"), f"plate.{n:04d}.png", reader(n))
              for n in (1, 2, 3)]
    assert relight_frames(frames, tmp_path, grey_light()).relit == [1, 2, 3]
    reads = [entry for entry in log if entry[0] == "read"]
    assert [entry[1] for entry in reads] == [1, 2, 3]  # each plate decoded once, in order
    assert {entry[2] for entry in reads} == {"portrait-relight-reader_0"}
    relit_1 = next(entry[3] for entry in log if entry[:2] == ("relit", "plate.0001.png"))
    assert reads[1][3] < relit_1  # frame 2 was read while frame 1 was being relit
