from __future__ import annotations

import warnings

import numpy as np
import pytest

from xalign.errors import DataError
from xalign.metrics._similarity import cka_between_languages, cka_matrix, linear_cka
from xalign.metrics._tidy import RESULT_COLUMNS


def _hsic_biased(K, L):
    n = K.shape[0]
    H = np.eye(n) - np.ones((n, n)) / n
    return np.trace(K @ H @ L @ H) / (n - 1) ** 2


def _hsic_unbiased(K, L):
    """Song et al. (2012) HSIC_1, written out from metrics.md B.7 on n x n Gram matrices."""
    n = K.shape[0]
    Kt, Lt = K.copy(), L.copy()
    np.fill_diagonal(Kt, 0.0)
    np.fill_diagonal(Lt, 0.0)
    one = np.ones(n)
    return (
        np.trace(Kt @ Lt)
        + (one @ Kt @ one) * (one @ Lt @ one) / ((n - 1) * (n - 2))
        - 2.0 / (n - 2) * (one @ Kt @ Lt @ one)
    ) / (n * (n - 3))


def _cka_reference(X, Y, hsic, center_features=False):
    if center_features:
        X = X - X.mean(0)
        Y = Y - Y.mean(0)
    K, L = X @ X.T, Y @ Y.T
    return hsic(K, L) / np.sqrt(hsic(K, K) * hsic(L, L))


@pytest.fixture(scope="module")
def pair():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 6)) + 3.0  # a mean offset: centring matters
    Y = X[:, :4] @ rng.normal(size=(4, 5)) + 0.5 * rng.normal(size=(40, 5))
    return X, Y


def test_equals_nxn_hsic_reference(pair):
    X, Y = pair
    assert linear_cka(X, Y) == pytest.approx(_cka_reference(X, Y, _hsic_biased), rel=1e-10)


def test_debiased_equals_nxn_reference(pair):
    X, Y = pair
    # Kornblith et al. centre the features before the unbiased estimator
    ref = _cka_reference(X, Y, _hsic_unbiased, center_features=True)
    assert linear_cka(X, Y, debiased=True) == pytest.approx(ref, rel=1e-10)
    assert linear_cka(X, Y, debiased=True) != pytest.approx(linear_cka(X, Y), rel=1e-3)


def test_self_similarity_rotation_scaling_symmetry(pair):
    X, Y = pair
    rng = np.random.default_rng(1)
    Q, _ = np.linalg.qr(rng.normal(size=(6, 6)))
    for debiased in (False, True):
        assert linear_cka(X, X, debiased=debiased) == pytest.approx(1.0, abs=1e-12)
        base = linear_cka(X, Y, debiased=debiased)
        assert linear_cka(X @ Q, Y, debiased=debiased) == pytest.approx(base, rel=1e-10)
        assert linear_cka(7.5 * X, 0.01 * Y, debiased=debiased) == pytest.approx(base, rel=1e-10)
        assert linear_cka(Y, X, debiased=debiased) == pytest.approx(base, rel=1e-12)
    # not invariant to a general (non-orthogonal) invertible map
    A = np.diag([10.0, 1, 1, 1, 1, 0.1])
    assert linear_cka(X @ A, Y) != pytest.approx(linear_cka(X, Y), rel=1e-3)


def test_range_and_debiasing_removes_high_dimensional_bias():
    rng = np.random.default_rng(2)
    values = [linear_cka(rng.normal(size=(30, 5)), rng.normal(size=(30, 7))) for _ in range(20)]
    assert all(0.0 <= v <= 1.0 for v in values)
    # independent data with p >> n: biased CKA is large, debiased CKA is near 0
    X, Y = rng.normal(size=(40, 400)), rng.normal(size=(40, 400))
    assert linear_cka(X, Y) > 0.5
    assert abs(linear_cka(X, Y, debiased=True)) < 0.05


def test_float16_input_and_errors(pair):
    X, Y = pair
    assert linear_cka(X.astype(np.float16), Y) == pytest.approx(linear_cka(X, Y), rel=1e-3)
    with pytest.raises(DataError, match="paired rows"):
        linear_cka(X, Y[:-1])
    with pytest.raises(DataError, match="at least 4"):
        linear_cka(X[:3], Y[:3], debiased=True)
    bad = X.copy()
    bad[5, 0] = np.nan
    with pytest.raises(DataError, match=r"X: non-finite.*: 5"):
        linear_cka(bad, Y)
    assert np.isnan(linear_cka(np.ones((5, 3)), Y[:5]))


