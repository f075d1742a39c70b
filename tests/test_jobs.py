"""Background jobs (operators/jobs.py): a worker thread pumped by Job.step() as Blender's timer loop would, and the
sequencer operator's per-frame resume.

Tests drive `step()` by hand (bpy as a module has no event loop, so bpy.app.timers never fire by themselves)."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import numpy as np
import pytest

bpy = pytest.importorskip("bpy")

from portrait_relight.inference.errors import RelightInputError  # noqa: E402
from portrait_relight.operators import jobs  # noqa: E402

TIMEOUT = 30.0


class FakeWorkspace:
    def __init__(self):
        self.texts: list[str | None] = []

    def status_text_set(self, text):
        self.texts.append(text)


class FakeWindow:
    def __init__(self):
        self.workspace = FakeWorkspace()


class FakeWindowManager:
    """Records the progress API calls a job makes (the real one needs a window to show anything)."""

    def __init__(self):
        self.windows = [FakeWindow()]
        self.calls: list[tuple] = []
        self.popups: list[str] = []

    def progress_begin(self, low, high):
        self.calls.append(("begin", low, high))

    def progress_update(self, value):
        self.calls.append(("update", value))

    def progress_end(self):
        self.calls.append(("end",))

    def popup_menu(self, draw, title="", icon="NONE"):
        class Menu:
            class layout:  # noqa: N801 - mimics UILayout
                @staticmethod
                def label(text=""):
                    self.popups.append(text)

        draw(Menu, None)

    @property
    def updates(self) -> list[int]:
        return [call[1] for call in self.calls if call[0] == "update"]

    @property
    def status(self) -> list[str | None]:
        return self.windows[0].workspace.texts


def pump(job: jobs.Job, until=lambda: False, timeout: float = TIMEOUT) -> float | None:
    """Call step() like Blender's timer loop (no sleeping beyond a millisecond) until it stops or `until()`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        interval = job.step()
        if interval is None or until():
            return interval
        time.sleep(0.001)
    raise AssertionError(f"job did not finish in {timeout} s (stage {job.stage!r})")


def test_progress_reaches_window_manager_and_apply_runs_on_main_thread():
    wm = FakeWindowManager()
    gates = [threading.Event() for _ in range(4)]
    applied = []
    now = [100.0]

    def work(progress):
        for i in range(4):
            progress(f"frame {i + 1}/4 matting", (i + 0.5) / 4)
            assert gates[i].wait(TIMEOUT)
            progress.frame_done(f"frame {i + 1}/4 relit")
        return "result", threading.get_ident()

    def apply(result):
        applied.append((result, threading.get_ident()))

    job = jobs.Job("Test Job", work, apply, window_manager=wm, clock=lambda: now[0]).start_thread()
    for i in range(4):
        now[0] = 100.0 + 10.0 * (i + 1)
        expected = round((i + 0.5) / 4 * jobs.PROGRESS_STEPS)
        assert pump(job, until=lambda e=expected: wm.updates and wm.updates[-1] == e) is not None
        assert f"frame {i + 1}/4 matting" in wm.status[-1]
        gates[i].set()
    # frame 4 of 4 half done after 40 s: 5.7 s left
    assert "ETA 0:06" in [s for s in wm.status if s and "frame 4/4" in s][-1]
    assert pump(job) is None
    assert wm.calls[0] == ("begin", 0, jobs.PROGRESS_STEPS) and wm.calls[-1] == ("end",)
    assert wm.updates == sorted(wm.updates) and wm.updates[0] == 125 and wm.updates[-1] == 875
    assert wm.status[-1] is None  # the status text is cleared
    ((result, worker), main) = applied[0][0], applied[0][1]
    assert result == "result" and worker != main == threading.get_ident()
    assert job.lines == [f"frame {i}/4 relit" for i in range(1, 5)]
    assert job.step() is None and len(applied) == 1  # a finished job never applies twice


@pytest.mark.parametrize("where", ["work", "apply", "bug"])
def test_errors_are_reported_not_raised(where, capsys):
    wm = FakeWindowManager()
    applied = []

    def work(progress):
        progress("frame 1/1 matting", 0.5)
        if where == "work":
            raise RelightInputError("/shots/plate.0001.png", "cannot read image")
        if where == "bug":
            raise ZeroDivisionError("division by zero")
        return 1

    def apply(result):
        applied.append(result)
        raise RelightInputError(None, "node 'Image' was deleted")

    job = jobs.Job("Test Job", work, apply, window_manager=wm).start_thread()
    assert pump(job) is None
    message = {"work": "/shots/plate.0001.png: cannot read image", "apply": "node 'Image' was deleted",
               "bug": "ZeroDivisionError: division by zero"}[where]
    assert wm.popups == [message]
    assert message in capsys.readouterr().out
    assert applied == ([1] if where == "apply" else [])
    assert wm.calls.count(("end",)) == sum(call[0] == "begin" for call in wm.calls)  # the bar never stays open


def write_atomic(path: Path, data: bytes) -> None:
    temp = path.with_name(f".{path.name}.tmp")
    temp.write_bytes(data)
    os.replace(temp, path)


