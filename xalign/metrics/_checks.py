"""Input checks shared by the metric functions: finite 2-D arrays, label vectors, option sets."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray

from xalign._validate import check_choice as _check_choice
from xalign.errors import DataError

__all__ = [
    "check_choice",
    "check_finite",
    "check_groups",
    "check_labels",
    "check_min_per_label",
    "unique_in_order",
]

_SHOW = 10


def _listing(items: Sequence[Any]) -> str:
    shown = ", ".join(repr(i) if isinstance(i, str) else str(i) for i in items[:_SHOW])
    more = len(items) - _SHOW
    return shown + (f" ... and {more} more" if more > 0 else "")


def check_finite(
    X: ArrayLike, *, ids: Sequence[Any] | None = None, what: str = "X"
) -> NDArray[np.floating]:
    """Return ``X`` as a 2-D float array, refusing NaN/inf rows by index or id.

    float16 input is promoted to float32 (stores hold float16, metrics compute in float32 or
    better); float32/float64 are kept; integer or boolean input becomes float64. No copy is
    made when ``X`` already qualifies.

    Parameters
    ----------
    X : array-like of shape (n, d)
        Representations, one row per sentence or token.
    ids : sequence, optional
        Row identifiers (e.g. corpus ids) used in the error message instead of row indices.
    what : str
        Name of the array in error messages.

    Returns
    -------
    ndarray of shape (n, d)

    Raises
    ------
    DataError
        ``X`` is not 2-D, is empty, or has non-finite values; the message lists the first
        offending rows.

    Examples
    --------
    >>> check_finite([[1, 2], [3, 4]]).dtype
    dtype('float64')
    >>> check_finite([[1.0, float("nan")], [0.0, 1.0]], what="layer 3")
    Traceback (most recent call last):
    ...
    xalign.errors.DataError: layer 3: non-finite values (NaN/inf) in 1 row(s): 0
    """
    arr = np.asarray(X)
    if arr.dtype == np.float16:
        arr = arr.astype(np.float32)
    elif arr.dtype not in (np.float32, np.float64):
        if not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
            raise DataError(f"{what}: expected a numeric array, got dtype {arr.dtype}")
        arr = arr.astype(np.float64)
    if arr.ndim != 2:
        raise DataError(f"{what}: expected a 2-D array (rows, features), got shape {arr.shape}")
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise DataError(f"{what}: expected at least one row and one feature, got {arr.shape}")
    bad = np.flatnonzero(~np.isfinite(arr).all(axis=1))
    if bad.size:
        if ids is not None:
            names = [ids[int(i)] for i in bad]
            raise DataError(
                f"{what}: non-finite values (NaN/inf) in {bad.size} row(s) "
                f"with id {_listing(names)}"
            )
        raise DataError(
            f"{what}: non-finite values (NaN/inf) in {bad.size} row(s): {_listing(list(bad))}"
        )
    return arr


def check_labels(labels: ArrayLike, n: int, *, what: str = "langs") -> NDArray[np.object_]:
    """Return ``labels`` as a 1-D object array of length ``n``, refusing missing values.

    >>> check_labels(["en", "de"], 2)
    array(['en', 'de'], dtype=object)
    """
    arr = np.asarray(labels, dtype=object)
    if arr.ndim != 1 or arr.shape[0] != n:
        raise DataError(f"{what}: expected {n} labels (one per row), got shape {arr.shape}")
    missing = np.flatnonzero(pd.isna(arr))
    if missing.size:
        raise DataError(
            f"{what}: missing label in {missing.size} row(s): {_listing(list(missing))}"
        )
    return arr


def check_groups(groups: ArrayLike, n: int, *, what: str = "groups") -> NDArray[np.object_]:
    """Return ``groups`` as a 1-D object array of length ``n``; None/NaN mean "no group".

    Missing entries are normalised to ``None``.

    >>> check_groups(["g1", None, float("nan")], 3)
    array(['g1', None, None], dtype=object)
    """
    arr = np.asarray(groups, dtype=object)
    if arr.ndim != 1 or arr.shape[0] != n:
        raise DataError(f"{what}: expected {n} entries (one per row), got shape {arr.shape}")
    arr = arr.copy()
    arr[pd.isna(arr)] = None
    return arr


def unique_in_order(labels: NDArray[Any]) -> list[Any]:
    """Distinct labels in order of first appearance.

    >>> unique_in_order(["de", "en", "de"])
    ['de', 'en']
    """
    return list(pd.unique(np.asarray(labels, dtype=object)))


def check_min_per_label(
    labels: NDArray[Any], minimum: int = 2, *, what: str = "language", reason: str = ""
) -> dict[Any, int]:
    """Counts per label in order of first appearance; raise if any label has < ``minimum`` rows.

    >>> check_min_per_label(["en", "de", "en"], 1)
    {'en': 2, 'de': 1}
    >>> check_min_per_label(["en", "de", "en"], 2)
    Traceback (most recent call last):
    ...
    xalign.errors.DataError: language 'de' has 1 row(s); at least 2 are needed
    """
    counts = pd.Series(np.asarray(labels, dtype=object)).value_counts(sort=False)
    order = unique_in_order(labels)
    out = {lab: int(counts[lab]) for lab in order}
    for lab, c in out.items():
        if c < minimum:
            tail = f" ({reason})" if reason else ""
            raise DataError(f"{what} {lab!r} has {c} row(s); at least {minimum} are needed{tail}")
    return out


def check_choice(value: Any, allowed: Collection[Any], *, name: str) -> Any:
    """Return ``value`` if it is one of ``allowed``, else raise ConfigError listing them.

    The metric functions' spelling of :func:`xalign._validate.check_choice` (same message).

    >>> check_choice("cosine", ("cosine", "euclidean"), name="metric")
    'cosine'
    >>> check_choice("l1", ("cosine", "euclidean"), name="metric")
    Traceback (most recent call last):
    ...
    xalign.errors.ConfigError: metric 'l1': allowed values are cosine, euclidean
    """
    return _check_choice(name, value, allowed)