@pytest.fixture(scope="module")
def layers():
    rng = np.random.default_rng(3)
    h = [rng.normal(size=(30, 8))]
    for _ in range(3):
        h.append(np.tanh(h[-1] @ rng.normal(size=(8, 8)) / 3) + 0.2 * rng.normal(size=(30, 8)))
    other = [x @ np.linalg.qr(rng.normal(size=(8, 8)))[0] + 0.5 for x in h[::-1]]
    return np.stack(h), np.stack(other)


@pytest.mark.parametrize("debiased", [False, True])
def test_cka_matrix_equals_loop(layers, debiased):
    A, B = layers
    M = cka_matrix(list(A), list(B), debiased=debiased)
    loop = np.array([[linear_cka(a, b, debiased=debiased) for b in B] for a in A])
    np.testing.assert_allclose(M, loop, rtol=1e-10)
    # 3-D inputs, in [L, n, p] and in the store layout [n, L, p]
    np.testing.assert_allclose(cka_matrix(A, B, debiased=debiased), loop, rtol=1e-10)
    np.testing.assert_allclose(
        cka_matrix(A.transpose(1, 0, 2), B.transpose(1, 0, 2), layer_axis=1, debiased=debiased),
        loop,
        rtol=1e-10,
    )


def test_cka_matrix_within_one_model_is_symmetric(layers):
    A, _ = layers
    M = cka_matrix(A)
    np.testing.assert_allclose(M, M.T)
    np.testing.assert_allclose(np.diag(M), 1.0)
    np.testing.assert_allclose(M, cka_matrix(A, A.copy()), rtol=1e-12)
    assert M[0, 1] > M[0, 3]  # similarity decays with layer distance in this chain


def test_cka_matrix_row_mismatch(layers):
    A, B = layers
    with pytest.raises(DataError, match="rows"):
        cka_matrix(list(A), [B[0][:-1]])


def test_cka_between_languages_pairs_rows_by_group():
    rng = np.random.default_rng(4)
    n = 25
    en = rng.normal(size=(n, 6))
    de = en @ np.linalg.qr(rng.normal(size=(6, 6)))[0] + 0.3 * rng.normal(size=(n, 6))
    fr = rng.normal(size=(n, 6))
    X = np.vstack([en, de, fr])
    langs = np.array(["en"] * n + ["de"] * n + ["fr"] * n, dtype=object)
    groups = np.array([f"g{i}" for i in range(n)] * 3, dtype=object)
    perm = rng.permutation(3 * n)  # scramble row order: pairing must follow groups
    df = cka_between_languages(X[perm], langs[perm], groups[perm])
    assert tuple(df.columns) == RESULT_COLUMNS
    got = {(r.lang, r.lang2): r.value for r in df.itertuples()}
    expected = {("en", "de"): linear_cka(en, de), ("en", "fr"): linear_cka(en, fr)}
    expected[("de", "fr")] = linear_cka(de, fr)
    assert {frozenset(k) for k in got} == {frozenset(k) for k in expected}
    for (a, b), v in got.items():
        ref = expected.get((a, b), expected.get((b, a)))
        assert v == pytest.approx(ref, rel=1e-10)
    assert df.n.eq(n).all()
    assert got.get(("en", "de"), got.get(("de", "en"))) > 0.8
    dd = cka_between_languages(X, langs, groups, debiased=True, pairs=[("en", "de")])
    assert dd.metric.item() == "cka_debiased"
    assert dd.value.item() == pytest.approx(linear_cka(en, de, debiased=True), rel=1e-10)