def test_cancel_stops_before_the_next_frame_and_keeps_complete_frames(tmp_path):
    wm = FakeWindowManager()
    second_done = threading.Event()
    resume = threading.Event()
    applied = []

    def work(progress):
        for frame in range(1, 6):
            progress(f"frame {frame}/5 relighting", (frame - 1) / 5)
            write_atomic(tmp_path / f"frame.{frame:04d}.exr", b"complete")
            if frame == 2:
                second_done.set()
                assert resume.wait(TIMEOUT)
            progress.frame_done(f"frame {frame}/5 relit")
        return "all"

    job = jobs.Job("Test Job", work, applied.append, window_manager=wm).start_thread()
    assert pump(job, until=second_done.is_set) is not None
    job.cancel()
    assert "cancelling" in job.status_text()
    resume.set()
    assert pump(job) is None
    assert job.cancelled and applied == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["frame.0001.exr", "frame.0002.exr"]
    assert "cancelled" in wm.popups[0] and "run again to resume" in wm.popups[0]
    assert wm.calls[-1] == ("end",)


def test_background_start_runs_synchronously(capsys):
    assert bpy.app.background
    applied = []

    def work(progress):
        for frame in (1, 2):
            progress(f"frame {frame}/2 matting", frame / 2)
            progress.frame_done(f"frame {frame}/2 relit")
        return threading.get_ident()

    job = jobs.start("Test Job", work, applied.append)
    assert job.finished and applied == [threading.get_ident()]
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("Test Job:")]
    assert lines == ["Test Job: frame 1/2 relit", "Test Job: frame 2/2 relit"]

    def broken(_progress):
        raise RelightInputError("/x.png", "bad")

    with pytest.raises(RelightInputError):  # the calling operator reports it
        jobs.start("Test Job", broken, applied.append)


# ------------------------------------------------------------------------------------------- sequencer resume
@pytest.fixture(scope="module")
def registered():
    from portrait_relight.operators import sequencer, shot_import, shot_settings

    jobs.register()
    shot_settings.register()
    sequencer.register()
    shot_import.register()
    yield
    shot_import.unregister()
    sequencer.unregister()
    shot_settings.unregister()
    jobs.unregister()


def astronaut_sequence(folder: Path, count: int = 3, size: int = 128) -> list[Path]:
    from PIL import Image
    from skimage import data

    folder.mkdir()
    image = Image.fromarray(data.astronaut())
    frames = []
    for frame in range(1, count + 1):
        shift = 4 * frame  # a slightly different crop per frame
        crop = image.crop((shift, 0, 512 - 12 + shift, 500)).resize((size, size), Image.LANCZOS)
        path = folder / f"plate.{frame:04d}.png"
        crop.save(path)
        frames.append(path)
    return frames


def strip_scene(frames: list[Path], out_dir: Path):
    bpy.ops.wm.read_factory_settings(use_empty=True)
    scene = bpy.context.scene
    settings = scene.portrait_relight
    settings.lighting = "HDRI"
    settings.hdri_path = os.path.join(bpy.utils.system_resource("DATAFILES", path="studiolights/world"), "city.exr")
    settings.output_dir = str(out_dir) + os.sep
    editor = scene.sequence_editor_create()
    strip = editor.strips.new_image("plate", str(frames[0]), channel=1, frame_start=1)
    for path in frames[1:]:
        strip.elements.append(path.name)
    editor.active_strip = strip
    return scene


def test_sequencer_resume_redoes_only_the_missing_frame(registered, tmp_path):
    from portrait_relight.inference.io.exr import read_passes

    frames = astronaut_sequence(tmp_path / "plates")
    scene = strip_scene(frames, tmp_path / "out")
    assert bpy.ops.portrait_relight.sequencer_relight() == {"FINISHED"}
    folder = tmp_path / "out" / "plate"
    exrs = [folder / f"plate.{frame:04d}.exr" for frame in (1, 2, 3)]
    shown = [folder / f"plate.{frame:04d}_composite.exr" for frame in (1, 2, 3)]
    assert all(p.is_file() for p in exrs + shown)
    before = {p: p.stat().st_mtime_ns for p in exrs + shown}
    reference = read_passes(exrs[1])

    exrs[1].unlink()
    time.sleep(0.01)
    assert bpy.ops.portrait_relight.sequencer_relight() == {"FINISHED"}
    for path in exrs + shown:
        redone = path in (exrs[1], shown[1])
        assert (path.stat().st_mtime_ns != before[path]) == redone, path.name
    np.testing.assert_array_equal(read_passes(exrs[1])["composite"], reference["composite"])  # deterministic
    editor = scene.sequence_editor
    strip = editor.strips_all["plate_relit"]
    assert [e.filename for e in strip.elements] == [p.name for p in shown]
    assert strip.channel == 2 and sum(s.name.startswith("plate_relit") for s in editor.strips_all) == 1
    assert not list(folder.glob(".*"))  # no temp or lock files left

    # Load Relit Shot on the same folder: its strip of the *relit* pass must show the relit pass, not a single-pass
    # file the Sequencer wrote for its composite strip (they once shared the name <stem>_relit.exr).
    assert bpy.ops.portrait_relight.load_relit_shot(filepath=str(exrs[0]), strip_pass="relit") == {"FINISHED"}
    loaded = editor.strips_all["plate_relit"]  # "<shot>_<pass>": it replaces the Sequencer's strip of that name
    assert [e.filename for e in loaded.elements] == [f"plate.{frame:04d}_relit.exr" for frame in (1, 2, 3)]
    for element, exr in zip(loaded.elements, exrs):
        shown = read_passes(folder / element.filename)
        assert list(shown) == ["relit"], element.filename
        np.testing.assert_array_equal(shown["relit"], read_passes(exr)["relit"])


