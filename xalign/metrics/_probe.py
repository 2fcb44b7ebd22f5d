"""Language-identification probe: a linear classifier on frozen representations, with a control."""

from __future__ import annotations

import warnings
from typing import Any, Literal

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray
from sklearn.base import BaseEstimator, ClassifierMixin

from xalign.errors import ConfigError, DataError
from xalign.metrics._blas import single_blas_thread
from xalign.metrics._centering import LanguageCenterer
from xalign.metrics._checks import (
    check_choice,
    check_finite,
    check_groups,
    check_labels,
    check_min_per_label,
    unique_in_order,
)
from xalign.metrics._tidy import tidy_frame
from xalign.metrics._uncertainty import bootstrap_ci

__all__ = ["LinearProbe", "control_labels", "language_id_probe"]

Solver = Literal["lbfgs-preconditioned", "lbfgs"]
_SOLVERS = ("lbfgs-preconditioned", "lbfgs")
# Floor of the preconditioner's eigenvalues (features are standardised: eigenvalues average
# 1): directions of less variance are left unscaled relative to each other, so noise
# directions are not blown up. Chosen on e5-small stores (demo and Tatoeba), see the README.
_DAMPING = 0.01


class LinearProbe(ClassifierMixin, BaseEstimator):
    """Multinomial logistic-regression probe on frozen representations.

    A ``StandardScaler`` (per-feature z-scores fitted on the training rows; skip with
    ``standardize=False``) followed by multinomial logistic regression: softmax over the
    classes, cross-entropy averaged over rows, an L2 penalty of inverse strength ``C`` on the
    weights (not the intercepts), i.e. the objective of scikit-learn's
    ``LogisticRegression(C=C)``

    .. math::
        \\min_{W,b}\\ \\frac1n\\sum_i -\\log\\operatorname{softmax}(W z_i + b)_{y_i}
        + \\frac{1}{2Cn}\\lVert W\\rVert_F^2 ,

    a linear layer plus cross-entropy, as the ``nn.Linear(model_dim, len(languages))`` probe
    of Libovický et al. (2020). The objective is strictly convex, so every solver that
    converges finds the same weights; ``solver`` only decides how fast:

    - ``"lbfgs-preconditioned"`` (default): L-BFGS (scipy, 10 corrections) in the coordinates
      :math:`W = U P^\\top`, :math:`P = V(\\tfrac1k\\Lambda+\\tfrac{1}{Cn}I)^{-1/2}`, where
      :math:`V\\Lambda V^\\top` is the eigendecomposition of :math:`Z^\\top Z/n` of the
      (standardised) training rows and k the number of classes: the curvature of the loss
      at the start, so that every direction is about equally curved. Stops when the largest
      absolute gradient entry **in the original coordinates** (W, b) is at most ``tol``, the
      criterion of scikit-learn's lbfgs. Float32 rows (as stored) stay float32 in the
      products, as in scikit-learn; the softmax and the loss are float64. On embeddings, whose
      features are strongly correlated, this needs 5-15x fewer iterations than plain
      L-BFGS (e.g. 20 instead of 240 on a control task of 5,400 rows) and ends nearer to
      the optimum.
    - ``"lbfgs"``: scikit-learn's ``LogisticRegression(solver="lbfgs")``, the default of
      xalign <= 0.x; plain L-BFGS on the same objective, often stopped by ``tol`` while
      still about 1e-5 above the optimal loss.

    Fitted state: ``classes_`` (sorted), ``coef_`` (n_classes, d) and ``intercept_``
    (n_classes,) in the standardised space, ``scaler_`` (the fitted ``StandardScaler``, or
    None), ``n_iter_``, ``n_features_in_``. Being a scikit-learn estimator it works with
    ``clone``, ``cross_val_score`` and ``GridSearchCV``.

    Parameters
    ----------
    C : float
        Inverse L2 regularisation strength.
    max_iter : int
        L-BFGS iterations at most (a ``ConvergenceWarning`` if reached).
    tol : float
        Stop when every gradient entry of the objective is at most ``tol`` in absolute value.
    solver : {"lbfgs-preconditioned", "lbfgs"}
        See above.
    seed : int
        ``random_state`` of the classifier (recorded; both solvers are deterministic).
    standardize : bool
        Standardise features inside the probe (fitted on training rows only).

    References
    ----------
    Libovický, Rosa & Fraser (2020), Findings of EMNLP (``lang_id.py``); docs/metrics.md#lid-probe.
    Nocedal, J. & Wright, S. (2006). Numerical Optimization, 2nd ed., ch. 7 (L-BFGS) and
    §5.1 (preconditioning by a change of variables).

    Examples
    --------
    >>> X = [[0.0, 1.0], [0.1, 0.9], [1.0, 0.0], [0.9, 0.1]]
    >>> probe = LinearProbe(C=10.0).fit(X, ["en", "en", "de", "de"])
    >>> probe.predict([[0.05, 0.95], [0.95, 0.05]]).tolist()
    ['en', 'de']
    """

    def __init__(
        self,
        *,
        C: float = 1.0,
        max_iter: int = 1000,
        tol: float = 1e-4,
        solver: Solver = "lbfgs-preconditioned",
        seed: int = 0,
        standardize: bool = True,
    ) -> None:
        self.C = C
        self.max_iter = max_iter
        self.tol = tol
        self.solver = solver
        self.seed = seed
        self.standardize = standardize

    def _check_params(self) -> None:
        check_choice(self.solver, _SOLVERS, name="solver")
        if not float(self.C) > 0:
            raise ConfigError(f"C={self.C} is not allowed; expected a positive float")
        if not float(self.tol) > 0:
            raise ConfigError(f"tol={self.tol} is not allowed; expected a positive float")
        if int(self.max_iter) < 1:
            raise ConfigError(f"max_iter={self.max_iter} is not allowed; expected an integer >= 1")

    def fit(self, X: ArrayLike, y: ArrayLike) -> LinearProbe:
        """Fit the scaler and the classifier on ``X`` (n, d) and labels ``y`` (n,)."""
        from sklearn.preprocessing import StandardScaler

        self._check_params()
        arr = check_finite(X)
        labels = check_labels(y, arr.shape[0], what="y")
        if len(unique_in_order(labels)) < 2:
            raise DataError("a probe needs rows of at least 2 classes")
        self.scaler_ = StandardScaler().fit(arr) if self.standardize else None
        Z = self.scaler_.transform(arr) if self.scaler_ is not None else arr
        if self.solver == "lbfgs":
            from sklearn.linear_model import LogisticRegression

            self.estimator_ = LogisticRegression(
                C=float(self.C),
                max_iter=int(self.max_iter),
                tol=float(self.tol),
                random_state=self.seed,
            ).fit(Z, labels)
            self.classes_ = self.estimator_.classes_
            self.coef_, self.intercept_ = _full_rows(
                self.estimator_.coef_, self.estimator_.intercept_
            )
            self.n_iter_ = int(self.estimator_.n_iter_[0])
        else:
            self.classes_, codes = np.unique(labels, return_inverse=True)
            self.coef_, self.intercept_, self.n_iter_ = _fit_softmax(
                _Preconditioned(Z, C=float(self.C)),
                codes,
                self.classes_.size,
                max_iter=int(self.max_iter),
                tol=float(self.tol),
            )
        self.n_features_in_ = int(arr.shape[1])
        return self

    def _scaled(self, X: ArrayLike) -> NDArray[np.floating]:
        if not hasattr(self, "coef_"):
            raise DataError("LinearProbe is not fitted; call fit(X, y) first")
        arr = check_finite(X)
        return self.scaler_.transform(arr) if self.scaler_ is not None else arr

    def decision_function(self, X: ArrayLike) -> NDArray[np.float64]:
        """Class logits (n, n_classes), columns in ``classes_`` order."""
        return _logits(self._scaled(X), self.coef_, self.intercept_)

    def predict(self, X: ArrayLike) -> NDArray[Any]:
        """Most probable class of each row."""
        Z = self._scaled(X)
        if self.solver == "lbfgs":
            return self.estimator_.predict(Z)
        return self.classes_[np.argmax(_logits(Z, self.coef_, self.intercept_), axis=1)]

    def predict_proba(self, X: ArrayLike) -> NDArray[np.float64]:
        """Class probabilities (n, n_classes), columns in ``classes_`` order."""
        R = self.decision_function(X)
        R -= R.max(axis=1, keepdims=True)
        np.exp(R, out=R)
        R /= R.sum(axis=1, keepdims=True)
        return R


