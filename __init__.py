"""Portrait Relight: Blender extension entry point (registration only).

bpy is imported inside register()/unregister() only: outside Blender (tests, ./relight) this package is imported
for its pure-numpy `inference` subpackage, which must not pay for or depend on Blender.
"""

from __future__ import annotations

_cli_handle = None


def _modules():
    from .operators import card, compositor, jobs, panels, preferences, sequencer, shot_import, shot_settings

    # preferences and shot settings before the operators and panels that read them
    return (preferences, jobs, shot_settings, compositor, sequencer, shot_import, panels, card)


def register() -> None:
    global _cli_handle
    import bpy

    from .operators import cli

    for module in _modules():
        module.register()
    # `blender -b [file.blend] -c portrait_relight PLATE --out DIR ...` runs the same contract as ./relight.
    _cli_handle = bpy.utils.register_cli_command("portrait_relight", cli.main)


def unregister() -> None:
    global _cli_handle
    import bpy

    if _cli_handle is not None:
        bpy.utils.unregister_cli_command(_cli_handle)
        _cli_handle = None
    for module in reversed(_modules()):
        module.unregister()
