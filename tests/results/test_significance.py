"""paired_difference against a hand example, plain numpy loops and scipy.stats."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest

from xalign.errors import ConfigError, DataError
from xalign.results import paired_difference


def test_hand_example():
    # d = [1, 2, 3]: of the 8 sign patterns only +++ and --- reach |mean| = 2
    r = paired_difference([2.0, 4.0, 6.0], [1.0, 2.0, 3.0], n_boot=500)
    assert r.mean == pytest.approx(2.0)
    assert r.p_value == pytest.approx(2 / 8)
    assert r.permutation == "exact" and r.n_perm == 8 and r.n == 3
    assert (r.n_positive, r.n_negative) == (3, 0)
    assert 1.0 <= r.ci_low <= r.mean <= r.ci_high <= 3.0


def _exact_loop(d: np.ndarray) -> float:
    obs = abs(d.mean())
    hits = 0
    for signs in itertools.product((-1.0, 1.0), repeat=len(d)):
        hits += abs(np.dot(signs, d) / len(d)) >= obs - 1e-12
    return hits / 2 ** len(d)


def test_exact_p_equals_enumeration_loop_and_scipy():
    from scipy import stats

    rng = np.random.default_rng(3)
    for n in (4, 7, 11):
        a = rng.normal(0.6, 0.05, n)
        b = a - rng.normal(0.01, 0.03, n)
        r = paired_difference(a, b, n_boot=200)
        assert r.p_value == pytest.approx(_exact_loop(a - b), abs=1e-12)
        ref = stats.permutation_test(
            (a, b),
            lambda x, y, axis: np.mean(x - y, axis=axis),
            permutation_type="samples",
            alternative="two-sided",
            n_resamples=np.inf,
        )
        assert r.p_value == pytest.approx(ref.pvalue, abs=1e-9)


def test_bootstrap_ci_equals_plain_loop_with_the_same_draws():
    rng = np.random.default_rng(0)
    a = rng.normal(0.7, 0.05, 30)
    b = rng.normal(0.68, 0.05, 30)
    r = paired_difference(a, b, n_boot=2500, seed=11)
    d = a - b
    draw = np.random.default_rng(11)
    means = []
    for s in range(0, 2500, 1000):
        k = min(1000, 2500 - s)
        idx = draw.integers(0, len(d), size=(k, len(d)))
        for row in idx:  # one resample at a time
            means.append(sum(d[i] for i in row) / len(d))
    lo, hi = np.percentile(means, [2.5, 97.5])
    assert (r.ci_low, r.ci_high) == pytest.approx((lo, hi), abs=1e-12)
    # and close to scipy's percentile bootstrap (different random draws)
    from scipy import stats

    ref = stats.bootstrap(
        (d,), np.mean, n_resamples=20_000, method="percentile", random_state=1
    ).confidence_interval
    assert r.ci_low == pytest.approx(ref.low, abs=0.004)
    assert r.ci_high == pytest.approx(ref.high, abs=0.004)


def test_monte_carlo_p_close_to_exact_and_seeded():
    rng = np.random.default_rng(5)
    d = rng.normal(0.01, 0.03, 17)  # 2^17 patterns: Monte Carlo
    r1 = paired_difference(d, np.zeros_like(d), n_perm=40_000, seed=2, n_boot=100)
    r2 = paired_difference(d, np.zeros_like(d), n_perm=40_000, seed=2, n_boot=100)
    assert r1.permutation == "monte carlo" and r1.n_perm == 40_000 and r1.seed == 2
    assert r1 == r2
    exact = _exact_loop(d)
    assert r1.p_value == pytest.approx(exact, abs=0.01)
    assert r1.p_value > 0


def test_no_difference_gives_p_one_and_strong_difference_small_p():
    a = np.linspace(0.5, 0.9, 40)
    assert paired_difference(a, a, n_boot=100, n_perm=2000).p_value == 1.0
    r = paired_difference(a + 0.05, a, n_boot=100, n_perm=2000)
    assert r.p_value == pytest.approx(1 / 2001)
    assert r.ci_low == pytest.approx(0.05) and r.ci_high == pytest.approx(0.05)


def test_dataframes_are_paired_on_units_not_order():
    a = pd.DataFrame(
        {"seed": [0, 0, 1, 1], "lang": ["de", "fr", "de", "fr"], "value": [1, 2, 3, 4.0]}
    )
    b = a.iloc[::-1].assign(value=lambda df: df["value"] - np.array([0.1, 0.2, 0.3, 0.4]))
    r = paired_difference(a, b, unit_cols=["seed", "lang"], n_boot=100)
    # b reversed: unit (1, fr) has 4 - 0.1, ... so d = [0.4, 0.3, 0.2, 0.1]
    assert r.mean == pytest.approx(0.25)
    assert r.sentence("pushpull", "finetune").startswith("pushpull − finetune = +0.2500")


def test_bad_input_one_clear_error():
    a = pd.DataFrame({"seed": [0, 1], "value": [0.1, 0.2]})
    with pytest.raises(DataError, match="without a partner"):
        paired_difference(a, a.assign(seed=[0, 2]), unit_cols=["seed"])
    with pytest.raises(DataError, match="several rows"):
        paired_difference(pd.concat([a, a]), a, unit_cols=["seed"])
    with pytest.raises(DataError, match="no column"):
        paired_difference(a, a, unit_cols=["lang"])
    with pytest.raises(ConfigError, match="unit_cols is required"):
        paired_difference(a, a)
    with pytest.raises(DataError, match="paired values"):
        paired_difference([1.0, 2.0], [1.0])
    with pytest.raises(DataError, match="NaN"):
        paired_difference([1.0, np.nan], [1.0, 2.0])
    with pytest.raises(ConfigError, match="confidence"):
        paired_difference([1.0], [2.0], confidence=95)
