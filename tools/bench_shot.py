"""Shot benchmark: seconds per 1080p frame in a 24-frame batch through ./relight, then a crash-and-resume run.

    .venv/bin/python tools/bench_shot.py [--frames 24] [--source sequence|movie] [--kill-after 8] [--out DIR]

1. Writes a 24-frame 1920x1080 shot of scikit-image's public-domain astronaut (the bench plate, drifting 6 px
   per frame, so every frame is new work) as a 16-bit PNG sequence or an H.264 movie.
2. Batch: `./relight <shot> --out DIR/batch --hdri forest.exr --frames 1-24`, the farm command; prints the
   wall time of the whole command, its set-up, and seconds per frame (mean, median, first vs the rest), then the
   single-frame command on frame 1 (median of 3 fresh processes) and the ratio of the two (issue "Frame time":
   per frame in a batch <= 0.6x the single-frame command).
3. Crash and resume: the same command into DIR/resume, killed with SIGKILL while frame `kill-after + 1` is
   being written (a crashed farm node; Ctrl-C goes through the same temp-file + rename path), then run again.
   Reports what the folder held after the kill (complete frames, leftover temp files, partial EXRs), what the
   second run skipped and relit, and the largest difference between the resumed frames and the batch's frames.
Asserts nothing: prints measurements (see the README's "Measured" section).
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from package_loader import load_package

ROOT = Path(__file__).resolve().parent.parent
FRAME_LINE = re.compile(r"^frame (\d+) \((\d+)/(\d+)\): ([\d.]+) s$")
DRIFT_PX = 6


def write_shot(folder: Path, count: int, source: str) -> Path:
    """The bench plate drifting sideways, as `shot.####.png` (16-bit) or `shot.mp4`; returns the ./relight input."""
    import numpy as np
    from bench import portrait_plate

    from portrait_relight.inference.io.imageio import linear_to_srgb

    base = linear_to_srgb(np.clip(portrait_plate(), 0.0, 1.0))
    frames = [np.roll(base, DRIFT_PX * (i - count // 2), axis=1) for i in range(count)]
    folder.mkdir(parents=True, exist_ok=True)
    if source == "sequence":
        import png

        for i, frame in enumerate(frames, 1):
            rows = np.round(frame * 65535).astype(np.uint16).reshape(frame.shape[0], -1)
            png.from_array(rows, "RGB;16").save(str(folder / f"shot.{i:04d}.png"))
        return folder / "shot.####.png"
    import av

    path = folder / "shot.mp4"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=24, options={"crf": "12"})
        stream.width, stream.height, stream.pix_fmt = 1920, 1080, "yuv420p"
        for frame in frames:
            video = av.VideoFrame.from_ndarray(np.round(frame * 255).astype(np.uint8), format="rgb24")
            for packet in stream.encode(video):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def relight_command(shot: Path, out: Path, hdri: Path, frames: str) -> list[str]:
    return [sys.executable, str(ROOT / "relight"), str(shot), "--out", str(out), "--hdri", str(hdri),
            "--frames", frames]


def run_batch(command: list[str]) -> tuple[float, list[float], str]:
    clock = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - clock
    if done.returncode != 0:
        raise SystemExit(f"batch failed ({done.returncode}): {done.stderr.strip()}")
    seconds = [float(m.group(4)) for line in done.stdout.splitlines() if (m := FRAME_LINE.match(line))]
    return wall, seconds, done.stdout


def single_frame_seconds(shot: Path, frame: int, out: Path, hdri: Path, source: str) -> float:
    """Median wall time of `./relight` on one frame of the shot as a plate of its own (an image sequence's
    file; a movie's frame through --frames), in fresh processes."""
    from bench import measure_command

    if source == "sequence":
        command = [str(ROOT / "relight"), str(shot).replace("####", f"{frame:04d}"), "--out", str(out),
                   "--hdri", str(hdri)]
    else:
        command = relight_command(shot, out, hdri, str(frame))[1:]
    seconds = []
    for _ in range(3):
        done = measure_command(command)
        if done["returncode"] != 0:
            raise SystemExit(f"single frame failed: {done['stderr']}")
        seconds.append(done["seconds"])
        for leftover in out.glob("*"):  # each run relights: a movie frame's outputs would make it skip
            leftover.unlink()
    return statistics.median(seconds)


def run_and_kill(command: list[str], kill_after: int) -> tuple[list[str], float]:
    """Run until `kill_after` frames are reported, then SIGKILL it halfway through the next frame."""
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines, last = [], []
    for line in process.stdout:
        lines.append(line.rstrip())
        if m := FRAME_LINE.match(line.strip()):
            last.append(float(m.group(4)))
            if len(last) == kill_after:
                break
    delay = 0.6 * statistics.median(last)  # mid-frame: the pipeline is running or the EXR is being written
    time.sleep(delay)
    process.send_signal(signal.SIGKILL)
    process.wait()
    return lines, delay


def inspect_folder(out: Path, shot, frames: list[int], size) -> dict:
    from portrait_relight.inference.shots.outputs import frame_complete, frame_paths

    complete = [f for f in frames if frame_complete(frame_paths(out, shot.name, shot.padding, f), size)]
    exrs = {p.name for p in out.glob("*.exr")}
    expected = {frame_paths(out, shot.name, shot.padding, f).exr.name for f in complete}
    temps = sorted(p.name for p in out.iterdir() if ".tmp" in p.name or p.name.startswith("."))
    return {"complete": complete, "incomplete_exrs": sorted(exrs - expected), "temps": temps}


def max_pass_difference(a: Path, b: Path) -> float:
    import numpy as np

    from portrait_relight.inference.io.exr import read_passes

    pa, pb = read_passes(a), read_passes(b)
    return max(float(np.max(np.abs(pa[k] - pb[k]))) for k in pa)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=24)
    parser.add_argument("--source", choices=("sequence", "movie"), default="sequence")
    parser.add_argument("--kill-after", type=int, default=8)
    parser.add_argument("--out", type=Path, default=None, help="work folder (default: a temp folder)")
    args = parser.parse_args()
    load_package()
    from bench import bundled_world_hdri

    from portrait_relight.inference.shots.outputs import frame_paths
    from portrait_relight.inference.shots.sources import open_shot

    work = args.out or Path(tempfile.mkdtemp(prefix="bench_shot_"))
    shot_path = write_shot(work / "plates", args.frames, args.source)
    shot = open_shot(shot_path)
    size = shot.read(1).shape[:2]
    hdri = bundled_world_hdri()
    frames = list(range(1, args.frames + 1))
    spec = f"1-{args.frames}"
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"python {platform.python_version()}")
    print(f"shot: {shot_path} ({args.source}, {size[1]}x{size[0]}, {args.frames} frames), HDRI {hdri.name}")

    wall, seconds, stdout = run_batch(relight_command(shot_path, work / "batch", hdri, spec))
    setup = next((line for line in stdout.splitlines() if line.startswith("relighting ")), "")
    print(f"batch: {len(seconds)} frames relit in {wall:.1f} s wall (whole command incl. start-up) = "
          f"{wall / args.frames:.2f} s per frame")
    print(f"  per frame: mean {statistics.mean(seconds):.2f} s, median {statistics.median(seconds):.2f} s, "
          f"min {min(seconds):.2f}, max {max(seconds):.2f}; first frame {seconds[0]:.2f} s "
          f"(loads the models), rest mean {statistics.mean(seconds[1:]):.2f} s")
    print(f"  {setup.split('(')[-1].rstrip(')') if setup else ''} before the first frame")
    single = single_frame_seconds(shot_path, frames[0], work / "single", hdri, args.source)
    print(f"single-frame command on frame 1 (median of 3 fresh processes): {single:.2f} s; per frame in the "
          f"batch / single-frame command = {wall / args.frames / single:.2f} (goal <= 0.6)")

    resume = work / "resume"
    command = relight_command(shot_path, resume, hdri, spec)
    lines, delay = run_and_kill(command, args.kill_after)
    state = inspect_folder(resume, shot, frames, size)
    print(f"crash: SIGKILL {delay:.1f} s into frame {args.kill_after + 1} (after {args.kill_after} frames reported)")
    print(f"  folder after the kill: {len(state['complete'])} complete frames {state['complete']}, "
          f"incomplete EXRs {state['incomplete_exrs'] or 'none'}, leftover temp/lock files "
          f"{state['temps'] or 'none'}")
    clock = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    again = time.perf_counter() - clock
    skipped = sum(1 for line in done.stdout.splitlines() if line.endswith("skipped (complete)"))
    relit = sum(1 for line in done.stdout.splitlines() if FRAME_LINE.match(line))
    print(f"resume: exit {done.returncode}, {skipped} frames skipped, {relit} relit in {again:.1f} s; "
          f"summary: {done.stdout.strip().splitlines()[-1]}")
    after = inspect_folder(resume, shot, frames, size)
    print(f"  folder after the resume: {len(after['complete'])}/{args.frames} complete, leftover temp/lock files "
          f"{after['temps'] or 'none'}")
    worst = max(max_pass_difference(frame_paths(work / "batch", shot.name, shot.padding, f).exr,
                                    frame_paths(resume, shot.name, shot.padding, f).exr) for f in frames)
    print(f"  largest per-pass difference, resumed shot vs uninterrupted batch: {worst:.3g}")
    shot.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
