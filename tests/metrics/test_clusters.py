from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
from sklearn.metrics import davies_bouldin_score, silhouette_samples, silhouette_score

from xalign.errors import ConfigError, DataError
from xalign.metrics._centering import center_by_language
from xalign.metrics._clusters import (
    _sample,
    _translation_silhouette,
    centroid_gaps,
    cluster_metrics,
    davies_bouldin,
    language_silhouette,
    per_language_silhouette,
    translation_contrast,
    translation_silhouette,
)
from xalign.metrics._tidy import RESULT_COLUMNS

# Hand-worked: en x1 = (1, 0), x2 = (0, 1); de y1 = (-1, 0), y2 = (0, -1); g1 = {x1, y1},
# g2 = {x2, y2}.
#   centroids (.5, .5) and (-.5, -.5): gap ||(1, 1)|| = sqrt 2, centroid cosine -1;
#   every point is sqrt(.5) from its centroid, so sigma = sqrt(.5), scaled gap = 2,
#   Davies-Bouldin = (sigma + sigma) / sqrt 2 = 1.
#   cosine distance 1 - cos: x1-x2 = 1, x1-y1 = 2, x1-y2 = 1, so a = 1, b = 1.5,
#   s = .5 / 1.5 = 1/3 for every point by symmetry.
#   translations: cos(x1, y1) = cos(x2, y2) = -1 -> T = -1; random cross pairs
#   cos(x1, y2) = cos(x2, y1) = 0 -> R = 0; G = -1.
#   After centring: x1c = (.5, -.5) = y2c and x2c = (-.5, .5) = y1c, so T = -1, R = 1, G = -2.
HAND_X = np.array([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [0.0, -1.0]])
HAND_LANGS = ["en", "en", "de", "de"]
HAND_GROUPS = ["g1", "g2", "g1", "g2"]


def test_hand_worked_gap():
    df = centroid_gaps(HAND_X, HAND_LANGS)
    r = df.iloc[0]
    assert (r.lang, r.lang2, r.n, r.n2) == ("en", "de", 2, 2)
    assert r.centroid_distance == pytest.approx(np.sqrt(2))
    assert r.spread == pytest.approx(np.sqrt(0.5))
    assert r.centroid_distance_scaled == pytest.approx(2.0)
    assert r.centroid_cosine == pytest.approx(-1.0)


def test_hand_worked_silhouette_db_contrast():
    assert language_silhouette(HAND_X, HAND_LANGS) == pytest.approx(1 / 3)
    assert per_language_silhouette(HAND_X, HAND_LANGS) == pytest.approx({"en": 1 / 3, "de": 1 / 3})
    assert davies_bouldin(HAND_X, HAND_LANGS) == pytest.approx(1.0)
    tc = translation_contrast(HAND_X, HAND_LANGS, HAND_GROUPS, n_boot=0).iloc[0]
    assert (tc.translation_cosine, tc.random_cosine, tc.contrast) == pytest.approx((-1, 0, -1))
    assert (tc.n, tc.n_random) == (2, 2)
    Xc = center_by_language(HAND_X, HAND_LANGS)
    tc = translation_contrast(Xc, HAND_LANGS, HAND_GROUPS, n_boot=0).iloc[0]
    assert (tc.translation_cosine, tc.random_cosine, tc.contrast) == pytest.approx((-1, 1, -2))


@pytest.fixture(scope="module")
def multi():
    """3 languages with offsets; 12 translation groups of 3 plus unpaired rows."""
    rng = np.random.default_rng(0)
    d, m = 8, 12
    meaning = rng.normal(size=(m, d))
    offsets = {"en": rng.normal(size=d), "de": rng.normal(size=d), "sw": rng.normal(size=d)}
    X, langs, groups = [], [], []
    for lang, off in offsets.items():
        for g in range(m):
            X.append(meaning[g] + off + 0.3 * rng.normal(size=d))
            langs.append(lang)
            groups.append(f"g{g}")
        for _ in range(3):
            X.append(rng.normal(size=d) + off)
            langs.append(lang)
            groups.append(None)
    perm = rng.permutation(len(X))
    return (
        np.array(X)[perm],
        np.array(langs, dtype=object)[perm],
        np.array(groups, dtype=object)[perm],
    )


def test_centroid_gaps_match_numpy(multi):
    X, langs, _ = multi
    df = centroid_gaps(X, langs)
    order = list(dict.fromkeys(langs))
    assert [(r.lang, r.lang2) for r in df.itertuples()] == [
        (order[0], order[1]),
        (order[0], order[2]),
        (order[1], order[2]),
    ]
    for r in df.itertuples():
        A, B = X[langs == r.lang], X[langs == r.lang2]
        ma, mb = A.mean(0), B.mean(0)
        sa = np.linalg.norm(A - ma, axis=1).mean()
        sb = np.linalg.norm(B - mb, axis=1).mean()
        assert r.centroid_distance == pytest.approx(np.linalg.norm(ma - mb))
        assert r.centroid_distance_scaled == pytest.approx(
            np.linalg.norm(ma - mb) / ((sa + sb) / 2)
        )
        cos = ma @ mb / np.linalg.norm(ma) / np.linalg.norm(mb)
        assert r.centroid_cosine == pytest.approx(cos)
        assert (r.n, r.n2) == (len(A), len(B))


