from __future__ import annotations

import numpy as np
import pytest

from xalign.errors import ConfigError, DataError, XAlignError
from xalign.metrics._centering import LanguageCenterer, center_by_language
from xalign.metrics._checks import (
    check_choice,
    check_finite,
    check_groups,
    check_labels,
    check_min_per_label,
)


@pytest.fixture
def data():
    rng = np.random.default_rng(1)
    langs = np.array(["en"] * 7 + ["de"] * 5 + ["sw"] * 9)
    rng.shuffle(langs)
    offsets = {"en": 3.0, "de": -2.0, "sw": 10.0}
    X = rng.normal(size=(langs.size, 6)) + np.array([offsets[v] for v in langs])[:, None]
    return X, langs


def test_means_match_numpy_per_language(data):
    X, langs = data
    c = LanguageCenterer().fit(X, langs)
    assert c.languages_ == list(dict.fromkeys(langs))
    for k, lang in enumerate(c.languages_):
        np.testing.assert_allclose(c.means_[k], X[langs == lang].mean(axis=0), rtol=1e-12)
        assert c.counts_[k] == (langs == lang).sum()
    assert c.n_features_in_ == 6


def test_transform_subtracts_own_centroid_and_centroids_become_zero(data):
    X, langs = data
    out = center_by_language(X, langs)
    expected = X.copy()
    for lang in set(langs):
        expected[langs == lang] -= X[langs == lang].mean(axis=0)
    np.testing.assert_allclose(out, expected, atol=1e-12)
    for lang in set(langs):
        np.testing.assert_allclose(out[langs == lang].mean(axis=0), 0.0, atol=1e-12)
    # the input is untouched
    assert not np.allclose(X, out)


def test_transform_new_rows_uses_fitted_centroids(data):
    X, langs = data
    c = LanguageCenterer().fit(X, langs)
    Xnew = np.ones((2, 6))
    out = c.transform(Xnew, ["de", "sw"])
    np.testing.assert_allclose(out[0], 1.0 - X[langs == "de"].mean(axis=0))
    np.testing.assert_allclose(out[1], 1.0 - X[langs == "sw"].mean(axis=0))


def test_hand_worked_two_languages_of_two_points():
    # en: (1, 0), (3, 0) -> centroid (2, 0); de: (0, 5), (0, 7) -> centroid (0, 6)
    X = [[1.0, 0.0], [3.0, 0.0], [0.0, 5.0], [0.0, 7.0]]
    out = center_by_language(X, ["en", "en", "de", "de"])
    assert out.tolist() == [[-1.0, 0.0], [1.0, 0.0], [0.0, -1.0], [0.0, 1.0]]


def test_unseen_language_is_named():
    c = LanguageCenterer().fit([[0.0], [1.0]], ["en", "en"])
    with pytest.raises(DataError, match="'fr'") as exc:
        c.transform([[0.0], [1.0]], ["en", "fr"])
    assert isinstance(exc.value, ValueError)
    assert "en" in str(exc.value)


def test_float16_promoted_and_float32_kept():
    X = np.arange(8, dtype=np.float16).reshape(4, 2)
    out = center_by_language(X, ["a", "a", "b", "b"])
    assert out.dtype == np.float32
    out32 = center_by_language(X.astype(np.float32), ["a", "a", "b", "b"])
    assert out32.dtype == np.float32
    np.testing.assert_allclose(out32, [[-1, -1], [1, 1], [-1, -1], [1, 1]])


def test_feature_mismatch_and_unfitted():
    c = LanguageCenterer()
    with pytest.raises(DataError, match="not fitted"):
        c.transform([[0.0]], ["en"])
    c.fit([[0.0, 1.0]], ["en"])
    with pytest.raises(DataError, match="3 features"):
        c.transform([[0.0, 1.0, 2.0]], ["en"])


def test_sklearn_protocol():
    c = LanguageCenterer()
    assert c.get_params() == {}
    assert c.set_params() is c
    assert c.fit([[1.0]], ["en"]) is c
    with pytest.raises(TypeError):
        c.set_params(copy=False)


def test_check_finite_lists_rows_and_ids():
    X = np.zeros((6, 3))
    X[1, 2] = np.nan
    X[4, 0] = np.inf
    with pytest.raises(DataError, match=r"2 row\(s\): 1, 4"):
        check_finite(X)
    with pytest.raises(DataError, match="'s1', 's4'"):
        check_finite(X, ids=[f"s{i}" for i in range(6)])
    with pytest.raises(DataError, match="layer 7"):
        check_finite(X, what="layer 7")


def test_check_finite_many_bad_rows_truncated():
    X = np.full((30, 2), np.nan)
    with pytest.raises(DataError, match=r"30 row.*and 20 more"):
        check_finite(X)


@pytest.mark.parametrize("bad", [np.zeros(3), np.zeros((0, 3)), np.zeros((2, 0)), [["a", "b"]]])
def test_check_finite_shape_and_dtype(bad):
    with pytest.raises(DataError):
        check_finite(bad)


def test_center_rejects_nan_rows():
    with pytest.raises(DataError, match=r"row\(s\): 2"):
        center_by_language([[0.0], [1.0], [np.nan]], ["a", "a", "b"])


def test_label_checks():
    with pytest.raises(DataError, match="expected 3 labels"):
        check_labels(["a", "b"], 3)
    with pytest.raises(DataError, match="missing label"):
        check_labels(["a", None], 2)
    assert check_groups(["x", np.nan, None], 3).tolist() == ["x", None, None]
    with pytest.raises(DataError, match="language 'b' has 1 row"):
        check_min_per_label(np.array(["a", "a", "b"]), 2)
    with pytest.raises(ConfigError, match="allowed values are cosine, euclidean"):
        check_choice("manhattan", ("cosine", "euclidean"), name="metric")
    assert issubclass(ConfigError, XAlignError)
