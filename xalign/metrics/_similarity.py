"""Linear CKA between paired representations, in the p x p feature-space form."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray

from xalign.errors import ConfigError, DataError
from xalign.metrics._blas import one_blas_thread
from xalign.metrics._checks import check_finite, check_groups, check_labels, unique_in_order
from xalign.metrics._clusters import _group_index, _parallel_rows, _resolve_pairs
from xalign.metrics._tidy import tidy_frame

__all__ = ["cka_between_languages", "cka_block_bootstrap", "cka_matrix", "linear_cka"]


@dataclass(frozen=True)
class _Stats:
    """What one layer contributes to CKA, besides the cross term."""

    self_term: float  # ||X^T X||_F (biased) or sqrt(debiased HSIC(K, K)) up to 1/(n(n-3))
    row_sq: NDArray[np.float64] | None  # squared row norms of the centred X (debiased only)
    total_sq: float  # ||X_c||_F^2


def _centred(X: NDArray[np.floating]) -> NDArray[np.float64]:
    Xc = np.array(X, dtype=np.float64, copy=True)
    Xc -= Xc.mean(axis=0, keepdims=True)
    return Xc


def _debiased_term(
    xty_sq: float, rx: NDArray[np.float64], ry: NDArray[np.float64], sx: float, sy: float, n: int
) -> float:
    # n(n-3) HSIC_1 of Song et al. (2012) for column-centred X, Y: K~1 = -r_x, 1'K~1 = -||X||^2.
    return xty_sq - n / (n - 2.0) * float(rx @ ry) + sx * sy / ((n - 1.0) * (n - 2.0))


def _stats(Xc: NDArray[np.float64], debiased: bool) -> _Stats:
    gram = Xc.T @ Xc
    fro_sq = float(np.sum(gram * gram))
    row_sq = np.einsum("ij,ij->i", Xc, Xc)
    total = float(row_sq.sum())
    if not debiased:
        return _Stats(float(np.sqrt(fro_sq)), None, total)
    n = Xc.shape[0]
    h = _debiased_term(fro_sq, row_sq, row_sq, total, total, n)
    return _Stats(float(np.sqrt(h)) if h > 0 else float("nan"), row_sq, total)


def _cka(Xc: NDArray[np.float64], Yc: NDArray[np.float64], sx: _Stats, sy: _Stats) -> float:
    cross = Xc.T @ Yc
    xty = float(np.sum(cross * cross))
    if sx.row_sq is not None and sy.row_sq is not None:
        xty = _debiased_term(xty, sx.row_sq, sy.row_sq, sx.total_sq, sy.total_sq, Xc.shape[0])
    denom = sx.self_term * sy.self_term
    if not denom > 0:
        return float("nan")
    return float(xty / denom)


def _min_rows(debiased: bool) -> int:
    return 4 if debiased else 2


def linear_cka(X: ArrayLike, Y: ArrayLike, *, debiased: bool = False) -> float:
    """Return the linear centred kernel alignment (CKA) of two paired representations.

    Rows of ``X`` (n, p1) and ``Y`` (n, p2) must be paired (row i of both describes the same
    input). After column-centring both,

    .. math::
        \\mathrm{CKA}(X,Y)=\\frac{\\lVert Y^\\top X\\rVert_F^2}
        {\\lVert X^\\top X\\rVert_F\\,\\lVert Y^\\top Y\\rVert_F}
        =\\frac{\\mathrm{HSIC}(K,L)}{\\sqrt{\\mathrm{HSIC}(K,K)\\,\\mathrm{HSIC}(L,L)}},
        \\quad K=XX^\\top,\\ L=YY^\\top,

    computed in the p x p feature-space form: time O(n p1 p2 + n p1^2 + n p2^2), memory
    O(n (p1 + p2) + p1 p2); the n x n Gram matrices are never formed. Range [0, 1]; **higher =
    more similar**; 1 for ``Y = c X Q`` with Q orthogonal and c != 0 (invariant to rotation
    and isotropic scaling, not to arbitrary invertible maps); symmetric in X, Y.

    With ``debiased=True`` each HSIC is the unbiased estimator of Song et al. (2012),

    .. math::
        \\mathrm{HSIC}_1=\\frac{1}{n(n-3)}\\Big[\\mathrm{tr}(\\tilde K\\tilde L)
        +\\frac{\\mathbf1^\\top\\tilde K\\mathbf1\\,\\mathbf1^\\top\\tilde L\\mathbf1}{(n-1)(n-2)}
        -\\frac{2}{n-2}\\mathbf1^\\top\\tilde K\\tilde L\\mathbf1\\Big],

    :math:`\\tilde K,\\tilde L` being :math:`K, L` with zeroed diagonals, evaluated from the
    centred features and their squared row norms (Kornblith et al.'s
    ``feature_space_linear_cka(debiased=True)``). It removes the upward bias of CKA when p is
    large relative to n; its value can fall slightly below 0. Needs n >= 4 (n >= 2 biased).
    Computation is in float64. Degenerate input (a constant ``X``) gives NaN.

    Parameters
    ----------
    X : array-like of shape (n, p1)
    Y : array-like of shape (n, p2)
    debiased : bool

    Returns
    -------
    float

    References
    ----------
    Kornblith, S., Norouzi, M., Lee, H. & Hinton, G. (2019). Similarity of Neural Network
    Representations Revisited. ICML. Song, L., Smola, A., Gretton, A., Bedo, J. & Borgwardt, K.
    (2012). Feature Selection via Dependence Maximization. JMLR 13. docs/metrics.md#cka.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(50, 4))
    >>> Q, _ = np.linalg.qr(rng.normal(size=(4, 4)))
    >>> round(linear_cka(X, 3.0 * X @ Q), 12)
    1.0
    >>> 0.0 <= linear_cka(X, rng.normal(size=(50, 3))) <= 1.0
    True
    """
    Xa = check_finite(X, what="X")
    Ya = check_finite(Y, what="Y")
    if Xa.shape[0] != Ya.shape[0]:
        raise DataError(f"CKA needs paired rows: X has {Xa.shape[0]} rows, Y has {Ya.shape[0]}")
    need = _min_rows(debiased)
    if Xa.shape[0] < need:
        raise DataError(
            f"CKA{' (debiased)' if debiased else ''} needs at least {need} paired rows, "
            f"got {Xa.shape[0]}"
        )
    Xc, Yc = _centred(Xa), _centred(Ya)
    return _cka(Xc, Yc, _stats(Xc, debiased), _stats(Yc, debiased))


#: Blocks of units in :func:`cka_block_bootstrap` (fewer when their d x e sums would not fit
#: in _BLOCK_SUMS_BYTES).
CKA_BOOT_BLOCKS = 64
_BLOCK_SUMS_BYTES = 256 * 2**20


def _block_replicates(
    X: NDArray[np.floating], Y: NDArray[np.floating], block: NDArray[np.int64], draws: ArrayLike
) -> NDArray[np.float64]:
    """Biased linear CKA of each replicate: block ``b`` (rows with ``block == b``) taken
    ``draws[r, b]`` times, computed from per-block sums (see :func:`cka_block_bootstrap`)."""
    draws = np.asarray(draws, dtype=np.float64)
    G = draws.shape[1]
    Xc, Yc = _centred(X), _centred(Y)
    rows_of = [np.flatnonzero(block == b) for b in range(G)]
    counts = np.array([len(r) for r in rows_of], dtype=np.float64)
    Sx = np.stack([Xc[r].sum(axis=0) for r in rows_of])  # [G, d] block sums of rows
    Sy = np.stack([Yc[r].sum(axis=0) for r in rows_of])
    N = draws @ counts  # rows drawn per replicate

    def quadratic(K: NDArray[np.float64]) -> NDArray[np.float64]:
        return ((draws @ K) * draws).sum(axis=1)  # c'Kc per replicate

    gx = quadratic(Sx @ Sx.T)  # ||N m_x||^2 per replicate
    gy = quadratic(Sy @ Sy.T)

    def centred_fro_sq(
        A: NDArray[np.float64],
        B: NDArray[np.float64],
        Sa: NDArray[np.float64],
        Sb: NDArray[np.float64],
        ga: NDArray[np.float64],
        gb: NDArray[np.float64],
    ) -> NDArray[np.float64]:
        # ||sum_b c_b A_b'B_b - N m_a m_b'||_F^2 per replicate: the first term's square is
        # c'Kc, the cross term 2 N m_a'(sum_b c_b A_b'B_b) m_b = (2/N) sum c_a c_b c_f P_abf
        M = np.stack([A[r].T @ B[r] for r in rows_of])  # [G, da, db]
        flat = M.reshape(G, -1)
        K = flat @ flat.T  # <M_b, M_c>_F
        P = Sa @ (M @ Sb.T)  # [G_b, G_a, G_f]: s_a' M_b s_f
        del M, flat
        Q = (draws @ P.reshape(G, G * G)).reshape(-1, G, G)  # sum_b c_b P[b]: [B, a, f]
        cubic = ((Q @ draws[:, :, None])[:, :, 0] * draws).sum(axis=1)  # c' Q c
        return quadratic(K) - 2.0 * cubic / N + ga * gb / N**2

    xy = centred_fro_sq(Xc, Yc, Sx, Sy, gx, gy)
    xx = centred_fro_sq(Xc, Xc, Sx, Sx, gx, gx)
    yy = centred_fro_sq(Yc, Yc, Sy, Sy, gy, gy)
    with np.errstate(invalid="ignore", divide="ignore"):
        return xy / np.sqrt(np.clip(xx, 0.0, None) * np.clip(yy, 0.0, None))


def cka_block_bootstrap(
    X: ArrayLike,
    Y: ArrayLike,
    *,
    units: ArrayLike | None = None,
    n_boot: int = 1000,
    alpha: float = 0.05,
    seed: int = 0,
    blocks: int = CKA_BOOT_BLOCKS,
) -> tuple[float, float, int]:
    """Percentile ``(1 - alpha)`` interval of :func:`linear_cka` (biased) under a bootstrap of
    whole units, and the number of blocks it resampled.

    The rows' ``units`` (a label per row: the translation group, so that a sentence and its
    translations are drawn together; default: every row its own unit) are dealt at random
    (``default_rng(seed)``) into ``blocks`` blocks of nearly equal size (fewer when there are
    fewer units, or when the blocks' d × e sums would exceed 256 MiB), and each of the
    ``n_boot`` replicates draws that many blocks with replacement: a cluster bootstrap whose
    variance estimate has ``blocks − 1`` degrees of freedom. Each replicate's CKA is computed
    exactly (the CKA of the rows it drew, repeated as drawn), from per-block sums of rows and
    of ``XᵀX``, ``YᵀY``, ``XᵀY`` (one pass over the data; each replicate then costs
    O(blocks³), not O(n d e)). Rows are centred on the overall mean first, which changes no
    replicate's CKA and keeps the expansion of its centring well conditioned.

    Returns ``(low, high, blocks)``; NaN bounds when a replicate is degenerate.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(200, 5))
    >>> lo, hi, b = cka_block_bootstrap(X, X + 0.5 * rng.normal(size=(200, 5)), n_boot=200)
    >>> bool(lo < hi), b
    (True, 64)
    """
    Xa = check_finite(X, what="X")
    Ya = check_finite(Y, what="Y")
    n = Xa.shape[0]
    if Ya.shape[0] != n:
        raise DataError(f"CKA needs paired rows: X has {n} rows, Y has {Ya.shape[0]}")
    if isinstance(n_boot, bool) or not isinstance(n_boot, int | np.integer) or n_boot < 1:
        raise ConfigError(f"n_boot={n_boot!r}: expected a positive integer")
    if not 0.0 < alpha < 1.0:
        raise ConfigError(f"alpha={alpha!r}: expected a number in (0, 1)")
    if units is None:
        codes = np.arange(n)
    else:
        codes = pd.factorize(pd.Series(np.asarray(units, dtype=object)), sort=False)[0]
        if len(codes) != n:
            raise DataError(f"units: {len(codes)} labels for {n} rows")
        missing = codes < 0  # a row without a label is a unit of its own
        codes[missing] = codes.max(initial=-1) + 1 + np.arange(int(missing.sum()))
    n_units = int(codes.max()) + 1 if n else 0
    d, e = Xa.shape[1], Ya.shape[1]
    fit = max(2, _BLOCK_SUMS_BYTES // (8 * max(d * e, d * d, e * e)))
    G = int(min(blocks, n_units, fit))
    if G < 2:
        raise DataError(f"a block bootstrap needs at least 2 units, got {n_units}")
    rng = np.random.default_rng(seed)
    order = rng.permutation(n_units)
    block_of_unit = np.empty(n_units, dtype=np.int64)
    block_of_unit[order] = np.arange(n_units) % G
    block = block_of_unit[codes]
    draws = rng.multinomial(G, np.full(G, 1.0 / G), size=n_boot)  # [B, G] blocks drawn
    reps = _block_replicates(Xa, Ya, block, draws)
    if not np.isfinite(reps).all():
        return float("nan"), float("nan"), G
    lo, hi = np.quantile(reps, [alpha / 2, 1 - alpha / 2])
    return float(lo), float(hi), G


def _as_layers(layers: Any, layer_axis: int, what: str) -> list[Any]:
    if isinstance(layers, np.ndarray) or hasattr(layers, "shape"):
        arr = layers
        if arr.ndim != 3:
            raise DataError(f"{what}: expected a 3-D array or a sequence of 2-D arrays")
        if layer_axis not in (0, 1):
            raise ConfigError(f"layer_axis={layer_axis} is not allowed; choose 0 or 1")
        return [arr[i] if layer_axis == 0 else arr[:, i] for i in range(arr.shape[layer_axis])]
    out = list(layers)
    if not out:
        raise DataError(f"{what}: no layers given")
    return out


def cka_matrix(
    layers_a: Sequence[ArrayLike] | NDArray[np.floating],
    layers_b: Sequence[ArrayLike] | NDArray[np.floating] | None = None,
    *,
    debiased: bool = False,
    layer_axis: int = 0,
) -> NDArray[np.float64]:
    """Return the layer x layer linear-CKA matrix ``M[i, j] = CKA(A_i, B_j)``.

    Every layer of ``layers_a`` and ``layers_b`` must hold the same n paired rows (e.g. the
    same sentences through two checkpoints, or through one model when ``layers_b`` is None:
    then the matrix is symmetric and only its upper triangle is computed). The formula, range
    and direction are those of :func:`linear_cka`, which equals each entry.

    Efficiency: each layer's self term :math:`\\lVert X^\\top X\\rVert_F` (and, debiased, its
    squared row norms) is computed once; each pair then costs one p x p cross product
    :math:`X_c^\\top Y_c`. Time O(La Lb n p^2); memory O(n p) for the two centred float64 layers
    in use plus O(p^2), so a 3-D input may be a lazily read array (e.g. a zarr array of a
    store, ``layer_axis=1``) converted one layer at a time. For n = 50k, p = 768 one entry
    takes a few seconds on a laptop CPU.

    Parameters
    ----------
    layers_a, layers_b : sequence of arrays (n, p_i), or a 3-D array
        A 3-D array is split along ``layer_axis``: 0 for ``[L, n, p]``, 1 for the store layout
        ``[n, L, p]``.
    debiased : bool
        Use the unbiased HSIC estimator (Song et al. 2012).
    layer_axis : {0, 1}

    Returns
    -------
    ndarray of shape (La, Lb)

    References
    ----------
    Kornblith et al. (2019), ICML; docs/metrics.md#cka (layer x layer and before/after CKA).

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> h0 = rng.normal(size=(40, 5))
    >>> M = cka_matrix([h0, 2 * h0, rng.normal(size=(40, 5))])
    >>> M.shape, np.allclose(np.diag(M), 1.0), bool(np.isclose(M[0, 1], 1.0))
    ((3, 3), True, True)
    """
    la = _as_layers(layers_a, layer_axis, "layers_a")
    symmetric = layers_b is None
    lb = la if symmetric else _as_layers(layers_b, layer_axis, "layers_b")

    def prep(layer: Any, side: str, k: int) -> NDArray[np.float64]:
        return _centred(check_finite(np.asarray(layer), what=f"{side} layer {k}"))

    n = None
    stats_b: list[_Stats] = []
    for j, layer in enumerate(lb):
        Yc = prep(layer, "layers_b" if not symmetric else "layers_a", j)
        if n is None:
            n = Yc.shape[0]
            if n < _min_rows(debiased):
                raise DataError(f"CKA needs at least {_min_rows(debiased)} paired rows, got {n}")
        elif Yc.shape[0] != n:
            raise DataError(f"layer {j} has {Yc.shape[0]} rows; layer 0 has {n}")
        stats_b.append(_stats(Yc, debiased))
    stats_a = stats_b if symmetric else []
    out = np.full((len(la), len(lb)), np.nan)
    for i, layer in enumerate(la):
        Xc = prep(layer, "layers_a", i)
        if Xc.shape[0] != n:
            raise DataError(f"layers_a layer {i} has {Xc.shape[0]} rows; layers_b have {n}")
        sx = stats_a[i] if symmetric else _stats(Xc, debiased)
        for j, layer_b in enumerate(lb):
            if symmetric and j < i:
                out[i, j] = out[j, i]
                continue
            Yc = Xc if symmetric and j == i else prep(layer_b, "layers_b", j)
            out[i, j] = _cka(Xc, Yc, sx, stats_b[j])
    return out


@one_blas_thread
def cka_between_languages(
    X: ArrayLike,
    langs: ArrayLike,
    groups: ArrayLike,
    *,
    debiased: bool = False,
    pairs: Sequence[tuple[str, str]] | None = None,
) -> pd.DataFrame:
    """Return linear CKA between the parallel rows of each language pair, in tidy form.

    For languages A and B, X_A and X_B are the rows of the groups (translations) present in
    both, paired by group; the value is :func:`linear_cka` (X_A, X_B) at this layer: in [0, 1],
    **higher = the two languages' representations of the same sentences are more similar up
    to rotation and scale**. Pairs with too few parallel rows (2, or 4 when debiased) are
    omitted with a UserWarning, or raise DataError when requested in ``pairs``.

    Returns
    -------
    DataFrame
        Columns ``metric, lang, lang2, value, n, ci_low, ci_high, protocol`` with metric
        ``cka`` (or ``cka_debiased``), ``n`` = parallel rows, CIs NaN.

    References
    ----------
    Kornblith et al. (2019), ICML; docs/metrics.md#cka (use 1: cross-language CKA per layer).

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> en = rng.normal(size=(30, 4))
    >>> X = np.vstack([en, 2.0 * en])
    >>> g = [f"g{i}" for i in range(30)] * 2
    >>> df = cka_between_languages(X, ["en"] * 30 + ["de"] * 30, g)
    >>> df[["metric", "lang", "lang2", "n"]].to_dict("records")
    [{'metric': 'cka', 'lang': 'en', 'lang2': 'de', 'n': 30}]
    >>> round(float(df.value[0]), 12)
    1.0
    """
    arr = check_finite(X)
    labels = check_labels(langs, arr.shape[0])
    grp = check_groups(groups, arr.shape[0])
    order = unique_in_order(labels)
    index = _group_index(labels, grp)
    todo, explicit = _resolve_pairs(order, pairs)
    need = _min_rows(debiased)
    records = []
    skipped = []
    # A language's parallel rows are often the same with every partner (a fully parallel
    # corpus): its centred rows and self term are then computed once, not once per pair.
    prepared: dict[bytes, tuple[NDArray[np.float64], _Stats]] = {}

    def prep(rows: NDArray[np.int64]) -> tuple[NDArray[np.float64], _Stats]:
        key = rows.tobytes()
        if key not in prepared:
            Xc = _centred(arr[rows])
            prepared[key] = (Xc, _stats(Xc, debiased))
        return prepared[key]

    for a, b in todo:
        ia, ib = _parallel_rows(index, a, b)
        if ia.size < need:
            if explicit:
                raise DataError(
                    f"languages {a!r} and {b!r} share {ia.size} translation group(s); "
                    f"CKA needs at least {need}"
                )
            skipped.append(f"{a}-{b} ({ia.size})")
            continue
        (Xa, sa), (Xb, sb) = prep(ia), prep(ib)
        records.append(
            {
                "metric": "cka_debiased" if debiased else "cka",
                "lang": a,
                "lang2": b,
                "value": _cka(Xa, Xb, sa, sb),
                "n": ia.size,
                "protocol": {"kernel": "linear", "debiased": debiased, "pairing": "group"},
            }
        )
    if not records:
        raise DataError(
            f"no language pair shares at least {need} translation groups"
            + (f": {', '.join(skipped)}" if skipped else "")
        )
    if skipped:
        warnings.warn(
            f"cka_between_languages: omitted language pair(s) with < {need} parallel rows: "
            + ", ".join(skipped),
            UserWarning,
            stacklevel=2,
        )
    return tidy_frame(records)