def _full_rows(
    coef: NDArray[np.floating], intercept: NDArray[np.floating]
) -> tuple[NDArray[np.floating], NDArray[np.floating]]:
    """One row per class: a binary model's single row (class 1) gets a zero row for class 0."""
    if coef.shape[0] == 1:
        return np.vstack([np.zeros_like(coef), coef]), np.concatenate(
            [np.zeros(1, intercept.dtype), intercept]
        )
    return coef, intercept


def _logits(
    Z: NDArray[np.floating], coef: NDArray[np.floating], intercept: NDArray[np.floating]
) -> NDArray[np.float64]:
    """``Z @ coef.T + intercept``, in the dtypes scikit-learn's ``decision_function`` uses."""
    return np.asarray(Z @ coef.T + intercept, dtype=np.float64)


class _Preconditioned:
    """Training rows and the change of variables of the preconditioned solver.

    With :math:`Z^\\top Z/n = V\\Lambda V^\\top` the weights are written
    :math:`W = U D V^\\top`, :math:`D = (\\Lambda/k + \\mu I)^{-1/2}`, :math:`\\mu =
    \\max(\\text{damping}, \\lambda)`; the eigendecomposition is computed once per set of rows
    and shared by every label vector fitted on them (D depends on k only through a diagonal).
    """

    def __init__(self, Z: NDArray[np.floating], *, C: float, damping: float = _DAMPING) -> None:
        # float32 rows (store data) are used as float32, as scikit-learn does; others as float64
        dtype = np.float32 if np.asarray(Z).dtype == np.float32 else np.float64
        self.Z: NDArray[np.floating] = np.ascontiguousarray(Z, dtype=dtype)
        self.n, self.d = self.Z.shape
        self.lam = 1.0 / (C * self.n)
        self.damping = max(float(damping), self.lam)
        gram = (self.Z.T @ self.Z).astype(np.float64) / self.n
        evals, self.V = np.linalg.eigh(gram)
        self.evals = np.clip(evals, 0.0, None)

    def scale(self, k: int) -> NDArray[np.float64]:
        """Diagonal of D for ``k`` classes."""
        return 1.0 / np.sqrt(self.evals / k + self.damping)