def test_cka_between_languages_missing_pairs():
    rng = np.random.default_rng(5)
    X = rng.normal(size=(9, 3))
    langs = ["en"] * 3 + ["de"] * 3 + ["fr"] * 3
    groups = ["a", "b", "c", "a", "b", "c", "a", None, None]
    with pytest.warns(UserWarning, match="en-fr"):
        df = cka_between_languages(X, langs, groups)
    assert [(r.lang, r.lang2) for r in df.itertuples()] == [("en", "de")]
    with pytest.raises(DataError, match="'en' and 'fr' share 1"):
        cka_between_languages(X, langs, groups, pairs=[("en", "fr")])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(DataError, match="at least 4"):
            cka_between_languages(X, langs, groups, debiased=True)


def test_cka_between_languages_equals_linear_cka_per_pair():
    from xalign.metrics._similarity import cka_between_languages, linear_cka

    rng = np.random.default_rng(9)
    langs = np.repeat(["en", "de", "fr"], 12).astype(object)
    groups = np.array([f"g{i}" for i in range(12)] * 3, dtype=object)
    groups[30] = "only-fr"  # fr shares 11 groups with the others: different rows per pair
    X = rng.normal(size=(36, 5))
    for debiased in (False, True):
        df = cka_between_languages(X, langs, groups, debiased=debiased)
        for r in df.itertuples():
            ia = [
                i
                for i in range(36)
                if langs[i] == r.lang and groups[i] in set(groups[langs == r.lang2])
            ]
            ib = [
                next(j for j in range(36) if langs[j] == r.lang2 and groups[j] == groups[i])
                for i in ia
            ]
            assert r.value == linear_cka(X[ia], X[ib], debiased=debiased)


def test_cka_block_replicates_equal_the_cka_of_the_rows_drawn():
    """Each replicate computed from per-block sums equals linear_cka of its rows (each block's
    rows repeated as often as the block was drawn), on data far from the origin."""
    from xalign.metrics._similarity import _block_replicates

    rng = np.random.default_rng(4)
    n, G = 90, 7
    X = rng.normal(size=(n, 6)) + 40.0
    Y = X @ rng.normal(size=(6, 5)) + rng.normal(size=(n, 5)) - 25.0
    block = rng.integers(0, G, n)
    block[:G] = np.arange(G)  # every block has rows
    draws = rng.multinomial(G, np.full(G, 1 / G), size=25)
    got = _block_replicates(X, Y, block, draws)
    for r, c in enumerate(draws):
        rows = np.concatenate([np.repeat(np.flatnonzero(block == b), k) for b, k in enumerate(c)])
        assert got[r] == pytest.approx(linear_cka(X[rows], Y[rows]), rel=1e-9, abs=1e-12)


def test_cka_block_bootstrap_interval_matches_the_sampling_spread():
    """Over 150 samples from one distribution, the bootstrap interval's width (over 2 × 1.96)
    is close to the true spread of CKA between samples, and the interval covers the
    population value most of the time; units keep their rows in one block."""
    from xalign.metrics._similarity import cka_block_bootstrap

    rng = np.random.default_rng(0)
    W = rng.normal(size=(5, 4))
    vals, widths, cover = [], [], 0
    big = rng.normal(size=(200_000, 5))
    truth = linear_cka(big, big @ W + 1.5 * np.random.default_rng(1).normal(size=(200_000, 4)))
    for s in range(150):
        r = np.random.default_rng(100 + s)
        X = r.normal(size=(240, 5))
        Y = X @ W + 1.5 * r.normal(size=(240, 4))
        lo, hi, G = cka_block_bootstrap(X, Y, n_boot=300, seed=s)
        assert G == 64 and lo <= linear_cka(X, Y) <= hi
        vals.append(linear_cka(X, Y))
        widths.append((hi - lo) / (2 * 1.96))
        cover += lo <= truth <= hi
    ratio = np.mean(widths) / np.std(vals, ddof=1)
    assert 0.75 < ratio < 1.3, ratio
    assert cover >= 0.85 * 150, cover
    # units: 240 rows in 12 units of 20 -> 12 blocks; the same seed gives the same interval
    units = np.repeat(np.arange(12), 20)
    a = cka_block_bootstrap(X, Y, units=units, n_boot=300, seed=5)
    assert a == cka_block_bootstrap(X, Y, units=units, n_boot=300, seed=5) and a[2] == 12
    with pytest.raises(DataError, match="at least 2 units"):
        cka_block_bootstrap(X, Y, units=np.zeros(240), n_boot=10)
