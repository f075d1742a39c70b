"""Blender's timeline arithmetic, without Blender: which source frame an Image node, a Movie Clip or a Sequencer
strip shows at a scene frame (checked against Blender's own renders in tests/test_movie_strips.py and
tests/test_shot_import.py, and against plain numbers in tests/test_shots.py)."""

from __future__ import annotations


def image_user_frame(current: int, start: int, offset: int, duration: int, cyclic: bool) -> int:
    """The frame number an Image node shows at scene frame `current` (Blender's BKE_image_user_frame_get): the
    sequence's file number, or the movie frame counted from 1."""
    if duration <= 0:
        return 0
    frame = current - start + 1
    if cyclic:
        frame %= duration
        if frame == 0:
            frame = duration
    frame = min(max(frame, 0), duration)
    return frame + offset


def clip_frame(current: int, start: int, offset: int) -> int:
    """The movie frame (from 1) a Movie Clip shows at scene frame `current` (clip.frame_start, clip.frame_offset)."""
    return current - start + offset + 1


def visible_source_frames(frame_start: float, final_start: int, final_end: int, hold_start: int, duration: int,
                          reverse: bool = False) -> list[tuple[int, int]]:
    """(timeline frame, 0-based source frame) for each frame a Sequencer strip shows, as Blender maps them: the
    content starts at `frame_start` with source frame `hold_start` (animation_offset_start), runs `duration`
    (frame_duration, after hold offsets) frames, and holds its first/last frame beyond that."""
    first = round(frame_start)
    pairs = []
    for timeline in range(final_start, final_end):
        offset = min(max(timeline - first, 0), duration - 1)
        pairs.append((timeline, hold_start + (duration - 1 - offset if reverse else offset)))
    return pairs