def _fit_softmax(
    pre: _Preconditioned,
    codes: NDArray[np.intp],
    k: int,
    *,
    max_iter: int,
    tol: float,
) -> tuple[NDArray[np.float64], NDArray[np.float64], int]:
    """(W (k, d), b (k,), iterations) of the penalised logistic regression on ``pre``.

    k > 2: the symmetric multinomial model (one row per class, all penalised), as
    scikit-learn's lbfgs. k = 2: binary logistic regression (row 0 fixed at zero), as
    scikit-learn does for two classes; a symmetric 2-class softmax would halve the penalty.
    Every quantity is evaluated in the original coordinates (logits ``Z W^T``, penalty
    ``lam/2 ||W||^2``, gradient ``dW``) and mapped to U by the chain rule, so the objective
    is exactly scikit-learn's whatever the rounding of V.
    """
    from scipy.optimize import minimize

    Z, V, dscale = pre.Z, pre.V, pre.scale(k)
    n, d, lam = pre.n, pre.d, pre.lam
    free = k - 1 if k == 2 else k  # rows of W that are fitted: the last `free` classes
    true = np.arange(n) * k + codes  # flat positions of the true class in the (n, k) logits
    last: dict[str, Any] = {}

    def evaluate(theta: NDArray[np.float64]) -> None:
        U, b = theta[: free * d].reshape(free, d), theta[free * d :]
        Wt = V @ (dscale[:, None] * U.T)  # W^T, (d, free)
        logits = (Z @ Wt.astype(Z.dtype)).astype(np.float64)
        logits += b
        if free < k:
            logits = np.hstack([np.zeros((n, 1)), logits])
        logits -= logits.max(axis=1, keepdims=True)
        picked = logits.ravel()[true]
        np.exp(logits, out=logits)
        total = logits.sum(axis=1)
        loss = float(np.log(total).sum() - picked.sum()) / n + 0.5 * lam * float(np.sum(Wt * Wt))
        logits /= total[:, None]  # now the softmax probabilities
        logits.ravel()[true] -= 1.0
        G = logits[:, k - free :] * (1.0 / n)
        gW = (G.T.astype(Z.dtype) @ Z).astype(np.float64)
        gW += lam * Wt.T
        gb = G.sum(axis=0)
        gU = (gW @ V) * dscale
        last.update(x=theta.copy(), loss=loss, grad=np.concatenate([gU.ravel(), gb]))
        last["gmax"] = max(float(np.abs(gW).max()), float(np.abs(gb).max()))

    def loss_grad(theta: NDArray[np.float64]) -> tuple[float, NDArray[np.float64]]:
        evaluate(theta)
        return last["loss"], last["grad"]

    def converged(theta: NDArray[np.float64]) -> bool:
        if "x" not in last or not np.array_equal(last["x"], theta):
            evaluate(theta)
        return bool(last["gmax"] <= tol)  # scikit-learn's criterion, on the gradient in W, b

    theta0 = np.zeros(free * (d + 1))  # every fit starts from zero: see _cv_correct
    if converged(theta0):  # e.g. no signal at all: W = 0, b = 0
        return np.zeros((k, d)), np.zeros(k), 0

    def callback(intermediate_result: Any) -> None:
        if converged(intermediate_result.x):
            last["done"] = True
            raise StopIteration

    res = minimize(
        loss_grad,
        theta0,
        jac=True,
        method="L-BFGS-B",
        callback=callback,
        options={"maxiter": max_iter, "gtol": 0.0, "ftol": 64 * np.finfo(float).eps, "maxls": 50},
    )
    if not last.get("done") and res.nit >= max_iter and not converged(res.x):
        from sklearn.exceptions import ConvergenceWarning

        warnings.warn(
            f"LinearProbe did not converge in max_iter={max_iter} iterations "
            f"(a gradient entry above tol={tol}); raise max_iter",
            ConvergenceWarning,
            stacklevel=3,
        )
    W = np.zeros((k, d))
    W[k - free :] = (res.x[: free * d].reshape(free, d) * dscale) @ V.T
    b = np.zeros(k)
    b[k - free :] = res.x[free * d :]
    return W, b, int(res.nit)


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
    EMNLP. docs/metrics.md#lid-probe.

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
    targets: list[NDArray[np.object_]],
    langs: NDArray[np.object_],
    splits: list[tuple[NDArray[np.int64], NDArray[np.int64]]],
    probe: LinearProbe,
    centered: bool,
) -> list[NDArray[np.float64]]:
    """Out-of-fold 0/1 correctness for each label vector in ``targets``, on the same splits.

    Per fold the centring, the scaler and (default solver) the preconditioner are computed
    once and shared by every label vector: they depend on the rows, not the labels. Every
    fit starts from zero weights, so a fold's predictions depend only on its training rows:
    starting from another fold's solution (fitted on rows this fold tests) would carry those
    rows' labels into the start point, and the solver stops within ``tol`` of the optimum
    rather than at it (docs/metrics.md#lid-probe).
    """
    from sklearn.base import clone
    from sklearn.preprocessing import StandardScaler

    out = [np.zeros(y.size, dtype=np.float64) for y in targets]
    for train, test in splits:
        Xtr, Xte = arr[train], arr[test]
        if centered:
            cen = LanguageCenterer().fit(Xtr, langs[train])
            Xtr, Xte = cen.transform(Xtr, langs[train]), cen.transform(Xte, langs[test])
        pre = Ztr = Zte = scaler = None
        for y, correct in zip(targets, out, strict=True):
            classes = unique_in_order(y[train])
            if len(classes) < 2:
                pred = np.full(test.size, classes[0], dtype=object)
            elif probe.solver == "lbfgs":
                pred = clone(probe).fit(Xtr, y[train]).predict(Xte)
            else:
                if pre is None:
                    scaler = StandardScaler().fit(Xtr) if probe.standardize else None
                    Ztr = scaler.transform(Xtr) if scaler is not None else Xtr
                    Zte = scaler.transform(Xte) if scaler is not None else Xte
                    pre = _Preconditioned(Ztr, C=float(probe.C))
                labels, codes = np.unique(y[train], return_inverse=True)
                W, b, _ = _fit_softmax(
                    pre, codes, labels.size, max_iter=int(probe.max_iter), tol=float(probe.tol)
                )
                assert Zte is not None  # set with pre, on the first iteration
                pred = labels[np.argmax(_logits(Zte, W, b), axis=1)]
            correct[test] = pred == y[test]
    return out