def test_centroid_gaps_cosine_metric(multi):
    X, langs, _ = multi
    df = centroid_gaps(X, langs, metric="cosine")
    for r in df.itertuples():
        A, B = X[langs == r.lang], X[langs == r.lang2]
        ma, mb = A.mean(0), B.mean(0)
        cos = ma @ mb / np.linalg.norm(ma) / np.linalg.norm(mb)
        An = A / np.linalg.norm(A, axis=1, keepdims=True)
        sa = np.mean(1 - An @ ma / np.linalg.norm(ma))
        assert r.centroid_distance == pytest.approx(1 - cos)
        assert r.spread == pytest.approx(sa)


def test_centring_makes_gaps_zero(multi):
    X, langs, _ = multi
    df = centroid_gaps(center_by_language(X, langs), langs)
    assert np.all(df.centroid_distance < 1e-12)
    assert df.centroid_cosine.isna().all()
    df32 = centroid_gaps(center_by_language(X.astype(np.float32), langs), langs)
    assert np.all(df32.centroid_distance < 1e-5 * df32.spread)


def test_translation_contrast_matches_brute_force(multi):
    X, langs, groups = multi
    df = translation_contrast(X, langs, groups, n_boot=200)
    assert len(df) == 3
    unit = X / np.linalg.norm(X, axis=1, keepdims=True)
    for r in df.itertuples():
        ga = {g: i for i, g in enumerate(groups) if langs[i] == r.lang and g is not None}
        gb = {g: i for i, g in enumerate(groups) if langs[i] == r.lang2 and g is not None}
        shared = sorted(set(ga) & set(gb))
        trans = [unit[ga[g]] @ unit[gb[g]] for g in shared]
        rand = [unit[ga[g]] @ unit[gb[h]] for g in shared for h in shared if g != h]
        assert r.n == len(shared) == 12
        assert r.n_random == len(rand)
        assert r.translation_cosine == pytest.approx(np.mean(trans))
        assert r.random_cosine == pytest.approx(np.mean(rand))
        assert r.contrast == pytest.approx(np.mean(trans) - np.mean(rand))
        assert r.contrast > 0.3  # translations share a meaning vector
        assert r.translation_ci_low <= r.translation_cosine <= r.translation_ci_high
        assert r.contrast_ci_low <= r.contrast <= r.contrast_ci_high


def test_translation_contrast_sampled_mode(multi):
    X, langs, groups = multi
    exact = translation_contrast(X, langs, groups, n_boot=0)
    a = translation_contrast(X, langs, groups, n_random=20_000, seed=3, n_boot=100)
    b = translation_contrast(X, langs, groups, n_random=20_000, seed=3, n_boot=100)
    assert a.equals(b)
    np.testing.assert_allclose(a.random_cosine, exact.random_cosine, atol=0.02)
    assert (a.n_random == 20_000).all()
    assert np.all(a.contrast_ci_low <= a.contrast) and np.all(a.contrast <= a.contrast_ci_high)


def test_translation_contrast_missing_pairs():
    X = np.random.default_rng(0).normal(size=(7, 3))
    langs = ["en", "en", "de", "de", "fr", "fr", "fr"]
    groups = ["a", "b", "a", "b", "a", None, None]
    with pytest.warns(UserWarning, match="en-fr"):
        df = translation_contrast(X, langs, groups, n_boot=0)
    assert [(r.lang, r.lang2) for r in df.itertuples()] == [("en", "de")]
    with pytest.raises(DataError, match="'en' and 'fr' share 1"):
        translation_contrast(X, langs, groups, pairs=[("en", "fr")])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        df = translation_contrast(X, langs, groups, pairs=[("de", "en")], n_boot=0)
    assert (df.lang[0], df.lang2[0]) == ("de", "en")
    with pytest.raises(DataError, match="'xx' not in langs"):
        translation_contrast(X, langs, groups, pairs=[("en", "xx")])


def test_translation_contrast_bad_groups():
    X = np.eye(4)
    with pytest.raises(DataError, match="no parallel rows"):
        translation_contrast(X, ["en", "en", "de", "de"], ["a", "b", "c", "d"])
    with pytest.raises(DataError, match="group 'a' has two rows in language 'en'"):
        translation_contrast(X, ["en", "en", "de", "de"], ["a", "a", "a", "b"])


