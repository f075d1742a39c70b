"""Silhouette inflation: a rounded height field for the body, hair and neck from the matte alone (geometry v1).

u solves the Poisson problem lap(u) = -1 inside the matte (u = 0 on the silhouette, zero flux where the subject is
cut by the frame), and h = sqrt(4u). For a disc this is exactly a hemisphere (u = (R^2 - r^2) / 4), and in general
it bulges like a rounded body.
"""

from __future__ import annotations

import numpy as np

from ..resample import resize, working_size

SOLVE_RESOLUTION = 192  # long edge of the direct Poisson solve; refined on the work grid
REFINE_ITERATIONS = 60  # Jacobi sweeps on the work grid after upsampling the coarse solution
MATTE_THRESHOLD = 0.5  # alpha above which a pixel is solid enough to shape the silhouette


def _neighbour_sum(u: np.ndarray) -> np.ndarray:
    """Sum of the 4-neighbours inside the image (missing ones count 0)."""
    s = np.zeros_like(u)
    s[1:] += u[:-1]
    s[:-1] += u[1:]
    s[:, 1:] += u[:, :-1]
    s[:, :-1] += u[:, 1:]
    return s


def _poisson_direct(mask: np.ndarray) -> np.ndarray:
    """u with lap(u) = -1 on `mask`, u = 0 on pixels outside it, zero flux across the image border."""
    import scipy.sparse as sp
    import scipy.sparse.linalg as spl

    h, w = mask.shape
    n = int(mask.sum())
    u = np.zeros(mask.shape, np.float64)
    if n == 0:
        return u
    index = np.full(mask.shape, -1, np.int64)
    index[mask] = np.arange(n)
    ys, xs = np.nonzero(mask)
    # Diagonal = neighbours inside the image: a neighbour beyond the frame is simply absent (Neumann), one
    # outside the matte is a zero-valued Dirichlet neighbour.
    in_image = _neighbour_sum(np.ones(mask.shape))[mask]
    rows, cols = [np.arange(n)], [np.arange(n)]
    vals = [in_image + 1e-6]  # tiny shift keeps an all-matte frame (no silhouette at all) solvable
    for dy, dx in ((0, 1), (0, -1), (1, 0), (-1, 0)):
        yy, xx = ys + dy, xs + dx
        ok = (yy >= 0) & (yy < h) & (xx >= 0) & (xx < w)
        neighbour = np.full(n, -1, np.int64)
        neighbour[ok] = index[yy[ok], xx[ok]]
        inside = neighbour >= 0
        rows.append(np.nonzero(inside)[0])
        cols.append(neighbour[inside])
        vals.append(-np.ones(int(inside.sum())))
    a = sp.csc_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(n, n))
    u[mask] = spl.spsolve(a, np.ones(n))
    return u


def _poisson_refine(u: np.ndarray, mask: np.ndarray, iterations: int) -> np.ndarray:
    """Jacobi sweeps of the same problem: cheap, and enough to fix the detail a coarse solve misses."""
    in_image = _neighbour_sum(np.ones(mask.shape))
    u = np.where(mask, u, 0.0)
    for _ in range(iterations):
        u = np.where(mask, (_neighbour_sum(u) + 1.0) / in_image, 0.0)
    return u


def inflation_height(mask: np.ndarray) -> np.ndarray:
    """Height field (work-grid pixel units) of the silhouette `mask` (bool (H, W)): sqrt(4u), see module doc.
    Solved directly on a coarse grid, upsampled and refined on the full grid."""
    h, w = mask.shape
    ch, cw = working_size(h, w, SOLVE_RESOLUTION)
    coarse_mask = resize(mask.astype(np.float32), ch, cw) > MATTE_THRESHOLD
    coarse = _poisson_direct(coarse_mask)
    # u grows with the square of the length unit, so going to a finer grid multiplies it by the factor^2.
    factor2 = (h / ch) * (w / cw)
    u = resize(coarse.astype(np.float32), h, w).astype(np.float64) * factor2
    u = _poisson_refine(u, mask, REFINE_ITERATIONS)
    return np.sqrt(4.0 * np.maximum(u, 0.0))


def normals_from_height(height: np.ndarray, scale: float = 1.0) -> np.ndarray:
    """Camera-space unit normals (H, W, 3) of z = scale * height(x, y_img), height in pixel units."""
    gy, gx = np.gradient(height * scale)
    n = np.stack([-gx, gy, np.ones_like(gx)], axis=-1)  # +gy: image rows run down, camera +Y runs up
    return (n / np.linalg.norm(n, axis=-1, keepdims=True)).astype(np.float32)
