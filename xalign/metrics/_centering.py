"""Language centring: subtract each language's centroid (Libovický et al. 2020)."""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from xalign.errors import DataError
from xalign.metrics._checks import check_finite, check_labels, unique_in_order

__all__ = ["LanguageCenterer", "center_by_language"]


class LanguageCenterer:
    """Subtract from each row the centroid of its language.

    .. math::  \\mu_\\ell = \\frac{1}{|S_\\ell|}\\sum_{s\\in S_\\ell} h(s), \\qquad
               \\tilde h(s) = h(s) - \\mu_{\\mathrm{lang}(s)}

    This removes the language-specific offset; what is left is the "language-neutral"
    component. Comparing a metric before and after centring measures how much of the
    misalignment is such an offset. Centroids are accumulated in float64; the output keeps the
    float dtype of the input (float16 becomes float32). Time O(n d), memory one copy of ``X``.

    Attributes
    ----------
    languages_ : list of str
        Languages seen in ``fit``, in order of first appearance.
    means_ : ndarray of shape (n_languages, d)
        Centroid of each language (float64), row ``k`` for ``languages_[k]``.
    counts_ : ndarray of shape (n_languages,)
        Rows per language in ``fit``.
    n_features_in_ : int

    References
    ----------
    Libovický, J., Rosa, R. & Fraser, A. (2020). On the Language Neutrality of Pre-trained
    Multilingual Representations. Findings of EMNLP (2020.findings-emnlp.150); code
    ``jlibovicky/assess-multilingual-bert`` (``lng_repr - lng_repr.mean(0)``).

    Examples
    --------
    >>> X = np.array([[1.0, 0.0], [3.0, 0.0], [0.0, 5.0], [0.0, 7.0]])
    >>> c = LanguageCenterer().fit(X, ["en", "en", "de", "de"])
    >>> c.means_.tolist()
    [[2.0, 0.0], [0.0, 6.0]]
    >>> c.transform(X, ["en", "en", "de", "de"]).tolist()
    [[-1.0, 0.0], [1.0, 0.0], [0.0, -1.0], [0.0, 1.0]]
    """

    def __init__(self) -> None:
        pass

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """No hyperparameters (scikit-learn estimator protocol)."""
        return {}

    def set_params(self, **params: Any) -> LanguageCenterer:
        """Accept no parameters (scikit-learn estimator protocol)."""
        if params:
            raise TypeError(f"LanguageCenterer has no parameters {sorted(params)}")
        return self

    def __repr__(self) -> str:
        return "LanguageCenterer()"

    def fit(self, X: ArrayLike, langs: ArrayLike) -> LanguageCenterer:
        """Learn one centroid per language from ``X`` (n, d) and ``langs`` (n,)."""
        arr = check_finite(X)
        labels = check_labels(langs, arr.shape[0])
        order = unique_in_order(labels)
        index = {lang: k for k, lang in enumerate(order)}
        codes = np.fromiter((index[v] for v in labels), dtype=np.int64, count=labels.size)
        counts = np.bincount(codes, minlength=len(order))
        sums = np.zeros((len(order), arr.shape[1]), dtype=np.float64)
        # Per-language reduction keeps numpy's pairwise summation (np.add.at would not).
        for k in range(len(order)):
            sums[k] = arr[codes == k].sum(axis=0, dtype=np.float64)
        self.languages_ = [str(v) for v in order]
        self.means_ = sums / counts[:, None]
        self.counts_ = counts
        self.n_features_in_ = int(arr.shape[1])
        return self

    def _codes(self, langs: NDArray[Any]) -> NDArray[np.int64]:
        index = {lang: k for k, lang in enumerate(self.languages_)}
        unseen = [v for v in unique_in_order(langs) if str(v) not in index]
        if unseen:
            raise DataError(
                f"language(s) {', '.join(repr(str(v)) for v in unseen)} not seen in fit; "
                f"known: {', '.join(self.languages_)}"
            )
        return np.fromiter((index[str(v)] for v in langs), dtype=np.int64, count=langs.size)

    def transform(self, X: ArrayLike, langs: ArrayLike) -> NDArray[np.floating]:
        """Return ``X`` minus the fitted centroid of each row's language (a new array).

        Raises
        ------
        DataError
            A language in ``langs`` was not seen in ``fit`` (the message names it), or the
            feature count differs from ``fit``.
        """
        if not hasattr(self, "means_"):
            raise DataError("LanguageCenterer is not fitted; call fit(X, langs) first")
        arr = check_finite(X)
        if arr.shape[1] != self.n_features_in_:
            raise DataError(
                f"X has {arr.shape[1]} features; LanguageCenterer was fitted on "
                f"{self.n_features_in_}"
            )
        labels = check_labels(langs, arr.shape[0])
        codes = self._codes(labels)
        out = np.array(arr, copy=True)
        for k in np.unique(codes):
            rows = np.flatnonzero(codes == k)
            out[rows] -= self.means_[k].astype(out.dtype)
        return out

    def fit_transform(self, X: ArrayLike, langs: ArrayLike) -> NDArray[np.floating]:
        """``fit(X, langs).transform(X, langs)``."""
        return self.fit(X, langs).transform(X, langs)


def center_by_language(X: ArrayLike, langs: ArrayLike) -> NDArray[np.floating]:
    """Return ``X`` with each language's own centroid subtracted (fit and transform at once).

    See :class:`LanguageCenterer` for the formula and source (Libovický et al. 2020). After
    centring, every language's centroid is 0 (up to rounding).

    Examples
    --------
    >>> center_by_language([[1.0], [3.0], [10.0], [20.0]], ["a", "a", "b", "b"]).ravel().tolist()
    [-1.0, 1.0, -5.0, 5.0]
    """
    return LanguageCenterer().fit_transform(X, langs)
