"""Exact k-nearest-neighbour search by inner product, with interchangeable backends.

One routine, :func:`knn`, serves every retrieval metric (Tatoeba accuracy, margin scores,
CSLS, BUCC mining). Its backends (plain numpy, faiss CPU, faiss GPU) return *identical*
indices: each backend only proposes candidates from float32 scores, and one shared numpy step
scores them in float64 **from the vectors as given** (for cosine: each row divided by its
float64 norm) and ranks them by ``(score descending, index ascending)``. A proven bound on the
float32 error (rounding of the product and of the float32 normalisation) decides which keys
must be scored in float64; queries with too many keys inside it are searched in float64.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any, Literal, get_args

import numpy as np

from xalign._validate import check_choice
from xalign.errors import ConfigError, DataError

if TYPE_CHECKING:
    from collections.abc import Callable

    from numpy.typing import ArrayLike, NDArray

__all__ = [
    "Backend",
    "Rows",
    "knn",
    "knn_rows",
    "merge_shard_candidates",
    "rho_float32_normalised",
    "rho_float64_normalised",
    "select_backend",
    "top1_both",
    "top1_both_rows",
    "top1_shifted",
]

Backend = Literal["auto", "numpy", "faiss", "faiss-gpu"]
_BACKENDS: tuple[str, ...] = get_args(Backend)

# faiss GPU k-selection supports at most this many neighbours per query (faiss >= 1.7.3).
_GPU_MAX_K = 2048
# Working-memory budget (bytes) of one query block of the numpy backend: the float32 score
# block, argpartition's int64 indices and its temporaries, about 20 bytes per (query, key).
_BLOCK_BYTES = 256 * 2**20
# Memory budget (bytes) for one chunk of gathered float64 candidate vectors while re-scoring.
_RESCORE_BYTES = 64 * 2**20
# Unit roundoffs of float32 and float64, the smallest normal float32, and a factor that
# covers the float64 rounding of the error bounds themselves.
_U32 = 2.0**-24
_U64 = 2.0**-53
_TINY32 = float(np.finfo(np.float32).tiny)
_SAFE = 1.0 + 2.0**-20
# Relative error of one product when a GPU GEMM rounds its inputs to TF32 (10 mantissa bits):
# a safety bound in case faiss's cuBLAS call runs in TF32 mode.
_U_TF32 = 2.0**-10


def _import_faiss(backend: str):
    try:
        import faiss
    except ImportError as exc:
        if backend == "faiss-gpu":
            hint = "pip install faiss-gpu-cu12 (or: pip install 'xalign[gpu]')"
        else:
            hint = "pip install faiss-cpu"
        raise ImportError(f"knn backend {backend!r} needs faiss: {hint}") from exc
    return faiss


def select_backend(backend: str = "auto") -> str:
    """Resolve a backend name to the one :func:`knn` will use.

    Parameters
    ----------
    backend : {"auto", "numpy", "faiss", "faiss-gpu"}
        ``"auto"`` picks ``"faiss-gpu"`` when faiss is importable and
        ``faiss.get_num_gpus() > 0``, else ``"numpy"`` (a missing faiss is not an error
        under ``"auto"``). On CPU the numpy path (BLAS matmul + a two-pass top-2 for k = 1,
        ``argpartition`` otherwise) measured faster than ``faiss.knn`` at 1k-10k rows and
        k = 1 or 4 (benchmarks/README.md), so faiss CPU is used only when asked for.

    Returns
    -------
    str
        One of ``"numpy"``, ``"faiss"``, ``"faiss-gpu"``.

    Raises
    ------
    ConfigError
        Unknown name, or ``"faiss-gpu"`` requested while faiss sees no GPU.
    ImportError
        ``"faiss"`` or ``"faiss-gpu"`` requested and faiss is not installed; the message
        names the pip command.

    Examples
    --------
    >>> select_backend("numpy")
    'numpy'
    """
    check_choice("backend", backend, _BACKENDS)
    if backend == "numpy":
        return "numpy"
    if backend == "auto":
        try:
            faiss = _import_faiss("faiss")
        except ImportError:
            return "numpy"
        return "faiss-gpu" if faiss.get_num_gpus() > 0 else "numpy"
    faiss = _import_faiss(backend)
    if backend == "faiss-gpu" and faiss.get_num_gpus() <= 0:
        raise ConfigError(
            "backend='faiss-gpu': faiss sees no GPU (faiss.get_num_gpus() == 0); "
            "use backend='faiss' or 'auto'"
        )
    return backend


def _gamma(d: int) -> float:
    """Bound on the relative error of a float32 dot product of length ``d``, in any summation
    order and with or without fused multiply-adds: γ_d = d·u/(1 − d·u), u = 2⁻²⁴ (Higham,
    *Accuracy and Stability of Numerical Algorithms*, 2002, §3.1)."""
    du = d * _U32
    return du / (1.0 - du) if du < 0.5 else np.inf


@functools.lru_cache(maxsize=64)
def rho_float32_normalised(d: int) -> float:
    """Componentwise relative error of :func:`~xalign.metrics._rows.normalize_rows` with
    ``dtype=np.float32`` on float32 (or float16) rows, against the exactly normalised rows.

    The norm ν comes from float32 sums of squares (relative error ≤ γ_d), a float64 square
    root and a cast to float32: ν = ‖x‖(1 + η) with |η| ≤ (1 + γ_d/(2 − γ_d))(1 + 2⁻⁵³)(1 + u)
    − 1. Each component is then one float32 division: f_l = (x_l/‖x‖)(1 + ε)/(1 + η), |ε| ≤ u,
    so |f_l/x̂_l − 1| ≤ (u + η)/(1 − η).
    """
    g = _gamma(d)
    eta = (1.0 + g / (2.0 - g)) * (1.0 + _U64) * (1.0 + _U32) - 1.0
    return (_U32 + eta) / (1.0 - eta) * _SAFE


@functools.lru_cache(maxsize=64)
def rho_float64_normalised(d: int) -> float:
    """Componentwise relative error of rows normalised in float64 and then cast to float32:
    the float64 norm and division err by at most (d/2 + 3)·2⁻⁵³, the cast by u."""
    return (_U32 + (d + 8) * _U64) * _SAFE


class Rows:
    """Vectors ready for search: float32 rows to search, and the rows exact scores come from.

    ``f32`` (C-contiguous float32) is what the backends search; it may be given as a function
    that makes it on first use. ``src`` holds the vectors as given (any real dtype; centred ones
    when the caller centred them in float64), and every exact score is computed from it in
    float64: the cosine of two ``src`` rows when ``cosine`` (each row divided by its float64
    norm), else their inner product. ``rho`` bounds the componentwise error of ``f32`` against
    the target rows ``t`` (``src`` rows, normalised when ``cosine``): ``|f32[i, l] − t[i, l]|
    ≤ rho·|t[i, l]|`` (float32 underflow is covered separately). ``norms`` bounds ``‖t_i‖`` per
    row (``None``: all 1, the cosine case). ``scaled`` = ``(raw, nu)``, cosine rows only: the
    float32 rows before normalisation and their float32 norms ν (``f32 = raw / ν``, each ν in
    [2⁻²⁰, 2⁶⁰), ``|ν/‖raw_i‖ − 1| ≤ rho``), which lets :func:`top1_both_rows` search the raw
    rows and scale the scores instead (:func:`_top1_both_scaled`).
    """

    __slots__ = ("_f32", "_make_f32", "_norms64", "cosine", "norms", "rho", "scaled", "src")

    def __init__(
        self,
        f32: NDArray[np.float32] | Callable[[], NDArray[np.float32]],
        src: NDArray[Any],
        *,
        cosine: bool,
        rho: float,
        norms: NDArray[np.float64] | None = None,
        scaled: tuple[NDArray[np.float32], NDArray[np.float32]] | None = None,
    ) -> None:
        self._f32: NDArray[np.float32] | None = None
        self._make_f32: Callable[[], NDArray[np.float32]] | None = None
        if callable(f32):
            self._make_f32 = f32
        else:
            self._f32 = f32
        self.src, self.cosine, self.rho, self.norms = src, cosine, rho, norms
        self.scaled = scaled
        self._norms64: NDArray[np.float64] | None = None

    @property
    def f32(self) -> NDArray[np.float32]:
        """The float32 rows to search (made on first use when given as a function; ``scaled``
        is then dropped, so a float32 copy of float16 rows is not held twice)."""
        if self._f32 is None:
            assert self._make_f32 is not None
            self._f32 = self._make_f32()
            self._make_f32 = self.scaled = None
        return self._f32

    @property
    def shape(self) -> tuple[int, int]:
        """``(rows, dim)``, without making ``f32``."""
        n, d = self.src.shape
        return int(n), int(d)

    def __len__(self) -> int:
        return int(self.src.shape[0])

    def norm_bounds(self) -> NDArray[np.float64]:
        """Upper bounds on the norms of the target rows (ones for cosine)."""
        return np.ones(len(self)) if self.norms is None else self.norms

    def norms64(self) -> NDArray[np.float64]:
        """Float64 norms of all ``src`` rows, computed once (chunks of contiguous-row sums,
        bit-identical to the sums :func:`_exact` takes over gathered rows)."""
        if self._norms64 is None:
            n, d = self.src.shape
            out = np.empty(n)
            step = max(1, _RESCORE_BYTES // (8 * max(1, d)))
            for s in range(0, n, step):
                r = self.src[s : s + step].astype(np.float64, copy=False)
                out[s : s + step] = np.sqrt((r * r).sum(axis=-1))
            self._norms64 = out
        return self._norms64


def _as_rows(x: ArrayLike, name: str) -> Rows:
    """Checked inner-product :class:`Rows` of ``x``: its float32 copy, scored exactly from ``x``."""
    arr = np.asarray(x)
    if arr.ndim != 2:
        raise DataError(f"{name}: expected a 2-D array [rows, dim], got shape {arr.shape}")
    if not np.issubdtype(arr.dtype, np.floating) and not np.issubdtype(arr.dtype, np.integer):
        raise DataError(f"{name}: expected a numeric array, got dtype {arr.dtype}")
    f32 = np.ascontiguousarray(arr, dtype=np.float32)
    if not np.isfinite(f32).all():
        bad = int(np.argwhere(~np.isfinite(f32))[0, 0])
        raise DataError(f"{name}: row {bad} contains NaN or infinity")
    exact = arr.dtype in (np.float16, np.float32)  # float32 holds them exactly
    rho = 0.0 if exact else _U32 * _SAFE
    d = max(1, arr.shape[1])
    norms = np.sqrt(np.einsum("ij,ij->i", f32, f32, dtype=np.float64))
    norms *= (1.0 + (d + 4) * _U64) / (1.0 - rho) * _SAFE
    return Rows(f32, arr, cosine=False, rho=rho, norms=norms)


def _tol(q: Rows, y: Rows, *, extra: float = 0.0, shift_max: float = 0.0) -> NDArray[np.float64]:
    """Per query, a bound on |float32 score − exact float64 score| for any of its keys.

    Float32 scores are products of ``q.f32`` and ``y.f32`` rows, optionally augmented by a
    coordinate ``[1]·[−shift]`` (``shift_max`` = max |shift|); exact scores are those of
    :func:`_exact` (``t_q·t_y``, minus shift). The bound adds (i) the product's rounding,
    γ_{d'}·Σ|f_q f_y| ≤ γ_{d'}(1 + ρ_q)(1 + ρ_y)‖t_q‖‖t_y‖ (+ |shift|), with ``extra`` for a
    GPU's TF32 inputs; (ii) the float32 rows' own error, (ρ_q + ρ_y + ρ_qρ_y)‖t_q‖‖t_y‖;
    (iii) the float32 rounding of the shift, u·|shift|; (iv) the float64 rounding of the exact
    score, (2d + 8)·2⁻⁵³·‖t_q‖‖t_y‖; (v) float32 underflow, 4·d·2⁻¹²⁶. A factor 1 + 2⁻²⁰ covers
    the rounding of this computation itself.
    """
    d = q.shape[1]
    if q.norms is None and y.norms is None:  # cosine: the same bound for every query
        return np.full(len(q), _tol_cached(d, q.rho, y.rho, extra, shift_max))
    norm_prod = q.norm_bounds() * float(y.norm_bounds().max(initial=0.0))
    return _tol_scalar(d, q.rho, y.rho, extra, shift_max, norm_prod)


@functools.lru_cache(maxsize=64)
def _tol_cached(d: int, rq: float, ry: float, extra: float, shift_max: float) -> float:
    return float(_tol_scalar(d, rq, ry, extra, shift_max, 1.0))


def _tol_scalar(
    d: int, rq: float, ry: float, extra: float, shift_max: float, norm_prod: Any
) -> Any:
    """:func:`_tol` for a given product of norm bounds (a float or an array)."""
    g = _gamma(d + (1 if shift_max else 0)) + extra
    rel = g * (1 + rq) * (1 + ry) + rq + ry + rq * ry + (2 * d + 8) * _U64
    tol = rel * norm_prod + (g * (1 + _U32) + _U32) * shift_max + 4 * max(d, 1) * _TINY32
    return tol * _SAFE


def _exact(q: Rows, qi: NDArray[np.intp], y: Rows, cand: NDArray[np.int64]) -> NDArray[np.float64]:
    """Float64 scores of queries ``q[qi]`` with their candidate keys ``y[cand]``.

    Computed from the ``src`` rows converted to float64: the inner product, divided for cosine
    by both float64 norms. Each dot product and each norm is one contiguous-row reduction, so
    equal vectors always get bit-identical scores (ties then go to the lower index).
    """
    nq, kp = cand.shape
    d = q.shape[1]
    out = np.empty((nq, kp), dtype=np.float64)
    # many candidates: take every key's norm once instead of once per gathered copy
    yn = y.norms64() if q.cosine and nq * kp > len(y) else None
    rows = max(1, _RESCORE_BYTES // (8 * max(1, kp * d)))
    for start in range(0, nq, rows):
        stop = min(start + rows, nq)
        c = cand[start:stop]
        g = y.src[c].astype(np.float64, copy=False)
        qb = q.src[qi[start:stop]].astype(np.float64, copy=False)
        s = (g * qb[:, None, :]).sum(axis=-1)
        if q.cosine:
            ny = np.sqrt((g * g).sum(axis=-1)) if yn is None else yn[c]
            s /= np.sqrt((qb * qb).sum(axis=-1))[:, None] * ny
        out[start:stop] = s
    return out


def _unit64(src: NDArray[Any]) -> NDArray[np.float64]:
    """Rows of ``src`` in float64, each divided by its float64 norm."""
    r = np.array(src, dtype=np.float64)
    r /= np.sqrt((r * r).sum(axis=-1))[:, None]
    return r


def _exact_search(
    q: Rows,
    qi: NDArray[np.intp],
    y: Rows,
    k: int,
    *,
    shift: NDArray[np.float64] | None = None,
    score: Any = None,
) -> tuple[NDArray[np.float64], NDArray[np.int64]]:
    """Exact top-``k`` keys of queries ``q[qi]``, found in float64 over all keys.

    For queries whose float32 scores cannot separate their best keys (nearly parallel
    vectors). Blocked float64 products (normalised rows for cosine, minus ``shift``) propose:
    every key within four times the float64 error bound of the ``k``-th best one; those are
    scored by :func:`_exact` (then ``score(rows, cand, dots)`` when given, as in
    :func:`top1_shifted`) and ranked by (score descending, index ascending). Memory: one
    ``[block, m]`` float64 score array (256 MiB) and one float64 chunk of keys (64 MiB).
    """
    m, d = y.shape
    nq = len(qi)
    out_s = np.empty((nq, k), np.float64)
    out_i = np.empty((nq, k), np.int64)
    if nq == 0:
        return out_s, out_i
    # |float64 product score − exact value| and |_exact's score − exact value|, each
    norm_prod = float(q.norm_bounds()[qi].max()) * float(y.norm_bounds().max())
    smax = float(np.abs(shift).max()) if shift is not None else 0.0
    err = ((4 * d + 16) * _U64 * norm_prod + 4 * _U64 * (norm_prod + smax)) * 1.5 + 1e-300
    chunk = max(1, min(m, _RESCORE_BYTES // (8 * d)))
    keys = [(0, m, _unit64(y.src) if y.cosine else y.src.astype(np.float64))] if chunk >= m else []
    block = max(1, min(nq, _BLOCK_BYTES // (8 * m)))
    for b0 in range(0, nq, block):
        b1 = min(b0 + block, nq)
        rows = qi[b0:b1]
        Q = _unit64(q.src[rows]) if q.cosine else q.src[rows].astype(np.float64)
        S = np.empty((b1 - b0, m))
        for c0, c1, K in keys or ((c0, min(c0 + chunk, m), None) for c0 in range(0, m, chunk)):
            if K is None:
                part = y.src[c0:c1]
                K = _unit64(part) if y.cosine else part.astype(np.float64)
            S[:, c0:c1] = Q @ K.T
        if shift is not None:
            S -= shift
        kth = np.partition(S, m - k, axis=1)[:, m - k]
        c = int(((kth - 4 * err)[:, None] <= S).sum(axis=1).max())
        if c < m:
            cand = np.argpartition(S, m - c, axis=1)[:, m - c :]
        else:
            cand = np.broadcast_to(np.arange(m), S.shape)
        del S
        cand = np.ascontiguousarray(cand, dtype=np.int64)
        exact = _exact(q, rows, y, cand)
        if score is not None:
            exact = score(rows, cand, exact)
        elif shift is not None:
            exact = exact - shift[cand]
        order = np.lexsort((cand, -exact), axis=-1)[:, :k]
        out_s[b0:b1] = np.take_along_axis(exact, order, axis=1)
        out_i[b0:b1] = np.take_along_axis(cand, order, axis=1)
    return out_s, out_i


@functools.lru_cache(maxsize=16)
def _gpu_resources(gpu_memory: int | None, device: int = 0):
    faiss = _import_faiss("faiss-gpu")
    res = faiss.StandardGpuResources()
    if gpu_memory is not None:
        res.setTempMemory(int(gpu_memory))
    return res


def _candidates_numpy(
    q: NDArray[np.float32], keys: NDArray[np.float32], kp: int, block_size: int
) -> tuple[NDArray[np.float32], NDArray[np.int64]]:
    """Top-``kp`` candidates (unordered) by float32 inner product, blocks of queries."""
    nq, m = q.shape[0], keys.shape[0]
    out_s = np.empty((nq, kp), dtype=np.float32)
    out_i = np.empty((nq, kp), dtype=np.int64)
    for start in range(0, nq, block_size):
        stop = min(start + block_size, nq)
        s = q[start:stop] @ keys.T
        if kp < m:
            idx = np.argpartition(s, m - kp, axis=1)[:, m - kp :]
        else:
            idx = np.broadcast_to(np.arange(m), s.shape)
        out_i[start:stop] = idx
        out_s[start:stop] = np.take_along_axis(s, idx, axis=1)
    return out_s, out_i


def _candidates_faiss(
    q: NDArray[np.float32], keys: NDArray[np.float32], kp: int, block_size: int
) -> tuple[NDArray[np.float32], NDArray[np.int64]]:
    faiss = _import_faiss("faiss")
    out_s = np.empty((q.shape[0], kp), dtype=np.float32)
    out_i = np.empty((q.shape[0], kp), dtype=np.int64)
    for start in range(0, q.shape[0], block_size):
        stop = min(start + block_size, q.shape[0])
        d, i = faiss.knn(q[start:stop], keys, kp, metric=faiss.METRIC_INNER_PRODUCT)
        out_s[start:stop], out_i[start:stop] = d, i
    return out_s, out_i


def merge_shard_candidates(
    parts: list[tuple[NDArray[np.float32], NDArray[np.int64]]], kp: int
) -> tuple[NDArray[np.float32], NDArray[np.int64]]:
    """The best ``kp`` of several shards' candidates (scores, global key indices) per query.

    Each shard proposes its own top candidates over its slice of the keys; the union holds the
    global top ``kp`` (a key in the global top ``kp`` is in its own shard's top ``kp``).
    Returned unordered, like every candidate proposal; the exact re-scoring ranks them.
    """
    scores = np.concatenate([p[0] for p in parts], axis=1)
    idx = np.concatenate([p[1] for p in parts], axis=1)
    if scores.shape[1] <= kp:
        return scores, idx
    pick = np.argpartition(scores, scores.shape[1] - kp, axis=1)[:, -kp:]
    return np.take_along_axis(scores, pick, axis=1), np.take_along_axis(idx, pick, axis=1)


def _candidates_faiss_gpu(
    q: NDArray[np.float32],
    keys: NDArray[np.float32],
    kp: int,
    block_size: int,
    gpu_memory: int | None,
) -> tuple[NDArray[np.float32], NDArray[np.int64]]:
    """Candidates from ``faiss.knn_gpu`` (no index), keys sharded over every visible GPU.

    With several GPUs the keys are split into one contiguous shard per GPU, each GPU searches
    its shard (in parallel threads; faiss releases the GIL) and the shards' candidates are
    merged (:func:`merge_shard_candidates`). ``gpu_memory`` caps faiss's temporary memory and
    the memory for vectors and for queries (``vectorsMemoryLimit``/``queriesMemoryLimit``),
    so large inputs are paged through the GPU in pieces.
    """
    from concurrent.futures import ThreadPoolExecutor

    faiss = _import_faiss("faiss-gpu")
    n_gpu = max(1, int(faiss.get_num_gpus()))
    m = keys.shape[0]
    n_shards = min(n_gpu, m)
    bounds = np.linspace(0, m, n_shards + 1).astype(np.int64)
    limits = {}
    if gpu_memory is not None:
        limits = {"vectorsMemoryLimit": int(gpu_memory), "queriesMemoryLimit": int(gpu_memory)}

    def search(g: int, qb: NDArray[np.float32]) -> tuple[NDArray[np.float32], NDArray[np.int64]]:
        lo, hi = int(bounds[g]), int(bounds[g + 1])
        res = _gpu_resources(gpu_memory, g)
        d, i = faiss.knn_gpu(
            res,
            qb,
            np.ascontiguousarray(keys[lo:hi]),
            min(kp, hi - lo),
            metric=faiss.METRIC_INNER_PRODUCT,
            device=g if n_shards > 1 else -1,
            **limits,
        )
        return d, i.astype(np.int64) + lo

    out_s = np.empty((q.shape[0], kp), dtype=np.float32)
    out_i = np.empty((q.shape[0], kp), dtype=np.int64)
    with ThreadPoolExecutor(max_workers=n_shards) as pool:
        for start in range(0, q.shape[0], block_size):
            stop = min(start + block_size, q.shape[0])
            qb = q[start:stop]
            parts = list(pool.map(lambda g: search(g, qb), range(n_shards)))  # noqa: B023
            out_s[start:stop], out_i[start:stop] = merge_shard_candidates(parts, kp)
    return out_s, out_i


def _proposer(
    chosen: str,
    q: NDArray[np.float32],
    keys: NDArray[np.float32],
    bs: int,
    gpu_memory: int | None,
) -> Any:
    """``propose(rows, kp)``: unordered top-``kp`` float32 candidates of ``q[rows]``."""

    def propose(rows: NDArray[np.intp], kp: int) -> tuple[NDArray[np.float32], NDArray[np.int64]]:
        sub = np.ascontiguousarray(q[rows])
        if chosen == "faiss":
            return _candidates_faiss(sub, keys, kp, bs)
        if chosen == "faiss-gpu" and kp <= _GPU_MAX_K:
            return _candidates_faiss_gpu(sub, keys, kp, bs, gpu_memory)
        return _candidates_numpy(sub, keys, kp, bs)

    return propose


def _fast_top(
    q: NDArray[np.float32],
    y: NDArray[np.float32],
    k: int,
    chosen: str,
    bs: int,
    tol: NDArray[np.float64],
    propose: Any,
) -> tuple[NDArray[np.int64], NDArray[np.bool_]]:
    """Top-k by float32 scores and, per query, whether that order is provably exact.

    Exact when each gap between consecutive float32 scores among the best ``k + 1`` exceeds
    ``2 * tol`` (``tol`` bounds the float32 error of any score of that query): then no key can
    swap places with another in exact arithmetic, and there are no ties to break.
    """
    nq, m = q.shape[0], y.shape[0]
    if m <= k:
        return np.zeros((nq, k), np.int64), np.zeros(nq, dtype=bool)
    if chosen == "numpy" and k == 1:
        # top-2 by two max passes: much cheaper than argpartition on [block, m] scores
        top = np.empty((nq, 1), np.int64)
        gap = np.empty(nq, np.float64)
        for start in range(0, nq, bs):
            stop = min(start + bs, nq)
            sc = q[start:stop] @ y.T
            rows = np.arange(stop - start)
            i1 = sc.argmax(axis=1)
            v1 = sc[rows, i1].copy()
            sc[rows, i1] = -np.inf
            top[start:stop, 0] = i1
            gap[start:stop] = v1.astype(np.float64) - sc.max(axis=1)
        return top, gap > 2 * tol
    cand_s, cand_i = propose(np.arange(nq), k + 1)
    order = np.lexsort((cand_i, -cand_s), axis=-1)
    cand_s = np.take_along_axis(cand_s, order, axis=1).astype(np.float64)
    cand_i = np.take_along_axis(cand_i, order, axis=1)
    gaps = cand_s[:, :-1] - cand_s[:, 1:]
    return cand_i[:, :k], (gaps > 2 * tol[:, None]).all(axis=1)


# Unsure rows with at most this many keys inside the float32 window are decided by scoring
# those keys in float64; rows with more go to the float64 search (_exact_search).
_FEW = 64


def _top1_rows(
    S: NDArray[np.float32],
    q: Rows,
    qi: NDArray[np.intp] | slice,
    y: Rows,
    tol: NDArray[np.float64],
) -> NDArray[np.int64]:
    """Exact best key for each row of the float32 score block ``S = q.f32[qi] @ y.f32.T``.

    Any float32 block will do whose row ``r`` is within ``tol[r]`` of the exact scores of query
    ``q[qi][r]`` times a positive constant of that row (:func:`_top1_both_scaled`'s scaled
    scores: the constant is the query's norm). A row whose float32 top-2 gap exceeds
    ``2 * tol`` (``tol``: :func:`_tol`) is decided by its argmax. For the other rows every key
    that can win in float64 scores at least ``max - 2 * tol`` in float32; up to :data:`_FEW`
    such keys are scored by :func:`_exact` and ranked by (score descending, index ascending);
    a row with more goes to :func:`_exact_search`.
    """
    return _settle(S, q, qi, y, tol, *_top2(S, tol))


def _top2(
    S: NDArray[np.float32], tol: NDArray[np.float64]
) -> tuple[NDArray[np.int64], NDArray[np.float32], NDArray[np.intp]]:
    """Per row of ``S``: the float32 argmax, its score, and the rows whose top-2 gap is not
    above ``2 * tol`` (the unsure ones). ``S`` is left as it was."""
    rows = np.arange(S.shape[0])
    i1 = S.argmax(axis=1)
    v1 = S[rows, i1]
    S[rows, i1] = -np.inf
    v2 = S[rows, S.argmax(axis=1)]  # the second maximum: faster than S.max(axis=1)
    S[rows, i1] = v1
    gap = np.subtract(v1, v2, dtype=np.float64)  # in float64: the gap is not rounded to float32
    return i1, v1, np.flatnonzero(~(gap > 2 * tol))


def _settle(
    S: NDArray[np.float32],
    q: Rows,
    qi: NDArray[np.intp] | slice,
    y: Rows,
    tol: NDArray[np.float64],
    i1: NDArray[np.int64],
    v1: NDArray[np.float32],
    unsure: NDArray[np.intp],
) -> NDArray[np.int64]:
    """:func:`_top1_rows` after :func:`_top2`: decides the unsure rows (``i1`` is updated)."""
    if not unsure.size:
        return i1
    m = S.shape[1]
    if unsure.size <= _LEAN:
        return _top1_rows_lean(S, q, qi, y, tol, i1, v1, unsure)
    qrows = np.arange(len(q))[qi][unsure]
    thr = v1[unsure].astype(np.float64) - 2 * tol[unsure]
    sub = S[unsure]
    count = (sub >= thr[:, None]).sum(axis=1)  # compared in float64
    few = count <= _FEW
    if few.any():
        c = int(count[few].max())
        cand = np.argpartition(sub[few], m - c, axis=1)[:, m - c :] if c < m else None
        if cand is None:
            cand = np.broadcast_to(np.arange(m), (int(few.sum()), m))
        cand = np.ascontiguousarray(cand, dtype=np.int64)
        exact = _exact(q, qrows[few], y, cand)
        order = np.lexsort((cand, -exact), axis=-1)[:, 0]
        i1[unsure[few]] = cand[np.arange(len(cand)), order]
    if not few.all():
        i1[unsure[~few]] = _exact_search(q, qrows[~few], y, 1)[1][:, 0]
    return i1


# Up to this many unsure rows in a block are decided one by one (fewer numpy calls than the
# vectorised route, which pays off for the typical one or two near-tied rows of a search).
_LEAN = 4


def _top1_rows_lean(
    S: NDArray[np.float32],
    q: Rows,
    qi: NDArray[np.intp] | slice,
    y: Rows,
    tol: NDArray[np.float64],
    i1: NDArray[np.int64],
    v1: NDArray[np.float32],
    unsure: NDArray[np.intp],
) -> NDArray[np.int64]:
    """:func:`_top1_rows`' decision of a few unsure rows, one row at a time: the same keys
    (float32 score ≥ max − 2·tol, compared in float64), scored by :func:`_exact`, ranked by
    (score descending, index ascending)."""
    rows = range(len(q))[qi] if isinstance(qi, slice) else qi  # row u of S is query rows[u]
    for u in unsure.tolist():
        thr = np.float64(v1[u]) - 2 * tol[u]  # a float64 scalar: the comparison is in float64
        cand = np.flatnonzero(S[u] >= thr)
        if cand.size > _FEW:
            i1[u] = _exact_search(q, np.array([rows[u]], dtype=np.intp), y, 1)[1][0, 0]
            continue
        # _exact's formula for one query: float64 products and norms, one contiguous-row
        # reduction each (equal keys get bit-identical scores)
        g = y.src[cand].astype(np.float64, copy=False)
        qb = q.src[rows[u]].astype(np.float64)
        s = (g * qb).sum(axis=-1)
        if q.cosine:
            s /= np.sqrt((qb * qb).sum()) * np.sqrt((g * g).sum(axis=-1))
        i1[u] = cand[s.argmax()]  # cand ascends: the first maximum has the lowest index
    return i1


def top1_both(
    x: ArrayLike, y: ArrayLike, *, backend: str = "auto"
) -> tuple[NDArray[np.int64], NDArray[np.float64], NDArray[np.int64], NDArray[np.float64]]:
    """Exact nearest neighbour by inner product in both directions.

    Returns ``(fwd_idx, fwd_score, bwd_idx, bwd_score)``: for each row of ``x`` its best row
    of ``y`` and for each row of ``y`` its best row of ``x``, with float64 scores of the vectors
    as given — the same result as :func:`knn` with ``k=1`` run both ways (ties go to the lower
    index). On the numpy backend, when all rows of ``x`` fit one block (256 MiB of scores), one
    matrix product serves both directions (its transpose is copied for the column pass);
    larger inputs take one blocked product per direction. A query whose float32 top-2 gap is
    within twice the float32 error bound is decided in float64.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.array([[1.0, 0.0], [0.0, 1.0]])
    >>> fi, fs, bi, bs = top1_both(x, x[::-1], backend="numpy")
    >>> fi.tolist(), bi.tolist()
    ([1, 0], [1, 0])
    """
    chosen = select_backend(backend)
    q = _as_rows(x, "queries")
    k = _as_rows(y, "keys")
    if chosen != "numpy" or q.shape[1] != k.shape[1] or not len(q) or not len(k):
        s1, i1 = _knn64(x, y, k=1, backend=backend)
        s2, i2 = _knn64(y, x, k=1, backend=backend)
        return i1[:, 0], s1[:, 0], i2[:, 0], s2[:, 0]
    return top1_both_rows(q, k)


def top1_both_rows(q: Rows, k: Rows, *, scores: bool = True) -> Any:
    """:func:`top1_both` (numpy backend) on prepared :class:`Rows` (cosine or inner product).

    With ``scores=False`` the float64 scores of the winners are not computed (``None``).
    """
    n = q.shape[0]
    m = k.shape[0]
    one_block = n <= _BLOCK_BYTES // (20 * m)
    if one_block and q.scaled is not None and k.scaled is not None:
        f_i, b_i = _top1_both_scaled(q, k)
    elif one_block:
        tol_q = _tol(q, k)
        tol_k = _tol(k, q)
        S = q.f32 @ k.f32.T
        f_i = _top1_rows(S, q, slice(None), k, tol_q)
        ST = np.ascontiguousarray(S.T)
        del S
        b_i = _top1_rows(ST, k, slice(None), q, tol_k)
    else:
        f_i = np.empty(n, np.int64)
        b_i = np.empty(m, np.int64)
        for out, a, b, tol in ((f_i, q, k, _tol(q, k)), (b_i, k, q, _tol(k, q))):
            bs = max(1, _BLOCK_BYTES // (20 * len(b)))
            for start in range(0, len(a), bs):
                stop = min(start + bs, len(a))
                block = a.f32[start:stop] @ b.f32.T
                out[start:stop] = _top1_rows(block, a, slice(start, stop), b, tol[start:stop])
    if not scores:
        return f_i, None, b_i, None
    f_s = _exact(q, np.arange(n), k, f_i[:, None])[:, 0]
    b_s = _exact(k, np.arange(m), q, b_i[:, None])[:, 0]
    return f_i, f_s, b_i, b_s


def _tol_scaled(q: Rows, y: Rows) -> NDArray[np.float64]:
    """Per query of ``q`` and then per query of ``y`` (length ``len(q) + len(y)``), a bound on
    |F − ‖t‖·c| for :func:`_top1_both_scaled`'s float32 scores of query ``t`` against the
    other side's rows ``s``, F = fl(fl(raw_t · raw_s)·fl(1/ν_s)), and the float64 cosines c of
    :func:`_exact`.

    With w = fl(1/ν_s) = (1 + ε_w)/‖s‖, |ε_w| ≤ ρ_s (one rounding of 1/ν, the error of a
    normalised component, :func:`rho_float32_normalised`), the product's rounding
    |fl(t·s) − t·s| ≤ γ_d‖t‖‖s‖ and the last multiplication's 1 + δ, |δ| ≤ u:
    |F − ‖t‖c*| ≤ ‖t‖((1 + u)(1 + ρ_s) − 1 + γ_d(1 + u)(1 + ρ_s)), c* the exact cosine — the
    terms of :func:`_tol` with ρ_q = u and the query's norm, which bounds the float64 rounding
    of c and underflow too (with ν ≥ 2⁻²⁰, raw underflow times w stays below its 4·d·2⁻¹²⁶).
    ‖t‖ ≤ ν_t(1 + 2ρ_t) since ν_t = ‖t‖(1 + η), |η| ≤ ρ_t ≤ 1/2. Computed as ν_t·a + b with
    the scalars a, b of :func:`_tol_scaled_terms`.
    """
    assert q.scaled is not None and y.scaled is not None
    d = q.shape[1]
    # scaled rows come from _unit_rows alone, with ρ = rho_float32_normalised(d) on both
    # sides, so one (a, b) serves the queries of either side
    assert q.rho == y.rho
    a, b = _tol_scaled_terms(d, q.rho, y.rho)
    tol = np.concatenate((q.scaled[1], y.scaled[1]), dtype=np.float64)
    tol *= a
    tol += b
    return tol


@functools.lru_cache(maxsize=64)
def _tol_scaled_terms(d: int, rq: float, ry: float) -> tuple[float, float]:
    """(a, b) with :func:`_tol_scalar` (ρ = u and ``ry``, no shift) = ν·a + b for a norm
    bound ν(1 + 2·rq); ``a`` carries one more factor 1 + 2⁻²⁰ for the two float64 roundings
    of ν·a + b."""
    b = float(_tol_scalar(d, _U32, ry, 0.0, 0.0, 0.0))  # the underflow term alone
    a = float(_tol_scalar(d, _U32, ry, 0.0, 0.0, 1.0)) - b
    return a * (1.0 + 2.0 * rq) * _SAFE, b * _SAFE


def _top1_both_scaled(q: Rows, k: Rows) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """:func:`top1_both_rows`' indices for cosine rows given ``scaled`` (one block).

    One float32 product of the raw rows, ``P = raw_q @ raw_k.T``; the forward scores are ``P``
    with each column multiplied by ``fl(1/ν_k)``, the backward ones ``Pᵀ`` with each column
    multiplied by ``fl(1/ν_q)``. Row ``i`` of each is then the cosines of query ``i`` times its
    norm, within :func:`_tol_scaled`, so :func:`_top1_rows`' decision applies unchanged; no
    normalised copy of either side is made. With as many queries as keys (Tatoeba's pairs) both
    directions share one array and one :func:`_top2` pass.
    """
    assert q.scaled is not None and k.scaled is not None
    (raw_q, nu_q), (raw_k, nu_k) = q.scaled, k.scaled
    n, m = len(q), len(k)
    tol = _tol_scaled(q, k)
    tol_q, tol_k = tol[:n], tol[n:]
    both = np.empty((2 * n, n) if n == m else (n, m), np.float32)
    fwd = both[:n]
    np.matmul(raw_q, raw_k.T, out=fwd)
    bwd = both[n:] if n == m else np.empty((m, n), np.float32)
    np.multiply(fwd.T, np.reciprocal(nu_q), out=bwd)
    fwd *= np.reciprocal(nu_k)
    if n == m:
        i1, v1, unsure = _top2(both, tol)
        if not unsure.size:  # the usual case: every query decided by float32
            return i1[:n], i1[n:]
        cut = np.searchsorted(unsure, n)
        f = (i1[:n], v1[:n], unsure[:cut])
        b = (i1[n:], v1[n:], unsure[cut:] - n)
    else:
        f, b = _top2(fwd, tol_q), _top2(bwd, tol_k)
    return (
        _settle(fwd, q, slice(None), k, tol_q, *f),
        _settle(bwd, k, slice(None), q, tol_k, *b),
    )


def top1_shifted(
    queries: Rows,
    keys: Rows,
    shift: NDArray[np.float64],
    score: Any,
    *,
    backend: str = "auto",
    block_size: int | None = None,
    gpu_memory: int | None = None,
) -> tuple[NDArray[np.int64], NDArray[np.float64]]:
    """Exact ``argmax_j score(i, j)`` where ``score ≈ t_i · t_j − shift_j``, on any backend.

    CSLS and the distance margin over *all* targets have this form (MUSE; docs/metrics.md#csls), so
    they reduce to a maximum-inner-product search over augmented vectors ``[q, 1]`` and
    ``[y, −shift]`` (float32), which every backend runs — faiss GPU included. The proposed
    candidates are then scored exactly by ``score(rows, cand, dots)`` (``dots``: float64 scores
    from :func:`_exact`; it must equal ``dots − shift[cand] − c_i`` up to float64 rounding, with
    ``c_i`` any per-query constant) and ranked by (score descending, index ascending). A query
    whose worst float32 candidate could still hide a better key (within the error bound of the
    augmented scores, :func:`_tol`) is searched again with 4× the candidates, and after two
    such rounds in float64 (:func:`_exact_search`), so the result is the exact one, identical
    on every backend.

    Returns ``(indices, scores)``, float64 scores as ``score`` gives them.
    """
    chosen = select_backend(backend)
    n, d = queries.shape
    m = len(keys)
    qa = np.empty((n, d + 1), np.float32)
    qa[:, :d], qa[:, d] = queries.f32, 1.0
    ya = np.empty((m, d + 1), np.float32)
    ya[:, :d], ya[:, d] = keys.f32, -shift
    bs = int(block_size) if block_size else max(1, min(n, _BLOCK_BYTES // (20 * m)))

    propose = _proposer(chosen, qa, ya, bs, gpu_memory)
    smax = float(np.abs(shift).max(initial=0.0))
    extra = _U_TF32 if chosen == "faiss-gpu" else 0.0
    tol = _tol(queries, keys, extra=extra, shift_max=smax)
    out_i = np.empty(n, np.int64)
    out_s = np.empty(n, np.float64)
    pending = np.arange(n)
    kp = min(m, 8)
    hard = []  # rows whose float32 window holds all their candidates: searched in float64
    for _ in range(3):
        if not pending.size:
            break
        cand_s, cand_i = propose(pending, kp)
        if kp < m:
            full = cand_s.min(axis=1) >= cand_s.max(axis=1) - 2 * tol[pending]
            hard.append(pending[full])
            pending, cand_s, cand_i = pending[~full], cand_s[~full], cand_i[~full]
        dots = _exact(queries, pending, keys, cand_i)
        exact = score(pending, cand_i, dots)
        best = np.lexsort((cand_i, -exact), axis=-1)[:, 0]
        r = np.arange(len(pending))
        top_s, top_i = exact[r, best], cand_i[r, best]
        if kp >= m:
            done = np.ones(len(pending), dtype=bool)
        else:
            # keys outside the candidates have t·t − shift <= min(cand_s) + tol; they cannot
            # reach the best one (eps covers the float64 rounding of ``score``)
            v_best = dots[r, best] - shift[top_i]
            eps = 8 * 2.0**-52 * (np.abs(v_best) + smax + 1.0)
            done = cand_s.min(axis=1).astype(np.float64) + tol[pending] + eps < v_best
        out_i[pending[done]] = top_i[done]
        out_s[pending[done]] = top_s[done]
        pending = pending[~done]
        kp = min(m, 4 * kp)
    pending = np.concatenate([pending, *hard])
    if pending.size:
        s, i = _exact_search(queries, pending, keys, 1, shift=shift, score=score)
        out_i[pending], out_s[pending] = i[:, 0], s[:, 0]
    return out_i, out_s


def knn(
    queries: ArrayLike,
    keys: ArrayLike,
    *,
    k: int,
    backend: Backend = "auto",
    block_size: int | None = None,
    gpu_memory: int | None = None,
) -> tuple[NDArray[np.float32], NDArray[np.int64]]:
    """Exact top-``k`` keys for each query by inner product (cosine on unit vectors).

    For every query row :math:`q_i` returns the ``k`` key rows :math:`y_j` with the largest
    :math:`q_i^\\top y_j`, best first. Pass L2-normalised float32 vectors to get cosine
    neighbours :math:`\\mathrm{NN}_k^{Y}(x)` (docs/metrics.md#notation), the building block of
    Tatoeba accuracy, margin scores and CSLS (docs/metrics.md#retrieval).

    **Exact, and identical across backends.** The ranking is that of the float64 inner
    products of the vectors *as given* (float16/float32 values are exact in float64; float64
    inputs are not rounded to float32 for it), ties (e.g. duplicate keys) to the lower index.
    Each backend proposes candidates from float32 scores; one shared numpy routine scores them
    in float64 and sorts by ``(score descending, key index ascending)``. Which keys need
    float64 scores follows from a proven bound on the float32 error (γ_d·‖q‖·max‖y‖ with
    γ_d = d·2⁻²⁴/(1 − d·2⁻²⁴), plus the rounding of float64 inputs to float32, TF32 on GPU):
    a query whose candidates are within it of its ``k``-th result gets more candidates, and
    after two rounds is searched in float64.

    Parameters
    ----------
    queries : array_like, shape (nq, d)
    keys : array_like, shape (m, d)
        Searched as float32 copies (inputs are never modified); scored from the inputs.
    k : int
        Neighbours per query, ``1 <= k <= m``.
    backend : {"auto", "numpy", "faiss", "faiss-gpu"}
        ``"numpy"``: blocked matmul (blocks of queries × all keys, ``argpartition``);
        ``"faiss"``: ``faiss.knn`` on CPU; ``"faiss-gpu"``: index-free ``faiss.knn_gpu``.
        ``"auto"`` resolves with :func:`select_backend`.
    block_size : int, optional
        Queries per block. Default: as many as keep the numpy backend's working memory per
        block (float32 scores, int64 ``argpartition`` indices and temporaries, about
        ``20·block·m`` bytes) near 256 MiB; the faiss backends use the same blocks.
    gpu_memory : int, optional
        Temporary GPU memory in bytes for faiss (``StandardGpuResources.setTempMemory``);
        default is faiss's own.

    Returns
    -------
    scores : ndarray of float32, shape (nq, k)
        Inner products (the float64 ones rounded to float32), descending along each row.
    indices : ndarray of int64, shape (nq, k)
        Key row indices.

    References
    ----------
    Johnson, Douze & Jégou 2019, *Billion-scale similarity search with GPUs*, IEEE Trans. Big
    Data (faiss). docs/metrics.md#protocol: L2-normalise copies before inner-product search.

    Examples
    --------
    >>> import numpy as np
    >>> keys = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]], dtype=np.float32)
    >>> scores, idx = knn(np.array([[1.0, 0.0]]), keys, k=2, backend="numpy")
    >>> idx.tolist(), scores.tolist()  # tie between keys 0 and 2: lower index first
    ([[0, 2]], [[1.0, 1.0]])
    """
    scores, indices = _knn64(
        queries, keys, k=k, backend=backend, block_size=block_size, gpu_memory=gpu_memory
    )
    return scores.astype(np.float32), indices


def _knn64(
    queries: ArrayLike,
    keys: ArrayLike,
    *,
    k: int,
    backend: str = "auto",
    block_size: int | None = None,
    gpu_memory: int | None = None,
) -> tuple[NDArray[np.float64], NDArray[np.int64]]:
    """:func:`knn` with the float64 scores of the vectors as given."""
    q = _as_rows(queries, "queries")
    y = _as_rows(keys, "keys")
    if q.shape[1] != y.shape[1]:
        raise DataError(
            f"queries and keys: dimensions differ ({q.shape[1]} vs {y.shape[1]}); "
            "expected vectors of the same size"
        )
    return knn_rows(q, y, k=k, backend=backend, block_size=block_size, gpu_memory=gpu_memory)


def knn_rows(
    q: Rows,
    y: Rows,
    *,
    k: int,
    backend: str = "auto",
    block_size: int | None = None,
    gpu_memory: int | None = None,
) -> tuple[NDArray[np.float64], NDArray[np.int64]]:
    """:func:`knn` on prepared :class:`Rows` (cosine or inner product), float64 scores."""
    nq = q.shape[0]
    m = len(y)
    if m == 0:
        raise DataError("keys: expected at least one row, got 0")
    if isinstance(k, bool) or not isinstance(k, int | np.integer) or not 1 <= k <= m:
        raise ConfigError(f"k={k!r}: expected an integer in [1, {m}] (number of keys)")
    k = int(k)
    if block_size is not None and (not isinstance(block_size, int | np.integer) or block_size < 1):
        raise ConfigError(f"block_size={block_size!r}: expected a positive integer")
    if gpu_memory is not None and (not isinstance(gpu_memory, int | np.integer) or gpu_memory < 1):
        raise ConfigError(f"gpu_memory={gpu_memory!r}: expected a positive number of bytes")
    chosen = select_backend(backend)
    if nq == 0:
        return np.empty((0, k), np.float64), np.empty((0, k), np.int64)
    bs = int(block_size) if block_size else max(1, min(nq, _BLOCK_BYTES // (20 * m)))

    propose = _proposer(chosen, q.f32, y.f32, bs, gpu_memory)
    tol = _tol(q, y, extra=_U_TF32 if chosen == "faiss-gpu" else 0.0)

    out_s = np.empty((nq, k), dtype=np.float64)
    out_i = np.empty((nq, k), dtype=np.int64)
    # Fast path: where the float32 gaps around the top k exceed twice the error bound, the
    # float32 order is provably the exact one, so only the k results are scored in float64.
    top_i, done = _fast_top(q.f32, y.f32, k, chosen, bs, tol, propose)
    idx = np.flatnonzero(done)
    out_i[idx] = top_i[idx]
    out_s[idx] = _exact(q, idx, y, np.ascontiguousarray(top_i[idx]))
    pending = np.flatnonzero(~done)
    kp = 2 * k + 8
    hard = []  # rows whose float32 window holds all their candidates: searched in float64
    for _ in range(2):  # two rounds of more float32 candidates, then float64
        if not pending.size or kp >= m:
            break
        cand_s, cand_i = propose(pending, kp)
        vk = np.partition(cand_s, kp - k, axis=1)[:, kp - k].astype(np.float64)
        full = cand_s.min(axis=1) >= vk - 2 * tol[pending]
        hard.append(pending[full])
        pending, cand_s, cand_i = pending[~full], cand_s[~full], cand_i[~full]
        exact = _exact(q, pending, y, cand_i)
        order = np.lexsort((cand_i, -exact), axis=-1)[:, :k]
        top_s = np.take_along_axis(exact, order, axis=1)
        top_i = np.take_along_axis(cand_i, order, axis=1)
        # Keys outside the candidates score at most min(cand_s) + tol in float64.
        floor = cand_s.min(axis=1).astype(np.float64) + tol[pending]
        done = floor < top_s[:, -1]
        out_s[pending[done]] = top_s[done]
        out_i[pending[done]] = top_i[done]
        pending = pending[~done]
        kp = 4 * kp
    pending = np.concatenate([pending, *hard])
    if pending.size:
        out_s[pending], out_i[pending] = _exact_search(q, pending, y, k)
    return out_s, out_i
