"""Cross-language sentence retrieval: Tatoeba accuracy, margin scores and CSLS.

Every function takes plain arrays of sentence vectors (rows = sentences) and searches
L2-normalised float32 copies; every score that decides a result is the float64 cosine of the
vectors as given (docs/metrics.md#exact). Neighbourhoods come from
:func:`xalign.metrics._knn.knn_rows`, so numpy, faiss CPU and faiss GPU give identical
results. Formulas and protocols: docs/metrics.md#retrieval (and #margin, #csls, #protocol).
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal, get_args

import numpy as np

from xalign._validate import check_choice
from xalign.errors import ConfigError, DataError
from xalign.metrics._knn import (
    Backend,
    Rows,
    _unit64,
    knn_rows,
    rho_float32_normalised,
    rho_float64_normalised,
    select_backend,
    top1_both_rows,
    top1_shifted,
)
from xalign.metrics._rows import float32_norms, normalize_rows

if TYPE_CHECKING:
    from numpy.typing import ArrayLike, NDArray

__all__ = [
    "Candidates",
    "Direction",
    "Margin",
    "Scoring",
    "csls",
    "margin_scores",
    "neighbourhood_means",
    "retrieve",
    "tatoeba_accuracy",
    "xalign_layer_to_xtreme",
    "xtreme_layer_to_xalign",
    "xtreme_tatoeba_accuracy",
]

Margin = Literal["none", "distance", "ratio"]
Scoring = Literal["cosine", "margin", "csls"]
Direction = Literal["both", "src2tgt", "tgt2src"]
Candidates = Literal["knn", "all"]

# Memory budgets (bytes) of the exhaustive scorer: two float64 [block, chunk] arrays (scores
# and the neighbourhood term), and one float64 chunk of target vectors.
_BLOCK_BYTES = 256 * 2**20
_CHUNK_BYTES = 64 * 2**20


# ---------------------------------------------------------------- validation helpers


def _positive_int(value: object, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
        raise ConfigError(f"{name}={value!r}: expected a positive integer")
    return int(value)


def _unit_rows(x: ArrayLike, name: str, *, center: bool = False) -> Rows:
    """Cosine :class:`~xalign.metrics._knn.Rows` of ``x`` (after subtracting the mean row if
    asked): an L2-normalised float32 copy to search, and ``x`` itself to score exactly.

    A zero row (a cosine with it is undefined) raises DataError. Float32 and float16 input is
    normalised in float32 (:func:`~xalign.metrics._rows.normalize_rows`, componentwise error
    :func:`~xalign.metrics._knn.rho_float32_normalised`); when every norm is in [2⁻²⁰, 2⁶⁰)
    that copy is made on first use only, and the rows carry ``scaled`` (raw float32 rows and
    norms) for :func:`~xalign.metrics._knn.top1_both_rows`. Other dtypes and centring go
    through float64, and centred rows are the ones scored.
    """
    arr = np.asarray(x)
    if arr.ndim != 2 or arr.shape[0] == 0 or arr.shape[1] == 0:
        raise DataError(
            f"{name}: expected a non-empty 2-D array [rows, dim], got shape {arr.shape}"
        )
    if arr.dtype.kind not in "fiu":
        raise DataError(f"{name}: expected a numeric array, got dtype {arr.dtype}")
    d = arr.shape[1]
    if not center and arr.dtype in (np.float32, np.float16):
        raw = np.ascontiguousarray(arr, dtype=np.float32)
        nu = float32_norms(raw)
        if nu.min() >= 2.0**-20 and nu.max() < 2.0**60:  # NaN fails both
            # normalize_rows' result, made only if a search needs it: a search of both
            # directions scales the raw rows' scores instead (top1_both_rows)
            return Rows(
                lambda: raw / nu[:, None],
                arr,
                cosine=True,
                rho=rho_float32_normalised(d),
                scaled=(raw, nu),
            )
        unit32 = normalize_rows(arr, zero="raise", what=name, dtype=np.float32)
        return Rows(unit32, arr, cosine=True, rho=rho_float32_normalised(d))
    out64 = np.array(arr, dtype=np.float64)
    if not np.isfinite(out64).all():
        bad = int(np.argwhere(~np.isfinite(out64))[0, 0])
        raise DataError(f"{name}: row {bad} contains NaN or infinity; expected finite values")
    if center:
        out64 -= out64.mean(axis=0, keepdims=True)
    unit = normalize_rows(out64, zero="raise", what=name, note=" after centring" if center else "")
    return Rows(
        np.ascontiguousarray(unit, dtype=np.float32),
        out64 if center else arr,
        cosine=True,
        rho=rho_float64_normalised(d),
    )


def _pairs(pairs: ArrayLike, name: str, n: int, m: int) -> NDArray[np.int64]:
    arr = np.asarray(pairs)
    if arr.size == 0:
        return np.empty((0, 2), dtype=np.int64)
    if arr.ndim != 2 or arr.shape[1] != 2 or not np.issubdtype(arr.dtype, np.integer):
        raise DataError(
            f"{name}: expected integer pairs of shape [p, 2], got {arr.dtype} {arr.shape}"
        )
    arr = arr.astype(np.int64)
    bad = (arr[:, 0] < 0) | (arr[:, 0] >= n) | (arr[:, 1] < 0) | (arr[:, 1] >= m)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise DataError(
            f"{name}: pair {i} = {tuple(arr[i].tolist())} out of range; "
            f"expected src index < {n} and tgt index < {m}"
        )
    return arr


def _apply_margin(a: NDArray[np.float64], b: NDArray[np.float64], margin: str) -> NDArray:
    if margin == "none":
        return a
    if margin == "distance":
        return a - b
    return a / b


# ---------------------------------------------------------------- neighbourhoods and scores


def _neighbourhood(
    xn: Rows, yn: Rows, k: int, backend: str
) -> tuple[NDArray[np.float64], NDArray[np.int64], NDArray[np.float64]]:
    """The one kNN-mean routine: cosines and indices of NN_k^Y(x), and their mean per x.

    ``k`` is clamped to the number of rows of ``yn``, as LASER and xtreme do
    (``min(y.shape[0], neighborhood)``).
    """
    sims, idx = knn_rows(xn, yn, k=min(k, len(yn)), backend=backend)
    return sims, idx, sims.mean(axis=1)


def neighbourhood_means(
    src: ArrayLike,
    tgt: ArrayLike,
    *,
    k: int = 4,
    center: bool = False,
    backend: Backend = "auto",
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Mean cosine of each sentence to its ``k`` nearest neighbours in the other language.

    .. math::
        r_Y(x)=\\frac1k\\sum_{z\\in \\mathrm{NN}_k^{Y}(x)}\\cos(x,z),\\qquad
        r_X(y)=\\frac1k\\sum_{z\\in \\mathrm{NN}_k^{X}(y)}\\cos(y,z)

    These are ``fwd_mean``/``bwd_mean`` of the margin score (docs/metrics.md#margin; LASER
    ``mine_bitexts.py``, xtreme ``utils_retrieve.py``) and :math:`r_Y, r_X` of CSLS.
    Values lie in [-1, 1]; high values mark "hubs" (sentences close to many others).

    Parameters
    ----------
    src : array_like, shape (n, d)
    tgt : array_like, shape (m, d)
    k : int
        Neighbourhood size (clamped to the number of rows on the other side).
    center : bool
        Subtract each side's mean vector before normalising (docs/metrics.md#centering).
    backend : {"auto", "numpy", "faiss", "faiss-gpu"}

    Returns
    -------
    fwd_mean : ndarray, shape (n,)
        :math:`r_Y(x_i)`.
    bwd_mean : ndarray, shape (m,)
        :math:`r_X(y_j)`.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.array([[1.0, 0.0], [0.0, 1.0]])
    >>> fwd, bwd = neighbourhood_means(x, x, k=1, backend="numpy")
    >>> fwd.tolist(), bwd.tolist()
    ([1.0, 1.0], [1.0, 1.0])
    """
    k = _positive_int(k, "k")
    xn, yn = _unit_pair(src, tgt, center=center)
    chosen = select_backend(backend)
    return _neighbourhood(xn, yn, k, chosen)[2], _neighbourhood(yn, xn, k, chosen)[2]


