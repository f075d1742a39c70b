"""The EXR of a real frame's passes read back at the precision inference/io/exr.py promises: colour passes within
half-float rounding of the float32 input, alpha and normals bit for bit; colour beyond half's range kept as float;
OpenEXR's thread pool changes nothing in the file."""

from __future__ import annotations

import numpy as np
import pytest
import skimage.data

from portrait_relight.inference import pipeline
from portrait_relight.inference.io import exr
from portrait_relight.inference.io.imageio import read_hdri, srgb_to_linear
from portrait_relight.inference.lighting.environment import Environment
from portrait_relight.inference.settings import RelightSettings

HALF_EPSILON = 2.0**-11  # half's unit roundoff: 10 stored mantissa bits, round to nearest
HALF_MIN_NORMAL = 2.0**-14  # below it half is subnormal, spaced 2^-24: absolute error up to 2^-25


def stored_channels(path) -> dict[str, np.ndarray]:
    """Every channel as plain OpenEXR returns it, in the type it is stored with."""
    import OpenEXR

    with OpenEXR.File(str(path), separate_channels=True) as f:
        return {name: np.array(ch.pixels) for name, ch in f.channels().items()}


@pytest.fixture(scope="module")
def frame(shared_dir) -> dict[str, np.ndarray]:
    """The passes of a small real frame: the astronaut at 256 px under a sunny HDRI."""
    plate = srgb_to_linear(skimage.data.astronaut()[::2, ::2] / 255.0)
    environment = Environment.centred(read_hdri(shared_dir / "data" / "hdri" / "rooitou_park_1k.hdr"), 30.0)
    return pipeline.relight(plate, environment, RelightSettings()).passes


def test_real_frame_reads_back_within_half_rounding(frame, tmp_path):
    path = exr.write_passes(tmp_path / "frame.exr", dict(frame))
    stored = stored_channels(path)
    back = exr.read_passes(path)
    assert set(back) == set(frame) == set(exr.PASS_CHANNELS)
    for name, pixels in frame.items():
        suffixes = exr.PASS_CHANNELS[name]
        types = {stored[f"relight.{name}.{s}"].dtype for s in suffixes}
        if name in exr.FULL_PRECISION_PASSES:
            assert types == {np.dtype(np.float32)}, name
            np.testing.assert_array_equal(back[name], pixels, err_msg=name)
            continue
        assert types == {np.dtype(np.float16)}, name
        x = pixels.astype(np.float64)
        error = np.abs(back[name].astype(np.float64) - x)
        normal = np.abs(x) >= HALF_MIN_NORMAL
        assert np.all(error[normal] <= HALF_EPSILON * np.abs(x[normal])), name
        assert np.all(error[~normal] <= 2.0**-25), name


def test_colour_beyond_half_range_is_stored_as_float(tmp_path):
    """A sun in the composite's backdrop (> 65504) would be inf as half: that pass alone goes to 32-bit float."""
    rng = np.random.default_rng(2)
    passes = {"composite": rng.random((6, 5, 3), np.float32), "relit": rng.random((6, 5, 4), np.float32)}
    passes["composite"][2, 3] = [118272.0, 70000.0, -66000.0]
    passes["relit"][0, 0, 0] = np.nan  # NaN fits half (it stays NaN): no reason for float
    path = exr.write_passes(tmp_path / "sun.exr", dict(passes))
    stored = stored_channels(path)
    assert {stored[f"relight.composite.{c}"].dtype for c in "RGB"} == {np.dtype(np.float32)}
    assert {stored[f"relight.relit.{c}"].dtype for c in "RGBA"} == {np.dtype(np.float16)}
    back = exr.read_passes(path)
    np.testing.assert_array_equal(back["composite"], passes["composite"])
    assert np.isnan(back["relit"][0, 0, 0]) and np.isfinite(back["relit"][1:]).all()


def test_fits_half_bounds():
    assert exr.fits_half(np.array([65504.0, -65504.0, np.nan], np.float32))
    assert not exr.fits_half(np.array([65505.0, 0.0], np.float32))
    assert not exr.fits_half(np.array([np.nan, -1e6], np.float32))
    assert exr.fits_half(np.zeros((0, 3), np.float32))


def test_thread_pool_writes_the_same_file(frame, tmp_path, monkeypatch):
    """OpenEXR compresses chunks on its workers but writes them in order: the bytes do not depend on the pool."""
    import OpenEXR

    before = OpenEXR.global_thread_count()
    monkeypatch.setattr(exr, "use_exr_threads", lambda: None)  # the test sets the pool itself
    try:
        OpenEXR.set_global_thread_count(0)
        single = exr.write_passes(tmp_path / "single.exr", dict(frame)).read_bytes()
        OpenEXR.set_global_thread_count(3)
        pooled = exr.write_passes(tmp_path / "pooled.exr", dict(frame)).read_bytes()
    finally:
        OpenEXR.set_global_thread_count(before)
    assert pooled == single


def test_use_exr_threads_sizes_the_pool_once(monkeypatch):
    import OpenEXR

    before = OpenEXR.global_thread_count()
    monkeypatch.setattr(exr, "_pool_sized", False)
    monkeypatch.setattr(exr.os, "sched_getaffinity", lambda pid: {0, 1, 2, 3})
    try:
        OpenEXR.set_global_thread_count(0)
        exr.use_exr_threads()
        assert OpenEXR.global_thread_count() == 4
        OpenEXR.set_global_thread_count(0)  # turned off after the first call: left off
        exr.use_exr_threads()
        assert OpenEXR.global_thread_count() == 0
        monkeypatch.setattr(exr, "_pool_sized", False)
        OpenEXR.set_global_thread_count(2)  # set by someone else before the first call: left alone
        exr.use_exr_threads()
        assert OpenEXR.global_thread_count() == 2
    finally:
        OpenEXR.set_global_thread_count(before)