def test_sequencer_job_cancelled_then_resumed_matches_an_uninterrupted_run(registered, tmp_path):
    """The sequencer's worker under a threaded Job: cancel during frame 2, run again, compare frame by frame."""
    from portrait_relight.inference.io.exr import read_passes
    from portrait_relight.inference.shots.runner import file_frames
    from portrait_relight.operators.lighting import resolve_shot_lighting
    from portrait_relight.operators.sequencer import relight_strip_frames
    from portrait_relight.operators.shot_settings import relight_settings, shot_values

    frames = astronaut_sequence(tmp_path / "plates")
    scene = strip_scene(frames, tmp_path / "out")
    values = shot_values(scene)
    lighting = resolve_shot_lighting(values, scene, 128, 128)
    settings = relight_settings(bpy.context, values, lighting.fov_deg)
    full, resumed = tmp_path / "full", tmp_path / "resumed"
    full.mkdir(), resumed.mkdir()
    full_frames, resumed_frames = file_frames(frames, full), file_frames(frames, resumed)
    relight_strip_frames(full_frames, full, lighting, settings, jobs.Progress(jobs.Job("full", None, None)))

    wm = FakeWindowManager()
    job = jobs.Job("Test Job",
                   lambda progress: relight_strip_frames(resumed_frames, resumed, lighting, settings, progress),
                   lambda outputs: pytest.fail("a cancelled job must not apply"), window_manager=wm)
    job.start_thread()
    pump(job, until=lambda: any("frame 2/3" in s for s in wm.status if s), timeout=120)
    job.cancel()
    assert pump(job, timeout=120) is None and job.cancelled
    assert sorted(p.name for p in resumed.iterdir()) == ["plate.0001.exr", "plate.0001_composite.exr",
                                                         "plate.0001_preview.png"]
    first = resumed / "plate.0001.exr"
    mtime = first.stat().st_mtime_ns
    relight_strip_frames(resumed_frames, resumed, lighting, settings, jobs.Progress(jobs.Job("resume", None, None)))
    assert first.stat().st_mtime_ns == mtime  # skipped, not redone
    for frame in (1, 2, 3):
        a, b = (read_passes(d / f"plate.{frame:04d}.exr") for d in (full, resumed))
        for name in a:
            np.testing.assert_array_equal(a[name], b[name], err_msg=f"frame {frame} {name}")


def test_a_strip_deleted_while_its_job_ran_is_one_clear_line(registered, tmp_path, monkeypatch):
    """The user may delete the source strip (or its scene) while the worker relights: `apply` then says so and where
    the complete frames are, instead of failing with a KeyError."""
    frames = astronaut_sequence(tmp_path / "plates", count=1)
    scene = strip_scene(frames, tmp_path / "out")
    captured = {}
    monkeypatch.setattr(jobs, "start", lambda title, work, apply: captured.update(work=work, apply=apply))
    assert bpy.ops.portrait_relight.sequencer_relight() == {"FINISHED"}
    outputs = captured["work"](jobs.Progress(jobs.Job("worker", None, None)))
    assert outputs[0].is_file()
    editor = scene.sequence_editor
    editor.strips.remove(editor.strips_all["plate"])
    with pytest.raises(RelightInputError, match=r"^the strip 'plate' was deleted while the job ran; its results "
                                                r"are in .*out.plate$"):
        captured["apply"](outputs)
    bpy.data.scenes.new("other")  # a file keeps one scene at least
    bpy.data.scenes.remove(scene)
    with pytest.raises(RelightInputError, match="the scene 'Scene' was deleted while the job ran"):
        captured["apply"](outputs)


def test_a_failed_strip_job_leaves_no_folder_behind(registered, tmp_path):
    """A strip with no person in it: the job fails with one line, and the output folders it made are gone again."""
    from PIL import Image

    folder = tmp_path / "plates"
    folder.mkdir()
    noise = np.random.default_rng(0).integers(0, 256, (128, 128, 3), dtype=np.uint8)
    Image.fromarray(noise).save(folder / "plate.0001.png")
    strip_scene([folder / "plate.0001.png"], tmp_path / "out" / "shots")
    with pytest.raises(RuntimeError, match="no person found"):  # background mode: the operator's error report
        bpy.ops.portrait_relight.sequencer_relight()
    assert not (tmp_path / "out").exists()
