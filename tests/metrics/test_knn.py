from __future__ import annotations

import sys

import numpy as np
import pytest

from xalign.errors import ConfigError, DataError
from xalign.metrics._knn import knn, select_backend


def unit(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def unit64(x: np.ndarray) -> np.ndarray:
    """Rows in float64, normalised in float64: the reference for cosine scores."""
    x = np.asarray(x, dtype=np.float64)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def reference_knn(q: np.ndarray, keys: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Full float64 score matrix, rank by (score desc, index asc)."""
    s = q.astype(np.float64) @ keys.astype(np.float64).T
    ids = np.broadcast_to(np.arange(keys.shape[0]), s.shape)
    order = np.lexsort((ids, -s), axis=-1)[:, :k]
    return np.take_along_axis(s, order, axis=1), order


@pytest.fixture
def random_data():
    rng = np.random.default_rng(0)
    return unit(rng.normal(size=(300, 32))), unit(rng.normal(size=(500, 32)))


@pytest.fixture
def tied_data():
    """Duplicate keys (more copies than the first candidate pool) and duplicate queries."""
    rng = np.random.default_rng(1)
    keys = unit(rng.normal(size=(400, 24)))
    keys[50:110] = keys[7]  # 61 identical keys: 7, 50..109
    keys[300] = keys[299]
    queries = unit(rng.normal(size=(120, 24)))
    queries[:20] = keys[7]  # queries whose top 61 are an exact tie
    queries[20:25] = keys[299]
    queries[25:30] = unit(keys[7:8] + keys[299:300])  # ties inside and at the k boundary
    return queries, keys


# ------------------------------------------------------------------ backend choice


def test_select_backend_explicit_and_invalid():
    assert select_backend("numpy") == "numpy"
    assert select_backend("faiss") == "faiss"
    with pytest.raises(
        ConfigError, match="backend 'cuda': allowed values are auto, numpy, faiss, faiss-gpu"
    ):
        select_backend("cuda")


def test_select_backend_auto_follows_gpu_count(monkeypatch):
    import faiss

    monkeypatch.setattr(faiss, "get_num_gpus", lambda: 0)
    assert select_backend("auto") == "numpy"  # CPU: numpy measured faster than faiss.knn
    monkeypatch.setattr(faiss, "get_num_gpus", lambda: 2)
    assert select_backend("auto") == "faiss-gpu"
    assert select_backend("faiss") == "faiss"  # explicit CPU stays CPU
    monkeypatch.setattr(faiss, "get_num_gpus", lambda: 0)
    with pytest.raises(ConfigError, match="no GPU"):
        select_backend("faiss-gpu")


def test_missing_faiss_auto_falls_back_and_explicit_names_pip(monkeypatch):
    monkeypatch.setitem(sys.modules, "faiss", None)  # makes `import faiss` raise ImportError
    assert select_backend("auto") == "numpy"
    with pytest.raises(ImportError, match="pip install faiss-cpu"):
        select_backend("faiss")
    with pytest.raises(ImportError, match="faiss-gpu"):
        select_backend("faiss-gpu")
    q = unit(np.eye(3))
    _, i = knn(q, q, k=1)  # auto works without faiss
    assert i[:, 0].tolist() == [0, 1, 2]


# ------------------------------------------------------------------ exactness


@pytest.mark.parametrize("backend", ["numpy", "faiss"])
@pytest.mark.parametrize("k", [1, 5, 40])
def test_matches_reference_on_random_data(random_data, backend, k):
    q, keys = random_data
    s, i = knn(q, keys, k=k, backend=backend)
    rs, ri = reference_knn(q, keys, k)
    assert s.dtype == np.float32 and i.dtype == np.int64 and s.shape == (300, k)
    np.testing.assert_array_equal(i, ri)
    np.testing.assert_allclose(s, rs, atol=1e-6)
    assert (np.diff(s, axis=1) <= 0).all()


@pytest.mark.parametrize("k", [1, 3, 10, 61, 62, 70])
def test_numpy_and_faiss_identical_on_ties(tied_data, k):
    q, keys = tied_data
    sn, inp = knn(q, keys, k=k, backend="numpy")
    sf, inf = knn(q, keys, k=k, backend="faiss")
    np.testing.assert_array_equal(inp, inf)
    np.testing.assert_allclose(sn, sf, atol=1e-5)
    rs, ri = reference_knn(q, keys, k)
    np.testing.assert_allclose(sn, rs, atol=1e-6)
    np.testing.assert_array_equal(inp, ri)
    # queries equal to key 7: the exact tie among its 61 copies goes to the lowest indices
    copies = [7, *range(50, 110)]
    assert inp[0, : min(k, 61)].tolist() == copies[: min(k, 61)]


def test_numpy_and_faiss_identical_on_random_data(random_data):
    q, keys = random_data
    sn, inp = knn(q, keys, k=10, backend="numpy")
    sf, inf = knn(q, keys, k=10, backend="faiss")
    np.testing.assert_array_equal(inp, inf)
    np.testing.assert_allclose(sn, sf, atol=1e-5)


def test_faiss_backend_is_canonical_on_exact_ties(tied_data):
    import faiss

    q, keys = tied_data
    _, raw = faiss.knn(q[:1], keys, 3, metric=faiss.METRIC_INNER_PRODUCT)
    _, ours = knn(q[:1], keys, k=3, backend="faiss")
    assert ours[0].tolist() == [7, 50, 51]
    # faiss alone may return any of the 61 tied copies; we only require ours to be canonical
    assert set(raw[0].tolist()) <= {7, *range(50, 110)}


@pytest.mark.parametrize("block_size", [1, 7, 64])
def test_blocked_path_equals_full_matmul(random_data, block_size):
    q, keys = random_data
    s, i = knn(q, keys, k=6, backend="numpy", block_size=block_size)
    full = q @ keys.T  # one full float32 matmul, no blocking
    order = np.argsort(-full, axis=1, kind="stable")[:, :6]
    np.testing.assert_array_equal(i, order)
    np.testing.assert_allclose(s, np.take_along_axis(full, order, axis=1), atol=1e-6)


def test_k_equal_to_number_of_keys_returns_a_full_ranking():
    keys = unit([[1, 0], [0, 1], [1, 1], [1, 0]])
    s, i = knn(unit([[1, 0]]), keys, k=4, backend="numpy")
    assert i[0].tolist() == [0, 3, 2, 1]
    np.testing.assert_allclose(s[0], [1, 1, np.sqrt(0.5), 0], atol=1e-6)


def test_inputs_are_not_modified_and_any_float_dtype_works(random_data):
    q, keys = random_data
    q64 = q.astype(np.float64) * 3.0
    before = q64.copy()
    _, i = knn(q64, keys, k=2, backend="faiss")
    np.testing.assert_array_equal(q64, before)
    np.testing.assert_array_equal(i, reference_knn(q, keys, 2)[1])


def test_empty_queries():
    s, i = knn(np.zeros((0, 3)), np.eye(3), k=2, backend="numpy")
    assert s.shape == (0, 2) and i.shape == (0, 2)


def test_bad_inputs():
    keys = np.eye(3)
    with pytest.raises(ConfigError, match=r"k=4: expected an integer in \[1, 3\]"):
        knn(keys, keys, k=4)
    with pytest.raises(ConfigError, match="k=0"):
        knn(keys, keys, k=0)
    with pytest.raises(DataError, match="dimensions differ"):
        knn(np.ones((2, 4)), keys, k=1)
    with pytest.raises(DataError, match="row 1 contains NaN"):
        knn(np.array([[1.0, 0, 0], [np.nan, 0, 0]]), keys, k=1)
    with pytest.raises(DataError, match="2-D"):
        knn(np.ones(3), keys, k=1)
    with pytest.raises(ConfigError, match="block_size"):
        knn(keys, keys, k=1, block_size=0)


@pytest.mark.gpu
def test_faiss_gpu_identical_to_numpy(tied_data, random_data):
    import faiss

    if not hasattr(faiss, "StandardGpuResources") or faiss.get_num_gpus() == 0:
        pytest.skip("no GPU visible to faiss")
    for q, keys in (tied_data, random_data):
        sn, inp = knn(q, keys, k=10, backend="numpy")
        sg, ig = knn(q, keys, k=10, backend="faiss-gpu", gpu_memory=64 * 2**20)
        np.testing.assert_array_equal(inp, ig)
        np.testing.assert_allclose(sn, sg, atol=1e-5)


def top1_both_matches_knn(x, y):
    """Assert top1_both equals knn with k = 1 run both ways (indices and scores)."""
    from xalign.metrics._knn import top1_both

    fi, fs, bi, bs = top1_both(x, y, backend="numpy")
    s1, i1 = knn(x, y, k=1, backend="numpy")
    s2, i2 = knn(y, x, k=1, backend="numpy")
    np.testing.assert_array_equal(fi, i1[:, 0])
    np.testing.assert_array_equal(bi, i2[:, 0])
    np.testing.assert_allclose(fs, s1[:, 0], rtol=1e-6)
    np.testing.assert_allclose(bs, s2[:, 0], rtol=1e-6)
    return fi, bi


def test_top1_both_equals_knn_both_ways_with_ties():

    rng = np.random.default_rng(3)
    x = rng.standard_normal((300, 16)).astype(np.float32)
    y = rng.standard_normal((250, 16)).astype(np.float32)
    y[10] = y[3]  # exact duplicate keys: ties must go to the lower index
    x[7] = x[2]
    fi, bi = top1_both_matches_knn(x, y)
    # float64 reference, ties to the lower index
    S = x.astype(np.float64) @ y.astype(np.float64).T
    np.testing.assert_array_equal(fi, S.argmax(1))
    np.testing.assert_array_equal(bi, S.argmax(0))
    assert 10 not in set(fi.tolist()) and 7 not in set(bi.tolist())


def _near_tied(n: int, m: int, d: int, seed: int):
    """Rows that are a few shared directions plus noise at the float32 rounding level, so
    many top-2 gaps fall inside the rounding bound, with exact duplicates on both sides."""
    rng = np.random.default_rng(seed)
    base = rng.standard_normal((3, d))
    x = base[rng.integers(0, 3, n)] + 1e-7 * rng.standard_normal((n, d))
    y = base[rng.integers(0, 3, m)] + 1e-7 * rng.standard_normal((m, d))
    y[5] = y[1]
    x[9] = x[4]
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    y /= np.linalg.norm(y, axis=1, keepdims=True)
    return x.astype(np.float32), y.astype(np.float32)


@pytest.mark.parametrize("block_bytes", [None, 20 * 64 * 7])  # one block / many small blocks
def test_top1_both_near_ties_equal_knn(block_bytes, monkeypatch):
    """The near-tie path (candidates re-scored in float64, or the full exact search when more
    than 8 keys are within the bound) gives knn's answer, in one block or many."""
    import xalign.metrics._knn as K

    if block_bytes:
        monkeypatch.setattr(K, "_BLOCK_BYTES", block_bytes)
    x, y = _near_tied(120, 64, 24, seed=5)
    fi, bi = top1_both_matches_knn(x, y)
    assert 5 not in set(fi.tolist()) and 9 not in set(bi.tolist())  # duplicates: lower index
    # cosine rows (what tatoeba_accuracy uses): these rows differ by float32 rounding, so
    # their cosines differ by float64 rounding only; the result is a float64 argmax up to that,
    # and exact duplicates still go to the lower index (tests/metrics/test_exact_cosine.py
    # checks the cosine path on separable nearly parallel rows)
    from xalign.metrics._retrieval import _unit_rows

    ui, _, ub, _ = K.top1_both_rows(_unit_rows(x, "x"), _unit_rows(y, "y"), scores=False)
    cos = unit64(x) @ unit64(y).T
    for got, c in ((ui, cos), (ub, cos.T)):
        assert (c[np.arange(len(c)), got] >= c.max(1) - 1e-13).all()
    assert 5 not in set(ui.tolist()) and 9 not in set(ub.tolist())


def test_top1_rows_takes_both_near_tie_routes():
    """Count the routes on near-tied data: some rows decided by float64 scores of the few keys
    in the float32 window, some sent to the float64 search; each agrees with a float64 argmax
    (lowest index on ties)."""
    import xalign.metrics._knn as K

    rng = np.random.default_rng(7)
    d = 24
    base = rng.standard_normal((3, d))
    # keys: 80 within rounding of base 0 (> _FEW candidates), 3 within rounding of base 1
    # (few candidates), 17 spread around base 2 (clear winners)
    scale = np.r_[np.full(80, 1e-8), np.full(3, 1e-8), np.full(17, 1e-2)]
    which = np.r_[np.zeros(80, int), np.ones(3, int), np.full(17, 2)]
    y = base[which] + scale[:, None] * rng.standard_normal((100, d))
    x = base[rng.integers(0, 3, 60)] + 1e-3 * rng.standard_normal((60, d))
    x = (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)
    y = (y / np.linalg.norm(y, axis=1, keepdims=True)).astype(np.float32)
    q, keys = K._as_rows(x, "x"), K._as_rows(y, "y")
    S = x @ y.T
    tol = K._tol(q, keys)
    calls = []
    real = K._exact_search
    K._exact_search = lambda *a, **kw: calls.append(len(a[1])) or real(*a, **kw)
    try:
        got = K._top1_rows(S.copy(), q, slice(None), keys, tol)
    finally:
        K._exact_search = real
    ref = x.astype(np.float64) @ y.astype(np.float64).T
    np.testing.assert_array_equal(got, ref.argmax(1))
    v = np.sort(S, axis=1)
    unsure = ~(v[:, -1].astype(np.float64) - v[:, -2] > 2 * tol)
    many = ((v[:, -1].astype(np.float64) - 2 * tol)[:, None] <= S).sum(1) > K._FEW
    assert unsure.sum() > many.sum() > 0  # both routes are exercised
    assert calls == [int(many.sum())]


def test_top1_rows_lean_route_matches_float64_and_maps_rows():
    """A block with at most ``_LEAN`` unsure rows is decided row by row: the same answers as
    a float64 argmax, for both kinds of unsure row (few keys in the window, or more than
    ``_FEW``), and each block row is scored as the query row it stands for (a block given as
    an offset slice or as row indices)."""
    import xalign.metrics._knn as K

    rng = np.random.default_rng(11)
    d = 24
    base = rng.standard_normal((3, d))
    scale = np.r_[np.full(80, 1e-8), np.full(3, 1e-8), np.full(17, 1e-2)]
    which = np.r_[np.zeros(80, int), np.ones(3, int), np.full(17, 2)]
    y = base[which] + scale[:, None] * rng.standard_normal((100, d))
    # queries: one near base 0 (> _FEW keys in its window), two near base 1, clear ones near 2
    x = base[[2, 2, 0, 2, 1, 2, 1, 2]] + 1e-3 * rng.standard_normal((8, d))
    x = (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)
    y = (y / np.linalg.norm(y, axis=1, keepdims=True)).astype(np.float32)
    q, keys = K._as_rows(x, "x"), K._as_rows(y, "y")
    ref = (x.astype(np.float64) @ y.astype(np.float64).T).argmax(1)
    lean, vec = K._top1_rows_lean, K._top1_rows
    taken = []
    K._top1_rows_lean = lambda *a: taken.append(len(a[-1])) or lean(*a)
    try:
        for qi in (slice(None), slice(2, 7), np.array([6, 2, 4, 0])):
            rows = np.arange(8)[qi]
            S = x[rows] @ y.T
            tol = K._tol(q, keys)[rows]
            got = vec(S.copy(), q, qi, keys, tol)
            np.testing.assert_array_equal(got, ref[rows])
    finally:
        K._top1_rows_lean = lean
    assert taken == [3, 3, 3]  # rows 2, 4, 6 are unsure in every block; the lean route ran


@pytest.mark.parametrize("n_gpus", [1, 3])
def test_faiss_gpu_key_sharding_identical_to_numpy(n_gpus, fake_faiss_gpu, tied_data, random_data):
    """The multi-GPU path (keys split over devices, candidates merged) run on CPU through a
    fake faiss: same indices as numpy, every device used, memory limits passed on."""
    import xalign.metrics._knn as K

    calls = fake_faiss_gpu(n_gpus)
    try:
        assert select_backend("auto") == "faiss-gpu"
        for q, keys in (tied_data, random_data):
            sn, inp = knn(q, keys, k=10, backend="numpy")
            sg, ig = knn(q, keys, k=10, backend="faiss-gpu", gpu_memory=2**20)
            np.testing.assert_array_equal(inp, ig)
            np.testing.assert_allclose(sn, sg, rtol=1e-6)
        searches = [c for c in calls if c[0] != "temp"]
        devices = {c[0] for c in searches}
        assert devices == ({-1} if n_gpus == 1 else set(range(n_gpus)))
        if n_gpus > 1:  # each query block searched every shard once: shard sizes add up
            assert sum(c[1] for c in searches[:n_gpus]) in (400, 500)
        assert all(
            c[2] == {"vectorsMemoryLimit": 2**20, "queriesMemoryLimit": 2**20} for c in searches
        )
    finally:
        K._gpu_resources.cache_clear()


def test_merge_shard_candidates_keeps_the_global_best():
    from xalign.metrics._knn import _candidates_numpy, merge_shard_candidates

    rng = np.random.default_rng(2)
    q, keys = unit(rng.normal(size=(50, 16))), unit(rng.normal(size=(90, 16)))
    parts = []
    for lo, hi in ((0, 30), (30, 31), (31, 90)):
        s, i = _candidates_numpy(q, keys[lo:hi], min(6, hi - lo), 64)
        parts.append((s, i + lo))
    s, i = merge_shard_candidates(parts, 6)
    full = q @ keys.T
    want = np.sort(np.argsort(-full, axis=1)[:, :6], axis=1)
    np.testing.assert_array_equal(np.sort(i, axis=1), want)
    np.testing.assert_allclose(s, np.take_along_axis(full, i, axis=1), rtol=1e-5, atol=1e-6)
