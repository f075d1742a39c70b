"""Shots: image sequences (`name.####.ext`) and movie files, relit frame by frame into `DIR/<name>.####.exr`.

Farm contract (shared by ./relight and anything else that relights a shot; never imports bpy):
- Each frame writes `<name>.<frame>_preview.png` and then `<name>.<frame>.exr`, each through a unique temp file
  in the output folder and a rename, so a killed process leaves only complete files (plus its own temp files,
  removed the next time that frame is worked on).
- A frame whose EXR is complete (every chunk present, readable, all 8 passes, the plate's size) and whose preview
  exists is skipped; anything else is (re)done, so re-running a command resumes it.
- While a process works on a frame it holds an advisory lock (`flock`, released by the kernel if the process
  dies) on `.<name>.<frame>.lock` in the output folder: overlapping `--frames` slices running at once never
  relight a frame twice. A frame locked by another process is retried once this process's other frames are
  done, waiting for the lock, so a process that returns without failures leaves its whole slice complete.

Colour: image-sequence frames go through `imageio.read_plate` (8/16-bit files are sRGB-encoded, float files
linear). Movie frames are decoded with PyAV (FFmpeg in the wheel), converted from Y'CbCr with the stream's own
matrix and range tags (untagged: BT.709 from 720 lines up, else BT.601; limited range), and their display-encoded
R'G'B' (Rec.709/sRGB, as Blender assumes for movie files by default) is linearised with the same sRGB EOTF as
8-bit plates (`imageio.srgb_to_linear`); streams deeper than 8 bits are decoded at 16 bits first.
A shot opened with a `colorspace` (a Blender colour space name, e.g. a strip's `colorspace_settings.name`) takes
its file values as encoded in that space instead and converts them like Blender (inference/colorspace.py): byte
files and movies from their encoded values, float files (EXR/HDR/float TIFF) from their stored values.
"""

from __future__ import annotations

import fcntl
import glob
import os
import re
import struct
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .environment import Environment
from .errors import RelightInputError
from .exr import PASS_CHANNELS, read_passes
from .imageio import PLATE_SUFFIXES, linear_to_srgb, read_plate, srgb_to_linear
from .settings import RelightSettings

if TYPE_CHECKING:  # the pipeline (onnxruntime, pymatting) is imported when a frame is relit, not to parse options
    from .colorspace import ColorSpaces
    from .lightmaps import PrefilteredEnvironment

MOVIE_SUFFIXES = {".mp4", ".mov", ".mkv", ".avi", ".m4v", ".webm"}
MOVIE_PADDING = 4
MAX_FRAMES = 1_000_000  # a guard against typos such as --frames 1-10000000
_FRAME_SPEC = re.compile(r"^\s*(\d+)\s*(?:-\s*(\d+)\s*)?$")


# --------------------------------------------------------------------------------------------------- frame lists
def parse_frames(text: str) -> list[int]:
    """'12', '1-24' (inclusive) or lists such as '1,5,9-12' -> sorted unique frame numbers.

    Raises ValueError with a one-line message naming the offending part."""
    if not text or not text.strip():
        raise ValueError("--frames is empty: give A-B or a list such as 1,5,9-12")
    frames: set[int] = set()
    for part in text.split(","):
        match = _FRAME_SPEC.match(part)
        if match is None:
            raise ValueError(f"--frames '{text}': '{part.strip()}' is not a frame number or an A-B range "
                             "(frames are whole numbers from 0)")
        first = int(match[1])
        last = int(match[2]) if match[2] is not None else first
        if last < first:
            raise ValueError(f"--frames '{text}': range '{part.strip()}' ends before it starts")
        if last - first + 1 + len(frames) > MAX_FRAMES:
            raise ValueError(f"--frames '{text}': more than {MAX_FRAMES} frames")
        frames.update(range(first, last + 1))
    return sorted(frames)


def format_frames(frames: list[int]) -> str:
    """[1, 2, 3, 5, 7, 8] -> '1-3,5,7-8' (the inverse of parse_frames)."""
    parts: list[str] = []
    ordered = sorted(set(frames))
    start = 0
    for i in range(1, len(ordered) + 1):
        if i == len(ordered) or ordered[i] != ordered[i - 1] + 1:
            first, last = ordered[start], ordered[i - 1]
            parts.append(str(first) if first == last else f"{first}-{last}")
            start = i
    return ",".join(parts)


