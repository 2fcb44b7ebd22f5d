from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from xalign.errors import ConfigError, DataError
from xalign.metrics._probe import LinearProbe, control_labels, language_id_probe
from xalign.metrics._tidy import RESULT_COLUMNS


@pytest.fixture(scope="module")
def noisy():
    """3 languages x 50 rows (folds of equal size under 5-fold CV), overlapping classes."""
    rng = np.random.default_rng(0)
    means = rng.normal(size=(3, 10)) * 0.6
    langs = np.repeat(["en", "de", "sw"], 50)
    X = means[np.repeat(np.arange(3), 50)] + rng.normal(size=(150, 10))
    perm = rng.permutation(150)
    groups = np.array([f"g{i % 50}" for i in range(150)], dtype=object)
    return X[perm], langs[perm], groups[perm]


def _reference_pipeline(**kw):
    return make_pipeline(
        StandardScaler(), LogisticRegression(C=0.5, max_iter=500, random_state=3, **kw)
    )


def test_accuracy_equals_cross_val_score(noisy):
    # solver="lbfgs" is scikit-learn's own solver: the numbers are scikit-learn's exactly
    X, langs, _ = noisy
    df = language_id_probe(
        X, langs, cv=5, seed=3, C=0.5, max_iter=500, control=False, n_boot=0, solver="lbfgs"
    )
    skf = StratifiedKFold(n_splits=5, shuffle=True, random_state=3)
    scores = cross_val_score(_reference_pipeline(), X, langs, cv=skf)
    acc = df.loc[df.metric == "lid_accuracy", "value"].item()
    assert acc == pytest.approx(scores.mean(), abs=1e-12)
    assert 0.5 < acc < 1.0  # informative but not trivial data


def test_default_solver_reaches_the_same_optimum(noisy):
    # same objective as scikit-learn; converged tightly, both give the same probe
    X, langs, _ = noisy
    df = language_id_probe(
        X, langs, cv=5, seed=3, C=0.5, max_iter=500, control=False, n_boot=0, tol=1e-8
    )
    skf = StratifiedKFold(n_splits=5, shuffle=True, random_state=3)
    ref = _reference_pipeline(tol=1e-10).set_params(logisticregression__max_iter=20000)
    scores = cross_val_score(ref, X.astype(np.float64), langs, cv=skf)
    assert df.value.item() == pytest.approx(scores.mean(), abs=1e-12)
    proto = json.loads(df.protocol[0])
    assert proto["solver"] == "lbfgs-preconditioned" and proto["tol"] == 1e-8


@pytest.mark.parametrize("n_classes", [2, 3, 5])
def test_preconditioned_probe_matches_sklearn_weights(n_classes):
    # binary: one weight vector (scikit-learn's binary objective); k > 2: symmetric multinomial
    rng = np.random.default_rng(n_classes)
    mix = rng.normal(size=(12, 12)) * [3.0] + np.eye(12)  # correlated, badly scaled features
    X = rng.normal(size=(300, 12)) @ mix
    y = rng.integers(0, n_classes, 300)
    X += rng.normal(size=(n_classes, 12))[y] * 2.0
    labels = np.array([f"c{v}" for v in y], dtype=object)
    ours = LinearProbe(C=0.3, tol=1e-9, max_iter=5000).fit(X, labels)
    ref = _reference_pipeline(tol=1e-12).set_params(
        logisticregression__C=0.3, logisticregression__max_iter=20000
    )
    ref.fit(X, labels)
    lr = ref[-1]
    coef = lr.coef_ if n_classes > 2 else np.vstack([np.zeros_like(lr.coef_), lr.coef_])
    icpt = lr.intercept_ if n_classes > 2 else np.r_[0.0, lr.intercept_]
    np.testing.assert_allclose(ours.coef_, coef, atol=1e-5)
    np.testing.assert_allclose(ours.intercept_, icpt, atol=1e-5)
    np.testing.assert_array_equal(ours.predict(X), ref.predict(X))
    np.testing.assert_allclose(ours.predict_proba(X), ref.predict_proba(X), atol=1e-5)


def test_no_signal_stops_at_zero_weights():
    # every class centred and balanced: W = 0, b = 0 is the optimum; the solver must not
    # wander off on rounding noise
    rng = np.random.default_rng(0)
    X = rng.normal(size=(90, 6))
    langs = np.repeat(["a", "b", "c"], 30)
    for lang in "abc":
        X[langs == lang] -= X[langs == lang].mean(axis=0)
    probe = LinearProbe().fit(X, langs)
    assert probe.n_iter_ == 0 and not probe.coef_.any() and not probe.intercept_.any()


def test_solver_options_are_checked(noisy):
    X, langs, _ = noisy
    with pytest.raises(ConfigError, match="solver"):
        LinearProbe(solver="sag").fit(X, langs)
    with pytest.raises(ConfigError, match="tol"):
        language_id_probe(X, langs, tol=0.0)


def test_control_uses_same_splits_and_selectivity(noisy):
    X, langs, groups = noisy
    df = language_id_probe(
        X, langs, groups=groups, cv=5, seed=3, C=0.5, max_iter=500, n_boot=200, solver="lbfgs"
    )
    assert tuple(df.columns) == RESULT_COLUMNS
    assert df.metric.tolist() == ["lid_accuracy", "lid_control_accuracy", "lid_selectivity"]
    splits = list(StratifiedKFold(n_splits=5, shuffle=True, random_state=3).split(X, langs))
    yc = control_labels(langs, groups, seed=3)
    ctrl = cross_val_score(_reference_pipeline(), X, yc, cv=splits).mean()
    acc, cacc, sel = df.value.tolist()
    assert cacc == pytest.approx(ctrl, abs=1e-12)
    assert sel == pytest.approx(acc - cacc)
    assert sel > 0.2  # language is decodable, random labels much less so
    for r in df.itertuples():
        assert r.ci_low <= r.value <= r.ci_high
        assert r.n == 150
    proto = json.loads(df.protocol[0])
    assert proto["control"] == "group" and proto["C"] == 0.5 and proto["cv"] == 5


