"""Closed-form matting (Levin, Lischinski & Weiss 2008) solved exactly on the trimap's unknown pixels.

Alpha minimises alpha^T L alpha with the trimap's known pixels fixed, where L is the matting Laplacian of 3x3
windows: L_ij = sum over windows k holding i and j of
    delta_ij - (1 + (I_i - mu_k)^T (Sigma_k + eps/9 I3)^-1 (I_j - mu_k)) / 9.
Only windows touching an unknown pixel matter, so the system is built for those alone: L_uu alpha_u = -L_uk alpha_k.

It is solved directly, not iteratively: the unknown band of a portrait is a thin ring around the silhouette, so
after a reverse Cuthill-McKee ordering the matrix is banded (bandwidth ~300 at 512 px) and a banded Cholesky
costs n * bandwidth^2; a wide band (a big uncertain region) goes to SuperLU instead. Same answer as the
conjugate-gradient solvers (pymatting's, to its tolerance), in a fraction of the time, with numpy and scipy only.
"""

from __future__ import annotations

import numpy as np
import scipy.linalg
import scipy.sparse
import scipy.sparse.linalg
from scipy import ndimage
from scipy.sparse.csgraph import reverse_cuthill_mckee

EPSILON = 1e-7  # Levin et al.'s regulariser; larger values give smoother mattes
# A pull of this strength towards a prior alpha (the segmentation) keeps the system positive definite: where an
# unknown region has no known pixel nearby, and against round-off in near-singular window covariances (~1e-9:
# with 1e-10, Cholesky failed on 2 of 8 frames of a shot). It must stay well below the Laplacian's small
# eigenvalues: flat regions (a white suit) have modes near 1e-6, where a pull of 1e-6 moved alpha by 0.4 and
# 1e-8 by 0.04 at most; on the 16 shared portraits alpha stays within 3e-4 of pymatting's.
PRIOR_WEIGHT = 1e-8
# A banded Cholesky costs ~ n * bandwidth^2 flops and (bandwidth + 1) * n floats; beyond these, SuperLU.
MAX_BANDED_FLOPS = 6e9
MAX_BANDED_VALUES = 2e7

_WINDOW_DY = np.repeat([-1, 0, 1], 3)
_WINDOW_DX = np.tile([-1, 0, 1], 3)


def _inverse_3x3(m: np.ndarray) -> np.ndarray:
    """Inverse of (..., 3, 3) matrices by the adjugate: elementwise, so it avoids LAPACK's per-matrix calls,
    which for many tiny matrices can be 100x slower (OpenBLAS threading)."""
    a, b, c = m[..., 0, 0], m[..., 0, 1], m[..., 0, 2]
    d, e, f = m[..., 1, 0], m[..., 1, 1], m[..., 1, 2]
    g, h, i = m[..., 2, 0], m[..., 2, 1], m[..., 2, 2]
    cofactors = np.stack([e * i - f * h, c * h - b * i, b * f - c * e,
                          f * g - d * i, a * i - c * g, c * d - a * f,
                          d * h - e * g, b * g - a * h, a * e - b * d], axis=-1).reshape(m.shape)
    det = a * cofactors[..., 0, 0] + b * cofactors[..., 1, 0] + c * cofactors[..., 2, 0]
    return cofactors / det[..., None, None]


