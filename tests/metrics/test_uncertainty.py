from __future__ import annotations

import numpy as np
import pytest

from xalign.errors import ConfigError, DataError
from xalign.metrics._uncertainty import bootstrap_ci, bootstrap_distribution


def test_distribution_equals_explicit_resampling():
    # For a small n the replicates come from one block of rng.integers(0, n, (n_boot, n)).
    values = np.array([0.2, 1.5, -0.3, 4.0, 2.2, 0.0, 1.0])
    reps = bootstrap_distribution(values, n_boot=50, seed=7)
    rng = np.random.default_rng(7)
    idx = rng.integers(0, values.size, size=(50, values.size))
    expected = np.array([values[row].mean() for row in idx])
    np.testing.assert_allclose(reps, expected, rtol=1e-12)


def test_ci_is_percentile_of_distribution():
    values = np.random.default_rng(0).normal(size=60)
    reps = bootstrap_distribution(values, n_boot=400, seed=3)
    lo, hi = bootstrap_ci(values, n_boot=400, seed=3, alpha=0.1)
    assert (lo, hi) == tuple(np.quantile(reps, [0.05, 0.95]))


def test_reproducible_by_seed_and_seed_matters():
    values = np.random.default_rng(0).integers(0, 2, size=500)
    assert bootstrap_ci(values, seed=11) == bootstrap_ci(values, seed=11)
    assert bootstrap_ci(values, seed=11) != bootstrap_ci(values, seed=12)


def test_large_n_uses_blocks_and_stays_reproducible():
    values = np.random.default_rng(0).integers(0, 2, size=50_000).astype(float)
    a = bootstrap_distribution(values, n_boot=200, seed=1)
    b = bootstrap_distribution(values, n_boot=200, seed=1)
    np.testing.assert_array_equal(a, b)
    # the sd of a bootstrap mean of n Bernoulli(p) values is about sqrt(p(1-p)/n)
    assert a.std() == pytest.approx(np.sqrt(0.25 / 50_000), rel=0.2)


def test_ci_contains_point_estimate():
    rng = np.random.default_rng(5)
    for p in (0.1, 0.5, 0.9):
        values = rng.binomial(1, p, size=300)
        lo, hi = bootstrap_ci(values, seed=int(p * 10))
        assert lo <= values.mean() <= hi
        assert lo < hi


def test_coverage_on_known_bernoulli():
    # 95 % percentile intervals for a Bernoulli(0.3) mean, n = 200, should cover 0.3 about
    # 95 % of the time; 300 data sets put the empirical rate within ~0.90-0.98.
    rng = np.random.default_rng(2024)
    p, hits, trials = 0.3, 0, 300
    for t in range(trials):
        lo, hi = bootstrap_ci(rng.binomial(1, p, size=200), n_boot=400, seed=t)
        hits += lo <= p <= hi
    assert 0.90 <= hits / trials <= 0.98


def test_median_statistic_and_constant_input():
    values = np.array([1.0, 2.0, 3.0, 100.0, 4.0])
    lo, hi = bootstrap_ci(values, statistic=np.median, n_boot=300)
    assert 1.0 <= lo <= np.median(values) <= hi <= 100.0
    assert bootstrap_ci([1, 1, 1, 1]) == (1.0, 1.0)


@pytest.mark.parametrize(
    ("kwargs", "exc"),
    [
        ({"values": []}, DataError),
        ({"values": [1.0, np.nan]}, DataError),
        ({"values": [[1.0, 2.0]]}, DataError),
        ({"values": [1.0], "alpha": 1.5}, ConfigError),
        ({"values": [1.0], "n_boot": 0}, ConfigError),
    ],
)
def test_bad_input(kwargs, exc):
    values = kwargs.pop("values")
    with pytest.raises(exc):
        bootstrap_ci(values, **kwargs)


@pytest.mark.parametrize("kind", ["01", "signs", "float"])
@pytest.mark.parametrize("n", [1, 5, 250, 3001])
def test_counting_path_gives_the_gathered_means_bit_for_bit(kind, n):
    from xalign.metrics._uncertainty import _resample_indices

    rng = np.random.default_rng(n)
    values = {
        "01": (rng.random(n) < 0.7).astype(float),
        "signs": rng.integers(-1, 2, size=n).astype(float),
        "float": rng.random(n),
    }[kind]
    reps = bootstrap_distribution(values, n_boot=700, seed=5)
    ref = np.concatenate([values[idx].mean(axis=-1) for idx in _resample_indices(n, 700, 5)])
    np.testing.assert_array_equal(reps, ref)
