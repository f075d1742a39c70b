"""Frame numbers: `--frames` lists, and the frame number inside a file name (the one parser for both).

A numbered file name's frame number is the last run of digits in its stem, zero-padded to that run's width
(Blender's sequence naming: `shot.0007.exr`, `plate_012.png`). Blender's `#` patterns (`shot.####.exr`) are
the same names with the digits replaced by as many `#` as the padding.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

MAX_FRAMES = 1_000_000  # a guard against typos such as --frames 1-10000000
_FRAME_SPEC = re.compile(r"^\s*(\d+)\s*(?:-\s*(\d+)\s*)?$")
_LAST_DIGITS = re.compile(r"(\d+)(?!.*\d)")


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


@dataclass(frozen=True)
class NumberedName:
    """A file name split around its frame number: `head` + number padded to `padding` digits + `tail`."""

    head: str
    number: int
    padding: int
    tail: str  # the rest of the stem and the extension

    def with_number(self, number: int) -> str:
        """The name of frame `number` (wider numbers are written unpadded, as Blender does)."""
        return f"{self.head}{number:0{self.padding}d}{self.tail}"

    @property
    def pattern(self) -> str:
        """Blender's `#` pattern of the sequence, e.g. `shot.####.exr`."""
        return f"{self.head}{'#' * self.padding}{self.tail}"

    def matches(self, name: str) -> int | None:
        """The frame number of `name` when it is a frame of this sequence (same head and tail, digits padded as
        here), else None."""
        if len(name) <= len(self.head) + len(self.tail) or not name.startswith(self.head) \
                or not name.endswith(self.tail):
            return None
        digits = name[len(self.head): len(name) - len(self.tail)]
        if not (digits.isascii() and digits.isdigit()) or f"{int(digits):0{self.padding}d}" != digits:
            return None
        return int(digits)


def split_frame_number(name: str) -> NumberedName | None:
    """Split a file name around the last run of digits in its stem; None when the stem has no digits."""
    stem, suffix = os.path.splitext(name)
    match = _LAST_DIGITS.search(stem)
    if match is None:
        return None
    digits = match[1]
    return NumberedName(stem[: match.start()], int(digits), len(digits), stem[match.end():] + suffix)


def split_pattern(name: str) -> NumberedName | None:
    """Split a Blender `#` pattern (`shot.####.exr`: the last run of `#` is the frame number, its length the
    padding); None when the name has no `#`."""
    runs = list(re.finditer(r"#+", name))
    if not runs:
        return None
    run = runs[-1]
    return NumberedName(name[: run.start()], 0, run.end() - run.start(), name[run.end():])


def frame_file(path: str | os.PathLike, number: int) -> Path:
    """The file of frame `number` of the image sequence `path` (any one of its frames) belongs to."""
    path = Path(path)
    numbered = split_frame_number(path.name)
    if numbered is None:
        raise ValueError(f"{path.name} has no frame number")
    return path.with_name(numbered.with_number(number))


def sequence_frames(path: str | os.PathLike) -> list[tuple[int, Path]]:
    """[(frame number, file)] of the image sequence `path` belongs to (its siblings with the same name apart from
    a frame number of the same padding), sorted; just [(0, path)] for a file without a frame number or without
    siblings."""
    path = Path(path)
    numbered = split_frame_number(path.name)
    if numbered is None or not path.parent.is_dir():
        return [(0, path)]
    frames = []
    for sibling in path.parent.iterdir():
        number = numbered.matches(sibling.name)
        if number is not None and sibling.is_file():
            frames.append((number, sibling))
    if len(frames) < 2:
        return [(0, path)]
    return sorted(frames)


def consecutive_frames(files: list[Path]) -> list[tuple[int, Path]] | None:
    """[(frame, file)] when `files` are, in order, one numbered sequence with consecutive frame numbers (what an
    Image node can play), else None."""
    numbers = {path: number for number, path in sequence_frames(files[0])}
    frames = [(numbers.get(path), path) for path in files]
    if len(files) < 2 or any(n is None for n, _ in frames):
        return None
    if [n for n, _ in frames] != list(range(frames[0][0], frames[0][0] + len(frames))):
        return None
    return frames