def laplacian_system(image: np.ndarray, unknown: np.ndarray, known_alpha: np.ndarray, epsilon: float = EPSILON
                     ) -> tuple[scipy.sparse.csr_matrix, np.ndarray, np.ndarray]:
    """(L_uu, -L_uk alpha_k, flat indices of the unknown pixels) for an (h, w, 3) float64 image.

    Windows are the 3x3 neighbourhoods centred inside the image that hold at least one unknown pixel."""
    h, w = unknown.shape
    unknown_index = np.flatnonzero(unknown)
    touched = ndimage.binary_dilation(unknown, np.ones((3, 3), bool))
    touched[[0, -1], :] = False
    touched[:, [0, -1]] = False
    rows, cols = np.nonzero(touched)
    pixels = (rows[:, None] + _WINDOW_DY) * w + (cols[:, None] + _WINDOW_DX)  # (windows, 9)
    colours = image.reshape(-1, 3)[pixels]
    centred = colours - colours.mean(axis=1, keepdims=True)
    covariance = np.matmul(centred.transpose(0, 2, 1), centred) / 9.0 + (epsilon / 9.0) * np.eye(3)
    projected = np.matmul(centred, _inverse_3x3(covariance))
    values = np.eye(9) - (1.0 + np.matmul(projected, centred.transpose(0, 2, 1))) / 9.0  # (windows, 9, 9)

    local = np.full(h * w, -1, np.int64)
    local[unknown_index] = np.arange(unknown_index.size)
    row = np.broadcast_to(local[pixels][:, :, None], values.shape).ravel()
    col_pixel = np.broadcast_to(pixels[:, None, :], values.shape).ravel()
    col = local[col_pixel]
    values = values.ravel()
    in_system = row >= 0
    both = in_system & (col >= 0)
    matrix = scipy.sparse.csr_matrix((values[both], (row[both], col[both])),
                                     shape=(unknown_index.size, unknown_index.size))
    to_known = in_system & (col < 0)
    rhs = -np.bincount(row[to_known], weights=values[to_known] * known_alpha.ravel()[col_pixel[to_known]],
                       minlength=unknown_index.size)
    return matrix, rhs, unknown_index


def solve_spd(matrix: scipy.sparse.csr_matrix, rhs: np.ndarray) -> np.ndarray:
    """Solve a sparse symmetric positive definite system exactly: banded Cholesky after a reverse Cuthill-McKee
    ordering when the band is narrow, SuperLU otherwise (or if Cholesky finds the matrix not definite)."""
    n = matrix.shape[0]
    order = reverse_cuthill_mckee(matrix, symmetric_mode=True)
    permuted = matrix[order][:, order].tocoo()
    upper = permuted.row <= permuted.col
    bandwidth = int(np.max(permuted.col[upper] - permuted.row[upper])) if permuted.nnz else 0
    if n * bandwidth**2 <= MAX_BANDED_FLOPS and (bandwidth + 1) * n <= MAX_BANDED_VALUES:
        banded = np.zeros((bandwidth + 1, n))  # upper form: banded[bandwidth + i - j, j] = A[i, j]
        banded[bandwidth + permuted.row[upper] - permuted.col[upper], permuted.col[upper]] = permuted.data[upper]
        try:
            solution = scipy.linalg.solveh_banded(banded, rhs[order], check_finite=False)
        except np.linalg.LinAlgError:
            pass  # not numerically definite: the LU below does not need it
        else:
            out = np.empty(n)
            out[order] = solution
            return out
    return scipy.sparse.linalg.splu(matrix.tocsc()).solve(rhs)


def closed_form_alpha(image: np.ndarray, trimap: np.ndarray, prior: np.ndarray | None = None,
                      epsilon: float = EPSILON) -> np.ndarray:
    """Alpha (h, w) float32 in [0, 1] for an (h, w, 3) image in [0, 1] (sRGB-encoded, as the colour-line model
    assumes) and a trimap (0 background, 1 foreground, anything between unknown). `prior` (h, w), e.g. the
    segmentation, only matters where the image says nothing (PRIOR_WEIGHT); default 0.5."""
    image = np.asarray(image, np.float64)
    unknown = (trimap > 0.0) & (trimap < 1.0)
    known_alpha = (trimap >= 1.0).astype(np.float64)
    if not unknown.any():
        return known_alpha.astype(np.float32)
    matrix, rhs, unknown_index = laplacian_system(image, unknown, known_alpha, epsilon)
    prior_values = 0.5 if prior is None else np.asarray(prior, np.float64).ravel()[unknown_index]
    matrix = matrix + PRIOR_WEIGHT * scipy.sparse.identity(matrix.shape[0], format="csr")
    alpha = known_alpha.ravel()
    alpha[unknown_index] = solve_spd(matrix, rhs + PRIOR_WEIGHT * prior_values)
    return np.clip(alpha, 0.0, 1.0).reshape(trimap.shape).astype(np.float32)
