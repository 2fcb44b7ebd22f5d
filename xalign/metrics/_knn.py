"""Exact k-nearest-neighbour search by inner product, with interchangeable backends.

One routine, :func:`knn`, serves every retrieval metric (Tatoeba accuracy, margin scores,
CSLS, BUCC mining). Its backends (plain numpy, faiss CPU, faiss GPU) return *identical*
indices: each backend only proposes candidates, and one shared numpy step re-scores them in
float64 and ranks them by ``(score descending, index ascending)``.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any, Literal, get_args

import numpy as np

from xalign._validate import check_choice
from xalign.errors import ConfigError, DataError

if TYPE_CHECKING:
    from numpy.typing import ArrayLike, NDArray

__all__ = [
    "Backend",
    "knn",
    "merge_shard_candidates",
    "select_backend",
    "top1_both",
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
# Unit roundoff of float32.
_U32 = 2.0**-24
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


def _as_matrix(x: ArrayLike, name: str) -> NDArray[np.float32]:
    arr = np.asarray(x)
    if arr.ndim != 2:
        raise DataError(f"{name}: expected a 2-D array [rows, dim], got shape {arr.shape}")
    if not np.issubdtype(arr.dtype, np.floating) and not np.issubdtype(arr.dtype, np.integer):
        raise DataError(f"{name}: expected a numeric array, got dtype {arr.dtype}")
    arr = np.ascontiguousarray(arr, dtype=np.float32)
    if not np.isfinite(arr).all():
        bad = int(np.argwhere(~np.isfinite(arr))[0, 0])
        raise DataError(f"{name}: row {bad} contains NaN or infinity")
    return arr


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


def _rescore(
    q: NDArray[np.float32],
    keys: NDArray[np.float32],
    cand: NDArray[np.int64],
    *,
    q64: NDArray[np.float64] | None = None,
    keys64: NDArray[np.float64] | None = None,
) -> NDArray[np.float64]:
    """Float64 inner products of each query with its candidate keys.

    Products of float32 numbers are exact in float64, and each dot product is one
    contiguous-row reduction, so equal key vectors always get bit-identical scores.
    ``q64``/``keys64`` are the same arrays already cast to float64 (saves the casts).
    """
    nq, kp = cand.shape
    d = q.shape[1]
    out = np.empty((nq, kp), dtype=np.float64)
    rows = max(1, _RESCORE_BYTES // (8 * max(1, kp * d)))
    for start in range(0, nq, rows):
        stop = min(start + rows, nq)
        c = cand[start:stop]
        gathered = keys64[c] if keys64 is not None else keys[c].astype(np.float64)
        qb = q64[start:stop] if q64 is not None else q[start:stop].astype(np.float64)
        out[start:stop] = (gathered * qb[:, None, :]).sum(axis=-1)
    return out


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


def _row_norms(x: NDArray[np.float32]) -> NDArray[np.float64]:
    """Euclidean norm of each row, float32 squares summed in float64 (no overflow, no copy)."""
    return np.sqrt(np.einsum("ij,ij->i", x, x, dtype=np.float64))


def _top1_rows(
    S: NDArray[np.float32],
    q: NDArray[np.float32],
    keys: NDArray[np.float32],
    tol: NDArray[np.float64],
) -> NDArray[np.int64]:
    """Exact best key for each row of the float32 score block ``S = q @ keys.T``.

    A row whose float32 top-2 gap exceeds ``2 * tol`` is decided by its argmax. For the other
    rows every key that can win in exact arithmetic scores at least ``max - 2 * tol`` in float32;
    up to 8 such candidates are re-scored in float64 (:func:`_rescore`) and ranked by (score
    descending, index ascending); a row with more candidates goes to the exact search of
    :func:`knn`.
    """
    nr, m = S.shape
    rows = np.arange(nr)
    i1 = S.argmax(axis=1)
    v1 = S[rows, i1]
    S[rows, i1] = -np.inf
    v2 = S.max(axis=1)
    S[rows, i1] = v1
    unsure = np.flatnonzero(~(v1.astype(np.float64) - v2 > 2 * tol))
    if not len(unsure):
        return i1
    thr = v1[unsure].astype(np.float64) - 2 * tol[unsure]
    sub = S[unsure]
    count = (sub >= thr[:, None]).sum(axis=1)  # compared in float64
    c = min(m, 8)
    few = count <= c
    if few.any():
        r = unsure[few]
        cand = np.argpartition(sub[few], m - c, axis=1)[:, m - c :] if c < m else None
        if cand is None:
            cand = np.broadcast_to(np.arange(m), (len(r), m))
        exact = _rescore(q[r], keys, np.ascontiguousarray(cand))
        order = np.lexsort((cand, -exact), axis=-1)[:, 0]
        i1[r] = cand[np.arange(len(r)), order]
    many = unsure[~few]
    if len(many):
        i1[many] = _knn64(q[many], keys, k=1, backend="numpy")[1][:, 0]
    return i1


def top1_both(
    x: ArrayLike, y: ArrayLike, *, backend: str = "auto"
) -> tuple[NDArray[np.int64], NDArray[np.float64], NDArray[np.int64], NDArray[np.float64]]:
    """Exact nearest neighbour by inner product in both directions.

    Returns ``(fwd_idx, fwd_score, bwd_idx, bwd_score)``: for each row of ``x`` its best row
    of ``y`` and for each row of ``y`` its best row of ``x``, with float64 scores — the same
    result as :func:`knn` with ``k=1`` run both ways (ties go to the lower index). On the numpy
    backend, when all rows of ``x`` fit one block (256 MiB of scores), one matrix product
    serves both directions (its transpose is copied for the column pass); larger inputs take
    one blocked product per direction. A query whose float32 top-2 gap is within twice the
    float32 rounding bound is decided exactly (float64 re-scoring of its candidates).

    Examples
    --------
    >>> import numpy as np
    >>> x = np.array([[1.0, 0.0], [0.0, 1.0]])
    >>> fi, fs, bi, bs = top1_both(x, x[::-1], backend="numpy")
    >>> fi.tolist(), bi.tolist()
    ([1, 0], [1, 0])
    """
    chosen = select_backend(backend)
    q = _as_matrix(x, "queries")
    k = _as_matrix(y, "keys")
    if chosen != "numpy" or q.shape[1] != k.shape[1] or not len(q) or not len(k):
        s1, i1 = _knn64(q, k, k=1, backend=backend)
        s2, i2 = _knn64(k, q, k=1, backend=backend)
        return i1[:, 0], s1[:, 0], i2[:, 0], s2[:, 0]
    nq, nk = _row_norms(q), _row_norms(k)
    return _top1_both(q, k, nq, nk)


def _top1_both_unit(q: NDArray[np.float32], k: NDArray[np.float32], *, scores: bool = True) -> Any:
    """:func:`top1_both` (numpy) for rows already checked and L2-normalised by the caller.

    Row norms are then bounded by ``1 + (d + 2)·2⁻²⁴`` (the norm used to normalise was off by
    at most ``(d/2 + 1)·2⁻²⁴`` relative, the division rounds by ``2⁻²⁴``), which replaces the
    computed norms in the rounding bound. With ``scores=False`` the float64 scores are not
    computed (returned as ``None``).
    """
    bound = 1.0 + (q.shape[1] + 2) * _U32
    return _top1_both(q, k, np.full(len(q), bound), np.full(len(k), bound), scores=scores)


def _top1_both(
    q: NDArray[np.float32],
    k: NDArray[np.float32],
    nq: NDArray[np.float64],
    nk: NDArray[np.float64],
    *,
    scores: bool = True,
) -> Any:
    n, d = q.shape
    m = k.shape[0]
    unit = 2 * d * _U32
    tiny = np.finfo(np.float32).tiny
    tol_q = unit * nq * float(nk.max()) + tiny
    tol_k = unit * nk * float(nq.max()) + tiny
    if n <= _BLOCK_BYTES // (20 * m):
        S = q @ k.T
        f_i = _top1_rows(S, q, k, tol_q)
        ST = np.ascontiguousarray(S.T)
        del S
        b_i = _top1_rows(ST, k, q, tol_k)
    else:
        f_i = np.empty(n, np.int64)
        b_i = np.empty(m, np.int64)
        for out, a, b, tol in ((f_i, q, k, tol_q), (b_i, k, q, tol_k)):
            bs = max(1, _BLOCK_BYTES // (20 * len(b)))
            for start in range(0, len(a), bs):
                stop = min(start + bs, len(a))
                out[start:stop] = _top1_rows(a[start:stop] @ b.T, a[start:stop], b, tol[start:stop])
    if not scores:
        return f_i, None, b_i, None
    q64, k64 = q.astype(np.float64), k.astype(np.float64)
    f_s = _rescore(q, k, f_i[:, None], q64=q64, keys64=k64)[:, 0]
    b_s = _rescore(k, q, b_i[:, None], q64=k64, keys64=q64)[:, 0]
    return f_i, f_s, b_i, b_s


def top1_shifted(
    queries: NDArray[np.float32],
    keys: NDArray[np.float32],
    shift: NDArray[np.float64],
    score: Any,
    *,
    backend: str = "auto",
    block_size: int | None = None,
    gpu_memory: int | None = None,
) -> tuple[NDArray[np.int64], NDArray[np.float64]]:
    """Exact ``argmax_j score(i, j)`` where ``score ≈ q_i · y_j − shift_j``, on any backend.

    CSLS and the distance margin over *all* targets have this form (MUSE; docs/metrics.md#csls), so
    they reduce to a maximum-inner-product search over augmented vectors ``[q, 1]`` and
    ``[y, −shift]`` (float32), which every backend runs — faiss GPU included. The proposed
    candidates are then scored exactly by ``score(rows, cand, dots)`` (``dots``: float64 inner
    products from :func:`_rescore`; it must equal ``dots − shift[cand] − c_i`` up to float64
    rounding, with ``c_i`` any per-query constant) and ranked by (score descending, index
    ascending). A query whose worst float32 candidate could still hide a better key (within the
    rounding bound of the augmented scores) is searched again with 4× the candidates, so the
    result is the exact one, identical on every backend.

    Returns ``(indices, scores)``, float64 scores as ``score`` gives them.
    """
    chosen = select_backend(backend)
    n, d = queries.shape
    m = keys.shape[0]
    qa = np.empty((n, d + 1), np.float32)
    qa[:, :d], qa[:, d] = queries, 1.0
    ya = np.empty((m, d + 1), np.float32)
    ya[:, :d], ya[:, d] = keys, -shift
    bs = int(block_size) if block_size else max(1, min(n, _BLOCK_BYTES // (20 * m)))

    propose = _proposer(chosen, qa, ya, bs, gpu_memory)

    unit = 2 * (d + 1) * _U32 + (_U_TF32 if chosen == "faiss-gpu" else 0.0)
    # |float32 augmented score − (q·y − shift)|: the dot's rounding plus shift's cast to float32
    tol = unit * _row_norms(qa) * float(_row_norms(ya).max())
    tol += _U32 * float(np.abs(shift).max()) + np.finfo(np.float32).tiny
    out_i = np.empty(n, np.int64)
    out_s = np.empty(n, np.float64)
    pending = np.arange(n)
    kp = min(m, 8)
    while pending.size:
        cand_s, cand_i = propose(pending, kp)
        dots = _rescore(queries[pending], keys, cand_i)
        exact = score(pending, cand_i, dots)
        best = np.lexsort((cand_i, -exact), axis=-1)[:, 0]
        r = np.arange(len(pending))
        top_s, top_i = exact[r, best], cand_i[r, best]
        if kp >= m:
            done = np.ones(len(pending), dtype=bool)
        else:
            # keys outside the candidates have q·y − shift <= min(cand_s) + tol; they cannot
            # reach the best one (eps covers the float64 rounding of ``score``)
            v_best = dots[r, best] - shift[top_i]
            eps = 8 * 2.0**-52 * (np.abs(v_best) + float(np.abs(shift).max()) + 1.0)
            done = cand_s.min(axis=1).astype(np.float64) + tol[pending] + eps < v_best
        out_i[pending[done]] = top_i[done]
        out_s[pending[done]] = top_s[done]
        pending = pending[~done]
        kp = min(m, 4 * kp)
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

    **Identical results across backends.** Each backend proposes ``k' > k`` candidates from
    float32 scores; all candidates are then re-scored by one shared numpy routine in float64
    and sorted by ``(score descending, key index ascending)``, so ties (e.g. duplicate
    keys) go to the lower index whatever the backend. A query whose ``k'``-th candidate lies
    within the float32 rounding bound (``2·d·2⁻²⁴·‖q‖·max‖y‖``; the TF32 bound on GPU) of
    its ``k``-th result is searched again with 4×``k'`` until the result is provably exact.

    Parameters
    ----------
    queries : array_like, shape (nq, d)
    keys : array_like, shape (m, d)
        Cast to float32 (a copy; inputs are never modified).
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
        Inner products, descending along each row.
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
    """:func:`knn` with the float64 re-scored inner products (shared by the retrieval metrics)."""
    q = _as_matrix(queries, "queries")
    y = _as_matrix(keys, "keys")
    if q.shape[1] != y.shape[1]:
        raise DataError(
            f"queries and keys: dimensions differ ({q.shape[1]} vs {y.shape[1]}); "
            "expected vectors of the same size"
        )
    nq, d = q.shape
    m = y.shape[0]
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

    propose = _proposer(chosen, q, y, bs, gpu_memory)

    # Per-query bound on |float32 inner product - exact inner product|.
    unit = 2 * d * _U32 + (_U_TF32 if chosen == "faiss-gpu" else 0.0)
    tol = (
        unit * np.linalg.norm(q, axis=1).astype(np.float64) * float(np.linalg.norm(y, axis=1).max())
    )
    tol += np.finfo(np.float32).tiny

    out_s = np.empty((nq, k), dtype=np.float64)
    out_i = np.empty((nq, k), dtype=np.int64)
    # Fast path: where the float32 gaps around the top k exceed twice the rounding bound, the
    # float32 order is provably the exact one, so only the k results are re-scored in float64.
    top_i, done = _fast_top(q, y, k, chosen, bs, tol, propose)
    out_i[done] = top_i[done]
    out_s[done] = _rescore(q[done], y, top_i[done])
    pending = np.flatnonzero(~done)
    kp = min(m, 2 * k + 8)
    while pending.size:
        cand_s, cand_i = propose(pending, kp)
        exact = _rescore(q[pending], y, cand_i)
        order = np.lexsort((cand_i, -exact), axis=-1)[:, :k]
        top_s = np.take_along_axis(exact, order, axis=1)
        top_i = np.take_along_axis(cand_i, order, axis=1)
        if kp >= m:
            done = np.ones(pending.size, dtype=bool)
        else:
            # Keys outside the candidates score at most min(cand_s) (+ rounding) in float64.
            floor = cand_s.min(axis=1).astype(np.float64) + tol[pending]
            done = floor < top_s[:, -1]
        out_s[pending[done]] = top_s[done]
        out_i[pending[done]] = top_i[done]
        pending = pending[~done]
        kp = min(m, 4 * kp)
    return out_s, out_i
