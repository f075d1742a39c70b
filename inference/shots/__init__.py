"""Shots: image sequences and movies relit frame by frame into `DIR/<name>.####.exr`, resumable, farm-safe.

Modules: `frames` (frame lists, frame numbers in file names), `timeline` (Blender's frame mapping, no bpy),
`sources` (ImageSequence, Movie, open_shot), `outputs` (frame files, completeness, per-frame locks, single-pass
copies), `runner` (relight_frames: the one shot loop, used by ./relight and the Sequencer).

Farm contract: a frame whose EXR is complete (every chunk present, readable, all 8 passes, the plate's size) and
whose preview exists is skipped, anything else is (re)done, so re-running a command resumes it; overlapping
`--frames` slices may run at once (per-frame `flock`, released by the kernel if a process dies); outputs are
written through temp files and renames, so a killed process leaves only complete frames.
"""