def _unit_pair(src: ArrayLike, tgt: ArrayLike, *, center: bool) -> tuple[Rows, Rows]:
    """Both sides through :func:`_unit_rows`, checked to have the same vector size."""
    xn = _unit_rows(src, "src", center=center)
    yn = _unit_rows(tgt, "tgt", center=center)
    _check_dims(xn, yn)
    return xn, yn


def _check_dims(xn: Rows, yn: Rows) -> None:
    if xn.shape[1] != yn.shape[1]:
        raise DataError(
            f"src and tgt: vector sizes differ ({xn.shape[1]} vs {yn.shape[1]}); "
            "expected the same encoder layer on both sides"
        )


def margin_scores(
    src: ArrayLike,
    tgt: ArrayLike,
    *,
    margin: Margin = "ratio",
    k: int = 4,
    pairs: ArrayLike | None = None,
    center: bool = False,
    backend: Backend = "auto",
) -> NDArray[np.float64]:
    """Margin-based similarity of source and target sentences (Artetxe & Schwenk 2019).

    .. math::
        \\mathrm{score}(x,y)=\\mathrm{margin}\\Big(\\cos(x,y),\\
        \\frac{r_Y(x)+r_X(y)}{2}\\Big)

    with :math:`r` the mean cosine to the ``k`` nearest neighbours on the other side
    (:func:`neighbourhood_means`) and ``margin``: ``"none"`` (the paper's *absolute*:
    :math:`a`, plain cosine), ``"distance"`` (:math:`a-b`) or ``"ratio"`` (:math:`a/b`, the
    default). Higher = more likely a translation pair. Ranges: cosine in [-1, 1]; distance
    in [-2, 2]; ratio is unbounded and assumes positive neighbourhood means (true for
    encoder embeddings; LASER behaves the same way otherwise). With equal ``k``,
    ``2 × distance`` equals CSLS (:func:`csls`).

    Parameters
    ----------
    src : array_like, shape (n, d)
    tgt : array_like, shape (m, d)
    margin : {"none", "distance", "ratio"}
    k : int
        Neighbourhood size; 4 in LASER and xtreme.
    pairs : array_like of int, shape (p, 2), optional
        ``(src_index, tgt_index)`` pairs to score. Default: the full ``n × m`` matrix
        (memory ``8·n·m`` bytes; use :func:`retrieve` or :func:`bucc_mine` for large sets).
    center : bool
        Subtract each side's mean vector before normalising (docs/metrics.md#centering).
    backend : {"auto", "numpy", "faiss", "faiss-gpu"}

    Returns
    -------
    ndarray of float64
        Shape ``(n, m)``, or ``(p,)`` when ``pairs`` is given.

    References
    ----------
    Artetxe & Schwenk 2019, *Margin-based Parallel Corpus Mining with Multilingual Sentence
    Embeddings*, ACL (arXiv:1811.01136); LASER ``source/mine_bitexts.py``; xtreme
    ``third_party/utils_retrieve.py`` (``score``: ``margin(x.dot(y), (fwd_mean + bwd_mean) / 2)``).

    Examples
    --------
    >>> import numpy as np
    >>> x = np.array([[1.0, 0.0], [0.6, 0.8]])
    >>> margin_scores(x, x, margin="none", backend="numpy").round(2).tolist()
    [[1.0, 0.6], [0.6, 1.0]]
    >>> margin_scores(x, x, margin="ratio", k=2, backend="numpy").round(3).tolist()
    [[1.25, 0.75], [0.75, 1.25]]
    """
    margin = check_choice("margin", margin, get_args(Margin))  # type: ignore[assignment]
    k = _positive_int(k, "k")
    xn, yn = _unit_pair(src, tgt, center=center)
    chosen = select_backend(backend)
    if margin == "none":
        fwd = np.zeros(len(xn))
        bwd = np.zeros(len(yn))
    else:
        fwd = _neighbourhood(xn, yn, k, chosen)[2]
        bwd = _neighbourhood(yn, xn, k, chosen)[2]
    x64, y64 = _unit64(xn.src), _unit64(yn.src)
    if pairs is None:
        cos = x64 @ y64.T
        return _apply_margin(cos, (fwd[:, None] + bwd[None, :]) / 2, margin)
    p = _pairs(pairs, "pairs", len(xn), len(yn))
    cos = np.einsum("pd,pd->p", x64[p[:, 0]], y64[p[:, 1]])
    return _apply_margin(cos, (fwd[p[:, 0]] + bwd[p[:, 1]]) / 2, margin)


