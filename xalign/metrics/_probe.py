"""Language-identification probe: a linear classifier on frozen representations, with a control."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray
from sklearn.base import BaseEstimator, ClassifierMixin

from xalign.errors import ConfigError, DataError
from xalign.metrics._centering import LanguageCenterer
from xalign.metrics._checks import (
    check_finite,
    check_groups,
    check_labels,
    check_min_per_label,
    unique_in_order,
)
from xalign.metrics._tidy import tidy_frame
from xalign.metrics._uncertainty import bootstrap_ci

__all__ = ["LinearProbe", "control_labels", "language_id_probe"]


class LinearProbe(ClassifierMixin, BaseEstimator):
    """Multinomial logistic-regression probe on frozen representations.

    A ``StandardScaler`` (per-feature z-scores fitted on the training rows; skip with
    ``standardize=False``) followed by ``LogisticRegression`` (L2 penalty of inverse strength
    ``C``, lbfgs, multinomial softmax over the classes): a linear layer plus cross-entropy, as
    the ``nn.Linear(model_dim, len(languages))`` probe of Libovický et al. (2020). Fitted state:
    ``pipeline_`` (the scikit-learn Pipeline), ``classes_``, ``n_features_in_``. Being a
    scikit-learn estimator it works with ``clone``, ``cross_val_score`` and ``GridSearchCV``.

    Parameters
    ----------
    C : float
        Inverse L2 regularisation strength.
    max_iter : int
        lbfgs iterations.
    seed : int
        ``random_state`` of the classifier (recorded; lbfgs itself is deterministic).
    standardize : bool
        Standardise features inside the pipeline (fitted on training rows only).

    References
    ----------
    Libovický, Rosa & Fraser (2020), Findings of EMNLP (``lang_id.py``); metrics.md B.5.

    Examples
    --------
    >>> X = [[0.0, 1.0], [0.1, 0.9], [1.0, 0.0], [0.9, 0.1]]
    >>> probe = LinearProbe(C=10.0).fit(X, ["en", "en", "de", "de"])
    >>> probe.predict([[0.05, 0.95], [0.95, 0.05]]).tolist()
    ['en', 'de']
    """

    def __init__(
        self, *, C: float = 1.0, max_iter: int = 1000, seed: int = 0, standardize: bool = True
    ) -> None:
        self.C = C
        self.max_iter = max_iter
        self.seed = seed
        self.standardize = standardize

    def fit(self, X: ArrayLike, y: ArrayLike) -> LinearProbe:
        """Fit the scaler and the classifier on ``X`` (n, d) and labels ``y`` (n,)."""
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        if not float(self.C) > 0:
            raise ConfigError(f"C={self.C} is not allowed; expected a positive float")
        arr = check_finite(X)
        labels = check_labels(y, arr.shape[0], what="y")
        if len(unique_in_order(labels)) < 2:
            raise DataError("a probe needs rows of at least 2 classes")
        clf = LogisticRegression(
            C=float(self.C), max_iter=int(self.max_iter), random_state=self.seed
        )
        steps = [StandardScaler(), clf] if self.standardize else [clf]
        self.pipeline_ = make_pipeline(*steps).fit(arr, labels)
        self.classes_ = self.pipeline_.classes_
        self.n_features_in_ = int(arr.shape[1])
        return self

    def _fitted(self) -> Any:
        if not hasattr(self, "pipeline_"):
            raise DataError("LinearProbe is not fitted; call fit(X, y) first")
        return self.pipeline_

    def predict(self, X: ArrayLike) -> NDArray[Any]:
        """Most probable class of each row."""
        return self._fitted().predict(check_finite(X))

    def predict_proba(self, X: ArrayLike) -> NDArray[np.float64]:
        """Class probabilities (n, n_classes), columns in ``classes_`` order."""
        return self._fitted().predict_proba(check_finite(X))

    def decision_function(self, X: ArrayLike) -> NDArray[np.float64]:
        """Class logits."""
        return self._fitted().decision_function(check_finite(X))


def control_labels(
    langs: ArrayLike, groups: ArrayLike | None = None, *, seed: int = 0
) -> NDArray[np.object_]:
    """Return control-task labels: a random but consistent language label per unit.

    After Hewitt & Liang (2019), where each word *type* gets a random label drawn from the
    empirical label distribution, so a probe can only succeed by memorising. Here the unit is
    the **translation group** when ``groups`` is given (all translations of one sentence share
    one control label; rows whose group is None are their own unit) and the **row** otherwise.
    Units are taken in order of first appearance and each draws one label i.i.d. from the
    empirical distribution of ``langs`` over rows, using ``numpy.random.default_rng(seed)``
    (``rng.choice(languages, size=n_units, p=row_frequencies)``, languages in order of first
    appearance). The control labels therefore carry no information about the language.

    References
    ----------
    Hewitt, J. & Liang, P. (2019). Designing and Interpreting Probes with Control Tasks.
    EMNLP. metrics.md B.5.

    Examples
    --------
    >>> y = control_labels(["en", "de", "en", "de"], ["g1", "g1", "g2", "g2"], seed=0)
    >>> bool(y[0] == y[1]) and bool(y[2] == y[3]) and set(y) <= {"en", "de"}
    True
    """
    labels = np.asarray(langs, dtype=object)
    labels = check_labels(labels, labels.shape[0], what="langs")
    n = labels.size
    if groups is None:
        unit = np.arange(n)
    else:
        grp = check_groups(groups, n)
        keys = [("g", g) if g is not None else ("r", i) for i, g in enumerate(grp)]
        unit = pd.factorize(pd.Series(keys, dtype=object), sort=False)[0]
    n_units = int(unit.max()) + 1
    order = unique_in_order(labels)
    freq = pd.Series(labels).value_counts(sort=False)
    p = np.array([freq[lang] for lang in order], dtype=np.float64) / n
    rng = np.random.default_rng(seed)
    drawn = rng.choice(np.array(order, dtype=object), size=n_units, p=p)
    return drawn[unit]


def _cv_correct(
    arr: NDArray[np.floating],
    y: NDArray[np.object_],
    langs: NDArray[np.object_],
    splits: list[tuple[NDArray[np.int64], NDArray[np.int64]]],
    probe: LinearProbe,
    centered: bool,
) -> NDArray[np.float64]:
    from sklearn.base import clone

    correct = np.zeros(y.size, dtype=np.float64)
    for train, test in splits:
        Xtr, Xte = arr[train], arr[test]
        if centered:
            cen = LanguageCenterer().fit(Xtr, langs[train])
            Xtr, Xte = cen.transform(Xtr, langs[train]), cen.transform(Xte, langs[test])
        classes = unique_in_order(y[train])
        if len(classes) < 2:
            pred = np.full(test.size, classes[0], dtype=object)
        else:
            pred = clone(probe).fit(Xtr, y[train]).predict(Xte)
        correct[test] = pred == y[test]
    return correct


def language_id_probe(
    X: ArrayLike,
    langs: ArrayLike,
    *,
    groups: ArrayLike | None = None,
    cv: int = 5,
    seed: int = 0,
    C: float = 1.0,
    max_iter: int = 1000,
    control: bool = True,
    centered: bool = False,
    n_boot: int = 1000,
    alpha: float = 0.05,
) -> pd.DataFrame:
    """Return cross-validated language-ID probe accuracy, control accuracy and selectivity.

    :math:`\\mathrm{Acc}_{\\mathrm{LID}}=\\frac1N\\sum_i\\mathbb 1[\\hat y_i=y_i]`, where
    :math:`\\hat y_i` is predicted by a :class:`LinearProbe` trained on the other folds of a
    ``StratifiedKFold(cv, shuffle=True, random_state=seed)`` split (stratified on language).
    Range [0, 1]; **higher = language identity is linearly decodable = less language-neutral**
    (worse for alignment). With equal fold sizes it equals the mean of
    ``cross_val_score`` over the folds.

    The control task (``control=True``) trains the same probe on the **same splits** with the
    labels of :func:`control_labels` (one random language per translation group, or per row
    without ``groups``; Hewitt & Liang 2019); its accuracy measures what the probe achieves
    without language information. **Selectivity** = accuracy - control accuracy, in [-1, 1];
    high selectivity means the accuracy reflects the representation rather than the probe's
    capacity. Note that a control label shared by a group can be guessed from a translation
    seen in training when the representation is language-neutral, so with ``groups`` the
    control accuracy itself rises with alignment.

    ``centered=True`` subtracts language centroids fitted on each training fold from its train
    and test rows, using the **true** language of the test rows as in Libovický et al. (2020)
    ``lang_id.py`` (``bert_features - centroids[lng]``): it tells how much language identity
    survives beyond the mean offset.

    CIs are percentile bootstraps (``n_boot`` replicates, seed ``seed``) over rows of the
    pooled out-of-fold 0/1 correctness (for selectivity, of the per-row difference). Cost:
    2 cv logistic-regression fits on ~(cv-1)/cv N rows, each O(N d k) per lbfgs iteration.

    Parameters
    ----------
    X : array-like of shape (N, d)
    langs : array-like of shape (N,)
        Every language needs >= ``cv`` rows; >= 2 languages.
    groups : array-like of shape (N,), optional
        Translation groups, used only for the control labels.
    cv : int
        Folds (>= 2).
    seed : int
        Seed of the folds, the control labels, the probe and the bootstrap.
    C, max_iter
        See :class:`LinearProbe`.
    control : bool
        Also run the control task and report selectivity.
    centered : bool
        Centre by language inside each fold.
    n_boot : int
        Bootstrap replicates; 0 leaves the CIs NaN.
    alpha : float

    Returns
    -------
    DataFrame
        Tidy ``metric, lang, lang2, value, n, ci_low, ci_high, protocol`` with metrics
        ``lid_accuracy`` and, with ``control``, ``lid_control_accuracy`` and
        ``lid_selectivity``; ``lang``/``lang2`` None, ``n`` = N.

    References
    ----------
    Libovický, Rosa & Fraser (2020), Findings of EMNLP; Hewitt & Liang (2019), EMNLP;
    metrics.md B.5.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> X = np.vstack([rng.normal(0, 1, (20, 3)), rng.normal(4, 1, (20, 3))])
    >>> df = language_id_probe(X, ["en"] * 20 + ["de"] * 20, n_boot=0)
    >>> df.metric.tolist(), float(df.value[0])
    (['lid_accuracy', 'lid_control_accuracy', 'lid_selectivity'], 1.0)
    """
    from sklearn.model_selection import StratifiedKFold

    if int(cv) < 2:
        raise ConfigError(f"cv={cv} is not allowed; expected an integer >= 2")
    if int(n_boot) < 0:
        raise ConfigError(f"n_boot={n_boot} is not allowed; expected an integer >= 0")
    cv = int(cv)
    arr = check_finite(X)
    labels = check_labels(langs, arr.shape[0])
    counts = check_min_per_label(
        labels, cv, reason=f"cv={cv} folds need a row of every language in each fold"
    )
    if len(counts) < 2:
        raise DataError(f"a language-ID probe needs at least 2 languages, got {list(counts)}")
    skf = StratifiedKFold(n_splits=cv, shuffle=True, random_state=seed)
    splits = list(skf.split(arr, labels.astype(str)))
    probe = LinearProbe(C=C, max_iter=max_iter, seed=seed)
    proto = {
        "probe": "logistic_regression",
        "C": C,
        "max_iter": max_iter,
        "standardize": True,
        "cv": cv,
        "seed": seed,
        "centered": centered,
        "control": ("group" if groups is not None else "row") if control else None,
        "n_boot": n_boot,
        "alpha": alpha,
    }

    def ci(values: NDArray[np.float64]) -> tuple[float, float]:
        if not n_boot:
            return float("nan"), float("nan")
        return bootstrap_ci(values, n_boot=n_boot, alpha=alpha, seed=seed)

    n = int(labels.size)
    correct = _cv_correct(arr, labels, labels, splits, probe, centered)
    lo, hi = ci(correct)
    records: list[dict[str, Any]] = [
        {
            "metric": "lid_accuracy",
            "value": correct.mean(),
            "n": n,
            "ci_low": lo,
            "ci_high": hi,
            "protocol": proto,
        }
    ]
    if control:
        yc = control_labels(labels, groups, seed=seed)
        correct_c = _cv_correct(arr, yc, labels, splits, probe, centered)
        lo, hi = ci(correct_c)
        records.append(
            {
                "metric": "lid_control_accuracy",
                "value": correct_c.mean(),
                "n": n,
                "ci_low": lo,
                "ci_high": hi,
                "protocol": proto,
            }
        )
        lo, hi = ci(correct - correct_c)
        records.append(
            {
                "metric": "lid_selectivity",
                "value": correct.mean() - correct_c.mean(),
                "n": n,
                "ci_low": lo,
                "ci_high": hi,
                "protocol": proto,
            }
        )
    return tidy_frame(records)
