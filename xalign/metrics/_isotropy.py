"""Isotropy of a representation space: mean random cosine and partition-function isotropy."""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray

from xalign.errors import ConfigError, DataError
from xalign.metrics._blas import one_blas_thread
from xalign.metrics._centering import center_by_language
from xalign.metrics._checks import (
    check_choice,
    check_finite,
    check_labels,
    check_min_per_label,
    unique_in_order,
)
from xalign.metrics._rows import normalize_rows
from xalign.metrics._tidy import tidy_frame

__all__ = ["isotropy_metrics", "mean_random_cosine", "partition_isotropy"]


def mean_random_cosine(X: ArrayLike, *, n_pairs: int | None = None, seed: int = 0) -> float:
    """Return the mean cosine between distinct rows, :math:`\\mathbb{E}_{i\\ne j}\\cos(x_i,x_j)`.

    Ethayarajh's anisotropy baseline: near 0 = isotropic (directions spread out), near 1 = all
    vectors point the same way (anisotropic). Range [-1/(n-1), 1]. Self pairs are excluded.

    By default the mean over **all** :math:`n(n-1)` ordered pairs is computed exactly in
    O(n d) time and O(d) extra memory (beyond one float64 copy of the rows) from
    :math:`\\sum_{i\\ne j}\\hat x_i^\\top\\hat x_j = \\lVert\\sum_i\\hat x_i\\rVert^2 -
    \\sum_i\\lVert\\hat x_i\\rVert^2`, so no threshold on n is needed. With ``n_pairs=k`` it is
    instead the mean over ``k`` pairs :math:`(i, j)`, :math:`i\\ne j`, drawn uniformly from
    ``numpy.random.default_rng(seed)`` (the sampled protocol of Ethayarajh 2019). All-zero rows
    count as cosine 0 (the scikit-learn ``normalize`` convention).

    Parameters
    ----------
    X : array-like of shape (n, d), n >= 2
    n_pairs : int, optional
        Sample this many random pairs instead of the exact mean.
    seed : int

    Returns
    -------
    float

    References
    ----------
    Ethayarajh, K. (2019). How Contextual are Contextualized Word Representations? Comparing
    the Geometry of BERT, ELMo, and GPT-2 Embeddings. EMNLP. docs/metrics.md#isotropy.

    Examples
    --------
    Rows (1, 0), (0, 1), (1, 1): pair cosines 0, 1/sqrt(2), 1/sqrt(2), so the mean is
    sqrt(2) / 3.

    >>> bool(np.isclose(mean_random_cosine([[1, 0], [0, 1], [1, 1]]), np.sqrt(2) / 3))
    True
    """
    arr = check_finite(X)
    n = arr.shape[0]
    if n < 2:
        raise DataError(f"mean random cosine needs at least 2 rows, got {n}")
    U = normalize_rows(arr, zero="keep")  # all-zero rows: cosine 0 with everything
    if n_pairs is None:
        s = U.sum(axis=0)
        self_sq = float(np.einsum("ij,ij->", U, U))
        return float((s @ s - self_sq) / (n * (n - 1)))
    if int(n_pairs) < 1:
        raise ConfigError(f"n_pairs={n_pairs} is not allowed; expected None or an integer >= 1")
    rng = np.random.default_rng(seed)
    i = rng.integers(0, n, size=int(n_pairs))
    j = rng.integers(0, n - 1, size=int(n_pairs))
    j += j >= i
    return float(np.einsum("ij,ij->i", U[i], U[j]).mean())


def _logsumexp(a: NDArray[np.float64], axis: int) -> NDArray[np.float64]:
    m = a.max(axis=axis, keepdims=True)
    return np.squeeze(m, axis=axis) + np.log(np.exp(a - m).sum(axis=axis))


