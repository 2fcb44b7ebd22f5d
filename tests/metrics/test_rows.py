from __future__ import annotations

import numpy as np
import pytest

from xalign.errors import ConfigError, DataError
from xalign.metrics._rows import normalize_rows

X = np.array([[3.0, 4.0], [0.0, 0.0], [1.0, 0.0]])


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_unit_norms_and_dtype(dtype):
    out = normalize_rows(X[[0, 2]], zero="raise", dtype=dtype)
    assert out.dtype == dtype
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, rtol=1e-6)
    np.testing.assert_allclose(out[0], [0.6, 0.8], rtol=1e-6)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_zero_row_keep(dtype):
    out = normalize_rows(X, zero="keep", dtype=dtype)
    assert out[1].tolist() == [0.0, 0.0]
    np.testing.assert_allclose(out[0], [0.6, 0.8], rtol=1e-6)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_zero_row_nan(dtype):
    out = normalize_rows(X, zero="nan", dtype=dtype)
    assert np.isnan(out[1]).all()
    assert np.isfinite(out[[0, 2]]).all()


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_zero_row_raise_names_the_row(dtype):
    with pytest.raises(DataError, match="src: row 1 has zero norm after centring; cosine"):
        normalize_rows(X, zero="raise", what="src", note=" after centring", dtype=dtype)


def test_input_not_modified_and_bad_policy():
    x = X.copy()
    normalize_rows(x, zero="keep")
    assert np.array_equal(x, X)
    with pytest.raises(ConfigError, match="zero 'drop': allowed values are raise, keep, nan"):
        normalize_rows(X, zero="drop")  # type: ignore[arg-type]
    with pytest.raises(DataError, match="2-D"):
        normalize_rows(np.ones(3), zero="keep")


def test_float32_path_finds_non_finite_rows():
    bad = np.array([[1.0, 0.0], [np.nan, 1.0]], dtype=np.float32)
    with pytest.raises(DataError, match="tgt: row 1 contains NaN or infinity"):
        normalize_rows(bad, zero="raise", what="tgt", dtype=np.float32)
    big = np.full((1, 4), 1e20, dtype=np.float32)  # float32 sum of squares overflows
    np.testing.assert_allclose(normalize_rows(big, zero="raise", dtype=np.float32), 0.5)


def test_callers_keep_their_zero_row_policies():
    from xalign.metrics._clusters import _unit_rows as clusters_unit
    from xalign.metrics._isotropy import mean_random_cosine
    from xalign.metrics._retrieval import _unit_rows as retrieval_unit

    assert clusters_unit(X)[1].tolist() == [0.0, 0.0]  # keep
    # isotropy keeps zero rows too: cosine 0 with everything
    assert mean_random_cosine([[1.0, 0.0], [0.0, 0.0], [1.0, 0.0]]) == pytest.approx(1 / 3)
    with pytest.raises(DataError, match="x: row 1 has zero norm; cosine is undefined"):
        retrieval_unit(X, "x")
    with pytest.raises(DataError, match="x: row 0 has zero norm after centring"):
        retrieval_unit(np.ones((2, 3)), "x", center=True)


@pytest.mark.parametrize(
    "vecdot",
    [
        pytest.param(True, marks=pytest.mark.skipif(not hasattr(np, "vecdot"), reason="numpy < 2")),
        False,
    ],
)
def test_float32_norms_with_and_without_vecdot_quietly(vecdot, monkeypatch):
    """``float32_norms`` uses ``np.vecdot`` (numpy >= 2) or ``einsum``: the same norms up to
    float32 summation order, and no RuntimeWarning when a float32 sum of squares overflows
    (normalize_rows then takes float64 sums for that row)."""
    import warnings

    import xalign.metrics._rows as rows

    if not vecdot:
        monkeypatch.setattr(rows, "_VECDOT", None)
    x = np.random.default_rng(0).standard_normal((50, 384)).astype(np.float32)
    ref = np.linalg.norm(x.astype(np.float64), axis=1)
    got = rows.float32_norms(x)
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, ref, rtol=384 * 2.0**-24)
    big = np.full((2, 4), 1e20, dtype=np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert np.isinf(rows.float32_norms(big)).all()
        np.testing.assert_allclose(normalize_rows(big, zero="raise", dtype=np.float32), 0.5)
