"""Add-on preferences: ONNX Runtime provider and threads, a user models folder, cache folders.

`settings_from_preferences(context, fov_deg)` is how operators build their RelightSettings: it checks the user
models folder against the model contracts (inference/models/contracts.py), raising RelightInputError that names
the bad file. Outside an enabled add-on (tests importing the package, `./relight`) there are no preferences and
the defaults apply.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

import bpy

from ..inference.errors import RelightInputError
from ..inference.models import session
from ..inference.models.contracts import check_models_dir
from ..inference.settings import RelightSettings

# The extension's root package (this module lives in <root>.operators): "bl_ext.<repo>.portrait_relight" when
# installed, "portrait_relight" when the checkout is imported as a package.
ADDON_ID = __package__.rpartition(".")[0]
FALLBACK_CACHE = "portrait_relight"

# Dynamic enum items must stay referenced from Python, hence module-level tuples. Identifiers are the upper-cased
# RelightSettings.provider values.
_CPU_ITEM = ("CPU", "CPU", "Run the ONNX models on the CPU")
_GPU_ITEMS = {
    "cuda": ("CUDA", "CUDA", "Run the ONNX models on an NVIDIA GPU through onnxruntime's CUDA provider "
                             "(needs onnxruntime-gpu; falls back to the CPU for operators it lacks)"),
    "directml": ("DIRECTML", "DirectML", "Run the ONNX models on any DirectX 12 GPU (Windows)"),
    "coreml": ("COREML", "Core ML", "Run the ONNX models through Apple's Core ML (GPU and Neural Engine)"),
}
_item_lists: dict[tuple[str, ...], list] = {}

# folder -> (ok, one-line status) of the last models check, shown in the preferences.
_models_status: dict[str, tuple[bool, str]] = {}


@functools.cache
def offered_gpu_providers() -> tuple[str, ...]:
    """The GPU providers this onnxruntime build offers (the zip decides: DirectML on Windows, Core ML on macOS)."""
    return tuple(session.offered_gpu_providers())


def _provider_items(_self, _context):
    offered = offered_gpu_providers()
    return _item_lists.setdefault(offered, [_CPU_ITEM, *(_GPU_ITEMS[p] for p in offered)])


def check_models(folder: str) -> tuple[bool, str]:
    """Check a user models folder; remembers and returns (ok, status line)."""
    try:
        names = check_models_dir(folder)
    except RelightInputError as exc:
        status = (False, str(exc))
    else:
        status = (True, f"{len(names)} model(s) follow the contract: {', '.join(names)}")
    _models_status[folder] = status
    return status


def _models_dir_changed(self, _context) -> None:
    folder = models_folder(self)
    if folder:
        ok, message = check_models(folder)
        if not ok:
            print(f"Portrait Relight: {message}")


class PortraitRelightPreferences(bpy.types.AddonPreferences):
    bl_idname = ADDON_ID

    provider: bpy.props.EnumProperty(
        name="Execution Provider", items=_provider_items, default=0,
        description="Where ONNX Runtime runs the models (GPU providers are listed when this onnxruntime offers "
                    "them; one that fails to load falls back to the CPU with a message in the console)",
    )
    threads: bpy.props.IntProperty(
        name="Threads", default=0, min=0, max=1024, soft_max=64,
        description="ONNX Runtime intra-op threads (0: the runtime decides)",
    )
    models_dir: bpy.props.StringProperty(
        name="User Models", subtype="DIR_PATH", update=_models_dir_changed,
        description="Folder of your own ONNX models following inference/models/CONTRACTS.md, with the bundled "
                    "models' file names; they replace the bundled ones (empty: bundled models only)",
    )
    cache_dir: bpy.props.StringProperty(
        name="Cache Folder", subtype="DIR_PATH",
        description="Where Portrait Relight keeps caches (empty: the extension's user folder)",
    )

    def draw(self, _context):
        layout = self.layout
        layout.use_property_split = True
        layout.prop(self, "provider")
        layout.prop(self, "threads")
        layout.prop(self, "models_dir")
        folder = models_folder(self)
        if folder:
            ok, message = _models_status.get(folder) or check_models(folder)
            layout.label(text=message, icon="CHECKMARK" if ok else "ERROR")
        layout.prop(self, "cache_dir")
        layout.label(text=f"Cache: {cache_folder(self)}", icon="FILE_FOLDER")


def addon_preferences(context=None) -> PortraitRelightPreferences | None:
    """The add-on's preferences, or None when the package is not an enabled add-on."""
    context = context or bpy.context
    addon = context.preferences.addons.get(ADDON_ID)
    return addon.preferences if addon is not None else None


def default_cache_folder() -> Path:
    """The extension's user folder `cache` when installed as an extension, else the user cache folder."""
    try:
        return Path(bpy.utils.extension_path_user(ADDON_ID, path="cache", create=True))
    except ValueError:  # not an extension (a legacy add-on or the checkout imported as a package)
        base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        return Path(base) / FALLBACK_CACHE


def _folder(value: str) -> Path | None:
    return Path(bpy.path.abspath(value)) if value else None


def cache_folder(prefs: PortraitRelightPreferences | None = None) -> Path:
    return (_folder(prefs.cache_dir) if prefs is not None else None) or default_cache_folder()


def models_folder(prefs: PortraitRelightPreferences | None) -> str | None:
    folder = _folder(prefs.models_dir) if prefs is not None else None
    return os.path.normpath(folder) if folder else None


def execution_provider(prefs: PortraitRelightPreferences | None) -> str:
    """RelightSettings.provider: the chosen GPU provider while onnxruntime still offers it, else the CPU."""
    chosen = prefs.provider.lower() if prefs is not None else "cpu"
    return chosen if chosen in offered_gpu_providers() else "cpu"


def settings_from_preferences(context, fov_deg: float) -> RelightSettings:
    """RelightSettings for a job, from the add-on preferences (defaults outside an enabled add-on).

    Raises RelightInputError naming the file when the user models folder breaks the model contract."""
    prefs = addon_preferences(context)
    models_dir = models_folder(prefs)
    if models_dir:
        ok, message = check_models(models_dir)
        if not ok:
            raise RelightInputError(None, message)
    threads = prefs.threads if prefs is not None else 0
    return RelightSettings(fov_deg=fov_deg, threads=threads, provider=execution_provider(prefs),
                           models_dir=models_dir)


def _check_on_load() -> None:
    """Validate the models folder once the preferences are loaded (a timer, so start-up is not held up)."""
    prefs = addon_preferences()
    folder = models_folder(prefs)
    if folder:
        ok, message = check_models(folder)
        if not ok:
            print(f"Portrait Relight: {message}")


def register():
    bpy.utils.register_class(PortraitRelightPreferences)
    if not bpy.app.background:
        bpy.app.timers.register(_check_on_load, first_interval=1.0)


def unregister():
    if bpy.app.timers.is_registered(_check_on_load):
        bpy.app.timers.unregister(_check_on_load)
    bpy.utils.unregister_class(PortraitRelightPreferences)