@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
def test_silhouettes_match_sklearn(multi, metric):
    X, langs, _ = multi
    s = language_silhouette(X, langs, metric=metric)
    assert s == pytest.approx(silhouette_score(X, langs, metric=metric))
    assert -1.0 <= s <= 1.0
    per = per_language_silhouette(X, langs, metric=metric)
    samples = silhouette_samples(X, langs, metric=metric)
    assert list(per) == list(dict.fromkeys(langs))
    for lang, v in per.items():
        assert v == pytest.approx(samples[langs == lang].mean())
    assert np.mean(samples) == pytest.approx(s)


def test_silhouette_range_on_random_labels():
    rng = np.random.default_rng(3)
    X = rng.normal(size=(60, 5))
    labels = rng.choice(["a", "b", "c"], size=60)
    s = language_silhouette(X, labels)
    assert -1.0 <= s <= 1.0
    assert abs(s) < 0.2  # no structure


def test_stratified_sample_is_proportional_and_reproducible():
    labels = np.array(["a"] * 600 + ["b"] * 300 + ["c"] * 100, dtype=object)
    idx = _sample(labels, 100, seed=0, stratified=True)
    assert idx.size == 100
    counts = {lab: int((labels[idx] == lab).sum()) for lab in "abc"}
    assert counts == {"a": 60, "b": 30, "c": 10}
    np.testing.assert_array_equal(idx, _sample(labels, 100, seed=0, stratified=True))
    assert not np.array_equal(idx, _sample(labels, 100, seed=1, stratified=True))
    tiny = np.array(["a"] * 98 + ["b"] * 2, dtype=object)
    counts = (tiny[_sample(tiny, 10, seed=0, stratified=True)] == "b").sum()
    assert counts == 2  # every label keeps >= 2 rows
    assert _sample(labels, None, 0, True) is None
    assert _sample(labels, 5000, 0, True) is None
    with pytest.raises(ConfigError, match="at least 6"):
        _sample(labels, 5, 0, True)


def test_sampled_silhouette_close_to_full(multi):
    X, langs, _ = multi
    full = language_silhouette(X, langs)
    sub = language_silhouette(X, langs, sample_size=30, seed=1)
    assert sub == language_silhouette(X, langs, sample_size=30, seed=1)
    assert abs(sub - full) < 0.15
    unstrat = language_silhouette(X, langs, sample_size=30, seed=1, stratified=False)
    assert -1 <= unstrat <= 1


def test_translation_silhouette_matches_sklearn_on_kept_rows(multi):
    X, langs, groups = multi
    groups = groups.copy()
    groups[np.flatnonzero(groups == "g0")[:2]] = None  # g0 keeps 1 row -> dropped
    keep = np.array([g is not None and g != "g0" for g in groups])
    expected = silhouette_score(X[keep], groups[keep].astype(str), metric="cosine")
    assert translation_silhouette(X, groups) == pytest.approx(expected)

    # language offsets hide the shared meaning until they are removed by centring
    groups = multi[2]
    raw = translation_silhouette(X, groups)
    assert translation_silhouette(center_by_language(X, langs), groups) > max(raw, 0) + 0.3


def test_translation_silhouette_subsamples_whole_groups(multi):
    X, _, groups = multi
    value, n = _translation_silhouette(X, groups, metric="cosine", sample_size=16, seed=0)
    assert n == 15  # groups of 3 rows: 5 whole groups fit in 16 rows
    assert value == _translation_silhouette(X, groups, metric="cosine", sample_size=16, seed=0)[0]
    with pytest.raises(DataError, match="needs >= 2 groups"):
        translation_silhouette(X[:3], ["a", "a", None])


def test_davies_bouldin_matches_sklearn_and_centred_is_nan(multi):
    X, langs, _ = multi
    assert davies_bouldin(X, langs) == pytest.approx(davies_bouldin_score(X, langs))
    assert np.isnan(davies_bouldin(center_by_language(X, langs), langs))


def test_errors_name_language_and_rows():
    X = np.random.default_rng(0).normal(size=(5, 2))
    with pytest.raises(DataError, match="language 'fr' has 1 row"):
        centroid_gaps(X, ["en", "en", "de", "de", "fr"])
    with pytest.raises(DataError, match="language 'fr' has 1 row"):
        language_silhouette(X, ["en", "en", "de", "de", "fr"])
    with pytest.raises(DataError, match="at least 2 languages"):
        centroid_gaps(X, ["en"] * 5)
    X[[1, 3]] = np.nan
    with pytest.raises(DataError, match=r"2 row\(s\): 1, 3"):
        cluster_metrics(X, ["en", "en", "de", "de", "de"])
    with pytest.raises(ConfigError, match=r"metric=? ?'l2'"):
        language_silhouette(X, ["en", "en", "de", "de", "de"], metric="l2")
    with pytest.raises(ConfigError, match=r"centered=? ?'yes'"):
        cluster_metrics(X, ["en", "en", "de", "de", "de"], centered="yes")


