"""The platforms the extension is built for, and how a wheel's file name says which platform it runs on.

Used by tools/build_extension.py (which wheels pip fetches for each zip) and by the tests that check each zip's
wheels independently of Blender's own `--split-platforms` filter.
"""

from __future__ import annotations

import re

# Blender's platform names -> the pip platform tags its wheels may carry, in order of preference: pip takes the
# first tag a release has a wheel for, so the oldest macOS comes first and each zip runs on as many Macs as its
# wheels allow (the newest onnxruntime and PyAV builds for Apple silicon need macOS 14 anyway; minimum_macos()).
PIP_PLATFORM_TAGS: dict[str, tuple[str, ...]] = {
    "linux-x64": ("manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_17_x86_64",
                  "manylinux2014_x86_64"),
    "windows-x64": ("win_amd64",),
    "macos-arm64": tuple(f"macosx_{v}_arm64" for v in ("11_0", "12_0", "13_0", "14_0")),
    "macos-x64": tuple(f"macosx_{v}_x86_64" for v in ("10_9", "10_10", "10_13", "10_14", "10_15", "11_0", "12_0",
                                                       "13_0", "14_0")),
}
PLATFORMS = tuple(PIP_PLATFORM_TAGS)

# Where a platform departs from requirements.txt: package -> the requirement used there instead.
# - windows-x64: onnxruntime-directml is onnxruntime with the DirectML provider (GPUs of every vendor through
#   DirectX 12) besides the CPU one; 1.24.4 is its newest release.
# - macos-x64: onnxruntime stopped publishing Intel-Mac wheels after 1.23.2, so that platform keeps that release
#   (tests/test_platform_pins.py runs the product with it).
PLATFORM_OVERRIDES: dict[str, dict[str, str]] = {
    "windows-x64": {"onnxruntime": "onnxruntime-directml==1.24.4"},
    "macos-x64": {"onnxruntime": "onnxruntime==1.23.2"},
}

_WHEEL = re.compile(r"^(?P<name>[^-]+)-(?P<version>[^-]+)(-\d[^-]*)?-(?P<python>[^-]+)-(?P<abi>[^-]+)-"
                    r"(?P<platform>[^-]+)\.whl$")


def wheel_tags(file_name: str) -> dict[str, str]:
    """name, version, python, abi and platform fields of a wheel file name (PEP 427)."""
    match = _WHEEL.match(file_name)
    if match is None:
        raise ValueError(f"{file_name}: not a wheel file name")
    return match.groupdict()


def blender_platforms_of(file_name: str) -> set[str]:
    """The Blender platforms a wheel runs on, from its platform tags ('any' -> every platform)."""
    found = set()
    for tag in wheel_tags(file_name)["platform"].split("."):
        if tag == "any":
            return set(PLATFORMS)
        if tag.startswith("macosx_") and tag.endswith("_universal2"):
            found |= {"macos-arm64", "macos-x64"}
        found |= {platform for platform, tags in PIP_PLATFORM_TAGS.items() if tag in tags}
    return found


def preference(file_name: str, platform: str) -> int:
    """Rank of a wheel for `platform` (lower is preferred, as pip ranks it); pure wheels rank first."""
    tags = wheel_tags(file_name)["platform"].split(".")
    if "any" in tags:
        return 0
    order = PIP_PLATFORM_TAGS[platform]
    return min((order.index(t) for t in tags if t in order), default=len(order))


def runs_on_python311(file_name: str) -> bool:
    """Whether CPython 3.11 can import the wheel (cp311 builds, the stable ABI from an older CPython 3, or pure)."""
    tags = wheel_tags(file_name)
    pythons, abis = tags["python"].split("."), tags["abi"].split(".")
    if "cp311" in abis or "none" in abis and any(p in ("py3", "py2", "cp311") for p in pythons):
        return True
    return "abi3" in abis and any(re.fullmatch(r"cp3(\d+)", p) and int(p[3:]) <= 11 for p in pythons)


def minimum_macos(file_names: list[str]) -> str | None:
    """The newest macOS version any of the wheels asks for ('14.0'), or None when none is a macOS wheel."""
    versions = [tuple(int(v) for v in m.groups()) for name in file_names
                for m in [re.search(r"macosx_(\d+)_(\d+)_", name)] if m]
    return ".".join(map(str, max(versions))) if versions else None
