from __future__ import annotations

import json

import numpy as np
import pytest

from xalign.errors import ConfigError, DataError
from xalign.metrics._centering import center_by_language
from xalign.metrics._isotropy import isotropy_metrics, mean_random_cosine, partition_isotropy
from xalign.metrics._tidy import RESULT_COLUMNS


def _brute_mean_cosine(X):
    U = X / np.linalg.norm(X, axis=1, keepdims=True)
    C = U @ U.T
    n = len(X)
    return (C.sum() - np.trace(C)) / (n * (n - 1))


def _brute_partition(X):
    _, vecs = np.linalg.eigh(X.T @ X)
    z = [np.exp(X @ (s * vecs[:, k])).sum() for k in range(X.shape[1]) for s in (1, -1)]
    return min(z) / max(z)


def test_mean_cosine_exact_equals_all_pairs():
    rng = np.random.default_rng(0)
    for shift in (0.0, 2.0):
        X = rng.normal(size=(57, 9)) + shift
        assert mean_random_cosine(X) == pytest.approx(_brute_mean_cosine(X), abs=1e-12)


def test_mean_cosine_hand_worked_and_extremes():
    # (1, 0), (0, 1), (1, 1): cosines 0, 1/sqrt 2, 1/sqrt 2 -> mean sqrt(2) / 3
    assert mean_random_cosine([[1, 0], [0, 1], [1, 1]]) == pytest.approx(np.sqrt(2) / 3)
    assert mean_random_cosine(np.tile([[1.0, 2.0]], (5, 1))) == pytest.approx(1.0)
    # two opposite vectors: the minimum -1/(n-1) = -1
    assert mean_random_cosine([[1.0, 0.0], [-3.0, 0.0]]) == pytest.approx(-1.0)
    # an all-zero row counts as cosine 0 with everything
    assert mean_random_cosine([[1.0, 0.0], [1.0, 0.0], [0.0, 0.0]]) == pytest.approx(2 / 6)


def test_mean_cosine_sampled_is_seeded_and_close():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(300, 5)) + 1.0
    a = mean_random_cosine(X, n_pairs=20_000, seed=4)
    assert a == mean_random_cosine(X, n_pairs=20_000, seed=4)
    assert a != mean_random_cosine(X, n_pairs=20_000, seed=5)
    assert a == pytest.approx(mean_random_cosine(X), abs=0.02)
    # sampled pairs never pair a row with itself: 2 rows -> always the one cross pair
    assert mean_random_cosine([[1.0, 0.0], [0.0, 1.0]], n_pairs=50) == 0.0


def test_mean_cosine_errors():
    with pytest.raises(DataError, match="at least 2 rows"):
        mean_random_cosine([[1.0, 2.0]])
    with pytest.raises(ConfigError, match="n_pairs=0"):
        mean_random_cosine([[1.0], [2.0]], n_pairs=0)


def test_partition_isotropy_equals_reference_and_hand_example():
    rng = np.random.default_rng(2)
    X = rng.normal(size=(200, 6)) * np.array([1, 1, 2, 1, 0.5, 1]) + 0.3
    assert partition_isotropy(X) == pytest.approx(_brute_partition(X), rel=1e-10)
    # (1, 0), (-1, 0): Z(+-e1) = e + 1/e, Z(+-e2) = 2
    assert partition_isotropy([[1, 0], [-1, 0]]) == pytest.approx(2 / (np.e + 1 / np.e))


def test_partition_isotropy_isotropic_vs_anisotropic():
    rng = np.random.default_rng(3)
    G = rng.normal(size=(20_000, 8))
    iso = partition_isotropy(G)
    assert 0.9 < iso <= 1.0
    shifted = G + np.r_[3.0, np.zeros(7)]  # a common direction, as in contextual embeddings
    assert partition_isotropy(shifted) < 0.01
    stretched = G * np.r_[10.0, np.ones(7)]  # one dominant direction
    assert partition_isotropy(stretched) < 1e-6
    # log-sum-exp: large norms do not overflow to nan/inf
    big = partition_isotropy(G * 1000.0)
    assert 0.0 <= big <= 1.0


def test_isotropy_metrics_tidy_and_equal_to_direct_calls():
    rng = np.random.default_rng(4)
    langs = np.array(["en"] * 30 + ["de"] * 20, dtype=object)
    X = rng.normal(size=(50, 4)) + np.where(langs == "en", 2.0, -2.0)[:, None]
    df = isotropy_metrics(X, langs)
    assert tuple(df.columns) == RESULT_COLUMNS
    assert len(df) == 2 * 3 * 2  # variants x (all, en, de) x metrics
    Xc = center_by_language(X, langs)
    for r in df.itertuples():
        cen = json.loads(r.protocol)["centered"]
        data = Xc if cen else X
        rows = data if r.lang is None else data[langs == r.lang]
        fn = mean_random_cosine if r.metric == "mean_random_cosine" else partition_isotropy
        assert r.value == pytest.approx(fn(rows), rel=1e-12)
        assert r.n == len(rows)
    pooled = df[(df.metric == "mean_random_cosine") & df.lang.isna()]
    raw, centred = pooled.sort_values("protocol").value.tolist()  # false < true
    assert raw > centred  # centring removes the shared offsets


def test_isotropy_metrics_needs_two_rows_per_language():
    with pytest.raises(DataError, match="language 'de' has 1 row"):
        isotropy_metrics(np.eye(3), ["en", "en", "de"])


def _partition_isotropy_dxd(X):
    """Independent reference: eigenvectors of the d x d matrix W^T W, both signs."""
    W = np.asarray(X, dtype=np.float64)
    _, C = np.linalg.eigh(W.T @ W)
    P = W @ C
    logz = [np.log(np.exp(s * P).sum(axis=0)) for s in (1.0, -1.0)]
    logz = np.concatenate(logz)
    return float(np.exp(logz.min() - logz.max()))


@pytest.mark.parametrize("n", [3, 20, 39])
def test_partition_isotropy_fewer_rows_than_dims_matches_dxd_eigh(n):
    rng = np.random.default_rng(n)
    X = rng.normal(size=(n, 40)) * 0.3 + rng.normal(size=(1, 40)) * 0.2  # a shared offset
    assert partition_isotropy(X) == pytest.approx(_partition_isotropy_dxd(X), rel=1e-7)
    Xc = X - X.mean(axis=0)  # rank n - 1: one more null direction
    assert partition_isotropy(Xc) == pytest.approx(_partition_isotropy_dxd(Xc), rel=1e-7)