# ------------------------------------------------------------------------------------------------------ colour
FLOAT_SUFFIXES = {".exr", ".hdr"}


def file_is_float(path: Path) -> bool:
    """Whether read_plate takes the file's values as stored (float EXR/HDR/TIFF) rather than sRGB-decoding them."""
    suffix = path.suffix.lower()
    if suffix in FLOAT_SUFFIXES:
        return True
    if suffix in (".tif", ".tiff"):
        import tifffile

        try:
            with tifffile.TiffFile(path) as tiff:
                return tiff.pages[0].dtype is not None and tiff.pages[0].dtype.kind == "f"
        except (OSError, ValueError, IndexError, tifffile.TiffFileError):
            return False  # read_plate reports the damaged file
    return False


def _resolve_spaces(colorspace: str | None, spaces: ColorSpaces | None, label=None) -> ColorSpaces | None:
    if colorspace is None:
        return None
    if spaces is None:
        from .colorspace import default_color_spaces

        spaces = default_color_spaces()
    spaces.canonical(colorspace, label)  # an unknown name fails before any frame is read
    return spaces


def encoded_to_linear(encoded: np.ndarray, colorspace: str | None, spaces: ColorSpaces | None,
                      label) -> np.ndarray:
    """Display-encoded R'G'B' (movies, and byte files re-encoded) in `colorspace` -> scene-linear, clamped at 0
    like read_plate. None, or sRGB: the built-in sRGB EOTF."""
    from .colorspace import BUILTIN_SRGB

    if colorspace is None or (spaces.canonical(colorspace, label) in BUILTIN_SRGB):
        return srgb_to_linear(encoded)
    return np.maximum(spaces.to_scene_linear(encoded, colorspace, label), 0.0)


def read_plate_in(path: str | os.PathLike, colorspace: str | None = None,
                  spaces: ColorSpaces | None = None) -> np.ndarray:
    """read_plate, with the file's values taken as encoded in `colorspace` (None: read_plate's own choice, sRGB for
    8/16-bit files, linear for float files). Scene-linear float32, clamped at 0 like read_plate."""
    path = Path(path)
    plate = read_plate(path)
    spaces = _resolve_spaces(colorspace, spaces)
    if spaces is None:
        return plate
    if not file_is_float(path):
        from .colorspace import BUILTIN_SRGB

        if spaces.canonical(colorspace, path) in BUILTIN_SRGB:
            return plate  # read_plate's own decoding
        return encoded_to_linear(linear_to_srgb(plate), colorspace, spaces, path)  # back to the stored values
    if spaces.is_identity(colorspace, path):
        return plate
    return np.maximum(spaces.to_scene_linear(plate, colorspace, path), 0.0)


# ----------------------------------------------------------------------------------------------------- sources
def is_sequence_pattern(path: str | os.PathLike) -> bool:
    return "#" in Path(path).name


def is_movie(path: str | os.PathLike) -> bool:
    return Path(path).suffix.lower() in MOVIE_SUFFIXES