def language_id_probe(
    X: ArrayLike,
    langs: ArrayLike,
    *,
    groups: ArrayLike | None = None,
    cv: int = 5,
    seed: int = 0,
    C: float = 1.0,
    max_iter: int = 1000,
    tol: float = 1e-4,
    solver: Solver = "lbfgs-preconditioned",
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
    2 cv logistic-regression fits on ~(cv-1)/cv N rows, each O(N d k) per L-BFGS iteration,
    plus (default solver) one O(N d^2 + d^3) eigendecomposition per fold shared by the probe
    and its control; the fits run with one BLAS thread.

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
    C, max_iter, tol, solver
        See :class:`LinearProbe`. The default solver (``"lbfgs-preconditioned"``, recorded
        in the protocol with ``tol``) replaced scikit-learn's plain lbfgs (``"lbfgs"``,
        results tables without a ``solver`` key): same objective and stopping rule, many
        fewer iterations; accuracies agree within 0.005 on e5-small stores.
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
    docs/metrics.md#lid-probe.

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
    probe = LinearProbe(C=C, max_iter=max_iter, tol=tol, solver=solver, seed=seed)
    probe._check_params()
    proto = {
        "probe": "logistic_regression",
        "solver": solver,
        "C": C,
        "max_iter": max_iter,
        "tol": tol,
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
    targets = [labels]
    if control:
        targets.append(control_labels(labels, groups, seed=seed))
    # the fits are many small, skinny products: one BLAS thread is faster than several, and
    # far faster when other processes compete for the cores (threads then wait on each other)
    with single_blas_thread():
        correct, *rest = _cv_correct(arr, targets, labels, splits, probe, centered)
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
        (correct_c,) = rest
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
