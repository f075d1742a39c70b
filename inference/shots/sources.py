"""Where a shot's frames come from: image sequences (`name.####.ext`) and movie files, decoded to scene-linear.

Colour: image-sequence frames go through `io.imageio.read_plate` (8/16-bit files are sRGB-encoded, float files
linear). Movie frames are decoded with PyAV (FFmpeg in the wheel), converted from Y'CbCr with the stream's own
matrix and range tags (untagged: BT.709 from 720 lines up, else BT.601; limited range), and their display-encoded
R'G'B' (Rec.709/sRGB, as Blender assumes for movie files by default) is linearised with the same sRGB EOTF as
8-bit plates; streams deeper than 8 bits are decoded at 16 bits first. A shot opened with a `colorspace` (a
Blender colour space name, e.g. a strip's `colorspace_settings.name`) takes its file values as encoded in that
space instead and converts them like Blender (io/colorspace.py).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..errors import RelightInputError, describe_exception
from ..io.colorspace import encoded_to_linear, read_plate_in, resolve_spaces
from ..io.imageio import MIN_IMAGE_SIDE, PLATE_SUFFIXES, check_image_size, check_input_file
from .frames import format_frames, split_pattern

if TYPE_CHECKING:
    from ..io.colorspace import ColorSpaces

MOVIE_SUFFIXES = {".mp4", ".mov", ".mkv", ".avi", ".m4v", ".webm"}
MOVIE_PADDING = 4


def is_sequence_pattern(path: str | os.PathLike) -> bool:
    return "#" in Path(path).name


def is_movie(path: str | os.PathLike) -> bool:
    return Path(path).suffix.lower() in MOVIE_SUFFIXES


def is_shot(path: str | os.PathLike) -> bool:
    """Whether `path` names many frames (an image sequence pattern or a movie) rather than one image."""
    return is_sequence_pattern(path) or is_movie(path)


class ImageSequence:
    """Frames `head + frame number zero-padded to the count of # + tail` (Blender's `#` pattern; the last run
    of `#` in the file name is the frame number; frames wider than the padding are written unpadded)."""

    frame_size: tuple[int, int] | None = None  # unknown until a frame is read

    def __init__(self, pattern: str | os.PathLike, colorspace: str | None = None,
                 spaces: ColorSpaces | None = None, min_side: int = MIN_IMAGE_SIDE):
        self.colorspace = colorspace
        self.min_side = min_side  # smallest short side a frame may have (io.imageio.MIN_PLATE_SIDE to relight it)
        self.spaces = resolve_spaces(colorspace, spaces, pattern)
        self.pattern = Path(pattern)
        numbered = split_pattern(self.pattern.name)
        if numbered is None:
            raise RelightInputError(self.pattern, "not a frame pattern (use name.####.ext)")
        self.numbered = numbered
        self.padding = numbered.padding
        self.directory = self.pattern.parent
        extension = Path(f"frame{numbered.tail}").suffix.lower()
        if extension not in PLATE_SUFFIXES:
            raise RelightInputError(self.pattern, f"unsupported image format '{extension or numbered.tail}' "
                                                  "(use PNG, JPEG, TIFF, EXR or HDR frames)")
        self.name = numbered.head.rstrip("._- ") or self.directory.resolve().name or "frame"

    @property
    def source(self) -> str:
        return os.fspath(self.pattern)

    def path(self, frame: int) -> Path:
        return self.directory / self.numbered.with_number(frame)

    def label(self, frame: int) -> str:
        return os.fspath(self.path(frame))

    def available_frames(self) -> list[int]:
        if not self.directory.is_dir():
            raise RelightInputError(self.pattern, "the sequence's folder does not exist")
        frames = []
        for entry in os.scandir(self.directory):
            number = self.numbered.matches(entry.name)
            if number is not None and entry.is_file():
                frames.append(number)
        return sorted(frames)

    def read(self, frame: int) -> np.ndarray:
        return read_plate_in(self.path(frame), self.colorspace, self.spaces, self.min_side)

    def close(self) -> None:
        pass


class Movie:
    """A movie file's video stream, frames numbered from 1 in presentation order, decoded sequentially (exact
    frame numbers; reading an earlier frame than the last one read starts again from the beginning)."""

    padding = MOVIE_PADDING

    def __init__(self, path: str | os.PathLike, colorspace: str | None = None, spaces: ColorSpaces | None = None,
                 min_side: int = MIN_IMAGE_SIDE):
        self.colorspace = colorspace
        self.spaces = resolve_spaces(colorspace, spaces, path)
        self.path = Path(path)
        self.name = self.path.stem
        check_input_file(self.path)
        with self._open() as container:
            stream = self._video_stream(container)
            self.frame_size = (stream.codec_context.height, stream.codec_context.width)
            count = stream.frames
            if count <= 0:  # containers such as Matroska do not store it: count the packets (no decoding)
                count = sum(1 for packet in container.demux(stream) if packet.size)
        if count <= 0 or min(self.frame_size) <= 0:
            raise RelightInputError(self.path, "the movie has no video frames")
        check_image_size(self.path, self.frame_size[1], self.frame_size[0], min_side, "video")
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
            raise RelightInputError(self.path, f"cannot read movie ({describe_exception(exc)})") from exc

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
            raise RelightInputError(self.label(frame), f"cannot decode movie ({describe_exception(exc)})") from exc
        ended = self._position
        self.close()
        raise RelightInputError(self.label(frame), f"the movie ended after {ended} frames")

    def close(self) -> None:
        if self._container is not None:
            self._container.close()
        self._container, self._frames, self._position = None, None, 0


_AVCOL_SPC_UNSPECIFIED, _AVCOL_SPC_RESERVED, _AVCOL_RANGE_UNSPECIFIED = 2, 3, 0


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


def open_shot(path: str | os.PathLike, colorspace: str | None = None, spaces: ColorSpaces | None = None,
              min_side: int = MIN_IMAGE_SIDE) -> ImageSequence | Movie:
    """The image sequence or movie `path` names; frames (a movie's size, checked here) must be at least `min_side`
    px on the short side and at most io.imageio.MAX_IMAGE_SIDE on the long side."""
    kind = ImageSequence if is_sequence_pattern(path) else Movie
    return kind(path, colorspace, spaces, min_side)


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