def partition_isotropy(X: ArrayLike) -> float:
    """Return the partition-function isotropy :math:`I(W)=\\min_c Z(c)/\\max_c Z(c)`.

    .. math::
        Z(c)=\\sum_i \\exp(c^\\top w_i),\\qquad
        I(W)=\\frac{\\min_{c\\in C} Z(c)}{\\max_{c\\in C} Z(c)}\\in(0,1],

    with the rows :math:`w_i` of ``X`` used as they are (not centred, not normalised) and
    :math:`C` the unit eigenvectors of :math:`W^\\top W` (Mu & Viswanath 2018's approximation of
    the min/max over all unit :math:`c`). An eigenvector's sign is arbitrary, so C here holds
    **both** :math:`\\pm u_k` of each eigenvector: the result does not depend on the
    eigensolver's sign choice (implementations that take one sign per eigenvector can report a
    higher value on the same data). **Close to 1 = isotropic**; near 0 = a few directions
    dominate (e.g. a common mean offset). The score depends on the scale of the vectors
    (Rudman et al. 2022 call it brittle); compare it only between spaces of similar norm.
    :math:`\\log Z` is computed with log-sum-exp, so large norms do not overflow. Time
    O(n d^2 + d^3), or O(n^2 d + n^3) through the n x n Gram matrix when n < d; memory
    O(n d) (the projections, in float64).

    Parameters
    ----------
    X : array-like of shape (n, d)

    Returns
    -------
    float

    References
    ----------
    Mu, J. & Viswanath, P. (2018). All-but-the-Top: Simple and Effective Postprocessing for
    Word Representations. ICLR (after Arora et al. 2016, TACL, *A Latent Variable Model
    Approach to PMI-based Word Embeddings*). Applied to mBERT by Rajaee, S. & Pilehvar, M. T.
    (2022), *An Isotropy Analysis in the Multilingual BERT Embedding Space*, Findings of ACL.
    Formula and sources: docs/metrics.md#isotropy.

    Examples
    --------
    Rows (1, 0) and (-1, 0): eigenvectors (1, 0) and (0, 1); Z(+-e1) = e + 1/e and
    Z(+-e2) = 2, so I = 2 / (e + 1/e).

    >>> bool(np.isclose(partition_isotropy([[1, 0], [-1, 0]]), 2 / (np.e + 1 / np.e)))
    True
    """
    arr = np.asarray(check_finite(X), dtype=np.float64)
    n, d = arr.shape
    if n >= d:
        _, vecs = np.linalg.eigh(arr.T @ arr)
        proj = arr @ vecs
        extra = []
    else:
        # Fewer rows than dimensions (one language at one layer): the eigenvectors of W^T W
        # with a non-zero eigenvalue are c_k = W^T u_k / sqrt(l_k) for the eigenpairs
        # (l_k, u_k) of the n x n Gram matrix W W^T, and their projections are
        # W c_k = sqrt(l_k) u_k; the other d - n eigenvectors lie in W's null space, where
        # every projection is 0 and Z(c) = n. Same value as the d x d eigendecomposition up
        # to rounding (~1e-7 relative), at O(n^2 d + n^3) instead of O(n d^2 + d^3).
        evals, u = np.linalg.eigh(arr @ arr.T)
        proj = u * np.sqrt(np.clip(evals, 0.0, None))
        extra = [np.log(float(n))]
    logz = np.concatenate([_logsumexp(proj, axis=0), _logsumexp(-proj, axis=0), extra])
    return float(np.exp(logz.min() - logz.max()))


@one_blas_thread
def isotropy_metrics(
    X: ArrayLike,
    langs: ArrayLike,
    *,
    centered: bool | Literal["both"] = "both",
    n_pairs: int | None = None,
    seed: int = 0,
) -> pd.DataFrame:
    """Return isotropy per language and over all rows, raw and/or centred, in tidy form.

    Rows: ``mean_random_cosine`` (:func:`mean_random_cosine`; near 0 = isotropic) and
    ``partition_isotropy`` (:func:`partition_isotropy`; near 1 = isotropic), each for every
    language (``lang`` set) and for all rows pooled (``lang`` None), for the raw rows and/or
    after :func:`center_by_language` (Libovický et al. 2020); ``protocol`` records
    ``centered``, ``n_pairs`` and ``seed``. Columns ``metric, lang, lang2, value, n, ci_low,
    ci_high, protocol`` (``lang2`` None, CIs NaN). Every language needs >= 2 rows.

    References
    ----------
    docs/metrics.md#isotropy (per language and layer, raw and centred).

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> df = isotropy_metrics(rng.normal(size=(40, 3)), ["en"] * 20 + ["de"] * 20)
    >>> len(df), sorted(set(df.metric))
    (12, ['mean_random_cosine', 'partition_isotropy'])
    """
    check_choice(centered, (False, True, "both"), name="centered")
    arr = check_finite(X)
    labels = check_labels(langs, arr.shape[0])
    check_min_per_label(labels, 2)
    variants = [False, True] if centered == "both" else [bool(centered)]
    records: list[dict[str, Any]] = []
    for cen in variants:
        Xv = center_by_language(arr, labels) if cen else arr
        proto = {"centered": cen, "n_pairs": n_pairs, "seed": seed}
        subsets: list[tuple[Any, NDArray[np.floating]]] = [(None, Xv)]
        subsets += [(lang, Xv[labels == lang]) for lang in unique_in_order(labels)]
        for lang, rows in subsets:
            n = rows.shape[0]
            records.append(
                {
                    "metric": "mean_random_cosine",
                    "lang": lang,
                    "value": mean_random_cosine(rows, n_pairs=n_pairs, seed=seed),
                    "n": n,
                    "protocol": proto,
                }
            )
            records.append(
                {
                    "metric": "partition_isotropy",
                    "lang": lang,
                    "value": partition_isotropy(rows),
                    "n": n,
                    "protocol": proto,
                }
            )
    return tidy_frame(records)