class ImageSequence:
    """Frames `prefix + frame number zero-padded to the count of # + suffix` (Blender's `#` pattern; the last run
    of `#` in the file name is the frame number; frames wider than the padding are written unpadded)."""

    frame_size: tuple[int, int] | None = None  # unknown until a frame is read

    def __init__(self, pattern: str | os.PathLike, colorspace: str | None = None,
                 spaces: ColorSpaces | None = None):
        self.colorspace = colorspace
        self.spaces = _resolve_spaces(colorspace, spaces, pattern)
        self.pattern = Path(pattern)
        name = self.pattern.name
        runs = list(re.finditer(r"#+", name))
        if not runs:
            raise RelightInputError(self.pattern, "not a frame pattern (use name.####.ext)")
        run = runs[-1]
        self.prefix, self.suffix = name[: run.start()], name[run.end() :]
        self.padding = run.end() - run.start()
        self.directory = self.pattern.parent
        extension = Path(f"frame{self.suffix}").suffix.lower()
        if extension not in PLATE_SUFFIXES:
            raise RelightInputError(self.pattern, f"unsupported image format '{extension or self.suffix}' "
                                                  "(use PNG, JPEG, TIFF, EXR or HDR frames)")
        self.name = self.prefix.rstrip("._- ") or self.directory.resolve().name or "frame"

    @property
    def source(self) -> str:
        return os.fspath(self.pattern)

    def path(self, frame: int) -> Path:
        return self.directory / f"{self.prefix}{frame:0{self.padding}d}{self.suffix}"

    def label(self, frame: int) -> str:
        return os.fspath(self.path(frame))

    def available_frames(self) -> list[int]:
        if not self.directory.is_dir():
            raise RelightInputError(self.pattern, "the sequence's folder does not exist")
        match = re.compile(rf"^{re.escape(self.prefix)}(\d+){re.escape(self.suffix)}$").match
        frames = []
        for entry in os.scandir(self.directory):
            found = match(entry.name)
            if found and f"{int(found[1]):0{self.padding}d}" == found[1] and entry.is_file():
                frames.append(int(found[1]))
        return sorted(frames)

    def read(self, frame: int) -> np.ndarray:
        return read_plate_in(self.path(frame), self.colorspace, self.spaces)

    def close(self) -> None:
        pass


class Movie:
    """A movie file's video stream, frames numbered from 1 in presentation order, decoded sequentially (exact
    frame numbers; reading an earlier frame than the last one read starts again from the beginning)."""

    padding = MOVIE_PADDING

    def __init__(self, path: str | os.PathLike, colorspace: str | None = None, spaces: ColorSpaces | None = None):
        self.colorspace = colorspace
        self.spaces = _resolve_spaces(colorspace, spaces, path)
        self.path = Path(path)
        self.name = self.path.stem
        if not self.path.is_file():
            raise RelightInputError(self.path, "file does not exist" if not self.path.exists() else "is not a file")
        with self._open() as container:
            stream = self._video_stream(container)
            self.frame_size = (stream.codec_context.height, stream.codec_context.width)
            count = stream.frames
            if count <= 0:  # containers such as Matroska do not store it: count the packets (no decoding)
                count = sum(1 for packet in container.demux(stream) if packet.size)
        if count <= 0 or min(self.frame_size) < 2:
            raise RelightInputError(self.path, "the movie has no video frames")
        self.frame_count = count
        self._container = None
        self._frames: Iterator | None = None
        self._position = 0

    @property
    def source(self) -> str:
        return os.fspath(self.path)

    def label(self, frame: int) -> str:
        return f"{self.path} frame {frame}"

    def available_frames(self) -> list[int]:
        return list(range(1, self.frame_count + 1))

    def _open(self):
        import av

        try:
            return av.open(os.fspath(self.path), "r")
        except (av.FFmpegError, OSError) as exc:
            raise RelightInputError(self.path, f"cannot read movie ({_describe(exc)})") from exc

    def _video_stream(self, container):
        if not container.streams.video:
            raise RelightInputError(self.path, "the file has no video stream")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        return stream

    def read(self, frame: int) -> np.ndarray:
        """Frame `frame` (from 1) as scene-linear float32 (see the module docstring for the colour)."""
        return encoded_to_linear(self.read_encoded(frame), self.colorspace, self.spaces, self.label(frame))

    def read_encoded(self, frame: int) -> np.ndarray:
        """Frame `frame` (from 1) as the stream's display-encoded R'G'B', float32 in [0, 1]."""
        import av

        if self._frames is None or frame <= self._position:
            self.close()
            self._container = self._open()
            self._frames = self._container.decode(self._video_stream(self._container))
            self._position = 0
        try:
            for decoded in self._frames:
                self._position += 1
                if self._position == frame:
                    return decoded_to_encoded(decoded)
        except av.FFmpegError as exc:
            self.close()
            raise RelightInputError(self.label(frame), f"cannot decode movie ({_describe(exc)})") from exc
        ended = self._position
        self.close()
        raise RelightInputError(self.label(frame), f"the movie ended after {ended} frames")

    def close(self) -> None:
        if self._container is not None:
            self._container.close()
        self._container, self._frames, self._position = None, None, 0


