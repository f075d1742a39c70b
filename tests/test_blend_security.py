"""Reading a world from someone else's .blend (`./relight --world-blend`, `blender -b -c portrait_relight`) never
runs the file's Python, even for a user who trusts scripts (Preferences › Save & Load › Auto Run Python Scripts).

The .blend carries both ways a file runs Python on its own: a registered text block (`evil.py`, use_module) that
Blender runs on load, and a scripted driver on the camera that Blender evaluates with the depsgraph. Each writes a
marker file. Every step runs in its own Blender subprocess, so the preference and the opened file never touch this
test process's Blender; the control opens the same file with use_scripts=True and must create both markers, which
shows the file really carries running code and the check can fail.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from blender_scripts import FOREST_WORLD_SCENE

pytest.importorskip("bpy")

REPO_ROOT = Path(__file__).resolve().parent.parent
SIZE = 64

PRELUDE = f"""
import json, os, sys
sys.path.insert(0, {str(REPO_ROOT / "tools")!r})
import bpy
work = sys.argv[-1]
markers = {{name: os.path.join(work, name) for name in ("text_block_ran", "driver_ran")}}
"""

BUILD = PRELUDE + """
bpy.ops.wm.read_factory_settings(use_empty=True)
%(world_scene)s
text = bpy.data.texts.new("evil.py")
text.write(f"import pathlib\\npathlib.Path({markers['text_block_ran']!r}).write_text('ran')\\n")
text.use_module = True  # "Register": Blender runs it when a file is loaded with scripts allowed
driver = scene.camera.driver_add("location", 0).driver
driver.type = "SCRIPTED"  # not a simple expression: only evaluated with scripts allowed
driver.expression = f"__import__('pathlib').Path({markers['driver_ran']!r}).write_text('ran') * 0"
bpy.ops.wm.save_as_mainfile(filepath=os.path.join(work, "evil.blend"))
""" % {"world_scene": FOREST_WORLD_SCENE % {"size": SIZE}}

# A user who trusts scripts; then the product reads the world.
PRODUCT = PRELUDE + f"""
bpy.context.preferences.filepaths.use_scripts_auto_execute = True
from package_loader import load_package
load_package()
from portrait_relight.operators.world import world_lighting_from_blend
lighting = world_lighting_from_blend(os.path.join(work, "evil.blend"), {SIZE}, {SIZE})
bpy.context.evaluated_depsgraph_get()  # evaluate every driver once more, as any later use of the scene would
result = dict(shape=list(lighting.environment.radiance.shape), mean=float(lighting.environment.radiance.mean()),
              fov=lighting.fov_deg, text_registered=bpy.data.texts["evil.py"].use_module)
result["markers"] = sorted(name for name, path in markers.items() if os.path.exists(path))
print("RESULT " + json.dumps(result))
"""

# The same file opened with scripts allowed: proves the markers are created when Python does run.
CONTROL = PRELUDE + """
bpy.ops.wm.open_mainfile(filepath=os.path.join(work, "evil.blend"), load_ui=False, use_scripts=True)
bpy.context.evaluated_depsgraph_get()
result = dict(markers=sorted(name for name, path in markers.items() if os.path.exists(path)))
print("RESULT " + json.dumps(result))
"""


def run_blender(script: str, work: Path) -> dict:
    """Run `script` with bpy in a fresh Python whose Blender user configuration is a throwaway folder (so the
    trusted-scripts preference can never be saved into the real one); returns its RESULT line, if any."""
    env = {**os.environ, "BLENDER_USER_CONFIG": str(work / "config")}
    done = subprocess.run([sys.executable, "-c", script, str(work)], capture_output=True, text=True, timeout=300,
                          env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    return json.loads(lines[-1][len("RESULT "):]) if lines else {}


def test_world_blend_runs_no_scripts_or_drivers_even_when_scripts_are_trusted(tmp_path):
    run_blender(BUILD, tmp_path)
    assert (tmp_path / "evil.blend").is_file()
    assert not list(tmp_path.glob("*_ran"))  # building the file ran nothing

    product = run_blender(PRODUCT, tmp_path)
    assert product["markers"] == [], "opening the .blend ran its Python"
    assert product["text_registered"]  # the script was in the file, registered to run on load
    assert product["shape"][1] == 2 * product["shape"][0] and product["mean"] > 0.0  # the world was read
    assert product["fov"] > 0.0

    control = run_blender(CONTROL, tmp_path)
    assert control["markers"] == ["driver_ran", "text_block_ran"], "the control must run both scripts"
