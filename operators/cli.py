"""`blender -b -c portrait_relight ...` and ./relight: the command line of inference/command.py, with Blender
reading the --world-blend file (bpy is imported only for that option, so the HDRI path runs without Blender)."""

from __future__ import annotations

from ..inference import command


def read_blend_world(path: str, width: int, height: int):
    from .world import world_lighting_from_blend  # imports bpy

    return world_lighting_from_blend(path, width, height)


def main(argv: list[str] | None = None) -> int:
    """Entry point for ./relight and Blender's `-c portrait_relight`; returns the exit status."""
    return command.main(argv, read_blend_world)