_AVCOL_SPC_UNSPECIFIED, _AVCOL_SPC_RESERVED, _AVCOL_RANGE_UNSPECIFIED = 2, 3, 0


def decoded_to_linear(frame) -> np.ndarray:
    """A PyAV VideoFrame -> (H, W, 3) float32 scene-linear (see the module docstring for the colour choices)."""
    return srgb_to_linear(decoded_to_encoded(frame))


def decoded_to_encoded(frame) -> np.ndarray:
    """A PyAV VideoFrame -> (H, W, 3) float32 display-encoded R'G'B' in [0, 1]."""
    from av.video.reformatter import ColorRange, Colorspace

    options = {}
    if not frame.format.is_rgb:  # Y'CbCr: honour the stream's matrix and range tags, with FFmpeg-like defaults
        if frame.colorspace in (_AVCOL_SPC_UNSPECIFIED, _AVCOL_SPC_RESERVED):
            options["src_colorspace"] = Colorspace.ITU709 if frame.height >= 720 else Colorspace.ITU601
        if frame.color_range == _AVCOL_RANGE_UNSPECIFIED:
            options["src_color_range"] = ColorRange.MPEG  # limited ("TV") range, FFmpeg's assumption
    deep = any(component.bits > 8 for component in frame.format.components)
    pixels = frame.to_ndarray(format="rgb48le" if deep else "rgb24", **options)
    scale = 65535.0 if deep else 255.0
    return np.ascontiguousarray(pixels.astype(np.float32) / scale)