def csls(
    src: ArrayLike,
    tgt: ArrayLike,
    *,
    k: int = 10,
    pairs: ArrayLike | None = None,
    center: bool = False,
    backend: Backend = "auto",
) -> NDArray[np.float64]:
    """Cross-domain similarity local scaling (Conneau et al. 2018).

    .. math::
        \\mathrm{CSLS}(x,y)=2\\cos(x,y)-r_Y(x)-r_X(y)

    with :math:`r` the mean cosine to the ``K`` nearest neighbours on the other side
    (:func:`neighbourhood_means`, the same routine as the margin score). Computed as
    ``2 × margin_scores(margin="distance", k=k)``, so with equal ``k`` the two rank
    identically (docs/metrics.md#csls). Range [-4, 4]; higher = more likely a translation pair.

    Parameters
    ----------
    src : array_like, shape (n, d)
    tgt : array_like, shape (m, d)
    k : int
        Neighbourhood size :math:`K`; 10 in the paper.
    pairs : array_like of int, shape (p, 2), optional
        Pairs to score; default the full ``n × m`` matrix.
    center : bool
        Subtract each side's mean vector before normalising (docs/metrics.md#centering).
    backend : {"auto", "numpy", "faiss", "faiss-gpu"}

    Returns
    -------
    ndarray of float64
        Shape ``(n, m)``, or ``(p,)`` with ``pairs``.

    References
    ----------
    Conneau, Lample, Ranzato, Denoyer & Jégou 2018, *Word Translation Without Parallel
    Data*, ICLR (formula: docs/metrics.md#csls).

    Examples
    --------
    >>> import numpy as np
    >>> x = np.array([[1.0, 0.0], [0.6, 0.8]])
    >>> csls(x, x, k=2, backend="numpy").round(2).tolist()
    [[0.4, -0.4], [-0.4, 0.4]]
    """
    return 2.0 * margin_scores(
        src, tgt, margin="distance", k=k, pairs=pairs, center=center, backend=backend
    )


