"""Per-pixel light maps of Total Relighting (Pandey et al. 2021): one diffuse and four Phong specular maps.

Normalisation (docs/ARCHITECTURE.md), for a unit normal n and reflected view ray r:
    diffuse(n)    = 1/pi          * integral L(w) max(0, n.w)   dw
    specular_e(r) = (e+1)/(2 pi)  * integral L(w) max(0, r.w)^e dw,   e in PHONG_EXPONENTS
so a constant environment L gives back L everywhere. Note specular_1 uses the very same kernel as the diffuse
map ((1+1)/(2 pi) = 1/pi), so it is the diffuse map looked up at r instead of n.

How the convolution is done (`prefilter`): every kernel k(n.w) is zonal, so the convolution is diagonal in
spherical harmonics (Funk-Hecke): c_lm -> Lambda_l c_lm with Lambda_l = 2 pi * integral_{-1}^{1} k(t) P_l(t) dt.
The SH coefficients come from the *discrete* panorama (FFT along each row, then an associated-Legendre sum over
rows with exact ring solid angles), so by the addition theorem the result equals the brute-force pixel sum
sum_p L_p k_L(n.w_p) dOmega_p with the band-limited kernel k_L. The Phong kernels are smooth (C^(e-1) at the
horizon) and are exact to ~1e-10 at band 64; the clamped cosine has a kink and converges like 1/(2 band), so a
few very bright pixels (the sun) are taken out of the SH part and added back exactly per pixel as point lights.
For speed (`_sh_convolve_stacked`), the Legendre table covers the top half of the rows only (the bottom half follows
by parity), is built for all orders m at once and shared by both bands, and the per-order sums are batched matrix
products small enough never to wake BLAS threads.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import cached_property, lru_cache

import numpy as np

from ..lighting.environment import Environment, pixel_directions, sample_equirect

PHONG_EXPONENTS = (1, 16, 32, 64)

# Band limits. Phong e >= 16 is exact to ~1e-10 at 64; the clamped cosine's residual error is ~1/(2*band) of
# what is left after the bright point lights are removed.
PHONG_BAND = 64
DIFFUSE_BAND = 128
# Panoramas taller than this are area-averaged down first (box filtering preserves each light's integral).
MAX_SOURCE_HEIGHT = 512
MIN_SOURCE_HEIGHT = 256
# A pixel whose power (radiance x solid angle, luminance) exceeds this fraction of the panorama's total power
# becomes part of a point light evaluated exactly per pixel (the clamped-cosine kink is too sharp for SH).
POINT_LIGHT_FRACTION = 2e-3
MAX_POINT_LIGHTS = 8
MAX_LIGHT_RADIUS_DEG = 4.0
_CHUNK = 65536  # pixels per work item of light_maps: keeps the (N, 12) temporaries in cache
_LUMA = np.array([0.2126, 0.7152, 0.0722])


@dataclass(frozen=True)
class LightGroup:
    """A compact cluster of very bright panorama pixels, kept out of the SH part and evaluated exactly.

    centre: (3,) unit panorama-frame direction; sin_radius: sine of the largest angle from `centre` to a pixel;
    moment: (3 channels, 3 xyz) = sum_p P_p d_p, so while every pixel is above the horizon the diffuse response
    is exactly moment @ n / pi; directions (k, 3) and power (k, 3) (= L dOmega per pixel) for the penumbra band.
    """

    centre: np.ndarray
    sin_radius: float
    moment: np.ndarray
    directions: np.ndarray
    power: np.ndarray


@dataclass(frozen=True)
class PrefilteredEnvironment:
    """Convolved equirect maps in the panorama frame (row 0 = top, Blender mapping) plus point lights.

    diffuse: (h, 2h, 3) float32, diffuse convolution of the environment *without* the point lights.
    specular: (h, 2h, 9) float32, Phong e = 16, 32, 64 stacked on channels (full environment, lights included).
    lights: the bright compact pixel groups left out of `diffuse`, added back exactly at lookup.
    The e = 1 map is the diffuse response looked up at r (same kernel).
    cam_to_env: (3, 3) camera -> panorama frame (copied from the Environment).
    """

    diffuse: np.ndarray
    specular: np.ndarray
    lights: tuple[LightGroup, ...]
    cam_to_env: np.ndarray

    @cached_property
    def lookup_maps(self) -> tuple[np.ndarray, np.ndarray]:
        """(diffuse, diffuse and specular stacked) wrap-padded for light_maps' bilinear lookups: made on first use
        and kept (a 512-row panorama's are 30 MB; a shot's frames and the learned shading's crop share them)."""
        # e = 1 shares the diffuse kernel: it is looked up at r together with the three sharper lobes
        return (_wrap_padded(self.diffuse),
                _wrap_padded(np.concatenate([self.diffuse, self.specular], axis=-1)))


@dataclass(frozen=True)
class LightMaps:
    """diffuse: (H, W, 3) float32; specular: (4, H, W, 3) float32 in PHONG_EXPONENTS order, or the lobes already
    blended, (H, W, 3), when light_maps was given lobe weights."""

    diffuse: np.ndarray
    specular: np.ndarray


def ring_solid_angles(height: int, width: int) -> np.ndarray:
    """(height,) exact solid angle of one pixel in each equirect row (the rows' bands sum to 4 pi)."""
    edges = np.cos(np.linspace(0.0, np.pi, height + 1))
    return (edges[:-1] - edges[1:]) * (2.0 * np.pi / width)


def box_downsample(radiance: np.ndarray, max_height: int) -> np.ndarray:
    """Area-average an equirect by an integer factor until its height is <= max_height (integrals preserved
    up to the rows' sin(theta) variation inside a block)."""
    h, w = radiance.shape[:2]
    f = 1
    while h // f > max_height and h % (2 * f) == 0 and w % (2 * f) == 0:
        f *= 2
    if f == 1:
        return radiance
    omega = ring_solid_angles(h, w)[:, None, None]
    weighted = (radiance * omega).reshape(h // f, f, w // f, f, -1).sum(axis=(1, 3))
    area = omega.reshape(h // f, f, 1, 1).sum(axis=1) * f
    return (weighted / area).astype(np.float32)


@lru_cache(maxsize=8)
def zonal_coefficients(exponent: int, band: int) -> np.ndarray:
    """(band+1,) Funk-Hecke factors Lambda_l of k(t) = (e+1)/(2 pi) max(0, t)^e (e = 1 is the diffuse 1/pi
    kernel): Lambda_l = (e+1) I_l with I_l = integral_0^1 t^e P_l(t) dt, which obeys the exact recursion
    I_l = (e - l + 2) / (e + l + 1) I_{l-2}, I_0 = 1/(e+1), I_1 = 1/(e+2): a product of ratios, without
    cancellation, and microseconds instead of the milliseconds per kernel of a Gauss-Legendre rule's eigensolve."""
    integrals = np.empty(band + 1)
    integrals[0] = 1.0 / (exponent + 1)
    if band >= 1:
        integrals[1] = 1.0 / (exponent + 2)
    for l in range(2, band + 1):
        integrals[l] = (exponent - l + 2) / (exponent + l + 1) * integrals[l - 2]
    return (exponent + 1) * integrals


def legendre_tables(height: int, band: int) -> tuple[np.ndarray, np.ndarray]:
    """Orthonormal associated Legendre P_l^m(cos theta_i) (Y_lm = P_l^m e^{i m phi} orthonormal on the sphere) at
    the row centres of the top half of a `height`-row equirect, l <= band, split by the parity of l - m:
    even[m, j, i] = P_{m+2j}^m and odd[m, j, i] = P_{m+2j+1}^m, zero where l > band. Shapes (band+1, band//2+1,
    (height+1)//2) and (band+1, (band+1)//2, (height+1)//2).

    The bottom half needs no table: P_l^m(-x) = (-1)^(l-m) P_l^m(x). The standard stable three-term recursion in
    l runs for all orders m at once (one numpy step per l - m), instead of a Python loop per (m, l).
    """
    rows = (height + 1) // 2
    theta = (np.arange(rows) + 0.5) * np.pi / height
    cos_t, sin_t = np.cos(theta), np.sin(theta)
    m = np.arange(band + 1, dtype=np.float64)[:, None]
    even = np.zeros((band + 1, band // 2 + 1, rows))
    odd = np.zeros((band + 1, (band + 1) // 2, rows))
    # sectoral P_m^m = -sqrt((2m+1)/(2m)) sin(theta) P_{m-1}^{m-1}, the same products as the scalar recursion
    factors = np.empty((band + 1, rows))
    factors[0] = np.sqrt(1.0 / (4.0 * np.pi))
    factors[1:] = -np.sqrt((2.0 * m[1:] + 1.0) / (2.0 * m[1:])) * sin_t
    p_prev = np.cumprod(factors, axis=0)
    even[:, 0] = p_prev
    if band == 0:
        return even, odd
    p = np.sqrt(2.0 * m + 3.0) * cos_t * p_prev  # P_{m+1}^m
    odd[:band, 0] = p[:band]
    for k in range(2, band + 1):  # l = m + k; orders m > band - k would only reach l > band: left at zero
        n = band + 1 - k
        mm, l = m[:n], m[:n] + k
        a = np.sqrt((4.0 * l * l - 1.0) / (l * l - mm * mm))
        b = np.sqrt(((l - 1.0) ** 2 - mm * mm) / (4.0 * (l - 1.0) ** 2 - 1.0))
        p_prev, p = p[:n], a * (cos_t * p[:n] - b * p_prev[:n])
        (odd if k % 2 else even)[:n, k // 2] = p
    return even, odd


def sh_convolve(radiance: np.ndarray, kernels: list[np.ndarray],
                tables: tuple[np.ndarray, np.ndarray] | None = None) -> list[np.ndarray]:
    """Convolve an equirect (h, w, C) with zonal kernels given by their Funk-Hecke factors (all the same
    length band+1). Returns one (h, w, C) float32 map per kernel, evaluated at the pixel centres.

    `tables`: legendre_tables(h, B) for any B >= the band used here (prefilter shares one across its two calls).
    Azimuth is taken as increasing with the column; that is a reflection of Blender's, which dot products
    (hence zonal convolutions) do not see.
    """
    stacked = _sh_convolve_stacked(radiance, kernels, tables)
    c = radiance.shape[2]
    return [np.ascontiguousarray(stacked[..., k * c : (k + 1) * c]) for k in range(len(kernels))]


def _sh_convolve_stacked(radiance: np.ndarray, kernels: list[np.ndarray],
                         tables: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray:
    """sh_convolve with the maps stacked on channels: (h, w, len(kernels) * C) float32, kernel-major.

    Per order m the work is two small real matrix products per parity (projection onto c_lm, then back to rows
    after scaling by Lambda_l), batched over m in one np.matmul each. For a 512-row panorama each product is too
    small for OpenBLAS to hand to its threads (checked: its worker gets no CPU time during prefilter), which on a
    busy machine cost more than the maths.
    """
    import scipy.fft  # pocketfft C++: ~3x numpy's on these batched real transforms

    h, w, c = radiance.shape
    nk = len(kernels)
    band = min(len(kernels[0]) - 1, w // 2 - 1)  # a w-column row carries azimuthal orders below w/2 only
    rows = (h + 1) // 2
    if tables is None:
        tables = legendre_tables(h, band)
    if tables[0].shape[2] != rows or tables[0].shape[0] <= band:
        raise ValueError(f"Legendre tables of shape {tables[0].shape} do not fit height {h}, band {band}")
    even, odd = tables[0][: band + 1, : band // 2 + 1], tables[1][: band + 1, : (band + 1) // 2]
    omega = ring_solid_angles(h, w)  # per pixel
    if h % 2:
        omega[rows - 1] *= 0.5  # the equator row is its own mirror: counted once in top + bottom
    # F[i, m] = sum_j L[i, j] e^{-i m phi_j} dOmega_i for m <= band, as (re, im) pairs. The pixel centres'
    # half-column phase e^{-i m pi / w} would be undone exactly at synthesis (same columns), so it is left out.
    spectrum = scipy.fft.rfft(np.ascontiguousarray(radiance.transpose(0, 2, 1), np.float64), axis=-1)
    spectrum = spectrum[:, :, : band + 1] * omega[:, None, None]  # (h, C, M)
    pairs = spectrum.view(np.float64).reshape(h, c, band + 1, 2)
    top, bottom = pairs[:rows], pairs[::-1][:rows]  # row i and its mirror h-1-i
    # (M, rows, 2C): symmetric and antisymmetric parts, projected onto even and odd l - m respectively
    sym = np.ascontiguousarray((top + bottom).transpose(2, 0, 1, 3)).reshape(band + 1, rows, 2 * c)
    anti = np.ascontiguousarray((top - bottom).transpose(2, 0, 1, 3)).reshape(band + 1, rows, 2 * c)
    order = np.arange(band + 1)[:, None]

    def synthesis(table: np.ndarray, parity: int, part: np.ndarray) -> np.ndarray:
        coeff = table @ part  # (M, J, 2C): c_lm for l = m + 2j + parity
        degree = order + 2 * np.arange(table.shape[1])[None, :] + parity
        scale = np.stack([np.where(degree <= band, np.asarray(k, np.float64)[np.minimum(degree, band)], 0.0)
                          for k in kernels], axis=-1) * w  # irfft divides by w; the sum over m does not
        scaled = (coeff[:, :, None, :] * scale[..., None]).reshape(band + 1, -1, nk * 2 * c)
        return table.transpose(0, 2, 1) @ scaled  # (M, rows, nk * 2C)

    sym_out, anti_out = synthesis(even, 0, sym), synthesis(odd, 1, anti)
    out = np.zeros((h, nk, c, w // 2 + 1), np.complex128)  # zero-padded here: scipy's own padding copies twice
    out_pairs = out.view(np.float64).reshape(h, nk, c, w // 2 + 1, 2)[:, :, :, : band + 1]
    out_pairs[:rows] = (sym_out + anti_out).reshape(band + 1, rows, nk, c, 2).transpose(1, 2, 3, 0, 4)
    out_pairs[h - rows :] = (sym_out - anti_out).reshape(band + 1, rows, nk, c, 2).transpose(1, 2, 3, 0, 4)[::-1]
    # sum over m = -band..band of G_m e^{i m phi} = w * irfft(G): irfft doubles m > 0 and divides by w (the
    # factor w is in `scale`)
    maps = scipy.fft.irfft(out, n=w, axis=-1)  # (h, nk, C, w)
    return maps.transpose(0, 3, 1, 2).reshape(h, w, nk * c).astype(np.float32)


def _extract_light_groups(radiance: np.ndarray) -> tuple[np.ndarray, tuple[LightGroup, ...]]:
    """Split the brightest compact pixel clusters off the panorama. Returns (residual radiance, groups).

    Pixels whose luminance power exceeds POINT_LIGHT_FRACTION of the total are grouped by flood fill on the
    8-neighbourhood (wrapping in azimuth). Groups narrower than MAX_LIGHT_RADIUS_DEG (suns, bulbs) become
    LightGroups, the MAX_POINT_LIGHTS most powerful first, and are zeroed in the residual so nothing counts twice.
    Wide groups (softboxes, windows) stay in the SH part: their own extent already softens the kink.
    """
    h, w = radiance.shape[:2]
    omega = np.broadcast_to(ring_solid_angles(h, w)[:, None], (h, w))
    power = (radiance.astype(np.float64) @ _LUMA) * omega
    total = power.sum()
    if not np.isfinite(total) or total <= 0.0:
        return radiance, ()
    hot = np.argwhere(power > POINT_LIGHT_FRACTION * total)  # at most 1 / POINT_LIGHT_FRACTION pixels
    if not len(hot):
        return radiance, ()
    groups_of_pixels = _connected_groups(hot, w)
    order = sorted(groups_of_pixels, key=lambda g: -power[g[:, 0], g[:, 1]].sum())
    dirs = pixel_directions(h, w)
    residual = radiance.copy()
    groups = []
    for pixels in order:
        sel = (pixels[:, 0], pixels[:, 1])
        d = dirs[sel]
        p = radiance[sel].astype(np.float64) * omega[sel][:, None]
        centre = (d * (p @ _LUMA)[:, None]).sum(axis=0)
        centre /= np.linalg.norm(centre)
        cos_radius = float(np.min(d @ centre))
        if cos_radius < np.cos(np.radians(MAX_LIGHT_RADIUS_DEG)):
            continue
        groups.append(LightGroup(centre, float(np.sqrt(max(0.0, 1.0 - cos_radius**2))), p.T @ d, d, p))
        residual[sel] = 0.0
        if len(groups) == MAX_POINT_LIGHTS:
            break
    return residual, tuple(groups)


def _connected_groups(pixels: np.ndarray, width: int) -> list[np.ndarray]:
    """Split (k, 2) (row, col) pixels into 8-connected groups, wrapping in azimuth (k is small: a flood fill)."""
    index = {(int(r), int(c)): i for i, (r, c) in enumerate(pixels)}
    seen = np.zeros(len(pixels), bool)
    groups = []
    for start in range(len(pixels)):
        if seen[start]:
            continue
        seen[start] = True
        stack, members = [start], []
        while stack:
            i = stack.pop()
            members.append(i)
            r, c = pixels[i]
            for dr in (-1, 0, 1):
                for dc in (-1, 0, 1):
                    j = index.get((int(r + dr), int((c + dc) % width)))
                    if j is not None and not seen[j]:
                        seen[j] = True
                        stack.append(j)
        groups.append(pixels[members])
    return groups


def prefilter(environment: Environment, max_source_height: int = MAX_SOURCE_HEIGHT) -> PrefilteredEnvironment:
    """Convolve the environment with the diffuse and Phong kernels (depends only on the HDRI: cache per shot).

    The maps keep the (possibly box-downsampled) panorama's resolution, so bilinear lookups are accurate to well
    under 1 % even for the e = 64 lobe (~7 degrees wide).
    """
    radiance = np.nan_to_num(np.asarray(environment.radiance, np.float32), nan=0.0, posinf=0.0, neginf=0.0)
    radiance = box_downsample(np.maximum(radiance, 0.0), max_source_height)
    if radiance.shape[0] < MIN_SOURCE_HEIGHT:
        # a coarse grid cannot integrate the ~7 degree e=64 lobe (nor hold it for lookups): resample up
        radiance = sample_equirect(radiance, pixel_directions(MIN_SOURCE_HEIGHT, 2 * MIN_SOURCE_HEIGHT))
    residual, groups = _extract_light_groups(radiance)
    # one Legendre table serves both bands (the lower band's is a slice of it)
    tables = legendre_tables(radiance.shape[0], min(max(DIFFUSE_BAND, PHONG_BAND), radiance.shape[1] // 2 - 1))
    diffuse = _sh_convolve_stacked(residual, [zonal_coefficients(1, DIFFUSE_BAND)], tables)
    specular = _sh_convolve_stacked(radiance, [zonal_coefficients(e, PHONG_BAND) for e in PHONG_EXPONENTS[1:]],
                                    tables)
    return PrefilteredEnvironment(
        diffuse=np.maximum(diffuse, 0.0, out=diffuse),
        specular=np.maximum(specular, 0.0, out=specular),
        lights=groups,
        cam_to_env=np.asarray(environment.cam_to_env, np.float64),
    )


def _wrap_padded(equirect: np.ndarray) -> np.ndarray:
    """(h, w, C) -> (h, w+1, C) with the first column repeated at the end, so bilinear taps need no modulo."""
    return np.ascontiguousarray(np.concatenate([equirect, equirect[:, :1]], axis=1), np.float32)


def _bilinear(padded: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Bilinear lookup of a wrap-padded equirect (h, w+1, C) at panorama-frame unit directions q (N, 3),
    with Blender's mapping (environment.direction_to_uv): wraps in u, clamps in v. Same result as
    environment.sample_equirect, restructured for speed (one flat gather per tap)."""
    h, w1, c = padded.shape
    w = w1 - 1
    x = np.arctan2(q[:, 1], q[:, 0]) * np.float32(-w / (2.0 * np.pi)) + np.float32(0.5 * w - 0.5)
    x = np.mod(x, np.float32(w))  # pixel-centre coordinates in [0, w); column w is the wrapped column 0
    y = np.arccos(np.clip(q[:, 2], -1.0, 1.0)) * np.float32(h / np.pi) - np.float32(0.5)
    y = np.clip(y, 0.0, h - 1.0)
    x0 = np.minimum(x.astype(np.int32), w - 1)
    y0 = np.minimum(y.astype(np.int32), h - 2) if h > 1 else np.zeros_like(x0)
    fx = (x - x0)[:, None]
    fy = (y - y0)[:, None]
    flat = padded.reshape(-1, c)
    i00 = y0 * w1 + x0
    i10 = i00 + (w1 if h > 1 else 0)
    top = np.take(flat, i00, axis=0)
    top += fx * (np.take(flat, i00 + 1, axis=0) - top)
    bottom = np.take(flat, i10, axis=0)
    bottom += fx * (np.take(flat, i10 + 1, axis=0) - bottom)
    top += fy * (bottom - top)
    return top


def _light_groups_diffuse(lights: tuple[LightGroup, ...], q: np.ndarray) -> np.ndarray:
    """Exact diffuse response (N, 3) of the light groups at panorama-frame unit directions q (N, 3)."""
    out = np.zeros((q.shape[0], 3), np.float32)
    if not lights:
        return out
    centres = np.stack([g.centre for g in lights], axis=1).astype(np.float32)  # (3, G)
    sin_r = np.array([g.sin_radius for g in lights], np.float32)
    moments = np.concatenate([g.moment.T / np.pi for g in lights], axis=1).astype(np.float32)  # (3, 3G)
    s = q @ centres  # (N, G)
    lit = (s >= sin_r).astype(np.float32)  # every pixel of the group above the horizon: exactly linear in q
    linear = (q @ moments).reshape(-1, len(lights), 3)
    out += np.einsum("ng,ngc->nc", lit, linear, optimize=True)
    for k, g in enumerate(lights):
        band = np.flatnonzero(np.abs(s[:, k]) < sin_r[k])  # penumbra: sum the group's pixels one by one
        if band.size:
            cos = np.maximum(q[band] @ g.directions.T.astype(np.float32), 0.0)
            out[band] += cos @ (g.power / np.pi).astype(np.float32)
    return out


def blend_lobes(specular: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """sum_k weights[..., k] * specular[k]: the four Phong maps (4, ..., 3) blended by per-pixel weights (..., 4)."""
    return np.einsum("k...c,...k->...c", specular, weights).astype(np.float32, copy=False)


def light_maps(
    prefiltered: PrefilteredEnvironment,
    normals: np.ndarray,
    view_rays: np.ndarray,
    mask: np.ndarray | None = None,
    lobe_weights: np.ndarray | None = None,
) -> LightMaps:
    """Per-pixel light maps. normals, view_rays: (H, W, 3) camera space (rays from the camera into the scene).

    diffuse at n; specular_e at r = 2 (n.v) n - v with v = -ray (surface -> camera). Zero outside `mask`.
    With `lobe_weights` (H, W, 4), `specular` is blend_lobes of the four maps, computed chunk by chunk so the
    four full-size maps (48 bytes a pixel: 1.6 GB on an 8K plate) never exist.
    Work is split in cache-sized chunks over a small thread pool (numpy releases the GIL in these kernels).
    """
    h, w = normals.shape[:2]
    k = len(PHONG_EXPONENTS)
    n_all = normals.reshape(-1, 3)
    v_all = view_rays.reshape(-1, 3)
    w_all = None if lobe_weights is None else lobe_weights.reshape(-1, k)
    idx = np.arange(h * w) if mask is None else np.flatnonzero(np.asarray(mask).reshape(-1))
    diffuse = np.zeros((h * w, 3), np.float32)
    specular = np.zeros((h * w, 3) if w_all is not None else (k, h * w, 3), np.float32)
    rot = prefiltered.cam_to_env.T.astype(np.float32)
    diffuse_map, reflected_maps = prefiltered.lookup_maps

    def shade(chunk: np.ndarray) -> None:
        n = n_all[chunk].astype(np.float32, copy=False)
        v = v_all[chunk].astype(np.float32, copy=False)
        r = n * (-2.0 * np.einsum("ij,ij->i", n, v))[:, None] + v  # 2 (n.v') n - v' with v' = -ray
        n_env = _normalise(n @ rot)
        r_env = _normalise(r @ rot)
        d = _bilinear(diffuse_map, n_env)
        d += _light_groups_diffuse(prefiltered.lights, n_env)
        s = _bilinear(reflected_maps, r_env)
        s[:, :3] += _light_groups_diffuse(prefiltered.lights, r_env)
        diffuse[chunk] = d
        lobes = s.reshape(-1, k, 3).transpose(1, 0, 2)
        if w_all is None:
            specular[:, chunk] = lobes
        else:
            specular[chunk] = blend_lobes(lobes, w_all[chunk])

    chunks = [idx[i : i + _CHUNK] for i in range(0, idx.size, _CHUNK)]
    if len(chunks) > 1:
        with ThreadPoolExecutor(max_workers=max(1, min(8, os.cpu_count() or 1))) as pool:
            list(pool.map(shade, chunks))
    elif chunks:
        shade(chunks[0])
    return LightMaps(diffuse.reshape(h, w, 3), specular.reshape((h, w, 3) if w_all is not None else (k, h, w, 3)))


def _normalise(x: np.ndarray) -> np.ndarray:
    """Unit vectors; zero vectors (e.g. a missing normal inside the mask) become +Z instead of NaN."""
    norm = np.linalg.norm(x, axis=1, keepdims=True)
    bad = norm[:, 0] < 1e-12
    x = x / np.where(norm < 1e-12, 1.0, norm)
    x[bad] = (0.0, 0.0, 1.0)
    return x