def _describe(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{exc.__class__.__name__}: {text[0]}" if text else exc.__class__.__name__


def open_shot(path: str | os.PathLike, colorspace: str | None = None,
              spaces: ColorSpaces | None = None) -> ImageSequence | Movie:
    kind = ImageSequence if is_sequence_pattern(path) else Movie
    return kind(path, colorspace, spaces)


def select_frames(shot: ImageSequence | Movie, frames: list[int] | None) -> list[int]:
    """The frames to relight: all that exist without `frames`; every requested frame must exist."""
    available = shot.available_frames()
    if not available:
        raise RelightInputError(shot.source, "no frames match this pattern")
    if frames is None:
        return available
    missing = sorted(set(frames) - set(available))
    if missing:
        raise RelightInputError(shot.source, f"frames {format_frames(missing)} do not exist "
                                             f"(available: {format_frames(available)})")
    return list(frames)


# ------------------------------------------------------------------------------------------------------ outputs
@dataclass(frozen=True)
class FramePaths:
    stem: str
    exr: Path
    preview: Path
    lock: Path


def frame_paths(out_dir: Path, name: str, padding: int, frame: int) -> FramePaths:
    stem = f"{name}.{frame:0{padding}d}"
    return FramePaths(stem, out_dir / f"{stem}.exr", out_dir / f"{stem}_preview.png", out_dir / f".{stem}.lock")


_EXR_MAGIC = 20000630
_LINES_PER_CHUNK = {0: 1, 1: 1, 2: 1, 3: 16, 4: 32, 5: 16, 6: 32, 7: 32, 8: 32, 9: 256}


def exr_chunks_intact(path: Path) -> bool:
    """Whether a single-part scanline EXR's header and every chunk lie inside the file.

    Checked by hand before OpenEXR reads the file, because OpenEXR prints to stdout/stderr on truncated files."""
    try:
        data = path.read_bytes()
        if len(data) < 8 or struct.unpack_from("<i", data, 0)[0] != _EXR_MAGIC:
            return False
        if struct.unpack_from("<i", data, 4)[0] & 0x1E00:  # tiled, long names, deep or multipart: not ours
            return False
        pos, attributes = 8, {}
        while data[pos] != 0:
            name_end = data.index(b"\0", pos)
            type_end = data.index(b"\0", name_end + 1)
            (size,) = struct.unpack_from("<i", data, type_end + 1)
            start = type_end + 5
            attributes[data[pos:name_end]] = data[start : start + size]
            pos = start + size
        pos += 1
        lines = _LINES_PER_CHUNK.get(attributes[b"compression"][0])
        _, ymin, _, ymax = struct.unpack("<4i", attributes[b"dataWindow"])
        if lines is None or ymax < ymin:
            return False
        chunks = (ymax - ymin + lines) // lines
        offsets = struct.unpack_from(f"<{chunks}Q", data, pos)
        for offset in offsets:
            if offset + 8 > len(data):
                return False
            _, packed = struct.unpack_from("<2i", data, offset)
            if packed < 0 or offset + 8 + packed > len(data):
                return False
        return True
    except (OSError, IndexError, KeyError, ValueError, struct.error):
        return False


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


# ---------------------------------------------------------------------------------------------------- the loop
@dataclass(frozen=True)
class FrameEvent:
    """What happened to one frame: status is 'relit', 'skipped', 'busy' (locked elsewhere, retried later) or
    'failed' (with `reason`, one line naming the frame's file)."""

    frame: int
    index: int  # 1-based position in the requested frames
    count: int
    status: str
    seconds: float = 0.0
    detail: str = ""
    reason: str = ""


@dataclass
class ShotSummary:
    relit: list[int] = field(default_factory=list)
    skipped: list[int] = field(default_factory=list)
    failed: dict[int, str] = field(default_factory=dict)
    seconds: float = 0.0


def _failure(exc: Exception, label: str) -> str:
    if isinstance(exc, RelightInputError):
        return str(exc) if exc.path else f"{label}: {exc.problem}"
    if isinstance(exc, OSError):
        return f"{exc.filename or label}: {exc.strerror or exc}"
    return f"{label}: {_describe(exc)}"  # a bug or an odd file: report it and keep going with the other frames


def relight_shot(shot: ImageSequence | Movie, frames: list[int], out_dir: str | os.PathLike,
                 environment: Environment, settings: RelightSettings = RelightSettings(),
                 background: np.ndarray | None = None, prefiltered: PrefilteredEnvironment | None = None,
                 report: Callable[[FrameEvent], None] = lambda event: None) -> ShotSummary:
    """Relight `frames` of `shot` into out_dir (see the module docstring); never raises for one frame's failure."""
    out_dir = Path(out_dir)
    summary = ShotSummary()
    clock = time.perf_counter()
    count = len(frames)

    def attempt(frame: int, index: int, blocking: bool) -> bool:
        """False when another process holds the frame (non-blocking attempts only)."""
        paths = frame_paths(out_dir, shot.name, shot.padding, frame)
        label = shot.label(frame)
        started = time.perf_counter()
        plate, size = None, shot.frame_size

        def skip_if_complete(detail: str) -> bool:
            nonlocal plate, size
            if not paths.exr.exists():
                return False
            if size is None:  # movies and odd sequences: the plate's size is known once a frame is read
                plate = shot.read(frame)
                size = plate.shape[:2]
            if not frame_complete(paths, size):
                return False
            summary.skipped.append(frame)
            report(FrameEvent(frame, index, count, "skipped", detail=detail))
            return True

        try:
            if skip_if_complete("complete"):
                return True
            lock = FrameLock(paths.lock)
            if not lock.acquire(blocking):
                report(FrameEvent(frame, index, count, "busy", detail="another process is on it; retried at the end"))
                return False
            try:
                if skip_if_complete("done by another process"):  # it may have finished while we waited
                    return True
                remove_stale_temps(out_dir, paths)
                if plate is None:
                    plate = shot.read(frame)
                from .pipeline import relight_to_files  # heavy (onnxruntime, pymatting): loaded with a first frame

                relight_to_files(plate, label, paths.exr, paths.preview, environment, settings, background,
                                 prefiltered=prefiltered)
            finally:
                lock.release()
        except Exception as exc:  # one bad frame must not stop a farm chunk: reported, then the next frame
            reason = _failure(exc, label)
            summary.failed[frame] = reason
            report(FrameEvent(frame, index, count, "failed", time.perf_counter() - started, reason=reason))
            return True
        summary.relit.append(frame)
        report(FrameEvent(frame, index, count, "relit", time.perf_counter() - started))
        return True

    try:
        busy = [(frame, index) for index, frame in enumerate(frames, 1) if not attempt(frame, index, False)]
        for frame, index in busy:
            attempt(frame, index, True)
    finally:
        shot.close()
    summary.seconds = time.perf_counter() - clock
    return summary