# ---------------------------------------------------------------- retrieval


def _resolve_scoring(
    scoring: object, margin: object, k: int | None, candidates: object
) -> tuple[str, str, int, str, float]:
    """Validated (scoring, margin, k, candidates, factor) for the shared retrieval core."""
    scoring = check_choice("scoring", scoring, get_args(Scoring))
    margin = check_choice("margin", margin, get_args(Margin))
    if candidates is not None:
        candidates = check_choice("candidates", candidates, get_args(Candidates))
    if scoring == "cosine":
        return "cosine", "none", 1, "knn", 1.0
    if scoring == "csls":
        k = 10 if k is None else _positive_int(k, "k")
        return "csls", "distance", k, str(candidates or "all"), 2.0
    k = 4 if k is None else _positive_int(k, "k")
    return "margin", str(margin), k, str(candidates or "knn"), 1.0


def _best(
    xn: Rows,
    yn: Rows,
    fwd: tuple[NDArray[np.float64], NDArray[np.int64], NDArray[np.float64]] | None,
    bwd_mean: NDArray[np.float64] | None,
    margin: str,
    candidates: str,
    factor: float,
    block_size: int | None,
    backend: str = "numpy",
) -> tuple[NDArray[np.int64], NDArray[np.float64]]:
    """Best target for each source row under the margin score (``fwd`` = NN of x in Y).

    Over all targets, the distance margin (and CSLS, twice it) is an inner-product search over
    augmented vectors (:func:`top1_shifted`) that runs on ``backend``; the ratio margin is not
    of that form and is scored exhaustively in float64 blocks on the CPU (rows normalised in
    float64 from the vectors as given).
    """
    n, m = len(xn), len(yn)
    if margin == "none" or candidates == "knn":
        assert fwd is not None
        sims, idx, fwd_mean = fwd
        if margin == "none":
            scores = sims
        else:
            assert bwd_mean is not None
            scores = _apply_margin(sims, (fwd_mean[:, None] + bwd_mean[idx]) / 2, margin)
        # First maximum: among equal scores, the candidate ranked first by cosine, i.e. the
        # higher cosine, then the lower index.
        col = np.argmax(scores, axis=1)
        rows = np.arange(n)
        return idx[rows, col], factor * scores[rows, col]
    assert fwd is not None and bwd_mean is not None
    fwd_mean = fwd[2]
    if margin == "distance":

        def score(rows: NDArray[np.int64], cand: NDArray[np.int64], dots: NDArray) -> NDArray:
            return dots - (fwd_mean[rows, None] + bwd_mean[cand]) / 2

        idx, top = top1_shifted(xn, yn, bwd_mean / 2, score, backend=backend, block_size=block_size)
        return idx, factor * top
    d = xn.shape[1]
    # Targets are visited in float64 chunks and rows in blocks, so memory stays bounded by
    # one [block, chunk] score array plus one float64 chunk of targets, whatever n and m.
    chunk = max(1, min(m, _CHUNK_BYTES // (8 * d)))
    bs = block_size or max(1, _BLOCK_BYTES // (16 * chunk))
    best = np.zeros(n, dtype=np.int64)
    best_score = np.full(n, -np.inf)
    for start in range(0, n, bs):
        stop = min(start + bs, n)
        xb = _unit64(xn.src[start:stop])
        rows = np.arange(stop - start)
        for c0 in range(0, m, chunk):
            c1 = min(c0 + chunk, m)
            s = xb @ _unit64(yn.src[c0:c1]).T
            base = np.add.outer(fwd_mean[start:stop], bwd_mean[c0:c1])
            base /= 2
            if margin == "distance":
                s -= base
            else:
                s /= base
            del base
            j = np.argmax(s, axis=1)
            v = s[rows, j]
            # Strictly greater: on equal scores the earlier chunk, i.e. the lower index, wins.
            better = v > best_score[start:stop]
            best_score[start:stop][better] = v[better]
            best[start:stop][better] = c0 + j[better]
    return best, factor * best_score


# Searches with at most this many multiply-adds (about 400 x 400 x 384) run on one BLAS
# thread: waking a second thread costs more than it saves, and many times more when other
# processes compete for the cores (Tatoeba has languages of 100-300 sentences).
_ONE_THREAD_MACS = 2**26


_NUMPY_BLAS: dict[str, Any] = {}


def _numpy_blas() -> list[Any]:
    """threadpoolctl controllers of the BLAS numpy's matmul calls (all BLAS libraries loaded
    when that one cannot be told apart), found once: numpy's BLAS is loaded with numpy, so
    unlike :func:`xalign.metrics._blas.single_blas_thread` this imports nothing else (scipy)
    and never rebuilds the controller."""
    if "libs" not in _NUMPY_BLAS:
        from threadpoolctl import ThreadpoolController

        blas = [c for c in ThreadpoolController().lib_controllers if c.user_api == "blas"]
        mine = [c for c in blas if "numpy" in str(getattr(c, "filepath", ""))]
        _NUMPY_BLAS["libs"] = mine or blas
    return _NUMPY_BLAS["libs"]


class _one_numpy_blas_thread:  # a context manager, named like the function it replaced
    """One thread for numpy's BLAS inside the ``with`` block: setting it directly costs a few
    microseconds, against ~0.1 ms for a threadpoolctl ``limit`` context (which also inspects
    every library), a cost that counts on Tatoeba's many 100-row searches (a class rather
    than a generator context manager for the same reason)."""

    __slots__ = ("libs", "old")

    def __enter__(self) -> None:
        self.libs = _numpy_blas()
        self.old = [c.get_num_threads() for c in self.libs]
        for c, n in zip(self.libs, self.old, strict=True):
            if n != 1:  # already one thread (the metrics command's workers): nothing to set
                c.set_num_threads(1)

    def __exit__(self, *exc: object) -> None:
        for c, n in zip(self.libs, self.old, strict=True):
            if n != 1:
                c.set_num_threads(n)


def _retrieve_both(xn: Rows, yn: Rows, *, backend: str, **options: Any) -> dict[str, Any]:
    """:func:`_search_both` (same keywords), on one BLAS thread when the search is small."""
    small = backend == "numpy" and len(xn) * len(yn) * xn.shape[1] <= _ONE_THREAD_MACS
    with _one_numpy_blas_thread() if small else contextlib.nullcontext():
        return _search_both(xn, yn, backend=backend, **options)


def _search_both(
    xn: Rows,
    yn: Rows,
    *,
    margin: str,
    k: int,
    candidates: str,
    factor: float,
    directions: tuple[str, ...],
    block_size: int | None,
    backend: str,
    scores: bool = True,
) -> dict[str, Any]:
    if margin == "none" and len(directions) == 2 and backend == "numpy":
        fi, fs, bi, bs = top1_both_rows(xn, yn, scores=scores)
        return {"src2tgt": (fi, fs), "tgt2src": (bi, bs)}
    if margin == "none":
        out = {}
        if "src2tgt" in directions:
            s, i = knn_rows(xn, yn, k=1, backend=backend)
            out["src2tgt"] = (i[:, 0], s[:, 0])
        if "tgt2src" in directions:
            s, i = knn_rows(yn, xn, k=1, backend=backend)
            out["tgt2src"] = (i[:, 0], s[:, 0])
        return out
    fwd = _neighbourhood(xn, yn, k, backend)
    bwd = _neighbourhood(yn, xn, k, backend)
    out = {}
    if "src2tgt" in directions:
        out["src2tgt"] = _best(xn, yn, fwd, bwd[2], margin, candidates, factor, block_size, backend)
    if "tgt2src" in directions:
        out["tgt2src"] = _best(yn, xn, bwd, fwd[2], margin, candidates, factor, block_size, backend)
    return out


def retrieve(
    src: ArrayLike,
    tgt: ArrayLike,
    *,
    scoring: Scoring = "cosine",
    margin: Margin = "ratio",
    k: int | None = None,
    candidates: Candidates | None = None,
    center: bool = False,
    block_size: int | None = None,
    backend: Backend = "auto",
) -> tuple[NDArray[np.int64], NDArray[np.float64]]:
    """Best-scoring target row for every source row, in bounded memory.

    ``scoring="cosine"``: :math:`\\arg\\max_j \\cos(x_i, y_j)` (exact kNN, ties to the lower
    index). ``"margin"``: :math:`\\arg\\max_j` of :func:`margin_scores`. ``"csls"``:
    :math:`\\arg\\max_j` of :func:`csls`. For every scoring the argmax, the neighbourhood
    means and the returned scores are those of float64 cosines of the vectors as given
    (docs/metrics.md#exact).

    The candidate set changes numbers and is part of the protocol: ``candidates="knn"``
    searches only the ``k`` cosine nearest neighbours (LASER ``xsim.py`` and
    ``mine_bitexts.py``, xtreme ``utils_retrieve.py``; default for ``"margin"``);
    ``candidates="all"`` scores every target (MUSE's CSLS retrieval; default for ``"csls"``).
    CSLS and the distance margin over all targets are a maximum-inner-product search over
    augmented vectors ``[x, 1]·[y, −r(y)/2]`` (:func:`xalign.metrics._knn.top1_shifted`):
    float32 candidates from the backend (faiss GPU included), then exact float64 scoring,
    bounded memory. The ratio margin is not of that form: it is scored in blocks of source
    rows × chunks of targets on the CPU, holding at most two ``[block, chunk]`` float64
    arrays (256 MiB by default) and one float64 chunk of targets (64 MiB).

    Parameters
    ----------
    src : array_like, shape (n, d)
    tgt : array_like, shape (m, d)
    scoring : {"cosine", "margin", "csls"}
    margin : {"none", "distance", "ratio"}
        Margin function for ``scoring="margin"``.
    k : int, optional
        Neighbourhood size: default 4 for margin (LASER/xtreme), 10 for CSLS (Conneau et
        al. 2018); unused for cosine.
    candidates : {"knn", "all"}, optional
        See above.
    center : bool
        Subtract each side's mean vector before normalising (docs/metrics.md#centering).
    block_size : int, optional
        Source rows per block for ``candidates="all"`` (default: 256 MiB of scores per block).
    backend : {"auto", "numpy", "faiss", "faiss-gpu"}

    Returns
    -------
    indices : ndarray of int64, shape (n,)
    scores : ndarray of float64, shape (n,)

    Examples
    --------
    >>> import numpy as np
    >>> x = np.array([[1.0, 0.0], [0.0, 1.0]])
    >>> idx, _ = retrieve(x, x[::-1], backend="numpy")
    >>> idx.tolist()
    [1, 0]
    """
    _, margin_, k_, cand, factor = _resolve_scoring(scoring, margin, k, candidates)
    if block_size is not None:
        block_size = _positive_int(block_size, "block_size")
    xn, yn = _unit_pair(src, tgt, center=center)
    out = _retrieve_both(
        xn,
        yn,
        margin=margin_,
        k=k_,
        candidates=cand,
        factor=factor,
        directions=("src2tgt",),
        block_size=block_size,
        backend=select_backend(backend),
    )
    idx, scores = out["src2tgt"]
    assert scores is not None
    return idx, scores


def tatoeba_accuracy(
    src: ArrayLike,
    tgt: ArrayLike,
    *,
    direction: Direction = "both",
    scoring: Scoring = "cosine",
    margin: Margin = "ratio",
    k: int | None = None,
    candidates: Candidates | None = None,
    dedup_texts: tuple[Sequence[str], Sequence[str]] | None = None,
    center: bool = False,
    backend: Backend = "auto",
) -> dict[str, Any]:
    """Top-1 translation retrieval accuracy on paired rows (Tatoeba-style).

    Rows are paired: ``src[i]`` translates ``tgt[i]``. For each direction,

    .. math::
        \\mathrm{Acc}_{A\\to B}=\\frac1n\\sum_{i=1}^{n}
        \\mathbb{1}\\big[\\arg\\max_j \\mathrm{score}(a_i,b_j)=i\\big]

    a **fraction in [0, 1]**, higher = better aligned (xtreme reports percent, LASER the
    error :math:`1-\\mathrm{Acc}`). Both directions and their mean are reported, as
    sentence-transformers' ``TranslationEvaluator`` does (docs/metrics.md#retrieval). With
    ``dedup_texts`` a retrieved row counts as a hit when its text equals the gold text
    (LASER ``--textual``), which neutralises duplicate sentences (sentence-transformers
    PR #4031). The ranking is exact: every retrieved row is the argmax of the float64 scores
    computed from ``src`` and ``tgt`` as given (float16/float32 values converted to float64,
    rows divided by their float64 norms; after centring, the float64-centred rows), ties
    between equal scores to the lower row index, on every backend. Float32 only proposes:
    queries whose float32 scores are within a proven error bound of each other are decided in
    float64, so nearly parallel vectors (e.g. CLS pooling in e5's middle layers) cost more time
    but never change the answer (docs/metrics.md#exact).

    Parameters
    ----------
    src : array_like, shape (n, d)
    tgt : array_like, shape (n, d)
    direction : {"both", "src2tgt", "tgt2src"}
    scoring : {"cosine", "margin", "csls"}
        ``"margin"`` is xSIM's scoring (LASER ``xsim.py``); ``"csls"`` is CSLS.
    margin : {"none", "distance", "ratio"}
        For ``scoring="margin"``.
    k : int, optional
        Neighbourhood size: default 4 (margin) or 10 (CSLS).
    candidates : {"knn", "all"}, optional
        Targets searched under margin/CSLS scoring: the ``k`` cosine neighbours (xSIM;
        default for margin) or all (MUSE; default for CSLS). See :func:`retrieve`.
    dedup_texts : (src_texts, tgt_texts), optional
        Texts of the rows, each of length ``n``.
    center : bool
        Subtract each side's mean vector before normalising (docs/metrics.md#centering);
        a fitted ``LanguageCenterer`` can be applied by the caller instead.
    backend : {"auto", "numpy", "faiss", "faiss-gpu"}

    Returns
    -------
    dict
        ``acc_src2tgt``, ``acc_tgt2src`` (float, or None for a direction not computed),
        ``acc_mean`` (mean of the computed directions), ``n``, ``correct_src2tgt``,
        ``correct_tgt2src`` (bool arrays per query, for bootstrap CIs, or None),
        ``pred_src2tgt``, ``pred_tgt2src`` (retrieved row indices, or None) and
        ``protocol`` (every choice that changes the number).

    References
    ----------
    Artetxe & Schwenk 2019, *Massively Multilingual Sentence Embeddings for Zero-Shot
    Cross-Lingual Transfer and Beyond*, TACL (Tatoeba); LASER ``source/xsim.py``;
    Hu et al. 2020, *XTREME*, ICML.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.eye(3)
    >>> r = tatoeba_accuracy(x, x, backend="numpy")
    >>> r["acc_src2tgt"], r["acc_tgt2src"], r["acc_mean"], r["n"]
    (1.0, 1.0, 1.0, 3)
    """
    direction = check_choice("direction", direction, get_args(Direction))  # type: ignore[assignment]
    scoring_, margin_, k_, cand, factor = _resolve_scoring(scoring, margin, k, candidates)
    xn, yn = _unit_pair(src, tgt, center=center)
    n = len(xn)
    if len(yn) != n:
        raise DataError(
            f"src and tgt: {n} vs {len(yn)} rows; expected paired rows (src[i] translates tgt[i])"
        )
    if dedup_texts is not None:
        if not isinstance(dedup_texts, tuple | list) or len(dedup_texts) != 2:
            raise ConfigError("dedup_texts: expected a pair (src_texts, tgt_texts)")
        src_texts, tgt_texts = (list(t) for t in dedup_texts)
        if len(src_texts) != n or len(tgt_texts) != n:
            raise DataError(
                f"dedup_texts: {len(src_texts)} source and {len(tgt_texts)} target texts; "
                f"expected {n} each (one per row)"
            )
    dirs = ("src2tgt", "tgt2src") if direction == "both" else (direction,)
    found = _retrieve_both(
        xn,
        yn,
        margin=margin_,
        k=k_,
        candidates=cand,
        factor=factor,
        directions=dirs,
        block_size=None,
        backend=select_backend(backend),
        scores=False,  # only the retrieved indices are needed
    )
    result: dict[str, Any] = {"n": n}
    gold = np.arange(n)
    accs = []
    for name in ("src2tgt", "tgt2src"):
        if name not in found:
            result[f"acc_{name}"] = result[f"correct_{name}"] = result[f"pred_{name}"] = None
            continue
        pred = found[name][0]
        if dedup_texts is None:
            correct = pred == gold
        else:
            texts = np.asarray(tgt_texts if name == "src2tgt" else src_texts, dtype=object)
            correct = texts[pred] == texts
        correct = np.asarray(correct, dtype=bool)
        result[f"acc_{name}"] = int(np.count_nonzero(correct)) / n
        result[f"correct_{name}"] = correct
        result[f"pred_{name}"] = pred
        accs.append(result[f"acc_{name}"])
    result["acc_mean"] = sum(accs) / len(accs)
    result["protocol"] = {
        "metric": "tatoeba_accuracy",
        "direction": direction,
        "scoring": scoring_,
        "margin": margin_ if scoring_ == "margin" else None,
        "k": k_ if scoring_ != "cosine" else None,
        "candidates": cand if scoring_ != "cosine" else None,
        "dedup": "text" if dedup_texts is not None else "index",
        "center": bool(center),
        "units": "fraction",
        "ties": "lower index",
    }
    return result


# ---------------------------------------------------------------- xtreme compatibility


def xtreme_layer_to_xalign(i: int) -> int:
    """xalign layer ℓ for xtreme's ``specific_layer=i``: ℓ = i + 1.

    xtreme keeps ``all_layer_outputs[-num_layers:]``, i.e. drops the embedding output, so its
    layer ``i`` is ``hidden_states[i + 1]`` (docs/metrics.md#layers). xalign's layer ℓ is
    ``hidden_states[ℓ]``.

    Examples
    --------
    >>> xtreme_layer_to_xalign(7)
    8
    """
    if isinstance(i, bool) or not isinstance(i, int | np.integer) or i < 0:
        raise ConfigError(f"xtreme layer {i!r}: expected an integer >= 0")
    return int(i) + 1


def xalign_layer_to_xtreme(layer: int) -> int:
    """xtreme's ``specific_layer`` for xalign layer ℓ: i = ℓ − 1 (ℓ = 0 has no xtreme index).

    Examples
    --------
    >>> xalign_layer_to_xtreme(8)
    7
    """
    if isinstance(layer, bool) or not isinstance(layer, int | np.integer) or layer < 1:
        raise ConfigError(
            f"xalign layer {layer!r}: expected an integer >= 1 "
            "(layer 0, the embedding output, has no xtreme index)"
        )
    return int(layer) - 1


def xtreme_tatoeba_accuracy(
    xx: ArrayLike, en: ArrayLike, *, backend: Backend = "auto"
) -> dict[str, Any]:
    """Tatoeba accuracy exactly as xtreme computes it: English queries, percent.

    With pairs :math:`(a_i, b_i)`, :math:`a` in language xx and :math:`b` in English,
    xtreme indexes the xx vectors and searches with each English :math:`b_j`
    (``similarity_search(x, y)``: ``idx.add(x); idx.search(y, 1)``, FAISS L2 on unit vectors,
    equivalent to cosine):

    .. math::
        \\pi(j)=\\arg\\max_i\\cos(a_i,b_j),\\qquad
        \\mathrm{Acc}_{en\\to xx}=\\frac{100}{n}\\sum_{j=1}^{n}\\mathbb{1}[\\pi(j)=j]

    Range [0, 100] (**percent**, unlike :func:`tatoeba_accuracy`); higher = better. For the
    full xtreme setting also use mean pooling and the xtreme layer (convert with
    :func:`xtreme_layer_to_xalign`; xtreme's default ``specific_layer=7`` is xalign layer 8).
    Ties go to the lower index (faiss's own order may differ on exact ties).

    Parameters
    ----------
    xx : array_like, shape (n, d)
        Non-English sentence vectors (xtreme's ``x``).
    en : array_like, shape (n, d)
        English translations, row-paired with ``xx`` (xtreme's ``y``).
    backend : {"auto", "numpy", "faiss", "faiss-gpu"}

    Returns
    -------
    dict
        ``accuracy`` (percent), ``n``, ``correct`` (bool per English query),
        ``predictions`` (retrieved xx row per English query), ``protocol``.

    References
    ----------
    Hu et al. 2020, *XTREME*, ICML; ``third_party/utils_retrieve.py::similarity_search`` and
    ``evaluate_retrieval.py``.

    Examples
    --------
    >>> import numpy as np
    >>> xtreme_tatoeba_accuracy(np.eye(4), np.eye(4), backend="numpy")["accuracy"]
    100.0
    """
    a = _unit_rows(xx, "xx")
    b = _unit_rows(en, "en")
    _check_dims(a, b)
    if len(a) != len(b):
        raise DataError(f"xx and en: {len(a)} vs {len(b)} rows; expected paired rows")
    _, idx = knn_rows(b, a, k=1, backend=select_backend(backend))
    pred = idx[:, 0]
    correct = pred == np.arange(len(a))
    return {
        "accuracy": 100.0 * float(correct.mean()),
        "n": len(a),
        "correct": correct,
        "predictions": pred,
        "protocol": {
            "metric": "xtreme_tatoeba_accuracy",
            "direction": "en2xx",
            "scoring": "cosine",
            "units": "percent",
            "ties": "lower index",
        },
    }