def test_cluster_metrics_tidy_form(multi):
    X, langs, groups = multi
    df = cluster_metrics(X, langs, groups, n_boot=100)
    assert tuple(df.columns) == RESULT_COLUMNS
    protos = df.protocol.map(json.loads)
    assert set(protos.map(lambda p: p["centered"])) == {False, True}
    raw = df[~protos.map(lambda p: p["centered"])]
    cen = df[protos.map(lambda p: p["centered"])]
    # raw numbers agree with the direct functions
    sil = raw[(raw.metric == "language_silhouette") & raw.lang.isna()]
    assert sil.value.item() == pytest.approx(language_silhouette(X, langs))
    assert sil.n.item() == len(X)
    gap = centroid_gaps(X, langs)
    got = raw[raw.metric == "centroid_distance"].value.to_numpy()
    np.testing.assert_allclose(got, gap.centroid_distance.to_numpy())
    assert raw[raw.metric == "davies_bouldin"].value.item() == pytest.approx(
        davies_bouldin_score(X, langs)
    )
    tc = raw[raw.metric == "translation_contrast"]
    assert len(tc) == 3 and tc.n.eq(12).all() and tc.ci_low.notna().all()
    assert raw[raw.metric == "translation_silhouette"].value.item() == pytest.approx(
        translation_silhouette(X, groups)
    )
    # centred: gap is a ~0 sanity check; undefined numbers are left out
    assert (cen[cen.metric == "centroid_distance"].value < 1e-10).all()
    assert "centroid_cosine" not in set(cen.metric)
    assert "davies_bouldin" not in set(cen.metric)
    assert (
        cen[(cen.metric == "language_silhouette") & cen.lang.isna()].value.item() < sil.value.item()
    )
    per = raw[(raw.metric == "language_silhouette") & raw.lang.notna()]
    assert list(per.lang) == list(dict.fromkeys(langs))
    assert df.value.notna().all()
    assert df.lang2[df.metric == "language_silhouette"].isna().all()


def test_cluster_metrics_single_variant_without_groups(multi):
    X, langs, _ = multi
    df = cluster_metrics(X, langs, centered=True, metric="euclidean", sample_size=30, seed=2)
    protos = df.protocol.map(json.loads)
    assert protos.map(lambda p: p["centered"]).all()
    assert "translation_contrast" not in set(df.metric)
    sil = df[(df.metric == "language_silhouette") & df.lang.isna()]
    assert sil.n.item() == 30
    assert json.loads(sil.protocol.item()) == {
        "centered": True,
        "metric": "euclidean",
        "sample_size": 30,
        "seed": 2,
        "stratified": True,
    }


# ------------------------------------------------------------------ closed-form cosine silhouette


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_cosine_silhouette_from_cluster_sums_equals_sklearn(dtype):
    from xalign.metrics._clusters import _silhouette_samples

    rng = np.random.default_rng(11)
    X = (rng.normal(size=(90, 6)) + rng.normal(size=(1, 6))).astype(dtype)
    X[7] = 0.0  # an all-zero row: distance 1 to every other row
    X[8] = X[9]  # duplicate rows: distance 0
    for labels in (
        rng.choice(["a", "b", "c"], size=90).astype(object),  # few large clusters
        np.array(
            [f"g{i // 2}" for i in range(89)] + ["single"], dtype=object
        ),  # many + a singleton
    ):
        ref = silhouette_samples(X.astype(np.float64), labels.astype(str), metric="cosine")
        got = _silhouette_samples(X, labels, metric="cosine")
        np.testing.assert_allclose(got, ref, rtol=1e-10, atol=1e-12)
        assert got[-1] == 0.0 or labels[-1] != "single"  # a one-row cluster has s = 0


def test_cosine_silhouette_blocks_do_not_change_values(monkeypatch):
    import xalign.metrics._clusters as clu

    rng = np.random.default_rng(12)
    X = rng.normal(size=(50, 4))
    labels = rng.choice(["x", "y"], size=50).astype(object)
    whole = clu._silhouette_samples(X, labels, metric="cosine")
    monkeypatch.setattr(clu, "_SIL_BLOCK_BYTES", 8 * 2 * 7)  # 7 rows per block
    blocked = clu._silhouette_samples(X, labels, metric="cosine")
    np.testing.assert_allclose(blocked, whole, rtol=1e-13)
    with pytest.raises(DataError, match="2 to n_samples - 1 labels"):
        clu._silhouette_samples(X[:3], np.array(["a", "b", "c"], dtype=object), metric="cosine")
