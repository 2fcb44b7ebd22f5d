"""Cluster separation of languages: centroid gaps, translation contrast, silhouettes, DB index.

All functions take plain arrays: ``X`` of shape (n, d), one row per sentence (or token), and
``langs`` / ``groups`` of length n. Rows sharing a ``group`` translate each other. Nothing here
builds an n x n matrix: centroid and contrast metrics are O(n d); cosine silhouettes are
O(n k d) for k clusters (from cluster sums of unit rows, in blocks of 64 MiB); Euclidean
silhouettes are O(n^2 d), chunked by scikit-learn (``pairwise_distances_chunked``, memory
bounded by ``sklearn.set_config(working_memory=...)``, 1 GiB by default); ``sample_size``
bounds their cost for large token sets.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray

from xalign.errors import ConfigError, DataError
from xalign.metrics._blas import one_blas_thread
from xalign.metrics._centering import LanguageCenterer, center_by_language
from xalign.metrics._checks import (
    check_choice,
    check_finite,
    check_groups,
    check_labels,
    check_min_per_label,
    unique_in_order,
)
from xalign.metrics._rows import normalize_rows
from xalign.metrics._tidy import tidy_frame
from xalign.metrics._uncertainty import bootstrap_ci, bootstrap_distribution

__all__ = [
    "centroid_gaps",
    "cluster_metrics",
    "davies_bouldin",
    "language_silhouette",
    "per_language_silhouette",
    "translation_contrast",
    "translation_silhouette",
]

Distance = Literal["cosine", "euclidean"]
_DISTANCES = ("cosine", "euclidean")
# A centroid whose norm (or a centroid distance) is below this fraction of the data's own
# scale is treated as exactly zero: after centring it is rounding noise, not a direction.
_ZERO_REL = 1e-6


def _unit_rows(A: NDArray[np.floating]) -> NDArray[np.float64]:
    """Rows scaled to unit L2 norm in float64; all-zero rows stay zero (as sklearn normalize)."""
    return np.asarray(normalize_rows(A, zero="keep"), dtype=np.float64)


def _cos(u: NDArray[np.float64], v: NDArray[np.float64], scale_u: float, scale_v: float) -> float:
    nu, nv = float(np.linalg.norm(u)), float(np.linalg.norm(v))
    if nu <= _ZERO_REL * scale_u or nv <= _ZERO_REL * scale_v:
        return float("nan")
    return float(np.clip(u @ v / (nu * nv), -1.0, 1.0))


def _prepare(
    X: ArrayLike, langs: ArrayLike, *, min_rows: int = 2, reason: str = ""
) -> tuple[NDArray[np.floating], NDArray[np.object_], dict[Any, int]]:
    arr = check_finite(X)
    labels = check_labels(langs, arr.shape[0])
    counts = check_min_per_label(labels, min_rows, reason=reason)
    if len(counts) < 2:
        raise DataError(
            f"need at least 2 languages, got {len(counts)}: {', '.join(map(repr, counts))}"
        )
    return arr, labels, counts


def _language_stats(
    arr: NDArray[np.floating], labels: NDArray[np.object_], metric: str
) -> tuple[list[Any], NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
    """Languages, centroids (float64), within-language spread sigma_c, RMS row norm per language."""
    cen = LanguageCenterer().fit(arr, labels)
    order = unique_in_order(labels)
    spread = np.empty(len(order))
    scale = np.empty(len(order))
    for k, lang in enumerate(order):
        rows = np.asarray(arr[labels == lang], dtype=np.float64)
        mu = cen.means_[k]
        scale[k] = float(np.sqrt(np.mean(np.einsum("ij,ij->i", rows, rows))))
        if metric == "euclidean":
            spread[k] = float(np.linalg.norm(rows - mu, axis=1).mean())
        else:
            mnorm = float(np.linalg.norm(mu))
            if mnorm <= _ZERO_REL * scale[k]:
                spread[k] = float("nan")
            else:
                spread[k] = float(np.mean(1.0 - _unit_rows(rows) @ (mu / mnorm)))
    return order, cen.means_, spread, scale


def centroid_gaps(
    X: ArrayLike, langs: ArrayLike, *, metric: Distance = "euclidean"
) -> pd.DataFrame:
    """Return the distance between language centroids for every unordered language pair.

    With :math:`\\mu_c` the centroid of language :math:`c` and :math:`d` the chosen distance:

    - ``centroid_distance`` :math:`\\Delta_{AB} = d(\\mu_A, \\mu_B)`: ``euclidean``
      :math:`\\lVert\\mu_A-\\mu_B\\rVert_2` (range [0, inf)), or ``cosine``
      :math:`1-\\cos(\\mu_A,\\mu_B)` (range [0, 2]).
    - ``centroid_distance_scaled`` :math:`\\Delta_{AB}/\\bar\\sigma`, with
      :math:`\\bar\\sigma=\\tfrac12(\\sigma_A+\\sigma_B)` and :math:`\\sigma_c` the mean distance
      (same :math:`d`) of the points of :math:`c` to :math:`\\mu_c`: scale-free.
    - ``centroid_cosine`` :math:`\\cos(\\mu_A,\\mu_B)` in [-1, 1].

    Higher distance (lower cosine) = languages further apart = worse alignment. After
    language centring (:func:`center_by_language`) the Euclidean gap is 0 by construction
    (a sanity check); the centroid cosine and the cosine distance are then undefined and
    reported as NaN (a centroid whose norm is below 1e-6 of the language's RMS row norm counts
    as zero). Time O(n d), memory O(n_lang d) beyond one float64 copy of a language's rows.

    Parameters
    ----------
    X : array-like of shape (n, d)
    langs : array-like of shape (n,)
        Language of each row; every language needs >= 2 rows and there must be >= 2 languages.
    metric : {"euclidean", "cosine"}

    Returns
    -------
    DataFrame
        One row per unordered pair (languages in order of first appearance) with columns
        ``lang, lang2, centroid_distance, centroid_distance_scaled, centroid_cosine, spread,
        spread2, n, n2`` (``spread`` = :math:`\\sigma`, ``n`` = rows of the language).

    References
    ----------
    docs/metrics.md#gap; the "gap" naming follows Liang et al. (2022), *Mind the Gap: Understanding
    the Modality Gap in Multi-modal Contrastive Representation Learning*, NeurIPS. Spread as in
    Davies & Bouldin (1979), IEEE TPAMI.

    Examples
    --------
    Two languages of two points each: centroids (0, 0) and (3, 4), so the gap is 5; every
    point is 1 from its centroid, so sigma = 1 and the scaled gap is 5 / 1 = 5.

    >>> X = [[1, 0], [-1, 0], [3, 5], [3, 3]]
    >>> df = centroid_gaps(X, ["en", "en", "de", "de"])
    >>> df[["lang", "lang2", "centroid_distance", "centroid_distance_scaled"]].to_dict("records")
    [{'lang': 'en', 'lang2': 'de', 'centroid_distance': 5.0, 'centroid_distance_scaled': 5.0}]
    """
    check_choice(metric, _DISTANCES, name="metric")
    arr, labels, counts = _prepare(X, langs)
    order, mu, spread, scale = _language_stats(arr, labels, metric)
    rows = []
    for i in range(len(order)):
        for j in range(i + 1, len(order)):
            cos = _cos(mu[i], mu[j], scale[i], scale[j])
            dist = float(np.linalg.norm(mu[i] - mu[j])) if metric == "euclidean" else 1.0 - cos
            sbar = 0.5 * (spread[i] + spread[j])
            scaled = dist / sbar if sbar > 0 else float("nan")
            rows.append(
                {
                    "lang": str(order[i]),
                    "lang2": str(order[j]),
                    "centroid_distance": dist,
                    "centroid_distance_scaled": scaled,
                    "centroid_cosine": cos,
                    "spread": float(spread[i]),
                    "spread2": float(spread[j]),
                    "n": counts[order[i]],
                    "n2": counts[order[j]],
                }
            )
    return pd.DataFrame(rows)


def _group_index(
    labels: NDArray[np.object_], groups: NDArray[np.object_]
) -> dict[Any, dict[Any, int]]:
    """language -> {group -> row}, refusing two rows of one language in one group."""
    out: dict[Any, dict[Any, int]] = {lang: {} for lang in unique_in_order(labels)}
    for i, (lang, g) in enumerate(zip(labels, groups, strict=True)):
        if g is None:
            continue
        seen = out[lang]
        if g in seen:
            raise DataError(
                f"group {g!r} has two rows in language {lang!r} (rows {seen[g]} and {i}); "
                "a group holds one translation per language"
            )
        seen[g] = i
    return out


def _resolve_pairs(
    order: list[Any], pairs: Sequence[tuple[Any, Any]] | None
) -> tuple[list[tuple[Any, Any]], bool]:
    if pairs is None:
        return [
            (order[i], order[j]) for i in range(len(order)) for j in range(i + 1, len(order))
        ], False
    known = {str(v): v for v in order}
    out = []
    for p in pairs:
        if len(p) != 2:
            raise ConfigError(f"pairs: expected (lang, lang2) tuples, got {p!r}")
        a, b = p
        for v in (a, b):
            if str(v) not in known:
                raise DataError(f"language {v!r} not in langs; available: {', '.join(known)}")
        if str(a) == str(b):
            raise ConfigError(f"pairs: a pair needs two different languages, got {p!r}")
        out.append((known[str(a)], known[str(b)]))
    return out, True


def _parallel_rows(
    index: dict[Any, dict[Any, int]], a: Any, b: Any
) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    ia, ib = index[a], index[b]
    shared = [g for g in ia if g in ib]
    return (
        np.fromiter((ia[g] for g in shared), dtype=np.int64, count=len(shared)),
        np.fromiter((ib[g] for g in shared), dtype=np.int64, count=len(shared)),
    )


def _quantiles(reps: NDArray[np.float64], alpha: float) -> tuple[float, float]:
    lo, hi = np.quantile(reps, [alpha / 2.0, 1.0 - alpha / 2.0])
    return float(lo), float(hi)


def translation_contrast(
    X: ArrayLike,
    langs: ArrayLike,
    groups: ArrayLike,
    *,
    pairs: Sequence[tuple[str, str]] | None = None,
    n_random: int | None = None,
    seed: int = 0,
    n_boot: int = 1000,
    alpha: float = 0.05,
) -> pd.DataFrame:
    """Return, per language pair, how much closer translations are than random cross pairs.

    For the :math:`m` groups that have a row in both :math:`A` and :math:`B` (the parallel
    rows :math:`a_g, b_g`):

    .. math::
        T_{AB} = \\frac1m\\sum_g \\cos(a_g,b_g),\\qquad
        R_{AB} = \\frac{1}{m(m-1)}\\sum_{g\\ne g'} \\cos(a_g,b_{g'}),\\qquad
        G_{AB} = T_{AB} - R_{AB}.

    :math:`T, R \\in [-1, 1]`, :math:`G \\in [-2, 2]`; higher :math:`G` = translations stand out
    more from unrelated cross-language pairs = better alignment. :math:`R` is the baseline that
    margin scores correct for, so :math:`G` is comparable across models whose cosines live in
    different ranges. Random pairs are drawn among the same parallel rows and exclude the
    true translation (:math:`g \\ne g'`). An all-zero row has cosine 0 with everything (the
    scikit-learn ``normalize`` convention). Time O(m d) per pair, memory O(m d).

    By default (``n_random=None``) :math:`R` is the exact mean over all :math:`m(m-1)`
    non-translation pairs, computed in O(m d) from the identity
    :math:`\\sum_{g\\ne g'}\\hat a_g^\\top\\hat b_{g'} = (\\sum_g\\hat a_g)^\\top(\\sum_g\\hat b_g)
    - \\sum_g \\hat a_g^\\top\\hat b_g`; no sampling is needed. With ``n_random=k``, :math:`R`
    is the mean over ``k`` pairs :math:`(g, g')` drawn uniformly with :math:`g\\ne g'` from
    ``numpy.random.default_rng(seed)`` (Ethayarajh-style random pairs).

    Confidence intervals (``n_boot > 0``) are percentile bootstraps over translation groups.
    For :math:`G` in exact mode each group contributes
    :math:`G_g = \\cos(a_g,b_g) - \\tfrac12(r^A_g + r^B_g)`, where :math:`r^A_g` is the mean
    cosine of :math:`a_g` to the other :math:`b` (and :math:`r^B_g` symmetrically), so that
    :math:`\\frac1m\\sum_g G_g = G` exactly; in sampled mode the translation and random
    cosines are resampled independently.

    Parameters
    ----------
    X : array-like of shape (n, d)
    langs, groups : array-like of shape (n,)
        Language and translation group of each row; a group holds at most one row per language;
        None/NaN groups are ignored.
    pairs : sequence of (lang, lang2), optional
        Pairs to compute. Default: every unordered pair of languages (order of first
        appearance), where a pair with fewer than 2 parallel rows is **omitted with a
        UserWarning**; a pair requested explicitly that lacks them raises DataError.
    n_random : int, optional
        Sample this many random pairs instead of the exact mean.
    seed : int
        Seed for ``n_random`` sampling and the bootstrap.
    n_boot : int
        Bootstrap replicates for the CIs; 0 leaves ``ci_*`` NaN.
    alpha : float
        Miscoverage of the CIs.

    Returns
    -------
    DataFrame
        Columns ``lang, lang2, translation_cosine, random_cosine, contrast, n, n_random,
        translation_ci_low, translation_ci_high, contrast_ci_low, contrast_ci_high`` (``n`` =
        parallel rows :math:`m`, ``n_random`` = random pairs averaged).

    Raises
    ------
    DataError
        No group has rows in two languages; an explicitly requested pair has < 2 parallel rows;
        a group has two rows of one language; bad X/langs/groups.

    References
    ----------
    docs/metrics.md#gap. Random-pair baseline: Ethayarajh (2019), *How
    Contextual are Contextualized Word Representations?*, EMNLP. Margin scoring that corrects
    for it: Artetxe & Schwenk (2019), ACL.

    Examples
    --------
    Translations (1,0)-(1,0) and (0,1)-(0,1) have cosine 1; the two non-translation pairs
    (1,0)-(0,1) and (0,1)-(1,0) have cosine 0, so T = 1, R = 0 and G = 1.

    >>> X = [[1, 0], [0, 1], [1, 0], [0, 1]]
    >>> df = translation_contrast(X, ["en", "en", "de", "de"], ["g1", "g2", "g1", "g2"], n_boot=0)
    >>> df[["translation_cosine", "random_cosine", "contrast", "n"]].to_dict("records")
    [{'translation_cosine': 1.0, 'random_cosine': 0.0, 'contrast': 1.0, 'n': 2}]
    """
    arr = check_finite(X)
    labels = check_labels(langs, arr.shape[0])
    grp = check_groups(groups, arr.shape[0])
    if n_random is not None and int(n_random) < 1:
        raise ConfigError(f"n_random={n_random} is not allowed; expected None or an integer >= 1")
    if int(n_boot) < 0:
        raise ConfigError(f"n_boot={n_boot} is not allowed; expected an integer >= 0")
    order = unique_in_order(labels)
    index = _group_index(labels, grp)
    todo, explicit = _resolve_pairs(order, pairs)
    rows = []
    skipped = []
    any_parallel = False
    unit = _unit_rows(arr)  # each row once, not once per language pair (same values)
    for a, b in todo:
        ia, ib = _parallel_rows(index, a, b)
        m = ia.size
        any_parallel = any_parallel or m >= 1
        if m < 2:
            if explicit:
                raise DataError(
                    f"languages {a!r} and {b!r} share {m} translation group(s); "
                    "at least 2 are needed for a random-pair baseline"
                )
            skipped.append(f"{a}-{b} ({m})")
            continue
        A, B = unit[ia], unit[ib]
        t = np.einsum("ij,ij->i", A, B)
        ci_t = ci_g = (float("nan"), float("nan"))
        if n_random is None:
            sa, sb = A.sum(axis=0), B.sum(axis=0)
            rand = float((sa @ sb - t.sum()) / (m * (m - 1)))
            k = m * (m - 1)
            if n_boot:
                per_group = t - 0.5 * ((A @ sb - t) + (B @ sa - t)) / (m - 1)
                ci_g = bootstrap_ci(per_group, n_boot=n_boot, alpha=alpha, seed=seed)
        else:
            rng = np.random.default_rng(seed)
            k = int(n_random)
            gi = rng.integers(0, m, size=k)
            gj = rng.integers(0, m - 1, size=k)
            gj += gj >= gi
            r = np.einsum("ij,ij->i", A[gi], B[gj])
            rand = float(r.mean())
            if n_boot:
                reps = bootstrap_distribution(t, n_boot=n_boot, seed=seed)
                reps = reps - bootstrap_distribution(r, n_boot=n_boot, seed=seed + 1)
                ci_g = _quantiles(reps, alpha)
        if n_boot:
            ci_t = bootstrap_ci(t, n_boot=n_boot, alpha=alpha, seed=seed)
        trans = float(t.mean())
        rows.append(
            {
                "lang": str(a),
                "lang2": str(b),
                "translation_cosine": trans,
                "random_cosine": rand,
                "contrast": trans - rand,
                "n": int(m),
                "n_random": int(k),
                "translation_ci_low": ci_t[0],
                "translation_ci_high": ci_t[1],
                "contrast_ci_low": ci_g[0],
                "contrast_ci_high": ci_g[1],
            }
        )
    if not any_parallel:
        raise DataError("no parallel rows: no translation group has rows in two languages")
    if not rows:
        raise DataError(
            "no language pair shares at least 2 translation groups: " + ", ".join(skipped)
        )
    if skipped:
        warnings.warn(
            "translation_contrast: omitted language pair(s) with < 2 parallel rows: "
            + ", ".join(skipped),
            UserWarning,
            stacklevel=2,
        )
    return pd.DataFrame(rows)


def _stratified_indices(
    labels: NDArray[np.object_], sample_size: int, rng: np.random.Generator
) -> NDArray[np.int64]:
    """Row indices of a sample of ``sample_size`` rows, each label at >= 2 rows and otherwise
    in proportion to its size (largest-remainder rounding), sorted."""
    order = unique_in_order(labels)
    members = [np.flatnonzero(labels == lab) for lab in order]
    sizes = np.array([m.size for m in members])
    n = int(sizes.sum())
    if sample_size < 2 * len(order):
        raise ConfigError(
            f"sample_size={sample_size} is too small for {len(order)} labels; "
            f"expected at least {2 * len(order)} (2 rows per label)"
        )
    exact = sample_size * sizes / n
    quota = np.minimum(np.maximum(np.floor(exact).astype(int), 2), sizes)
    rest = sample_size - int(quota.sum())
    if rest > 0:
        frac = exact - np.floor(exact)
        for k in np.argsort(-frac, kind="stable"):
            if rest == 0:
                break
            if quota[k] < sizes[k]:
                quota[k] += 1
                rest -= 1
    picked = [rng.choice(m, size=q, replace=False) for m, q in zip(members, quota, strict=True)]
    return np.sort(np.concatenate(picked))


def _sample(
    labels: NDArray[np.object_], sample_size: int | None, seed: int, stratified: bool
) -> NDArray[np.int64] | None:
    if sample_size is None or int(sample_size) >= labels.size:
        return None
    sample_size = int(sample_size)
    if sample_size < 2:
        raise ConfigError(f"sample_size={sample_size} is not allowed; expected None or >= 2")
    rng = np.random.default_rng(seed)
    if stratified:
        return _stratified_indices(labels, sample_size, rng)
    return np.sort(rng.choice(labels.size, size=sample_size, replace=False))


# Memory budget (bytes) of one block of row-to-cluster cosines in the cosine silhouette.
_SIL_BLOCK_BYTES = 64 * 2**20


def _silhouette_samples(
    arr: NDArray[np.floating], labels: NDArray[Any], *, metric: str
) -> NDArray[np.float64]:
    """Silhouette :math:`s(i)` of every row, as ``sklearn.metrics.silhouette_samples``.

    For the cosine distance the sum of distances from row :math:`i` to the rows of cluster
    :math:`c` is :math:`|c| - \\hat x_i^\top S_c` with :math:`S_c=\\sum_{j\\in c}\\hat x_j`
    (minus the self term, :math:`1-\\lVert\\hat x_i\rVert^2`, for its own cluster, whose
    self-distance scikit-learn sets to 0), so :math:`a(i)` and :math:`b(i)` come from the
    n x k matrix of row-to-cluster-sum cosines: O(n k d) time instead of O(n^2 d), in
    float64 (scikit-learn computes float32 input in float32; the values agree to ~1e-7).
    All-zero rows have distance 1 to every other row, as in scikit-learn. Clusters of one
    row get s = 0. Other distances go to scikit-learn.
    """
    if metric != "cosine":
        from sklearn.metrics import silhouette_samples

        return np.asarray(silhouette_samples(arr, labels.astype(str), metric=metric), np.float64)
    classes, codes = np.unique(labels.astype(str), return_inverse=True)
    n, k = codes.size, classes.size
    if not 2 <= k <= n - 1:
        raise DataError(f"silhouette needs 2 to n_samples - 1 labels, got {k} labels for {n} rows")
    U = _unit_rows(arr)
    freq = np.bincount(codes, minlength=k).astype(np.float64)
    order = np.argsort(codes, kind="stable")
    starts = np.concatenate([[0], np.cumsum(np.bincount(codes, minlength=k))[:-1]])
    S = np.add.reduceat(U[order], starts, axis=0)  # (k, d) cluster sums of unit rows
    self_d = 1.0 - np.einsum("ij,ij->i", U, U)  # 0, or 1 for an all-zero row
    intra = np.empty(n)
    inter = np.empty(n)
    block = max(1, _SIL_BLOCK_BYTES // (8 * k))
    for start in range(0, n, block):
        stop = min(start + block, n)
        rows = np.arange(stop - start)
        own = codes[start:stop]
        dist = freq - U[start:stop] @ S.T  # summed cosine distances to each cluster
        intra[start:stop] = dist[rows, own] - self_d[start:stop]
        dist /= freq
        dist[rows, own] = np.inf
        inter[start:stop] = dist.min(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        intra /= freq[codes] - 1.0
        sil = (inter - intra) / np.maximum(intra, inter)
    sil[freq[codes] == 1.0] = 0.0  # a one-row cluster (its a(i) is 0/0, rounding aside)
    return np.nan_to_num(sil)


def _silhouette_values(
    arr: NDArray[np.floating],
    labels: NDArray[np.object_],
    *,
    metric: str,
    sample_size: int | None,
    seed: int,
    stratified: bool,
) -> tuple[NDArray[np.float64], NDArray[np.object_]]:
    idx = _sample(labels, sample_size, seed, stratified)
    if idx is not None:
        arr, labels = arr[idx], labels[idx]
    if len(unique_in_order(labels)) < 2:
        raise DataError("silhouette needs rows of at least 2 labels in the (sampled) data")
    return _silhouette_samples(arr, labels, metric=metric), labels


def language_silhouette(
    X: ArrayLike,
    labels: ArrayLike,
    *,
    metric: Distance = "cosine",
    sample_size: int | None = None,
    stratified: bool = True,
    seed: int = 0,
) -> float:
    """Return the mean silhouette :math:`S=\\frac1n\\sum_i s(i)` with languages as clusters.

    :math:`s(i)=(b(i)-a(i))/\\max(a(i),b(i))`, where :math:`a(i)` is the mean distance of row
    :math:`i` to the other rows of its language and :math:`b(i)` the smallest mean distance to
    the rows of another language. :math:`S\\in[-1,1]`; **higher = languages more separated =
    worse alignment**. Computed by ``sklearn.metrics.silhouette_samples`` (chunked, so memory
    stays bounded; time O(n^2 d)).

    Parameters
    ----------
    X : array-like of shape (n, d)
    labels : array-like of shape (n,)
        Language of each row (>= 2 rows per language, >= 2 languages).
    metric : {"cosine", "euclidean"}
    sample_size : int, optional
        Compute on a random subsample of this many rows (time O(sample_size^2 d)).
    stratified : bool
        Subsample each language in proportion to its size, at least 2 rows each (default);
        False draws rows uniformly as ``sklearn.metrics.silhouette_score(sample_size=...)``.
    seed : int
        Seed of the subsample (``numpy.random.default_rng``).

    Returns
    -------
    float

    References
    ----------
    Rousseeuw, P. J. (1987). Silhouettes: a graphical aid to the interpretation and validation
    of cluster analysis. J. Comput. Appl. Math. 20. scikit-learn ``silhouette_samples``.
    docs/metrics.md#clusters.

    Examples
    --------
    Points 0 and 1 (language a) and 10 and 11 (language b). Point 0: a = 1, b = (10 + 11) / 2
    = 10.5, s = 9.5 / 10.5; point 1: a = 1, b = (9 + 10) / 2 = 9.5, s = 8.5 / 9.5; b mirrors a.

    >>> s = language_silhouette([[0.0], [1.0], [10.0], [11.0]], ["a", "a", "b", "b"],
    ...                         metric="euclidean")
    >>> bool(abs(s - (9.5 / 10.5 + 8.5 / 9.5) / 2) < 1e-12)
    True
    """
    check_choice(metric, _DISTANCES, name="metric")
    arr, labs, _ = _prepare(X, labels)
    s, _ = _silhouette_values(
        arr, labs, metric=metric, sample_size=sample_size, seed=seed, stratified=stratified
    )
    return float(s.mean())


def per_language_silhouette(
    X: ArrayLike,
    labels: ArrayLike,
    *,
    metric: Distance = "cosine",
    sample_size: int | None = None,
    stratified: bool = True,
    seed: int = 0,
) -> dict[str, float]:
    """Return the mean silhouette :math:`s(i)` of each language's rows, ``{lang: value}``.

    Same :math:`s(i)` and options as :func:`language_silhouette` (Rousseeuw 1987, via
    ``sklearn.metrics.silhouette_samples``, chunked); each value is in [-1, 1], higher =
    that language sits more apart from the others. Languages in order of first appearance.

    Examples
    --------
    >>> out = per_language_silhouette([[0.0], [1.0], [10.0], [11.0]], ["a", "a", "b", "b"],
    ...                               metric="euclidean")
    >>> {k: round(v, 4) for k, v in out.items()}
    {'a': 0.8997, 'b': 0.8997}
    """
    check_choice(metric, _DISTANCES, name="metric")
    arr, labs, _ = _prepare(X, labels)
    s, used = _silhouette_values(
        arr, labs, metric=metric, sample_size=sample_size, seed=seed, stratified=stratified
    )
    return {str(lang): float(s[used == lang].mean()) for lang in unique_in_order(used)}


def _translation_rows(groups: NDArray[np.object_]) -> NDArray[np.int64]:
    """Rows whose group is not None and has >= 2 rows."""
    has = np.array([g is not None for g in groups])
    counts = pd.Series(groups[has]).value_counts()
    keep = set(counts.index[counts >= 2])
    return np.flatnonzero([g is not None and g in keep for g in groups])


def translation_silhouette(
    X: ArrayLike,
    groups: ArrayLike,
    *,
    metric: Distance = "cosine",
    sample_size: int | None = None,
    seed: int = 0,
) -> float:
    """Return the mean silhouette with **translation groups** as clusters.

    Labels are groups: all translations of one sentence share a label. Only rows whose group
    has >= 2 rows take part (rows with no group, or whose group has a single row, are
    dropped); at least 2 such groups are needed. :math:`s(i)=(b(i)-a(i))/\\max(a(i),b(i))`
    with :math:`a(i)` the mean distance to the other translations of row :math:`i` and
    :math:`b(i)` the smallest mean distance to another group. :math:`S\\in[-1,1]`; **higher =
    translations cluster together = better alignment** (the opposite reading of
    :func:`language_silhouette`). Time O(n^2 d), chunked by scikit-learn.

    ``sample_size`` subsamples whole groups, not rows (a group cut in half would change its
    :math:`a(i)`): groups are shuffled with ``numpy.random.default_rng(seed)`` and taken while
    the row total stays within ``sample_size`` (at least 2 groups).

    References
    ----------
    docs/metrics.md#silhouette; Rousseeuw (1987); scikit-learn ``silhouette_samples``.

    Examples
    --------
    Two groups, each a pair of identical translations, far apart: a(i) = 0, so every s = 1.

    >>> translation_silhouette([[1, 0], [1, 0], [0, 1], [0, 1]], ["g1", "g1", "g2", "g2"])
    1.0
    """
    check_choice(metric, _DISTANCES, name="metric")
    arr = check_finite(X)
    grp = check_groups(groups, arr.shape[0])
    value, _ = _translation_silhouette(arr, grp, metric=metric, sample_size=sample_size, seed=seed)
    return value


def _translation_silhouette(
    arr: NDArray[np.floating],
    grp: NDArray[np.object_],
    *,
    metric: str,
    sample_size: int | None,
    seed: int,
) -> tuple[float, int]:
    """(mean silhouette over translation groups, rows used)."""

    rows = _translation_rows(grp)
    labs = grp[rows]
    order = unique_in_order(labs)
    if len(order) < 2:
        raise DataError(
            f"translation silhouette needs >= 2 groups with >= 2 rows each, got {len(order)}"
        )
    if sample_size is not None and int(sample_size) < rows.size:
        if int(sample_size) < 4:
            raise ConfigError(f"sample_size={sample_size} is not allowed; expected None or >= 4")
        rng = np.random.default_rng(seed)
        sizes = pd.Series(labs).value_counts()
        shuffled = [order[k] for k in rng.permutation(len(order))]
        total = np.cumsum([int(sizes[g]) for g in shuffled])
        take = max(2, int(np.searchsorted(total, int(sample_size), side="right")))
        chosen = set(shuffled[:take])
        sub = np.array([g in chosen for g in labs])
        rows, labs = rows[sub], labs[sub]
    s = _silhouette_samples(arr[rows], labs, metric=metric)
    return float(np.mean(s)), int(rows.size)


def davies_bouldin(X: ArrayLike, labels: ArrayLike) -> float:
    """Return the Davies–Bouldin index of the language clusters (Euclidean).

    .. math::
        \\mathrm{DB} = \\frac1{|C|}\\sum_c \\max_{c'\\ne c}
        \\frac{\\sigma_c+\\sigma_{c'}}{\\lVert\\mu_c-\\mu_{c'}\\rVert_2},

    with :math:`\\sigma_c` the mean distance of the rows of :math:`c` to their centroid
    :math:`\\mu_c`. Range [0, inf); **lower = languages better separated = worse alignment**
    (for alignment you want it high). Computed by ``sklearn.metrics.davies_bouldin_score``,
    O(n d). If two centroids coincide (distance below 1e-6 of their spreads, as after language
    centring) the index is undefined and NaN is returned, instead of scikit-learn's 0 or a
    huge ratio of rounding noise.

    References
    ----------
    Davies, D. L. & Bouldin, D. W. (1979). A Cluster Separation Measure. IEEE TPAMI 1(2).
    scikit-learn ``davies_bouldin_score``. docs/metrics.md#clusters.

    Examples
    --------
    Centroids 0.5 and 10.5 (distance 10), spreads 0.5 each: DB = (0.5 + 0.5) / 10 = 0.1.

    >>> round(davies_bouldin([[0.0], [1.0], [10.0], [11.0]], ["a", "a", "b", "b"]), 12)
    0.1
    """
    from sklearn.metrics import davies_bouldin_score

    arr, labs, _ = _prepare(X, labels)
    _, mu, spread, _ = _language_stats(arr, labs, "euclidean")
    for i in range(len(mu)):
        for j in range(i + 1, len(mu)):
            tol = _ZERO_REL * max(spread[i] + spread[j], np.finfo(float).tiny)
            if np.linalg.norm(mu[i] - mu[j]) <= tol:
                return float("nan")
    return float(davies_bouldin_score(arr, labs.astype(str)))


@one_blas_thread
def cluster_metrics(
    X: ArrayLike,
    langs: ArrayLike,
    groups: ArrayLike | None = None,
    *,
    centered: bool | Literal["both"] = "both",
    metric: Distance = "cosine",
    sample_size: int | None = None,
    stratified: bool = True,
    seed: int = 0,
    n_random: int | None = None,
    n_boot: int = 1000,
    alpha: float = 0.05,
) -> pd.DataFrame:
    """Return all cluster metrics of one layer, raw and/or language-centred, in tidy long form.

    Columns ``metric, lang, lang2, value, n, ci_low, ci_high, protocol`` (the results table
    without ``store, checkpoint, layer``); ``lang``/``lang2`` are None where not applicable and
    ``protocol`` is a JSON string of every choice that changes the number, including
    ``centered``. Metrics (see each function for formula, source and direction):

    =========================== ============ =========================================== =====
    metric                      lang, lang2  value                                       n
    =========================== ============ =========================================== =====
    centroid_distance           pair         :func:`centroid_gaps`, Euclidean            nA+nB
    centroid_distance_scaled    pair         gap / mean spread                           nA+nB
    centroid_cosine             pair         cosine of centroids (raw only)              nA+nB
    language_silhouette         None         :func:`language_silhouette` (``metric``)    rows
    language_silhouette         lang         mean s(i) of that language's rows           rows
    davies_bouldin              None         :func:`davies_bouldin` (raw only)           rows
    translation_cosine          pair         :func:`translation_contrast` T, with CI     m
    random_cosine               pair         R                                           m(m-1)
    translation_contrast        pair         G = T - R, with CI                          m
    translation_silhouette      None         :func:`translation_silhouette`              rows
    =========================== ============ =========================================== =====

    The last three need ``groups``. Undefined values after centring (centroid cosine,
    Davies–Bouldin) are left out rather than reported as NaN; the centred centroid distance is
    kept as a sanity check (it is 0 by construction). Centring is
    :func:`center_by_language` (Libovický et al. 2020) applied to all rows; the silhouette
    subsample (same ``seed``) is the same rows in the raw and centred variants.

    Parameters
    ----------
    X : array-like of shape (n, d)
    langs : array-like of shape (n,)
    groups : array-like of shape (n,), optional
        Translation groups (None/NaN = no group).
    centered : bool or "both"
        Raw (False), centred (True) or both (default).
    metric : {"cosine", "euclidean"}
        Distance for the silhouettes.
    sample_size, stratified, seed
        Silhouette subsampling (see :func:`language_silhouette`); ``seed`` also seeds
        ``n_random`` and the bootstraps.
    n_random, n_boot, alpha
        See :func:`translation_contrast`.

    References
    ----------
    docs/metrics.md#centering, docs/metrics.md#clusters.

    Examples
    --------
    >>> X = [[1, 0], [0.9, 0.1], [0, 1], [0.1, 0.9]]
    >>> df = cluster_metrics(X, ["en", "en", "de", "de"], centered=False, n_boot=0)
    >>> df.loc[df.metric == "centroid_distance", ["lang", "lang2", "n"]].to_dict("records")
    [{'lang': 'en', 'lang2': 'de', 'n': 4}]
    >>> sorted(set(df.metric))[:3]
    ['centroid_cosine', 'centroid_distance', 'centroid_distance_scaled']
    """
    check_choice(metric, _DISTANCES, name="metric")
    check_choice(centered, (False, True, "both"), name="centered")
    arr, labels, counts = _prepare(X, langs)
    grp = None if groups is None else check_groups(groups, arr.shape[0])
    variants = [False, True] if centered == "both" else [bool(centered)]
    records: list[dict[str, Any]] = []
    for cen in variants:
        Xv = center_by_language(arr, labels) if cen else arr
        proto_gap = {"centered": cen, "distance": "euclidean"}
        gaps = centroid_gaps(Xv, labels, metric="euclidean")
        for r in gaps.itertuples(index=False):
            n = int(r.n + r.n2)
            for name in ("centroid_distance", "centroid_distance_scaled", "centroid_cosine"):
                value = float(getattr(r, name))
                if cen and name != "centroid_distance" and not np.isfinite(value):
                    continue
                records.append(
                    {
                        "metric": name,
                        "lang": r.lang,
                        "lang2": r.lang2,
                        "value": value,
                        "n": n,
                        "protocol": proto_gap,
                    }
                )
        proto_sil = {
            "centered": cen,
            "metric": metric,
            "sample_size": sample_size,
            "stratified": stratified,
            "seed": seed,
        }
        s, used = _silhouette_values(
            Xv, labels, metric=metric, sample_size=sample_size, seed=seed, stratified=stratified
        )
        records.append(
            {
                "metric": "language_silhouette",
                "value": float(s.mean()),
                "n": s.size,
                "protocol": proto_sil,
            }
        )
        for lang in unique_in_order(used):
            sel = used == lang
            records.append(
                {
                    "metric": "language_silhouette",
                    "lang": lang,
                    "value": float(s[sel].mean()),
                    "n": int(sel.sum()),
                    "protocol": proto_sil,
                }
            )
        db = davies_bouldin(Xv, labels)
        if np.isfinite(db):
            records.append(
                {
                    "metric": "davies_bouldin",
                    "value": db,
                    "n": int(sum(counts.values())),
                    "protocol": {"centered": cen, "distance": "euclidean"},
                }
            )
        if grp is None:
            continue
        proto_tc = {
            "centered": cen,
            "similarity": "cosine",
            "n_random": n_random,
            "seed": seed,
            "n_boot": n_boot,
            "alpha": alpha,
        }
        tc = translation_contrast(
            Xv, labels, grp, n_random=n_random, seed=seed, n_boot=n_boot, alpha=alpha
        )
        for r in tc.itertuples(index=False):
            records.append(
                {
                    "metric": "translation_cosine",
                    "lang": r.lang,
                    "lang2": r.lang2,
                    "value": r.translation_cosine,
                    "n": r.n,
                    "ci_low": r.translation_ci_low,
                    "ci_high": r.translation_ci_high,
                    "protocol": proto_tc,
                }
            )
            records.append(
                {
                    "metric": "random_cosine",
                    "lang": r.lang,
                    "lang2": r.lang2,
                    "value": r.random_cosine,
                    "n": r.n_random,
                    "protocol": proto_tc,
                }
            )
            records.append(
                {
                    "metric": "translation_contrast",
                    "lang": r.lang,
                    "lang2": r.lang2,
                    "value": r.contrast,
                    "n": r.n,
                    "ci_low": r.contrast_ci_low,
                    "ci_high": r.contrast_ci_high,
                    "protocol": proto_tc,
                }
            )
        tsil, tsil_n = _translation_silhouette(
            Xv, grp, metric=metric, sample_size=sample_size, seed=seed
        )
        records.append(
            {
                "metric": "translation_silhouette",
                "value": tsil,
                "n": tsil_n,
                "protocol": {
                    "centered": cen,
                    "metric": metric,
                    "sample_size": sample_size,
                    "seed": seed,
                },
            }
        )
    return tidy_frame(records)
