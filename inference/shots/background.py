"""A moving background plate (an image sequence or a movie) behind a shot.

Each plate frame goes over the background frame at the same offset from the first frame of its own sequence
(plate frame first + k over background frame first + k), so the two plates stay in sync whatever frames a run
relights. When the background is also the source of the light, the light is estimated once for the whole shot
from the mean of a few frames spread over the entire background sequence: every frame gets the same
Environment, so the light cannot flicker, and farm chunks of one shot (`--frames 1-10`, `--frames 11-20`) get
the same light too.
"""

from __future__ import annotations

import numpy as np

from ..errors import RelightInputError
from ..resample import resize
from .frames import format_frames
from .sources import ImageSequence, Movie

LIGHT_FRAMES = 8  # background frames averaged for the shot's one light estimate


class MovingBackground:
    """The background shot `shot` aligned to a plate sequence whose first frame is `plate_first`."""

    def __init__(self, shot: ImageSequence | Movie, plate_first: int):
        self.shot = shot
        self.frames = shot.available_frames()
        if not self.frames:
            raise RelightInputError(shot.source, "no frames match this pattern")
        self.plate_first = plate_first

    def frame_for(self, plate_frame: int) -> int:
        return self.frames[0] + plate_frame - self.plate_first

    def check_covers(self, plate_frames: list[int]) -> None:
        """Every plate frame to relight has its background frame, or one error naming the missing ones."""
        available = set(self.frames)
        missing = [self.frame_for(frame) for frame in plate_frames if self.frame_for(frame) not in available]
        if missing:
            raise RelightInputError(self.shot.source, f"background frames {format_frames(missing)} do not exist "
                                                      f"(available: {format_frames(self.frames)}); the plate's "
                                                      f"frame {self.plate_first} goes over background frame "
                                                      f"{self.frames[0]}")

    def read(self, plate_frame: int) -> np.ndarray:
        """The background behind plate frame `plate_frame`, scene-linear (H, W, 3)."""
        return self.shot.read(self.frame_for(plate_frame))

    def light_plate(self) -> np.ndarray:
        """The mean of LIGHT_FRAMES frames spread evenly over the whole background sequence (each resized to the
        first one's size): what the shot's single light estimate sees."""
        picks = np.unique(np.linspace(0, len(self.frames) - 1, min(LIGHT_FRAMES, len(self.frames))).round())
        total = None
        for pick in picks.astype(int):
            frame = self.shot.read(self.frames[pick])
            if total is None:
                total = frame.astype(np.float64)
            else:
                total += frame if frame.shape == total.shape else resize(frame, *total.shape[:2])
        return (total / len(picks)).astype(np.float32)