def test_control_labels_are_group_consistent_and_seeded():
    langs = np.array(["en", "de", "fr"] * 200, dtype=object)
    groups = np.array([f"g{i // 3}" for i in range(600)], dtype=object)
    groups[:6] = None  # rows without a group are their own unit
    y = control_labels(langs, groups, seed=4)
    assert np.array_equal(y, control_labels(langs, groups, seed=4))
    assert not np.array_equal(y, control_labels(langs, groups, seed=5))
    for g in set(groups[6:]):
        assert len(set(y[groups == g])) == 1
    assert len(set(y[:6])) > 1 or len(set(y[6:])) > 1
    assert set(y) <= {"en", "de", "fr"}
    # rows, not groups, are the unit without groups: labels vary within a group
    yr = control_labels(langs, None, seed=4)
    assert any(len(set(yr[groups == g])) > 1 for g in set(groups[6:]))
    # drawn from the empirical distribution: roughly a third each over 600 rows
    for lang in ("en", "de", "fr"):
        assert 0.25 < np.mean(yr == lang) < 0.42


def test_control_labels_follow_documented_draw():
    langs = ["en", "en", "en", "de"]
    rng = np.random.default_rng(9)
    expected = rng.choice(np.array(["en", "de"], dtype=object), size=4, p=[0.75, 0.25])
    assert control_labels(langs, seed=9).tolist() == expected.tolist()


def test_linear_probe_is_sklearn_estimator(noisy):
    X, langs, _ = noisy
    probe = LinearProbe(C=0.5, max_iter=500, seed=3)
    assert probe.get_params() == {
        "C": 0.5,
        "max_iter": 500,
        "tol": 1e-4,
        "solver": "lbfgs-preconditioned",
        "seed": 3,
        "standardize": True,
    }
    skf = StratifiedKFold(n_splits=5, shuffle=True, random_state=3)
    ours = cross_val_score(clone(probe).set_params(solver="lbfgs"), X, langs, cv=skf)
    ref = cross_val_score(_reference_pipeline(), X, langs, cv=skf)
    np.testing.assert_allclose(ours, ref)
    # the default solver: same optimum, stopped at the same gradient tolerance
    fast = cross_val_score(clone(probe), X, langs, cv=skf)
    np.testing.assert_allclose(fast, ref, atol=1 / 30)
    fitted = probe.fit(X, langs)
    assert fitted is probe
    assert sorted(probe.classes_) == ["de", "en", "sw"]
    assert probe.n_features_in_ == 10
    np.testing.assert_allclose(probe.predict_proba(X).sum(axis=1), 1.0)
    assert probe.score(X, langs) > 0.7
    with pytest.raises(DataError, match="not fitted"):
        LinearProbe().predict(X)
    with pytest.raises(DataError, match="2 classes"):
        LinearProbe().fit(X[:3], ["en"] * 3)


def test_centred_probe_removes_a_pure_offset():
    # languages differ only by a mean offset: raw LID is perfect, centred LID is at chance
    rng = np.random.default_rng(1)
    X = rng.normal(size=(200, 5))
    langs = np.repeat(["en", "de"], 100)
    X[langs == "de"] += 6.0
    raw = language_id_probe(X, langs, control=False, n_boot=0).value.item()
    cen = language_id_probe(X, langs, control=False, n_boot=0, centered=True).value.item()
    assert raw == 1.0
    assert 0.3 < cen < 0.7


def test_too_few_rows_per_language_is_named():
    X = np.random.default_rng(0).normal(size=(13, 3))
    langs = ["en"] * 10 + ["yo"] * 3
    with pytest.raises(DataError, match="language 'yo' has 3 row"):
        language_id_probe(X, langs, cv=5)
    with pytest.raises(DataError, match="at least 2 languages"):
        language_id_probe(X, ["en"] * 13, cv=5)


def test_each_fold_depends_only_on_its_own_training_rows(noisy):
    """Out-of-fold predictions do not depend on the order of the folds: every fold's fit
    starts from zero, never from a solution fitted on rows this fold tests (the removed warm
    start did, and raised accuracies beyond the converged optimum's)."""
    import xalign.metrics._probe as probe_module

    X, langs, groups = noisy
    splits = list(StratifiedKFold(n_splits=5, shuffle=True, random_state=3).split(X, langs))
    targets = [langs.astype(object), control_labels(langs, groups, seed=3)]
    # a loose tolerance, so the start point shows: the removed warm start gave 3 and 7 rows
    # that differ between the two fold orders here
    probe = LinearProbe(C=0.5, tol=1e-2)
    forward = probe_module._cv_correct(X, targets, targets[0], splits, probe, False)
    backward = probe_module._cv_correct(X, targets, targets[0], splits[::-1], probe, False)
    for a, b in zip(forward, backward, strict=True):
        np.testing.assert_array_equal(a, b)
    assert 0.5 < forward[0].mean() < 1.0  # informative, not trivial
    with pytest.raises(TypeError, match="warm_start"):
        language_id_probe(X, langs, warm_start=True)  # type: ignore[call-arg]
