"""A shot's outputs on disk: each frame's file names, whether a frame is complete, and the per-frame lock.

Each frame writes `<stem>_preview.png` and then `<stem>.exr`, each through a unique temp file in the output folder
and a rename, so a killed process leaves only complete files (plus its own temp files, removed the next time that
frame is worked on). While a process works on a frame it holds an advisory lock (`flock`) on `.<stem>.lock`.
Single-pass copies for the Video Sequencer (which shows only a multilayer EXR's first pass) are
`<stem>_<pass>.exr`.
"""

from __future__ import annotations

import fcntl
import glob
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from ..errors import RelightInputError
from ..io.exr import PASS_CHANNELS, exr_chunks_intact, read_passes, write_passes


@dataclass(frozen=True)
class FramePaths:
    stem: str
    exr: Path
    preview: Path
    lock: Path

    @classmethod
    def for_stem(cls, out_dir: Path, stem: str) -> "FramePaths":
        return cls(stem, out_dir / f"{stem}.exr", out_dir / f"{stem}_preview.png", out_dir / f".{stem}.lock")


def frame_paths(out_dir: Path, name: str, padding: int, frame: int) -> FramePaths:
    """Frame `frame` of shot `name`: `<name>.<frame padded to padding>`."""
    return FramePaths.for_stem(out_dir, f"{name}.{frame:0{padding}d}")


def frame_complete(paths: FramePaths, size: tuple[int, int]) -> bool:
    """The frame's preview exists and its EXR is intact, readable, and has all passes at (height, width) `size`."""
    try:
        if not paths.exr.is_file() or not paths.preview.is_file() or paths.preview.stat().st_size == 0:
            return False
    except OSError:
        return False
    if not exr_chunks_intact(paths.exr):
        return False
    try:
        passes = read_passes(paths.exr)
    except RelightInputError:
        return False
    for name, channels in PASS_CHANNELS.items():
        pixels = passes.get(name)
        expected = tuple(size) if len(channels) == 1 else (*size, len(channels))
        if pixels is None or pixels.shape != expected:
            return False
    return True


class FrameLock:
    """An exclusive advisory lock on one frame, held through an open lock file (`flock`: the kernel drops it when
    the process dies, so a crashed render never blocks a frame). The file is removed while still locked; a
    process that locked a file some other process just removed notices (different inode) and tries again."""

    def __init__(self, path: Path):
        self.path = path
        self._fd: int | None = None

    def acquire(self, blocking: bool) -> bool:
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
            except BlockingIOError:
                os.close(fd)
                return False
            except OSError:  # a filesystem without flock (some network mounts): atomic writes still keep it safe
                self._fd = fd
                return True
            try:
                current = os.stat(self.path)
            except FileNotFoundError:
                current = None
            if current is not None and os.path.samestat(os.fstat(fd), current):
                self._fd = fd
                return True
            os.close(fd)

    def release(self) -> None:
        if self._fd is None:
            return
        try:
            self.path.unlink(missing_ok=True)
        finally:
            os.close(self._fd)
            self._fd = None


def remove_stale_temps(out_dir: Path, paths: FramePaths) -> None:
    """Temp files a killed process left for this frame (only called while holding the frame's lock)."""
    folder = glob.escape(os.fspath(out_dir))
    for target in (paths.exr, paths.preview):  # imageio.atomic_target's names: .<stem>.<random>.tmp<suffix>
        for temp in glob.glob(os.path.join(folder, glob.escape(f".{target.stem}.") + f"*.tmp{target.suffix}")):
            Path(temp).unlink(missing_ok=True)


def pass_file(frame_file: Path, pass_name: str) -> Path:
    """The single-pass copy of one pass of a frame's EXR: `<stem>_<pass>.exr` beside it."""
    return frame_file.with_name(f"{frame_file.stem}_{pass_name}.exr")


def pass_file_source(path: Path) -> Path | None:
    """The frame EXR a single-pass copy was made from (the inverse of pass_file), or None for other names."""
    for pass_name in PASS_CHANNELS:
        if path.stem.endswith(f"_{pass_name}"):
            return path.with_name(f"{path.stem[: -len(pass_name) - 1]}.exr")
    return None


def write_pass_files(frame_files: Sequence[Path], pass_name: str,
                     progress: Callable[[str, float], object] = lambda stage, fraction: None) -> list[Path]:
    """The single-pass EXR of `pass_name` for every frame EXR (kept while intact and newer than its source)."""
    outputs = []
    for index, source in enumerate(frame_files):
        progress(f"frame {index + 1}/{len(frame_files)}", index / len(frame_files))
        target = pass_file(source, pass_name)
        if not (exr_chunks_intact(target) and target.stat().st_mtime_ns >= source.stat().st_mtime_ns):
            passes = read_passes(source)
            if pass_name not in passes:
                raise RelightInputError(source, f"has no '{pass_name}' pass (not a Portrait Relight EXR?)")
            write_passes(target, {pass_name: passes[pass_name]})
        outputs.append(target)
    progress("done", 1.0)
    return outputs
